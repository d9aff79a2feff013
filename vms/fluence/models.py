"""The normalised, immutable VM model and the parsers that read every documented variant of Fluence's JSON."""

from __future__ import annotations

import gc
import itertools
import re
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType
from msgspec import field as wire

from .errors import BadResponse
from .numbers import DECIMAL_TEXT, DECIMAL_TEXT_LIMIT, MONEY, QUANTITY, Bounds, bounded_decimal

EPOCH = timedelta(hours=24)

# A VM id: `0x` + 40 hex digits (the 2025 APIs), or a UUID (today's). VM_ID_PATTERN is unanchored, for
# URL patterns (vms.converters); the compiled ones match a whole string.
HEX_VM_ID_PATTERN = r"0x[0-9a-fA-F]{40}"
UUID_VM_ID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
VM_ID_PATTERN = f"{HEX_VM_ID_PATTERN}|{UUID_VM_ID_PATTERN}"
HEX_VM_ID_RE = re.compile(rf"\A{HEX_VM_ID_PATTERN}\Z")
UUID_VM_ID_RE = re.compile(rf"\A{UUID_VM_ID_PATTERN}\Z")
VM_ID_RE = re.compile(rf"\A(?:{VM_ID_PATTERN})\Z")

MICRO = 6  # USDC has 6 decimals; the baseline API counts money in micro-USDC.
# A micro-USDC amount as sent: MONEY once divided by a million, so a whole number of up to 18 digits.
_MICRO_MONEY = Bounds(below=MONEY.below.scaleb(MICRO), max_digits=MONEY.max_digits, max_decimals=0)
_MICRO_LIMIT = int(_MICRO_MONEY.below)
_MICRO_DIGITS = len(str(_MICRO_LIMIT))  # text of fewer digits is below the limit


def is_valid_vm_id(value: str) -> bool:
    """A Fluence VM id: `0x` + 40 hex digits (any case), or a UUID (generation B)."""
    return isinstance(value, str) and VM_ID_RE.match(value) is not None


# --- immutable containers ------------------------------------------------------------------------------


class FrozenDict(dict):
    """A read-only dict: immutable like a MappingProxyType, yet JSON-serialisable and picklable.

    It stays a dict subclass so that `json.dumps(vm.raw)` and Django's JSONField accept it as is
    (audit snapshots), and it pickles so that parsed VMs can sit in Django's cache.
    """

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("this mapping is read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


class FrozenList(list):
    """A read-only list, for the arrays inside upstream JSON: equal to the list it copies, JSON-ready."""

    __slots__ = ()

    def _refuse(self, *args, **kwargs):
        raise TypeError("this list is read-only")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):
        return (FrozenList, (list(self),))

    def __repr__(self) -> str:
        return f"FrozenList({list.__repr__(self)})"


_ATOMS = frozenset({str, int, float, bool, type(None)})


def freeze(value: object) -> object:
    """A deep, read-only copy of decoded JSON that still compares equal to it and serialises as JSON."""
    # Exact type checks first: this runs over every field of every VM, so it is on the hot path of a list.
    kind = type(value)
    if kind in _ATOMS or kind is FrozenDict or kind is FrozenList:
        return value  # already immutable: frozen parts are shared, never copied again
    if kind is dict or isinstance(value, dict):
        return FrozenDict(
            {
                key if type(key) is str else str(key): item if type(item) in _ATOMS else freeze(item)
                for key, item in value.items()
            }
        )
    if kind is list or isinstance(value, list | tuple):
        return FrozenList([item if type(item) in _ATOMS else freeze(item) for item in value])
    return value


