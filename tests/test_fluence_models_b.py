"""Parsing today's Fluence API (generation B, `GET /v2/vms`), where VMs run, the account's balance, and the
money of generation A. The VM below follows fluence-api.md §4 and the OpenAPI `UserVmDto`, written by hand."""

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vms.fluence.errors import BadResponse
from vms.fluence.models import (
    Balance,
    Datacenter,
    StatusClass,
    Unreadable,
    Vm,
    datacenters_of,
    parse_balance,
    parse_locations,
    parse_vm,
    parse_vm_list,
    parse_vm_list_lenient,
)

from .test_fluence_models import EXAMPLE_VM_JSON, json_values

VM_ID = "5d0c8f3e-7a41-4b6e-9c2d-1f0a3b4c5d6e"
CLUSTER_ID = "92e6ed24-8bfa-4737-9409-a1aac994e1f5"
DATACENTER_ID = "e4b1c7d2-5a3f-4e8b-9c1d-2f3a4b5c6d7e"
PUBLIC_IP_ID = "4a6f0e2c-3b1d-4c8e-9f7a-5b2d1e0c9a8f"
BOOT_DISK_ID = "b7e1c2d3-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
DATA_DISK_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
USER_ID = "9ba32273-49e6-4655-b193-b29f61752c2f"

B_VM_JSON = f"""
{{
  "id": "{VM_ID}",
  "userId": "{USER_ID}",
  "clusterId": "{CLUSTER_ID}",
  "configurationId": "0c7d9a1b-2e3f-4a5b-8c6d-7e8f9a0b1c2d",
  "configurationName": "Regular 4 vCPU / 8 GB",
  "configurationSlug": "cpu-regular-4vcpu-8gb",
  "name": "web-01",
  "status": "launched",
  "restartRequired": false,
  "allowedActions": ["addPublicIp", "addStorages", "restart", "softReboot", "terminate"],
  "priceHourlyUsd": "0.0685",
  "priceMonthlyUsd": "50.005",
  "vcpu": 4,
  "ramGb": 8,
  "publicIp": "{PUBLIC_IP_ID}",
  "bootDisk": "{BOOT_DISK_ID}",
  "dataDisks": ["{DATA_DISK_ID}"],
  "subnets": ["0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"],
  "sshKeys": ["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"],
  "networkInterfaces": ["6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a"],
  "createdAt": "2026-02-10T09:15:03.123456Z",
  "updatedAt": "2026-02-12T18:02:44Z",
  "readySince": "2026-02-10T09:17:41Z",
  "lastPaidAt": "2026-02-14T00:00:00Z",
  "paidUntil": "2026-02-14T01:00:00+01:00",
  "terminatedAt": null,
  "cloudInit": null,
  "expanded": {{
    "publicIp": {{
      "id": "{PUBLIC_IP_ID}", "userId": "{USER_ID}", "clusterId": "{CLUSTER_ID}", "name": "web-01-ip",
      "addressType": "V4", "status": "ready", "address": "203.0.113.24",
      "attachedTo": {{"id": "{VM_ID}", "name": "web-01"}}, "createdAt": "2026-02-10T09:15:03Z"
    }},
    "bootDisk": {{
      "id": "{BOOT_DISK_ID}", "userId": "{USER_ID}", "clusterId": "{CLUSTER_ID}", "name": "web-01-boot",
      "storageType": "NVME", "status": "ready", "role": "BOOT", "volumeGb": 80, "replicated": false,
      "attachedTo": ["{VM_ID}"], "createdAt": "2026-02-10T09:15:03Z"
    }}
  }},
  "placementGroup": {{"name": "spread", "zone": 2}}
}}
"""


@pytest.fixture
def b_vm() -> dict:
    return json.loads(B_VM_JSON)


def b_with(obj: dict, locations=None, **changes) -> Vm:
    obj = copy.deepcopy(obj)
    for name, value in changes.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return parse_vm(obj, generation="b", locations=locations)


