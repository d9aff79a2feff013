"""Deterministic VMs, clusters, datacenters and balances in the shapes of generation B (fluence-api.md §4)."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from .data import DC_SPECS, ENVS, ROLES, random_ip

HOUR = 3_600
DAY = 86_400
HOURS_PER_MONTH = 730  # Fluence's own factor: priceMonthlyUsd = priceHourlyUsd * 730
PRICE_SCALE = 10_000  # prices are kept in units of 0.0001 USD, the precision Fluence shows hourly prices in

NEW = "new"
LAUNCHING = "launching"
LAUNCHED = "launched"
FAILED = "failed"
UPDATING = "updating"
TERMINATING = "terminating"
TERMINATED = "terminated"
SUSPENDING = "suspending"
SUSPENDED = "suspended"
RESTARTING = "restarting"
SOFT_REBOOTING = "softRebooting"
UNKNOWN = "unknown"
STATUSES = (
    NEW,
    LAUNCHING,
    LAUNCHED,
    FAILED,
    UPDATING,
    TERMINATING,
    TERMINATED,
    SUSPENDING,
    SUSPENDED,
    RESTARTING,
    SOFT_REBOOTING,
    UNKNOWN,
)
#: Statuses before the machine first runs: no public IP, no readySince.
PENDING = frozenset({NEW, LAUNCHING})

ACTIONS = (
    "addPublicIp",
    "removePublicIp",
    "addStorages",
    "removeStorages",
    "updateNetworkInterface",
    "restart",
    "softReboot",
    "terminate",
)

CITY_NAMES = {
    "PAR": "Paris",
    "FRA": "Frankfurt",
    "AMS": "Amsterdam",
    "NYC": "New York",
    "SJC": "San Jose",
    "SIN": "Singapore",
    "LON": "London",
    "WAW": "Warsaw",
    "HEL": "Helsinki",
}


_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuid_from_hex(text: str) -> str:
    """32 random hex digits -> a lowercase version 4 UUID string."""
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{_VARIANT_DIGIT[text[16]]}{text[17:20]}-{text[20:32]}"


def uuid_from_bits(bits: int) -> str:
    """128 random bits -> a lowercase version 4 UUID string."""
    return _uuid_from_hex(f"{bits:032x}")


def random_uuid(rng: random.Random) -> str:
    return uuid_from_bits(rng.getrandbits(128))


def random_uuids(rng: random.Random, count: int) -> list[str]:
    """``count`` UUIDs from one draw of the generator (building 10,000 VMs takes tens of thousands)."""
    digits = f"{rng.getrandbits(128 * count):0{32 * count}x}"
    return [_uuid_from_hex(digits[i : i + 32]) for i in range(0, 32 * count, 32)]


def stable_uuid(name: str) -> str:
    """The same UUID for the same name: fixed catalogue ids (clusters, plans, users) must not move."""
    return uuid_from_bits(int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big"))


@functools.lru_cache(maxsize=4096)
def _date(day: int) -> str:
    t = time.gmtime(day * DAY)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


@functools.lru_cache(maxsize=DAY)
def _clock(second: int) -> str:
    return f"{second // HOUR:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


def rfc3339(ts: float | None, *, fractional: bool = False) -> str | None:
    """Epoch seconds -> "2026-11-30T08:12:44Z" or, with ``fractional``, "2026-11-30T08:12:44.123456Z"."""
    if ts is None:
        return None
    whole = int(ts)
    day, second = divmod(whole, DAY)
    text = f"{_date(day)}T{_clock(second)}"
    if fractional:
        return f"{text}.{int((ts - whole) * 1_000_000):06d}Z"
    return text + "Z"


def usd(units: int) -> str:
    """Units of 0.0001 USD -> a plain decimal string: 685 -> "0.0685"."""
    whole, frac = divmod(units, PRICE_SCALE)
    return f"{whole}.{frac:04d}"


def monthly_usd(hourly_units: int) -> str:
    """hourly * 730, trailing zeros dropped as Fluence sends it: 685 -> "50.005"."""
    return usd(hourly_units * HOURS_PER_MONTH).rstrip("0").rstrip(".")


# --- the catalogue: datacenters, clusters, plans -------------------------------------------------


def _datacenter(country: str, city: str, index: int, tier: int, certs: list[str]) -> dict[str, Any]:
    return {
        "id": stable_uuid(f"datacenter:{country}-{city}-{index}"),
        "countryCode": country,
        "cityCode": city,
        "cityName": CITY_NAMES[city],
        "index": index,
        "tier": tier,
        "certifications": list(certs),
        "slug": f"{country}-{city}-{index}".lower(),
    }


DATACENTERS: list[dict[str, Any]] = [_datacenter(*spec) for spec in DC_SPECS]

# Not every datacenter hosts a cluster: the portal must not assume a one-to-one mapping.
_CLUSTER_DATACENTERS = (0, 1, 2, 3, 4, 5, 6, 8)
CLUSTERS: list[dict[str, Any]] = [
    {
        "id": stable_uuid(f"cluster:{DATACENTERS[i]['slug']}"),
        "name": f"{DATACENTERS[i]['cityCode'].lower()}-{DATACENTERS[i]['index']}",
        "dcId": DATACENTERS[i]["id"],
    }
    for i in _CLUSTER_DATACENTERS
]
CLUSTERS_JSON = json.dumps({"items": CLUSTERS}, separators=(",", ":")).encode()
DATACENTERS_JSON = json.dumps({"items": DATACENTERS}, separators=(",", ":")).encode()
SERVICE_STATUS_JSON = json.dumps({"maintenanceMode": False, "version": "0.10.0"}).encode()


@dataclass(frozen=True, slots=True)
class Plan:
    slug: str
    family: str
    vcpu: int
    ram_gb: int
    hourly_units: int  # list price in 0.0001 USD

    @property
    def id(self) -> str:
        return stable_uuid(f"configuration:{self.slug}")

    @property
    def name(self) -> str:
        return f"{self.family} {self.vcpu} vCPU / {self.ram_gb} GB"


# Slugs as the OpenAPI document enumerates them; small plans are the common ones.
PLANS = (
    Plan("cpu-shared-2vcpu-2gb", "Shared", 2, 2, 190),
    Plan("cpu-regular-2vcpu-4gb", "Standard", 2, 4, 345),
    Plan("cpu-regular-4vcpu-8gb", "Standard", 4, 8, 685),
    Plan("cpu-regular-8vcpu-16gb", "Standard", 8, 16, 1370),
    Plan("cpu-regular-8vcpu-32gb", "Standard", 8, 32, 1795),
    Plan("cpu-regular-16vcpu-32gb", "Standard", 16, 32, 2740),
    Plan("cpu-premium-4vcpu-8gb", "Premium", 4, 8, 890),
    Plan("cpu-premium-8vcpu-16gb", "Premium", 8, 16, 1780),
    Plan("cpu-premium-32vcpu-64gb", "Premium", 32, 64, 7120),
)
# Each plan as often as it is chosen (a plain choice() is several times faster than choices()).
_WEIGHTED_PLANS = tuple(
    plan for plan, weight in zip(PLANS, (10, 14, 16, 9, 4, 3, 6, 4, 1), strict=True) for _ in range(weight)
)
_DATA_DISK_COUNTS = (0,) * 7 + (1,) * 2 + (2,)
_PLAN_IDS = {plan.slug: plan.id for plan in PLANS}
# Clusters price the same plan differently (in percent of the list price).
_CLUSTER_PRICE_PERCENT = {c["id"]: 92 + 3 * i for i, c in enumerate(CLUSTERS)}

# --- VMs -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class VmRecordB:
    """One generation B VM as the sandbox keeps it: the API object plus what drives it in time."""

    data: dict[str, Any]  # the API object, without ``expanded`` (added per request)
    created: float  # epoch seconds of createdAt: the sort key
    fractional: bool = False  # whether its times carry fractional seconds
    public_ip_address: str | None = None  # the address of the public IP resource ``data["publicIp"]``
    paid_until: float | None = None  # the end of the prepaid hour, when billing runs
    activate_at: float | None = None  # a new/launching VM becomes launched at this time
    terminate_at: float | None = None  # a terminating VM becomes terminated at this time

    @property
    def id_lower(self) -> str:
        return str(self.data.get("id", "")).lower()

    def event_times(self) -> tuple[float | None, ...]:
        """When time will next change this VM (the state applies it lazily)."""
        return (self.paid_until, self.activate_at, self.terminate_at)


def allowed_actions(status: str, has_public_ip: bool) -> list[str]:
    """What a VM accepts in this status: anything else answers 406."""
    if status == LAUNCHED:
        unavailable = "addPublicIp" if has_public_ip else "removePublicIp"
        return [action for action in ACTIONS if action != unavailable]
    if status in (FAILED, SUSPENDED):
        return ["terminate"]
    return []


def _billing(created: float, now: float) -> tuple[float, float]:
    """(lastPaidAt, paidUntil): billed per second from a balance, prepaid up to the next full hour."""
    hour_start = now - now % HOUR
    return max(hour_start, created), hour_start + HOUR


def make_vm(
    rng: random.Random,
    *,
    user_id: str,
    name: str,
    status: str,
    now: float,
    created: float | None = None,
) -> VmRecordB:
    """One VM with the given status, its fields consistent with that status.

    ``created`` defaults to a day in the past (stable for a whole UTC day), or to a few minutes ago
    (stable for ten minutes) for a VM that is still new or launching.
    """
    midnight = now - now % DAY
    fractional = rng.random() < 0.3
    if created is None:
        if status in PENDING:
            created = now - now % 600 - rng.randint(30, 1800)
        else:  # ends an hour before midnight, so that every later time of the day's VMs is already past
            created = midnight - rng.randint(1, 180) * DAY + rng.randrange(DAY - HOUR)
        if fractional:
            created += rng.random()
    cluster = rng.choice(CLUSTERS)
    plan = rng.choice(_WEIGHTED_PLANS)
    hourly_units = None
    if rng.random() >= 0.03:  # "absent when the catalog has no active price"
        hourly_units = plan.hourly_units * _CLUSTER_PRICE_PERCENT[cluster["id"]] // 100

    ran = status not in PENDING and status != FAILED
    ready_since = created + rng.randint(40, 600) if ran else None
    if ready_since is not None:
        updated = ready_since + rng.random() * max(0.0, midnight - ready_since)
    elif status == FAILED:
        updated = created + rng.randint(60, 900)
    else:
        updated = created
    terminated_at = updated if status == TERMINATED else None
    public_ip = public_ip_address = None
    vm_id, subnet, ssh_key, interface, boot_disk, ip_id, *data_disks = random_uuids(
        rng, 6 + rng.choice(_DATA_DISK_COUNTS)
    )
    if status == SUSPENDED or (status == LAUNCHED and rng.random() >= 0.1):
        public_ip, public_ip_address = ip_id, random_ip(rng)
    last_paid = paid_until = None
    if status != TERMINATED:
        last_paid, paid_until = _billing(created, now)

    data: dict[str, Any] = {
        "id": vm_id,
        "userId": user_id,
        "clusterId": cluster["id"],
        "configurationId": _PLAN_IDS[plan.slug],
        "configurationName": plan.name,
        "configurationSlug": plan.slug,
        "name": name,
        "status": status,
        "restartRequired": False,
        "allowedActions": allowed_actions(status, public_ip is not None),
        "dataDisks": data_disks,
        "subnets": [subnet],
        "sshKeys": [ssh_key],
        "networkInterfaces": [interface],
        "createdAt": rfc3339(created, fractional=fractional),
        "updatedAt": rfc3339(updated, fractional=fractional),
        "readySince": rfc3339(ready_since, fractional=fractional),
        "lastPaidAt": rfc3339(last_paid, fractional=fractional),
        "paidUntil": rfc3339(paid_until, fractional=fractional),
        "terminatedAt": rfc3339(terminated_at, fractional=fractional),
        "priceHourlyUsd": None if hourly_units is None else usd(hourly_units),
        "priceMonthlyUsd": None if hourly_units is None else monthly_usd(hourly_units),
        "vcpu": plan.vcpu,
        "ramGb": plan.ram_gb,
        "bootDisk": boot_disk,
        "publicIp": public_ip,
        "cloudInit": {} if rng.random() < 0.3 else None,
    }
    return VmRecordB(
        data=data,
        created=created,
        fractional=fractional,
        public_ip_address=public_ip_address,
        paid_until=paid_until,
    )


def _statuses(rng: random.Random, count: int) -> list[str]:
    statuses = [LAUNCHED] * count
    others = [LAUNCHING, NEW, FAILED, SUSPENDED, TERMINATED]
    for i in range(count):
        if rng.random() < 0.12:
            statuses[i] = rng.choice(others)
    if count >= 4:  # every account of some size shows the states the UI must handle
        for i, status in zip(rng.sample(range(count), 3), (LAUNCHING, TERMINATED, FAILED), strict=True):
            statuses[i] = status
    return statuses


def generate_vms(seed: Any, count: int, *, now: float | None = None) -> list[VmRecordB]:
    """``count`` VMs of the account ``seed``, the same for the same seed (and the same UTC day and hour)."""
    if now is None:
        now = time.time()
    rng = random.Random(f"b:{seed!r}")
    owner = user_id(seed)
    used: dict[tuple[str, str], int] = {}
    records = []
    for status in _statuses(rng, count):
        role = rng.choice(ROLES)
        env = rng.choice(ENVS)
        number = used.get((role, env), 0) + 1
        used[(role, env)] = number
        name = f"{role}-{env}-{number}" if env else f"{role}-{number}"
        records.append(make_vm(rng, user_id=owner, name=name, status=status, now=now))
    return records


def user_id(seed: Any) -> str:
    """The Fluence user an account's key belongs to."""
    return stable_uuid(f"user:{seed!r}")


