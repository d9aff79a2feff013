"""What generation B's ``?expand=`` inlines on a VM (public IP, disks, subnets, SSH keys, interfaces).

The resources' details are derived from their ids, not stored, so that building 10,000 VMs stays fast.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .data_b import TERMINATED, VmRecordB, monthly_usd, stable_uuid, usd

#: What ``?expand=`` may name, in the order the ``expanded`` object lists them.
EXPANDABLE = ("publicIp", "bootDisk", "dataDisks", "subnets", "sshKeys", "networkInterfaces")

# The OS images boot disks are made from, as the storage's slim image reference shows them.
_IMAGES = tuple(
    {
        "id": stable_uuid(f"image:{slug}").replace("-", ""),
        "name": name,
        "slug": slug,
        "distribution": distribution,
    }
    for name, slug, distribution in (
        ("24.04 (LTS) x64", "ubuntu-24-04-x64", "Ubuntu"),
        ("22.04 (LTS) x64", "ubuntu-22-04-x64", "Ubuntu"),
        ("12 x64", "debian-12-x64", "Debian"),
    )
)
_BOOT_VOLUMES_GB = (25, 50, 50, 100, 200)
_DATA_VOLUMES_GB = (100, 200, 500, 1000)
STORAGE_HOURLY_UNITS_PER_GB = 2  # 0.0002 USD per GB and hour
PUBLIC_IP_HOURLY_UNITS = 50  # 0.0050 USD per hour


def _digest(resource_id: str) -> bytes:
    """Stable bytes per resource: its details are derived, not stored, so that building VMs stays fast."""
    return hashlib.sha256(resource_id.encode()).digest()


def _priced(hourly_units: int) -> dict[str, str]:
    return {"priceHourlyUsd": usd(hourly_units), "priceMonthlyUsd": monthly_usd(hourly_units)}


def _storage(vm: dict[str, Any], storage_id: str, *, boot: bool) -> dict[str, Any]:
    digest = _digest(storage_id)
    volumes = _BOOT_VOLUMES_GB if boot else _DATA_VOLUMES_GB
    volume = volumes[digest[0] % len(volumes)]
    attached = [] if vm["status"] == TERMINATED else [vm["id"]]
    role = "boot" if boot else "data"
    return {
        "id": storage_id,
        "userId": vm["userId"],
        "clusterId": vm["clusterId"],
        "name": f"{vm['name']}-{role}",
        "storageType": "SSD" if boot else "NVME",
        "status": "ready",
        "role": role.upper(),
        "volumeGb": volume,
        "replicated": not boot and digest[1] % 2 == 0,
        "attachedTo": attached,
        "allowedActions": ["update"] if attached else ["update", "delete", "attachToVm"],
        "image": _IMAGES[digest[2] % len(_IMAGES)] if boot else None,
        "createdAt": vm["createdAt"],
        "readySince": vm["readySince"],
        "removedAt": None,
        **_priced(volume * STORAGE_HOURLY_UNITS_PER_GB),
    }


def _public_ip(record: VmRecordB) -> dict[str, Any] | None:
    vm = record.data
    if not vm.get("publicIp"):
        return None
    return {
        "id": vm["publicIp"],
        "userId": vm["userId"],
        "clusterId": vm["clusterId"],
        "name": f"{vm['name']}-ip",
        "address": record.public_ip_address,
        "addressType": "V4",
        "status": "ready",
        "allowedActions": ["update"],
        "attachedTo": {"id": vm["id"], "name": vm["name"]},
        "createdAt": vm["readySince"] or vm["createdAt"],
        "readySince": vm["readySince"] or vm["createdAt"],
        "lastPaidAt": vm["lastPaidAt"],
        "paidUntil": vm["paidUntil"],
        "removedAt": None,
        **_priced(PUBLIC_IP_HOURLY_UNITS),
    }


def _subnet(vm: dict[str, Any], subnet_id: str) -> dict[str, Any]:
    digest = _digest(subnet_id)
    return {
        "id": subnet_id,
        "userId": vm["userId"],
        "clusterId": vm["clusterId"],
        "vpcId": stable_uuid(f"vpc:{vm['userId']}:{vm['clusterId']}"),
        "name": f"subnet-{digest[0] % 8 + 1}",
        "status": "ready",
        "ipv4Cidr": f"10.{digest[1]}.{digest[2]}.0/24",
        "ipv6Cidr": None,
        "readySince": vm["createdAt"],
        "removedAt": None,
    }


def _ssh_key(vm: dict[str, Any], key_id: str) -> dict[str, Any]:
    digest = _digest(key_id)
    # An ed25519 public key blob: the algorithm name, then 32 key bytes, each length-prefixed.
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + digest
    return {
        "id": key_id,
        "userId": vm["userId"],
        "name": f"laptop-{digest[0] % 20 + 1}",
        "publicKey": "ssh-ed25519 " + base64.b64encode(blob).decode(),
        "algorithm": "ssh-ed25519",
        "fingerprint": "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    }


def _network_interface(vm: dict[str, Any], interface_id: str, index: int) -> dict[str, Any]:
    return {
        "id": interface_id,
        "default": index == 0,
        "kind": {"private": {"subnet": vm["subnets"][0]}},
        "securityGroup": None,
    }


def expanded(record: VmRecordB, expand: tuple[str, ...]) -> dict[str, Any] | None:
    """The ``expanded`` member of a VM: only the asked-for resources; null when none was asked for."""
    if not expand:
        return None
    vm = record.data
    out: dict[str, Any] = {}
    for name in expand:
        if name == "publicIp":
            out[name] = _public_ip(record)
        elif name == "bootDisk":
            out[name] = _storage(vm, vm["bootDisk"], boot=True) if vm.get("bootDisk") else None
        elif name == "dataDisks":
            out[name] = [_storage(vm, disk, boot=False) for disk in vm["dataDisks"]]
        elif name == "subnets":
            out[name] = [_subnet(vm, subnet) for subnet in vm["subnets"]]
        elif name == "sshKeys":
            out[name] = [_ssh_key(vm, key) for key in vm["sshKeys"]]
        elif name == "networkInterfaces":
            out[name] = [_network_interface(vm, nic, i) for i, nic in enumerate(vm["networkInterfaces"])]
    return out


# "Plan name of the VM's configuration; set on list/create responses, omitted elsewhere" (the vCPU and
# RAM fields refer to the same rule): a single VM's answer lacks them.
LIST_ONLY_FIELDS = frozenset({"configurationName", "configurationSlug", "vcpu", "ramGb"})


def api_object(record: VmRecordB, expand: tuple[str, ...] = (), *, listed: bool = True) -> dict[str, Any]:
    """The VM as the API answers it: in a list (``listed``), or alone (GET by id, terminate)."""
    if listed:
        return {**record.data, "expanded": expanded(record, expand)}
    fields = {name: value for name, value in record.data.items() if name not in LIST_ONLY_FIELDS}
    return {**fields, "expanded": expanded(record, expand)}
