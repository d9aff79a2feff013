"""A person signs in through a real OpenID provider (oidc-provider on Node.js) and lands on the VM list."""

import pytest
from django.contrib.auth.models import User

from tests.e2e.conftest import screenshot
from tests.oidc.local_provider import ACCOUNT, local_provider


@pytest.fixture
def oidc_portal(portal, settings):
    """The live portal, configured to sign in through a local provider that knows its callback URL."""
    with local_provider(redirect_uris=[f"{portal.url}/oidc/callback/"]) as provider:
        provider.configure(settings)
        yield portal


def test_sign_in_through_the_local_provider_lands_on_the_vm_list(page, oidc_portal):
    page.goto(f"{oidc_portal.url}/")
    page.wait_for_url(f"{oidc_portal.url}/accounts/login/?next=/")
    page.get_by_role("button", name="Sign in with Local IdP").click()

    # The provider's development login page: its login is the account's sub, any password.
    page.fill("input[name=login]", ACCOUNT["sub"])
    page.fill("input[name=password]", "any-password")
    screenshot(page, "sso-oidc-provider-login")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").wait_for()  # the provider's consent page
    page.console_errors.clear()  # the provider's pages ask for a favicon and web fonts it cannot have
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(f"{oidc_portal.url}/")
    screenshot(page, "sso-oidc-signed-in")
    user = User.objects.get(sso_identities__subject=ACCOUNT["sub"])
    assert user.email == ACCOUNT["email"]
    assert list(user.groups.values_list("name", flat=True)) == ["Operators"]
    assert not (user.is_staff or user.is_superuser)
    assert page.get_by_text(user.username).first.is_visible()
    assert not page.console_errors
