"""Costs at a glance: what the VMs a person can see cost, per account and in total, what pays for them
(balance and runway), and the most expensive ones; worked out from the VM list's own listing, never asking
Fluence anything more.

Rules: ended VMs cost nothing; USD (today's API) and USDC (the 2025 APIs) are never added together nor
ranked against each other; amounts stay Decimals, kept to the millionth (a derived month has endless
decimals otherwise), and pages round them to cents with the exact value beside.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from vms.accounts import Account, AccountResult, VmListing
from vms.display import format_money
from vms.fluence.models import USD, USDC, StatusClass, Vm, month_of

TOP_COUNT = 3
RUNWAY_HORIZON_DAYS = 30  # the runway bar is full at a month: beyond that, the number says how much
RUNWAY_LOW_DAYS = 3  # below this the runway bar is red
RUNWAY_SHORT_DAYS = 7  # below this, amber
MIN_BAR_PERCENT = Decimal(1)  # a non-zero amount never draws as nothing

_MILLIONTH = Decimal("0.000001")
_TENTH = Decimal("0.1")
_HUNDRED = Decimal(100)
_STATUS_ORDER = {css_class: index for index, css_class in enumerate(StatusClass)}


def _to_the_millionth(amount: Decimal) -> Decimal:
    """An amount with at most 6 decimals (USDC's own precision); shorter ones are left as they are."""
    return amount.quantize(_MILLIONTH) if amount.as_tuple().exponent < -6 else amount


def _percent(part: Decimal, whole: Decimal) -> str:
    """`part` as a percentage of `whole` for an SVG length ("57.3"): 0 to 100, at least 1 when non-zero."""
    if whole <= 0 or part <= 0:
        return "0"
    share = min(part / whole * _HUNDRED, _HUNDRED)
    share = max(share, MIN_BAR_PERCENT).quantize(_TENTH, rounding=ROUND_HALF_UP)
    return format(share.normalize(), "f")


def is_billed(vm: Vm) -> bool:
    """Whether the VM still costs money: an ended VM (terminated, stopped, failed) is billed no more."""
    return not vm.status.is_ended


# --- VMs by status --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusCount:
    label: str  # "Active", "Small balance"
    css_class: str  # the badge's class: "ok", "transitional", "attention", "ended", "unknown"
    count: int


def status_counts(vms: Iterable[Vm]) -> tuple[StatusCount, ...]:
    """How many VMs are in each status, running ones first, then in transition, needing attention, ended."""
    counts: Counter[str] = Counter()
    seen = {}
    for vm in vms:
        counts[vm.status.key] += 1
        seen.setdefault(vm.status.key, vm.status)
    ordered = sorted(seen.values(), key=lambda status: (_STATUS_ORDER[status.css_class], status.label))
    return tuple(StatusCount(status.label, str(status.css_class), counts[status.key]) for status in ordered)


# --- cost per currency ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurrencyCost:
    """What the billed VMs of one currency cost (VMs without a price are counted apart)."""

    currency: str
    per_day: Decimal
    per_month: Decimal  # a month of 730 hours, as Fluence counts one
    billed: int  # VMs that are not ended and have a price
    unpriced: int = 0  # VMs that are not ended and whose price Fluence did not give
    # The bar's length: per_day against the most expensive account of the same currency ("57.3", 0-100).
    bar_percent: str = "0"

    @property
    def bar_label(self) -> str:
        """The bar in words, for screen readers and as its tooltip."""
        share = Decimal(self.bar_percent).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return (
            f"{format_money(self.per_day)} {self.currency} per day, {share}% of the most expensive "
            f"{self.currency} account"
        )


def costs_per_currency(vms: Iterable[Vm]) -> tuple[CurrencyCost, ...]:
    """One total per currency over the VMs that are not ended, USD before USDC."""
    # A month is a day's cost scaled (Vm.cost_per_month) unless Fluence priced the month: the days to scale
    # are summed first and scaled once (this runs over every VM of every refresh).
    totals: dict[str, list] = {}
    for vm in vms:
        if not is_billed(vm):
            continue
        total = totals.get(vm.currency)
        if total is None:  # not setdefault: its default would be built for every VM
            total = totals[vm.currency] = [Decimal(0), Decimal(0), Decimal(0), 0, 0]
        per_day = vm.cost_per_day
        if per_day is None:
            total[4] += 1
            continue
        total[0] += per_day
        if (priced := vm.month_price) is not None:
            total[1] += priced
        else:
            total[2] += per_day
        total[3] += 1
    return tuple(
        CurrencyCost(
            currency=currency,
            per_day=_to_the_millionth(per_day),
            per_month=_to_the_millionth(priced_months + month_of(scaled_days)),
            billed=billed,
            unpriced=unpriced,
        )
        for currency, (per_day, priced_months, scaled_days, billed, unpriced) in sorted(totals.items())
    )


# --- the most expensive VMs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostlyVm:
    vm: Vm
    account: Account
    per_day: Decimal
    per_month: Decimal


@dataclass(frozen=True, slots=True)
class TopVms:
    """The most expensive billed VMs of one currency, most expensive first."""

    currency: str
    vms: tuple[CostlyVm, ...]


def top_vms(pairs: Iterable[tuple[Vm, Account]], count: int = TOP_COUNT) -> tuple[TopVms, ...]:
    """Per currency, the `count` billed VMs that cost the most per day (ties by name, then id)."""
    by_currency: dict[str, list[CostlyVm]] = {}
    for vm, account in pairs:
        per_day, per_month = vm.cost_per_day, vm.cost_per_month
        if not is_billed(vm) or per_day is None or per_month is None:
            continue
        costly = CostlyVm(vm, account, _to_the_millionth(per_day), _to_the_millionth(per_month))
        by_currency.setdefault(vm.currency, []).append(costly)
    return tuple(
        TopVms(
            currency,
            tuple(
                sorted(
                    by_currency[currency],
                    key=lambda item: (-item.per_day, item.vm.display_name.lower(), item.vm.key),
                )[:count]
            ),
        )
        for currency in sorted(by_currency)
    )


# --- balance and runway -----------------------------------------------------------------------------------

RUNWAY_REPORTED = "reported"  # today's API: Fluence's own usageDaysLeft
RUNWAY_FROM_BALANCE = "balance"  # today's API without usageDaysLeft: the balance over the cost per day
RUNWAY_FROM_RESERVED = "reserved"  # the 2025 APIs: the VMs' reserved balance over their cost per day


@dataclass(frozen=True, slots=True)
class Runway:
    """How many days the money set aside lasts at today's cost."""

    days: Decimal
    basis: str  # RUNWAY_REPORTED, RUNWAY_FROM_BALANCE or RUNWAY_FROM_RESERVED

    @property
    def text(self) -> str:
        """Rounded down, never promising more than there is: "less than a day", "3.4 days", "42 days"."""
        if self.days < 1:
            return "less than a day"
        places = _TENTH if self.days < 10 else Decimal(1)
        shown = self.days.quantize(places, rounding=ROUND_DOWN).normalize()
        return f"{format(shown, 'f')} day{'' if shown == 1 else 's'}"

    @property
    def level(self) -> str:
        """The bar's colour: "low" under 3 days, "short" under a week, "ok" beyond."""
        if self.days < RUNWAY_LOW_DAYS:
            return "low"
        if self.days < RUNWAY_SHORT_DAYS:
            return "short"
        return "ok"

    @property
    def bar_percent(self) -> str:
        return _percent(self.days, Decimal(RUNWAY_HORIZON_DAYS))

    @property
    def beyond_horizon(self) -> bool:
        return self.days > RUNWAY_HORIZON_DAYS

    @property
    def basis_text(self) -> str:
        return _RUNWAY_BASES[self.basis]

    @property
    def bar_label(self) -> str:
        """The bar in words, for screen readers and as its tooltip."""
        return (
            f"runway {self.text} at today's cost ({self.basis_text}); "
            f"the bar is full at {RUNWAY_HORIZON_DAYS} days"
        )


_RUNWAY_BASES = {
    RUNWAY_REPORTED: "Fluence's estimate",
    RUNWAY_FROM_BALANCE: "balance ÷ cost per day",
    RUNWAY_FROM_RESERVED: "reserved balance ÷ cost per day",
}


@dataclass(frozen=True, slots=True)
class Funds:
    """What pays for an account's VMs, and for how long."""

    currency: str
    balance: Decimal | None  # today's API: the prepaid balance; the 2025 APIs: reserved for billed VMs
    runway: Runway | None
    left_out: int = 0  # billed VMs without a readable price or reserved balance (2025 APIs), not counted
    reserved_by_ended: Decimal = Decimal(0)  # 2025 APIs: held by ended VMs until they are deleted
    soonest: tuple[Vm, Runway] | None = None  # 2025 APIs: the VM whose own reserve runs out first


def _funds_reserved(vms: tuple[Vm, ...]) -> Funds:
    """The 2025 APIs: each VM has its own reserve, paid epoch by epoch; the account's runway is the reserve
    of its billed VMs over their cost per day."""
    counted = [
        vm for vm in vms if is_billed(vm) and vm.cost_per_day is not None and vm.reserved_balance is not None
    ]
    left_out = sum(1 for vm in vms if is_billed(vm)) - len(counted)
    reserved = sum((vm.reserved_balance for vm in counted), Decimal(0))
    per_day = sum((vm.cost_per_day for vm in counted), Decimal(0))
    ended_reserve = sum(
        (vm.reserved_balance for vm in vms if not is_billed(vm) and vm.reserved_balance), Decimal(0)
    )
    runway = Runway(reserved / per_day, RUNWAY_FROM_RESERVED) if per_day > 0 else None
    # Reserves are not pooled: one VM may run out long before the account's average says.
    own = [
        (vm, Runway(vm.reserved_balance / vm.cost_per_day, RUNWAY_FROM_RESERVED))
        for vm in counted
        if vm.cost_per_day > 0
    ]
    soonest = min(own, key=lambda pair: (pair[1].days, pair[0].key)) if len(own) > 1 else None
    if soonest is not None and (runway is None or soonest[1].text == runway.text):
        soonest = None  # it runs out when the account does, as far as the page can tell
    return Funds(
        currency=USDC,
        balance=reserved if counted else None,
        runway=runway,
        left_out=left_out,
        reserved_by_ended=ended_reserve,
        soonest=soonest,
    )


def _funds_prepaid(result: AccountResult, per_day: Decimal) -> Funds:
    """Today's API: one prepaid USD balance per account; Fluence says how many days it lasts."""
    balance = result.balance
    amount = balance.balance if balance is not None else None
    if balance is not None and balance.days_left is not None:
        runway = Runway(Decimal(balance.days_left), RUNWAY_REPORTED)
    elif amount is not None and per_day > 0:
        runway = Runway(max(amount, Decimal(0)) / per_day, RUNWAY_FROM_BALANCE)
    else:
        runway = None
    return Funds(currency=balance.currency if balance is not None else USD, balance=amount, runway=runway)


def funds_of(result: AccountResult) -> Funds | None:
    """The account's balance and runway, where its API tells them; None when there is nothing to show."""
    if result.account.generation == "b" or result.balance is not None:
        per_day = sum(
            (vm.cost_per_day for vm in result.vms if is_billed(vm) and vm.cost_per_day is not None),
            Decimal(0),
        )
        funds = _funds_prepaid(result, per_day)
        return funds if funds.balance is not None or funds.runway is not None else None
    if not result.vms:
        return None
    return _funds_reserved(result.vms)


# --- per account and in total ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountCosts:
    result: AccountResult
    statuses: tuple[StatusCount, ...]
    costs: tuple[CurrencyCost, ...]
    funds: Funds | None
    top: tuple[TopVms, ...]

    @property
    def account(self) -> Account:
        return self.result.account

    @property
    def vm_count(self) -> int:
        return len(self.result.vms)

    @property
    def has_data(self) -> bool:
        """Fluence answered, now or earlier (stale data is shown with its time)."""
        return self.result.fetched_at is not None


@dataclass(frozen=True, slots=True)
class CostOverview:
    accounts: tuple[AccountCosts, ...]
    totals: tuple[CurrencyCost, ...]
    statuses: tuple[StatusCount, ...]
    top: tuple[TopVms, ...]
    balances: tuple[tuple[str, Decimal], ...]  # (currency, the accounts' balances added up)
    shortest_runway: AccountCosts | None  # the account whose money runs out first

    @property
    def vm_count(self) -> int:
        return sum(item.vm_count for item in self.accounts)

    @property
    def unloaded(self) -> tuple[AccountCosts, ...]:
        """Accounts that failed with nothing to show: the totals leave them out."""
        return tuple(item for item in self.accounts if item.result.problem and not item.has_data)

    @property
    def stale(self) -> tuple[AccountCosts, ...]:
        """Accounts that failed now: the totals count their last good data."""
        return tuple(item for item in self.accounts if item.result.is_stale)


def _scaled(accounts: list[AccountCosts]) -> list[AccountCosts]:
    """Each account's cost bars against the most expensive account of the same currency."""
    largest: dict[str, Decimal] = {}
    for item in accounts:
        for cost in item.costs:
            largest[cost.currency] = max(largest.get(cost.currency, Decimal(0)), cost.per_day)
    return [
        replace(
            item,
            costs=tuple(
                replace(cost, bar_percent=_percent(cost.per_day, largest[cost.currency]))
                for cost in item.costs
            ),
        )
        for item in accounts
    ]


def account_costs(result: AccountResult) -> AccountCosts:
    return AccountCosts(
        result=result,
        statuses=status_counts(result.vms),
        costs=costs_per_currency(result.vms),
        funds=funds_of(result),
        top=top_vms((vm, result.account) for vm in result.vms),
    )


def cost_overview(listing: VmListing) -> CostOverview:
    """Everything the costs page shows, from the listing the VM list shows (nothing more is fetched)."""
    accounts = _scaled([account_costs(result) for result in listing.accounts])
    vms = [vm for result in listing.accounts for vm in result.vms]
    balances: dict[str, Decimal] = {}
    for item in accounts:
        if item.funds is not None and item.funds.balance is not None:
            balances[item.funds.currency] = balances.get(item.funds.currency, Decimal(0)) + item.funds.balance
    with_runway = [item for item in accounts if item.funds is not None and item.funds.runway is not None]
    shortest = min(with_runway, key=lambda item: item.funds.runway.days) if with_runway else None
    return CostOverview(
        accounts=tuple(accounts),
        totals=costs_per_currency(vms),
        statuses=status_counts(vms),
        top=top_vms((vm, result.account) for result in listing.accounts for vm in result.vms),
        balances=tuple(sorted(balances.items())),
        shortest_runway=shortest,
    )
