"""Parsing Fluence's VM JSON: the documented example, every documented variant, and bad input.

A VM with an unreadable field is still a VM (it costs money, so it must stay visible and deletable): the field
is None or empty and named in `vm.unreadable`. Only an item without a usable id is no VM at all.
Generation B (today's API) is in test_fluence_models_b.py."""

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vms.display import format_mib, format_usdc, format_utc, resource_label
from vms.fluence import (
    EPOCH,
    BadResponse,
    Datacenter,
    Port,
    Status,
    StatusClass,
    Unreadable,
    Vm,
    is_valid_vm_id,
    parse_money,
    parse_timestamp,
    parse_vm,
    parse_vm_list,
)
from vms.fluence.decoding import read_vm_list
from vms.fluence.models import OutOfRange, parse_datacenter, parse_vm_list_lenient

# Verbatim from fluence-api.md §1.
EXAMPLE_VM_JSON = """
{
  "id": "0x0000000000000000000000000000000000000001",
  "vmName": "vm-name",
  "status": "ACTIVE",
  "pricePerEpoch": 298160,
  "resources": [
    {"type": "VCPU", "quantity": 2, "details": {"model": "7702p"},
     "metadata": {"architecture": "Zen", "brand": "EPYC", "generation": "2", "manufacturer": "AMD"}},
    {"type": "RAM", "quantity": 4096, "details": {"manufacturer": "Samsung", "model": "DGX", "speed": 3600},
     "metadata": {"generation": "4", "type": "DDR"}},
    {"type": "STORAGE", "quantity": 25600, "details": {"manufacturer": "WD", "sequentialWriteSpeed": 15000},
     "metadata": {"type": "SSD"}},
    {"type": "PUBLIC_IP", "quantity": 1, "details": {}, "metadata": {"version": "4"}}
  ],
  "createdAt": "+002025-04-01T16:50:57.000000000Z",
  "nextBillingAt": "+002025-04-16T17:59:55.000000000Z",
  "osImage": "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img",
  "datacenter": {
    "id": "0x0000000000000000000000000000000000000000000000000000000000000005",
    "countryCode": "FR", "cityCode": "PAR", "cityIndex": 1, "tier": 4,
    "certifications": ["PCI DSS", "ISO 9001:2015", "ISO/IEC 27001:2022"]
  },
  "publicIp": "154.42.3.159",
  "ports": [{"port": 22, "protocol": "tcp"}],
  "reservedBalance": "359440",
  "totalSpent": "17846000"
}
"""


@pytest.fixture
def example() -> dict:
    return json.loads(EXAMPLE_VM_JSON)


def vm_with(example: dict, **changes) -> Vm:
    obj = copy.deepcopy(example)
    for name, value in changes.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return parse_vm(obj)


# The example's JSON fields and the Vm attributes they become.
ATTRIBUTES = {
    "vmName": "name",
    "status": "status",
    "pricePerEpoch": "price_per_epoch",
    "resources": "resources",
    "createdAt": "created_at",
    "nextBillingAt": "next_billing_at",
    "osImage": "os_image",
    "datacenter": "datacenter",
    "publicIp": "public_ip",
    "ports": "ports",
    "reservedBalance": "reserved_balance",
    "totalSpent": "total_spent",
}


def unreadable_fields(vm: Vm) -> list[str]:
    return [item.field for item in vm.unreadable]


def assert_only_unreadable(vm: Vm, example: dict, field: str) -> None:
    """`field` ("datacenter.tier" when nested) is the one field noted, with a reason; every other field of
    the example is read as usual."""
    assert unreadable_fields(vm) == [field]
    assert all(isinstance(item, Unreadable) and item.reason for item in vm.unreadable)
    top = field.split(".")[0]
    assert vm.field_unreadable(top) and vm.field_unreadable(field)
    assert vm.id == example["id"]
    assert vm.name == "vm-name"
    expected = parse_vm(example)
    for name, attribute in ATTRIBUTES.items():
        if name != top:
            assert getattr(vm, attribute) == getattr(expected, attribute), name


# --- the documented example --------------------------------------------------------------------------------


