"""Deleting in Chromium: one VM from its detail page, three from the list, each ending in the audit trail."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms import services

pytestmark = pytest.mark.django_db(transaction=True)

STAGING = "sbx_demo_alice_staging"


@pytest.fixture
def fast(settings, sandbox):
    settings.VM_POLL_FAST_SECONDS = 1
    settings.FLUENCE_CACHE_SECONDS = 0
    sandbox.state.deletion_delay = 1.5
    yield
    sandbox.state.deletion_delay = 3.0


def test_delete_one_vm_from_its_detail_page(page, portal, sandbox, fast):
    vm = next(vm for vm in sandbox.state.vms_for(STAGING) if vm["status"] == "ACTIVE")
    sign_in(page, portal)
    page.click(f'#vm-table tr[data-vm-id="{vm["id"]}"] td:nth-child(2) a')
    page.click("#delete-vm-button")
    dialog = page.locator("dialog#modal")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(vm["id"])
    expect(dialog).to_contain_text("not refunded")
    screenshot(page, "delete-dialog")
    dialog.locator("button[type=submit]").click()  # nothing typed: the browser's own check stops it
    assert sandbox.state.request_count(method="DELETE") == 0
    dialog.locator("#confirm-input").fill("not the name")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_contain_text("Nothing was deleted")
    assert sandbox.state.request_count(method="DELETE") == 0
    dialog.locator("#confirm-input").fill(vm["vmName"])
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".outcome-succeeded")).to_contain_text(vm["vmName"])
    assert sandbox.state.request_count(method="DELETE", path="/vms/v3") == 1
    dialog.locator("[data-close-modal]").click()
    page.goto(f"{portal.url}/")
    row = page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"]')
    expect(row).to_have_count(0, timeout=10_000)  # gone once the provider has finished, without a reload
    page.click("nav >> text=Audit")
    audit = page.locator("main")
    expect(audit).to_contain_text(vm["vmName"])
    expect(audit).to_contain_text("Succeeded")
    screenshot(page, "audit-after-delete")


def test_bulk_delete_three_vms_from_the_list(page, portal, sandbox, fast):
    sandbox.state.configure_account("sbx_bulk_delete_e2e", vm_count=12)
    alice = get_user_model().objects.get(username="alice")
    services.apikey_create(owner=alice, label="Bulk", secret="sbx_bulk_delete_e2e", base_url=sandbox.url)
    vms = [vm for vm in sandbox.state.vms_for("sbx_bulk_delete_e2e") if vm["status"] == "ACTIVE"][:3]
    assert len(vms) == 3
    sign_in(page, portal)
    for vm in vms:
        page.check(f'#vm-table tr[data-vm-id="{vm["id"]}"] input[name=vm]')
    page.click("#bulk-delete-button")
    dialog = page.locator("dialog#modal")
    expect(dialog).to_contain_text("Delete 3 VMs?")
    for vm in vms:
        expect(dialog).to_contain_text(vm["vmName"])
    dialog.locator("#confirm-input").fill("3")
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".outcome-succeeded")).to_have_count(3)
    assert sandbox.state.request_count(method="DELETE", path="/vms/v3") == 3
    dialog.locator("[data-close-modal]").click()
    for vm in vms:
        expect(page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"]')).to_have_count(0, timeout=10_000)
