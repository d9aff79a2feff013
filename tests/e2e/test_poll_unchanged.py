"""In Chromium: a refresh of the VM table that finds nothing changed is answered 204 and leaves the rows the
very same elements; a change is swapped in at the next refresh."""

from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from tests.test_table_version import FrozenClock
from vms import services, table_version, vm_cache

pytestmark = pytest.mark.django_db(transaction=True)

POLLED = "sbx_poll_unchanged_e2e"

# Refresh the table as htmx does on `vms-changed`, and resolve with the status of that refresh once htmx
# has handled it (after any swap: htmx:afterRequest reaches the body from the table or, once the table is
# replaced, from its parent).
REFRESH = """() => new Promise((resolve) => {
  const done = (event) => resolve(event.detail.xhr.status);
  document.body.addEventListener("htmx:afterRequest", done, {once: true});
  document.body.dispatchEvent(new Event("vms-changed"));
})"""
MARK_ROWS = (
    "() => document.querySelectorAll('#vm-table tr[data-vm-id]').forEach((row) => { row.__marker = 1; })"
)
ROW_MARKERS = (
    "() => Array.from(document.querySelectorAll('#vm-table tr[data-vm-id]'), (row) => row.__marker === 1)"
)


@pytest.fixture
def steady(settings, monkeypatch):
    """Only what the test changes may change the table: lists stay fresh, the version's minute stands
    still, and the table refreshes when the test says so, not on its own timer."""
    settings.FLUENCE_CACHE_SECONDS = 600
    settings.VM_POLL_FAST_SECONDS = 600
    settings.VM_POLL_SLOW_SECONDS = 600
    monkeypatch.setattr(table_version, "time", FrozenClock(1_800_000_000 * 60 + 5))


def _table_refresh(response) -> bool:
    return response.request.headers.get("hx-request") == "true" and urlsplit(response.url).path == "/"


def test_an_unchanged_refresh_leaves_the_rows_and_a_change_replaces_them(page, portal, sandbox, steady):
    sandbox.state.configure_account(POLLED, vm_count=3)
    alice = get_user_model().objects.get(username="alice")
    api_key = services.apikey_create(owner=alice, label="Polled", secret=POLLED, base_url=sandbox.url)
    sign_in(page, portal)
    table = page.locator("#vm-table")
    assert table_version.HEADER in table.get_attribute("hx-headers")
    rows = page.locator("#vm-table tr[data-vm-id]").count()
    assert rows > 3  # the demo accounts' VMs and the three of this test
    page.evaluate(MARK_ROWS)

    with page.expect_response(_table_refresh) as sent:
        status = page.evaluate(REFRESH)
    assert status == 204 and sent.value.status == 204
    sent_version = sent.value.request.headers.get(table_version.HEADER.lower())
    assert sent_version and sent_version in table.get_attribute("hx-headers")
    assert page.evaluate(ROW_MARKERS) == [True] * rows  # the very same row elements: nothing was swapped

    added = sandbox.state.add_vm(POLLED, name="aaa-added-while-watching", status="ACTIVE")
    vm_cache.forget(api_key.pk)  # the cached list expires
    with page.expect_response(_table_refresh) as sent:
        status = page.evaluate(REFRESH)
    assert status == 200 and sent.value.status == 200
    expect(page.locator(f'#vm-table tr[data-vm-id="{added["id"]}"]')).to_contain_text(
        "aaa-added-while-watching"
    )
    markers = page.evaluate(ROW_MARKERS)
    assert markers and not any(markers)  # every row is a new element
    assert page.console_errors == []
    screenshot(page, "poll-unchanged")