def test_example_vm_every_field(example):
    vm = parse_vm(example)

    assert vm.id == "0x0000000000000000000000000000000000000001"
    assert vm.key == vm.id
    assert vm.name == "vm-name"
    assert vm.display_name == "vm-name"
    assert vm.status.raw == "ACTIVE"
    assert vm.status.key == "active"
    assert vm.status.label == "Active"
    assert vm.status.css_class is StatusClass.OK
    assert not vm.status.is_transitional and not vm.status.needs_attention and not vm.status.is_ended

    assert vm.price_per_epoch == Decimal("0.298160")
    assert vm.reserved_balance == Decimal("0.359440")
    assert vm.total_spent == Decimal("17.846000")
    assert all(isinstance(v, Decimal) for v in (vm.price_per_epoch, vm.reserved_balance, vm.total_spent))
    assert format_usdc(vm.price_per_epoch) == "0.298160"
    assert format_usdc(vm.reserved_balance) == "0.359440"
    assert format_usdc(vm.total_spent) == "17.846000"

    assert vm.created_at == datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)
    assert vm.next_billing_at == datetime(2025, 4, 16, 17, 59, 55, tzinfo=UTC)
    assert vm.created_at.utcoffset() == timedelta(0)
    assert vm.epoch_started_at == datetime(2025, 4, 15, 17, 59, 55, tzinfo=UTC)
    assert timedelta(hours=24) == EPOCH
    assert format_utc(vm.created_at) == "2025-04-01 16:50:57 UTC"
    assert format_utc(vm.next_billing_at) == "2025-04-16 17:59:55 UTC"
    assert format_utc(vm.epoch_started_at) == "2025-04-15 17:59:55 UTC"

    assert vm.os_image == (
        "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img"
    )
    assert vm.os_image_name == "ubuntu-22.04-server-cloudimg-amd64.img"

    assert vm.datacenter == Datacenter(
        id="0x0000000000000000000000000000000000000000000000000000000000000005",
        country_code="FR",
        city_code="PAR",
        city_index=1,
        tier=4,
        certifications=("PCI DSS", "ISO 9001:2015", "ISO/IEC 27001:2022"),
    )
    assert vm.public_ip == "154.42.3.159"
    assert vm.public_ip_count == 1
    assert vm.ports == (Port(port=22, protocol="tcp"),)

    vcpu, ram, storage, public_ip = vm.resources
    assert (vcpu.type, vcpu.quantity, vcpu.unit) == ("VCPU", Decimal(2), None)
    assert vcpu.mebibytes is None
    assert (ram.type, ram.quantity, ram.mebibytes) == ("RAM", Decimal(4096), Decimal(4096))
    assert (storage.type, storage.quantity, storage.mebibytes) == ("STORAGE", Decimal(25600), Decimal(25600))
    assert (public_ip.type, public_ip.quantity) == ("PUBLIC_IP", Decimal(1))
    # The hardware facts, for the VM's page: read from its own JSON, beside the resources they belong to.
    facts = vm.resource_facts
    assert [item.resource for item in facts] == list(vm.resources)
    assert [(item.details, item.metadata) for item in facts] == [
        (
            {"model": "7702p"},
            {"architecture": "Zen", "brand": "EPYC", "generation": "2", "manufacturer": "AMD"},
        ),
        ({"manufacturer": "Samsung", "model": "DGX", "speed": 3600}, {"generation": "4", "type": "DDR"}),
        ({"manufacturer": "WD", "sequentialWriteSpeed": 15000}, {"type": "SSD"}),
        ({}, {"version": "4"}),
    ]
    assert [resource_label(item) for item in facts] == [
        "2 vCPU",
        "4 GiB RAM",
        "25 GiB storage (SSD)",
        "1 public IPv4",
    ]
    assert resource_label(storage) == "25 GiB storage"  # without its facts, no kind

    assert vm.vcpu == 2
    assert vm.ram_mib == Decimal(4096)
    assert vm.storage_mib == Decimal(25600)
    assert format_mib(vm.ram_mib) == "4 GiB"
    assert format_mib(vm.storage_mib) == "25 GiB"

    assert vm.raw == example
    assert vm.raw_snapshot() == example

    assert vm.generation == "baseline"
    assert vm.unreadable == ()
    assert not vm.field_unreadable("pricePerEpoch")
    assert vm.currency == "USDC"
    assert not vm.billed_per_second
    assert vm.cost_per_day == Decimal("0.298160")  # one 24 h epoch
    assert round(vm.cost_per_month, 6) == Decimal("9.069033")  # 0.298160 / 24 x 730
    assert vm.allowed_actions is None
    assert vm.can_terminate


def test_parse_vm_list_of_the_example(example):
    vms = parse_vm_list([example, example])
    assert [vm.id for vm in vms] == [example["id"]] * 2
    assert parse_vm_list([]) == []