def thaw(value: object) -> object:
    """The plain, mutable JSON form of a frozen value (dicts and lists), e.g. to store a snapshot."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    return value


EMPTY = FrozenDict()


# --- status --------------------------------------------------------------------------------------------


class StatusClass(StrEnum):
    OK = "ok"
    TRANSITIONAL = "transitional"
    ATTENTION = "attention"
    ENDED = "ended"
    UNKNOWN = "unknown"


# key (lowercase, "_" removed) -> (label, class). Baseline/generation A spellings and generation B ones.
_STATUSES: dict[str, tuple[str, StatusClass]] = {
    "active": ("Active", StatusClass.OK),
    "launched": ("Launched", StatusClass.OK),
    "new": ("New", StatusClass.TRANSITIONAL),
    "launching": ("Launching", StatusClass.TRANSITIONAL),
    "updating": ("Updating", StatusClass.TRANSITIONAL),
    "restarting": ("Restarting", StatusClass.TRANSITIONAL),
    "softrebooting": ("Soft rebooting", StatusClass.TRANSITIONAL),
    "terminating": ("Terminating", StatusClass.TRANSITIONAL),
    "suspending": ("Suspending", StatusClass.TRANSITIONAL),
    "smallbalance": ("Small balance", StatusClass.ATTENTION),
    "insufficientfunds": ("Insufficient funds", StatusClass.ATTENTION),
    "suspended": ("Suspended", StatusClass.ATTENTION),
    "terminated": ("Terminated", StatusClass.ENDED),
    "stopped": ("Stopped", StatusClass.ENDED),
    "failed": ("Failed", StatusClass.ENDED),
}


def normalise_status(raw: str) -> str:
    """`SMALL_BALANCE`, `SmallBalance` and `smallbalance` are one status: compare on this key."""
    return raw.strip().replace("_", "").replace("-", "").replace(" ", "").lower()


class Status:
    """An operational status as Fluence spelled it (`raw`) and its normalised `key`.

    `key` is always derived from `raw`, so `Status("SMALL_BALANCE")` is enough to build one. A plain
    immutable class rather than a dataclass: the fast decoder (vms.fluence.decoding) builds it from a JSON
    string, which it does for classes it does not know, not for dataclasses.
    """

    __slots__ = ("css_class", "is_ended", "is_transitional", "key", "label", "needs_attention", "raw")

    def __init__(self, raw: str, key: str = "") -> None:
        # Everything a page asks of a status is worked out once: lists ask it of every VM on every refresh.
        key = normalise_status(raw)
        label, css_class = _STATUSES.get(key) or (raw.strip() or "Unknown", StatusClass.UNKNOWN)
        for name, value in (
            ("raw", raw),
            ("key", key),
            ("label", label),
            ("css_class", css_class),
            ("is_transitional", css_class is StatusClass.TRANSITIONAL),
            ("needs_attention", css_class is StatusClass.ATTENTION),
            ("is_ended", css_class is StatusClass.ENDED),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("a Status is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is Status and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Status(raw={self.raw!r}, key={self.key!r})"

    def __reduce__(self):
        return (Status, (self.raw,))

    def __str__(self) -> str:
        return self.label


# --- values ----------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"\A[0-9]+\Z")


class OutOfRange(ValueError):
    """A well-formed number beyond what the portal accepts (numbers.MONEY, numbers.QUANTITY)."""


def parse_money(value: object, *, micro_if_integer: bool = True) -> Decimal:
    """A USDC amount as a Decimal, never a float.

    The API has sent money in two forms, told apart by their shape:
    - an integer, or a string of digits only (baseline `reservedBalance`/`totalSpent`: "359440"),
      is micro-USDC when `micro_if_integer` (the baseline): 298160 -> 0.298160;
    - a string with a "." ("2.4352", ".30697") is already USDC (generation A and later).
    The parsers pass `micro_if_integer=False` for generation A's balances and for USD amounts, so a
    whole number there ("5") is read as it is.
    bool, float, NaN, infinity, exponents, non-ASCII digits and anything else raise ValueError; an amount
    beyond numbers.MONEY (a trillion, 18 significant digits or decimals) raises OutOfRange.
    """
    kind = type(value)
    if micro_if_integer and (
        (kind is int and -_MICRO_LIMIT < value < _MICRO_LIMIT)
        or (kind is str and 0 < len(value) < _MICRO_DIGITS and value.isascii() and value.isdigit())
    ):
        return Decimal(value).scaleb(-MICRO)  # the common case: within MONEY by its length alone
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an amount of money: {type(value).__name__}")
    if isinstance(value, str) and (len(value) > DECIMAL_TEXT_LIMIT or not DECIMAL_TEXT.match(value)):
        raise ValueError("not a decimal amount of money")
    micro = micro_if_integer and (isinstance(value, int) or _DIGITS.match(value) is not None)
    amount = bounded_decimal(value, _MICRO_MONEY if micro else MONEY)
    if amount is None:
        raise OutOfRange("an amount of money beyond any plausible one")
    return amount.scaleb(-MICRO) if micro else amount  # at most 18 digits: exact


_TIMESTAMP = re.compile(
    r"\A(?P<year>[+-]\d{6}|\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:?\d{2})\Z"
)
_MIN_YEAR, _MAX_YEAR = (
    1900,
    9000,
)  # far from datetime's limits, so that arithmetic on the result never overflows


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime from Fluence's expanded-year form (`+002025-04-01T16:50:57.000000000Z`)
    or RFC 3339 (`2025-04-01T16:50:57Z`, `+00:00` offsets, up to 9 fractional digits).

    ValueError otherwise.
    """
    if not isinstance(value, str):
        raise ValueError("a timestamp must be a string")
    match = _TIMESTAMP.match(value)
    if not match:
        raise ValueError("not an ISO 8601 timestamp")
    year = int(match["year"])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError("timestamp year out of range")
    text = value[3:] if value[0] == "+" else value  # an expanded year in range is "+00" and four digits
    if match["zone"] == "Z" and text[10] == "T":
        # The common case, in C: the pattern has vouched for the text, and fromisoformat reads the
        # fraction to the microsecond.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # a leap second, or a date that does not exist: the long way decides
    # Python keeps microseconds: the nanoseconds Fluence sends are truncated.
    microsecond = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    zone = match["zone"]
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError("invalid UTC offset")
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    second = int(match["second"])
    if second == 60:  # a leap second: RFC 3339 allows it, datetime does not
        second = 59
    local = datetime(
        year,
        int(match["month"]),
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        second,
        microsecond,
        tzinfo=UTC,
    )
    return local - offset


