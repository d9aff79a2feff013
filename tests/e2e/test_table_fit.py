"""The VM table in Chromium at 1440 x 900 and on a 390 x 844 phone: every page fits without scrolling sideways
(a very long key label and VM name included), the column chooser is remembered, the rows become cards on
the phone, an account that stopped answering marks its rows, and the counts follow the filters."""

import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms import services
from vms.models import ApiKey, DeletionEvent

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE_ID = "0x0000000000000000000000000000000000000001"
STAGING = "sbx_demo_alice_staging"
LONG_KEY = "sbx_long_label_account_e2e"
# 80 characters (the longest a label may be) with nowhere to break a line.
LONG_LABEL = "ProductionEUCentral_SharedWithDataPlatformAndMLInferenceTeams_2026Q1_BackupKey01"
LONG_NAME = "analytics-warehouse-replica-eu-central-primary-0001"
SIZES = {"1440": {"width": 1440, "height": 900}, "390": {"width": 390, "height": 844}}


def _page_overflow(page) -> int:
    """How far the page itself scrolls sideways (0: it does not)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _errors_of(page) -> list:
    """Console errors from now on: a script error, or something the content security policy refused."""
    errors = []

    def seen(message):
        # The browser asks for /favicon.ico on its own: that 404 is not the portal's.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append((message.text, message.location["url"]))

    page.on("console", seen)
    return errors


def _long_label_world(sandbox):
    """Alice's demo keys, plus one with the longest label, a VM with a long name, and an audit row of it."""
    alice = get_user_model().objects.get(username="alice")
    sandbox.state.configure_account(LONG_KEY, vm_count=3)
    sandbox.state.add_vm(LONG_KEY, name=LONG_NAME, status="ACTIVE")
    api_key = services.apikey_create(owner=alice, label=LONG_LABEL, secret=LONG_KEY, base_url=sandbox.url)
    vm = sandbox.state.vms_for(LONG_KEY)[0]
    DeletionEvent.objects.create(
        correlation_id=uuid.uuid4(),
        kind=DeletionEvent.Kind.INTENT,
        created_at=timezone.now(),
        actor_username="alice",
        key_id=str(api_key.pk),
        key_label=LONG_LABEL,
        key_last_four=api_key.last_four,
        vm_id=vm["id"],
        vm_name=LONG_NAME,
    )
    return api_key


@pytest.mark.parametrize("size", SIZES)
def test_no_page_scrolls_sideways_even_with_a_very_long_key_label(browser, portal, sandbox, size):
    api_key = _long_label_world(sandbox)
    context = browser.new_context(viewport=SIZES[size])
    page = context.new_page()
    errors = _errors_of(page)
    sign_in(page, portal)
    expect(page.locator("#vm-table tbody tr").first).to_be_visible()
    assert _page_overflow(page) <= 0, f"the list scrolls sideways by {_page_overflow(page)} px"
    if size == "1440":
        # Every default column fits: not even the table scrolls within its box.
        table_overflow = page.evaluate(
            "(() => { const t = document.getElementById('vm-table'); "
            "return t.scrollWidth - t.parentElement.clientWidth; })()"
        )
        assert table_overflow <= 0, f"the table is {table_overflow} px too wide at 1440 px"
        # The long texts are cut, with the whole text on hover.
        name = page.locator("#vm-table tbody td:nth-child(2) a", has_text="analytics-warehouse")
        assert name.get_attribute("title") == LONG_NAME
        label = page.locator(f"#vm-table tbody td:nth-child(4) > span[title='{LONG_LABEL}']").first
        assert label.evaluate("e => e.scrollWidth > e.clientWidth")  # visibly cut
    screenshot(page, f"list-{size}")
    pages = {
        "detail": f"/vms/{api_key.pk}/{sandbox.state.vms_for(LONG_KEY)[0]['id']}/",
        "audit": "/audit/",
        "keys": "/keys/",
    }
    for name, path in pages.items():
        page.goto(portal.url + path)
        expect(page.locator("main")).to_contain_text(LONG_LABEL[:20])
        assert _page_overflow(page) <= 0, f"the {name} page scrolls sideways by {_page_overflow(page)} px"
        if name == "keys" and size == "390":
            # The label wraps in its cell instead of making the table a screen and a half wide.
            cell = page.locator("#own-keys td:first-child", has_text="ProductionEUCentral")
            assert cell.bounding_box()["width"] < 200
        screenshot(page, f"{name}-{size}")
    production = ApiKey.objects.get(owner__username="alice", label="Production")
    page.goto(f"{portal.url}/vms/{production.pk}/{EXAMPLE_ID}/")  # the documented VM: every resource
    expect(page.locator("#vm-status")).to_be_visible()
    assert _page_overflow(page) <= 0, f"the detail page scrolls sideways by {_page_overflow(page)} px"
    screenshot(page, f"detail-example-{size}")
    assert not errors, errors  # nothing refused by the content security policy, no script error
    context.close()


def test_the_chosen_columns_are_remembered_after_a_reload_and_signing_out(page, portal):
    errors = _errors_of(page)
    sign_in(page, portal)
    expect(page.locator("#vm-table th.col-ip")).to_have_count(0)  # not a default column
    chooser = page.locator("#column-form")
    chooser.locator("summary").click()
    chooser.get_by_label("Public IP").check()
    expect(page.locator("#vm-table th.col-ip")).to_have_count(1)  # the table refreshed itself
    chooser.get_by_label("vCPU").uncheck()
    expect(page.locator("#vm-table th.col-vcpu")).to_have_count(0)
    example = page.locator(f'#vm-table tr[data-vm-id="{EXAMPLE_ID}"]')
    expect(example).to_contain_text("154.42.3.159")
    screenshot(page, "columns-chosen-1440")
    page.reload()
    expect(page.locator("#vm-table th.col-ip")).to_have_count(1)
    expect(page.locator("#vm-table th.col-vcpu")).to_have_count(0)
    assert chooser.get_by_label("Public IP").is_checked() and not chooser.get_by_label("vCPU").is_checked()
    page.click("text=Sign out alice")
    sign_in(page, portal)
    expect(page.locator("#vm-table th.col-ip")).to_have_count(1)  # kept on the server, not in the session
    assert not errors, errors


