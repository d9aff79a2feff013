"""A sandbox account: how its API behaves (its generation, paging, scopes, balance), its VMs, its caches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import data_b
from .generations import GENERATIONS

MAX_PER_PAGE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """How an account's API behaves, beyond its VMs."""

    generation: str
    page_base: int = 1  # the number of the first page of GET /v2/vms: Fluence does not document it
    max_per_page: int = 100
    read_only: bool = False  # a key without the vms:write scope
    balance: dict[str, Any] | None = None  # fields replacing the generated balance

    @classmethod
    def build(
        cls,
        *,
        generation: Any,
        page_base: Any = 1,
        max_per_page: Any = 100,
        read_only: Any = False,
        balance: Any = None,
    ) -> AccountOptions:
        """Validated options; ValueError on nonsense (the control API answers it with 400)."""
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {', '.join(GENERATIONS)}")
        if isinstance(page_base, bool) or page_base not in (0, 1):
            raise ValueError("page_base must be 0 or 1")
        if (
            isinstance(max_per_page, bool)
            or not isinstance(max_per_page, int)
            or not 1 <= max_per_page <= MAX_PER_PAGE_LIMIT
        ):
            raise ValueError(f"max_per_page must be an integer between 1 and {MAX_PER_PAGE_LIMIT}")
        if not isinstance(read_only, bool):
            raise ValueError("read_only must be true or false")
        if balance is not None:
            _check_balance(balance)
        return cls(generation, page_base, max_per_page, read_only, None if balance is None else dict(balance))


def _check_balance(balance: Any) -> None:
    if not isinstance(balance, dict):
        raise ValueError("balance must be an object")
    unknown = set(balance) - set(data_b.BALANCE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown balance field(s): {', '.join(sorted(unknown))}")
    for name, value in balance.items():
        if name == "usageDaysLeft":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError("usageDaysLeft must be null or a whole number of days")
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be a string")


class Account:
    __slots__ = ("by_id", "cache", "key", "next_event", "options", "revoked", "seed", "vms")

    def __init__(self, key: str, options: AccountOptions, *, seed: Any, revoked: bool = False):
        self.key = key
        self.options = options
        self.seed = seed
        self.revoked = revoked
        self.vms: list[Any] = []  # vmdata.VmRecord, or data_b.VmRecordB for generation B
        self.by_id: dict[str, Any] = {}
        self.cache: dict[Any, Any] = {}  # serialized answers and orderings, until something changes
        self.next_event: float | None = None

    @property
    def generation(self) -> str:
        return self.options.generation

    def set_vms(self, records: list[Any]) -> None:
        self.vms = records
        self.by_id = {r.id_lower: r for r in records}
        self.changed()

    def changed(self) -> None:
        self.cache.clear()
        events = [t for r in self.vms for t in r.event_times() if t is not None]
        self.next_event = min(events) if events else None
