"""`reconcile_deletions` against the real sandbox: what it appends for attempts without a known outcome."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import OPS_KEY, deletion_rows
from vms import services
from vms.models import DeletionEvent

pytestmark = pytest.mark.django_db

GONE_VM = "0x00000000000000000000000000000000000dead1"


@pytest.fixture
def present_vm(sandbox, api_key):
    return sandbox.state.add_vm(OPS_KEY, name="still-here", status="ACTIVE")


def make_intent(api_key, *, vm_id, minutes_ago=10, vm_name="some-vm"):
    return DeletionEvent.objects.create(
        correlation_id=uuid.uuid4(),
        kind="intent",
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        actor_username="alice",
        actor_id=str(api_key.owner_id),
        client_ip="192.0.2.10",
        user_agent="Mozilla/5.0 test",
        request_id="req-1234567890",
        key_id=str(api_key.pk),
        key_label=api_key.label,
        key_last_four=api_key.last_four,
        key_owner_username="alice",
        base_url=api_key.base_url,
        vm_id=vm_id,
        vm_name=vm_name,
        vm_snapshot={"id": vm_id, "vmName": vm_name, "status": "ACTIVE"},
    )


def add_outcome(intent, outcome, *, minutes_ago=9):
    return DeletionEvent.objects.create(
        correlation_id=intent.correlation_id,
        kind="outcome",
        outcome=outcome,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        actor_username=intent.actor_username,
        actor_id=intent.actor_id,
        key_id=intent.key_id,
        key_label=intent.key_label,
        key_last_four=intent.key_last_four,
        vm_id=intent.vm_id,
        message="Fluence did not answer in time." if outcome == "unknown" else "",
    )


def reconcile(*args) -> str:
    out = StringIO()
    call_command("reconcile_deletions", *args, stdout=out)
    return out.getvalue()


def outcomes_of(intent) -> list[DeletionEvent]:
    return list(
        deletion_rows().filter(correlation_id=intent.correlation_id, kind="outcome").order_by("created_at")
    )


def test_a_vm_that_has_gone_is_recorded_as_succeeded(api_key):
    intent = make_intent(api_key, vm_id=GONE_VM)
    output = reconcile()
    [row] = outcomes_of(intent)
    assert row.outcome == "succeeded"
    assert row.source == "reconcile"
    assert row.message == "VM no longer listed by Fluence"
    assert row.created_at > intent.created_at
    for name in (
        "actor_username",
        "actor_id",
        "key_id",
        "key_label",
        "key_last_four",
        "key_owner_username",
        "base_url",
        "vm_id",
        "vm_name",
        "vm_snapshot",
    ):
        assert getattr(row, name) == getattr(intent, name), name
    assert "1 succeeded" in output
    assert OPS_KEY not in output


def test_a_vm_still_listed_soon_after_is_checked_again_later(api_key, present_vm):
    intent = make_intent(api_key, vm_id=present_vm["id"], minutes_ago=12)
    output = reconcile()
    assert outcomes_of(intent) == []  # Fluence deletes asynchronously: it may still be on its way out
    assert "checked again next run" in output


def test_a_vm_still_listed_an_hour_later_is_recorded_as_failed(api_key, present_vm):
    intent = make_intent(api_key, vm_id=present_vm["id"].upper().replace("0X", "0x"), minutes_ago=75)
    reconcile()
    [row] = outcomes_of(intent)
    assert row.outcome == "failed"
    assert row.source == "reconcile"
    assert row.message == "VM still listed by Fluence 75 minutes after the request"


def test_an_attempt_with_a_known_outcome_is_left_alone(api_key, sandbox):
    intent = make_intent(api_key, vm_id=GONE_VM)
    add_outcome(intent, "succeeded")
    sandbox.state.reset_counts()
    output = reconcile()
    assert len(outcomes_of(intent)) == 1
    assert sandbox.state.request_count() == 0
    assert "Checked 0 attempt(s)" in output


def test_an_unknown_outcome_gets_reconciled_once(api_key):
    intent = make_intent(api_key, vm_id=GONE_VM)
    add_outcome(intent, "unknown")
    reconcile()
    assert [row.outcome for row in outcomes_of(intent)] == ["unknown", "succeeded"]
    reconcile()  # now settled: nothing more
    assert [row.outcome for row in outcomes_of(intent)] == ["unknown", "succeeded"]


def test_recent_attempts_wait_for_the_threshold(api_key):
    intent = make_intent(api_key, vm_id=GONE_VM, minutes_ago=2)
    reconcile()
    assert outcomes_of(intent) == []
    reconcile("--minutes", "1")
    assert [row.outcome for row in outcomes_of(intent)] == ["succeeded"]


def test_a_deleted_key_is_reported_and_skipped(api_key, sandbox):
    intent = make_intent(api_key, vm_id=GONE_VM)
    api_key.delete()
    sandbox.state.reset_counts()
    output = reconcile()
    assert outcomes_of(intent) == []
    assert "the key no longer exists" in output
    assert sandbox.state.request_count() == 0


def test_dry_run_appends_nothing(api_key, present_vm):
    gone = make_intent(api_key, vm_id=GONE_VM)
    present = make_intent(api_key, vm_id=present_vm["id"], minutes_ago=90)
    before = deletion_rows().count()
    output = reconcile("--dry-run")
    assert deletion_rows().count() == before
    assert "would append 1 succeeded and 1 failed" in output
    assert str(gone.correlation_id) in output and str(present.correlation_id) in output


def test_fluence_failing_appends_nothing_and_is_retried_next_time(api_key, sandbox):
    intent = make_intent(api_key, vm_id=GONE_VM)
    sandbox.state.set_faults(error_rate=1.0)
    output = reconcile()
    assert outcomes_of(intent) == []
    assert "1 left for next time" in output
    assert OPS_KEY not in output
    sandbox.state.clear_faults()
    reconcile()
    assert [row.outcome for row in outcomes_of(intent)] == ["succeeded"]


def test_one_list_call_per_key_per_run(api_key, sandbox, present_vm):
    make_intent(api_key, vm_id=GONE_VM)
    make_intent(api_key, vm_id=present_vm["id"])
    sandbox.state.reset_counts()
    reconcile()
    assert sandbox.state.request_count(method="GET") == 1
    assert sandbox.state.request_count(method="DELETE") == 0


def test_on_todays_api_a_terminated_vm_still_listed_is_recorded_as_succeeded(user, sandbox):
    key = f"sbx_b_reconcile_{uuid.uuid4().hex[:12]}"
    sandbox.state.configure_account(key, vm_count=0)
    api_key = services.apikey_create(owner=user, label="Today", secret=key, base_url=sandbox.url)
    running = sandbox.state.add_vm(key, name="will-go", status="launched")
    ended = sandbox.state.add_vm(key, name="has-gone", status="launched")
    sandbox.state.terminate_vm(key, ended["id"])  # Fluence keeps it listed, terminating then terminated
    still = make_intent(api_key, vm_id=running["id"], minutes_ago=75)
    gone = make_intent(api_key, vm_id=ended["id"], minutes_ago=75)

    reconcile()

    assert [row.outcome for row in outcomes_of(gone)] == ["succeeded"]
    assert [row.outcome for row in outcomes_of(still)] == ["failed"]
