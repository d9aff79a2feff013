"""Shared fixtures: users, a running local Fluence sandbox, and a clean cache for every test."""

import pytest
from django.core.cache import cache

from tests import secret_leak_guard
from vms.sandbox import SandboxServer


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


@pytest.fixture(scope="session")
def sandbox_server():
    server = SandboxServer(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The session's sandbox, allowlisted, with no faults and fresh counters."""
    settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, sandbox_server.url]
    sandbox_server.state.clear_faults()
    sandbox_server.state.reset_counts()
    yield sandbox_server
    sandbox_server.state.clear_faults()


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
