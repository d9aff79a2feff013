"""The VM list and detail pages, per permission level, as full pages and as htmx partials."""

import re
import time

import pytest
import requests
from django.urls import reverse

from vms import services
from vms.selectors import forget_cached_vms

pytestmark = pytest.mark.django_db

EXAMPLE_ID = "0x0000000000000000000000000000000000000001"
ALICE_KEY = "sbx_demo_alice_production"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


@pytest.fixture
def alice_key(user, sandbox):
    return services.apikey_create(owner=user, label="Production", secret=ALICE_KEY, base_url=sandbox.url)


@pytest.fixture
def mallory_key(other_user, sandbox):
    return services.apikey_create(
        owner=other_user, label="Mine", secret="sbx_mallory_account_01", base_url=sandbox.url
    )


def _detail(key_id, vm_id=EXAMPLE_ID):
    return reverse("vms:detail", args=[key_id, vm_id])


def _status(key_id, vm_id=EXAMPLE_ID):
    return reverse("vms:detail_status", args=[key_id, vm_id])


# --- anonymous --------------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_anonymous_is_sent_to_sign_in_everywhere(client, alice_key, sandbox, htmx):
    headers = HX if htmx else {}
    sandbox.state.reset_counts()  # adding the key probed Fluence's API versions
    for url in (reverse("vms:list"), _detail(alice_key.pk), _status(alice_key.pk)):
        response = client.get(url, **headers)
        if htmx:
            # The whole page goes to sign-in; no login form is swapped into a table.
            assert response.status_code == 200
            assert response["HX-Redirect"].startswith(reverse("login"))
        else:
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login"))
    assert sandbox.state.request_count() == 0  # nothing is asked of Fluence for a stranger


# --- the owner --------------------------------------------------------------------------------------


def test_owner_sees_the_list_with_formatted_values(alice_client, alice_key):
    response = alice_client.get(reverse("vms:list"))
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert "<html" in body
    row = body[body.index(f'data-vm-id="{EXAMPLE_ID}"') :]
    row = row[: row.index("</tr>")]
    for expected in (
        "vm-name",
        "Active",
        "Production",
        "Paris, France",
        "tier 4",
        "2 vCPU",
        "4 GiB",
        "25 GiB",
        "154.42.3.159",
        "0.30 USDC<small>9.07/mo · epoch</small>",  # per day and per month; exact on the detail page
    ):
        assert expected in row, expected


