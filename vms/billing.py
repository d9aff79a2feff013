"""Billing arithmetic: epochs are 24 h, paid in advance, and not refunded when a VM is deleted."""

from dataclasses import dataclass
from datetime import datetime

from vms.fluence.models import EPOCH, Vm

EPOCH_SECONDS = int(EPOCH.total_seconds())


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


def epoch_progress(vm: Vm, now: datetime) -> EpochProgress | None:
    """Where the VM stands in its current paid epoch; None when Fluence gives no next billing time."""
    if vm.next_billing_at is None:
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
