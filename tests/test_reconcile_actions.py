"""`reconcile_deletions` (also `reconcile_audit`) settles renames, restarts and port changes whose outcome is
unknown, where Fluence's list can tell, and records nothing where it cannot."""

import itertools
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import make_api_key
from vms.models import DeletionEvent

pytestmark = pytest.mark.django_db
_ACCOUNTS = itertools.count()


@pytest.fixture
def accounts(user, sandbox):
    number = next(_ACCOUNTS)
    secrets = {"a": f"sbx_a_settle_{number:04d}", "b": f"sbx_b_settle_{number:04d}"}
    keys = {}
    for generation, secret in secrets.items():
        sandbox.state.configure_account(secret, vm_count=12)
        keys[generation] = make_api_key(user, sandbox, secret=secret, label=f"Settle {generation}")
    sandbox.state.restart_delay = 60
    yield {"keys": keys, "secrets": secrets}
    sandbox.state.restart_delay = 3.0


def unknown_attempt(api_key, vm_id, action, details, *, minutes_ago=10):
    common = {
        "correlation_id": uuid.uuid4(),
        "action": action,
        "details": details,
        "actor_username": "alice",
        "actor_id": str(api_key.owner_id),
        "key_id": str(api_key.pk),
        "key_label": api_key.label,
        "key_last_four": api_key.last_four,
        "vm_id": vm_id,
    }
    intent = DeletionEvent.objects.create(
        kind="intent", created_at=timezone.now() - timedelta(minutes=minutes_ago), **common
    )
    DeletionEvent.objects.create(
        kind="outcome",
        outcome="unknown",
        created_at=timezone.now() - timedelta(minutes=minutes_ago - 1),
        **common,
    )
    return intent


def outcomes_of(intent):
    return list(
        DeletionEvent.objects.filter(correlation_id=intent.correlation_id, kind="outcome")
        .order_by("pk")
        .values_list("outcome", "source")
    )


def reconcile(*args, command="reconcile_deletions"):
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def b_vm(sandbox, accounts, *, restartable=True):
    for vm in sandbox.state.vms_for(accounts["secrets"]["b"]):
        if ("restart" in vm["allowedActions"]) is restartable:
            return vm
    raise AssertionError("no such VM")


def a_rename_that_arrived(accounts, sandbox):
    """A rename of unknown outcome in the audit trail that Fluence did carry out: its intent row."""
    vm = b_vm(sandbox, accounts)
    intent = unknown_attempt(
        accounts["keys"]["b"],
        vm["id"],
        "vm_rename",
        {"before": {"name": vm["name"]}, "after": {"name": "web-9"}},
    )
    sandbox.state.rename_vm_b(accounts["secrets"]["b"], vm["id"], "web-9")
    return intent


def test_a_rename_fluence_shows_done_is_settled_as_succeeded(accounts, sandbox):
    intent = a_rename_that_arrived(accounts, sandbox)
    output = reconcile()
    assert outcomes_of(intent) == [("unknown", "portal"), ("succeeded", "reconcile")]
    assert "Appended succeeded for vm renamed attempt" in output


def test_a_rename_fluence_never_applied_is_settled_as_failed_on_the_2025_api(accounts, sandbox):
    vm = sandbox.state.vms_for(accounts["secrets"]["a"])[0]
    intent = unknown_attempt(
        accounts["keys"]["a"],
        vm["id"],
        "vm_rename",
        {"before": {"name": vm["vmName"]}, "after": {"name": "other"}},
    )
    reconcile("--minutes", "5", command="reconcile_audit")  # the successor's name runs the same command
    assert outcomes_of(intent)[-1] == ("failed", "reconcile")


def test_a_vm_renamed_again_since_or_gone_cannot_tell_and_nothing_is_recorded(accounts, sandbox):
    vm = b_vm(sandbox, accounts)
    renamed_since = unknown_attempt(
        accounts["keys"]["b"],
        vm["id"],
        "vm_rename",
        {"before": {"name": "x-old"}, "after": {"name": "x-new"}},
    )
    gone = unknown_attempt(
        accounts["keys"]["b"],
        "00000000-0000-4000-8000-000000000000",
        "vm_rename",
        {"before": {"name": "a"}, "after": {"name": "b"}},
    )
    output = reconcile()
    assert outcomes_of(renamed_since) == [("unknown", "portal")] and outcomes_of(gone) == [
        ("unknown", "portal")
    ]
    assert "2 Fluence's answer cannot tell" in output


def test_a_restart_fluence_shows_under_way_succeeded_and_one_it_never_did_failed(accounts, sandbox):
    restarted, untouched = [
        vm for vm in sandbox.state.vms_for(accounts["secrets"]["b"]) if vm["status"] == "launched"
    ][:2]
    done = unknown_attempt(
        accounts["keys"]["b"], restarted["id"], "vm_restart", {"status_before": "launched"}
    )
    never = unknown_attempt(
        accounts["keys"]["b"], untouched["id"], "vm_soft_reboot", {"status_before": "launched"}
    )
    sandbox.state.restart_vm_b(accounts["secrets"]["b"], restarted["id"])
    reconcile()
    assert outcomes_of(done)[-1] == ("succeeded", "reconcile")
    assert outcomes_of(never)[-1] == ("failed", "reconcile")  # running since before the request


def test_a_port_change_is_settled_by_the_ports_fluence_lists(accounts, sandbox):
    vm_done, vm_not = sandbox.state.vms_for(accounts["secrets"]["a"])[:2]
    new = [{"port": 22, "protocol": "tcp"}, {"port": 8443, "protocol": "tcp"}]
    done = unknown_attempt(
        accounts["keys"]["a"],
        vm_done["id"],
        "vm_ports",
        {"before": {"ports": vm_done["ports"]}, "after": {"ports": new}},
    )
    never = unknown_attempt(
        accounts["keys"]["a"],
        vm_not["id"],
        "vm_ports",
        {"before": {"ports": vm_not["ports"]}, "after": {"ports": new}},
    )
    sandbox.state.update_vms(accounts["secrets"]["a"], [{"id": vm_done["id"], "openPorts": new}])
    reconcile()
    assert outcomes_of(done)[-1] == ("succeeded", "reconcile") and outcomes_of(never)[-1] == (
        "failed",
        "reconcile",
    )


def test_a_dry_run_appends_nothing_and_a_settled_attempt_is_left_alone(accounts, sandbox):
    intent = a_rename_that_arrived(accounts, sandbox)
    assert "Would append succeeded" in reconcile("--dry-run")
    assert outcomes_of(intent) == [("unknown", "portal")]
    reconcile()
    reconcile()  # the second run finds nothing left to settle
    assert outcomes_of(intent) == [("unknown", "portal"), ("succeeded", "reconcile")]


def test_too_recent_attempts_wait_for_a_later_run(accounts, sandbox):
    vm = b_vm(sandbox, accounts)
    intent = unknown_attempt(
        accounts["keys"]["b"],
        vm["id"],
        "vm_rename",
        {"before": {"name": vm["name"]}, "after": {"name": "web-9"}},
        minutes_ago=2,
    )
    reconcile("--minutes", "5")
    assert outcomes_of(intent) == [("unknown", "portal")]
