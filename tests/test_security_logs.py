"""The suite-wide log guard sees everything and knows every secret; the key flows leak none into the logs."""

import logging

from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests import secret_leak_guard

KEY = "sbx_log_guard_flow_key_77"


def test_the_guard_keeps_every_record_even_debug_and_non_propagating_ones(no_secret_in_any_log):
    log, _ = no_secret_in_any_log

    logging.getLogger("some.library").debug("debug line %s", "probe-1")
    logging.getLogger("django.server").info("server line probe-2")

    assert any("probe-1" in line for line in log.lines)
    assert any("probe-2" in line for line in log.lines)


def test_the_guard_knows_the_keys_sessions_passwords_and_encryption_keys_in_use(
    no_secret_in_any_log, alice_client, user, sandbox
):
    _, registry = no_secret_in_any_log
    client = Client()

    alice_client.post(reverse("vms:key_add"), {"label": "Flow", "secret": KEY, "base_url": sandbox.url})
    client.post(reverse("login"), {"username": "alice", "password": "guessed-password-42"})

    assert KEY in registry.secrets
    assert alice_client.session.session_key in registry.secrets
    assert "guessed-password-42" in registry.secrets
    assert set(settings.FIELD_ENCRYPTION_KEYS) <= registry.secrets
    assert "sbx_demo_alice_production" in registry.secrets


def test_a_leak_is_reported_with_the_secret_masked():
    lines = ["INFO vms fine", f"ERROR vms oops {KEY} again {KEY}"]

    leaked = secret_leak_guard.leaks(lines, {KEY, "short-but-not-here"})

    assert leaked == ["ERROR vms oops [secret …y_77] again [secret …y_77]"]


def test_the_key_flows_log_no_secret(no_secret_in_any_log, alice_client, user, sandbox):
    log, registry = no_secret_in_any_log
    start = len(log.lines)

    alice_client.post(reverse("vms:key_add"), {"label": "Flow", "secret": KEY, "base_url": sandbox.url})
    alice_client.post(
        reverse("vms:key_add"), {"label": "Bad", "secret": "sbx_demo_revoked_0001", "base_url": sandbox.url}
    )
    alice_client.get(reverse("vms:list"))
    alice_client.get(reverse("vms:keys"))

    flow = log.lines[start:]
    assert any("api key added" in line for line in flow)  # the flow did log
    assert secret_leak_guard.leaks(flow, registry.secrets) == []
