"""What deleting VMs throws away of time already paid, per VM and in total per currency.

On the 2025 APIs an epoch (24 h) is paid in advance and not refunded: deleting a VM loses what is left of
its current epoch, worth that share of its price per epoch (USDC). Today's API bills per second from a
prepaid balance and stops at termination: nothing prepaid is lost (0 USD). Currencies are never added."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from vms.billing import EPOCH_SECONDS, billing_doubt, epoch_progress
from vms.fluence.models import Vm

EPOCH = "epoch"  # part of a paid epoch is lost
PER_SECOND = "per_second"  # billed per second: nothing prepaid is lost
DOUBT = "doubt"  # Fluence's billing data contradicts itself: not counted
NOT_BILLED = "not_billed"  # no current epoch (ended, or not billed yet): nothing lost
NOT_SENT = "not_sent"  # Fluence does not allow deleting it now: it is not sent, nothing lost


@dataclass(frozen=True)
class VmLoss:
    kind: str
    currency: str
    seconds: int = 0  # paid time lost
    amount: Decimal | None = None  # what that time is worth; None when the price is unknown
    doubt: str | None = None

    @property
    def duration(self) -> str:
        return format_duration(self.seconds)


@dataclass(frozen=True)
class LossTotal:
    currency: str
    amount: Decimal
    seconds: int
    vm_count: int  # VMs of this currency that lose paid time (or would, per second: none)
    unpriced: int = 0  # VMs that lose paid time whose price Fluence did not give
    per_second: bool = False  # every VM of this currency is billed per second

    @property
    def duration(self) -> str:
        return format_duration(self.seconds)


def vm_loss(vm: Vm, now: datetime) -> VmLoss:
    if not vm.can_terminate:
        return VmLoss(NOT_SENT, vm.currency)
    if vm.billed_per_second:
        return VmLoss(PER_SECOND, vm.currency, amount=Decimal(0))
    doubt = billing_doubt(vm, now)
    if doubt:
        return VmLoss(DOUBT, vm.currency, doubt=doubt)
    epoch = epoch_progress(vm, now)
    if epoch is None or vm.status.is_ended or not epoch.remaining_seconds:
        return VmLoss(NOT_BILLED, vm.currency, amount=Decimal(0))
    amount = None
    if vm.price_per_epoch is not None:
        amount = vm.price_per_epoch * epoch.remaining_seconds / EPOCH_SECONDS
    return VmLoss(EPOCH, vm.currency, seconds=epoch.remaining_seconds, amount=amount)


def loss_totals(losses: list[VmLoss]) -> tuple[LossTotal, ...]:
    """One total per currency (USDC before USD), over the VMs that are sent and whose billing is clear."""
    totals: dict[str, dict] = {}
    for loss in losses:
        if loss.kind in (DOUBT, NOT_SENT):
            continue
        total = totals.setdefault(
            loss.currency,
            {"amount": Decimal(0), "seconds": 0, "vm_count": 0, "unpriced": 0, "per_second": True},
        )
        total["vm_count"] += 1
        total["seconds"] += loss.seconds
        total["per_second"] &= loss.kind == PER_SECOND
        if loss.amount is None:
            total["unpriced"] += 1
        else:
            total["amount"] += loss.amount
    return tuple(
        LossTotal(currency=currency, **values)
        for currency, values in sorted(totals.items(), key=lambda item: item[0] != "USDC")
    )


def format_duration(seconds: int) -> str:
    """Paid time as people read it: "2 d 3 h", "3 h 12 min", "12 min", "less than a minute", "none"."""
    if seconds <= 0:
        return "none"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "less than a minute"
