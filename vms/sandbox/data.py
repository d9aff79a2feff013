"""Deterministic, realistic VM objects in the shapes of the Fluence API (fluence-api.md §1 and §2).

Everything here is pure: given a seed and a clock reading, the same VMs come out. Money is kept in
micro-USDC integers, times in epoch seconds; the API shapes are produced from them.
"""

from __future__ import annotations

import copy
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

EPOCH_SECONDS = 86_400
MICRO = 1_000_000

# The example VM of fluence-api.md §1, verbatim.
EXAMPLE_VM: dict[str, Any] = {
    "id": "0x0000000000000000000000000000000000000001",
    "vmName": "vm-name",
    "status": "ACTIVE",
    "pricePerEpoch": 298160,
    "resources": [
        {
            "type": "VCPU",
            "quantity": 2,
            "details": {"model": "7702p"},
            "metadata": {"architecture": "Zen", "brand": "EPYC", "generation": "2", "manufacturer": "AMD"},
        },
        {
            "type": "RAM",
            "quantity": 4096,
            "details": {"manufacturer": "Samsung", "model": "DGX", "speed": 3600},
            "metadata": {"generation": "4", "type": "DDR"},
        },
        {
            "type": "STORAGE",
            "quantity": 25600,
            "details": {"manufacturer": "WD", "sequentialWriteSpeed": 15000},
            "metadata": {"type": "SSD"},
        },
        {"type": "PUBLIC_IP", "quantity": 1, "details": {}, "metadata": {"version": "4"}},
    ],
    "createdAt": "+002025-04-01T16:50:57.000000000Z",
    "nextBillingAt": "+002025-04-16T17:59:55.000000000Z",
    "osImage": "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img",
    "datacenter": {
        "id": "0x0000000000000000000000000000000000000000000000000000000000000005",
        "countryCode": "FR",
        "cityCode": "PAR",
        "cityIndex": 1,
        "tier": 4,
        "certifications": ["PCI DSS", "ISO 9001:2015", "ISO/IEC 27001:2022"],
    },
    "publicIp": "154.42.3.159",
    "ports": [{"port": 22, "protocol": "tcp"}],
    "reservedBalance": "359440",
    "totalSpent": "17846000",
}

# Statuses as the baseline API spells them.
ACTIVE = "ACTIVE"
LAUNCHING = "Launching"
NEW = "New"
SMALL_BALANCE = "SmallBalance"
INSUFFICIENT_FUNDS = "InsufficientFunds"
TERMINATED = "Terminated"
STOPPED = "Stopped"
STATUSES = (ACTIVE, LAUNCHING, NEW, SMALL_BALANCE, INSUFFICIENT_FUNDS, TERMINATED, STOPPED)
#: Statuses with a running machine: a public IP and a billing cycle.
RUNNING = frozenset({ACTIVE, SMALL_BALANCE, INSUFFICIENT_FUNDS})
#: Statuses of a machine that has ended: no public IP, no next billing.
ENDED = frozenset({TERMINATED, STOPPED})
#: Statuses before the machine runs: no public IP yet, no billing cycle yet.
PENDING = frozenset({LAUNCHING, NEW})

_CERTS_FULL = ["PCI DSS", "ISO 9001:2015", "ISO/IEC 27001:2022"]
_CERTS_ISO = ["ISO/IEC 27001:2022"]
_CERTS_SOC = ["SOC 2 Type II", "ISO/IEC 27001:2022"]
_CERTS_TIER3 = ["ISO 9001:2015", "ISO/IEC 27001:2013"]