def parse_quantity(value: object) -> Decimal | None:
    """A resource quantity: an integer, a decimal string ("4096"), or a finite number.

    ValueError when it is none of these; OutOfRange beyond numbers.QUANTITY (10^12, 9 decimals)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("a quantity cannot be a boolean")
    if isinstance(value, float):
        # A quantity (cores, MiB) is not money: a float is acceptable once made exact.
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a quantity must be finite")
    elif isinstance(value, str):
        value = value.strip()
        if len(value) > DECIMAL_TEXT_LIMIT or not DECIMAL_TEXT.match(value):
            raise ValueError("not a decimal quantity")
    elif not isinstance(value, int):
        raise ValueError(f"not a quantity: {type(value).__name__}")
    quantity = bounded_decimal(value, QUANTITY)
    if quantity is None:
        raise OutOfRange("a quantity beyond any plausible one")
    return quantity


# --- resources, datacenter, ports ------------------------------------------------------------------------

# How many MiB one unit is. The docs call RAM and storage "MB" while meaning MiB (4096 = 4 GiB), so MB and
# GB are read as MiB and GiB, as the docs intend.
_MIB_PER_UNIT: dict[str, Decimal] = {
    "kib": Decimal(1) / Decimal(1024),
    "kb": Decimal(1) / Decimal(1024),
    "mib": Decimal(1),
    "mb": Decimal(1),
    "gib": Decimal(1024),
    "gb": Decimal(1024),
    "tib": Decimal(1024 * 1024),
    "tb": Decimal(1024 * 1024),
}
MEMORY_TYPES = frozenset({"RAM", "STORAGE"})


# --- values as the fast decoder reads them ----------------------------------------------------------------
# vms.fluence.decoding decodes a well-formed list straight into the classes below (msgspec, in C). The types
# of their fields say what it accepts: a constraint (`Meta`) where the library can check it, and one of
# these classes where a value needs the portal's own reading; the decoding hook builds them with the same
# functions the tolerant parsers use. A value in any other form is not guessed at: that list is read by the
# tolerant parsers below, field by field, into equal values.


class EpochPrice(Decimal):
    """`pricePerEpoch` of the 2025 APIs: an integer is micro-USDC (the baseline), text is USDC."""

    __slots__ = ()


class Amount(Decimal):
    """An amount already in its unit (USDC of generation A, USD of today's API)."""

    __slots__ = ()


class Gigabytes(Decimal):
    """A non-negative number of (decimal) gigabytes."""

    __slots__ = ()


# Text in the one spelling the parsers would produce from it: anything else (padding, other case) is left
# to them.
_TEXT = Annotated[str, Meta(min_length=1)]
_TRIMMED = Annotated[str, Meta(pattern=r"\A\S(?:.*\S)?\Z")]
# A country (ISO 3166, two letters) and a city (UN/LOCODE, three) as every code of that many capitals, a set
# the decoder looks up: two regular expressions per VM cost more than the rest of its datacenter. Another
# spelling (lower case, padding, digits) goes the long way, which reads it as `_code` does.
_COUNTRY_CODE = Literal[tuple(["", *map("".join, itertools.product(string.ascii_uppercase, repeat=2))])]
_CITY_CODE = Literal[tuple(["", *map("".join, itertools.product(string.ascii_uppercase, repeat=3))])]
# The documented resource types and port protocols, as a set the decoder looks up (a pattern would cost a
# regular expression per resource); another type or spelling goes the long way.
_RESOURCE_TYPE = Literal["VCPU", "RAM", "STORAGE", "PUBLIC_IP", "NETWORK_BANDWIDTH", "GPU"]
_PROTOCOL = Literal["tcp", "udp", "sctp"]
_VM_ID = Annotated[str, Meta(pattern=rf"\A(?:{VM_ID_PATTERN})\Z")]
_COUNT = Annotated[int, Meta(gt=-int(QUANTITY.below), lt=int(QUANTITY.below))]
# A timestamp and a quantity are kept as sent and read when asked for (most are never shown: a page shows
# 50 rows). What the decoder accepts here, parse_timestamp and parse_quantity always read: UTC ("Z"), years
# 1900-9000, days that every year has (a 29 February, a leap second, an offset go the long way); a whole
# number or plain decimal text within numbers.QUANTITY.
_YEAR = r"(?:\+00)?(?:19[0-9]{2}|[2-8][0-9]{3}|9000)"
_MONTH_DAY = (
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
)
_CLOCK = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
_TIMESTAMP_TEXT = Annotated[str, Meta(pattern=rf"\A{_YEAR}-{_MONTH_DAY}{_CLOCK}\Z")]
# A balance kept as sent and read when asked for (most are never shown): what the decoder accepts here,
# parse_money reads within numbers.MONEY. Baseline: integers and digit-only text are micro-USDC.
_MICRO_BALANCE_VALUE = (
    Annotated[int, Meta(gt=-int(_MICRO_MONEY.below), lt=int(_MICRO_MONEY.below))]
    | Annotated[str, Meta(pattern=r"\A(?:[0-9]{1,18}|-?[0-9]{1,12}\.[0-9]{1,6})\Z")]
    | None
)
_BALANCE_VALUE = (
    Annotated[int, Meta(gt=-int(MONEY.below), lt=int(MONEY.below))]
    | Annotated[str, Meta(pattern=r"\A-?[0-9]{1,12}(?:\.[0-9]{1,6})?\Z")]
    | None
)
_QUANTITY_VALUE = (
    _COUNT | Annotated[str, Meta(pattern=r"\A-?[0-9]{1,9}(?:\.[0-9]{1,9})?\Z")] | UnsetType | None
)


def _not_on_the_wire(name: str) -> str:
    """The JSON name of a field that no generation reads under its Python name: one Fluence never sends."""
    return f"-{name}"


@lru_cache(maxsize=4096, typed=True)
def _quantity_of(value: int | float | str) -> Decimal:
    """A quantity as sent, once read (a parser has checked it: it reads)."""
    return parse_quantity(value)


@lru_cache(maxsize=4096, typed=True)
def _balance_of(value: int | str | None, micro: bool) -> Decimal | None:
    """A balance as sent, once read (a parser has checked it: it reads); `micro` in the baseline."""
    return None if value is None else parse_money(value, micro_if_integer=micro)


@lru_cache(maxsize=16384)
def _instant(text: str | None) -> datetime | None:
    """A timestamp as sent, read (a parser has checked it: it reads). A page reads a row's times several
    times, and the same VMs on every refresh: each text is read once."""
    return None if text is None else parse_timestamp(text)


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """A resource and its free-form hardware facts, read-only; empty when Fluence sent none, or anything
    but an object."""

    resource: Resource
    metadata: Mapping[str, object]
    details: Mapping[str, object]


def _facts(value: object) -> Mapping[str, object]:
    return freeze(value) if isinstance(value, dict) else EMPTY


class Resource(Struct, frozen=True, gc=False):
    """One allocated resource. `unit` is None for the baseline `quantity` form (RAM/STORAGE then in MiB)."""

    type: _RESOURCE_TYPE
    # The amount as Fluence sent it: `quantity` (the baseline) or `supply` (later versions, with `units`);
    # `supply` wins when both are there. Read `quantity`.
    quantity_sent: _QUANTITY_VALUE = wire(default=UNSET, name="quantity")
    unit: _TRIMMED | None = wire(default=None, name="units")
    supply_sent: _QUANTITY_VALUE = wire(default=UNSET, name="supply")
    # `details` and `metadata` (free-form hardware facts) are not kept here: only a VM's page shows them,
    # and it reads them from the VM's own JSON (Vm.resource_facts). Read for every VM of every list, they
    # were a third of the list's parse and of its freeing.

    @property
    def quantity(self) -> Decimal | None:
        amount = self.quantity_sent if self.supply_sent is UNSET else self.supply_sent
        if amount is UNSET or amount is None or isinstance(amount, Decimal):  # a Decimal: built in code
            return None if amount is UNSET else amount
        return _quantity_of(amount)

    @property
    def mebibytes(self) -> Decimal | None:
        """RAM or storage size in MiB, whichever form Fluence used; None for other types or unknown units."""
        quantity = self.quantity
        if self.type not in MEMORY_TYPES or quantity is None:
            return None
        if self.unit is None:
            return quantity
        factor = _MIB_PER_UNIT.get(self.unit.strip().lower())
        return None if factor is None else quantity * factor


class Datacenter(Struct, frozen=True, gc=False, kw_only=True):
    id: str = ""
    country_code: _COUNTRY_CODE = wire(default="", name="countryCode")
    city_code: _CITY_CODE = wire(default="", name="cityCode")
    city_index: int | None = wire(default=None, name="cityIndex")
    tier: int | None = None
    certifications: tuple[str, ...] = ()


class Port(Struct, frozen=True, gc=False):
    port: Annotated[int, Meta(ge=0, le=65535)]
    protocol: _PROTOCOL = "tcp"


# --- the VM ----------------------------------------------------------------------------------------------


class Unreadable(Struct, frozen=True, gc=False):
    """One field of a VM that Fluence sent in a form the portal cannot read: the VM is still shown."""

    field: str
    reason: str


USDC, USD = "USDC", "USD"
HOURS_PER_MONTH = Decimal(730)  # Fluence's own month: priceMonthlyUsd = priceHourlyUsd x 730
HOURS_PER_EPOCH = Decimal(24)
_GB_IN_MIB = Decimal(1000**3) / Decimal(1024**2)


def month_of(daily: Decimal) -> Decimal:
    """A day's cost (or a sum of them) over a month of 730 hours."""
    return daily / HOURS_PER_EPOCH * HOURS_PER_MONTH  # generation B counts RAM in decimal gigabytes


class ListJson:
    """A list answer's bytes, whose items (each VM's own JSON) are found the first time one is asked for:
    most VMs of a list are never shown whole."""

    __slots__ = ("_items", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._items: list[Raw] | None = None

    def item(self, index: int) -> Raw:
        if self._items is None:
            self._items = msgspec.json.decode(self.body, type=list[Raw])
        return self._items[index]

    def __reduce__(self):
        return (ListJson, (self.body,))

    def __eq__(self, other: object) -> bool:  # the same answer, read twice, is the same answer
        return type(other) is ListJson and other.body == self.body

    def __hash__(self) -> int:
        return hash(self.body)


_NO_STATUS = Status("")


class Vm(Struct, frozen=True, gc=False, kw_only=True, rename=_not_on_the_wire):
    """One VM of any API generation. Only `id` is certain: any other field Fluence sent unreadably is
    None (or empty) and named in `unreadable`.

    A VM is one of the subclasses below, which say where each field is in a generation's JSON (for the
    fast decoder); both the decoder and the tolerant parsers build those."""

    id: str
    name: str | None = None
    status: Status = _NO_STATUS
    price_per_epoch: Decimal | None = None  # USDC per 24 h epoch (the 2025 APIs)
    # As sent (see _MICRO_BALANCE_VALUE), read by `reserved_balance` and `total_spent`.
    reserved_balance_sent: int | str | None = None
    total_spent_sent: int | str | None = None
    created_at_sent: str | None = None
    next_billing_at_sent: str | None = None
    os_image: str | None = None
    datacenter: Datacenter | None = None
    public_ip: str | None = None
    ports: tuple[Port, ...] = ()
    resources: tuple[Resource, ...] = ()
    generation: str = "baseline"  # which API it came from: "baseline", "a" or "b"
    unreadable: tuple[Unreadable, ...] = ()
    # Generation B (today's API): billed per second in USD; plan and lifecycle as separate fields.
    price_hourly_usd: Decimal | None = None
    price_monthly_usd: Decimal | None = None
    vcpu_count: int | None = None
    ram_gb: Decimal | None = None  # decimal gigabytes
    storage_gb: Decimal | None = None  # the boot disk's size, when Fluence expanded it
    configuration_name: str | None = None
    cluster_id: str | None = None
    allowed_actions: tuple[str, ...] | None = None  # None: the API does not say (every action is offered)
    restart_required: bool | None = None
    updated_at_sent: str | None = None
    ready_since_sent: str | None = None
    last_paid_at_sent: str | None = None
    paid_until_sent: str | None = None
    terminated_at_sent: str | None = None
    public_ip_id: str | None = None
    boot_disk: str | None = None
    data_disks: tuple[str, ...] = ()
    # Fluence's own object for this VM: the decoded object, its bytes (a msgspec Raw), or where they are in
    # a list answer ((ListJson, index)); the last two are decoded when asked for. Read it through `raw`.
    _source: object = wire(default_factory=lambda: EMPTY)

    def __hash__(self) -> int:  # its JSON is not hashable: equal VMs share their class and id
        return hash((type(self), self.id))

    # Times as sent (see _TIMESTAMP_TEXT), read when asked for.
    created_at = property(lambda self: _instant(self.created_at_sent))
    next_billing_at = property(lambda self: _instant(self.next_billing_at_sent))
    updated_at = property(lambda self: _instant(self.updated_at_sent))
    ready_since = property(lambda self: _instant(self.ready_since_sent))
    last_paid_at = property(lambda self: _instant(self.last_paid_at_sent))
    paid_until = property(lambda self: _instant(self.paid_until_sent))
    terminated_at = property(lambda self: _instant(self.terminated_at_sent))

    @property
    def reserved_balance(self) -> Decimal | None:
        return _balance_of(self.reserved_balance_sent, self.generation == "baseline")

    @property
    def total_spent(self) -> Decimal | None:
        return _balance_of(self.total_spent_sent, self.generation == "baseline")

    @property
    def raw(self) -> Mapping[str, object]:
        """Fluence's own object for this VM, read-only (unknown fields included)."""
        source = self._source
        if type(source) is tuple:  # (ListJson, index): the item of a list answer, found when asked for
            answer, index = source
            source = answer.item(index)
        if type(source) is Raw:
            return freeze(msgspec.json.decode(source))
        return freeze(source)

    @property
    def key(self) -> str:
        """The id for comparisons: Fluence ids are case-insensitive."""
        return self.id.lower()

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def _resources(self, type_: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.type == type_]

    @property
    def currency(self) -> str:
        return USD if self.generation == "b" else USDC

    @property
    def billed_per_second(self) -> bool:
        return self.generation == "b"

    @property
    def cost_per_day(self) -> Decimal | None:
        """What a day of this VM costs in its own currency (USDC per epoch, or USD from the hourly price)."""
        if self.generation != "b":
            return self.price_per_epoch
        if self.price_hourly_usd is not None:
            return self.price_hourly_usd * HOURS_PER_EPOCH
        if self.price_monthly_usd is not None:
            return self.price_monthly_usd / HOURS_PER_MONTH * HOURS_PER_EPOCH
        return None

    @property
    def cost_per_month(self) -> Decimal | None:
        """A month of 730 hours, as Fluence counts one, in the VM's own currency."""
        if (priced := self.month_price) is not None:
            return priced
        daily = self.cost_per_day
        return None if daily is None else month_of(daily)

    @property
    def month_price(self) -> Decimal | None:
        """A month's price as Fluence set it (today's API); None where a month is a day's cost scaled."""
        return self.price_monthly_usd if self.generation == "b" else None

    @property
    def resource_facts(self) -> tuple[ResourceFacts, ...]:
        """Each readable resource with its hardware facts, read from the VM's own JSON (for its page): the
        items of `resources` that read as a resource, in order, as both parsers list them."""
        items = self.raw.get("resources")
        shown = []
        for item in items if isinstance(items, list) else ():
            try:
                resource = parse_resource(item)
            except BadResponse:
                continue  # left out of `resources` too, and named in `unreadable`
            shown.append(ResourceFacts(resource, _facts(item.get("metadata")), _facts(item.get("details"))))
        return tuple(shown)

    def unreadable_field(self, *names: str) -> Unreadable | None:
        """The first of these fields (or a field inside one: "datacenter" covers "datacenter.tier") that
        could not be read; None when every one of them could."""
        for item in self.unreadable:
            for name in names:
                if item.field == name or item.field.startswith(name + "."):
                    return item
        return None

    def unreadable_reason(self, *names: str) -> str | None:
        item = self.unreadable_field(*names)
        return None if item is None else item.reason

    def field_unreadable(self, name: str) -> bool:
        return self.unreadable_field(name) is not None

    @property
    def termination_accepted(self) -> bool:
        """Today's API keeps a VM listed once it is terminating or terminated: for a deletion, that is gone.
        (The 2025 APIs' "Terminated" is the provider ending a VM that still awaits its deletion.)"""
        return self.generation == "b" and self.status.key in ("terminating", "terminated")

    @property
    def can_terminate(self) -> bool:
        """Whether Fluence accepts a deletion now: generation B says so per VM; the 2025 APIs always do."""
        return self.allowed_actions is None or "terminate" in self.allowed_actions

    @property
    def vcpu(self) -> int | None:
        if self.vcpu_count is not None:
            return self.vcpu_count
        quantities = [r.quantity for r in self._resources("VCPU") if r.quantity is not None]
        return int(sum(quantities)) if quantities else None

    def _mebibytes(self, type_: str) -> Decimal | None:
        sizes = [r.mebibytes for r in self._resources(type_)]
        if not sizes or any(size is None for size in sizes):
            return None
        return sum(sizes, Decimal(0))

    @property
    def ram_mib(self) -> Decimal | None:
        if self.ram_gb is not None:
            return self.ram_gb * _GB_IN_MIB
        return self._mebibytes("RAM")

    @property
    def storage_mib(self) -> Decimal | None:
        if self.storage_gb is not None:
            return self.storage_gb * _GB_IN_MIB
        return self._mebibytes("STORAGE")

    @property
    def public_ip_count(self) -> int:
        quantities = [r.quantity for r in self._resources("PUBLIC_IP") if r.quantity is not None]
        if quantities:
            return int(sum(quantities))
        return 1 if self.public_ip else 0

    @property
    def os_image_name(self) -> str | None:
        """The file name of the OS image URL (`ubuntu-22.04-server-cloudimg-amd64.img`)."""
        if not self.os_image:
            return None
        path = urlsplit(self.os_image).path if "://" in self.os_image else self.os_image
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return name or self.os_image

    @property
    def epoch_started_at(self) -> datetime | None:
        """Epochs are paid in advance: the current one began 24 h before the next billing."""
        return self.next_billing_at - EPOCH if self.next_billing_at else None

    def raw_snapshot(self) -> dict:
        """The upstream object as plain JSON-ready dicts and lists (for an audit row)."""
        try:
            return thaw(self.raw)
        except (RecursionError, msgspec.DecodeError):
            return {"id": self.id, "unreadable": "Fluence's object for this VM is nested too deeply to keep"}


class VmBaseline(Vm, frozen=True, gc=False, kw_only=True):
    """A VM of the baseline API (`GET /vms/v2`), and where each field is in its JSON."""

    id: _VM_ID = wire(name="id")
    name: _TEXT | None = wire(default=None, name="vmName")
    status: Status = wire(default=_NO_STATUS, name="status")
    # Required: a VM without it is missing its price, which the tolerant parser says.
    price_per_epoch: EpochPrice | None = wire(name="pricePerEpoch")
    reserved_balance_sent: _MICRO_BALANCE_VALUE = wire(default=None, name="reservedBalance")
    total_spent_sent: _MICRO_BALANCE_VALUE = wire(default=None, name="totalSpent")
    created_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="createdAt")
    next_billing_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="nextBillingAt")
    os_image: _TEXT | None = wire(default=None, name="osImage")
    datacenter: Datacenter | None = wire(default=None, name="datacenter")
    public_ip: _TEXT | None = wire(default=None, name="publicIp")
    ports: tuple[Port, ...] = wire(default=(), name="ports")
    resources: tuple[Resource, ...] = wire(default=(), name="resources")
    generation: str = wire(default="baseline", name="-generation")


