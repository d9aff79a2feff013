"""The costs computation (vms/costs.py): one total per currency, runway per API generation, the most
expensive VMs, ended VMs, failing accounts and rounding."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from vms.accounts import Account, AccountResult, VmListing
from vms.costs import (
    RUNWAY_FROM_BALANCE,
    RUNWAY_FROM_RESERVED,
    RUNWAY_REPORTED,
    Runway,
    cost_overview,
    costs_per_currency,
    funds_of,
    status_counts,
    top_vms,
)
from vms.fluence.client import ADAPTERS
from vms.fluence.models import Balance, parse_vm
from vms.sandbox.state import SandboxState

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
_ids = iter(range(1, 10_000))


def vm_2025(price, reserved="0", *, status="Active", name=None, generation="a"):
    """A VM of the 2025 APIs: baseline prices are micro-USDC integers, generation A's decimal strings."""
    number = next(_ids)
    obj = {
        "id": f"0x{number:040x}",
        "vmName": name or f"vm-{number}",
        "status": status,
        "pricePerEpoch": price,
    }
    if reserved is not None:
        obj["reservedBalance"] = reserved
    return parse_vm(obj, generation=generation)


def vm_b(hourly, monthly=None, *, status="launched", name=None):
    """A VM of today's API, priced in USD per hour (and per month of 730 h)."""
    number = next(_ids)
    obj = {
        "id": str(uuid.UUID(int=number)),
        "name": name or f"b-{number}",
        "status": status,
        "priceHourlyUsd": hourly,
        "priceMonthlyUsd": monthly,
    }
    return parse_vm(obj, generation="b")


def result(vms, *, generation="a", key_id=1, label="Account", balance=None, problem=None, fetched_at=NOW):
    account = Account(
        key_id=key_id,
        label=label,
        last_four="abcd",
        owner_username="alice",
        base_url="x",
        generation=generation,
    )
    return AccountResult(
        account=account,
        vms=tuple(vms),
        fetched_at=fetched_at,
        problem=problem,
        problem_kind="unavailable" if problem else None,
        balance=balance,
    )


def listing(*results):
    return VmListing(accounts=tuple(results), rows=())


# --- one total per currency -------------------------------------------------------------------------------


def test_usd_and_usdc_each_get_their_own_total_and_are_never_added():
    cloud = result([vm_b("0.1", "73"), vm_b("0.25", "182.5")], generation="b", key_id=1, label="Cloud")
    staging = result([vm_2025("2"), vm_2025("3.5")], generation="a", key_id=2, label="Staging")
    production = result([vm_2025(298160, generation="baseline")], generation="baseline", key_id=3)

    usd, usdc = cost_overview(listing(cloud, staging, production)).totals

    assert (usd.currency, usd.per_day, usd.per_month, usd.billed) == (
        "USD",
        Decimal("8.4"),
        Decimal("255.5"),
        2,
    )
    assert usdc.currency == "USDC" and usdc.billed == 3
    assert usdc.per_day == Decimal("5.79816")  # 2 + 3.5 + 0.298160 (micro-USDC)
    assert usdc.per_month == Decimal("176.3607")  # per day x 730 h / 24 h


def test_a_month_with_endless_decimals_is_kept_to_the_millionth():
    (cost,) = costs_per_currency([vm_2025(298160, generation="baseline")])
    assert cost.per_day == Decimal("0.29816")
    # 0.29816 x 730 / 24 = 9.0690333…: USDC has 6 decimals, so does the exact amount shown on hover.
    assert cost.per_month == Decimal("9.069033")


def test_a_vm_without_a_price_is_counted_apart():
    (cost,) = costs_per_currency([vm_b("0.5"), vm_b(None)])
    assert (cost.per_day, cost.billed, cost.unpriced) == (Decimal(12), 1, 1)


# --- ended VMs --------------------------------------------------------------------------------------------


def test_ended_vms_cost_nothing_but_are_counted_by_status():
    running = vm_2025("1", "5", name="running")
    ended = [
        vm_2025("50", "7", status="Terminated", name="terminated"),
        vm_2025("50", "0", status="STOPPED"),
        vm_2025("50", "0", status="Failed"),
    ]
    gone_b = vm_b("9", status="terminated")
    overview = cost_overview(
        listing(result([running, *ended]), result([gone_b], generation="b", key_id=2, label="Cloud"))
    )

    assert [(c.currency, c.per_day, c.billed) for c in overview.totals] == [("USDC", Decimal(1), 1)]
    assert [item.vm.display_name for group in overview.top for item in group.vms] == ["running"]
    assert {(count.label, count.count) for count in overview.statuses} == {
        ("Active", 1),
        ("Terminated", 2),
        ("Stopped", 1),
        ("Failed", 1),
    }
    funds = overview.accounts[0].funds
    assert funds.balance == Decimal(5)  # the reserve of the billed VM only
    assert funds.reserved_by_ended == Decimal(7)  # held by the terminated VM until it is deleted
    assert funds.runway.days == Decimal(5)