def fields_of(vm: Vm) -> list[str]:
    return [item.field for item in vm.unreadable]


def _at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the VM of today's API ---------------------------------------------------------------------------------


def test_b_vm_every_field(b_vm):
    vm = parse_vm(b_vm, generation="b")

    assert vm.generation == "b"
    assert vm.unreadable == ()
    assert vm.id == VM_ID and vm.key == VM_ID
    assert vm.name == "web-01" and vm.display_name == "web-01"
    assert vm.status.raw == "launched"
    assert vm.status.label == "Launched"
    assert vm.status.css_class is StatusClass.OK

    assert vm.price_hourly_usd == Decimal("0.0685")
    assert vm.price_monthly_usd == Decimal("50.005")
    assert isinstance(vm.price_hourly_usd, Decimal) and isinstance(vm.price_monthly_usd, Decimal)
    assert vm.currency == "USD"
    assert vm.billed_per_second
    assert vm.cost_per_day == Decimal("1.644")  # hourly x 24
    assert vm.cost_per_month == Decimal("50.005")  # as Fluence gives it

    assert vm.vcpu_count == 4 and vm.vcpu == 4
    assert vm.ram_gb == Decimal(8)
    assert vm.ram_mib == Decimal(8 * 1000**3) / Decimal(1024**2) == Decimal("7629.39453125")  # decimal GB
    assert vm.storage_gb == Decimal(80)  # the expanded boot disk
    assert vm.storage_mib == Decimal(80 * 1000**3) / Decimal(1024**2)
    assert vm.configuration_name == "Regular 4 vCPU / 8 GB"

    assert vm.cluster_id == CLUSTER_ID
    assert vm.datacenter is None  # no locations given
    assert vm.allowed_actions == ("addPublicIp", "addStorages", "restart", "softReboot", "terminate")
    assert vm.can_terminate
    assert vm.restart_required is False

    assert vm.created_at == _at(2026, 2, 10, 9, 15, 3, 123456)
    assert vm.updated_at == _at(2026, 2, 12, 18, 2, 44)
    assert vm.ready_since == _at(2026, 2, 10, 9, 17, 41)
    assert vm.last_paid_at == _at(2026, 2, 14, 0, 0, 0)
    assert vm.paid_until == _at(2026, 2, 14, 0, 0, 0)  # +01:00, in UTC
    assert vm.terminated_at is None

    assert vm.public_ip == "203.0.113.24"  # expanded.publicIp.address
    assert vm.public_ip_id == PUBLIC_IP_ID
    assert vm.public_ip_count == 1
    assert vm.boot_disk == BOOT_DISK_ID
    assert vm.data_disks == (DATA_DISK_ID,)

    # The 2025 APIs' fields have no counterpart here.
    assert vm.price_per_epoch is None
    assert vm.reserved_balance is None and vm.total_spent is None
    assert vm.next_billing_at is None and vm.epoch_started_at is None
    assert vm.os_image is None and vm.os_image_name is None
    assert vm.ports == () and vm.resources == ()

    assert vm.raw == b_vm
    assert vm.raw["placementGroup"] == {"name": "spread", "zone": 2}  # unknown fields are kept
    assert vm.raw["cloudInit"] is None
    assert vm.raw_snapshot() == b_vm


def test_a_b_vm_is_immutable(b_vm):
    vm = parse_vm(b_vm, generation="b")
    with pytest.raises(AttributeError):
        vm.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        vm.raw["expanded"]["publicIp"]["address"] = "x"  # type: ignore[index]
    b_vm["name"] = "changed later"
    assert vm.name == "web-01"


def test_cloud_init_marker_and_absent_expansion(b_vm):
    vm = b_with(b_vm, cloudInit={}, expanded=...)
    assert vm.unreadable == ()
    assert vm.raw["cloudInit"] == {}
    assert vm.public_ip is None and vm.public_ip_id == PUBLIC_IP_ID
    assert vm.public_ip_count == 0  # no address known
    assert vm.storage_gb is None and vm.storage_mib is None
    assert b_with(b_vm, expanded=None).unreadable == ()


