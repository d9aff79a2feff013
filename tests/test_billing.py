"""vms/billing.py: where a VM stands in its paid 24 h epoch, as the detail page and the delete dialog say it,
and the contradictions in Fluence's billing data that are flagged instead of shown as facts.

The dialog's wording around it ("not refunded", "of paid time is left") is in tests/test_views_delete.py."""

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from vms.billing import EPOCH_SECONDS, billing_doubt, epoch_progress
from vms.fluence.models import Status, parse_vm
from vms.sandbox import EXAMPLE_VM

NEXT_BILLING = datetime(2025, 4, 16, 17, 59, 55, tzinfo=UTC)  # the example VM's nextBillingAt


@pytest.fixture
def vm():
    vm = parse_vm(copy.deepcopy(EXAMPLE_VM))
    assert vm.next_billing_at == NEXT_BILLING
    return vm


def test_an_epoch_is_the_24_hours_before_the_next_billing(vm):
    progress = epoch_progress(vm, NEXT_BILLING - timedelta(hours=3, minutes=12, seconds=30))

    assert EPOCH_SECONDS == 24 * 3600
    assert progress.started_at == NEXT_BILLING - timedelta(hours=24) and progress.ends_at == NEXT_BILLING
    assert progress.remaining_seconds == 3 * 3600 + 12 * 60 + 30
    assert progress.elapsed_seconds + progress.remaining_seconds == EPOCH_SECONDS
    assert progress.remaining == "3 h 12 min"
    assert progress.percent == 87  # 20 h 47 min 30 s of 24 h


@pytest.mark.parametrize(
    ("left", "remaining"),
    [
        (timedelta(hours=24), "24 h 0 min"),
        (timedelta(hours=1), "1 h 0 min"),
        (timedelta(minutes=59, seconds=59), "59 min"),
        (timedelta(minutes=1), "1 min"),
        (timedelta(seconds=59), "less than a minute"),
        (timedelta(0), "less than a minute"),
    ],
)
def test_the_time_left_reads_in_hours_and_minutes_rounded_down(vm, left, remaining):
    assert epoch_progress(vm, NEXT_BILLING - left).remaining == remaining


def test_a_clock_before_the_epoch_began_counts_the_whole_epoch_as_left(vm):
    progress = epoch_progress(vm, NEXT_BILLING - timedelta(days=3))

    assert (progress.elapsed_seconds, progress.remaining_seconds) == (0, EPOCH_SECONDS)
    assert progress.percent == 0


def test_a_billing_time_fluence_has_not_moved_on_yet_counts_as_an_epoch_used_up(vm):
    progress = epoch_progress(vm, NEXT_BILLING + timedelta(minutes=5))  # within the grace: billing is due

    assert (progress.elapsed_seconds, progress.remaining_seconds) == (EPOCH_SECONDS, 0)
    assert progress.percent == 100 and progress.remaining == "less than a minute"
    assert billing_doubt(vm, NEXT_BILLING + timedelta(minutes=5)) is None


def test_without_a_next_billing_time_there_is_no_epoch_to_show(vm):
    ended = msgspec.structs.replace(
        vm, next_billing_at_sent=None
    )  # e.g. terminated, or today's per-second billing

    assert epoch_progress(ended, NEXT_BILLING) is None


# --- contradictions in Fluence's billing data: flagged, not repeated as facts ------------------------------


def test_a_running_vm_whose_next_billing_is_long_past_has_out_of_date_billing_data(vm):
    now = NEXT_BILLING + timedelta(days=594)

    assert vm.status.label == "Active"
    assert billing_doubt(vm, now) == "billing data from Fluence is out of date (next billing 2025-04-16)"
    assert epoch_progress(vm, now) is None  # no "594 d ago", no full progress bar


def test_ten_minutes_after_the_billing_time_the_data_counts_as_out_of_date(vm):
    # Fluence moves nextBillingAt on when it bills: minutes after it, the old value is not yet stale.
    just_after, past = NEXT_BILLING + timedelta(minutes=9), NEXT_BILLING + timedelta(minutes=11)

    assert billing_doubt(vm, just_after) is None and epoch_progress(vm, just_after) is not None
    assert billing_doubt(vm, past) is not None and epoch_progress(vm, past) is None


@pytest.mark.parametrize("status", ["Launching", "SmallBalance", "New"])
def test_any_vm_still_billed_is_flagged_when_its_billing_time_is_past(vm, status):
    starting = msgspec.structs.replace(vm, status=Status(status))

    assert "out of date" in billing_doubt(starting, NEXT_BILLING + timedelta(hours=2))


def test_an_ended_vm_is_not_billed_so_a_past_billing_time_is_no_contradiction(vm):
    ended = msgspec.structs.replace(vm, status=Status("Terminated"))
    now = NEXT_BILLING + timedelta(days=30)

    assert billing_doubt(ended, now) is None
    assert epoch_progress(ended, now) is None  # and no "100 % of the paid epoch used" either


def test_a_vm_that_has_spent_money_but_reports_no_next_billing_says_exactly_that(vm):
    launching = msgspec.structs.replace(
        vm, status=Status("Launching"), next_billing_at_sent=None, total_spent_sent="0.59"
    )

    assert billing_doubt(launching, NEXT_BILLING) == (
        "this VM has spent 0.59 USDC, but Fluence reports no next billing"
    )
    assert epoch_progress(launching, NEXT_BILLING) is None


@pytest.mark.parametrize("spent", [Decimal(0), None])
def test_no_next_billing_and_nothing_spent_is_simply_not_billed_yet(vm, spent):
    new = msgspec.structs.replace(
        vm,
        status=Status("New"),
        next_billing_at_sent=None,
        total_spent_sent=None if spent is None else str(spent),
    )

    assert billing_doubt(new, NEXT_BILLING) is None


def test_an_ended_vm_that_spent_money_and_has_no_next_billing_is_as_expected(vm):
    ended = msgspec.structs.replace(vm, status=Status("Terminated"), next_billing_at_sent=None)

    assert ended.total_spent > 0 and billing_doubt(ended, NEXT_BILLING) is None


def test_vms_billed_per_second_have_no_epochs_to_doubt(vm):
    per_second = msgspec.structs.replace(vm, generation="b", next_billing_at_sent=None)

    assert billing_doubt(per_second, NEXT_BILLING + timedelta(days=9)) is None