class VmA(VmBaseline, frozen=True, gc=False, kw_only=True):
    """A VM of generation A (`GET /vms/v3`): the baseline's shape, balances in USDC."""

    reserved_balance_sent: _BALANCE_VALUE = wire(default=None, name="reservedBalance")
    total_spent_sent: _BALANCE_VALUE = wire(default=None, name="totalSpent")
    generation: str = wire(default="a", name="-generation")


class ExpandedIp(Struct, frozen=True, gc=False):
    address: _TEXT | None = None


class ExpandedDisk(Struct, frozen=True, gc=False):
    volumeGb: Gigabytes | None = None


class Expanded(Struct, frozen=True, gc=False):
    """What `expand[0]=publicIp&expand[1]=bootDisk` adds to a VM of today's API."""

    publicIp: ExpandedIp | None = None
    bootDisk: ExpandedDisk | None = None


class VmB(Vm, frozen=True, gc=False, kw_only=True):
    """A VM of today's API (`GET /v2/vms`). The decoder leaves `public_ip`, `storage_gb` and `datacenter`
    to be filled from `expanded_sent` and the account's locations (decoding.finish_b)."""

    id: _VM_ID = wire(name="id")
    name: _TEXT | None = wire(default=None, name="name")
    status: Status = wire(default=_NO_STATUS, name="status")
    created_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="createdAt")
    generation: str = wire(default="b", name="-generation")
    price_hourly_usd: Amount | None = wire(default=None, name="priceHourlyUsd")
    price_monthly_usd: Amount | None = wire(default=None, name="priceMonthlyUsd")
    vcpu_count: _COUNT | None = wire(default=None, name="vcpu")
    ram_gb: Gigabytes | None = wire(default=None, name="ramGb")
    configuration_name: _TEXT | None = wire(default=None, name="configurationName")
    cluster_id: str | None = wire(default=None, name="clusterId")
    allowed_actions: tuple[str, ...] = wire(default=(), name="allowedActions")
    restart_required: bool | None = wire(default=None, name="restartRequired")
    updated_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="updatedAt")
    ready_since_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="readySince")
    last_paid_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="lastPaidAt")
    paid_until_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="paidUntil")
    terminated_at_sent: _TIMESTAMP_TEXT | None = wire(default=None, name="terminatedAt")
    public_ip_id: _TEXT | None = wire(default=None, name="publicIp")
    boot_disk: _TEXT | None = wire(default=None, name="bootDisk")
    data_disks: tuple[str, ...] = wire(default=(), name="dataDisks")
    expanded_sent: Expanded | None = wire(default=None, name="expanded")


