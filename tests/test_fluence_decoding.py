"""The fast decoder (vms.fluence.decoding) says exactly what the tolerant parsers say, only sooner.

For any list, the VMs it gives equal the tolerant parsers' VMs (their JSON included); a well-formed list never
reaches the tolerant parsers; a list with one odd field does, and keeps every VM."""

import json
import pickle

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_fluence_models import VALID_IDS, json_values, plausible_values, vm_like
from tests.test_fluence_models_b import B_KEYS, CLUSTER_ID, FRANKFURT, VM_ID, b_values
from vms.fluence import decoding, models
from vms.fluence.client import ADAPTERS
from vms.fluence.errors import BadResponse
from vms.sandbox.state import SandboxState


def _comparable(vm: models.Vm) -> tuple:
    """A VM as the two paths must agree on it: every field, and its JSON read back."""
    return msgspec.structs.replace(vm, _source=None), json.dumps(vm.raw, sort_keys=True)


def _slow(data: object, generation: str):
    try:
        return models.parse_vm_list_lenient(data, copy=True, generation=generation)
    except BadResponse as error:
        return error.detail


def _fast(body: bytes, generation: str):
    try:
        return decoding.read_vm_list(body, generation)
    except BadResponse as error:
        return error.detail


def _same(fast, slow) -> None:
    if isinstance(slow, str):
        assert fast == slow
        return
    (fast_vms, fast_notes), (slow_vms, slow_notes) = fast, slow
    assert fast_notes == slow_notes
    assert [_comparable(vm) for vm in fast_vms] == [_comparable(vm) for vm in slow_vms]
    assert [type(vm) for vm in fast_vms] == [type(vm) for vm in slow_vms]


# Values in the documented form and just beside it: the fast path must take the first and leave the rest.
NEAR_CANONICAL = (
    [
        0, 1, -1, 32, 4096, 298160, 10**12 - 1, 10**12, 10**18 - 1, 10**18, 2**70, 1.5, 1e16, True,
        "0", "05", "298160", "999999999999999999", "1000000000000000000", "2.4352", ".30697", "1e5", " 5",
        "-1", "0.1234567891", "\uff11\uff12",
        "+002025-04-01T16:50:57.000000000Z", "2025-04-01T16:50:57Z", "2025-04-01T16:50:57.123456789Z",
        "2025-04-01T16:50:57+02:00", "2025-04-01t16:50:57z", "2016-12-31T23:59:60Z", "2025-02-30T00:00:00Z",
        "2024-02-29T00:00:00Z", "+009000-12-31T23:59:59Z", "1899-12-31T23:59:59Z", "2025-04-31T00:00:00Z",
        "2025-12-31T24:00:00Z", "4096", "0.5", "-0", "0000000001", "123456789.123456789", "1234567890",
        "+010000-01-01T00:00:00Z", "ACTIVE", "active", " ACTIVE", "", "FR", "fr", "PAR", "tcp", "TCP",
        "udp ", "VCPU", "vcpu", "RAM", "STORAGE", "PUBLIC_IP", "GiB", " GiB", "MiB", None, [], {},
    ]
)  # fmt: skip
_near_canonical = st.sampled_from(NEAR_CANONICAL)
_values = plausible_values | _near_canonical
_timestamps = st.sampled_from(
    ["+002025-04-01T16:50:57.000000000Z", "2025-04-01T16:50:57Z", "2025-04-01T16:50:57.5+02:00"]
)
_amounts = st.integers(-(10**19), 10**19) | st.sampled_from(["298160", "2.4352", ".30697", "0", "5"])
_text = st.text(max_size=8)


# Mostly in the documented form, so that the fast path is taken often, and now and then beside it.
def _or_odd(valid, odd: bool):
    return valid | _values if odd else valid