def test_a_b_list_and_a_lenient_one(b_vm):
    other = dict(copy.deepcopy(b_vm), id="3f2504e0-4f89-11d3-9a0c-0305e82c3301", name="db-01")
    vms = parse_vm_list([b_vm, other], generation="b")
    assert [vm.name for vm in vms] == ["web-01", "db-01"]
    assert all(vm.generation == "b" for vm in vms)
    vms, dropped = parse_vm_list_lenient([b_vm, {"id": "0x1"}, dict(b_vm, vcpu="4")], generation="b")
    assert [vm.id for vm in vms] == [VM_ID, VM_ID]
    assert fields_of(vms[1]) == ["vcpu"]
    assert len(dropped) == 1
    with pytest.raises(BadResponse):
        parse_vm_list([b_vm, {"id": "0x1"}], generation="b")


# --- terminating -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "can_terminate"),
    [
        (["restart", "softReboot", "terminate"], True),
        (["terminate"], True),
        (["restart", "softReboot"], False),
        ([], False),
        (..., False),  # absent: nothing is known to be allowed
        (None, False),
    ],
)
def test_can_terminate_follows_allowed_actions(b_vm, allowed, can_terminate):
    vm = b_with(b_vm, allowedActions=allowed)
    assert vm.can_terminate is can_terminate
    assert vm.unreadable == ()


def test_the_2025_apis_always_allow_terminating():
    for generation in ("baseline", "a"):
        vm = parse_vm(json.loads(EXAMPLE_VM_JSON), generation=generation)
        assert vm.allowed_actions is None and vm.can_terminate


# --- statuses ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "label", "css_class"),
    [
        ("new", "New", StatusClass.TRANSITIONAL),
        ("launching", "Launching", StatusClass.TRANSITIONAL),
        ("launched", "Launched", StatusClass.OK),
        ("failed", "Failed", StatusClass.ENDED),
        ("updating", "Updating", StatusClass.TRANSITIONAL),
        ("terminating", "Terminating", StatusClass.TRANSITIONAL),
        ("terminated", "Terminated", StatusClass.ENDED),
        ("suspending", "Suspending", StatusClass.TRANSITIONAL),
        ("suspended", "Suspended", StatusClass.ATTENTION),
        ("restarting", "Restarting", StatusClass.TRANSITIONAL),
        ("softRebooting", "Soft rebooting", StatusClass.TRANSITIONAL),
        ("unknown", "unknown", StatusClass.UNKNOWN),
        ("draft", "draft", StatusClass.UNKNOWN),  # the console's, shown raw
    ],
)
def test_every_b_status(b_vm, raw, label, css_class):
    vm = b_with(b_vm, status=raw)
    assert vm.status.raw == raw
    assert vm.status.label == label
    assert vm.status.css_class is css_class
    assert vm.unreadable == ()


# --- prices ------------------------------------------------------------------------------------------------


def test_without_an_hourly_price_a_day_comes_from_the_monthly_one(b_vm):
    vm = b_with(b_vm, priceHourlyUsd=None)
    assert vm.price_hourly_usd is None
    assert vm.cost_per_day == Decimal("1.644")  # 50.005 / 730 x 24
    assert vm.cost_per_month == Decimal("50.005")
    assert vm.unreadable == ()


def test_without_a_monthly_price_a_month_is_730_hours(b_vm):
    vm = b_with(b_vm, priceMonthlyUsd=...)
    assert vm.price_monthly_usd is None
    assert vm.cost_per_day == Decimal("1.644")
    assert vm.cost_per_month == Decimal("50.005")  # 0.0685 x 730


@pytest.mark.parametrize("missing", [None, ...])
def test_without_any_price_the_cost_is_unknown(b_vm, missing):
    vm = b_with(b_vm, priceHourlyUsd=missing, priceMonthlyUsd=missing)
    assert vm.cost_per_day is None and vm.cost_per_month is None
    assert vm.unreadable == ()  # both prices are nullable: no price is no problem


