"""The VM table's column chooser (POST /vms/columns/), per permission level: a plain form that works without
JavaScript, a 204 that refreshes the table under htmx, and a choice kept in the database per person, so it
survives signing out and is nobody else's."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from vms.models import UserPreferences

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
COLUMNS_URL = "/vms/columns/"


def _headings(body: str) -> list[str]:
    thead = body[body.index("<thead") : body.index("</thead>")]
    return re.findall(r'<th scope="col" class="col-(\w+)"', thead)


def test_the_url_is_the_one_the_form_posts_to():
    assert reverse("vms:vm_columns") == COLUMNS_URL


# --- anonymous ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_anonymous_is_sent_to_sign_in_and_nothing_is_stored(client, htmx):
    response = client.post(COLUMNS_URL, {"column": ["ip"]}, **(HX if htmx else {}))
    if htmx:
        assert response["HX-Redirect"].startswith(reverse("login"))
    else:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert UserPreferences.objects.count() == 0


# --- a signed-in person -------------------------------------------------------------------------------------


def test_the_list_offers_the_chooser_as_a_plain_form(alice_client, alice_key):
    body = alice_client.get(reverse("vms:list")).content.decode()
    form = body[body.index('<form id="column-form"') :]
    form = form[: form.index("</form>")]
    assert 'method="post"' in form and f'action="{COLUMNS_URL}"' in form and "csrfmiddlewaretoken" in form
    assert 'type="submit"' in form  # saves without JavaScript
    checked = re.findall(r'name="column" value="(\w+)" checked', form)
    offered = re.findall(r'name="column" value="(\w+)"', form)
    assert offered == ["vcpu", "ram", "storage", "next_billing", "ip", "age"]
    assert checked == ["vcpu", "ram", "next_billing"]  # the defaults, until the person chooses
    assert _headings(body) == [
        "name",
        "status",
        "account",
        "location",
        "price",
        "vcpu",
        "ram",
        "next_billing",
    ]
    assert 'class="striped vm-table num-2"' in body  # vCPU and RAM, aligned as numbers


def test_without_javascript_the_choice_is_saved_and_the_list_comes_back_as_it_was(
    alice_client, user, alice_key
):
    response = alice_client.post(COLUMNS_URL, {"column": ["age", "ip"], "next": "/?q=vm&sort=-price"})
    assert response.status_code == 302 and response["Location"] == "/?q=vm&sort=-price"
    assert UserPreferences.objects.get(user=user).vm_columns == "ip,age"  # table order
    body = alice_client.get(response["Location"]).content.decode()
    assert _headings(body) == ["name", "status", "account", "location", "price", "ip", "age"]
    row = body[body.index('data-vm-id="0x0000000000000000000000000000000000000001"') :]
    assert "154.42.3.159" in row[: row.index("</tr>")]


def test_under_htmx_the_answer_is_empty_and_the_table_refreshes_itself(alice_client, user, alice_key):
    response = alice_client.post(COLUMNS_URL, {"column": ["storage"]}, **HX)
    assert response.status_code == 204 and response.content == b""
    assert response["HX-Trigger"] == '{"vms-changed": {}}'  # the table listens for it
    assert "HX-Request" in response["Vary"]
    table = alice_client.get(reverse("vms:list"), **HX).content.decode()
    assert _headings(table) == ["name", "status", "account", "location", "price", "storage"]


def test_choosing_none_leaves_the_fixed_columns_and_unknown_names_are_ignored(alice_client, user, alice_key):
    alice_client.post(COLUMNS_URL, {"column": ["name", "secret", "<b>", "vcpu"]})
    assert UserPreferences.objects.get(user=user).vm_columns == "vcpu"
    alice_client.post(COLUMNS_URL, {})
    assert UserPreferences.objects.get(user=user).vm_columns == ""
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert _headings(body) == ["name", "status", "account", "location", "price"]


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/", "/admin/", "javascript:alert(1)", "", "http://[::1"],
)
def test_the_way_back_stays_on_the_list(alice_client, next_url):
    response = alice_client.post(COLUMNS_URL, {"column": ["ip"], "next": next_url})
    assert response.status_code == 302 and response["Location"] == reverse("vms:list")


def test_only_post_saves(alice_client, user):
    assert alice_client.get(COLUMNS_URL, {"column": ["ip"]}).status_code == 405
    assert not UserPreferences.objects.filter(user=user).exists()


def test_a_post_without_the_csrf_token_is_refused(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(COLUMNS_URL, {"column": ["ip"]}).status_code == 403
    assert not UserPreferences.objects.filter(user=user).exists()


def test_the_choice_survives_signing_out_and_is_nobody_elses(client, user, other_user, alice_key):
    client.force_login(user)
    client.post(COLUMNS_URL, {"column": ["age"]})
    client.post(reverse("logout"))
    assert client.get(reverse("vms:list")).status_code == 302  # signed out indeed
    client.force_login(user)
    assert _headings(client.get(reverse("vms:list")).content.decode())[5:] == ["age"]
    client.force_login(other_user)
    assert UserPreferences.objects.filter(user=other_user).count() == 0
    client.post(COLUMNS_URL, {"column": ["ip"]})
    assert UserPreferences.objects.get(user=user).vm_columns == "age"  # untouched by the other person
