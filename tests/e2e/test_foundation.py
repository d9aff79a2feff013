"""A demo user of `make run` signs in and sees the example VM of the Fluence docs, formatted."""

import pytest

from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_user_sees_the_example_vm(page, portal):
    sign_in(page, portal)
    row = page.locator('#vm-table tr[data-vm-id="0x0000000000000000000000000000000000000001"]')
    cells = row.locator("td").all_inner_texts()
    # select, name, status, account, location, price; the default extras vCPU, RAM, next billing; actions
    assert cells[1] == "vm-name"
    assert cells[4].startswith("Paris, France")
    assert cells[5].split("\n") == ["0.30 USDC", "9.07/mo · epoch"]  # per day, then per month
    assert (cells[6], cells[7]) == ("2 vCPU", "4 GiB")
    assert cells[8] == "out of date"  # its nextBillingAt (April 2025) is long past: flagged, not "597 d ago"
    assert page.locator("#vm-table th.col-price").inner_text() == "Cost / day · month"
    screenshot(page, "foundation-list")
