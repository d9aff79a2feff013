"""The hostile-upstream part of `make bench`: one gunicorn instance as documented (2 workers x 8
threads) while 18 people poll keys whose Fluence endpoint trickles one byte every 2 s, and 50 others sign
in and watch healthy keys. The sign-in page and the healthy lists must stay fast (p95 under 1 s).

Everyone starts at the same instant, the worst case: the first wave of trickling calls holds threads until
their deadline (FLUENCE_TOTAL_TIMEOUT), which the p99 shows; after it, the slow-call limit and the circuit
keep them free. Runs only when DATABASE_URL is PostgreSQL and REDIS_URL is set (the instance is another
process sharing them)."""

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from tests.bench.instances import (
    SHARED_SERVICES_MISSING,
    database_url_of,
    instance_environment,
    session_cookie_for,
    shared_services_configured,
    start_instances,
)
from tests.bench.load import run_load
from vms import services

ATTACKERS = 18
PEOPLE = 50
SIGN_IN_PEOPLE = 10
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
TRICKLE_MS = 2000
TARGET_P95_MS = 1000


def run(record, *, sandbox) -> None:
    if not shared_services_configured():
        print(f"Hostile upstream: skipped (it {SHARED_SERVICES_MISSING})")
        return
    print(f"Hostile upstream: {ATTACKERS} trickling keys, {PEOPLE} other people, {SECONDS:.0f} s:")
    # The same sandbox under a second name is the hostile API base URL: its circuit is its own.
    healthy_url = sandbox.url
    hostile_url = sandbox.url.replace("127.0.0.1", "localhost")
    settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, healthy_url, hostile_url]
    User = get_user_model()
    sandbox.state.clear_faults()

    attackers = []
    for number in range(ATTACKERS):
        person = User.objects.create_user(f"hostile-{number:02d}")
        secret = f"sbx_bench_hostile_{number:02d}"
        sandbox.state.configure_account(secret, vm_count=20)
        sandbox.state.set_faults(key=secret, trickle_ms=TRICKLE_MS)
        services.apikey_create(
            owner=person, label="Trickling", secret=secret, base_url=hostile_url, verify=False
        )
        attackers.append(session_cookie_for(person))
    watchers = []
    for number in range(PEOPLE):
        person = User.objects.create_user(f"healthy-{number:02d}")
        secret = f"sbx_bench_healthy_{number:02d}"
        sandbox.state.configure_account(secret, vm_count=20)
        sandbox.state.set_faults(key=secret, latency_ms=50)
        services.apikey_create(
            owner=person, label="Healthy", secret=secret, base_url=healthy_url, verify=False
        )
        watchers.append(session_cookie_for(person))

    env = instance_environment(
        database_url=database_url_of(connection),
        redis_url=os.environ["REDIS_URL"],
        secret_key=settings.SECRET_KEY,
        field_encryption_keys=",".join(settings.FIELD_ENCRYPTION_KEYS),
        fluence_api_urls=f"{healthy_url},{hostile_url}",
        static_root=tempfile.mkdtemp(prefix="bench-static-"),
        cache_seconds=5,
    )
    loads = {
        "attackers": dict(sessions=attackers, path="/", partial=True, think_s=1.0, timeout_s=60),
        "sign-in": dict(
            sessions=[{}] * SIGN_IN_PEOPLE, path="/accounts/login/", partial=False, think_s=0.5, timeout_s=60
        ),
        "healthy": dict(sessions=watchers, path="/", partial=True, think_s=1.0, timeout_s=60),
    }
    with (
        start_instances(1, env=env, workers=2, threads=8, startup_timeout=90) as urls,
        ThreadPoolExecutor(max_workers=len(loads)) as pool,
    ):
        futures = {
            name: pool.submit(run_load, base_urls=urls, duration_s=SECONDS, max_requests=50_000, **load)
            for name, load in loads.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    sandbox.state.clear_faults()

    hostile = results["attackers"]
    print(
        f"  trickling keys' pages: {hostile['requests']} requests, p50 {hostile['p50_ms']:.0f} / "
        f"p95 {hostile['p95_ms']:.0f} ms, {hostile['status_5xx']} 5xx, {hostile['errors']} errors"
    )
    for name, label in (("sign-in", "sign-in page"), ("healthy", "healthy keys' list")):
        result = results[name]
        bad = result["status_5xx"] + result["errors"]
        p95 = result["p95_ms"]
        record(
            f"{label}, {ATTACKERS} trickling keys",
            f"p95 {p95:.0f} ms ({result['requests']} requests, {bad} failed)",
            f"p50 {result['p50_ms']:.0f} / p99 {result['p99_ms']:.0f} ms",
            None,
            f"p95 < {TARGET_P95_MS} ms, no 5xx",
            p95 is not None and p95 < TARGET_P95_MS and bad == 0,
        )
