"""The VM list and detail pages in Chromium: search, sort, filters, live refresh, failing accounts."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms import preferences, services

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE_ID = "0x0000000000000000000000000000000000000001"


def _row_names(page) -> list[str]:
    return page.locator("#vm-table tbody td:nth-child(2) > a").all_inner_texts()


def test_search_narrows_the_table_as_you_type(page, portal):
    sign_in(page, portal)
    assert len(_row_names(page)) > 10
    page.locator("#vm-search").press_sequentially("vm-na", delay=50)
    expect(page.locator("#vm-table tbody td:nth-child(2)")).to_have_count(1)
    assert _row_names(page) == ["vm-name"]
    assert "q=vm-na" in page.url  # the URL reflects the search: shareable, and the back button works
    assert page.locator("#vm-search").input_value() == "vm-na"  # nothing reset what was typed
    page.go_back()
    expect(page.locator("#vm-table tbody td:nth-child(2)").nth(5)).to_be_visible()


def test_sort_and_filter_survive_a_reload(page, portal, sandbox):
    sign_in(page, portal)
    page.select_option("select[name=country]", "FR")
    page.wait_for_url(re.compile(r"country=FR"))
    page.locator("#vm-table th.col-price a").click()
    page.wait_for_url(re.compile(r"sort=price"))
    page.wait_for_selector("#vm-table th.col-price[aria-sort=ascending]")
    page.locator("#vm-table th.col-price a").click()
    page.wait_for_url(re.compile(r"sort=-price"))
    page.wait_for_selector("#vm-table th.col-price[aria-sort=descending]")
    before = _row_names(page)
    page.reload()
    assert page.locator("select[name=country]").input_value() == "FR"
    assert page.locator("#vm-table th.col-price").get_attribute("aria-sort") == "descending"
    assert _row_names(page) == before
    locations = page.locator("#vm-table tbody td:nth-child(5)").all_inner_texts()
    assert locations and all("France" in location for location in locations)
    # Sorted by the cost per day within each currency: USD is never ranked against USDC as if equal.
    costs = [text.split()[:2] for text in page.locator("#vm-table tbody td:nth-child(6)").all_inner_texts()]
    for currency in {currency for _, currency in costs}:
        prices = [float(amount.replace(",", "")) for amount, unit in costs if unit == currency]
        assert prices == sorted(prices, reverse=True)


def test_a_launching_vm_turns_active_without_a_reload(page, portal, sandbox, settings):
    settings.VM_POLL_FAST_SECONDS = 1
    settings.FLUENCE_CACHE_SECONDS = 0
    vm = sandbox.state.add_vm(
        "sbx_demo_alice_staging", name="booting-e2e", status="Launching", activate_after=2.5
    )
    preferences.vm_columns_set(user=get_user_model().objects.get(username="alice"), columns=["ip"])
    sign_in(page, portal)
    row = page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"]')
    assert "Launching" in row.inner_text()
    page.evaluate("window.__sameDocument = true")
    expect(row.locator(".badge")).to_have_text("Active", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    ip = page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"] td:nth-child(7)').inner_text()  # chosen above
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip), ip  # an address now, where it said "—"


def test_one_failing_key_leaves_the_other_account_visible(page, portal, sandbox):
    alice = get_user_model().objects.get(username="alice")
    services.apikey_create(
        owner=alice, label="Old account", secret="sbx_demo_revoked_0001", base_url=sandbox.url, verify=False
    )
    sign_in(page, portal)
    problem = page.locator(".account-problem")
    assert "Old account" in problem.inner_text()
    assert "could not load this account's VMs: Fluence refused this API key" in problem.inner_text()
    assert "vm-name" in _row_names(page)
    screenshot(page, "list-with-failing-key-1440")


@pytest.mark.parametrize("width", [1440, 390])
def test_list_and_detail_screenshots(browser, portal, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, portal)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the list page scrolls sideways by {overflow}px at {width}px (only its table may)"
    screenshot(page, f"list-{width}")
    page.click(f'#vm-table tr[data-vm-id="{EXAMPLE_ID}"] td:nth-child(2) a')
    page.wait_for_selector("#vm-status")
    assert "0.298160" in page.locator("#vm-status").inner_text()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the detail page scrolls sideways by {overflow}px at {width}px"
    screenshot(page, f"detail-{width}")
    context.close()
