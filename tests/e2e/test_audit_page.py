"""The audit page in Chromium: one line per attempt, every column readable at 1440 px, no sideways page
scroll on a desktop or a phone; and *Stop sharing* asks first."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms.models import ApiKey, DeletionEvent, KeyShare

pytestmark = pytest.mark.django_db(transaction=True)

LONG_MESSAGE = (
    "Fluence is unavailable (HTTP 503): the provider did not answer within the deadline; "
    "nothing was deleted and the VM keeps running."
)


def _attempt(api_key, *, minutes_ago, outcome, status=None, message="", source="portal"):
    """One attempt on one of the key's VMs: its intent row and, unless outcome is None, its outcome row."""
    at = timezone.now() - timedelta(minutes=minutes_ago)
    common = {
        "correlation_id": uuid.uuid4(),
        "actor_username": "alice",
        "actor_id": str(api_key.owner_id),
        "client_ip": "192.0.2.10",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140",
        "request_id": uuid.uuid4().hex,
        "key_id": str(api_key.pk),
        "key_label": api_key.label,
        "key_last_four": api_key.last_four,
        "key_owner_username": "alice",
        "base_url": api_key.base_url,
        "vm_id": "0x" + uuid.uuid4().hex + "abcdef01",
        "vm_name": f"web-{minutes_ago}",
    }
    DeletionEvent.objects.create(kind="intent", created_at=at, **common)
    if outcome:
        DeletionEvent.objects.create(
            kind="outcome",
            outcome=outcome,
            upstream_status=status,
            message=message,
            source=source,
            created_at=at + timedelta(seconds=3),
            **{**common, "request_id": common["request_id"] if source == "portal" else ""},
        )
    return common["correlation_id"]


def _page_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


CLIPPED_CELLS = """
() => Array.from(document.querySelectorAll('#audit-table td')).filter(
  (cell) => cell.scrollWidth > cell.clientWidth + 1
).map((cell) => cell.textContent.trim().slice(0, 60))
"""
REQUEST_IDS = """
() => Array.from(document.querySelectorAll('#audit-table td.audit-request-id code')).map((code) => ({
  text: code.textContent, title: code.title,
  fits: code.getBoundingClientRect().right <= code.closest('td').getBoundingClientRect().right + 1,
  cellScroll: code.closest('td').scrollWidth - code.closest('td').clientWidth,
}))
"""
TABLE_OVERFLOW = (
    "(() => { const t = document.querySelector('#audit-table table');"
    " return t.scrollWidth - t.parentElement.clientWidth; })()"
)
PLACEHOLDER_FITS = """
() => {
  const input = document.querySelector('input[name=actor]');
  const style = getComputedStyle(input);
  const context = document.createElement('canvas').getContext('2d');
  context.font = style.font;
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return {placeholder: input.placeholder, text: context.measureText(input.placeholder).width, room};
}
"""


