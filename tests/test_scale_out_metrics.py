"""Metrics, probes and JSON logs of real gunicorn instances on one PostgreSQL and one Redis.

Each instance runs two workers: A with a metrics directory it is given, B with the one gunicorn.conf.py makes
(and LOG_FORMAT=json). People poll a shared key through both; each instance's `/-/metrics` then counts
exactly the refreshes it served, whichever of its workers served them, and the list calls both counted add
up to the calls Fluence saw. Runs only against PostgreSQL and Redis (DATABASE_URL and REDIS_URL set), like
tests/test_scale_out.py.
"""

import json
import os
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

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

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.skipif(not shared_services_configured(), reason=f"scale-out {SHARED_SERVICES_MISSING}"),
    pytest.mark.django_db(transaction=True),  # the instances are other processes: they see committed rows
    pytest.mark.usefixtures("audit_triggers_lifted_for_flush"),
    pytest.mark.xdist_group("scale-out"),
]

TOKEN = "scale-out-metrics-token-0001"
SECRET = "scale-out-metrics-team-key-01"
PEOPLE = 24
VMS = 12
CACHE_SECONDS = 1
LOOKUPS = "fluence_portal_vm_list_cache_lookups_total"
UPSTREAM = "fluence_portal_upstream_request_duration_seconds_count"


@pytest.fixture
def watchers(django_user_model, sandbox):
    """A key shared (viewer) with a group of people, all committed."""
    sandbox.state.configure_account(SECRET, vm_count=VMS)
    owner = django_user_model.objects.create(username="metrics-owner")
    owner.user_permissions.add(Permission.objects.get(codename="share_apikey"))
    owner = django_user_model.objects.get(pk=owner.pk)  # without the permission cache of before
    api_key = services.apikey_create(
        owner=owner, label="Team", secret=SECRET, base_url=sandbox.url, verify=False
    )
    group = Group.objects.create(name="metrics-watchers")
    members = django_user_model.objects.bulk_create(
        [django_user_model(username=f"metrics-watcher-{number:02d}") for number in range(PEOPLE)]
    )
    group.user_set.add(*members)
    services.keyshare_set(api_key=api_key, group=group, role="viewer", shared_by=owner)
    return members


@pytest.fixture
def instances(watchers, sandbox, tmp_path_factory):
    """A (its metrics directory named, so the test can look into it) and B (JSON logs), two workers each."""
    redis.Redis.from_url(REDIS_URL, socket_timeout=5).flushdb()
    static_root = tmp_path_factory.mktemp("static")
    metrics_dir = tmp_path_factory.mktemp("metrics-a")

    def environment(**extra):
        return instance_environment(
            database_url=database_url_of(connection),
            redis_url=REDIS_URL,
            secret_key=settings.SECRET_KEY,
            field_encryption_keys=",".join(settings.FIELD_ENCRYPTION_KEYS),
            fluence_api_urls=sandbox.url,
            static_root=static_root,
            cache_seconds=CACHE_SECONDS,
            extra={"METRICS_TOKEN": TOKEN, "METRICS_INCLUDE_ACCOUNTS": "1", "LOG_LEVEL": "INFO", **extra},
        )

    with (
        start_instances(1, env=environment(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)), workers=2) as a,
        start_instances(1, env=environment(LOG_FORMAT="json"), workers=2) as b,
    ):
        yield a[0], b[0], metrics_dir, b


def scrape(base_url: str) -> dict:
    response = requests.get(f"{base_url}/-/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text[:500]
    return _samples(response.text)


def _samples(text: str) -> dict:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, found), value in samples.items() if sample == name and wanted <= found)