def test_the_column_chooser_works_without_javascript(browser, portal):
    context = browser.new_context(viewport=SIZES["1440"], java_script_enabled=False)
    page = context.new_page()
    sign_in(page, portal)
    page.goto(f"{portal.url}/?q=vm")
    chooser = page.locator("#column-form")
    chooser.locator("summary").click()  # <details> opens without a script
    chooser.get_by_label("Age", exact=True).check()
    chooser.get_by_role("button", name="Save columns").click()
    page.wait_for_url(f"{portal.url}/?q=vm")  # back to the list as it was
    assert page.locator("#vm-table th.col-age").count() == 1
    context.close()


def test_each_vm_is_a_card_on_a_phone(browser, portal):
    context = browser.new_context(viewport=SIZES["390"])
    page = context.new_page()
    sign_in(page, portal)
    card = page.locator(f'#vm-table tr[data-vm-id="{EXAMPLE_ID}"]')
    expect(card).to_be_visible()
    assert card.evaluate("e => getComputedStyle(e).display") == "grid"
    expect(page.locator("#vm-table thead")).to_be_hidden()
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    for cell in (2, 3, 4, 5, 6):  # name, status, account, location, cost per day
        expect(card.locator(f"td:nth-child({cell})")).to_be_visible()
    text = card.inner_text()
    for expected in ("vm-name", "Active", "Production", "Paris, France", "0.30 USDC"):
        assert expected in text, expected
    labels = card.locator("td").evaluate_all(
        "cells => cells.map(c => getComputedStyle(c, '::before').content).filter(c => c !== 'none')"
    )
    assert labels == ['"Account"', '"Location"', '"Cost / day"']  # the card labels its lines
    expect(card.locator("td:nth-child(7)")).to_be_hidden()  # vCPU waits for a wider screen
    expect(card.get_by_role("link", name="Delete vm-name")).to_be_visible()
    expect(card.locator("input[name=vm]")).to_be_visible()
    # Name and status share the card's first line.
    name_box = card.locator("td:nth-child(2)").bounding_box()
    status_box = card.locator("td:nth-child(3)").bounding_box()
    assert abs(name_box["y"] - status_box["y"]) < name_box["height"]
    assert _page_overflow(page) <= 0
    screenshot(page, "list-cards-390")
    context.close()


def test_rows_of_an_account_that_stopped_answering_are_marked_with_the_age_of_their_data(
    page, portal, sandbox, settings
):
    settings.FLUENCE_CACHE_SECONDS = 0
    sign_in(page, portal)
    staging_ids = {vm["id"] for vm in sandbox.state.vms_for(STAGING)}
    expect(page.locator("#vm-table .stale")).to_have_count(0)
    sandbox.state.set_faults(key=STAGING, error_rate=1.0, error_status=503)
    page.reload()
    problem = page.locator(".account-problem")
    expect(problem).to_contain_text(
        "Staging (…ging): could not load this account's VMs: Fluence is unavailable"
    )
    expect(problem).to_contain_text("; showing data from")
    line = page.locator("#vm-summary .account-lines li", has_text="Staging")
    expect(line).to_contain_text("not refreshed · last data")
    expect(page.locator("#vm-summary .account-lines li", has_text="Production")).to_contain_text("updated")
    rows = page.locator("#vm-table tbody tr")
    for index in range(rows.count()):
        row = rows.nth(index)
        marked = row.locator(".stale").count() == 1
        assert marked is (row.get_attribute("data-vm-id") in staging_ids), row.inner_text()
    marker = page.locator("#vm-table .stale").first
    expect(marker).to_be_visible()
    assert marker.inner_text().startswith("old data")
    assert "Fluence did not answer" in marker.get_attribute("title")
    screenshot(page, "list-stale-1440")


def _chips(page) -> dict[str, int]:
    found = page.locator("#vm-summary [data-count]").evaluate_all(
        "els => els.map(e => [e.dataset.count, Number(e.textContent)])"
    )
    return dict(found)


def test_banner_chips_and_totals_count_the_rows_shown_with_a_filter_active(page, portal):
    sign_in(page, portal)
    everything = _chips(page)
    assert sum(everything.values()) == int(page.locator("#vm-total").inner_text())
    page.select_option("select[name=status]", "smallbalance")
    page.wait_for_url(re.compile(r"status=smallbalance"))
    expect(page.locator("#vm-total")).not_to_have_text(str(sum(everything.values())))
    shown = page.locator("#vm-table tbody tr[data-vm-id]").count()
    assert shown >= 1
    assert _chips(page) == {"attention": shown}
    banner = page.locator("#vm-summary .attention")
    expect(banner).to_contain_text(f"{shown} VM{'s' if shown > 1 else ''} shown need")
    expect(page.locator("#vm-summary .totals")).to_contain_text(f"{shown} VM")
    page.locator("#vm-search").fill("no-such-vm-anywhere")
    expect(page.locator("#vm-table tbody tr[data-vm-id]")).to_have_count(0)
    expect(page.locator("#vm-summary .attention")).to_have_count(0)
    assert _chips(page) == {}
    screenshot(page, "list-filtered-1440")
