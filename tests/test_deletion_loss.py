"""What a bulk deletion loses of time already paid: per VM, and in total per currency, never mixed."""

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec

from vms.deletion_loss import DOUBT, EPOCH, NOT_SENT, PER_SECOND, format_duration, loss_totals, vm_loss
from vms.fluence.models import parse_vm
from vms.sandbox import EXAMPLE_VM

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _vm(*, price="0.48", left=timedelta(hours=6), **changes):
    raw = copy.deepcopy(EXAMPLE_VM)
    raw.update(pricePerEpoch=price, nextBillingAt=(NOW + left).isoformat().replace("+00:00", "Z"), **changes)
    return parse_vm(raw)


def test_the_rest_of_a_paid_epoch_is_lost_at_its_share_of_the_price():
    loss = vm_loss(_vm(), NOW)
    assert (loss.kind, loss.seconds, loss.amount, loss.currency) == (EPOCH, 6 * 3600, Decimal("0.12"), "USDC")
    assert loss.duration == "6 h 0 min"


def test_per_second_billing_loses_nothing_prepaid():
    vm = msgspec.structs.replace(_vm(), generation="b")
    loss = vm_loss(vm, NOW)
    assert (loss.kind, loss.amount, loss.seconds) == (PER_SECOND, Decimal(0), 0)


def test_totals_are_per_currency_and_leave_out_what_cannot_be_told_or_is_not_sent():
    epochs = [vm_loss(_vm(), NOW), vm_loss(_vm(price="0.96", left=timedelta(hours=12)), NOW)]
    per_second = vm_loss(msgspec.structs.replace(_vm(), generation="b"), NOW)
    doubt = vm_loss(_vm(left=-timedelta(days=2)), NOW)  # billing data out of date
    not_sent = vm_loss(
        msgspec.structs.replace(_vm(), generation="b", allowed_actions=()), NOW
    )  # not allowed now
    assert doubt.kind == DOUBT and not_sent.kind == NOT_SENT
    usdc, usd = loss_totals([*epochs, per_second, doubt, not_sent])
    assert (usdc.currency, usdc.amount, usdc.seconds, usdc.vm_count) == (
        "USDC",
        Decimal("0.60"),
        18 * 3600,
        2,
    )
    assert not usdc.per_second
    assert (usd.currency, usd.amount, usd.vm_count, usd.per_second) == ("USD", Decimal(0), 1, True)


def test_durations_read_as_people_say_them():
    assert [format_duration(s) for s in (0, 30, 600, 7260, 2 * 86400 + 3 * 3600)] == [
        "none",
        "less than a minute",
        "10 min",
        "2 h 1 min",
        "2 d 3 h",
    ]