VM_CLASSES: dict[str, type[Vm]] = {"baseline": VmBaseline, "a": VmA, "b": VmB}


# --- parsers ---------------------------------------------------------------------------------------------


def _bad(message: str) -> BadResponse:
    return BadResponse(message)


def _optional_str(obj: Mapping, name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"the field {name!r} is not text")
    return value


def _optional_int(obj: Mapping, name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"the field {name!r} is not an integer")
    return value


def _optional_count(obj: Mapping, name: str) -> int | None:
    """An optional count of a resource (generation B's `vcpu`), an integer within numbers.QUANTITY."""
    value = _optional_int(obj, name)
    if value is not None and not abs(value) < QUANTITY.below:
        raise _bad(_implausible(name))
    return value


def _implausible(name: str) -> str:
    return f"the field {name!r} is beyond any plausible value"


def _list_of_objects(obj: Mapping, name: str) -> list[dict]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _bad(f"the field {name!r} is not a list of objects")
    return value


def _money(obj: Mapping, name: str, *, required: bool, micro_if_integer: bool = True) -> Decimal | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _bad(f"the field {name!r} is missing")
        return None
    try:
        return parse_money(value, micro_if_integer=micro_if_integer)
    except OutOfRange:
        raise _bad(_implausible(name)) from None
    except ValueError:
        raise _bad(f"the field {name!r} is not an amount of money") from None


