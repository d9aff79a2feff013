"""Deleting in Chromium, items 6 and 7 of the ops day: an unknown outcome in the row and on the VM's page,
settled in place by *Check now*; a bulk deletion that fits its dialog, totals what is lost, is only offered
with rows ticked, and reports its progress while Fluence is slow."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS, screenshot, sign_in
from vms import services

pytestmark = pytest.mark.django_db(transaction=True)

STAGING = "sbx_demo_alice_staging"
BULK = "sbx_bulk_progress_e2e"


@pytest.fixture
def fast(settings, sandbox):
    settings.VM_POLL_FAST_SECONDS = 1
    settings.FLUENCE_CACHE_SECONDS = 0
    sandbox.state.deletion_delay = 1.5


def _bulk_key(sandbox, vm_count=10):
    sandbox.state.configure_account(BULK, vm_count=vm_count)
    alice = get_user_model().objects.get(username="alice")
    services.apikey_create(owner=alice, label="Bulk", secret=BULK, base_url=sandbox.url)
    return [vm for vm in sandbox.state.vms_for(BULK) if vm["status"] == "ACTIVE"]


def test_an_unknown_outcome_shows_in_the_row_and_on_the_page_and_check_now_settles_it(
    page, portal, sandbox, fast, settings
):
    # The row's "still listed" answer lasts until the table's next refresh: not every second here.
    settings.VM_POLL_FAST_SECONDS = 5
    # A VM of its own: the other browser tests delete the demo's (and the sandbox lives for the session).
    vm = sandbox.state.add_vm(STAGING, name="unknown-outcome-e2e", status="ACTIVE")
    sign_in(page, portal)
    page.goto(f"{portal.url}/")
    page.click(f'#vm-table tr[data-vm-id="{vm["id"]}"] td:nth-child(2) a')
    page.click("#delete-vm-button")
    dialog = page.locator("dialog#modal")
    dialog.locator("#confirm-input").fill(vm["vmName"])
    sandbox.state.set_faults(key=STAGING, drop=True)  # Fluence closes the connection: no answer at all
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator(".outcome-unknown")).to_contain_text("Outcome unknown")
    sandbox.state.clear_faults()
    dialog.locator("[data-close-modal]").click()

    # The VM page says so, with Check now.
    section = page.locator("#deletion-unknown")
    page.reload()
    expect(section).to_contain_text("has an unknown outcome")
    expect(section.locator("button", has_text="Check now")).to_be_visible()
    screenshot(page, "unknown-outcome-detail")

    # The list row says so too; Fluence still lists the VM a moment later: "still listed", in place.
    page.goto(f"{portal.url}/")
    row = page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"]')
    expect(row.locator(".deletion-unknown")).to_contain_text("Outcome unknown")
    screenshot(page, "unknown-outcome-row")
    row.locator("button", has_text="Check now").click()
    expect(row.locator(".deletion-unknown")).to_contain_text("Still listed")

    # The delete dialog names the earlier attempt before anything is sent again.
    row.locator('a[href$="/delete/"]').click()
    expect(dialog).to_contain_text("An earlier deletion of this VM on")
    expect(dialog).to_contain_text("check it before deleting again")
    screenshot(page, "unknown-outcome-dialog")
    dialog.locator("[data-close-modal]").first.click()

    # The dropped DELETE did reach Fluence after all: the VM goes; Check now on its page settles it.
    page.goto(f"{portal.url}/")
    page.click(f'#vm-table tr[data-vm-id="{vm["id"]}"] td:nth-child(2) a')
    sandbox.state.delete_vms(STAGING, [vm["id"]])
    page.wait_for_timeout(2000)  # the sandbox's deletion delay (1.5 s)
    section.locator("button", has_text="Check now").click()
    expect(section).to_contain_text("Fluence no longer lists this VM")
    expect(section).to_contain_text("went through")
    screenshot(page, "unknown-outcome-checked")
    page.goto(f"{portal.url}/")
    expect(page.locator(f'#vm-table tr[data-vm-id="{vm["id"]}"]')).to_have_count(0)
    expect(page.locator(".deletion-unknown")).to_have_count(0)
    page.goto(f"{portal.url}/audit/?vm={vm['id']}")
    expect(page.locator("main")).to_contain_text("checked by alice")


def test_delete_selected_is_disabled_until_rows_are_ticked(page, portal, sandbox, fast):
    vms = _bulk_key(sandbox)[:2]
    sign_in(page, portal)
    button = page.locator("#bulk-delete-button")
    expect(button).to_be_disabled()
    page.check(f'#vm-table tr[data-vm-id="{vms[0]["id"]}"] input[name=vm]')
    expect(button).to_be_enabled()
    page.uncheck(f'#vm-table tr[data-vm-id="{vms[0]["id"]}"] input[name=vm]')
    expect(button).to_be_disabled()
    page.check("#select-all")
    expect(button).to_be_enabled()
    page.wait_for_timeout(1500)  # a refresh of the table keeps the ticks, and the button with them
    expect(button).to_be_enabled()
    page.check("#select-all")  # the refreshed heading's box starts unticked: tick it, then untick all
    page.uncheck("#select-all")
    expect(button).to_be_disabled()


def test_a_tick_made_while_a_refresh_lands_is_kept(page, portal, sandbox, fast):
    """A person ticks a row between a refresh's answer and its swap: the new table has it ticked."""
    vms = _bulk_key(sandbox)[:2]
    sign_in(page, portal)
    box = f'#vm-table tr[data-vm-id="{vms[1]["id"]}"] input[name=vm]'
    expect(page.locator(box)).not_to_be_checked()
    # The tick lands at the worst moment: the answer is in, the old table is about to be replaced.
    page.evaluate(
        """(selector) => {
        window.tickedInTheWindow = false;
        document.addEventListener("htmx:beforeSwap", (event) => {
          if (window.tickedInTheWindow || event.detail.target.id !== "vm-table") return;
          window.tickedInTheWindow = true;
          document.querySelector(selector).click();
        });
    }""",
        box,
    )
    page.evaluate("document.querySelector('#vm-table').dataset.before = 'yes'")
    page.evaluate("document.body.dispatchEvent(new Event('vms-changed'))")
    expect(page.locator("#vm-table:not([data-before])")).to_be_attached()  # the table was replaced
    assert page.evaluate("window.tickedInTheWindow")  # with the tick made while its answer landed
    expect(page.locator(box)).to_be_checked()
    expect(page.locator("#bulk-delete-button")).to_be_enabled()