def _vm_2025_of(odd: bool):
    """VMs in the documented form (odd=False), or with any field now and then beside it."""
    resource = st.fixed_dictionaries(
        {"type": _or_odd(st.sampled_from(["VCPU", "RAM", "STORAGE", "PUBLIC_IP"]), odd)},
        optional={
            "quantity": _or_odd(st.integers(-(10**13), 10**13), odd),
            "supply": _or_odd(st.integers(0, 10**6), odd),
            "units": _or_odd(st.sampled_from(["GiB", "MiB", "vCPU"]), odd),
            "details": _or_odd(st.just({"model": "7702p"}), odd),
            "metadata": _or_odd(st.just({"type": "SSD"}), odd),
            "extra": json_values,
        },
    )
    datacenter = st.fixed_dictionaries(
        {},
        optional={
            "id": _or_odd(_text, odd),
            "countryCode": _or_odd(st.sampled_from(["FR", "DE", ""]), odd),
            "cityCode": _or_odd(st.sampled_from(["PAR", "FRA"]), odd),
            "cityIndex": _or_odd(st.integers(-5, 5), odd),
            "tier": _or_odd(st.integers(0, 5), odd),
            "certifications": _or_odd(st.lists(_text, max_size=2), odd),
        },
    )
    port = st.fixed_dictionaries(
        {"port": _or_odd(st.integers(-1, 70000), odd)},
        optional={"protocol": _or_odd(st.sampled_from(["tcp", "udp"]), odd)},
    )
    return st.fixed_dictionaries(
        {"id": _or_odd(st.sampled_from(VALID_IDS), odd), "pricePerEpoch": _or_odd(_amounts, odd)},
        optional={
            "vmName": _or_odd(_text, odd),
            "status": _or_odd(st.sampled_from(["ACTIVE", "SMALL_BALANCE", "Launching"]), odd),
            "resources": _or_odd(st.lists(resource, max_size=4), odd),
            "createdAt": _or_odd(_timestamps, odd),
            "nextBillingAt": _or_odd(_timestamps, odd),
            "osImage": _or_odd(_text, odd),
            "datacenter": _or_odd(datacenter, odd),
            "publicIp": _or_odd(_text, odd),
            "ports": _or_odd(st.lists(port, max_size=3), odd),
            "reservedBalance": _or_odd(_amounts, odd),
            "totalSpent": _or_odd(_amounts, odd),
            "somethingNew": json_values,
        },
    )


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_vm_2025_of(False) | _vm_2025_of(True) | vm_like, max_size=4), st.sampled_from(["baseline", "a"])
)
def test_the_2025_lists_read_the_same_either_way(data, generation):
    body = json.dumps(data).encode()
    _same(_fast(body, generation), _slow(data, generation))


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_reads_the_same_either_way(data):
    body = json.dumps(data).encode()
    _same(_fast(body, "baseline"), _slow(data, "baseline"))


def _stored_b(items: list, *, locations=None, balance=None, notes=()) -> bytes:
    page = {"items": items, "pagination": {"currentPage": 1, "perPage": 100, "totalPages": 1}}
    return json.dumps(
        {"pages": [page], "locations": locations, "balance": balance, "notes": list(notes)}
    ).encode()


_b_valid = {
    "name": _text,
    "status": st.sampled_from(["launched", "launching", "terminated"]),
    "allowedActions": st.lists(st.sampled_from(["terminate", "restart"]), max_size=2),
    "priceHourlyUsd": _amounts,
    "priceMonthlyUsd": _amounts,
    "vcpu": st.integers(-(10**13), 10**13),
    "ramGb": st.integers(-1, 10**13) | st.sampled_from(["16", "0.5"]),
    "clusterId": st.sampled_from([CLUSTER_ID, "", "elsewhere"]),
    "restartRequired": st.booleans(),
    "createdAt": _timestamps,
    "updatedAt": _timestamps,
    "paidUntil": _timestamps,
    "dataDisks": st.lists(_text, max_size=2),
    "expanded": st.fixed_dictionaries(
        {},
        optional={
            "publicIp": st.fixed_dictionaries({}, optional={"address": _text | _values}),
            "bootDisk": st.fixed_dictionaries({}, optional={"volumeGb": st.integers(-1, 500) | _values}),
        },
    ),
}
_vm_b = st.fixed_dictionaries(
    {"id": st.sampled_from([VM_ID, VM_ID.upper(), "0x0000000000000000000000000000000000000001"])},
    optional={key: _b_valid.get(key, st.nothing()) | b_values | _near_canonical for key in B_KEYS},
)


_vm_b_documented = st.fixed_dictionaries({"id": st.sampled_from([VM_ID, VM_ID.upper()])}, optional=_b_valid)


@settings(max_examples=300, deadline=None)
@given(st.lists(_vm_b_documented | _vm_b, max_size=3))
def test_todays_pages_read_the_same_either_way(items):
    body = _stored_b(items, locations={CLUSTER_ID: {"id": "dc-1", "countryCode": "DE", "cityCode": "FRA"}})
    adapter = ADAPTERS["b"]
    try:
        slow = adapter._read_tolerantly(body)
    except BadResponse as error:
        slow = error.detail
    fast = decoding.read_b_pages(body)
    if fast is None or isinstance(slow, str):
        return  # left to the tolerant reading, which is then the answer
    fast_vms, fast_notes, fast_balance = fast
    slow_vms, slow_unreadable, slow_notes, slow_balance = slow
    assert slow_unreadable == [] and fast_notes == slow_notes and fast_balance == slow_balance
    assert [_comparable(vm) for vm in fast_vms] == [_comparable(vm) for vm in slow_vms]