def test_counts_add_up_across_workers_and_instances(instances, watchers, sandbox):
    instance_a, instance_b, metrics_dir, _ = instances
    sessions = [session_cookie_for(member) for member in watchers]  # Redis was emptied for the instances
    sandbox.state.set_faults(latency_ms=50)
    sandbox.state.reset_counts()
    before_a, before_b = scrape(instance_a), scrape(instance_b)

    result = run_load(
        base_urls=[instance_a, instance_b],
        sessions=sessions,
        duration_s=4,
        max_requests=1_500,
        partial=True,
        threads=PEOPLE,
    )
    after_a, after_b = scrape(instance_a), scrape(instance_b)

    assert result["errors"] == 0 and result["status_counts"] == {200: result["requests"]}, result
    assert result["hx_redirects"] == 0  # every poll was a signed-in refresh of the list
    # Each refresh of one person's page is one lookup of the one key they see, on the instance that served it.
    served_a, served_b = result["per_instance"][instance_a], result["per_instance"][instance_b]
    assert total(after_a, LOOKUPS) - total(before_a, LOOKUPS) == served_a
    assert total(after_b, LOOKUPS) - total(before_b, LOOKUPS) == served_b
    # Both of A's workers served some of them, each counting in a file of its own: A's scrape is their sum.
    per_worker = [total(_samples_of(path), LOOKUPS) for path in sorted(metrics_dir.glob("counter_*.db"))]
    print(f"\nmetrics: A served {served_a} (its workers {per_worker}), B {served_b}")
    assert len([count for count in per_worker if count]) == 2, per_worker
    assert sum(per_worker) == total(after_a, LOOKUPS)
    # The list calls both instances counted are the ones Fluence saw (the cache and the single flight
    # shared through Redis kept them few).
    calls = sandbox.state.request_count(method="GET", path="/vms/v2", key=SECRET)
    counted = sum(
        total(after, UPSTREAM, operation="list", outcome="200")
        - total(before, UPSTREAM, operation="list", outcome="200")
        for before, after in ((before_a, after_a), (before_b, after_b))
    )
    assert counted == calls and 1 <= calls < result["requests"] / 5
    # Gauges read from the shared cache: the same on both instances, and no secret on either.
    for samples in (after_a, after_b):
        assert total(samples, "fluence_portal_account_vms", key_label="Team") == VMS
        assert total(samples, "fluence_portal_circuit_state", base_url=sandbox.url, state="closed") == 1


def _samples_of(path: Path) -> dict:
    """The samples one worker wrote to its own file."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for metric in MultiProcessCollector.merge([str(path)])
        for sample in metric.samples
    }


def test_probes_answer_on_both_instances_without_a_session(instances):
    instance_a, instance_b, _, _ = instances

    for base_url in (instance_a, instance_b):
        # As the kubelet asks: the pod's address as the host, no cookie, plain HTTP.
        for path in ("/-/healthz", "/-/readyz"):
            response = requests.get(f"{base_url}{path}", headers={"Host": "10.1.2.3:8000"}, timeout=10)
            assert response.status_code == 200, (base_url, path, response.text)
            assert "Set-Cookie" not in response.headers
        assert requests.get(f"{base_url}/-/readyz", timeout=10).json()["checks"] == {
            "database": "ok",
            "cache": "ok",
        }
        assert requests.get(f"{base_url}/-/metrics", timeout=10).status_code == 401


def test_an_instance_with_json_logs_writes_only_json_lines_holding_no_secret(instances, watchers):
    _, instance_b, _, b = instances
    sessions = [session_cookie_for(member) for member in watchers]
    for cookies in sessions[:3]:
        assert requests.get(f"{instance_b}/", cookies=cookies, timeout=30).status_code == 200

    lines = [line for line in b.logs().splitlines() if line and not line.startswith("=====")]
    entries = [json.loads(line) for line in lines]

    assert any(
        entry["logger"] == "gunicorn.error" and "Listening at" in entry["message"] for entry in entries
    )
    requests_logged = [entry for entry in entries if entry["logger"] == "fluence_portal.requests"]
    assert len(requests_logged) >= 3
    assert {entry["user"] for entry in requests_logged} >= {"metrics-watcher-00", "metrics-watcher-01"}
    assert all(
        entry["request_id"] and entry["status"] == 200 for entry in requests_logged if entry["path"] == "/"
    )
    output = b.logs()
    assert SECRET not in output and TOKEN not in output
    assert not any(cookies[settings.SESSION_COOKIE_NAME] in output for cookies in sessions)