def test_an_account_of_ended_vms_only_has_no_runway():
    funds = funds_of(result([vm_2025("2", "3", status="Terminated")]))
    assert funds.runway is None and funds.balance is None and funds.reserved_by_ended == Decimal(3)


def test_statuses_run_from_running_to_ended():
    vms = [
        vm_2025("1", status="Terminated"),
        vm_2025("1", status="InsufficientFunds"),
        vm_2025("1", status="New"),
        vm_2025("1", status="ACTIVE"),
        vm_2025("1", status="active"),
    ]
    # By kind first (not alphabetically): running, in transition, needing attention, ended.
    assert [(c.label, c.css_class, c.count) for c in status_counts(vms)] == [
        ("Active", "ok", 2),
        ("New", "transitional", 1),
        ("Insufficient funds", "attention", 1),
        ("Terminated", "ended", 1),
    ]


# --- balance and runway, per API generation ---------------------------------------------------------------


def test_baseline_runway_is_the_reserved_balance_over_the_price_per_epoch():
    # The documented example VM: 0.298160 USDC per epoch, 0.359440 USDC reserved.
    funds = funds_of(result([vm_2025(298160, "359440", generation="baseline")], generation="baseline"))
    assert funds.currency == "USDC" and funds.balance == Decimal("0.35944")
    assert funds.runway.basis == RUNWAY_FROM_RESERVED
    assert funds.runway.days == Decimal("0.35944") / Decimal("0.29816")
    assert funds.runway.text == "1.2 days" and funds.runway.level == "low"


def test_generation_a_runway_pools_the_reserves_and_names_the_vm_that_runs_out_first():
    long, short = vm_2025("2", "10", name="long"), vm_2025("1", "2", name="short")
    funds = funds_of(result([long, short]))
    assert funds.balance == Decimal(12)
    assert funds.runway.days == Decimal(4)  # 12 USDC reserved / 3 USDC a day
    assert (funds.runway.text, funds.runway.level, funds.runway.bar_percent) == ("4 days", "short", "13.3")
    soonest_vm, soonest = funds.soonest
    assert soonest_vm.name == "short" and soonest.text == "2 days"


def test_a_billed_vm_without_a_reserved_balance_is_left_out_of_the_runway_and_said_so():
    funds = funds_of(result([vm_2025("2", "10"), vm_2025("1", None)]))
    assert (funds.balance, funds.runway.days, funds.left_out) == (Decimal(10), Decimal(5), 1)


def test_current_api_runway_is_fluences_own_days_left():
    balance = Balance(balance=Decimal("120.50"), usage=Decimal(30), days_left=12)
    funds = funds_of(result([vm_b("0.1")], generation="b", balance=balance))
    assert (funds.currency, funds.balance) == ("USD", Decimal("120.50"))
    assert (funds.runway.days, funds.runway.basis, funds.runway.text) == (
        Decimal(12),
        RUNWAY_REPORTED,
        "12 days",
    )


def test_current_api_without_days_left_divides_the_balance_by_the_cost_per_day():
    balance = Balance(balance=Decimal(10), usage=None, days_left=None)
    funds = funds_of(result([vm_b("0.1"), vm_b("0.25")], generation="b", balance=balance))
    assert funds.runway.basis == RUNWAY_FROM_BALANCE
    assert funds.runway.days == Decimal(10) / Decimal("8.4")
    assert funds.runway.text == "1.1 days"  # 1.19…: rounded down, never promising more


def test_current_api_without_a_balance_shows_none():
    assert funds_of(result([vm_b("0.1")], generation="b", balance=None)) is None


def test_the_shortest_runway_in_total_is_the_account_that_runs_out_first():
    slow = result([vm_2025("1", "20")], key_id=1, label="Slow")
    fast = result([vm_2025("1", "2")], key_id=2, label="Fast")
    cloud = result(
        [vm_b("1")], generation="b", key_id=3, label="Cloud", balance=Balance(Decimal(99), None, 9)
    )
    overview = cost_overview(listing(slow, fast, cloud))
    assert overview.shortest_runway.account.label == "Fast"
    assert overview.balances == (("USD", Decimal(99)), ("USDC", Decimal(22)))


# --- the most expensive VMs -------------------------------------------------------------------------------


def test_top_three_per_currency_most_expensive_first():
    account = result([]).account
    usdc = [vm_2025(price, name=name) for name, price in [("a", "1"), ("b", "5"), ("c", "3"), ("d", "4")]]
    tie = vm_2025("4", name="a-tie")
    dollars = [vm_b("1", name="big"), vm_b("0.01", name="small")]
    groups = top_vms([(vm, account) for vm in [*usdc, tie, *dollars]])
    assert [(group.currency, [item.vm.name for item in group.vms]) for group in groups] == [
        ("USD", ["big", "small"]),
        ("USDC", ["b", "a-tie", "d"]),  # equal prices: by name
    ]
    assert groups[1].vms[0].per_day == Decimal(5)
    assert groups[1].vms[0].per_month == Decimal("152.083333")


