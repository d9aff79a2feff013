"""The costs page in Chromium, as the demo user alice: the numbers against the sandbox's own data, the bars
as pictures with words for screen readers, and no sideways scrolling on a desktop or a phone."""

import json
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

import pytest
from django.contrib.auth import get_user_model

from tests.e2e.conftest import screenshot, sign_in
from vms import services
from vms.sandbox import DEMO_ACCOUNTS, DEMO_USERS

pytestmark = pytest.mark.django_db(transaction=True)

ENDED = {"terminated", "stopped", "failed"}  # fluence-api.md §3 and §4: billed no more
MICRO = Decimal(1_000_000)


def _cents(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f}"


def _days(days: Decimal) -> str:
    if days < 1:
        return "less than a day"
    shown = days.quantize(Decimal("0.1") if days < 10 else Decimal(1), rounding=ROUND_DOWN).normalize()
    return f"{shown:f} day{'' if shown == 1 else 's'}"


def _expected(sandbox) -> dict:
    """What the page must say, worked out here from the sandbox's VMs as the API serves them."""
    accounts = {}
    for key in DEMO_USERS["alice"]:
        spec = DEMO_ACCOUNTS[key]
        vms = sandbox.state.vms_for(key)
        billed = [vm for vm in vms if vm["status"].lower() not in ENDED]
        if spec["generation"] == "b":
            priced = [vm for vm in billed if vm["priceHourlyUsd"] is not None]
            per_day = sum((Decimal(vm["priceHourlyUsd"]) * 24 for vm in priced), Decimal(0))
            per_month = sum((Decimal(vm["priceMonthlyUsd"]) for vm in priced), Decimal(0))
            (entitlement,) = json.loads(sandbox.state.balances_json(key))
            balance = Decimal(entitlement["balance"])
            runway_days = Decimal(entitlement["usageDaysLeft"])
            currency, costs = "USD", [(vm["name"], Decimal(vm["priceHourlyUsd"]) * 24) for vm in priced]
        else:  # the 2025 APIs: micro-USDC per 24 h epoch; each VM's reserve pays for it
            per_day = sum((Decimal(vm["pricePerEpoch"]) / MICRO for vm in billed), Decimal(0))
            per_month = per_day / 24 * 730
            balance = sum((Decimal(vm["reservedBalance"]) / MICRO for vm in billed), Decimal(0))
            runway_days = balance / per_day
            currency, costs = "USDC", [(vm["vmName"], Decimal(vm["pricePerEpoch"]) / MICRO) for vm in billed]
        top = [name for name, _ in sorted(costs, key=lambda pair: (-pair[1], pair[0].lower()))[:3]]
        accounts[spec["label"]] = {
            "vms": len(vms),
            "currency": currency,
            "per_day": per_day,
            "per_month": per_month,
            "balance": balance,
            "runway": _days(runway_days),
            "runway_days": runway_days,
            "top": top,
            "costs": costs,
        }
    return accounts


def _open_costs(page, portal):
    sign_in(page, portal)
    nav = page.locator(".site-header nav a:not(.brand)").all_inner_texts()
    assert nav[:3] == ["VMs", "Costs", "Audit"], nav  # between the VM list and the audit trail
    page.locator(".site-header nav a", has_text="Costs").click()
    page.wait_for_url(f"{portal.url}/costs/")
    assert page.locator(".site-header a[aria-current=page]").inner_text() == "Costs"


@pytest.fixture(params=[(1440, 900), (390, 844)], ids=["1440", "390"])
def sized_page(request, browser):
    """A page at a desktop's and at a phone's size, collecting what went wrong while it was open."""
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.width = width
    page.errors = []
    # CSP refusals and script errors reach the console; a page resource that fails (costs.css) is a
    # response. (The console's own "Failed to load resource" is the browser's favicon.ico: not ours.)
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and page.errors.append(message.text)
        ),
    )
    page.on("response", lambda response: response.status >= 400 and page.errors.append(response.url))
    yield page
    context.close()


