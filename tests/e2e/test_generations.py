"""The demo's accounts on today's API and on the 2025 APIs, side by side in one table, with prices a
person can compare: per day and per month, each in its own currency, and one total per currency."""

import re

import pytest

from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def _rows_of(page, account: str):
    return page.locator("#vm-table tbody tr").filter(
        has=page.locator(f"td:nth-child(4):has-text('{account}')")
    )


def test_current_and_2025_accounts_share_one_table_with_readable_prices(page, portal):
    sign_in(page, portal)

    cloud, staging = _rows_of(page, "Cloud"), _rows_of(page, "Staging")
    assert cloud.count() > 0 and staging.count() > 0
    cloud_prices = cloud.locator("td:nth-child(6)").all_inner_texts()
    staging_prices = staging.locator("td:nth-child(6)").all_inner_texts()
    usd = re.compile(r"\A[\d,]+\.\d\d USD\n[\d,]+\.\d\d/mo · second\Z")
    usdc = re.compile(r"\A[\d,]+\.\d\d USDC\n[\d,]+\.\d\d/mo · epoch\Z")
    # Today's API may leave a price out (null): that cell says so, every other one reads as a price.
    assert all(usd.search(text) or text == "—" for text in cloud_prices), cloud_prices
    assert sum(bool(usd.search(text)) for text in cloud_prices) >= len(cloud_prices) - 2, cloud_prices
    assert all(usdc.search(text) for text in staging_prices), staging_prices
    # One total per currency: USD is never added to USDC.
    totals = page.locator("#vm-spend .spend")
    assert sorted(totals.evaluate_all("spans => spans.map(s => s.dataset.currency)")) == ["USD", "USDC"]
    # Today's API is billed per second: no epoch in its next-billing cell.
    assert all("per second" in text for text in cloud.locator("td:nth-child(9)").all_inner_texts())
    # The accounts say which API each speaks, and the current one its balance.
    summary = page.locator("#vm-summary").inner_text()
    assert "current API" in summary and "2025 API (v3)" in summary and "USD" in summary
    screenshot(page, "generations-list-1440")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert _rows_of(page, "Cloud").count() > 0
    screenshot(page, "generations-list-390")


def test_the_keys_page_names_each_keys_api_in_words(page, portal):
    sign_in(page, portal)
    page.goto(f"{portal.url}/keys/")
    keys = page.locator("#own-keys").inner_text()
    assert "current API" in keys and "2025 API (v3)" in keys and "2025 draft API (v2)" in keys
    screenshot(page, "generations-keys")