def test_htmx_partial_is_the_table_with_out_of_band_counts(alice_client, alice_key):
    response = alice_client.get(reverse("vms:list"), **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<table id="vm-table"')
    assert 'id="vm-summary" class="vm-summary" hx-swap-oob="true"' in body
    assert 'id="vm-pagination"' in body and 'id="vm-sort"' in body
    assert "vm-name" in body
    assert "HX-Request" in response["Vary"]


def test_owner_sees_every_field_on_the_detail_page(alice_client, alice_key):
    response = alice_client.get(_detail(alice_key.pk))
    assert response.status_code == 200
    body = response.content.decode()
    for expected in (
        EXAMPLE_ID,
        "vm-name",
        "Active",
        "0.298160",
        "0.359440",
        "17.846000",
        "2025-04-01 16:50:57 UTC",
        "2025-04-16 17:59:55 UTC",
        "2025-04-15 17:59:55 UTC",
        "ubuntu-22.04-server-cloudimg-amd64.img",
        "https://cloud-images.ubuntu.com/releases/22.04/release/ubuntu-22.04-server-cloudimg-amd64.img",
        "Paris, France",
        "FR PAR, index 1",
        "4 of 4",
        "PCI DSS",
        "ISO 9001:2015",
        "ISO/IEC 27001:2022",
        "0x0000000000000000000000000000000000000000000000000000000000000005",
        "154.42.3.159",
        "22/tcp",
        "2 vCPU",
        "7702p",
        "EPYC",
        "Zen",
        "AMD",
        "4 GiB",
        "Samsung",
        "DGX",
        "3600",
        "DDR",
        "25 GiB",
        "WD",
        "15000",
        "SSD",
        "1 public IPv4",
    ):
        assert expected in body, expected


def test_detail_status_partial_refreshes_in_place(alice_client, alice_key):
    response = alice_client.get(_status(alice_key.pk), **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="vm-status"')
    assert f'hx-get="{_status(alice_key.pk)}"' in body
    assert "0.298160" in body


def test_a_vm_that_disappears_says_so_and_stops_polling(alice_client, user, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 0
    key = services.apikey_create(
        owner=user, label="Temp", secret="sbx_disappearing_vm_01", base_url=sandbox.url
    )
    vm = sandbox.state.vms_for("sbx_disappearing_vm_01")[0]
    assert alice_client.get(_status(key.pk, vm["id"]), **HX).status_code == 200
    sandbox.state.deletion_delay = 0
    requests.delete(
        f"{sandbox.url}/vms/v3",
        json={"vmId": vm["id"]},
        headers={"X-API-KEY": "sbx_disappearing_vm_01"},
        timeout=5,
    )
    time.sleep(0.05)
    response = alice_client.get(_status(key.pk, vm["id"]), **HX)
    assert response.status_code == 286  # htmx stops polling
    assert "This VM no longer exists" in response.content.decode()
    page = alice_client.get(_detail(key.pk, vm["id"]))
    assert page.status_code == 404
    assert "This VM no longer exists" in page.content.decode()
    sandbox.state.deletion_delay = 3.0


def test_a_well_formed_unknown_id_is_a_404_page(alice_client, alice_key):
    response = alice_client.get(_detail(alice_key.pk, "0x" + "ab" * 20))
    assert response.status_code == 404
    assert "This VM no longer exists" in response.content.decode()


@pytest.mark.parametrize("bad_id", ["0x123", "0x" + "g" * 40, "not-an-id", "0x" + "a" * 41, "%3Cscript%3E"])
def test_a_malformed_id_is_a_404_without_any_upstream_call(alice_client, alice_key, sandbox, bad_id):
    before = sandbox.state.request_count()
    response = alice_client.get(f"/vms/{alice_key.pk}/{bad_id}/")
    assert response.status_code == 404
    assert sandbox.state.request_count() == before


# --- someone else -----------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_someone_else_gets_404_for_detail_and_status_and_never_sees_the_vms(
    client, other_user, alice_key, mallory_key, sandbox, htmx
):
    client.force_login(other_user)
    headers = HX if htmx else {}
    before = sandbox.state.request_count(key=ALICE_KEY)
    assert client.get(_detail(alice_key.pk), **headers).status_code == 404
    assert client.get(_status(alice_key.pk), **headers).status_code == 404
    listing = client.get(reverse("vms:list"), **headers).content.decode()
    assert "vm-name" not in listing and EXAMPLE_ID not in listing
    assert "Production" not in listing
    assert sandbox.state.request_count(key=ALICE_KEY) == before  # her key was never used for him


def test_guessed_key_ids_are_404(alice_client, alice_key, mallory_key):
    assert alice_client.get(_detail(mallory_key.pk)).status_code == 404
    assert alice_client.get(_detail(999999)).status_code == 404


# --- search, filters, sort, pages --------------------------------------------------------------------


def _names(response) -> list[str]:
    body = response.content.decode()
    table = body[body.index('id="vm-table"') :]
    return re.findall(r'<td><a href="/vms/[^"]+">([^<]+)</a>', table)


def test_search_matches_name_id_and_ip(alice_client, alice_key):
    assert _names(alice_client.get(reverse("vms:list"), {"q": "vm-name"})) == ["vm-name"]
    assert _names(alice_client.get(reverse("vms:list"), {"q": "154.42.3"})) == ["vm-name"]
    assert _names(alice_client.get(reverse("vms:list"), {"q": EXAMPLE_ID.upper().replace("0X", "0x")})) == [
        "vm-name"
    ]
    response = alice_client.get(reverse("vms:list"), {"q": "no-such-vm-anywhere"})
    assert _names(response) == []
    assert "No VM matches these filters" in response.content.decode()


def test_filters_by_status_account_and_country(alice_client, alice_key, sandbox):
    vms = sandbox.state.vms_for(ALICE_KEY)
    terminated = sorted(vm["vmName"] for vm in vms if vm["status"] == "Terminated")
    assert _names(alice_client.get(reverse("vms:list"), {"status": "terminated"})) == terminated
    french = sorted(
        vm["vmName"] for vm in vms if vm["datacenter"] and vm["datacenter"]["countryCode"] == "FR"
    )
    assert _names(alice_client.get(reverse("vms:list"), {"country": "fr"})) == french
    assert len(_names(alice_client.get(reverse("vms:list"), {"account": alice_key.pk}))) == len(vms)
    assert _names(alice_client.get(reverse("vms:list"), {"account": alice_key.pk + 1000})) == []


def test_sort_on_price_both_ways(alice_client, alice_key, sandbox):
    vms = sandbox.state.vms_for(ALICE_KEY)
    by_price = [vm["vmName"] for vm in sorted(vms, key=lambda vm: vm["pricePerEpoch"])]
    assert _names(alice_client.get(reverse("vms:list"), {"sort": "price"})) == by_price
    assert _names(alice_client.get(reverse("vms:list"), {"sort": "-price"})) == by_price[::-1]
    body = alice_client.get(reverse("vms:list"), {"sort": "price"}).content.decode()
    assert 'aria-sort="ascending"' in body
    assert 'href="/?sort=-price"' in body  # clicking again reverses


def test_pagination_is_server_side_and_keeps_the_query(alice_client, user, sandbox):
    sandbox.state.configure_account("sbx_many_vms_account", vm_count=120)
    key = services.apikey_create(owner=user, label="Big", secret="sbx_many_vms_account", base_url=sandbox.url)
    first = alice_client.get(reverse("vms:list"), {"sort": "price"})
    assert len(_names(first)) == 50
    assert "Page 1 of 3" in first.content.decode()
    assert 'href="/?sort=price&amp;page=2"' in first.content.decode()
    third = alice_client.get(reverse("vms:list"), {"sort": "price", "page": "3"})
    assert len(_names(third)) == 20
    beyond = alice_client.get(reverse("vms:list"), {"page": "99"})
    assert "Page 3 of 3" in beyond.content.decode()
    assert key.pk


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "password"},
        {"sort": "-__class__"},
        {"page": "-1"},
        {"page": "1e9"},
        {"page": "99999999999999"},
        {"account": "1 OR 1=1"},
        {"country": "<script>"},
        {"status": "'; DROP TABLE"},
        {"q": "x" * 5000},
        {"q": "\x00\x01"},
    ],
)
def test_bad_query_strings_get_a_clear_note_never_an_error(alice_client, alice_key, params):
    response = alice_client.get(reverse("vms:list"), params)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>" not in body
    assert "notice-warning" in body or params.get("q")