def test_vm_is_immutable_and_does_not_share_the_input(example):
    vm = parse_vm(example)
    with pytest.raises(AttributeError):
        vm.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        vm.raw["id"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        vm.resource_facts[0].details["model"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        vm.raw["datacenter"]["tier"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        vm.raw["resources"].append({})  # type: ignore[union-attr]
    assert isinstance(vm.resources, tuple) and isinstance(vm.ports, tuple)
    assert isinstance(vm.datacenter.certifications, tuple)
    example["vmName"] = "changed later"
    example["resources"][0]["details"]["model"] = "changed later"
    assert vm.name == "vm-name"
    assert vm.raw["vmName"] == "vm-name"
    assert vm.resource_facts[0].details["model"] == "7702p"


def test_a_list_handed_over_is_kept_without_a_copy_yet_read_only(example):
    data = [copy.deepcopy(example), copy.deepcopy(example)]
    kept = parse_vm_list(data, copy=False)
    copied = parse_vm_list(copy.deepcopy(data))
    assert kept == copied and [vm.raw for vm in kept] == [vm.raw for vm in copied] == data
    for vm in kept:
        with pytest.raises(TypeError):
            vm.raw["id"] = "x"  # type: ignore[index]
        with pytest.raises(TypeError):
            vm.raw["datacenter"]["tier"] = 1  # type: ignore[index]
        with pytest.raises(TypeError):
            vm.resource_facts[0].details["model"] = "x"  # type: ignore[index]
        assert vm.raw_snapshot() == example and vm.raw_snapshot() is not vm.raw_snapshot()
    # What a caller may change afterwards: with copy=True (the default), nothing of the VMs.
    data[0]["vmName"] = "changed later"
    assert copied[0].raw["vmName"] == "vm-name"


def test_a_lenient_list_handed_over_drops_only_items_that_are_no_vm_like_a_copied_one(example):
    data = [example, {"id": "not an id"}, "not an object", dict(example, pricePerEpoch="abc")]
    kept, kept_problems = parse_vm_list_lenient(copy.deepcopy(data), copy=False)
    copied, copied_problems = parse_vm_list_lenient(copy.deepcopy(data))
    assert kept == copied and len(kept) == 2
    assert kept[0].unreadable == ()
    assert unreadable_fields(kept[1]) == ["pricePerEpoch"] and kept[1].price_per_epoch is None
    assert kept_problems == copied_problems and len(kept_problems) == 2
    with pytest.raises(BadResponse):
        parse_vm_list(copy.deepcopy(data), copy=False)


def test_vm_survives_cache_pickling_and_json_snapshot(example):
    vm = parse_vm(example)
    again = pickle.loads(pickle.dumps(vm))  # noqa: S301 (our own object)
    assert again == vm
    assert again.raw == vm.raw
    assert hash(again) == hash(vm)
    assert json.loads(json.dumps(vm.raw)) == example


def test_ids_compare_case_insensitively(example):
    vm = vm_with(example, id="0xABCDEFabcdef0000000000000000000000000001")
    assert vm.id == "0xABCDEFabcdef0000000000000000000000000001"
    assert vm.key == "0xabcdefabcdef0000000000000000000000000001"


# --- money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (298160, Decimal("0.298160")),
        (0, Decimal(0)),
        ("2.4352", Decimal("2.4352")),
        (".30697", Decimal("0.30697")),
        ("0.298160", Decimal("0.298160")),
        ("2", Decimal(2)),  # a string price is always USDC
    ],
)
def test_price_per_epoch_forms(example, price, expected):
    vm = vm_with(example, pricePerEpoch=price)
    assert vm.price_per_epoch == expected
    assert isinstance(vm.price_per_epoch, Decimal)


@pytest.mark.parametrize(
    ("balance", "expected"),
    [
        ("359440", Decimal("0.359440")),  # baseline: digits only = micro-USDC
        ("17846000", Decimal("17.846000")),
        ("0.35944", Decimal("0.35944")),  # later versions: decimal USDC
        ("17.846", Decimal("17.846")),
        (".5", Decimal("0.5")),
        (359440, Decimal("0.359440")),
    ],
)
def test_balance_forms(example, balance, expected):
    vm = vm_with(example, reservedBalance=balance, totalSpent=balance)
    assert vm.reserved_balance == expected
    assert vm.total_spent == expected


def test_absent_balances_are_none(example):
    vm = vm_with(example, reservedBalance=..., totalSpent=None)
    assert vm.reserved_balance is None
    assert vm.total_spent is None


@pytest.mark.parametrize(
    ("value", "micro", "expected"),
    [
        (298160, True, Decimal("0.298160")),
        (298160, False, Decimal(298160)),
        ("359440", True, Decimal("0.359440")),
        ("359440", False, Decimal(359440)),
        ("2.4352", True, Decimal("2.4352")),
        (".30697", True, Decimal("0.30697")),
        ("-1.5", True, Decimal("-1.5")),
    ],
)
def test_parse_money(value, micro, expected):
    assert parse_money(value, micro_if_integer=micro) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        1.5,
        float("nan"),
        float("inf"),
        "NaN",
        "Infinity",
        "1e5",
        "abc",
        "",
        " 1",
        "1,5",
        "1.2.3",
        None,
        [],
        {},
        "9" * 100,
        "\u0661\u0662",  # Arabic-Indic digits: Decimal reads them, Fluence never sends them
        "\uff11\uff12",  # fullwidth digits
        "1_000",
    ],
)
def test_parse_money_rejects(value):
    with pytest.raises(ValueError):
        parse_money(value)


@pytest.mark.parametrize("price", [2.4352, True, "abc", "NaN", [1], {"amount": 1}])
def test_an_unreadable_price_is_none_and_named(example, price):
    vm = vm_with(example, pricePerEpoch=price)
    assert vm.price_per_epoch is None
    assert vm.cost_per_day is None and vm.cost_per_month is None
    assert_only_unreadable(vm, example, "pricePerEpoch")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pricePerEpoch", "9" * 64),  # decimal.InvalidOperation on the list page before
        ("pricePerEpoch", "1000000000000.5"),  # a trillion USDC per epoch
        ("pricePerEpoch", 10**18),  # a trillion USDC, in micro-USDC
        ("pricePerEpoch", 10**400),
        ("reservedBalance", "9" * 19),  # micro-USDC of 19 digits
        ("totalSpent", "0.0000000000000000001"),  # 19 decimals
    ],
)
def test_an_amount_beyond_any_plausible_one_is_none_and_named(example, field, value):
    vm = vm_with(example, **{field: value})
    assert getattr(vm, ATTRIBUTES[field]) is None
    assert_only_unreadable(vm, example, field)
    assert "beyond any plausible" in vm.unreadable_reason(field)


@pytest.mark.parametrize(
    ("value", "micro", "expected"),
    [
        (10**18 - 1, True, Decimal("999999999999.999999")),
        ("9" * 18, True, Decimal("999999999999.999999")),
        ("999999999999.999999", True, Decimal("999999999999.999999")),
        (999_999_999_999, False, Decimal(999_999_999_999)),
        ("0.000000000000000001", False, Decimal("1E-18")),
        ("-999999999999", False, Decimal(-999_999_999_999)),
    ],
)
def test_parse_money_up_to_its_bounds(value, micro, expected):
    assert parse_money(value, micro_if_integer=micro) == expected


@pytest.mark.parametrize(
    ("value", "micro"),
    [
        (10**18, True),
        ("9" * 19, True),
        (10**12, False),
        ("1000000000000", False),
        ("-1000000000000.0", True),
        ("0.0000000000000000001", True),
        ("1234567890.123456789", False),  # 19 significant digits
        ("9" * 64, False),
    ],
)
def test_parse_money_refuses_amounts_beyond_any_plausible_one(value, micro):
    with pytest.raises(OutOfRange):
        parse_money(value, micro_if_integer=micro)