# --- time ----------------------------------------------------------------------------------------


def activate(record: VmRecordB, rng: random.Random, now: float) -> None:
    """A new or launching VM is up: launched, ready since now, with a public IP."""
    data = record.data
    record.activate_at = None
    data["status"] = LAUNCHED
    data["readySince"] = data["updatedAt"] = rfc3339(now, fractional=record.fractional)
    if not data.get("publicIp"):
        data["publicIp"], record.public_ip_address = random_uuid(rng), random_ip(rng)
    data["allowedActions"] = allowed_actions(LAUNCHED, True)


def begin_termination(record: VmRecordB, now: float, delay: float) -> None:
    """``POST …/terminate`` accepted: terminating now, terminated after ``delay`` seconds."""
    data = record.data
    record.activate_at = None
    record.terminate_at = now + delay
    data["status"] = TERMINATING
    data["allowedActions"] = []
    data["updatedAt"] = rfc3339(now, fractional=record.fractional)


def begin_restart(record: VmRecordB, now: float, delay: float, status: str) -> None:
    """``POST …/restart`` or ``…/softreboot`` accepted: in transition now (no action allowed), launched
    again after ``delay`` seconds."""
    data = record.data
    record.activate_at = now + delay
    data["status"] = status
    data["allowedActions"] = []
    data["updatedAt"] = rfc3339(now, fractional=record.fractional)


