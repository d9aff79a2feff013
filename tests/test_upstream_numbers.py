"""Numbers from Fluence that no real answer holds: a Retry-After of 400 digits or a superscript,
a VM of 10^40 MiB of RAM, a price of 64 nines. Each is read as unreadable (or clamped), never a 500."""

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
import responses
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from vms import display, preferences, services
from vms.fluence.errors import RateLimited
from vms.fluence.models import Resource, Vm, parse_balance, parse_vm
from vms.fluence.numbers import (
    MAX_RETRY_AFTER_SECONDS,
    MONEY,
    QUANTITY,
    bounded_decimal,
    parse_retry_after,
    retry_after_seconds,
)
from vms.vm_table import OPTIONAL_COLUMNS, spend_per_currency

from .test_fluence_models import EXAMPLE_VM_JSON
from .test_fluence_models_b import B_VM_JSON

# The reproduced attacks, exactly.
NINES_400 = "9" * 400
SUPERSCRIPT_TWO = "²"  # "²".isdigit() is True, float("²") raises
HUGE_RAM = "1" + "0" * 40
HUGE_PRICE = "9" * 64

NOW = datetime(2025, 4, 1, 12, 0, 0, tzinfo=UTC)


# --- Retry-After ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (NINES_400, MAX_RETRY_AFTER_SECONDS),  # round(inf) raised OverflowError
        (SUPERSCRIPT_TWO, None),  # float("²") raised ValueError
        ("٣٠", None),  # Arabic-Indic digits: not delay-seconds
        ("\uff13\uff10", None),  # fullwidth digits
        ("0", 0.0),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0000000000000030", 30.0),  # leading zeros are still 30 s
        ("3600", 3600.0),
        ("3601", 3600.0),
        ("99999999999", 3600.0),
        ("-5", None),
        ("1.5", None),
        ("1e9", None),
        ("", None),
        (None, None),
        ("Tue, 01 Apr 2025 12:01:00 GMT", 60.0),
        ("Tue, 01 Apr 2025 11:00:00 GMT", 0.0),  # past
        ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),  # far future
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("Tue, 01 Apr 2025 12:01:00 -0000", 60.0),  # a date without a zone is read as UTC
        ("Tue, 99 Foo 2025", None),
        ("Tue, 01 Apr 2025 12:01:00 GMT" + " " * 100, 60.0),
        ("Tue, 01 Apr 2025 12:01:00 GMT" + "x" * 100, None),
    ],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


def test_parse_retry_after_reads_a_date_against_a_naive_now_as_utc():
    assert parse_retry_after("Tue, 01 Apr 2025 12:01:00 GMT", now=NOW.replace(tzinfo=None)) == 60.0


@pytest.mark.parametrize(
    ("retry_after", "kept", "advice"),
    [
        (math.inf, 3600.0, "Try again in 3600 s."),
        (float(NINES_400), 3600.0, "Try again in 3600 s."),  # what float("9" * 400) gives: inf
        (10**400, 3600.0, "Try again in 3600 s."),  # too large for a float
        (-(10**400), 0.0, "Try again in 1 s."),
        (-math.inf, 0.0, "Try again in 1 s."),
        (math.nan, None, "Try again in a moment."),
        (Decimal("sNaN"), None, "Try again in a moment."),
        (Decimal("1E+999999"), 3600.0, "Try again in 3600 s."),
        ("120", None, "Try again in a moment."),
        (True, None, "Try again in a moment."),
        (2.4, 2.4, "Try again in 2 s."),
        (None, None, "Try again in a moment."),
    ],
)
def test_rate_limited_never_fails_on_its_retry_after(retry_after, kept, advice):
    error = RateLimited(status=429, retry_after=retry_after)
    assert error.retry_after == kept
    assert str(error).endswith(advice)


header_values = st.one_of(
    st.text(),
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=40),  # unicode digits
    # ASCII digits mixed with superscripts, Arabic-Indic, Devanagari and fullwidth ones
    st.text(st.sampled_from("0123456789²³¹\u0660\u0661\u0662३४५\uff16\uff17 \t"), min_size=1, max_size=40),
    st.from_regex(r"\A[0-9]{1,500}\Z"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(str),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda when: format_datetime(when.replace(tzinfo=UTC), usegmt=True)
    ),
    st.builds(
        lambda when, minutes: format_datetime(when.replace(tzinfo=timezone(timedelta(minutes=minutes)))),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    ),
)


