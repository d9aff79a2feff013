"""In Chromium: every page runs under the strict CSP without a single violation, and hostile upstream
text (VM names, details, certifications, error messages, `javascript:` image URLs) stays inert text."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from tests.hostile_upstream import IMG, JS_URL, NAMED_VM_ID, SCRIPT, SVG, HostileApi, add_hostile_vms
from vms import services

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE_KEY = "sbx_hostile_browser_01"

# Runs before any page script, outside the CSP (injected through the DevTools protocol).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.blockedURI || "inline"} on ${location.pathname}`;
  window.__reportViolation(`${event.violatedDirective} blocked ${where}`);
});
"""


@pytest.fixture
def violations(page):
    """Every CSP violation of every document the page loads: the DOM events and the console's reports."""
    reported: list[str] = []
    page.context.expose_function("__reportViolation", lambda text: reported.append(text))
    page.context.add_init_script(REPORT_VIOLATIONS)

    def collected() -> list[str]:
        page.wait_for_timeout(200)  # let late events arrive
        console = [text for text in page.console_errors if "Content Security Policy" in text]
        return reported + console

    return collected


def _settle(page) -> None:
    page.wait_for_load_state("networkidle")


def test_every_page_runs_without_a_single_csp_violation(page, portal, violations):
    sign_in(page, portal)
    _settle(page)

    # The list: a search typed (an htmx swap), a sort clicked (another swap, pushing the URL).
    page.locator("#vm-search").press_sequentially("web", delay=30)
    page.wait_for_url(re.compile(r"q=web"))
    _settle(page)
    page.locator("#vm-table th.col-price a").click()
    page.wait_for_url(re.compile(r"sort=price"))
    _settle(page)
    page.locator("#vm-search").fill("")
    page.wait_for_url(re.compile(r"^(?!.*q=web)"))
    _settle(page)

    # A detail page, and its delete dialog opened (never confirmed).
    page.locator("#vm-table tbody tr[data-vm-id^='0x'] td:nth-child(2) > a").first.click()
    page.wait_for_url(re.compile(r"/vms/\d+/0x"))
    _settle(page)
    page.locator("#delete-vm-button").click()
    expect(page.locator("#modal")).to_have_attribute("open", "")
    _settle(page)
    screenshot(page, "security-delete-dialog")
    page.keyboard.press("Escape")

    for path in ("/keys/", "/keys/add/", "/audit/"):
        page.goto(f"{portal.url}{path}")
        _settle(page)

    assert violations() == []
    assert page.evaluate("typeof window.htmx") == "object"  # the scripts did run: the test is not vacuous


def test_hostile_upstream_text_renders_as_inert_text(page, portal, sandbox, settings, violations):
    alice = get_user_model().objects.get(username="alice")
    sandbox.state.configure_account(HOSTILE_KEY, vm_count=0)
    add_hostile_vms(sandbox.state, HOSTILE_KEY)
    hostile_key = services.apikey_create(
        owner=alice, label="Hostile", secret=HOSTILE_KEY, base_url=sandbox.url, verify=False
    )
    with HostileApi() as api:
        settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, api.url]
        services.apikey_create(
            owner=alice, label="Refusing", secret="sbx_refused_by_hostile", base_url=api.url, verify=False
        )
        sign_in(page, portal)
        _settle(page)

        # The list: the name is shown literally, the upstream error message too.
        page.locator("#vm-search").press_sequentially("evil", delay=30)
        page.wait_for_url(re.compile(r"q=evil"))
        expect(page.locator("#vm-table tbody td:nth-child(2) > a")).to_have_text(f"evil {SCRIPT}{IMG}")
        problem = page.locator(".account-problem", has_text="Refusing")
        expect(problem).to_contain_text(HostileApi.message)
        screenshot(page, "security-hostile-list")
        assert page.evaluate("window.__pwned") is None

        page.goto(f"{portal.url}/vms/{hostile_key.pk}/{NAMED_VM_ID}/")
        _settle(page)

    expect(page.locator("h1")).to_have_text(f"evil {SCRIPT}{IMG}")
    chips = page.locator(".chip").all_inner_texts()
    assert chips == [SCRIPT, IMG, SVG]
    resources = page.locator("table.resources").inner_text()
    assert SCRIPT in resources and IMG in resources and SVG in resources
    # The javascript: image address is text, never a link.
    assert page.locator("a[href^='javascript:' i]").count() == 0
    expect(page.get_by_text(JS_URL, exact=True)).to_be_visible()
    screenshot(page, "security-hostile-detail")

    assert page.evaluate("window.__pwned") is None
    assert page.locator("main script, main img, main svg").count() == 0
    assert violations() == []  # nothing even tried to run inline


def test_the_violation_detector_does_see_violations(page, portal, violations):
    page.goto(f"{portal.url}/accounts/login/")
    page.evaluate("document.body.setAttribute('style', 'color: red')")  # an inline style: refused

    assert any("style-src" in violation for violation in violations())
