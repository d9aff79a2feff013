"""The VM list and detail pages, per permission level, as full pages and as htmx partials."""

import contextlib
import re
import threading
import time

import pytest
import requests
from django.urls import reverse

from tests.factories import ALICE_KEY, OPS_KEY, make_api_key
from vms import preferences, services, vm_cache
from vms.vm_table import OPTIONAL_COLUMNS

pytestmark = pytest.mark.django_db

EXAMPLE_ID = "0x0000000000000000000000000000000000000001"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


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


def _example_row(body: str) -> str:
    row = body[body.index(f'data-vm-id="{EXAMPLE_ID}"') :]
    return row[: row.index("</tr>")]


def test_owner_sees_the_list_with_formatted_values(alice_client, user, alice_key):
    response = alice_client.get(reverse("vms:list"))
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert "<html" in body
    row = _example_row(body)
    for expected in (
        "vm-name",
        "Active",
        "Production",
        "Paris, France",
        "tier 4",
        "2 vCPU",
        "4 GiB",
        "0.30 USDC<small>9.07/mo · epoch</small>",  # per day and per month; exact on the detail page
    ):
        assert expected in row, expected
    # Storage and the public IP are columns a person adds (the default table fits a 1440 px screen).
    assert "25 GiB" not in row and "154.42.3.159" not in row
    preferences.vm_columns_set(user=user, columns=["storage", "ip"])
    row = _example_row(alice_client.get(reverse("vms:list")).content.decode())
    assert "25 GiB" in row and "154.42.3.159" in row and "2 vCPU" not in row


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
        # Its nextBillingAt is long past while it runs: said so, not shown as an epoch 100 % used.
        "Billing data from Fluence is out of date (next billing 2025-04-16)",
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
    ("params", "note"),
    [
        ({"sort": "password"}, "The table cannot be sorted that way; it is sorted by name."),
        ({"sort": "-__class__"}, "The table cannot be sorted that way; it is sorted by name."),
        ({"page": "-1"}, "The page number was not understood; showing the first page."),
        ({"page": "1e9"}, "The page number was not understood; showing the first page."),
        ({"page": "99999999999999"}, "The page number was not understood; showing the first page."),
        ({"account": "1 OR 1=1"}, "The account filter was not understood and is ignored."),
        ({"country": "<script>"}, "The country filter was not understood and is ignored."),
        ({"status": "'; DROP TABLE"}, "The status filter was not understood and is ignored."),
        ({"q": "x" * 5000}, "The search was cut to "),
        ({"q": "\x00\x01"}, None),  # an odd search is still a search: it finds nothing and says so
    ],
)
def test_bad_query_strings_get_a_clear_note_never_an_error(alice_client, alice_key, params, note):
    response = alice_client.get(reverse("vms:list"), params)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>" not in body
    notes = re.findall(r'<p class="notice notice-warning" role="status">([^<]*)</p>', body)
    if note is None:
        assert notes == []
        assert "No VM matches these filters" in body
    else:
        assert len(notes) == 1 and notes[0].startswith(note), notes


# --- accounts that fail -----------------------------------------------------------------------------


def test_a_refused_key_shows_its_own_message_and_the_other_account_still_shows(
    alice_client, user, alice_key, sandbox
):
    services.apikey_create(
        owner=user, label="Old account", secret="sbx_demo_revoked_0001", base_url=sandbox.url, verify=False
    )
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "Old account (…0001)" in body
    assert "refused this API key" in body and "API key revoked" in body and "Manage your keys" in body
    assert "vm-name" in body