@settings(max_examples=300, deadline=None)
@given(header_values, st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)))
def test_any_retry_after_header_gives_none_or_a_bounded_wait(header, now):
    seconds = parse_retry_after(header, now=now.replace(tzinfo=UTC))
    assert seconds is None or (isinstance(seconds, float) and 0 <= seconds <= MAX_RETRY_AFTER_SECONDS)
    assert str(RateLimited(status=429, retry_after=seconds))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(), st.integers(), st.decimals(), st.none(), st.booleans(), st.text(max_size=5)))
def test_any_retry_after_number_is_clamped_or_none(value):
    seconds = retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER_SECONDS
    assert str(RateLimited(status=429, retry_after=value))


# --- bounded decimals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("999999999999.999999", Decimal("999999999999.999999")),  # 18 digits, under a trillion
        ("-999999999999", Decimal("-999999999999")),
        ("0.000000000000000001", Decimal("1E-18")),  # 18 decimals
        ("1.500000000000000000000000000000", Decimal("1.5")),  # trailing zeros are not precision
        ("0." + "0" * 60, Decimal(0)),
        (10**12 - 1, Decimal(10**12 - 1)),
        (0.1, Decimal("0.1")),
        ("1000000000000", None),  # a trillion
        (10**12, None),
        ("1234567890.123456789", None),  # 19 significant digits
        ("0.0000000000000000001", None),  # 19 decimals
        (HUGE_PRICE, None),
        (HUGE_RAM, None),
        (10**400, None),
        ("1e5", None),
        ("1_000", None),
        (" 1", None),
        ("١٢", None),
        ("NaN", None),
        (Decimal("NaN"), None),
        (Decimal("-Infinity"), None),
        (math.inf, None),
        (math.nan, None),
        (1e300, None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_bounded_decimal_for_money(value, expected):
    result = bounded_decimal(value, MONEY)
    assert result == expected
    assert result is None or isinstance(result, Decimal)


# --- the attacks, in a VM of each generation -----------------------------------------------------------


def _baseline(**changes) -> dict:
    obj = json.loads(EXAMPLE_VM_JSON)
    obj.update(changes)
    return obj


def _b(**changes) -> dict:
    obj = json.loads(B_VM_JSON)
    obj.update(changes)
    return obj


def _fields(vm: Vm) -> list[str]:
    return [item.field for item in vm.unreadable]


_MONEY_HELPERS = (display.format_usdc, display.format_usdc_short, display.format_money, display.format_exact)


def _every_text_of(vm: Vm) -> list[str]:
    """What the pages show of a VM's numbers, through the display helpers."""
    amounts = (
        vm.price_per_epoch,
        vm.reserved_balance,
        vm.total_spent,
        vm.price_hourly_usd,
        vm.price_monthly_usd,
        vm.cost_per_day,
        vm.cost_per_month,
    )
    texts = [helper(amount) for amount in amounts for helper in _MONEY_HELPERS]
    texts += [display.format_mib(vm.ram_mib), display.format_mib(vm.storage_mib)]
    texts += [display.format_gb(vm.ram_gb), display.format_gb(vm.storage_gb)]
    texts += [display.resource_label(resource) for resource in vm.resources]
    texts += [str(vm.vcpu), str(vm.public_ip_count)]
    spend = spend_per_currency([SimpleNamespace(vm=vm, deleting=False)])
    texts += [display.format_money(amount) for total in spend for amount in (total.per_day, total.per_month)]
    return texts


@pytest.mark.parametrize("generation", ["baseline", "a"])
def test_a_price_of_64_nines_is_unreadable_and_the_vm_listed(generation):
    vm = parse_vm(_baseline(pricePerEpoch=HUGE_PRICE), generation=generation)
    assert vm.price_per_epoch is None and vm.cost_per_day is None
    assert _fields(vm) == ["pricePerEpoch"]
    assert "beyond any plausible" in vm.unreadable_reason("pricePerEpoch")
    assert vm.name == "vm-name" and vm.ram_mib == Decimal(4096)
    assert all(isinstance(text, str) and text for text in _every_text_of(vm))


@pytest.mark.parametrize("generation", ["baseline", "a"])
def test_ram_of_ten_to_the_fortieth_is_unreadable_and_the_vm_listed(generation):
    obj = _baseline()
    obj["resources"][1]["quantity"] = HUGE_RAM
    vm = parse_vm(obj, generation=generation)
    assert _fields(vm) == ["resources"]
    assert "RAM" in vm.unreadable_reason("resources")
    assert vm.ram_mib is None  # the RAM is unknown, not 10^40
    assert [resource.type for resource in vm.resources] == ["VCPU", "STORAGE", "PUBLIC_IP"]
    assert vm.price_per_epoch == Decimal("0.298160")
    assert all(isinstance(text, str) and text for text in _every_text_of(vm))


@pytest.mark.parametrize(
    ("field", "value", "attribute"),
    [
        ("priceHourlyUsd", HUGE_PRICE, "price_hourly_usd"),
        ("priceMonthlyUsd", HUGE_PRICE, "price_monthly_usd"),
        ("ramGb", HUGE_RAM, "ram_gb"),
        ("ramGb", 10**40, "ram_gb"),
        ("vcpu", 10**40, "vcpu_count"),
    ],
)
def test_generation_b_numbers_beyond_reason_are_unreadable(field, value, attribute):
    vm = parse_vm(_b(**{field: value}), generation="b")
    assert getattr(vm, attribute) is None
    assert _fields(vm) == [field]
    assert vm.name == "web-01"
    assert all(isinstance(text, str) and text for text in _every_text_of(vm))


def test_a_balance_beyond_reason_is_unknown():
    entry = {"featureKey": "compute", "balance": HUGE_PRICE, "usage": "7.25", "usageDaysLeft": 3}
    balance = parse_balance([entry])
    assert balance.balance is None and balance.usage == Decimal("7.25")


@pytest.mark.parametrize(
    "helper",
    [
        display.format_usdc,
        display.format_usdc_short,
        display.format_money,
        display.format_exact,
        display.format_mib,
        display.format_gb,
    ],
)
@pytest.mark.parametrize("value", [Decimal(HUGE_PRICE), Decimal(HUGE_RAM), Decimal("1E+999999"), HUGE_PRICE])
def test_display_helpers_show_an_absurd_number_as_missing(helper, value):
    assert helper(value) == display.MISSING


# --- property tests: any number, any generation, every page helper ----------------------------------------

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # inf, -inf and nan included
    st.from_regex(r"\A-?[0-9]{1,70}(\.[0-9]{0,70})?\Z"),
    st.from_regex(r"\A-?[0-9]{1,5}(\.[0-9]{1,3})?[eE][+-]?[0-9]{1,9}\Z"),  # "1e999999"
    st.sampled_from(
        ["1e999999", "-1E-999999", "NaN", "-Infinity", "sNaN", "1_000", "٣", "²", "", "-0", ".5"]
    ),
    st.decimals().map(str),
)