def test_a_missing_price_is_none_and_named(example):
    vm = vm_with(example, pricePerEpoch=...)
    assert vm.price_per_epoch is None
    assert_only_unreadable(vm, example, "pricePerEpoch")
    assert "missing" in vm.unreadable[0].reason


def test_a_null_price_is_none_and_not_named(example):
    # Only a missing price or one that cannot be read is noted; null is Fluence saying there is none.
    vm = vm_with(example, pricePerEpoch=None)
    assert vm.price_per_epoch is None
    assert vm.unreadable == ()
    assert vm.name == "vm-name" and vm.reserved_balance == Decimal("0.359440")


@pytest.mark.parametrize(
    ("field", "attribute"), [("reservedBalance", "reserved_balance"), ("totalSpent", "total_spent")]
)
@pytest.mark.parametrize("value", [1.5, True, "abc", "1e3"])
def test_an_unreadable_balance_is_none_and_named(example, field, attribute, value):
    vm = vm_with(example, **{field: value})
    assert getattr(vm, attribute) is None
    assert_only_unreadable(vm, example, field)


# --- timestamps --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+002025-04-01T16:50:57.000000000Z", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
        ("+002025-04-01T16:50:57.123456789Z", datetime(2025, 4, 1, 16, 50, 57, 123456, tzinfo=UTC)),
        ("2025-04-01T16:50:57Z", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
        ("2025-04-01T16:50:57+00:00", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
        ("2025-04-01T18:50:57+02:00", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
        ("2025-04-01T16:50:57.5Z", datetime(2025, 4, 1, 16, 50, 57, 500000, tzinfo=UTC)),
        ("2025-04-01T16:50:57.123Z", datetime(2025, 4, 1, 16, 50, 57, 123000, tzinfo=UTC)),
        ("2025-04-01 16:50:57z", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
        ("2025-04-01T12:20:57-04:30", datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2025-04-01",
        "2025-04-01T16:50:57",
        "2025-13-01T16:50:57Z",
        "2025-02-30T00:00:00Z",
        "2025-04-01T25:00:00Z",
        "+2025-04-01T16:50:57Z",
        "2025-04-01T16:50:57.1234567890Z",
        "0001-01-01T00:00:00Z",
        "-002025-04-01T16:50:57Z",
        "2025-04-01T16:50:57+25:00",
        1743526257,
        None,
        True,
    ],
)
def test_parse_timestamp_rejects(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_rfc3339_times_in_a_vm(example):
    vm = vm_with(example, createdAt="2025-04-01T16:50:57Z", nextBillingAt="2025-04-16T17:59:55.000+00:00")
    assert vm.created_at == datetime(2025, 4, 1, 16, 50, 57, tzinfo=UTC)
    assert vm.next_billing_at == datetime(2025, 4, 16, 17, 59, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "attribute"), [("createdAt", "created_at"), ("nextBillingAt", "next_billing_at")]
)
@pytest.mark.parametrize("value", ["yesterday", 1743526257, "2025-04-01"])
def test_an_unreadable_timestamp_is_none_and_named(example, field, attribute, value):
    vm = vm_with(example, **{field: value})
    assert getattr(vm, attribute) is None
    assert_only_unreadable(vm, example, field)
    if field == "nextBillingAt":
        assert vm.epoch_started_at is None


# --- resources ---------------------------------------------------------------------------------------------


def resource(example: dict, *resources: dict):
    return vm_with(example, resources=list(resources))


def test_supply_and_units_resources(example):
    vm = resource(
        example,
        {"type": "VCPU", "supply": 4},
        {"type": "RAM", "supply": 4, "units": "GiB"},
        {"type": "STORAGE", "supply": "4096", "units": "MiB"},
        {"type": "STORAGE", "supply": 1, "units": "TiB"},
    )
    vcpu, ram, storage_mib, storage_tib = vm.resources
    assert vcpu.quantity == Decimal(4)
    assert vm.vcpu == 4
    assert (ram.quantity, ram.unit, ram.mebibytes) == (Decimal(4), "GiB", Decimal(4096))
    assert (storage_mib.quantity, storage_mib.unit, storage_mib.mebibytes) == (
        Decimal(4096),
        "MiB",
        Decimal(4096),
    )
    assert storage_tib.mebibytes == Decimal(1024 * 1024)
    assert vm.ram_mib == Decimal(4096)
    assert vm.storage_mib == Decimal(4096 + 1024 * 1024)
    assert resource_label(ram) == "4 GiB RAM"
    assert resource_label(storage_mib) == "4 GiB storage"


@pytest.mark.parametrize(
    ("units", "mebibytes"),
    [("MB", 4096), ("GB", 4096 * 1024), ("gib", 4096 * 1024), ("TB", 4096 * 1024 * 1024), ("KiB", 4)],
)
def test_decimal_units_are_read_as_binary_as_the_docs_intend(example, units, mebibytes):
    vm = resource(example, {"type": "RAM", "supply": 4096, "units": units})
    assert vm.ram_mib == Decimal(mebibytes)


def test_unknown_unit_gives_no_size_but_no_crash(example):
    vm = resource(example, {"type": "RAM", "supply": 4, "units": "bananas"})
    assert vm.resources[0].mebibytes is None
    assert vm.ram_mib is None
    assert resource_label(vm.resources[0]) == "4 bananas RAM"


def test_unknown_resource_types_are_kept(example):
    vm = resource(
        example,
        {"type": "GPU", "quantity": 1, "details": {"model": "H100"}, "metadata": {"manufacturer": "NVIDIA"}},
        {"type": "NETWORK_BANDWIDTH", "supply": 1000, "units": "Mbps"},
        {"type": "gpu", "quantity": 2, "newField": {"x": 1}},
    )
    gpu, bandwidth, lower = vm.resources
    assert (gpu.type, gpu.quantity) == ("GPU", Decimal(1))
    assert vm.resource_facts[0].details == {"model": "H100"}
    assert vm.resource_facts[0].metadata == {"manufacturer": "NVIDIA"}
    assert resource_label(gpu) == "1 GPU"
    assert resource_label(bandwidth) == "1000 Mbps network bandwidth"
    assert lower.type == "GPU"
    assert vm.vcpu is None and vm.ram_mib is None and vm.storage_mib is None


def test_resources_absent_or_null(example):
    assert vm_with(example, resources=...).resources == ()
    assert vm_with(example, resources=None).resources == ()
    vm = resource(example, {"type": "RAM", "quantity": None, "details": None, "metadata": None})
    assert vm.resources[0].quantity is None
    assert vm.resource_facts[0].details == {} and vm.resource_facts[0].metadata == {}


@pytest.mark.parametrize(
    "resources",
    [
        "VCPU",
        [1, 2],
        [{"quantity": 2}],
        [{"type": 5, "quantity": 2}],
        [{"type": "VCPU", "quantity": "two"}],
        [{"type": "VCPU", "quantity": True}],
        [{"type": "RAM", "supply": 4, "units": 4}],
    ],
)
def test_unreadable_resources_are_left_out_and_named(example, resources):
    vm = vm_with(example, resources=resources)
    assert vm.resources == ()
    assert vm.vcpu is None and vm.ram_mib is None and vm.storage_mib is None
    assert_only_unreadable(vm, example, "resources")


@pytest.mark.parametrize("odd", [{"details": "x"}, {"metadata": [1]}, {"details": 7, "metadata": "SSD"}])
def test_hardware_facts_that_are_no_object_are_not_shown_and_the_resource_still_counts(example, odd):
    # Details and metadata are free-form facts for the VM's page: read there, not with every list.
    resources = [{"type": "RAM", "quantity": 4096, **odd}]
    parsed = vm_with(example, resources=resources)
    [decoded], _ = read_vm_list(json.dumps([{**example, "resources": resources}]).encode(), "baseline")
    # The fast path reads them as the tolerant one does (each VM keeps its own JSON its own way).
    assert msgspec.structs.replace(decoded, _source=None) == msgspec.structs.replace(parsed, _source=None)
    assert parsed.ram_mib == 4096 and parsed.unreadable == ()
    assert parsed.resource_facts[0].details == {} and parsed.resource_facts[0].metadata == {}
    assert decoded.resource_facts == parsed.resource_facts


@pytest.mark.parametrize(
    "quantity",
    [
        "1" + "0" * 40,  # 10^40 MiB of RAM: decimal.InvalidOperation on the list page before
        10**40,
        10**12,  # an exbibyte of RAM
        1e300,
        "0.0000000001",  # 10 decimals
        "1234567890.12345678901",
    ],
)
def test_a_quantity_beyond_any_plausible_one_is_left_out_and_the_others_kept(example, quantity):
    vm = resource(
        example,
        {"type": "VCPU", "quantity": 2},
        {"type": "RAM", "quantity": quantity},
        {"type": "STORAGE", "supply": 25, "units": "GiB"},
    )
    assert [r.type for r in vm.resources] == ["VCPU", "STORAGE"]
    assert vm.ram_mib is None and vm.vcpu == 2
    assert unreadable_fields(vm) == ["resources"]
    assert "'RAM' resource has a quantity beyond any plausible one" in vm.unreadable[0].reason
    assert format_mib(vm.ram_mib) == "—"


@pytest.mark.parametrize("quantity", [10**12 - 1, "999999999999.5", 0.5, "0.000000001", 1e11])
def test_a_quantity_within_bounds_is_read(example, quantity):
    vm = resource(example, {"type": "RAM", "supply": quantity, "units": "KiB"})
    assert vm.unreadable == ()
    assert vm.resources[0].quantity == Decimal(repr(quantity) if isinstance(quantity, float) else quantity)
    assert format_mib(vm.ram_mib) != "—"


def test_an_unreadable_resource_is_left_out_and_the_others_kept(example):
    vm = resource(
        example,
        {"type": "VCPU", "quantity": 2},
        {"type": "RAM", "quantity": "four"},
        {"type": "STORAGE", "supply": 25, "units": "GiB"},
    )
    assert [(r.type, r.quantity) for r in vm.resources] == [("VCPU", Decimal(2)), ("STORAGE", Decimal(25))]
    assert vm.vcpu == 2 and vm.storage_mib == Decimal(25 * 1024)
    assert vm.ram_mib is None  # no RAM resource was readable
    assert unreadable_fields(vm) == ["resources"]
    assert "RAM" in vm.unreadable[0].reason


# --- status ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "label", "css_class"),
    [
        ("ACTIVE", "Active", StatusClass.OK),
        ("Active", "Active", StatusClass.OK),
        ("launched", "Launched", StatusClass.OK),
        ("New", "New", StatusClass.TRANSITIONAL),
        ("new", "New", StatusClass.TRANSITIONAL),
        ("Launching", "Launching", StatusClass.TRANSITIONAL),
        ("LAUNCHING", "Launching", StatusClass.TRANSITIONAL),
        ("updating", "Updating", StatusClass.TRANSITIONAL),
        ("restarting", "Restarting", StatusClass.TRANSITIONAL),
        ("softRebooting", "Soft rebooting", StatusClass.TRANSITIONAL),
        ("terminating", "Terminating", StatusClass.TRANSITIONAL),
        ("suspending", "Suspending", StatusClass.TRANSITIONAL),
        ("SmallBalance", "Small balance", StatusClass.ATTENTION),
        ("SMALL_BALANCE", "Small balance", StatusClass.ATTENTION),
        ("smallbalance", "Small balance", StatusClass.ATTENTION),
        ("small_balance", "Small balance", StatusClass.ATTENTION),
        ("InsufficientFunds", "Insufficient funds", StatusClass.ATTENTION),
        ("INSUFFICIENT_FUNDS", "Insufficient funds", StatusClass.ATTENTION),
        ("suspended", "Suspended", StatusClass.ATTENTION),
        ("Terminated", "Terminated", StatusClass.ENDED),
        ("TERMINATED", "Terminated", StatusClass.ENDED),
        ("Stopped", "Stopped", StatusClass.ENDED),
        ("Failed", "Failed", StatusClass.ENDED),
        ("failed", "Failed", StatusClass.ENDED),
        ("Hibernating", "Hibernating", StatusClass.UNKNOWN),
        ("unknown", "unknown", StatusClass.UNKNOWN),
        ("", "Unknown", StatusClass.UNKNOWN),
    ],
)
def test_status_spellings(example, raw, label, css_class):
    vm = vm_with(example, status=raw)
    assert vm.status.raw == raw
    assert vm.status.label == label
    assert vm.status.css_class is css_class
    assert vm.status.is_transitional is (css_class is StatusClass.TRANSITIONAL)
    assert vm.status.needs_attention is (css_class is StatusClass.ATTENTION)
    assert vm.status.is_ended is (css_class is StatusClass.ENDED)


def test_status_key_normalisation():
    assert Status(raw="SMALL_BALANCE", key="ignored").key == "smallbalance"
    assert {Status(s).key for s in ("SMALL_BALANCE", "SmallBalance", "smallbalance")} == {"smallbalance"}
    assert str(Status("INSUFFICIENT_FUNDS")) == "Insufficient funds"
    assert StatusClass.OK == "ok"


def test_absent_status_is_unknown(example):
    vm = vm_with(example, status=...)
    assert vm.status.css_class is StatusClass.UNKNOWN


@pytest.mark.parametrize("status", [1, True, ["ACTIVE"], {"name": "ACTIVE"}])
def test_a_non_text_status_is_unknown_and_named(example, status):
    vm = vm_with(example, status=status)
    assert vm.status.raw == ""
    assert vm.status.label == "Unknown"
    assert vm.status.css_class is StatusClass.UNKNOWN
    assert_only_unreadable(vm, example, "status")


# --- optional and ended VMs --------------------------------------------------------------------------------


def test_terminated_vm_with_nulls_and_absent_fields(example):
    vm = vm_with(
        example,
        status="Terminated",
        datacenter=None,
        publicIp=None,
        nextBillingAt=...,
        vmName=...,
        ports=[],
    )
    assert vm.status.is_ended
    assert vm.datacenter is None
    assert vm.public_ip is None
    assert vm.next_billing_at is None
    assert vm.epoch_started_at is None
    assert vm.name is None
    assert vm.display_name == vm.id
    assert vm.ports == ()
    assert vm.public_ip_count == 1  # the PUBLIC_IP resource is still listed


def test_public_ip_count_without_resource(example):
    assert vm_with(example, resources=[]).public_ip_count == 1
    assert vm_with(example, resources=[], publicIp=None).public_ip_count == 0


def test_os_image_variants(example):
    assert vm_with(example, osImage=...).os_image_name is None
    assert vm_with(example, osImage="ubuntu-24.04").os_image_name == "ubuntu-24.04"
    assert vm_with(example, osImage="https://x.test/a/b.qcow2?sig=1").os_image_name == "b.qcow2"


def test_unknown_fields_are_ignored_but_kept_raw(example):
    vm = vm_with(
        example, statusChangedAt="2025-04-01T00:00:00Z", allowedActions=["terminate"], extra={"a": [1]}
    )
    assert vm.id == example["id"]
    assert vm.raw["allowedActions"] == ["terminate"]
    assert vm.raw_snapshot()["allowedActions"] == ["terminate"]


def test_datacenter_variants(example):
    vm = vm_with(example, datacenter={"id": "dc", "countryCode": "de", "cityCode": "fra", "newField": 1})
    assert vm.datacenter == Datacenter(id="dc", country_code="DE", city_code="FRA")
    assert vm.datacenter.certifications == ()


@pytest.mark.parametrize("datacenter", ["FR", [1], 4, True])
def test_a_datacenter_that_is_no_object_is_none_and_named(example, datacenter):
    vm = vm_with(example, datacenter=datacenter)
    assert vm.datacenter is None
    assert_only_unreadable(vm, example, "datacenter")


@pytest.mark.parametrize(
    ("change", "field", "attribute", "value"),
    [
        ({"countryCode": 1}, "countryCode", "country_code", ""),
        ({"tier": "4"}, "tier", "tier", None),
        ({"tier": True}, "tier", "tier", None),
        ({"certifications": "ISO"}, "certifications", "certifications", ()),
        ({"certifications": [1]}, "certifications", "certifications", ()),
    ],
)
def test_an_odd_datacenter_field_is_named_and_the_rest_of_the_datacenter_kept(
    example, change, field, attribute, value
):
    vm = vm_with(example, datacenter={**example["datacenter"], **change})
    assert getattr(vm.datacenter, attribute) == value
    expected = parse_vm(example).datacenter
    for other in ("id", "country_code", "city_code", "city_index", "tier", "certifications"):
        if other != attribute:
            assert getattr(vm.datacenter, other) == getattr(expected, other), other
    assert_only_unreadable(vm, example, f"datacenter.{field}")


@pytest.mark.parametrize("datacenter", ["FR", {"tier": "4"}, {"certifications": [1]}, {"countryCode": 1}])
def test_parse_datacenter_without_a_problems_list_is_strict(datacenter):
    with pytest.raises(BadResponse):
        parse_datacenter(datacenter)
    assert parse_datacenter(None) is None


def test_ports_protocols(example):
    vm = vm_with(
        example,
        ports=[
            {"port": 22, "protocol": "TCP"},
            {"port": 53, "protocol": "udp"},
            {"port": 9899, "protocol": "sctp"},
        ],
    )
    assert vm.ports == (Port(22, "tcp"), Port(53, "udp"), Port(9899, "sctp"))
    assert vm_with(example, ports=[{"port": 80}]).ports == (Port(80, "tcp"),)


@pytest.mark.parametrize(
    "ports",
    [
        "22",
        [22],
        [{"port": "22"}],
        [{"port": 70000}],
        [{"port": -1}],
        [{"port": True}],
        [{"port": 22, "protocol": 6}],
    ],
)
def test_unreadable_ports_are_left_out_and_named(example, ports):
    vm = vm_with(example, ports=ports)
    assert vm.ports == ()
    assert_only_unreadable(vm, example, "ports")


def test_an_unreadable_port_is_left_out_and_the_others_kept(example):
    vm = vm_with(example, ports=[{"port": 22}, {"port": "80"}, {"port": 53, "protocol": "udp"}])
    assert vm.ports == (Port(22, "tcp"), Port(53, "udp"))
    assert unreadable_fields(vm) == ["ports"]


# --- ids and bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("0x0000000000000000000000000000000000000001", True),
        ("0xABCDEFabcdef0000000000000000000000000001", True),
        ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", True),
        ("3F2504E0-4F89-11D3-9A0C-0305E82C3301", True),
        ("0x000000000000000000000000000000000000001", False),
        ("0x00000000000000000000000000000000000000001", False),
        ("0X0000000000000000000000000000000000000001", False),
        ("0x000000000000000000000000000000000000000g", False),
        ("0x0000000000000000000000000000000000000001\n", False),
        ("../../admin", False),
        ("", False),
        ("3f2504e04f8911d39a0c0305e82c3301", False),
    ],
)
def test_is_valid_vm_id(value, valid):
    assert is_valid_vm_id(value) is valid


