"""The scale-out part of `make bench`: two gunicorn instances on one PostgreSQL and one Redis, 50 simulated
people polling the list through both for 60 s (bounded), zero 5xx, latency percentiles, and the number of
list calls Fluence received. Runs only when DATABASE_URL is PostgreSQL and REDIS_URL is set."""

import os
import tempfile

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
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
from vms.models import KeyShare

PEOPLE = 50
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
CACHE_SECONDS = 5
THINK_SECONDS = 1.0  # a browser polls every few seconds; each simulated person pauses between requests


def run(record, *, sandbox) -> None:
    if not shared_services_configured():
        print(f"Scale-out: skipped (it {SHARED_SERVICES_MISSING})")
        return
    print(f"Scale-out: two gunicorn instances, {PEOPLE} people polling for {SECONDS:.0f} s:")
    User = get_user_model()
    owner = User.objects.create_user("scale-owner")
    secret = "sbx_bench_scale_out_team"
    sandbox.state.clear_faults()
    sandbox.state.configure_account(secret, vm_count=100)
    sandbox.state.set_faults(key=secret, latency_ms=100)
    api_key = services.apikey_create(
        owner=owner, label="Team", secret=secret, base_url=sandbox.url, verify=False
    )
    group = Group.objects.create(name="scale-watchers")
    members = User.objects.bulk_create([User(username=f"scale-{number:02d}") for number in range(PEOPLE)])
    group.user_set.add(*members)
    KeyShare.objects.create(api_key=api_key, group=group, role="viewer")  # set-up: no rule tested
    sessions = [session_cookie_for(member) for member in members]
    env = instance_environment(
        database_url=database_url_of(connection),
        redis_url=os.environ["REDIS_URL"],
        secret_key=settings.SECRET_KEY,
        field_encryption_keys=",".join(settings.FIELD_ENCRYPTION_KEYS),
        fluence_api_urls=sandbox.url,
        static_root=tempfile.mkdtemp(prefix="bench-static-"),
        cache_seconds=CACHE_SECONDS,
    )
    with start_instances(2, env=env, workers=1, threads=8, startup_timeout=90) as urls:
        sandbox.state.reset_counts()
        result = run_load(
            base_urls=urls,
            sessions=sessions,
            duration_s=SECONDS,
            max_requests=50_000,
            partial=True,
            think_s=THINK_SECONDS,
        )
    calls = sandbox.state.request_count(method="GET", key=secret)
    bad = result["status_5xx"] + result["errors"]
    record(
        f"load: {PEOPLE} people x 2 instances, {result['elapsed_s']:.0f} s",
        f"{result['requests']} requests, {result['status_5xx']} 5xx, {result['errors']} errors",
        f"p50 {result['p50_ms']:.0f} / p95 {result['p95_ms']:.0f} / p99 {result['p99_ms']:.0f} ms",
        None,
        "zero 5xx",
        bad == 0,
    )
    allowed = result["elapsed_s"] / CACHE_SECONDS + 2
    record(
        "list calls to Fluence, 2 instances",
        f"{calls} calls",
        f"{result['requests']} page refreshes, interval {CACHE_SECONDS} s",
        calls / allowed,
        f"<= {allowed:.0f} (one per interval)",
        1 <= calls <= allowed,
    )
