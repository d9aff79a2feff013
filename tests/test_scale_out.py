"""Two real app instances (gunicorn) on one PostgreSQL and one Redis behave as one.

A session made on one is valid on the other, and 50 people watching one shared key through both cause about
one list call to Fluence per refresh interval, not one per page. Runs only against PostgreSQL and Redis
(DATABASE_URL and REDIS_URL set, as in CI's second run): the local-memory cache is per process by design.
"""

import os

import pytest
import redis
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
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
from tests.bench.load import run_load, sign_in
from vms import services
from vms.models import KeyShare

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.skipif(not shared_services_configured(), reason=f"scale-out {SHARED_SERVICES_MISSING}"),
    pytest.mark.django_db(transaction=True),  # the instances are other processes: they see committed rows
    pytest.mark.usefixtures("audit_triggers_lifted_for_flush"),  # rows committed for real: see there
    # Two real app instances per test: never two such tests at once on different xdist workers.
    pytest.mark.xdist_group("scale-out"),
]

CACHE_SECONDS = 2
PEOPLE = 50
POLL_SECONDS = 6.0
SHARED_SECRET = "scale-out-shared-team-key-0001"
OWNER_PASSWORD = "owner-password-for-scale-out-1"


@pytest.fixture
def team(django_user_model, sandbox):
    """An owner with one key shared (viewer) with a group of 50, all committed."""
    sandbox.state.configure_account(SHARED_SECRET, vm_count=20)
    owner = django_user_model.objects.create(username="ops-owner")
    # The instances run the production hashers, not the suite's fast MD5.
    owner.password = PBKDF2PasswordHasher().encode(OWNER_PASSWORD, PBKDF2PasswordHasher().salt())
    owner.save()
    api_key = services.apikey_create(
        owner=owner, label="Team", secret=SHARED_SECRET, base_url=sandbox.url, verify=False
    )
    group = Group.objects.create(name="watchers")
    members = [django_user_model(username=f"watcher-{number:02d}") for number in range(PEOPLE)]
    for member in members:
        member.set_unusable_password()
    members = django_user_model.objects.bulk_create(members)
    group.user_set.add(*members)
    KeyShare.objects.create(api_key=api_key, group=group, role="viewer")  # set-up: no rule tested
    return owner, members


@pytest.fixture
def two_instances(team, sandbox, tmp_path_factory):
    redis.Redis.from_url(REDIS_URL, socket_timeout=5).flushdb()  # no cache, lock or session of earlier runs
    env = instance_environment(
        database_url=database_url_of(connection),
        redis_url=REDIS_URL,
        secret_key=settings.SECRET_KEY,  # the same signing key as this process, which writes sessions too
        field_encryption_keys=",".join(settings.FIELD_ENCRYPTION_KEYS),
        fluence_api_urls=sandbox.url,
        static_root=tmp_path_factory.mktemp("static"),
        cache_seconds=CACHE_SECONDS,
    )
    with start_instances(2, env=env, workers=1, threads=8, startup_timeout=60) as urls:
        yield urls


def test_a_session_made_on_one_instance_is_valid_on_the_other(two_instances):
    instance_a, instance_b = two_instances

    cookies = sign_in(instance_a, "ops-owner", OWNER_PASSWORD)
    on_b = requests.get(f"{instance_b}/", cookies=cookies, timeout=(3, 30), allow_redirects=False)

    assert on_b.status_code == 200, f"B answered {on_b.status_code} {on_b.headers.get('Location')}"
    assert "Team" in on_b.text and "Sign in" not in on_b.text
    assert 'id="vm-table"' in on_b.text
    # And the table partial htmx polls for, also on B.
    partial = requests.get(f"{instance_b}/", cookies=cookies, headers={"HX-Request": "true"}, timeout=(3, 30))
    assert partial.status_code == 200 and "<html" not in partial.text
    assert "HX-Redirect" not in partial.headers


def test_fifty_people_on_two_instances_cause_one_list_call_per_refresh_interval(two_instances, team, sandbox):
    _, members = team
    sessions = [session_cookie_for(member) for member in members]
    sandbox.state.set_faults(latency_ms=100)  # a realistic Fluence: slow enough for callers to pile up
    sandbox.state.reset_counts()

    result = run_load(
        base_urls=two_instances,
        sessions=sessions,
        duration_s=POLL_SECONDS,
        max_requests=20_000,
        partial=True,
        threads=16,
    )
    calls = sandbox.state.request_count(method="GET", key=SHARED_SECRET)
    print(f"\nscale-out: {calls} list calls to Fluence for {result['requests']} page requests; {result}")

    assert result["errors"] == 0, result["error_samples"]
    assert result["status_5xx"] == 0, result["status_counts"]
    assert result["status_counts"] == {200: result["requests"]}, result["status_counts"]
    assert result["hx_redirects"] == 0
    assert all(result["per_instance"].get(url, 0) > 0 for url in two_instances), result["per_instance"]
    assert result["requests"] >= 5 * calls
    # One call per key per FLUENCE_CACHE_SECONDS, plus the edges of the run (the intervals are not aligned).
    assert 1 <= calls <= result["elapsed_s"] / CACHE_SECONDS + 2, (calls, result["elapsed_s"])