@pytest.mark.parametrize(
    "vm_id", [..., None, 1, "", "vm-1", "0x1", "0x0000000000000000000000000000000000000001/../x", ["0x"]]
)
def test_missing_or_malformed_id_is_bad_response(example, vm_id):
    obj = copy.deepcopy(example)
    if vm_id is ...:
        del obj["id"]
    else:
        obj["id"] = vm_id
    for generation in ("baseline", "a", "b"):
        with pytest.raises(BadResponse):
            parse_vm(obj, generation=generation)


@pytest.mark.parametrize("item", [1, "vm", None, [], True, ["0x0000000000000000000000000000000000000001"]])
def test_a_vm_that_is_no_object_is_bad_response(item):
    with pytest.raises(BadResponse):
        parse_vm(item)


@pytest.mark.parametrize("data", [{}, {"items": []}, "[]", None, 1, True])
def test_list_must_be_an_array(data):
    with pytest.raises(BadResponse):
        parse_vm_list(data)


@pytest.mark.parametrize("items", [[1], ["vm"], [None], [[]], [True]])
def test_list_of_non_objects_is_bad_response(items):
    with pytest.raises(BadResponse):
        parse_vm_list(items)


def test_an_item_without_a_usable_id_makes_the_list_bad(example):
    with pytest.raises(BadResponse):
        parse_vm_list([example, {"id": "nope"}])
    with pytest.raises(BadResponse):
        parse_vm_list([example, dict(example, id=None)])


