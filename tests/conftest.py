"""Shared fixtures: users and their keys, a running local Fluence sandbox, a clean cache for every test."""

import os

import pytest
from django.core.cache import cache
from hypothesis import settings as hypothesis_settings

from tests import secret_leak_guard
from tests.factories import ALICE_KEY, MALLORY_KEY, OPS_KEY, make_api_key
from vms.sandbox import SandboxServer

# The property tests draw the same examples on every run, so that one fails everywhere or nowhere (the suite
# must not flake); HYPOTHESIS_PROFILE=explore draws new ones, to look for bugs on purpose.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log():
    """Every log record of the whole run, searched at the end for every secret the run used.

    A leak fails the last test of the run (of each worker) with the offending lines, secrets masked.
    """
    with secret_leak_guard.watching() as (log, registry):
        yield log, registry
        leaked = secret_leak_guard.leaks(log.lines, registry.secrets)
    assert not leaked, "secrets reached the logs:\n" + "\n".join(leaked)


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _deletion_jobs_inline(monkeypatch):
    """Bulk deletion jobs run in the request's own thread: a thread of their own would not see the test's
    uncommitted rows. Tests that commit for real (tests/e2e, the thread test of test_deletion_jobs.py)
    override this fixture and get real threads."""
    from vms import deletion_jobs

    monkeypatch.setattr(deletion_jobs, "spawn", lambda target: target())


@pytest.fixture(scope="session")
def sandbox_server():
    server = SandboxServer(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The session's sandbox, allowlisted, with no faults, fresh counters and its random draws started
    again; its deletion delay is put back after the test, whatever the test set it to."""
    settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, sandbox_server.url]
    sandbox_server.state.clear_faults()
    sandbox_server.state.reset_counts()
    sandbox_server.state.reseed()
    deletion_delay = sandbox_server.state.deletion_delay
    yield sandbox_server
    sandbox_server.state.clear_faults()
    sandbox_server.state.deletion_delay = deletion_delay


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="mallory-password-1")


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def alice_key(user, sandbox):
    """Alice's key "Production" on the sandbox's demo account (the documented example VM among its 14)."""
    return make_api_key(user, sandbox, secret=ALICE_KEY, label="Production")


@pytest.fixture
def mallory_key(other_user, sandbox):
    """Mallory's own key "Mine": nothing of it may ever reach Alice."""
    return make_api_key(other_user, sandbox, secret=MALLORY_KEY, label="Mine")


@pytest.fixture
def api_key(user, sandbox):
    """Alice's key "Ops" on a fresh sandbox account of ten VMs, the documented example first. A VM she
    deletes stays listed ("deleting") for the whole test."""
    sandbox.state.deletion_delay = 60
    return make_api_key(user, sandbox, secret=OPS_KEY, label="Ops", vm_count=10, include_example=True)


@pytest.fixture
def audit_triggers_installed(db):
    """Browser and scale-out tests lift the audit table's triggers to let Django empty the tables after
    them; a test that relies on the triggers puts them back first."""
    from django.db import connection

    from vms import audit_triggers

    audit_triggers.ensure_installed(connection)


@pytest.fixture
def audit_triggers_lifted_for_flush(transactional_db):
    """Tests that commit for real (browsers, other processes) end with Django emptying every table, which
    the audit table's triggers rightly refuse: they are in place during the test and lifted for that
    clean-up only (audit_triggers_installed puts them back for the tests that rely on them)."""
    from django.db import connection

    from vms import audit_triggers

    audit_triggers.ensure_installed(connection)
    yield
    audit_triggers.uninstall(connection)