# (countryCode, cityCode, cityIndex, tier, certifications)
DC_SPECS = [
    ("FR", "PAR", 1, 4, _CERTS_FULL),
    ("FR", "PAR", 2, 3, _CERTS_TIER3),
    ("DE", "FRA", 1, 4, _CERTS_FULL),
    ("DE", "FRA", 2, 3, _CERTS_ISO),
    ("NL", "AMS", 1, 3, _CERTS_TIER3),
    ("US", "NYC", 1, 3, _CERTS_SOC),
    ("US", "SJC", 1, 4, _CERTS_SOC),
    ("SG", "SIN", 1, 2, _CERTS_ISO),
    ("GB", "LON", 1, 3, _CERTS_FULL),
    ("PL", "WAW", 1, 2, []),
    ("FI", "HEL", 1, 1, []),
]


def _dc(country: str, city: str, index: int, tier: int, certs: list[str]) -> dict[str, Any]:
    digest = hashlib.sha256(f"{country}-{city}-{index}".encode()).hexdigest()
    return {
        "id": "0x" + digest,
        "countryCode": country,
        "cityCode": city,
        "cityIndex": index,
        "tier": tier,
        "certifications": list(certs),
    }


DATACENTERS: list[dict[str, Any]] = [_dc(*spec) for spec in DC_SPECS]

# (details, metadata) of CPU families.
_CPUS = [
    ({"model": "7702p"}, {"architecture": "Zen", "brand": "EPYC", "generation": "2", "manufacturer": "AMD"}),
    ({"model": "7763"}, {"architecture": "Zen", "brand": "EPYC", "generation": "3", "manufacturer": "AMD"}),
    ({"model": "9654"}, {"architecture": "Zen", "brand": "EPYC", "generation": "4", "manufacturer": "AMD"}),
    (
        {"model": "Gold 6338"},
        {"architecture": "Ice Lake", "brand": "Xeon", "generation": "3", "manufacturer": "Intel"},
    ),
]
_RAMS = [
    ({"manufacturer": "Samsung", "model": "DGX", "speed": 3600}, {"generation": "4", "type": "DDR"}),
    (
        {"manufacturer": "Micron", "model": "MTC40F2046S1RC48BA1", "speed": 4800},
        {"generation": "5", "type": "DDR"},
    ),
    ({"manufacturer": "SK Hynix", "speed": 3200}, {"generation": "4", "type": "DDR"}),
]
_DISKS = [
    ({"manufacturer": "WD", "sequentialWriteSpeed": 15000}, {"type": "SSD"}),
    ({"manufacturer": "Samsung", "model": "PM9A3", "sequentialWriteSpeed": 4000}, {"type": "NVMe"}),
    ({}, {"type": "SSD"}),
]
_GPUS = [
    ({"model": "H100 80GB HBM3"}, {"manufacturer": "NVIDIA", "brand": "H100", "memory": "80GB"}),
    ({"model": "A100 40GB PCIe"}, {"manufacturer": "NVIDIA", "brand": "A100", "memory": "40GB"}),
    ({"model": "L40S"}, {"manufacturer": "NVIDIA", "brand": "L40S", "memory": "48GB"}),
]
_PUBLIC_IP_META = {"version": "4"}
_EMPTY: dict[str, Any] = {}

OS_IMAGES = [
    "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img",
    "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
    "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
]

ROLES = [
    "api",
    "web",
    "db",
    "worker",
    "cache",
    "gateway",
    "ml-trainer",
    "ml-infer",
    "ci-runner",
    "ipfs-node",
    "indexer",
    "rpc",
    "validator",
    "vpn",
    "monitor",
    "etl",
]
ENVS = ["prod", "staging", "dev", "eu", "us", ""]
_WEB_ROLES = frozenset({"api", "web", "gateway", "rpc", "monitor"})
_GPU_ROLES = frozenset({"ml-trainer", "ml-infer"})
_IP_FIRST = [154, 185, 45, 91, 203, 38, 62, 193]
_VCPUS = [2, 2, 4, 4, 4, 8, 8, 16, 32]
_RAM_PER_CPU = [1024, 2048, 4096]
_STORAGES = [25600, 25600, 51200, 102400, 204800, 512000, 1048576]