# --- accounts that fail -----------------------------------------------------------------------------


def test_a_refused_key_shows_its_own_message_and_the_other_account_still_shows(
    alice_client, user, alice_key, sandbox
):
    services.apikey_create(
        owner=user, label="Old account", secret="sbx_demo_revoked_0001", base_url=sandbox.url, verify=False
    )
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "Old account (…0001)" in body
    assert "key refused" in body and "API key revoked" in body and "Manage your keys" in body
    assert "vm-name" in body


def test_fluence_down_shows_last_good_data_with_its_time(alice_client, alice_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 0
    assert "vm-name" in alice_client.get(reverse("vms:list")).content.decode()
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "vm-name" in body
    assert "Showing data from" in body
    assert "HTTP 503" in body


def test_no_keys_guides_a_new_person(alice_client):
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "Add your first API key" in body
    assert reverse("vms:key_add") in body


# --- upstream calls ---------------------------------------------------------------------------------


def test_accounts_are_fetched_in_parallel(alice_client, user, sandbox, settings):
    for index in range(3):
        services.apikey_create(
            owner=user, label=f"Slow {index}", secret=f"sbx_slow_account_{index}", base_url=sandbox.url
        )
        sandbox.state.set_faults(latency_ms=300, key=f"sbx_slow_account_{index}")
    started = time.monotonic()
    response = alice_client.get(reverse("vms:list"))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 0.8, f"three 300 ms accounts took {elapsed:.2f} s: not in parallel"


def test_the_cache_serves_repeated_refreshes(alice_client, alice_key, sandbox):
    sandbox.state.reset_counts()
    for _ in range(3):
        alice_client.get(reverse("vms:list"), **HX)
    assert sandbox.state.request_count(method="GET", path="/vms/v2") == 1


def test_poll_interval_is_fast_while_a_vm_is_launching(alice_client, user, sandbox, settings):
    sandbox.state.configure_account("sbx_settled_account_1", vm_count=3)
    assert {vm["status"] for vm in sandbox.state.vms_for("sbx_settled_account_1")} == {"ACTIVE"}
    key = services.apikey_create(
        owner=user, label="Calm", secret="sbx_settled_account_1", base_url=sandbox.url
    )
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert f'hx-trigger="every {settings.VM_POLL_SLOW_SECONDS}s,' in body
    sandbox.state.add_vm("sbx_settled_account_1", name="booting-1", status="Launching")
    forget_cached_vms(key_id=key.pk)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert f'hx-trigger="every {settings.VM_POLL_FAST_SECONDS}s,' in body