def test_an_unreadable_hourly_price_is_named_and_the_monthly_one_used(b_vm):
    vm = b_with(b_vm, priceHourlyUsd="0,0685")
    assert vm.price_hourly_usd is None
    assert fields_of(vm) == ["priceHourlyUsd"]
    assert vm.cost_per_day == Decimal("1.644")
    assert vm.name == "web-01"


# --- unreadable fields -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "attribute", "empty"),
    [
        ("vcpu", "4", "vcpu_count", None),
        ("vcpu", 4.5, "vcpu_count", None),
        ("ramGb", "eight", "ram_gb", None),
        ("ramGb", -8, "ram_gb", None),
        ("name", 7, "name", None),
        ("status", ["launched"], "status", None),
        ("createdAt", "yesterday", "created_at", None),
        ("updatedAt", 1770887000, "updated_at", None),
        ("readySince", "2026-02-10", "ready_since", None),
        ("lastPaidAt", "2026-13-01T00:00:00Z", "last_paid_at", None),
        ("paidUntil", True, "paid_until", None),
        ("terminatedAt", "soon", "terminated_at", None),
        ("allowedActions", "terminate", "allowed_actions", ()),
        ("allowedActions", ["terminate", 1], "allowed_actions", ()),
        ("priceMonthlyUsd", 50.005, "price_monthly_usd", None),
        # Beyond any plausible number (vms.fluence.numbers): 500s on the list page before.
        ("priceHourlyUsd", "9" * 64, "price_hourly_usd", None),
        ("priceMonthlyUsd", "1000000000000", "price_monthly_usd", None),
        ("ramGb", "1" + "0" * 40, "ram_gb", None),
        ("ramGb", 1e300, "ram_gb", None),
        ("vcpu", 10**40, "vcpu_count", None),
        ("vcpu", -(10**12), "vcpu_count", None),
        ("restartRequired", "no", "restart_required", None),
        ("clusterId", 5, "cluster_id", None),
        ("configurationName", ["x"], "configuration_name", None),
        ("publicIp", {"address": "1.2.3.4"}, "public_ip_id", None),
        ("bootDisk", 1, "boot_disk", None),
        ("dataDisks", "disk", "data_disks", ()),
    ],
)
def test_an_unreadable_b_field_is_empty_and_named(b_vm, field, value, attribute, empty):
    vm = b_with(b_vm, **{field: value})
    assert fields_of(vm) == [field]
    assert all(isinstance(item, Unreadable) and item.reason for item in vm.unreadable)
    assert vm.field_unreadable(field)
    if attribute == "status":
        assert vm.status.raw == "" and vm.status.css_class is StatusClass.UNKNOWN
    else:
        assert getattr(vm, attribute) == empty
    # The rest is read as usual.
    expected = parse_vm(b_vm, generation="b")
    assert vm.id == VM_ID
    for other in (
        "name",
        "created_at",
        "price_hourly_usd",
        "vcpu_count",
        "ram_gb",
        "public_ip",
        "data_disks",
    ):
        if other != attribute:
            assert getattr(vm, other) == getattr(expected, other), other
    assert vm.raw[field] == value  # still there to see


def test_unreadable_allowed_actions_offer_no_termination(b_vm):
    assert not b_with(b_vm, allowedActions="terminate").can_terminate
    assert not b_with(b_vm, allowedActions={"terminate": True}).can_terminate


def test_an_unreadable_vcpu_leaves_the_vcpu_unknown(b_vm):
    vm = b_with(b_vm, vcpu="4")
    assert vm.vcpu is None
    assert vm.ram_mib == Decimal("7629.39453125")