def test_top_three_leave_out_ended_and_unpriced_vms():
    account = result([]).account
    vms = [
        vm_2025("100", status="Terminated", name="ended"),
        vm_b(None, name="unpriced"),
        vm_2025("1", name="ok"),
    ]
    (group,) = top_vms([(vm, account) for vm in vms])
    assert [item.vm.name for item in group.vms] == ["ok"]


def test_the_total_top_three_come_from_every_account_and_each_account_has_its_own():
    one = result([vm_2025("1", name="one-a"), vm_2025("9", name="one-b")], key_id=1, label="One")
    two = result([vm_2025("5", name="two-a"), vm_2025("7", name="two-b")], key_id=2, label="Two")
    overview = cost_overview(listing(one, two))
    (total,) = overview.top
    assert [(item.vm.name, item.account.label) for item in total.vms] == [
        ("one-b", "One"),
        ("two-b", "Two"),
        ("two-a", "Two"),
    ]
    assert [item.vm.name for item in overview.accounts[0].top[0].vms] == ["one-b", "one-a"]


# --- bars -------------------------------------------------------------------------------------------------


def test_cost_bars_are_scaled_to_the_largest_account_of_the_same_currency():
    small = result([vm_2025("2")], key_id=1, label="Small")
    large = result([vm_2025("4")], key_id=2, label="Large")
    tiny = result([vm_2025("0.001")], key_id=3, label="Tiny")
    cloud = result([vm_b("0.01")], generation="b", key_id=4, label="Cloud")  # alone in USD: full
    overview = cost_overview(listing(small, large, tiny, cloud))
    percents = {item.account.label: item.costs[0].bar_percent for item in overview.accounts}
    assert percents == {"Small": "50", "Large": "100", "Tiny": "1", "Cloud": "100"}  # never invisible
    assert (
        overview.accounts[0].costs[0].bar_label == "2.00 USDC per day, 50% of the most expensive USDC account"
    )


@pytest.mark.parametrize(
    ("days", "text", "level", "percent"),
    [
        ("0", "less than a day", "low", "0"),
        ("0.99", "less than a day", "low", "3.3"),
        ("1", "1 day", "low", "3.3"),
        ("1.99", "1.9 days", "low", "6.6"),
        ("3", "3 days", "short", "10"),
        ("6.99", "6.9 days", "short", "23.3"),
        ("7", "7 days", "ok", "23.3"),
        ("10.9", "10 days", "ok", "36.3"),
        ("45", "45 days", "ok", "100"),
    ],
)
def test_runway_is_rounded_down_and_drawn_against_a_month(days, text, level, percent):
    runway = Runway(Decimal(days), RUNWAY_FROM_RESERVED)
    assert (runway.text, runway.level, runway.bar_percent) == (text, level, percent)


# --- accounts that fail -----------------------------------------------------------------------------------


def test_a_failed_account_without_data_is_left_out_of_the_totals_and_named():
    fine = result([vm_2025("2", "4")], key_id=1, label="Fine")
    down = result([], key_id=2, label="Down", problem="Fluence is unavailable (HTTP 503).", fetched_at=None)
    overview = cost_overview(listing(fine, down))
    assert [item.account.label for item in overview.unloaded] == ["Down"]
    assert overview.stale == ()
    (cost,) = overview.totals
    assert cost.per_day == Decimal(2)
    down_costs = overview.accounts[1]
    assert not down_costs.has_data and down_costs.costs == () and down_costs.funds is None


def test_a_stale_account_still_counts_with_its_last_good_data():
    earlier = datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    stale = result([vm_2025("3", "6")], problem="Fluence is unavailable (HTTP 503).", fetched_at=earlier)
    overview = cost_overview(listing(stale))
    assert [item.result.fetched_at for item in overview.stale] == [earlier]
    assert overview.unloaded == ()
    assert overview.totals[0].per_day == Decimal(3)
    assert overview.accounts[0].funds.runway.days == Decimal(2)


def test_no_accounts_no_totals():
    overview = cost_overview(listing())
    assert (overview.totals, overview.top, overview.balances, overview.shortest_runway) == ((), (), (), None)


@pytest.mark.parametrize("generation", ["baseline", "a", "b"])
def test_totals_are_the_sum_of_each_vms_own_costs(generation):
    # The totals scale the summed days once: they must say what adding up every VM's costs says.
    state = SandboxState()
    key = f"sbx_costs_{generation}"
    state.configure_account(key, vm_count=500, generation=generation)
    if generation == "b":
        vms = [parse_vm(vm, generation="b") for vm in state.vms_for(key)]
    else:
        vms = list(
            ADAPTERS[generation].read_cached(state.list_json(key, "v3" if generation == "a" else "v2")).vms
        )
    billed = [vm for vm in vms if not vm.status.is_ended and vm.cost_per_day is not None]
    (total,) = costs_per_currency(vms)
    assert total.billed == len(billed) > 100
    assert total.per_day == sum((vm.cost_per_day for vm in billed), Decimal(0)).quantize(Decimal("0.000001"))
    assert total.per_month == sum((vm.cost_per_month for vm in billed), Decimal(0)).quantize(
        Decimal("0.000001")
    )
