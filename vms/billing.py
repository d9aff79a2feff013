"""Billing arithmetic: epochs are 24 h, paid in advance, and not refunded when a VM is deleted; and where
Fluence's billing data contradicts itself or the clock, the sentence that says so instead."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from vms.display import format_money
from vms.fluence.models import EPOCH, Vm

EPOCH_SECONDS = int(EPOCH.total_seconds())

# Fluence moves nextBillingAt on when it bills: for a few minutes after that moment the old value is the
# epoch that just ended, not a sign of stale data.
BILLING_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class EpochProgress:
    started_at: datetime
    ends_at: datetime
    elapsed_seconds: int
    remaining_seconds: int

    @property
    def percent(self) -> int:
        return round(100 * self.elapsed_seconds / EPOCH_SECONDS)

    @property
    def remaining(self) -> str:
        """Paid time left in the epoch, e.g. "3 h 12 min"."""
        hours, rest = divmod(self.remaining_seconds, 3600)
        minutes = rest // 60
        if hours:
            return f"{hours} h {minutes} min"
        if minutes:
            return f"{minutes} min"
        return "less than a minute"


def _billing_out_of_date(vm: Vm, now: datetime) -> bool:
    return vm.next_billing_at is not None and vm.next_billing_at < now - BILLING_GRACE


def epoch_progress(vm: Vm, now: datetime) -> EpochProgress | None:
    """Where the VM stands in its current paid epoch. None when Fluence's data cannot tell: no next billing
    time, or one more than BILLING_GRACE in the past (out of date: `billing_doubt` says so)."""
    if vm.next_billing_at is None or _billing_out_of_date(vm, now):
        return None
    ends_at = vm.next_billing_at
    started_at = ends_at - EPOCH
    elapsed = int((now - started_at).total_seconds())
    elapsed = min(max(elapsed, 0), EPOCH_SECONDS)
    return EpochProgress(
        started_at=started_at,
        ends_at=ends_at,
        elapsed_seconds=elapsed,
        remaining_seconds=EPOCH_SECONDS - elapsed,
    )


def billing_doubt(vm: Vm, now: datetime) -> str | None:
    """What is contradictory in Fluence's epoch billing data of a VM that has not ended, as a sentence to
    show in place of the figures (which would repeat the contradiction as fact); None when nothing is.

    - a next billing time already past: "billing data from Fluence is out of date (next billing 2025-04-16)"
    - money spent but no next billing: "this VM has spent 0.59 USDC, but Fluence reports no next billing"

    VMs billed per second (today's API) have no epochs; an ended VM is billed no more, so neither rule
    applies to them."""
    if vm.billed_per_second or vm.status.is_ended:
        return None
    if _billing_out_of_date(vm, now):
        return f"billing data from Fluence is out of date (next billing {vm.next_billing_at:%Y-%m-%d})"
    if vm.next_billing_at is None and vm.total_spent is not None and vm.total_spent > 0:
        return f"this VM has spent {format_money(vm.total_spent)} USDC, but Fluence reports no next billing"
    return None