def _timestamp_text(obj: Mapping, name: str) -> str | None:
    """A timestamp as sent, once parse_timestamp has read it."""
    value = obj.get(name)
    if value is None:
        return None
    try:
        parse_timestamp(value)
    except ValueError:
        raise _bad(f"the field {name!r} is not a valid timestamp") from None
    return value


def parse_resource(obj: object) -> Resource:
    """One resource (its `details` and `metadata`: see Vm.resource_facts)."""
    if not isinstance(obj, dict):
        raise _bad("a resource is not an object")
    type_ = obj.get("type")
    if not isinstance(type_, str) or not type_.strip():
        raise _bad("a resource has no type")
    # Two shapes: baseline `quantity` (RAM/STORAGE in MiB), later `supply` + `units`; `supply` wins.
    units = _optional_str(obj, "units")
    chosen = "supply" if "supply" in obj else "quantity"
    sent: dict[str, object] = {}
    for name in ("quantity", "supply"):
        if name not in obj:
            continue
        try:
            parse_quantity(obj[name])
            sent[name] = obj[name]  # kept as sent, like the decoder keeps it (Resource.quantity reads it)
        except OutOfRange:
            if name == chosen:
                raise _bad(f"the {type_[:40]!r} resource has a quantity beyond any plausible one") from None
        except ValueError:
            if name == chosen:
                raise _bad(f"the {type_[:40]!r} resource has an unreadable quantity") from None
    return Resource(
        type=type_.strip().upper(),
        quantity_sent=sent.get("quantity", UNSET),
        supply_sent=sent.get("supply", UNSET),
        unit=units.strip() if units and units.strip() else None,
    )


class _Reader:
    """Reads the fields of one object, noting each field it cannot read instead of giving up on the whole:
    a VM with one odd field still costs money and must stay visible and deletable."""

    __slots__ = ("obj", "prefix", "problems")

    def __init__(self, obj: Mapping, problems: list[Unreadable], prefix: str = "") -> None:
        self.obj = obj
        self.problems = problems
        self.prefix = prefix

    def __call__(self, parse, name: str, default=None):
        # No keyword options here: this runs for every field of every VM, and packing them costs.
        try:
            return parse(self.obj, name)
        except BadResponse as error:
            self.note(name, error.detail)
            return default

    def note(self, name: str, reason: str | None) -> None:
        self.problems.append(Unreadable(self.prefix + name, reason or "unreadable"))

    def each(self, name: str, parse) -> tuple:
        """The readable items of a list field; an unreadable item is left out and the field noted."""
        try:
            items = _list_of_objects(self.obj, name)
        except BadResponse as error:
            self.note(name, error.detail)
            return ()
        parsed = []
        for item in items:
            try:
                parsed.append(parse(item))
            except BadResponse as error:
                self.note(name, error.detail)
        return tuple(parsed)