def test_a_slow_bulk_delete_shows_its_progress_then_the_outcomes(page, portal, sandbox, fast):
    vms = _bulk_key(sandbox)[:5]
    sign_in(page, portal)
    for vm in vms:
        page.check(f'#vm-table tr[data-vm-id="{vm["id"]}"] input[name=vm]')
    page.click("#bulk-delete-button")
    dialog = page.locator("dialog#modal")
    expect(dialog).to_contain_text("Delete 5 VMs?")
    expect(dialog.locator("#loss-totals")).to_contain_text("USDC")
    dialog.locator("#confirm-input").fill("5")
    sandbox.state.set_faults(key=BULK, latency_ms=1000)  # Fluence at a slow day's pace: 1 s per request
    dialog.locator("button[type=submit]").click()
    job = dialog.locator("#bulk-job")
    expect(job).to_have_attribute("data-state", "running")
    expect(job).to_contain_text("Deleting 5 VMs…")
    # Part way: some answered, not all, and still running, read in one look at the page (the job is polled
    # every second while Fluence answers one deletion a second, so no exact count is sure to be seen).
    page.wait_for_function(
        """() => {
        const job = document.querySelector('#modal #bulk-job');
        const answered = job ? job.querySelectorAll('.outcome-succeeded').length : 0;
        return !!job && job.dataset.state === 'running' && answered > 0 && answered < 5;
    }""",
        timeout=8000,
    )
    screenshot(page, "bulk-progress")
    expect(job).to_have_attribute("data-state", "done", timeout=15_000)
    expect(job).to_contain_text("Deletion results")
    expect(job.locator(".outcome-succeeded")).to_have_count(5)
    expect(job).to_contain_text("5 of 5")
    screenshot(page, "bulk-done")
    sandbox.state.clear_faults()
    assert sandbox.state.request_count(method="DELETE", path="/vms/v3") == 5


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_the_bulk_dialog_fits_its_table(page, portal, sandbox, fast, width, height):
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, portal)
    # A VM of each API generation: epochs in USDC and per-second billing in USD, side by side.
    rows = page.locator("#vm-table tbody tr:has(input[name=vm])")
    expect(rows.first).to_be_visible()
    per_account: dict[str, int] = {}
    for index in range(rows.count()):
        row = rows.nth(index)
        account = row.locator("td").nth(3).inner_text()
        if per_account.get(account, 0) < 2:  # two of each account
            row.locator("input[name=vm]").check()
            per_account[account] = per_account.get(account, 0) + 1
    assert len(per_account) >= 3
    page.click("#bulk-delete-button")
    dialog = page.locator("dialog#modal")
    table = dialog.locator("table.bulk-list")
    expect(table).to_be_visible()
    expect(dialog.locator("#loss-totals")).to_contain_text("USD")
    fits = page.evaluate(
        """() => {
        const wrap = document.querySelector('#modal .bulk-table-wrap');
        const box = wrap.getBoundingClientRect();
        const cells = [...document.querySelectorAll('#modal .bulk-list td')];
        return {
          wrapScroll: wrap.scrollWidth - wrap.clientWidth,
          pageScroll: document.documentElement.scrollWidth - window.innerWidth,
          cellsOutside: cells.filter((cell) => {
            const r = cell.getBoundingClientRect();
            return r.right > box.right + 1 || r.left < box.left - 1;
          }).length,
        };
    }"""
    )
    assert fits == {"wrapScroll": 0, "pageScroll": 0, "cellsOutside": 0}
    screenshot(page, f"bulk-dialog-{width}")
    dialog.locator("#loss-totals").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"bulk-dialog-{width}-totals.png"))