BASELINE_NUMBER_FIELDS = ["pricePerEpoch", "reservedBalance", "totalSpent"]
B_NUMBER_FIELDS = ["priceHourlyUsd", "priceMonthlyUsd", "vcpu", "ramGb"]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["baseline", "a"]),
    st.dictionaries(st.sampled_from(BASELINE_NUMBER_FIELDS), numbers),
    st.lists(
        st.tuples(
            st.sampled_from(["VCPU", "RAM", "STORAGE", "PUBLIC_IP", "GPU"]),
            st.sampled_from(["quantity", "supply"]),
            numbers,
            st.sampled_from([None, "MiB", "GiB", "TiB", "KiB"]),
        ),
        max_size=4,
    ),
    st.fixed_dictionaries({}, optional={"tier": numbers, "cityIndex": numbers}),
)
def test_any_number_in_a_2025_vm_gives_a_vm_whose_texts_are_computable(generation, fields, resources, dc):
    obj = _baseline(**fields)
    obj["resources"] = [
        {"type": type_, key: value, **({"units": units} if units else {})}
        for type_, key, value, units in resources
    ]
    obj["datacenter"] = {**obj["datacenter"], **dc}
    vm = parse_vm(obj, generation=generation)
    _assert_bounded_and_shown(vm)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(B_NUMBER_FIELDS), numbers),
    st.fixed_dictionaries({}, optional={"volumeGb": numbers}),
)
def test_any_number_in_a_b_vm_gives_a_vm_whose_texts_are_computable(fields, boot_disk):
    obj = _b(**fields)
    obj["expanded"]["bootDisk"].update(boot_disk)
    vm = parse_vm(obj, generation="b")
    _assert_bounded_and_shown(vm)


@settings(max_examples=200, deadline=None)
@given(numbers, numbers)
def test_any_number_in_a_balance_is_bounded_or_unknown(balance, usage):
    result = parse_balance([{"balance": balance, "usage": usage, "usageDaysLeft": 1}])
    for amount in (result.balance, result.usage):
        assert amount is None or abs(amount) < MONEY.below
        assert display.format_money(amount)


def _assert_bounded_and_shown(vm: Vm) -> None:
    for amount in (vm.price_per_epoch, vm.reserved_balance, vm.total_spent, vm.price_hourly_usd):
        assert amount is None or abs(amount) < MONEY.below
    for quantity in [resource.quantity for resource in vm.resources] + [vm.ram_gb, vm.storage_gb]:
        assert quantity is None or abs(quantity) < QUANTITY.below
    assert vm.vcpu_count is None or abs(vm.vcpu_count) < QUANTITY.below
    assert all(isinstance(text, str) and text for text in _every_text_of(vm))