def finish_termination(record: VmRecordB) -> None:
    """Terminated VMs stay listed, without a public IP and no longer billed."""
    assert record.terminate_at is not None
    data = record.data
    data["status"] = TERMINATED
    data["allowedActions"] = []
    data["terminatedAt"] = data["updatedAt"] = rfc3339(record.terminate_at, fractional=record.fractional)
    data["publicIp"] = None
    data["lastPaidAt"] = data["paidUntil"] = None
    record.public_ip_address = None
    record.terminate_at = record.paid_until = None


def roll_billing(record: VmRecordB, now: float) -> None:
    """Pay the hour that began meanwhile (billing never stops while the VM is not terminated)."""
    if record.paid_until is None or record.paid_until > now:
        return
    hour_start = now - now % HOUR
    record.paid_until = hour_start + HOUR
    record.data["lastPaidAt"] = rfc3339(hour_start, fractional=record.fractional)
    record.data["paidUntil"] = rfc3339(record.paid_until, fractional=record.fractional)


def advance(record: VmRecordB, rng: random.Random, now: float) -> None:
    """Apply what time has brought to one VM."""
    if record.terminate_at is not None and record.terminate_at <= now:
        finish_termination(record)
    if record.activate_at is not None and record.activate_at <= now:
        activate(record, rng, now)
    roll_billing(record, now)


# --- balances ------------------------------------------------------------------------------------

BALANCE_FIELDS = (
    "balance",
    "usage",
    "estimatedUsage",
    "overage",
    "totalDepositedAmount",
    "usageDaysLeft",
    "userId",
    "featureKey",
)


def balance(seed: Any) -> dict[str, Any]:
    """The compute entitlement of an account (``GET /v2/users/balances`` answers a list of these)."""
    rng = random.Random(f"balance:{seed!r}")
    deposited = rng.choice((100, 250, 500, 1000, 2500)) * 100  # cents
    usage = rng.randint(deposited // 20, deposited * 9 // 10)
    estimated = usage + rng.randint(0, deposited // 10)
    remaining = deposited - usage
    daily = rng.randint(300, 2500)  # cents spent a day
    return {
        "balance": _cents(remaining),
        "usage": _cents(usage),
        "estimatedUsage": _cents(estimated),
        "overage": "0",
        "totalDepositedAmount": _cents(deposited),
        "usageDaysLeft": remaining // daily,
        "userId": user_id(seed),
        "featureKey": "compute",
    }


def _cents(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
