"""One account, counted once, in Chromium: a key you already hold is refused on the add form, and a
colleague's copy of your account is listed once, with a note."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in
from vms import services
from vms.models import ApiKey, KeyShare

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTION = "sbx_demo_alice_production"  # alice's demo key "Production"
EXAMPLE_ID = "0x0000000000000000000000000000000000000001"  # one of its VMs


def test_adding_a_key_you_already_have_is_refused_on_the_form(page, portal, sandbox):
    sign_in(page, portal)
    page.goto(f"{portal.url}/keys/add/")
    page.fill("input[name=label]", "Prod again")
    page.fill("input[name=secret]", PRODUCTION)
    page.select_option("select[name=base_url]", sandbox.url)
    sandbox.state.reset_counts()
    page.get_by_role("button", name="Check and save").click()

    error = page.locator("#id_secret-error")
    expect(error).to_have_text("This key is already stored as “Production”.")
    assert page.locator("input[name=secret]").input_value() == ""  # the key is never sent back
    assert page.locator("input[name=label]").input_value() == "Prod again"
    screenshot(page, "duplicate-key-refused")
    assert sandbox.state.request_count() == 0  # nothing was asked of Fluence
    alices = ApiKey.objects.filter(owner__username="alice")
    assert sorted(alices.values_list("label", flat=True)) == ["Cloud", "Production", "Staging"]
    # The form comes back with 400 (and the browser then asks for a favicon): no script or policy error.
    assert [text for text in page.console_errors if "Failed to load resource" not in text] == []


def test_a_colleagues_copy_of_your_account_is_listed_once(page, portal, sandbox):
    users = get_user_model().objects
    alice, bob = users.get(username="alice"), users.get(username="bob")
    team = Group.objects.create(name="team")
    alice.groups.add(team)
    copy = services.apikey_create(
        owner=bob, label="Team prod", secret=PRODUCTION, base_url=sandbox.url, verify=False
    )
    KeyShare.objects.create(api_key=copy, group=team, role="viewer")

    sign_in(page, portal)
    note = page.locator(".account-note", has_text="Also stored as")
    expect(note).to_have_text(
        "Production (…tion): Also stored as “Team prod” by bob; its VMs are listed once."
    )
    page.goto(f"{portal.url}/?q=vm-name")
    expect(page.locator(f'#vm-table tr[data-vm-id="{EXAMPLE_ID}"]')).to_have_count(1)
    screenshot(page, "duplicate-key-listed-once")

    page.goto(f"{portal.url}/keys/")
    expect(page.locator('#own-keys tr:has-text("Production") .same-account')).to_have_text(
        "Same Fluence account as “Team prod” (bob)"
    )
    expect(page.locator(f'#shared-keys tr[data-key-id="{copy.pk}"] .same-account')).to_have_text(
        "Same Fluence account as “Production” (yours)"
    )
    screenshot(page, "duplicate-key-keys-page")
    assert page.console_errors == []
