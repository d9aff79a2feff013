"""The costs page (/costs/) per permission level: anonymous, owner, a colleague the key is shared with, a
stranger; and that it reads the VM list's cached data without asking Fluence anything more."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from vms import services
from vms.models import KeyShare

pytestmark = pytest.mark.django_db

SHARED = "sbx_costs_team_prod"  # anna's, shared with the group "viewers"
PRIVATE = "sbx_costs_anna_only"  # anna's alone
STRANGER = "sbx_costs_mallory_mine"  # mallory's
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


@pytest.fixture
def world(sandbox, django_user_model):
    state = sandbox.state
    for key in (SHARED, PRIVATE, STRANGER):
        state.configure_account(key, vm_count=0)
    # Prices in micro-USDC per epoch: 0.125 rounds half-even to 0.12; the total is 1,234.692891 USDC a day.
    state.add_vm(SHARED, name="team-small", status="ACTIVE", pricePerEpoch=125000, reservedBalance="250000")
    state.add_vm(
        SHARED, name="team-large", status="ACTIVE", pricePerEpoch=1234567891, reservedBalance="2469135782"
    )
    state.add_vm(SHARED, name="team-ended", status="Terminated", pricePerEpoch=999000000)
    state.add_vm(PRIVATE, name="anna-private", status="ACTIVE", pricePerEpoch=1000000, reservedBalance="0")
    state.add_vm(STRANGER, name="mallory-vm", status="ACTIVE", pricePerEpoch=7000000, reservedBalance="0")

    def person(username, *groups):
        user = django_user_model.objects.create_user(username=username, password=f"{username}-password-1")
        user.groups.add(*groups)
        return user

    viewers = Group.objects.create(name="viewers")
    anna, vic, mallory = person("ops-anna"), person("vic", viewers), person("mallory")
    shared = services.apikey_create(owner=anna, label="Team", secret=SHARED, base_url=sandbox.url)
    services.apikey_create(owner=anna, label="Private", secret=PRIVATE, base_url=sandbox.url)
    services.apikey_create(owner=mallory, label="Mine", secret=STRANGER, base_url=sandbox.url)
    KeyShare.objects.create(api_key=shared, group=viewers, role="viewer")
    state.reset_counts()
    return {"anna": anna, "vic": vic, "mallory": mallory, "sandbox": sandbox}


def page_of(world, username, **headers):
    client = Client()
    client.force_login(world[username])
    response = client.get(reverse("vms:costs"), **headers)
    assert response.status_code == 200
    return response, response.content.decode()


def accounts_on(body: str) -> list[str]:
    return re.findall(r'<h3 id="cost-account-\d+">([^<]+?) <small', body)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_anonymous_is_sent_to_sign_in_and_nothing_is_asked_of_fluence(world, htmx):
    response = Client().get(reverse("vms:costs"), **(HX if htmx else {}))
    if htmx:
        assert response.status_code == 200 and response["HX-Redirect"].startswith(reverse("login"))
    else:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert world["sandbox"].state.request_count() == 0


def test_the_owner_sees_each_of_their_accounts_and_nobody_elses(world):
    response, body = page_of(world, "anna")
    assert accounts_on(body) == ["Private", "Team"]
    assert "mallory-vm" not in body and "Mine" not in body
    assert "shared by" not in body  # both keys are her own
    assert response["Vary"] and "HX-Request" in response["Vary"]
    assert 'aria-current="page">Costs</a>' in body


def test_a_colleague_sees_the_shared_key_and_not_the_owners_private_one(world):
    _, body = page_of(world, "vic")
    assert accounts_on(body) == ["Team"]
    assert "shared by ops-anna" in body
    assert "team-large" in body and "anna-private" not in body and "mallory-vm" not in body


def test_a_stranger_sees_only_their_own_key(world):
    _, body = page_of(world, "mallory")
    assert accounts_on(body) == ["Mine"]
    assert "team-large" not in body and "anna-private" not in body and "Team" not in body


def test_money_has_two_decimals_and_the_exact_amount_on_hover(world):
    _, body = page_of(world, "vic")
    total = re.search(r'<div class="cost-figure cost-total" data-currency="USDC">.*?</div>', body, re.S)[0]
    assert '<strong class="cost-per-day" title="1234.692891 USDC per day">1,234.69 USDC</strong>' in total
    # The ended VM costs nothing: 999 USDC a day would show here otherwise.
    assert "team-ended" not in body.split('id="costs-accounts-heading"')[0]
    assert '<span title="0.125 USDC per day">0.12 USDC</span>' in body  # half-even, exact on hover
    # Reserved for two days of each billed VM: the runway says so, as text and as a bar.
    assert '<strong class="funds-runway">2 days</strong>' in body
    assert re.search(r'<svg class="bar bar-runway runway-low"[^>]*aria-label="Team: runway 2 days', body)
    # Each of the top VMs links to its own page.
    team_large = world["sandbox"].state.vms_for(SHARED)[1]
    assert team_large["vmName"] == "team-large"
    detail = reverse("vms:detail", args=[_key_id(body, "Team"), team_large["id"]])
    assert f'<a href="{detail}">team-large</a>' in body


def _key_id(body: str, label: str) -> str:
    return re.search(rf'<h3 id="cost-account-(\d+)">{label} <small', body)[1]


def test_the_page_reads_the_lists_cached_data_without_asking_fluence_again(world):
    client = Client()
    client.force_login(world["anna"])
    client.get(reverse("vms:list"))
    world["sandbox"].state.reset_counts()
    response = client.get(reverse("vms:costs"))
    assert response.status_code == 200 and "team-large" in response.content.decode()
    assert world["sandbox"].state.request_count() == 0


def test_a_failing_account_is_shown_on_its_own_and_the_others_still_are(world):
    state = world["sandbox"].state
    state.set_faults(key=PRIVATE, error_rate=1.0, error_status=503)
    _, body = page_of(world, "anna")
    assert "Could not load:" in body and "503" in body and "No earlier data to show." in body
    assert "These totals leave out 1 account that could not be loaded: <strong>Private</strong>." in body
    assert "team-large" in body