def test_vms_with_unreadable_fields_do_not_make_the_list_bad(example):
    odd = dict(example, pricePerEpoch="abc", ports="22", datacenter={"tier": "4"}, status=1)
    good, kept = parse_vm_list([example, odd])
    assert good.unreadable == ()
    assert sorted(unreadable_fields(kept)) == ["datacenter.tier", "ports", "pricePerEpoch", "status"]
    assert kept.id == example["id"] and kept.name == "vm-name"
    assert kept.total_spent == Decimal("17.846000")


HOSTILE = "<script>\n\x00" + "x" * 1000


def _assert_plain_and_bounded(message: str) -> None:
    assert "<script>" not in message
    assert "\n" not in message and "\x00" not in message
    assert len(message) < 400


def test_bad_response_message_is_plain_and_bounded(example):
    with pytest.raises(BadResponse) as caught:
        vm_with(example, id=HOSTILE)
    message = str(caught.value)
    assert "id" in message
    _assert_plain_and_bounded(message)

    with pytest.raises(BadResponse) as caught:
        parse_datacenter({"tier": HOSTILE})
    message = str(caught.value)
    assert "tier" in message
    _assert_plain_and_bounded(message)


def test_an_unreadable_fields_reason_is_plain_and_bounded(example):
    vm = vm_with(example, pricePerEpoch=HOSTILE, vmName=HOSTILE)
    assert unreadable_fields(vm) == ["pricePerEpoch"]  # a long name is still a name
    assert "pricePerEpoch" in vm.unreadable[0].reason
    _assert_plain_and_bounded(vm.unreadable[0].reason)


