"""VM actions in Chromium: rename and restart a demo VM from its page, see each outcome in place and the VM
in transition, then find both and the demo's key share on the audit page."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)

CLOUD = "sbx_b_demo_alice_cloud"  # the demo's account on today's API


@pytest.fixture
def restarting_stays(sandbox):
    sandbox.state.restart_delay = 600  # the VM stays restarting for the whole test
    yield
    sandbox.state.restart_delay = 3.0


SECTION_AT_REST = """() => {
  const section = document.querySelector('#vm-status');
  return section && !section.matches('.htmx-request, .htmx-swapping, .htmx-settling');
}"""


def _page_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_rename_and_restart_a_demo_vm_then_find_both_and_a_share_in_the_audit(
    page, portal, sandbox, restarting_stays
):
    vm = next(vm for vm in sandbox.state.vms_for(CLOUD) if "restart" in vm["allowedActions"])
    api_key = ApiKey.objects.get(owner__username="alice", label__icontains="cloud")
    sign_in(page, portal)
    page.goto(f"{portal.url}/vms/{api_key.pk}/{vm['id']}/")

    expect(page.locator("#rename-name")).to_have_value(vm["name"])  # the form starts from the name
    screenshot(page, "vm-actions-desktop")
    page.fill("#rename-name", "renamed-in-e2e")
    # The rename refreshes the VM's status (vms-changed): wait for that swap before clicking inside it.
    with page.expect_response(lambda response: response.url.endswith("/status/")):
        page.click("#rename-button")
    page.wait_for_function(SECTION_AT_REST)
    outcome = page.locator("#vm-action-outcome .action-outcome")
    expect(outcome).to_have_attribute("data-outcome", "succeeded")
    expect(outcome).to_contain_text("Fluence renamed the VM.")
    assert next(v for v in sandbox.state.vms_for(CLOUD) if v["id"] == vm["id"])["name"] == "renamed-in-e2e"

    page.click("#restart-button")
    expect(outcome).to_contain_text("Fluence accepted the restart")
    # The status refreshes (vms-changed): Fluence shows the VM restarting, and allows nothing meanwhile.
    expect(page.locator("#vm-status-badge")).to_have_text("Restarting")
    expect(page.locator("#restart-button")).to_have_count(0)
    screenshot(page, "vm-actions-restarting-desktop")

    page.goto(f"{portal.url}/audit/")
    lines = page.locator("#audit-table tr.audit-row")
    rename = lines.filter(has=page.locator("td.audit-action", has_text="VM renamed"))
    expect(rename).to_have_count(1)
    expect(rename).to_contain_text(f"name: {vm['name']} → renamed-in-e2e")
    expect(rename.locator(".audit-outcome")).to_contain_text("Succeeded")
    restart = lines.filter(has=page.locator("td.audit-action", has_text="VM restarted"))
    expect(restart).to_have_count(1)
    expect(restart.locator(".audit-outcome")).to_contain_text("Succeeded")
    share = lines.filter(has=page.locator("td.audit-action", has_text="Key shared"))
    expect(share).to_have_count(1)
    expect(share).to_contain_text("group: Ops")
    assert _page_overflow(page) <= 0
    screenshot(page, "audit-actions-desktop")

    page.select_option("select[name=action]", "vm_restart")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text("VM restarted")
    assert "action=vm_restart" in page.url
    assert page.console_errors == []


def test_the_actions_fit_a_phone(browser, portal, sandbox):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        vm = next(vm for vm in sandbox.state.vms_for(CLOUD) if "restart" in vm["allowedActions"])
        api_key = ApiKey.objects.get(owner__username="alice", label__icontains="cloud")
        sign_in(page, portal)
        page.goto(f"{portal.url}/vms/{api_key.pk}/{vm['id']}/")
        expect(page.locator("#rename-button")).to_be_visible()
        expect(page.locator("#restart-button")).to_be_visible()
        assert _page_overflow(page) <= 0
        screenshot(page, "vm-actions-phone")
        page.goto(f"{portal.url}/audit/")
        screenshot(page, "audit-actions-phone")
    finally:
        context.close()