def _sandbox_list(generation: str, count: int) -> bytes:
    state = SandboxState()
    key = f"sbx_decoding_{generation}"
    state.configure_account(key, vm_count=count, generation=generation)
    return state.list_json(key, "v3" if generation == "a" else "v2")


@pytest.mark.parametrize("generation", ["baseline", "a"])
def test_a_well_formed_list_never_reaches_the_tolerant_parser(generation, monkeypatch):
    body = _sandbox_list(generation, 300)
    expected, _ = models.parse_vm_list_lenient(json.loads(body), generation=generation)

    def refuse(*args, **kwargs):
        raise AssertionError("the tolerant parser was asked")

    monkeypatch.setattr(models, "parse_vm_list_lenient", refuse)
    vms, unreadable = decoding.read_vm_list(body, generation)
    assert unreadable == [] and len(vms) == 300
    assert [_comparable(vm) for vm in vms] == [_comparable(vm) for vm in expected]


_PATHS_2025 = [
    *[(name,) for name in ("id", "vmName", "status", "pricePerEpoch", "createdAt", "nextBillingAt", "osImage",
                           "publicIp", "reservedBalance", "totalSpent", "datacenter", "ports", "resources")],
    *[("datacenter", name)
      for name in ("id", "countryCode", "cityCode", "cityIndex", "tier", "certifications")],
    *[("ports", 0, name) for name in ("port", "protocol")],
    *[("resources", 1, name) for name in ("type", "quantity", "supply", "units", "details", "metadata")],
]  # fmt: skip


@pytest.mark.parametrize("generation", ["baseline", "a"])
def test_each_field_of_a_documented_vm_beside_its_form_reads_the_same_either_way(generation):
    """One value at a time, in every field of a VM otherwise as documented: no slip of the fast path hides
    behind another field that sends the list the long way anyway."""
    documented = json.loads(_sandbox_list(generation, 1))[0]
    for path in _PATHS_2025:
        for value in NEAR_CANONICAL:
            vm = json.loads(json.dumps(documented))
            *parents, last = path
            target = vm
            for step in parents:
                target = target[step]
            target[last] = value
            body = json.dumps([vm]).encode()
            _same(_fast(body, generation), _slow([vm], generation))


def test_one_odd_field_sends_the_list_the_long_way_and_every_vm_stays():
    body = _sandbox_list("baseline", 20)
    data = json.loads(body)
    data[7]["totalSpent"] = "a lot"
    vms, unreadable = decoding.read_vm_list(json.dumps(data).encode(), "baseline")
    assert unreadable == [] and len(vms) == 20
    assert [item.field for item in vms[7].unreadable] == ["totalSpent"]
    assert all(not vm.unreadable for index, vm in enumerate(vms) if index != 7)


def test_a_decoded_vm_keeps_everything_fluence_sent_read_only():
    data = json.loads(_sandbox_list("baseline", 3))
    data[1]["comment"] = {"nested": ["kept"]}
    vms, _ = decoding.read_vm_list(json.dumps(data).encode(), "baseline")
    assert vms[1].raw == data[1] and vms[1].raw_snapshot() == data[1]
    assert pickle.loads(pickle.dumps(vms[1])).raw == data[1]  # noqa: S301 (our own object)
    with pytest.raises(TypeError):
        vms[1].raw["comment"]["nested"].append("changed")
    with pytest.raises(AttributeError):
        vms[1].name = "changed"


def test_todays_well_formed_pages_are_decoded_with_their_locations():
    data = [
        {
            "id": VM_ID,
            "name": "web-1",
            "status": "launched",
            "clusterId": CLUSTER_ID,
            "priceHourlyUsd": "0.0685",
            "expanded": {"publicIp": {"address": "203.0.113.7"}, "bootDisk": {"volumeGb": 50}},
        }
    ]
    locations = {CLUSTER_ID: {"id": "dc-1", "countryCode": "DE", "cityCode": "FRA"}}
    decoded = decoding.read_b_pages(_stored_b(data, locations=locations))
    assert decoded is not None
    (vm,), notes, _ = decoded
    assert (vm.public_ip, vm.storage_gb, vm.datacenter.city_code, notes) == ("203.0.113.7", 50, "FRA", [])
    assert vm.raw == data[0] and FRANKFURT.country_code == "DE"
