"""What the pages may know of a key and of its VMs: value types, immutable, never holding a secret."""

from dataclasses import dataclass
from datetime import datetime

import msgspec

from vms.fluence.client import generation_label
from vms.fluence.models import Balance, Vm
from vms.permissions import OWNER, VIEWER, role_may_delete


@dataclass(frozen=True, slots=True)
class Account:
    """What the pages may know of a key: never its secret."""

    key_id: int
    label: str
    last_four: str
    owner_username: str
    base_url: str
    # The requesting person's role on this key: "owner", "operator" or "viewer" (the least, unless told).
    role: str = VIEWER
    generation: str = "baseline"
    last_used_at: datetime | None = None  # when a refresh last recorded that the key answered

    @property
    def generation_label(self) -> str:
        return generation_label(self.generation)

    @property
    def is_own(self) -> bool:
        return self.role == OWNER

    @property
    def can_delete(self) -> bool:
        return role_may_delete(self.role)


@dataclass(frozen=True, slots=True)
class AccountResult:
    account: Account
    vms: tuple[Vm, ...]
    fetched_at: datetime | None
    problem: str | None = None  # a clear sentence for the person, when the key or Fluence failed
    # "key", "rate_limited", "unavailable", "bad_response", "decrypt" or "not_allowed" (the allowlist)
    problem_kind: str | None = None
    unreadable: tuple[str, ...] = ()  # items of the answer that are not readable VMs, and why
    deleting: frozenset[str] = frozenset()  # ids (lowercase) of VMs whose deletion Fluence accepted
    notes: tuple[str, ...] = ()  # what the person should know about this account's list
    balance: Balance | None = None  # today's API: the account's prepaid balance
    switched_to: str | None = None  # Fluence retired the key's API path; it now speaks this generation
    # The person's other keys to the same Fluence account (same secret and base URL), listed through this one
    folded: tuple[Account, ...] = ()
    # The cache marker of the list shown, while that list is fresh (served from the cache or just stored):
    # vms.table_version checks a poll against it. None for old data, failures and keys never fetched.
    token: str | None = None

    @property
    def vms_with_unreadable_fields(self) -> tuple[Vm, ...]:
        return tuple(vm for vm in self.vms if vm.unreadable)

    @property
    def is_stale(self) -> bool:
        return self.problem is not None and self.fetched_at is not None


class VmRow(msgspec.Struct, frozen=True, gc=False):
    """A VM in the list of a person's VMs (a Struct: the list builds one per VM on every refresh)."""

    vm: Vm
    account: Account
    deleting: bool = False  # Fluence accepted a deletion; the VM is still listed until the provider is done


@dataclass(frozen=True, slots=True)
class VmListing:
    accounts: tuple[AccountResult, ...]
    rows: tuple[VmRow, ...]

    @property
    def problems(self) -> tuple[AccountResult, ...]:
        return tuple(result for result in self.accounts if result.problem)