def test_costs_page_shows_the_sandbox_numbers_as_text_and_bars(sized_page, portal, sandbox):
    page, width = sized_page, sized_page.width
    _open_costs(page, portal)
    expected = _expected(sandbox)

    # In total: one figure per currency, never USD and USDC added together.
    totals = page.locator(".cost-total")
    assert sorted(totals.evaluate_all("els => els.map(e => e.dataset.currency)")) == ["USD", "USDC"]
    for currency in ("USD", "USDC"):
        mine = [account for account in expected.values() if account["currency"] == currency]
        per_day = sum((account["per_day"] for account in mine), Decimal(0))
        per_month = sum((account["per_month"] for account in mine), Decimal(0))
        figure = page.locator(f'.cost-total[data-currency="{currency}"]')
        assert figure.locator(".cost-per-day").inner_text() == f"{_cents(per_day)} {currency}"
        assert figure.locator(".cost-per-month").inner_text() == f"{_cents(per_month)} {currency}"
        # The exact amount on hover: it reads back as the very amount, not a rounded one.
        exact = figure.locator(".cost-per-day").get_attribute("title").split()[0]
        assert Decimal(exact) == per_day.quantize(Decimal("0.000001")), exact
    # The three most expensive VMs of each currency, each a link to its own page.
    for currency in ("USD", "USDC"):
        everything = [
            (name, cost)
            for account in expected.values()
            if account["currency"] == currency
            for name, cost in account["costs"]
        ]
        top = [name for name, _ in sorted(everything, key=lambda pair: (-pair[1], pair[0].lower()))[:3]]
        links = page.locator(f'.costs-total .cost-top[data-currency="{currency}"] li > a')
        assert links.all_inner_texts() == top
        assert all(
            href.startswith("/vms/")
            for href in links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
        )

    # The account whose money runs out first.
    shortest = min(expected, key=lambda label: expected[label]["runway_days"])
    assert page.locator(".runway-first p").first.inner_text() == (
        f"{shortest}: {expected[shortest]['runway']}"
    )

    # Per account: VM count, cost per day and month, balance and runway, its own top three.
    for label, account in expected.items():
        card = page.locator("article.cost-account").filter(has=page.locator(f"h3:has-text('{label}')"))
        assert f"{account['vms']} VMs" in card.locator("header").inner_text()
        currency = account["currency"]
        assert (
            card.locator(".cost-line .cost-per-day").inner_text()
            == f"{_cents(account['per_day'])} {currency}"
        )
        assert (
            card.locator(".cost-line .cost-per-month").inner_text()
            == f"{_cents(account['per_month'])} {currency}"
        )
        assert card.locator(".funds-balance").inner_text() == f"{_cents(account['balance'])} {currency}"
        assert card.locator(".funds-runway").inner_text() == account["runway"]
        assert card.locator(".cost-top li > a").all_inner_texts() == account["top"]
        # The pictures: a cost bar scaled within its currency and a runway bar, each named in words.
        cost_bar = card.locator("svg.bar-cost[role=img]")
        assert cost_bar.count() == 1
        label_text = cost_bar.get_attribute("aria-label")
        assert label_text.startswith(f"{label}: {_cents(account['per_day'])} {currency} per day"), label_text
        assert cost_bar.locator("title").text_content() == label_text
        largest = max(a["per_day"] for a in expected.values() if a["currency"] == currency)
        width_of_fill = Decimal(cost_bar.locator("rect.bar-fill").get_attribute("width"))
        assert abs(width_of_fill - account["per_day"] / largest * 100) <= Decimal("0.1")
        runway_bar = card.locator("svg.bar-runway[role=img]")
        assert account["runway"] in runway_bar.get_attribute("aria-label")
        drawn = card.locator("svg.bar").evaluate_all("svgs => svgs.map(s => s.getBoundingClientRect().width)")
        assert all(width > 50 for width in drawn), drawn  # drawn, not collapsed to nothing

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the costs page scrolls sideways by {overflow}px at {width}px"
    assert not page.errors, page.errors  # nothing refused by the CSP, no script error
    screenshot(page, f"costs-{width}")

    # A top VM's link opens that VM's page, with its exact price.
    first = page.locator('.costs-total .cost-top[data-currency="USDC"] li > a').first
    first.click()
    page.wait_for_selector("#vm-status")


def test_failing_accounts_are_shown_per_account_and_named_by_the_totals(page, portal, sandbox, settings):
    alice = get_user_model().objects.get(username="alice")
    services.apikey_create(
        owner=alice, label="Old account", secret="sbx_demo_revoked_0001", base_url=sandbox.url, verify=False
    )
    settings.FLUENCE_CACHE_SECONDS = 0
    _open_costs(page, portal)  # every account answers once: Staging has good data to fall back on
    sandbox.state.set_faults(key="sbx_demo_alice_staging", error_rate=1.0, error_status=503)
    page.reload()

    old = page.locator("article.cost-account").filter(has=page.locator("h3:has-text('Old account')"))
    assert "Could not load:" in old.inner_text() and "No earlier data to show." in old.inner_text()
    assert old.locator("svg.bar").count() == 0  # nothing to draw: no data
    staging = page.locator("article.cost-account").filter(has=page.locator("h3:has-text('Staging')"))
    problem = staging.locator(".account-problem").inner_text()
    assert "Could not load:" in problem and "503" in problem and "Showing data from" in problem
    assert staging.locator("svg.bar-cost").count() == 1  # its last good data is still drawn
    assert (
        "leave out 1 account that could not be loaded: Old account"
        in page.locator("#costs-left-out").inner_text()
    )
    assert "Staging" in page.locator("#costs-stale").inner_text()
    screenshot(page, "costs-failing-1440")
