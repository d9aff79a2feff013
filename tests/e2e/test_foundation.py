"""A demo user of `make run` signs in and sees the example VM of the Fluence docs, formatted."""

import pytest

from tests.e2e.conftest import screenshot, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_user_sees_the_example_vm(page, portal):
    sign_in(page, portal)
    row = page.locator("tr", has_text="vm-name")
    row.wait_for()
    text = row.inner_text()
    assert "0.298160" in text
    assert "2" in text and "4 GiB" in text and "25 GiB" in text
    assert "Paris" in text and "France" in text
    screenshot(page, "foundation-list")