@pytest.mark.parametrize(
    ("expanded", "field", "attribute"),
    [
        ({"publicIp": {"address": 5}}, "expanded.publicIp.address", "public_ip"),
        ({"bootDisk": {"volumeGb": "big"}}, "expanded.bootDisk.volumeGb", "storage_gb"),
        ({"bootDisk": {"volumeGb": -1}}, "expanded.bootDisk.volumeGb", "storage_gb"),
        ({"bootDisk": {"volumeGb": 10**40}}, "expanded.bootDisk.volumeGb", "storage_gb"),
    ],
)
def test_an_unreadable_expanded_field_is_named_with_its_path(b_vm, expanded, field, attribute):
    vm = b_with(b_vm, expanded=expanded)
    assert getattr(vm, attribute) is None
    assert fields_of(vm) == [field]
    assert vm.field_unreadable("expanded")
    assert vm.id == VM_ID and vm.name == "web-01" and vm.public_ip_id == PUBLIC_IP_ID


@pytest.mark.parametrize("expanded", ["publicIp", ["publicIp"], 1])
def test_expanded_that_is_no_object_is_noted_and_the_vm_kept(b_vm, expanded):
    vm = b_with(b_vm, expanded=expanded)
    assert vm.public_ip is None and vm.storage_gb is None
    assert vm.unreadable and all("expanded" in item.reason for item in vm.unreadable)
    assert vm.public_ip_id == PUBLIC_IP_ID and vm.boot_disk == BOOT_DISK_ID  # the ids are still read
    assert vm.id == VM_ID and vm.name == "web-01" and vm.cost_per_day == Decimal("1.644")


@pytest.mark.parametrize(
    ("expanded", "fields"),
    [
        ("publicIp", ["expanded"]),
        ({"publicIp": "203.0.113.24"}, ["expanded.publicIp"]),
        ({"bootDisk": ["x"]}, ["expanded.bootDisk"]),
    ],
)
def test_expanded_that_is_no_object_is_named_by_its_path(b_vm, expanded, fields):
    vm = b_with(b_vm, expanded=expanded)
    assert sorted(set(fields_of(vm))) == fields
    assert not vm.field_unreadable("publicIp")  # the id beside it was read


# --- where a VM runs ---------------------------------------------------------------------------------------

