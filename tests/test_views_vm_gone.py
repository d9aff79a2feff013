"""The delete URL of a VM that is no longer listed: a friendly 404 with the way back and to its history."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

GONE = "0x00000000000000000000000000000000000000ff"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


def gone_url(api_key) -> str:
    return reverse("vms:delete", args=[api_key.pk, GONE])


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_vm_gone_from_a_visible_key_gets_a_friendly_404(alice_client, api_key, sandbox, method):
    response = getattr(alice_client, method)(gone_url(api_key), {"confirm": "x"} if method == "post" else {})
    assert response.status_code == 404
    body = response.content.decode()
    assert "<html" in body and "This VM is no longer listed" in body
    assert f"VM <code>{GONE}</code> is not listed under the key “Ops” <small>(…" in body
    assert "may have been deleted already" in body
    assert f'href="/audit/?vm={GONE}"' in body and 'href="/"' in body
    assert sandbox.state.request_count(method="DELETE") == 0


def test_under_htmx_it_is_the_dialogs_content(alice_client, api_key):
    response = alice_client.get(gone_url(api_key), **HX)
    assert response.status_code == 200  # htmx swaps no 404 (the page's htmx-config)
    assert response["HX-Retarget"] == "#modal-content" and response["HX-Reswap"] == "innerHTML"
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<div class="delete-dialog vm-not-listed"')
    assert "data-close-modal" in body and "HX-Request" in response["Vary"]


def test_a_key_you_cannot_see_is_a_404_that_names_nothing(client, other_user, api_key):
    client.force_login(other_user)
    for headers in ({}, HX):
        response = client.get(gone_url(api_key), **headers)
        assert response.status_code == 404
        body = response.content.decode()
        assert "not listed under this API key" in body and "Ops" not in body
    missing = client.get(reverse("vms:delete", args=[10**6, GONE]))
    assert missing.status_code == 404 and "not listed under this API key" in missing.content.decode()


def test_an_account_that_did_not_answer_says_so(alice_client, api_key, sandbox):
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    response = alice_client.get(gone_url(api_key))
    assert response.status_code == 404
    body = response.content.decode()
    assert "could not read the VMs of “Ops”" in body and "may still exist" in body


def test_under_htmx_an_account_that_did_not_answer_stays_a_404(alice_client, api_key, sandbox):
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    assert alice_client.get(gone_url(api_key), **HX).status_code == 404