def _certifications(obj: Mapping, name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad("the datacenter certifications are not a list of text")
    return tuple(value)


def _code(obj: Mapping, name: str) -> str:
    return (_optional_str(obj, name) or "").strip().upper()


def parse_datacenter(obj: object, problems: list[Unreadable] | None = None, *, index_field="cityIndex"):
    """A datacenter; a field it cannot read is noted in `problems` (BadResponse when none is given)."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise _bad("the datacenter is not an object")
    noted: list[Unreadable] = [] if problems is None else problems
    read = _Reader(obj, noted, "datacenter.")
    datacenter = Datacenter(
        id=read(_optional_str, "id") or "",
        country_code=read(_code, "countryCode", ""),
        city_code=read(_code, "cityCode", ""),
        city_index=read(_optional_int, index_field),
        tier=read(_optional_int, "tier"),
        certifications=read(_certifications, "certifications", ()),
    )
    if problems is None and noted:
        raise _bad(noted[0].reason)
    return datacenter


def parse_port(obj: object) -> Port:
    if not isinstance(obj, dict):
        raise _bad("a port is not an object")
    number = obj.get("port")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
        raise _bad("a port number is not valid")
    protocol = _optional_str(obj, "protocol") or "tcp"
    return Port(port=number, protocol=protocol.strip().lower())


# The top-level fields of Fluence's VM objects that the parsers below read (every generation): what an
# audit snapshot keeps when it has to cut the rest.
VM_KNOWN_FIELDS = frozenset(
    {
        "id",
        "name",
        "vmName",
        "status",
        "allowedActions",
        "pricePerEpoch",
        "priceHourlyUsd",
        "priceMonthlyUsd",
        "reservedBalance",
        "totalSpent",
        "createdAt",
        "updatedAt",
        "readySince",
        "nextBillingAt",
        "lastPaidAt",
        "paidUntil",
        "terminatedAt",
        "restartRequired",
        "osImage",
        "configurationName",
        "vcpu",
        "ramGb",
        "resources",
        "ports",
        "datacenter",
        "clusterId",
        "publicIp",
        "bootDisk",
        "dataDisks",
        "expanded",
    }
)


def parse_vm(obj: object, *, generation: str = "baseline", locations: Mapping | None = None) -> Vm:
    """One VM from its upstream JSON object; BadResponse only when it is no VM at all (no usable id).

    The VM keeps a read-only copy of `obj`: the caller may go on changing its own.
    """
    if not isinstance(obj, dict):
        raise _bad("a VM is not an object")
    try:
        return _PARSERS[generation](freeze(obj), locations or EMPTY)
    except RecursionError:
        raise _bad("a VM is nested too deeply") from None


@lru_cache(maxsize=512)
def status_of(raw: str) -> Status:
    """Statuses are few and immutable: one shared instance per spelling."""
    return Status(raw)


def _vm_id(obj: Mapping) -> str:
    vm_id = obj.get("id")
    if type(vm_id) is not str or not is_valid_vm_id(vm_id):
        raise _bad("a VM has a missing or malformed id")
    return vm_id


def _price(obj: Mapping, name: str) -> Decimal | None:
    # pricePerEpoch: an integer is micro-USDC (baseline); a string is a decimal USDC amount (later versions).
    return _money(obj, name, required=False, micro_if_integer=type(obj.get(name)) is not str)


def _parse_2025_vm(obj: Mapping, locations: Mapping, generation: str = "baseline") -> Vm:
    """A VM of the 2025 APIs (the baseline and generation A share one shape, told apart field by field)."""
    vm_id = _vm_id(obj)
    problems: list[Unreadable] = []
    read = _Reader(obj, problems)
    price_per_epoch = read(_price, "pricePerEpoch")
    if price_per_epoch is None and "pricePerEpoch" not in obj:
        read.note("pricePerEpoch", "the field 'pricePerEpoch' is missing")
    # Balances: digit-only strings are micro-USDC in the baseline only; generation A sends USDC.
    balance = _balance_as_sent(_micro_amount if generation == "baseline" else _amount)
    try:
        datacenter = parse_datacenter(obj.get("datacenter"), problems)
    except BadResponse as error:
        read.note("datacenter", error.detail)
        datacenter = None
    return VM_CLASSES[generation](
        id=vm_id,
        name=read(_optional_str, "vmName") or None,
        status=status_of(read(_optional_str, "status") or ""),
        price_per_epoch=price_per_epoch,
        reserved_balance_sent=read(balance, "reservedBalance"),
        total_spent_sent=read(balance, "totalSpent"),
        created_at_sent=read(_timestamp_text, "createdAt"),
        next_billing_at_sent=read(_timestamp_text, "nextBillingAt"),
        os_image=read(_optional_str, "osImage") or None,
        datacenter=datacenter,
        public_ip=read(_optional_str, "publicIp") or None,
        ports=read.each("ports", parse_port),
        resources=read.each("resources", parse_resource),
        unreadable=tuple(problems),
        _source=obj,
    )


def _parse_a_vm(obj: Mapping, locations: Mapping) -> Vm:
    return _parse_2025_vm(obj, locations, "a")


def _balance_as_sent(read_amount):
    """A balance reader that keeps the value as sent once `read_amount` has read it (Vm reads it again)."""

    def read(obj: Mapping, name: str) -> int | str | None:
        return None if read_amount(obj, name) is None else obj[name]

    return read


def _amount(obj: Mapping, name: str) -> Decimal | None:
    """An optional amount already in its unit (USDC of generation A, USD of today's API)."""
    return _money(obj, name, required=False, micro_if_integer=False)


def _micro_amount(obj: Mapping, name: str) -> Decimal | None:
    """An optional baseline balance: digit-only strings and integers are micro-USDC."""
    return _money(obj, name, required=False)


def _optional_bool(obj: Mapping, name: str) -> bool | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, bool):
        raise _bad(f"the field {name!r} is not true or false")
    return value


class Negative(ValueError):
    """A number that cannot be below zero is."""


def parse_gigabytes(value: object) -> Decimal:
    """A number of gigabytes (a quantity): ValueError when it is none, OutOfRange past numbers.QUANTITY,
    Negative below zero."""
    amount = parse_quantity(value)
    if amount is None:
        raise ValueError("not a number of gigabytes")
    if amount < 0:
        raise Negative("a negative number of gigabytes")
    return amount


def _gigabytes(obj: Mapping, name: str) -> Decimal | None:
    value = obj.get(name)
    if value is None:
        return None
    try:
        return parse_gigabytes(value)
    except OutOfRange:
        raise _bad(_implausible(name)) from None
    except Negative:
        raise _bad(f"the field {name!r} is negative") from None
    except ValueError:
        raise _bad(f"the field {name!r} is not a number of gigabytes") from None


def _texts(obj: Mapping, name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(f"the field {name!r} is not a list of text")
    return tuple(value)


def _object(obj: Mapping, name: str) -> Mapping:
    """An optional object field (EMPTY when absent or null)."""
    value = obj.get(name)
    if value is None:
        return EMPTY
    if not isinstance(value, dict):
        raise _bad(f"the field {name!r} is not an object")
    return value


def _parse_b_vm(obj: Mapping, locations: Mapping) -> Vm:
    """A VM of today's API (`GET /v2/vms`). `locations` maps cluster ids to datacenters."""
    vm_id = _vm_id(obj)
    problems: list[Unreadable] = []
    read = _Reader(obj, problems)
    cluster_id = read(_optional_str, "clusterId")
    # `expand[0]=publicIp` puts the public IP resource (with its address) under `expanded`.
    expanded = _Reader(read(_object, "expanded", EMPTY), problems, "expanded.")
    public_ip = expanded(_object, "publicIp", EMPTY)
    boot_disk = expanded(_object, "bootDisk", EMPTY)
    address = _Reader(public_ip, problems, "expanded.publicIp.")(_optional_str, "address")
    volume = _Reader(boot_disk, problems, "expanded.bootDisk.")(_gigabytes, "volumeGb")
    # Absent or unreadable: nothing is known to be allowed, so no deletion is offered.
    allowed = read(_texts, "allowedActions", ())
    return VmB(
        id=vm_id,
        name=read(_optional_str, "name") or None,
        status=status_of(read(_optional_str, "status") or ""),
        price_per_epoch=None,
        created_at_sent=read(_timestamp_text, "createdAt"),
        next_billing_at_sent=None,
        os_image=None,
        datacenter=locations.get(cluster_id) if cluster_id else None,
        public_ip=address or None,
        ports=(),
        resources=(),
        generation="b",
        price_hourly_usd=read(_amount, "priceHourlyUsd"),
        price_monthly_usd=read(_amount, "priceMonthlyUsd"),
        vcpu_count=read(_optional_count, "vcpu"),
        ram_gb=read(_gigabytes, "ramGb"),
        storage_gb=volume,
        configuration_name=read(_optional_str, "configurationName") or None,
        cluster_id=cluster_id,
        allowed_actions=allowed,
        restart_required=read(_optional_bool, "restartRequired"),
        updated_at_sent=read(_timestamp_text, "updatedAt"),
        ready_since_sent=read(_timestamp_text, "readySince"),
        last_paid_at_sent=read(_timestamp_text, "lastPaidAt"),
        paid_until_sent=read(_timestamp_text, "paidUntil"),
        terminated_at_sent=read(_timestamp_text, "terminatedAt"),
        public_ip_id=read(_optional_str, "publicIp") or None,
        boot_disk=read(_optional_str, "bootDisk") or None,
        data_disks=read(_texts, "dataDisks", ()),
        unreadable=tuple(problems),
        _source=obj,
    )


_PARSERS = {"baseline": _parse_2025_vm, "a": _parse_a_vm, "b": _parse_b_vm}


def _parse_items(
    data: list, *, copy: bool, generation: str, locations: Mapping
) -> Iterator[Vm | BadResponse]:
    parse = _PARSERS[generation]
    for item in data:
        if not isinstance(item, dict):
            yield _bad("a VM is not an object")
            continue
        try:
            # An item nobody else holds is kept as is: the VM's `raw` makes read-only copies on demand.
            yield parse(freeze(item) if copy else item, locations)
        except RecursionError:
            yield _bad("a VM is nested too deeply")
        except BadResponse as error:
            yield error


def parse_vm_list(
    data: object, *, copy: bool = True, generation: str = "baseline", locations: Mapping | None = None
) -> list[Vm]:
    """A list answer's VMs: a JSON array of VM objects; BadResponse if any item is no VM at all.

    `copy=False` is for JSON that the caller has just decoded and hands over: the VMs keep its objects
    instead of copying them (a third of the cost of a parse).
    """
    vms, problems = parse_vm_list_lenient(data, copy=copy, generation=generation, locations=locations)
    if problems:
        raise _bad(problems[0])
    return vms


def parse_vm_list_lenient(
    data: object, *, copy: bool = True, generation: str = "baseline", locations: Mapping | None = None
) -> tuple[list[Vm], list[str]]:
    """The VMs of a list answer, and why each item that is no VM at all (no usable id) was left out
    (`copy` as in parse_vm_list). A VM with unreadable fields is kept, its fields named in `unreadable`.

    BadResponse when the answer is not an array, or when it holds items and none of them is a VM.
    """
    if not isinstance(data, list):
        raise _bad("the VM list is not a JSON array")
    vms: list[Vm] = []
    problems: list[str] = []
    # Parsing builds tens of thousands of small containers, none in a reference cycle; the cyclic
    # garbage collector would otherwise run dozens of times per list and more than double its cost
    # (measured: 8.7 ms against 3.7 ms for 100 VMs). It is paused for the parse only.
    with cyclic_gc_paused():
        for parsed in _parse_items(data, copy=copy, generation=generation, locations=locations or EMPTY):
            if isinstance(parsed, BadResponse):
                problems.append(parsed.detail or "unreadable")
            else:
                vms.append(parsed)
    if problems and not vms:
        raise _bad(problems[0])
    return vms, problems


@contextmanager
def cyclic_gc_paused():
    """Pause the cyclic garbage collector (reference counting still frees everything acyclic)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- generation B: where VMs run, and the account's balance ---------------------------------------------


def duplicates_note(duplicates: int) -> str:
    """What a person is told when Fluence's pages listed VMs more than once."""
    return f"Fluence listed {duplicates} VM{'s' * (duplicates != 1)} twice; each is shown once."


def parse_locations(clusters: object, datacenters: object) -> dict[str, dict]:
    """Cluster id -> that cluster's datacenter object, from `GET /v1/clusters` and `GET /v1/datacenters`
    (`{items: [...]}` each). Clusters or datacenters that cannot be read are left out."""
    by_id = {
        dc["id"]: dc for dc in _items(datacenters) if isinstance(dc, dict) and isinstance(dc.get("id"), str)
    }
    located = {}
    for cluster in _items(clusters):
        if isinstance(cluster, dict) and isinstance(cluster.get("id"), str):
            datacenter = by_id.get(cluster.get("dcId"))
            if datacenter is not None:
                located[cluster["id"]] = datacenter
    return located


def _items(answer: object) -> list:
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise _bad("the answer has no list of items")
    return items


def datacenters_of(locations: Mapping) -> dict[str, Datacenter]:
    """Cluster id -> Datacenter, for the parser; a datacenter with odd fields keeps what can be read."""
    return {
        cluster_id: parse_datacenter(obj, [], index_field="index")
        for cluster_id, obj in locations.items()
        if isinstance(obj, dict)
    }


@dataclass(frozen=True, slots=True)
class Balance:
    """A generation-B account's prepaid balance, in USD (`GET /v2/users/balances`)."""

    balance: Decimal | None
    usage: Decimal | None
    days_left: int | None
    currency: str = USD


def parse_balance(answer: object) -> Balance | None:
    """The compute balance of `GET /v2/users/balances` (an array of entitlements); None when none is
    readable. Several entitlements are added up, as they are all USD."""
    if not isinstance(answer, list):
        raise _bad("the balances answer is not a JSON array")
    entries = [entry for entry in answer if isinstance(entry, dict)]
    if not entries:
        return None
    totals: dict[str, Decimal | None] = {}
    for name in ("balance", "usage"):
        amounts = []
        for entry in entries:
            try:
                amounts.append(_money(entry, name, required=True, micro_if_integer=False))
            except BadResponse:
                amounts = None
                break
        totals[name] = sum(amounts, Decimal(0)) if amounts else None
    days = [entry.get("usageDaysLeft") for entry in entries]
    readable_days = [d for d in days if isinstance(d, int) and not isinstance(d, bool) and d >= 0]
    return Balance(
        balance=totals["balance"],
        usage=totals["usage"],
        days_left=min(readable_days) if readable_days else None,
    )