@settings(max_examples=300, deadline=None)
@given(st.one_of(numbers, st.decimals()))
def test_every_display_helper_returns_text_for_any_number(value):
    if isinstance(value, float):
        value = Decimal(value) if math.isfinite(value) else Decimal(str(value))
    for helper in (*_MONEY_HELPERS, display.format_mib, display.format_gb):
        text = helper(value)
        assert isinstance(text, str) and text and len(text) < 120
    for type_ in ("VCPU", "RAM", "STORAGE", "PUBLIC_IP", "GPU"):
        number = value if isinstance(value, Decimal) else None
        label = display.resource_label(Resource(type=type_, quantity_sent=number, unit="GiB"))
        assert isinstance(label, str) and len(label) < 160


# --- through the list page ---------------------------------------------------------------------------------

BASE = "https://api.fluence.dev"
KEY = "sbx_upstream_numbers_1"
B_KEY = "sbx_b_upstream_numbers_1"


def _row(body: str, vm_id: str) -> str:
    row = body[body.index(f'<tr data-vm-id="{vm_id}"') :]
    return row[: row.index("</tr>")]


@pytest.mark.django_db
def test_the_list_shows_a_vm_with_absurd_price_and_ram_as_unreadable(alice_client, user, sandbox):
    sandbox.state.configure_account(KEY, vm_count=3)
    services.apikey_create(owner=user, label="Numbers", secret=KEY, base_url=sandbox.url)
    preferences.vm_columns_set(user=user, columns=OPTIONAL_COLUMNS)  # storage too
    resources = [
        {"type": "VCPU", "quantity": 2},
        {"type": "RAM", "quantity": HUGE_RAM},
        {"type": "STORAGE", "quantity": 25600},
    ]
    odd = sandbox.state.add_vm(
        KEY, name="absurd-one", status="ACTIVE", pricePerEpoch=HUGE_PRICE, resources=resources
    )

    response = alice_client.get(reverse("vms:list"))

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("<tr data-vm-id=") == len(sandbox.state.vms_for(KEY))  # every VM, the odd one too
    row = _row(body, odd["id"])
    assert "absurd-one" in row
    assert row.count(">unreadable</span>") == 2  # the cost and the RAM
    assert "beyond any plausible" in row  # the reason, in the cell's title
    assert "2 vCPU" in row and "25 GiB" in row  # the rest of the VM as usual
    assert HUGE_PRICE not in body and HUGE_RAM not in body


@pytest.mark.django_db
def test_the_list_shows_a_b_vm_with_absurd_price_and_ram_as_unreadable(alice_client, user, sandbox):
    sandbox.state.configure_account(B_KEY, vm_count=2)
    services.apikey_create(owner=user, label="Today", secret=B_KEY, base_url=sandbox.url)
    odd = sandbox.state.add_vm(
        B_KEY,
        name="absurd-b",
        status="launched",
        priceHourlyUsd=HUGE_PRICE,
        priceMonthlyUsd=None,
        ramGb=HUGE_RAM,
    )

    response = alice_client.get(reverse("vms:list"))

    assert response.status_code == 200
    row = _row(response.content.decode(), odd["id"])
    assert "absurd-b" in row
    assert row.count(">unreadable</span>") == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "advice"),
    [
        (NINES_400, "The portal waits 3600 s before asking again"),
        (SUPERSCRIPT_TWO, "The portal waits a moment before asking again"),
    ],
)
def test_a_429_with_an_absurd_retry_after_shows_the_rate_limit_beside_the_last_good_list(
    alice_client, user, settings, header, advice
):
    settings.FLUENCE_CACHE_SECONDS = 0
    services.apikey_create(
        owner=user,
        label="Limited",
        secret="sbx_rate_limited_numbers",
        base_url=BASE,
        generation="baseline",
        verify=False,
    )
    vm = json.loads(EXAMPLE_VM_JSON)
    with responses.RequestsMock() as mock:
        mock.get(BASE + "/vms/v2", json=[vm])
        mock.get(
            BASE + "/vms/v2", status=429, json={"error": "Too many requests"}, headers={"Retry-After": header}
        )
        assert alice_client.get(reverse("vms:list")).status_code == 200
        response = alice_client.get(reverse("vms:list"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Fluence is limiting the number of requests for this key (HTTP 429)" in body
    assert advice in body
    assert vm["id"] in body and "showing data from" in body  # the last good list stays