def test_fluence_down_shows_last_good_data_with_its_time(alice_client, alice_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 0
    assert "vm-name" in alice_client.get(reverse("vms:list")).content.decode()
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "vm-name" in body
    problem = body[body.index("account-problem") :]
    problem = problem[: problem.index("</div>")]
    assert "Production (…tion)</strong>: could not load this account&#x27;s VMs: " in problem
    assert "Fluence is unavailable (HTTP 503)" in problem
    assert re.search(r"; showing data from (moments|\d+ s) ago \(\d{4}-\d\d-\d\d [\d:]+ UTC\)\.", problem)
    assert "Try again" not in problem  # the page asks again by itself


def test_a_failing_key_watched_by_many_is_asked_once_per_interval(alice_client, user, sandbox):
    services.apikey_create(
        owner=user, label="Old", secret="sbx_demo_revoked_0001", base_url=sandbox.url, verify=False
    )
    for _ in range(10):
        assert "API key revoked" in alice_client.get(reverse("vms:list"), **HX).content.decode()
    assert sandbox.state.request_count(key="sbx_demo_revoked_0001") == 1


def test_an_outage_on_the_detail_page_keeps_polling_and_never_claims_the_vm_is_gone(
    alice_client, api_key, sandbox
):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    status_url = reverse("vms:detail_status", args=[api_key.pk, vm["id"]])
    response = alice_client.get(status_url, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "no longer exists" not in body
    assert "HTTP 503" in body and "hx-trigger=" in body
    page = alice_client.get(reverse("vms:detail", args=[api_key.pk, vm["id"]]))
    assert page.status_code == 200 and "no longer exists" not in page.content.decode()


def test_one_unreadable_vm_never_hides_the_rest_of_its_account(alice_client, api_key, sandbox):
    odd = sandbox.state.add_vm(OPS_KEY, name="odd-one", status="ACTIVE", pricePerEpoch=True)
    body = alice_client.get(reverse("vms:list")).content.decode()
    # Every VM is listed, the odd one included: it still costs money and must stay deletable.
    assert body.count("<tr data-vm-id=") == len(sandbox.state.vms_for(OPS_KEY))
    row = body[body.index(f'<tr data-vm-id="{odd["id"]}"') :]
    row = row[: row.index("</tr>")]
    cost_cell = re.findall(r"<td[^>]*>(.*?)</td>", row)[5]
    assert ">unreadable</span>" in cost_cell and "pricePerEpoch" in cost_cell  # the reason, in its title
    assert f'name="vm" value="{api_key.pk}:{odd["id"]}"' in row  # its checkbox: it can be deleted
    assert "odd-one: pricePerEpoch could not be read; shown as &quot;unreadable&quot;." in body
    assert "could not be read and is not shown" not in body  # nothing is hidden


def test_no_keys_guides_a_new_person(alice_client):
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "Add your first API key" in body
    assert reverse("vms:key_add") in body


# --- upstream calls ---------------------------------------------------------------------------------


def test_accounts_are_fetched_in_parallel(alice_client, user, sandbox, monkeypatch):
    slow = [f"sbx_slow_account_{index}" for index in range(3)]
    for index, secret in enumerate(slow):
        make_api_key(user, sandbox, secret=secret, label=f"Slow {index}")
    # Each account's list call waits at the sandbox until all three have arrived: only calls made at the same
    # time get past. One after another, the first gives up waiting (the timeout only ends a failing test).
    together = threading.Barrier(len(slow), timeout=5)
    arrived = []
    record_request = sandbox.state.record_request

    def wait_for_the_others(method, path, key):
        record_request(method, path, key)
        if key in slow:
            arrived.append(key)
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait()

    monkeypatch.setattr(sandbox.state, "record_request", wait_for_the_others)
    response = alice_client.get(reverse("vms:list"))
    assert response.status_code == 200
    assert sorted(arrived) == slow  # one list call per account
    assert not together.broken, "the accounts were asked one after another, not at the same time"
    assert all(f"Slow {index}" in response.content.decode() for index in range(3))


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
    vm_cache.forget(key.pk)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert f'hx-trigger="every {settings.VM_POLL_FAST_SECONDS}s,' in body


# --- the summary: one count for banner, chips and totals, over the rows shown -------------------------------


def _summary(body: str) -> str:
    return body[body.index('<section id="vm-summary"') : body.index("</section>")]


def _chips(body: str) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(r'data-count="(\w+)">(\d+)<', _summary(body))}


def _attention_count(body: str) -> int:
    found = re.search(r"<strong>(\d+) VMs?(?: shown)? needs? attention\.</strong>", _summary(body))
    return int(found[1]) if found else 0


def test_banner_chips_and_totals_agree_and_follow_the_filters(alice_client, api_key, sandbox):
    sandbox.state.add_vm(OPS_KEY, name="low-funds-a", status="SmallBalance")
    sandbox.state.add_vm(OPS_KEY, name="low-funds-b", status="InsufficientFunds")
    sandbox.state.add_vm(OPS_KEY, name="ended-a", status="Terminated")
    vms = sandbox.state.vms_for(OPS_KEY)
    every = alice_client.get(reverse("vms:list")).content.decode()
    chips = _chips(every)
    assert _attention_count(every) == chips["attention"] >= 2
    assert sum(chips.values()) == len(vms) == int(re.search(r'id="vm-total">(\d+)<', every)[1])
    # With a search active, every figure is over the rows the table shows.
    low = alice_client.get(reverse("vms:list"), {"q": "low-funds"}).content.decode()
    assert _chips(low) == {"attention": 2} and _attention_count(low) == 2
    assert f'id="vm-total">2</strong> VMs of {len(vms)}' in low
    assert "ended-a" not in _summary(low)
    ended = alice_client.get(reverse("vms:list"), {"status": "terminated"}).content.decode()
    assert "attention" not in _chips(ended) and _attention_count(ended) == 0
    assert "ended-a" in _summary(ended) and "keep" in _summary(ended)  # its reserve, said apart


def test_a_vm_being_deleted_counts_as_deleting_not_running_and_has_one_colour(alice_client, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    before = _chips(alice_client.get(reverse("vms:list")).content.decode())
    result = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, **HX
    )
    assert '<span class="badge badge-deleting">Deleting…</span>' in result.content.decode()
    body = alice_client.get(reverse("vms:list")).content.decode()
    after = _chips(body)
    assert after["deleting"] == 1 and after["ok"] == before["ok"] - 1
    assert '<span class="badge badge-deleting">Deleting</span><strong data-count="deleting">1<' in body
    row = body[body.index(f'data-vm-id="{vm["id"]}"') :]
    assert '<span class="badge badge-deleting">Deleting…</span>' in row[: row.index("</tr>")]
    detail = alice_client.get(reverse("vms:detail", args=[api_key.pk, vm["id"]])).content.decode()
    assert '<span class="badge badge-deleting" id="vm-status-badge">Deleting…</span>' in detail  # its status
    dialog = alice_client.get(reverse("vms:delete", args=[api_key.pk, vm["id"]])).content.decode()
    assert '<dt>Status</dt><dd><span class="badge badge-deleting">Deleting…</span></dd>' in dialog
    assert "badge-ok" not in result.content.decode()  # the result no longer says green


# --- rows of an account showing older data ---------------------------------------------------------------


def test_an_account_that_failed_marks_its_rows_and_says_how_old_its_data_is(
    alice_client, user, alice_key, api_key, sandbox, settings
):
    settings.FLUENCE_CACHE_SECONDS = 0
    alice_client.get(reverse("vms:list"))
    sandbox.state.set_faults(key=OPS_KEY, error_rate=1.0, error_status=503)
    body = alice_client.get(reverse("vms:list")).content.decode()
    failing = body[body.index(f'<li data-account="{api_key.pk}"') :]
    failing = failing[: failing.index("</li>")]
    healthy = body[body.index(f'<li data-account="{alice_key.pk}"') :]
    healthy = healthy[: healthy.index("</li>")]
    assert "not refreshed · last data" in failing and ">updated " not in failing
    assert 'updated <span class="updated-ago">just now</span>' in healthy
    for vm in sandbox.state.vms_for(OPS_KEY):
        row = body[body.index(f'data-vm-id="{vm["id"]}"') :]
        assert 'class="stale"' in row[: row.index("</tr>")]
    failing_ids = {vm["id"] for vm in sandbox.state.vms_for(OPS_KEY)}
    healthy_vm = next(vm for vm in sandbox.state.vms_for(ALICE_KEY) if vm["id"] not in failing_ids)
    row = body[body.index(f'data-vm-id="{healthy_vm["id"]}"') :]
    assert 'class="stale"' not in row[: row.index("</tr>")]  # Production answered


# --- the detail page's wording ------------------------------------------------------------------------------


def _resources(body: str) -> str:
    return body[
        body.index('<table class="resources">') : body.index(
            "</table>", body.index('<table class="resources">')
        )
    ]


def test_the_detail_page_names_resources_as_people_do_with_units_or_says_there_are_none(
    alice_client, alice_key
):
    body = alice_client.get(_detail(alice_key.pk)).content.decode()
    resources = _resources(body)
    names = re.findall(r'<td title="Fluence calls it (\w+)">([^<]+)</td>', resources)
    assert names == [("VCPU", "vCPU"), ("RAM", "RAM"), ("STORAGE", "Storage"), ("PUBLIC_IP", "Public IP")]
    assert '<small>Speed</small> 3600 <small class="muted">(unit not stated by Fluence)</small>' in resources
    assert "<small>Sequential write speed</small> 15000" in resources
    assert "<small>Manufacturer</small> Samsung" in resources
    assert ">speed<" not in resources and "sequentialWriteSpeed" not in resources
    status = body[body.index("<small>Status</small>") :]
    status = status[: status.index("</div>")]
    assert ">Active</span>" in status and "(ACTIVE)" not in status  # the status once, not twice


def test_the_detail_page_flags_money_spent_without_a_next_billing(alice_client, api_key, sandbox):
    vm = sandbox.state.add_vm(OPS_KEY, name="booting", status="Launching", totalSpent="590000")
    assert "nextBillingAt" not in vm or vm["nextBillingAt"] is None
    body = alice_client.get(reverse("vms:detail", args=[api_key.pk, vm["id"]])).content.decode()
    assert "This VM has spent 0.59 USDC, but Fluence reports no next billing." in body
    assert "not being billed" not in body and "<progress" not in body


def test_the_detail_page_says_how_fresh_its_data_is(alice_client, alice_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 0
    assert "Updated just now." in alice_client.get(_detail(alice_key.pk)).content.decode()
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    body = alice_client.get(_status(alice_key.pk), **HX).content.decode()
    assert "Not refreshed: Fluence did not answer; this is the data from" in body
    assert "Updated just now" not in body


# --- the polled fragment's size (tests/bench/bench.py measures the same, with timings) --------------------


@pytest.mark.parametrize("columns", ["default", "every"])
def test_the_polled_fragment_of_50_rows_stays_under_40_kb(alice_client, user, sandbox, columns):
    sandbox.state.configure_account("sbx_size_budget_100", vm_count=100)
    make_api_key(user, sandbox, secret="sbx_size_budget_100", label="Bench 100")
    if columns == "every":
        preferences.vm_columns_set(user=user, columns=OPTIONAL_COLUMNS)
    body = alice_client.get(reverse("vms:list"), **HX).content
    assert body.count(b"<tr data-vm-id=") == 50
    assert len(body) < 40 * 1024, f"{len(body) / 1024:.1f} KB"