@dataclass(slots=True)
class VmRecord:
    """One VM as the sandbox keeps it: the baseline API object plus the times that drive it."""

    data: dict[str, Any]
    created: float | None = None  # epoch seconds; None for the verbatim example (never changes)
    next_billing: float | None = None  # epoch seconds of nextBillingAt, when it has one and it moves
    activate_at: float | None = None  # a Launching VM turns ACTIVE at this time
    delete_at: float | None = None  # marked for deletion: gone from the list at this time
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id_lower(self) -> str:
        return str(self.data.get("id", "")).lower()

    def event_times(self) -> tuple[float | None, ...]:
        """When time will next change this VM (the state applies it lazily)."""
        return (self.next_billing, self.activate_at, self.delete_at)


# --- formatting ----------------------------------------------------------------------------------


def expanded_timestamp(ts: float) -> str:
    """Epoch seconds -> the baseline's expanded-year, nanosecond ISO 8601 form."""
    t = time.gmtime(int(ts))
    return (
        f"+{t.tm_year:06d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.000000000Z"
    )


def rfc3339_from_expanded(value: str | None) -> str | None:
    """ "+002025-04-01T16:50:57.000000000Z" -> "2025-04-01T16:50:57Z" (generation A)."""
    if not isinstance(value, str):
        return value
    if value[:1] in "+-" and len(value) > 7 and value[1:3] == "00":
        value = value[3:]
    if len(value) >= 19 and value[19:20] == ".":
        value = value[:19] + "Z"
    return value


def micro_to_decimal_string(micro: int | str) -> str:
    """298160 -> "0.29816"; 2435200 -> "2.4352"; 0 -> "0" (generation A money)."""
    whole, frac = divmod(int(micro), MICRO)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return text or "0"


def random_ip(rng: random.Random) -> str:
    return f"{rng.choice(_IP_FIRST)}.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def random_vm_id(rng: random.Random) -> str:
    digits = f"{rng.getrandbits(160):040x}"
    if rng.random() < 0.35:  # mixed case, as the API sometimes sends (EIP-55 style)
        mask = rng.getrandbits(40)
        digits = "".join(c.upper() if (mask >> i) & 1 else c for i, c in enumerate(digits))
    return "0x" + digits


# --- generation ----------------------------------------------------------------------------------


def _resources(rng: random.Random, role: str) -> tuple[list[dict[str, Any]], int]:
    """The resources of a VM and its price per epoch in micro-USDC."""
    vcpu = rng.choice(_VCPUS)
    ram = min(131072, max(2048, vcpu * rng.choice(_RAM_PER_CPU)))
    storage = rng.choice(_STORAGES)
    cpu_details, cpu_meta = rng.choice(_CPUS)
    ram_details, ram_meta = rng.choice(_RAMS)
    disk_details, disk_meta = rng.choice(_DISKS)
    resources: list[dict[str, Any]] = [
        {"type": "VCPU", "quantity": vcpu, "details": cpu_details, "metadata": cpu_meta},
        {"type": "RAM", "quantity": ram, "details": ram_details, "metadata": ram_meta},
        {"type": "STORAGE", "quantity": storage, "details": disk_details, "metadata": disk_meta},
        {"type": "PUBLIC_IP", "quantity": 1, "details": _EMPTY, "metadata": _PUBLIC_IP_META},
    ]
    usdc = 0.03 + vcpu * 0.045 + ram / 1024 * 0.008 + storage / 1024 * 0.0004
    gpu_chance = 0.5 if role in _GPU_ROLES else 0.03
    if rng.random() < gpu_chance:
        gpu_details, gpu_meta = rng.choice(_GPUS)
        resources.append({"type": "GPU", "quantity": 1, "details": gpu_details, "metadata": gpu_meta})
        usdc += 2.2
    if rng.random() < 0.1:
        resources.append(
            {"type": "NETWORK_BANDWIDTH", "quantity": 1000, "details": _EMPTY, "metadata": _EMPTY}
        )
        usdc += 0.02
    usdc *= rng.uniform(0.85, 1.15)
    price = int(min(5.0, max(0.05, usdc)) * MICRO)
    return resources, price