# --- property tests ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=40,
)

VM_KEYS = [
    "id", "vmName", "status", "pricePerEpoch", "resources", "createdAt", "nextBillingAt", "osImage",
    "datacenter", "publicIp", "ports", "reservedBalance", "totalSpent",
]  # fmt: skip
RESOURCE_KEYS = ["type", "quantity", "supply", "units", "details", "metadata"]
DATACENTER_KEYS = ["id", "countryCode", "cityCode", "cityIndex", "tier", "certifications"]

plausible_values = (
    json_values
    | st.sampled_from(["0x0000000000000000000000000000000000000001", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"])
    | st.sampled_from(
        ["298160", "2.4352", ".30697", "+002025-04-01T16:50:57.000000000Z", "2025-04-01T16:50:57Z"]
    )
    | st.sampled_from(["ACTIVE", "SMALL_BALANCE", "GiB", "MiB", "VCPU", "RAM", "STORAGE", "tcp"])
)
resource_like = st.dictionaries(st.sampled_from(RESOURCE_KEYS), plausible_values)
vm_like = st.dictionaries(
    st.sampled_from(VM_KEYS),
    plausible_values
    | st.lists(resource_like, max_size=3)
    | st.dictionaries(st.sampled_from(DATACENTER_KEYS), plausible_values)
    | st.lists(st.dictionaries(st.sampled_from(["port", "protocol"]), plausible_values), max_size=3),
)


VALID_IDS = ["0x0000000000000000000000000000000000000001", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"]


def _has_usable_id(item: object) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is str and is_valid_vm_id(item["id"])


def _check_vm(vm: Vm, obj: dict) -> None:
    """What must hold for any VM the parser accepted from `obj`."""
    assert isinstance(vm, Vm) and vm.id == obj["id"]
    # Every derived value is computable.
    _ = (vm.vcpu, vm.ram_mib, vm.storage_mib, vm.public_ip_count, vm.os_image_name, vm.epoch_started_at)
    _ = (vm.status.label, vm.status.css_class, vm.display_name, vm.key, hash(vm))
    _ = (vm.cost_per_day, vm.cost_per_month, vm.raw_snapshot())
    _ = [resource_label(r) for r in vm.resources]
    assert vm.currency == "USDC" and vm.can_terminate
    for amount in (vm.price_per_epoch, vm.reserved_balance, vm.total_spent, vm.cost_per_day):
        assert amount is None or isinstance(amount, Decimal)
    # Each unreadable field is one Fluence sent (or the price it left out), and it reads as nothing.
    for item in vm.unreadable:
        assert isinstance(item, Unreadable) and item.reason
        top = item.field.split(".")[0]
        assert top in obj or item.field == "pricePerEpoch"
        assert vm.field_unreadable(top)
        if top in ("ports", "resources") or "." in item.field:
            continue  # the readable items, or the readable rest of the datacenter, are kept
        if top == "status":
            assert vm.status.raw == ""
        else:
            assert getattr(vm, ATTRIBUTES[top]) is None, top


def _only_vms_or_bad_response(data: object) -> None:
    try:
        vms = parse_vm_list(data)
    except BadResponse as exc:
        assert str(exc)
        # Only an answer that is no array, or an item that is no VM at all, is refused.
        assert not isinstance(data, list) or not all(_has_usable_id(item) for item in data)
        return
    assert isinstance(vms, list) and len(vms) == len(data)
    for vm, obj in zip(vms, data, strict=True):
        _check_vm(vm, obj)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_gives_vms_or_bad_response(data):
    _only_vms_or_bad_response(data)
    _only_vms_or_bad_response([data])


@settings(max_examples=500, deadline=None)
@given(st.lists(vm_like, max_size=3))
def test_vm_shaped_objects_give_vms_or_bad_response_and_every_usable_id_a_vm(data):
    _only_vms_or_bad_response(data)
    usable = [item for item in data if _has_usable_id(item)]
    if usable:
        vms, dropped = parse_vm_list_lenient(data)
        assert [vm.id for vm in vms] == [item["id"] for item in usable]
        assert len(dropped) == len(data) - len(usable)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID_IDS),
    st.dictionaries(st.sampled_from([key for key in VM_KEYS if key != "id"]), json_values),
    st.sampled_from(["baseline", "a"]),
)
def test_a_usable_id_alone_always_gives_a_vm(vm_id, fields, generation):
    obj = {**fields, "id": vm_id}
    vm = parse_vm(obj, generation=generation)
    assert vm.generation == generation
    _check_vm(vm, obj)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VM_KEYS), json_values, st.sampled_from(["baseline", "a"]))
def test_example_with_any_one_field_replaced_keeps_every_other_field(field, value, generation):
    obj = json.loads(EXAMPLE_VM_JSON)
    obj[field] = value
    if field == "id":
        _only_vms_or_bad_response([obj])
        return
    vm = parse_vm(obj, generation=generation)
    _check_vm(vm, obj)
    assert {item.field.split(".")[0] for item in vm.unreadable} <= {field}
    expected = parse_vm(json.loads(EXAMPLE_VM_JSON), generation=generation)
    for name, attribute in ATTRIBUTES.items():
        if name != field:
            assert getattr(vm, attribute) == getattr(expected, attribute), name