def test_the_audit_page_reads_as_attempts_and_fits(page, portal, sandbox):
    production = ApiKey.objects.get(owner__username="alice", label="Production")
    ok = _attempt(production, minutes_ago=50, outcome="succeeded", status=200)
    _attempt(production, minutes_ago=40, outcome="succeeded")  # accepted, no status recorded
    _attempt(production, minutes_ago=30, outcome="failed", status=503, message=LONG_MESSAGE)
    _attempt(
        production, minutes_ago=20, outcome="succeeded", source="reconcile", message="Gone from Fluence."
    )
    _attempt(production, minutes_ago=10, outcome=None)

    sign_in(page, portal)
    # Every write, the demo's key events (three keys added, one shared) among them, fits at 1440 px.
    page.goto(f"{portal.url}/audit/")
    lines = page.locator("#audit-table tr.audit-row")
    expect(lines).to_have_count(9)
    assert page.evaluate(CLIPPED_CELLS) == []
    assert page.evaluate(TABLE_OVERFLOW) <= 0, "the audit table is too wide at 1440 px"
    screenshot(page, "audit-every-event-1440")
    # The VM events alone read as attempts.
    page.goto(f"{portal.url}/audit/?target=vm")
    expect(lines).to_have_count(5)
    expect(page.locator("#audit-count")).to_have_text("5")
    upstream = [text.strip() for text in page.locator("#audit-table td.audit-upstream").all_inner_texts()]
    assert upstream == ["pending", "accepted", "503", "accepted", "200"]
    screenshot(page, "audit-1440")

    assert page.evaluate(CLIPPED_CELLS) == []
    request_ids = page.evaluate(REQUEST_IDS)
    assert len(request_ids) == 5  # every line shows its intent's request id
    for request_id in request_ids:
        assert request_id["title"] == request_id["text"] and len(request_id["text"]) == 32
        assert request_id["fits"] and request_id["cellScroll"] <= 0, request_id
    table_overflow = page.evaluate(TABLE_OVERFLOW)
    assert table_overflow <= 0, f"the audit table is {table_overflow} px too wide at 1440 px"
    assert _page_overflow(page) <= 0
    placeholder = page.evaluate(PLACEHOLDER_FITS)
    assert placeholder["placeholder"] == "Actor" and placeholder["text"] <= placeholder["room"], placeholder

    # One click to the attempt's intent and outcome rows.
    page.locator(f'#audit-table tr[data-correlation-id="{ok}"] a.audit-attempt-link').click()
    expect(page.locator("#audit-attempt-rows tbody tr")).to_have_count(2)
    expect(page).to_have_url(f"{portal.url}/audit/?attempt={ok}")
    assert page.evaluate(CLIPPED_CELLS) == []
    screenshot(page, "audit-attempt-1440")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{portal.url}/audit/")
    expect(lines).to_have_count(9)
    assert _page_overflow(page) <= 0, (
        f"the audit page scrolls sideways by {_page_overflow(page)} px at 390 px"
    )
    screenshot(page, "audit-390")
    assert page.console_errors == []


def test_stop_sharing_asks_first(page, portal):
    production = ApiKey.objects.get(owner__username="alice", label="Production")
    assert KeyShare.objects.filter(api_key=production, group__name="Ops").exists()  # the demo's share
    sign_in(page, portal)
    page.goto(f"{portal.url}/keys/{production.pk}/sharing/")
    screenshot(page, "key-sharing-1440")
    page.get_by_role("button", name="Stop sharing with Ops…").click()
    expect(page.locator("h1")).to_have_text("Stop sharing “Production” with Ops?")
    expect(page.locator("#unshare-confirm")).to_contain_text(
        "“Production” (…tion) is shared with the group Ops as viewer"
    )
    assert KeyShare.objects.filter(api_key=production).count() == 1  # asking changed nothing
    assert _page_overflow(page) <= 0
    screenshot(page, "unshare-confirm-1440")

    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{portal.url}/keys/{production.pk}/sharing/")
    assert KeyShare.objects.filter(api_key=production).count() == 1

    page.get_by_role("button", name="Stop sharing with Ops…").click()
    page.get_by_role("button", name="Stop sharing with Ops").click()
    expect(page.locator(".flash")).to_contain_text("“Production” is no longer shared with Ops.")
    assert not KeyShare.objects.filter(api_key=production).exists()
    screenshot(page, "unshare-done-1440")
    assert page.console_errors == []


def test_the_delete_page_of_a_vm_that_is_gone(page, portal):
    production = ApiKey.objects.get(owner__username="alice", label="Production")
    sign_in(page, portal)
    gone = "0x00000000000000000000000000000000000000ff"
    response = page.goto(f"{portal.url}/vms/{production.pk}/{gone}/delete/")
    assert response.status == 404
    expect(page.locator("#vm-not-listed h2")).to_have_text("This VM is no longer listed")
    screenshot(page, "vm-gone-1440")
    page.get_by_role("button", name="Its deletion history").click()
    expect(page).to_have_url(f"{portal.url}/audit/?vm={gone}")

    # Through htmx (a row's Delete link opens the dialog this way): the message opens in the dialog.
    page.goto(f"{portal.url}/")
    page.evaluate(
        "(url) => htmx.ajax('GET', url, {target: '#modal-content'})",
        f"/vms/{production.pk}/{gone}/delete/",
    )
    expect(page.locator("dialog#modal #vm-not-listed h2")).to_have_text("This VM is no longer listed")
    screenshot(page, "vm-gone-dialog-1440")
    page.locator("dialog#modal").get_by_role("button", name="Back to the VM list").click()
    expect(page.locator("dialog#modal")).not_to_be_visible()