def _ports(rng: random.Random, role: str) -> list[dict[str, Any]]:
    ports = [{"port": 22, "protocol": "tcp"}]
    if role in _WEB_ROLES or rng.random() < 0.15:
        ports.append({"port": 80, "protocol": "tcp"})
        ports.append({"port": 443, "protocol": "tcp"})
    if role == "vpn" or rng.random() < 0.05:
        ports.append({"port": 51820, "protocol": "udp"})
    return ports


def make_vm(
    rng: random.Random,
    *,
    name: str,
    status: str,
    now: float,
    role: str | None = None,
    created: float | None = None,
) -> VmRecord:
    """One VM in the baseline shape with the given status, consistent with that status.

    ``created`` defaults to a day in the past (stable for a whole UTC day) for running and ended
    VMs, and to a few minutes ago for pending ones.
    """
    if role is None:
        role = rng.choice(ROLES)
    vm_id = random_vm_id(rng)
    resources, price = _resources(rng, role)
    os_image = rng.choice(OS_IMAGES)
    datacenter = rng.choice(DATACENTERS)
    ports = _ports(rng, role)
    midnight = now - now % EPOCH_SECONDS
    if created is None:
        if status in PENDING:
            bucket = now - now % 600  # stable for ten minutes, so two builds agree
            created = bucket - rng.randint(30, 1800)
        else:
            created = midnight - rng.randint(1, 180) * EPOCH_SECONDS + rng.randrange(EPOCH_SECONDS)

    next_billing: float | None = None
    public_ip: str | None = None
    if status in RUNNING:
        epochs = int((now - created) // EPOCH_SECONDS) + 1
        next_billing = created + epochs * EPOCH_SECONDS
        public_ip = random_ip(rng)
        spent = price * epochs
        if status == SMALL_BALANCE:
            reserved = rng.randint(price // 10, max(price // 10, price - 1))
        elif status == INSUFFICIENT_FUNDS:
            reserved = 0
        else:
            reserved = price * rng.randint(1, 30)
    elif status in ENDED:
        lived = max(1, int((now - created) // EPOCH_SECONDS))
        spent = price * rng.randint(1, lived)
        reserved = price * rng.randint(0, 3) if status == TERMINATED else 0
        if status == TERMINATED:
            datacenter = None
    else:  # pending (or an unknown status given by a caller)
        spent = price if status == LAUNCHING else 0
        reserved = price * rng.randint(1, 10)

    data: dict[str, Any] = {
        "id": vm_id,
        "vmName": name,
        "status": status,
        "pricePerEpoch": price,
        "resources": resources,
        "createdAt": expanded_timestamp(created),
    }
    if next_billing is not None:
        data["nextBillingAt"] = expanded_timestamp(next_billing)
    data["osImage"] = os_image
    data["datacenter"] = datacenter
    data["publicIp"] = public_ip
    data["ports"] = ports
    data["reservedBalance"] = str(reserved)
    data["totalSpent"] = str(spent)
    return VmRecord(data=data, created=created, next_billing=next_billing)


def _statuses(rng: random.Random, count: int) -> list[str]:
    statuses = [ACTIVE] * count
    others = [LAUNCHING, NEW, SMALL_BALANCE, INSUFFICIENT_FUNDS, TERMINATED, STOPPED]
    for i in range(count):
        if rng.random() < 0.12:
            statuses[i] = rng.choice(others)
    if count >= 4:  # every account of some size shows the states the UI must handle
        for i, status in zip(
            rng.sample(range(count), 3), (LAUNCHING, SMALL_BALANCE, TERMINATED), strict=True
        ):
            statuses[i] = status
    return statuses


def generate_vms(seed: Any, count: int, *, now: float | None = None) -> list[VmRecord]:
    """``count`` VMs, the same for the same seed (and the same UTC day)."""
    if now is None:
        now = time.time()
    rng = random.Random(seed if isinstance(seed, int | str | bytes) else repr(seed))
    used: dict[tuple[str, str], int] = {}
    records = []
    for status in _statuses(rng, count):
        role = rng.choice(ROLES)
        env = rng.choice(ENVS)
        n = used.get((role, env), 0) + 1
        used[(role, env)] = n
        number = f"{n:02d}" if rng.random() < 0.3 else str(n)
        name = f"{role}-{env}-{number}" if env else f"{role}-{number}"
        records.append(make_vm(rng, name=name, status=status, now=now, role=role))
    return records


def example_record() -> VmRecord:
    """The verbatim example VM, as a record that never moves in time."""
    return VmRecord(data=copy.deepcopy(EXAMPLE_VM))


def activate(record: VmRecord, rng: random.Random, now: float) -> None:
    """Turn a pending VM into a running one: public IP, billing cycle, first epoch paid."""
    data = record.data
    created = record.created if record.created is not None else now
    epochs = int((now - created) // EPOCH_SECONDS) + 1
    record.next_billing = created + epochs * EPOCH_SECONDS
    record.activate_at = None
    price = int(data.get("pricePerEpoch") or 0)
    updated: dict[str, Any] = {}
    for key, value in data.items():  # keep the documented field order
        updated[key] = value
        if key == "createdAt":
            updated["nextBillingAt"] = expanded_timestamp(record.next_billing)
    updated["status"] = ACTIVE
    if not updated.get("publicIp"):
        updated["publicIp"] = random_ip(rng)
    if not updated.get("datacenter"):
        updated["datacenter"] = rng.choice(DATACENTERS)
    updated["totalSpent"] = str(max(int(updated.get("totalSpent") or 0), price * epochs))
    record.data = updated


def roll_billing(record: VmRecord, now: float) -> None:
    """Advance nextBillingAt past ``now`` and charge the epochs that began meanwhile."""
    if record.next_billing is None or record.next_billing > now:
        return
    missed = int((now - record.next_billing) // EPOCH_SECONDS) + 1
    record.next_billing += missed * EPOCH_SECONDS
    data = record.data
    price = int(data.get("pricePerEpoch") or 0)
    data["nextBillingAt"] = expanded_timestamp(record.next_billing)
    data["totalSpent"] = str(int(data.get("totalSpent") or 0) + price * missed)


# --- generation A (GET /vms/v3) ------------------------------------------------------------------


def _resource_v3(resource: dict[str, Any]) -> dict[str, Any]:
    out = {"type": resource["type"]}
    quantity = resource.get("quantity")
    if resource["type"] in ("RAM", "STORAGE") and isinstance(quantity, int):
        if quantity % 1024 == 0:
            out["supply"], out["units"] = quantity // 1024, "GiB"
        else:
            out["supply"], out["units"] = quantity, "MiB"
    else:
        out["supply"] = quantity
    out["details"] = resource.get("details", {})
    out["metadata"] = resource.get("metadata", {})
    return out


def to_v3(vm: dict[str, Any]) -> dict[str, Any]:
    """A baseline VM object in the generation A shape: decimal strings, supply+units, RFC 3339."""
    out: dict[str, Any] = {}
    for key, value in vm.items():
        if key == "status":
            out[key] = "Active" if value == ACTIVE else value
        elif key in ("pricePerEpoch", "reservedBalance", "totalSpent"):
            out[key] = micro_to_decimal_string(value)
        elif key in ("createdAt", "nextBillingAt"):
            out[key] = rfc3339_from_expanded(value)
        elif key == "resources":
            out[key] = [_resource_v3(r) for r in value]
        else:
            out[key] = value
    return out