CLUSTERS = {
    "items": [
        {"id": CLUSTER_ID, "name": "Cloudless", "dcId": DATACENTER_ID},
        {"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "Orphan", "dcId": "no-such-dc"},
        {"name": "no id", "dcId": DATACENTER_ID},
        "not a cluster",
    ],
    "pagination": {"totalRecords": 4},
}
DATACENTERS = {
    "items": [
        {
            "id": DATACENTER_ID,
            "countryCode": "de",
            "cityCode": "fra",
            "cityName": "Frankfurt",
            "index": 2,
            "tier": 3,
            "certifications": ["ISO/IEC 27001:2022"],
            "slug": "de-fra-2",
        },
        {"id": "bbbbbbbb-0000-4000-8000-000000000002", "countryCode": "US", "cityCode": "NYC"},
        7,
    ]
}
FRANKFURT = Datacenter(
    id=DATACENTER_ID,
    country_code="DE",
    city_code="FRA",
    city_index=2,
    tier=3,
    certifications=("ISO/IEC 27001:2022",),
)


def test_parse_locations_maps_clusters_to_their_datacenter():
    located = parse_locations(CLUSTERS, DATACENTERS)
    assert located == {CLUSTER_ID: DATACENTERS["items"][0]}  # unknown or unreadable clusters left out


@pytest.mark.parametrize(
    ("clusters", "datacenters"),
    [
        ([], DATACENTERS),
        (CLUSTERS, []),
        ({"items": "x"}, DATACENTERS),
        (CLUSTERS, {"data": []}),
        (None, None),
    ],
)
def test_parse_locations_wants_items_lists(clusters, datacenters):
    with pytest.raises(BadResponse):
        parse_locations(clusters, datacenters)


def test_datacenters_of_reads_index_as_the_city_index():
    assert datacenters_of(parse_locations(CLUSTERS, DATACENTERS)) == {CLUSTER_ID: FRANKFURT}
    assert datacenters_of({}) == {}
    assert datacenters_of({CLUSTER_ID: "not a datacenter"}) == {}


def test_datacenters_of_keeps_the_readable_rest_of_an_odd_datacenter():
    odd = {**DATACENTERS["items"][0], "tier": "three", "index": "2"}
    datacenter = datacenters_of({CLUSTER_ID: odd})[CLUSTER_ID]
    assert datacenter.tier is None and datacenter.city_index is None
    assert (datacenter.id, datacenter.country_code, datacenter.city_code) == (DATACENTER_ID, "DE", "FRA")


def test_a_b_vm_is_located_through_its_cluster(b_vm):
    locations = datacenters_of(parse_locations(CLUSTERS, DATACENTERS))
    vm = b_with(b_vm, locations=locations)
    assert vm.datacenter == FRANKFURT
    assert vm.unreadable == ()
    vms = parse_vm_list([b_vm], generation="b", locations=locations)
    assert vms[0].datacenter == FRANKFURT


@pytest.mark.parametrize("cluster_id", ["aaaaaaaa-0000-4000-8000-000000000001", "unknown", None, ...])
def test_a_b_vm_in_an_unknown_cluster_has_no_datacenter(b_vm, cluster_id):
    locations = datacenters_of(parse_locations(CLUSTERS, DATACENTERS))
    vm = b_with(b_vm, locations=locations, clusterId=cluster_id)
    assert vm.datacenter is None
    assert vm.unreadable == ()  # not knowing where is no unreadable field
    assert vm.name == "web-01"


# --- the account's balance ---------------------------------------------------------------------------------


def entitlement(**changes) -> dict:
    entry = {
        "balance": "42.50",
        "usage": "7.25",
        "estimatedUsage": "49.32",
        "overage": "0",
        "totalDepositedAmount": "100.00",
        "usageDaysLeft": 25,
        "userId": USER_ID,
        "featureKey": "compute",
    }
    entry.update(changes)
    return entry


def test_parse_balance_of_one_entitlement():
    balance = parse_balance([entitlement()])
    assert balance == Balance(balance=Decimal("42.50"), usage=Decimal("7.25"), days_left=25)
    assert balance.currency == "USD"
    assert isinstance(balance.balance, Decimal)


def test_parse_balance_adds_several_entitlements_up():
    balance = parse_balance(
        [entitlement(), entitlement(balance="10.05", usage="0.75", usageDaysLeft=3, featureKey="storage")]
    )
    assert balance.balance == Decimal("52.55")
    assert balance.usage == Decimal("8.00")
    assert balance.days_left == 3  # the shortest runway


@pytest.mark.parametrize("days", [None, ..., "25", -1, True])
def test_parse_balance_without_readable_days_left(days):
    entry = entitlement()
    if days is ...:
        del entry["usageDaysLeft"]
    else:
        entry["usageDaysLeft"] = days
    balance = parse_balance([entry])
    assert balance.days_left is None
    assert balance.balance == Decimal("42.50")


@pytest.mark.parametrize(
    "amount", [42.5, "lots", None, ..., "1e3", True, "9" * 64, "1000000000000", 10**40, "\u0664\u0662"]
)
def test_parse_balance_with_an_unreadable_amount(amount):
    entry = entitlement()
    if amount is ...:
        del entry["balance"]
    else:
        entry["balance"] = amount
    balance = parse_balance([entitlement(), entry])
    assert balance.balance is None  # a partial sum would understate the balance
    assert balance.usage == Decimal("14.50")
    assert balance.days_left == 25


@pytest.mark.parametrize("answer", [[], ["x", 1, None]])
def test_parse_balance_without_entitlements_is_none(answer):
    assert parse_balance(answer) is None


@pytest.mark.parametrize("answer", [{"balance": "42.50"}, {"items": []}, "42.50", None, 42])
def test_parse_balance_of_no_array_is_bad_response(answer):
    with pytest.raises(BadResponse):
        parse_balance(answer)


# --- the money of generation A -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "reserved", "spent"),
    [
        ("a", Decimal(5), Decimal(17846000)),  # generation A: digit-only strings are whole USDC
        ("baseline", Decimal("0.000005"), Decimal("17.846000")),  # the baseline: micro-USDC
    ],
)
def test_digit_only_money_strings_by_generation(generation, reserved, spent):
    obj = dict(json.loads(EXAMPLE_VM_JSON), reservedBalance="5", totalSpent="17846000")
    vm = parse_vm(obj, generation=generation)
    assert vm.generation == generation
    assert vm.reserved_balance == reserved
    assert vm.total_spent == spent
    assert vm.currency == "USDC"
    assert vm.unreadable == ()


@pytest.mark.parametrize("generation", ["a", "baseline"])
def test_decimal_money_strings_read_alike_in_both_2025_generations(generation):
    obj = dict(
        json.loads(EXAMPLE_VM_JSON), pricePerEpoch="2.4352", reservedBalance="0.35944", totalSpent=".5"
    )
    vm = parse_vm(obj, generation=generation)
    assert (vm.price_per_epoch, vm.reserved_balance, vm.total_spent) == (
        Decimal("2.4352"),
        Decimal("0.35944"),
        Decimal("0.5"),
    )
    assert vm.cost_per_day == Decimal("2.4352")
    assert round(vm.cost_per_month, 6) == Decimal("74.070667")  # 2.4352 / 24 x 730


def test_a_generation_a_vm_with_a_missing_price_is_kept():
    obj = json.loads(EXAMPLE_VM_JSON)
    del obj["pricePerEpoch"]
    vm = parse_vm(obj, generation="a")
    assert vm.price_per_epoch is None and vm.cost_per_day is None
    assert [item.field for item in vm.unreadable] == ["pricePerEpoch"]


# --- property tests ----------------------------------------------------------------------------------------

B_KEYS = [
    "name", "status", "allowedActions", "priceHourlyUsd", "priceMonthlyUsd", "vcpu", "ramGb", "clusterId",
    "configurationName", "publicIp", "bootDisk", "dataDisks", "restartRequired", "createdAt", "updatedAt",
    "readySince", "lastPaidAt", "paidUntil", "terminatedAt", "expanded", "cloudInit",
]  # fmt: skip
b_values = (
    json_values
    | st.sampled_from(["0.0685", "50.005", "launched", "terminate", "2026-02-10T09:15:03Z", CLUSTER_ID])
    | st.fixed_dictionaries(
        {},
        optional={
            "publicIp": json_values | st.fixed_dictionaries({}, optional={"address": json_values}),
            "bootDisk": json_values | st.fixed_dictionaries({}, optional={"volumeGb": json_values}),
        },
    )
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([VM_ID, "0x0000000000000000000000000000000000000001"]),
    st.dictionaries(st.sampled_from(B_KEYS), b_values),
)
def test_a_usable_id_alone_always_gives_a_b_vm(vm_id, fields):
    obj = {**fields, "id": vm_id}
    locations = {CLUSTER_ID: FRANKFURT}
    vm = parse_vm(obj, generation="b", locations=locations)
    assert vm.id == vm_id and vm.generation == "b" and vm.currency == "USD"
    _ = (vm.cost_per_day, vm.cost_per_month, vm.can_terminate, vm.ram_mib, vm.storage_mib, vm.vcpu)
    _ = (
        vm.status.label,
        vm.status.css_class,
        vm.display_name,
        vm.public_ip_count,
        hash(vm),
        vm.raw_snapshot(),
    )
    for amount in (vm.price_hourly_usd, vm.price_monthly_usd, vm.cost_per_day, vm.cost_per_month):
        assert amount is None or isinstance(amount, Decimal)
    assert vm.datacenter in (None, FRANKFURT)
    for item in vm.unreadable:
        assert isinstance(item, Unreadable) and item.reason
        top = item.field.split(".")[0]
        assert top in obj
