"""The pages across Fluence's API generations: costs per day and month in each VM's own currency, one total
per currency, today's API's balance, its VMs that cannot be deleted, unreadable fields, the keys page's API
column, the detail page's fields and raw object, and what the delete dialogs say for each generation."""

import html
import json
import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from vms import preferences, services
from vms.display import format_utc
from vms.fluence.models import Status, parse_timestamp
from vms.models import ApiKey, KeyShare

pytestmark = pytest.mark.django_db

B_KEY = "sbx_b_generations_today"
OLD_KEY = "sbx_generations_2025_01"
EXAMPLE_ID = "0x0000000000000000000000000000000000000001"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


@pytest.fixture
def b_key(user, sandbox):
    sandbox.state.configure_account(B_KEY, vm_count=8, balance={"balance": "125.40", "usageDaysLeft": 11})
    sandbox.state.deletion_delay = 60  # the sandbox fixture puts it back
    return services.apikey_create(owner=user, label="Today", secret=B_KEY, base_url=sandbox.url)


@pytest.fixture
def old_key(user, sandbox):
    sandbox.state.configure_account(OLD_KEY, vm_count=5, include_example=True)
    return services.apikey_create(owner=user, label="Old", secret=OLD_KEY, base_url=sandbox.url)


def _cents(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f}"


def _row(body: str, vm_id: str) -> str:
    row = body[body.index(f'<tr data-vm-id="{vm_id}"') :]
    return row[: row.index("</tr>")]


COST = 6  # the cost column, counted from 1 as CSS's nth-child does (the last fixed column)


def _cell(row: str, column: int) -> str:
    return re.findall(r"<td[^>]*>(.*?)</td>", row)[column - 1]


def _b_vm(sandbox, *, status="launched", with_ip=True):
    """A VM of the B account as Fluence lists it, with a price (and a public IP unless told)."""
    return next(
        vm
        for vm in sandbox.state.vms_for(B_KEY)
        if vm["status"] == status and vm["priceHourlyUsd"] and bool(vm["publicIp"]) == with_ip
    )


def _address(sandbox, vm) -> str:
    """The public IP's address, which Fluence gives only when asked to expand the resource."""
    answer = json.loads(sandbox.state.vm_json(B_KEY, vm["id"], ("publicIp",)))
    return answer["expanded"]["publicIp"]["address"]


def _list(client, **params) -> str:
    response = client.get(reverse("vms:list"), params)
    assert response.status_code == 200
    return response.content.decode()


# --- the table and its summary ------------------------------------------------------------------------


def test_each_row_shows_its_cost_per_day_and_month_in_its_own_currency(alice_client, b_key, old_key, sandbox):
    body = _list(alice_client)
    assert "Cost / day · month" in body and "Price / epoch" not in body

    # The 2025 example VM: 0.298160 USDC per 24 h epoch is 0.30 a day and 0.298160 / 24 * 730 a month.
    old = _row(body, EXAMPLE_ID)
    cost = _cell(old, COST)
    assert cost == "0.30 USDC<small>9.07/mo · epoch</small>"

    vm = _b_vm(sandbox)
    row = _row(body, vm["id"])
    cost = _cell(row, COST)
    daily = _cents(Decimal(vm["priceHourlyUsd"]) * 24)
    assert cost == f"{daily} USD<small>{_cents(Decimal(vm['priceMonthlyUsd']))}/mo · second</small>"
    assert _cell(row, COST + 3) == "<small>per second</small>"  # next billing (after vCPU, RAM): no epochs
    assert f"<td>{vm['ramGb']} GB</td>" in row  # decimal GB, as today's API counts them
    assert "GiB" not in row


def test_totals_are_one_per_currency_and_leave_ended_vms_out(alice_client, b_key, old_key, sandbox):
    body = _list(alice_client)
    spend = body[body.index('<span id="vm-spend">') :]
    spend = re.sub(r"<[^>]+>", "", spend[: spend.index("(excluding ended and deleting)")])  # the text read

    usd_day = usd_month = Decimal(0)
    for vm in sandbox.state.vms_for(B_KEY):
        if not Status(vm["status"]).is_ended and vm["priceHourlyUsd"]:
            usd_day += Decimal(vm["priceHourlyUsd"]) * 24
            usd_month += Decimal(vm["priceMonthlyUsd"])
    usdc_day = sum(
        (
            Decimal(vm["pricePerEpoch"]).scaleb(-6)
            for vm in sandbox.state.vms_for(OLD_KEY)
            if not Status(vm["status"]).is_ended
        ),
        Decimal(0),
    )
    assert f"{_cents(usd_day)} USD / day · {_cents(usd_month)} USD / month" in spend
    assert f"{_cents(usdc_day)} USDC / day · {_cents(usdc_day / 24 * 730)} USDC / month" in spend
    # Never one figure that adds dollars to USDC.
    assert _cents(usd_day + usdc_day) not in spend


def test_sorting_by_cost_keeps_each_currency_together(alice_client, b_key, old_key, sandbox):
    body = _list(alice_client, sort="price")
    rows = body[body.index("<tbody>") : body.index("</tbody>")].split("<tr data-vm-id=")[1:]
    currencies = [
        "USDC" if " USDC<small>" in row else "USD" if " USD<small>" in row else None for row in rows
    ]
    priced = [currency for currency in currencies if currency]
    # USD rows first, then USDC rows: no interleaving as if one dollar were one USDC.
    assert priced == sorted(priced) and set(priced) == {"USD", "USDC"}
    usd_amounts = [
        Decimal(row.split(" USD<small>")[0].rsplit(">", 1)[1].replace(",", ""))
        for row in rows
        if " USD<small>" in row
    ]
    assert usd_amounts == sorted(usd_amounts)


def test_each_account_has_a_line_with_its_api_and_a_b_account_its_balance(alice_client, b_key, old_key):
    body = _list(alice_client)
    lines = body[body.index('<ul class="account-lines"') :]
    lines = _text(lines[: lines.index("</ul>")])
    assert "Today · current API · 8 VMs · balance 125.40 USD · about 11 days left" in lines
    assert "Old · 2025 draft API (v2) · 5 VMs" in lines


def test_a_balance_without_a_runway_says_no_days(alice_client, user, sandbox):
    sandbox.state.configure_account("sbx_b_no_runway_01", vm_count=2, balance={"usageDaysLeft": None})
    services.apikey_create(owner=user, label="Runway", secret="sbx_b_no_runway_01", base_url=sandbox.url)
    text = _text(_list(alice_client))
    assert "Runway · current API · 2 VMs · balance" in text and "days left" not in text


def test_a_terminated_b_vm_needs_no_attention_and_offers_no_deletion(alice_client, b_key, sandbox):
    terminated = next(vm for vm in sandbox.state.vms_for(B_KEY) if vm["status"] == "terminated")
    body = _list(alice_client)
    row = _row(body, terminated["id"])
    assert 'name="vm"' not in row and "/delete/" not in row
    summary = body[body.index('id="vm-summary"') :]
    assert terminated["name"] not in summary[: summary.index("</section>")]

    detail = alice_client.get(reverse("vms:detail", args=[b_key.pk, terminated["id"]])).content.decode()
    assert 'id="delete-vm-button"' not in detail
    assert "already terminated: Fluence keeps terminated VMs listed" in detail

    url = reverse("vms:delete", args=[b_key.pk, terminated["id"]])
    dialog = alice_client.get(url, **HX).content.decode()
    assert "<form" not in dialog and "already terminated" in dialog
    refused = alice_client.post(url, {"confirm": terminated["name"]}, **HX)
    assert refused.status_code == 400
    assert sandbox.state.request_count(method="POST") == 0  # nothing was sent to Fluence


def test_a_terminating_b_vm_says_why_it_cannot_be_deleted(alice_client, b_key, sandbox):
    vm = _b_vm(sandbox)
    sandbox.state.terminate_vm(B_KEY, vm["id"])  # someone else terminated it in Fluence's console
    detail = alice_client.get(reverse("vms:detail", args=[b_key.pk, vm["id"]])).content.decode()
    assert "Fluence does not allow deleting it while it is terminating." in detail
    assert 'id="delete-vm-button"' not in detail
    row = _row(_list(alice_client), vm["id"])
    assert 'name="vm"' not in row and "/delete/" not in row


def test_a_viewer_gets_no_checkbox_even_for_a_vm_fluence_would_terminate(client, b_key, sandbox, other_user):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="team")
    other_user.groups.add(team)
    KeyShare.objects.create(api_key=b_key, group=team, role="viewer")
    client.force_login(other_user)
    row = _row(_list(client), _b_vm(sandbox)["id"])
    assert 'name="vm"' not in row and "/delete/" not in row


# --- fields Fluence sent unreadably ---------------------------------------------------------------------


def test_unreadable_fields_are_shown_in_place_and_named_above_the_table(alice_client, user, b_key, sandbox):
    preferences.vm_columns_set(user=user, columns=["age"])
    odd = sandbox.state.add_vm(
        B_KEY,
        name="odd-b",
        status="launched",
        createdAt="yesterday",
        priceHourlyUsd="cheap",
        priceMonthlyUsd=["not", "money"],
    )
    body = _list(alice_client)
    row = _row(body, odd["id"])
    assert '<span class="unreadable" title="the field &#x27;priceHourlyUsd&#x27;' in _cell(row, COST)
    assert row.count(">unreadable</span>") == 2  # the cost and the age
    assert f'value="{b_key.pk}:{odd["id"]}"' in row  # still selectable: it still costs money
    fields = "createdAt, priceHourlyUsd, priceMonthlyUsd"
    assert f"odd-b: {fields} could not be read; shown as &quot;unreadable&quot;." in body

    detail = alice_client.get(reverse("vms:detail", args=[b_key.pk, odd["id"]])).content.decode()
    assert "Fields that could not be read" in detail
    assert "&quot;yesterday&quot;" in detail  # what Fluence sent, next to "unreadable"
    assert '<dt>Created</dt><dd><span class="unreadable"' in detail
    card = detail[detail.index("Cost, billed per second") :]
    assert '<span class="unreadable"' in card[: card.index("</div>")]


def test_the_notice_names_five_vms_with_unreadable_fields_and_counts_the_rest(alice_client, b_key, sandbox):
    for number in range(7):
        sandbox.state.add_vm(B_KEY, name=f"odd-{number}", status="launched", updatedAt=number)
    body = _list(alice_client)
    notice = body[body.index('class="notice notice-warning unreadable-fields"') :]
    notice = notice[: notice.index("</div>")]
    assert notice.count("updatedAt could not be read") == 5
    assert "and 2 more." in notice


# --- the keys page --------------------------------------------------------------------------------------


def test_the_keys_page_names_each_keys_api_and_a_b_keys_balance(alice_client, b_key, old_key):
    body = alice_client.get(reverse("vms:keys")).content.decode()
    today = body[body.index(f'<tr data-key-id="{b_key.pk}"') :]
    today = _text(today[: today.index("</tr>")])
    assert "current API" in today and "balance 125.40 USD · about 11 days left" in today
    old = body[body.index(f'<tr data-key-id="{old_key.pk}"') :]
    old = _text(old[: old.index("</tr>")])
    assert "2025 draft API (v2)" in old and "switched" not in old and "balance" not in old


def test_the_keys_page_asks_fluence_nothing_without_a_key_of_todays_api(alice_client, old_key, sandbox):
    sandbox.state.reset_counts()
    assert alice_client.get(reverse("vms:keys")).status_code == 200
    assert sandbox.state.request_count() == 0


def test_a_retired_api_path_switches_the_key_and_both_pages_say_so(alice_client, user, sandbox):
    sandbox.state.configure_account("sbx_b_moved_account_1", vm_count=3)
    # Stored when it still answered on the 2025 API (v3); Fluence has since retired that path for it.
    key = services.apikey_create(
        owner=user,
        label="Moved",
        secret="sbx_b_moved_account_1",
        base_url=sandbox.url,
        generation="a",
        verify=False,
    )
    body = _list(alice_client)
    assert (
        "Fluence no longer answers this key on the 2025 API (v3); the portal now uses the current API."
        in body
    )
    assert body.count("<tr data-vm-id=") == 3  # and its VMs are listed from today's API
    key.refresh_from_db()
    assert (key.generation, key.previous_generation) == ("b", "a")

    keys_page = _text(alice_client.get(reverse("vms:keys")).content.decode())
    day = timezone.now().strftime("%Y-%m-%d")
    assert f"switched from 2025 API (v3) on {day} UTC, when Fluence retired the old path" in keys_page


def test_the_keys_page_shows_a_switch_made_earlier(alice_client, old_key):
    when = timezone.now() - timedelta(days=3)
    ApiKey.objects.filter(pk=old_key.pk).update(previous_generation="a", generation_changed_at=when)
    text = _text(alice_client.get(reverse("vms:keys")).content.decode())
    assert f"switched from 2025 API (v3) on {when:%Y-%m-%d} UTC, when Fluence retired the old path" in text


# --- the detail page ------------------------------------------------------------------------------------


def test_the_detail_page_of_a_b_vm_shows_its_fields_and_everything_fluence_sent(alice_client, b_key, sandbox):
    listed = _b_vm(sandbox)
    # Priced explicitly: the sandbox leaves 3 % of its VMs without a price, as Fluence may.
    added = sandbox.state.add_vm(
        B_KEY,
        name="raw-one",
        status="launched",
        comment="<b>new field</b>",
        priceHourlyUsd="0.1260",
        priceMonthlyUsd="91.98",
    )
    for vm in (listed, added):
        body = alice_client.get(reverse("vms:detail", args=[b_key.pk, vm["id"]])).content.decode()
        text = _text(body)
        fresh = next(item for item in sandbox.state.vms_for(B_KEY) if item["id"] == vm["id"])
        assert f"{_cents(Decimal(fresh['priceHourlyUsd']) * 24)} USD per day" in text
        # As sent, without trailing zeros ("0.1260" reads "0.126").
        assert f"{Decimal(fresh['priceHourlyUsd']).normalize():f} USD per hour" in text
        assert f"{_cents(Decimal(fresh['priceMonthlyUsd']))} USD per month" in text
        assert "Billed per second" in text
        # The plan is only in Fluence's list; the page asks for the VM alone and still shows it.
        assert fresh["configurationName"] in text
        assert f"RAM {fresh['ramGb']} GB" in text and f"vCPU {fresh['vcpu']}" in text
        assert fresh["bootDisk"] in text and fresh["clusterId"] in text
        if fresh["publicIp"]:
            assert fresh["publicIp"] in text and _address(sandbox, fresh) in text
        for field in ("createdAt", "updatedAt", "readySince"):
            assert format_utc(parse_timestamp(fresh[field])) in text
        for label in ("Last paid", "Paid until", "Terminated at not terminated", "Restart required no"):
            assert label in text
        assert "terminate" in body[body.index("Allowed actions") :]
        assert "Everything Fluence sent" in body and f"&quot;id&quot;: &quot;{vm['id']}&quot;" in body
    # Unknown fields are kept, and shown escaped.
    assert "&quot;comment&quot;: &quot;&lt;b&gt;new field&lt;/b&gt;&quot;" in body
    assert "<b>new field</b>" not in body
    assert sandbox.state.request_count(method="GET", path=f"/v2/vms/{added['id']}") == 1  # asked afresh


def test_the_detail_page_of_a_2025_vm_keeps_its_epoch(alice_client, old_key):
    body = alice_client.get(reverse("vms:detail", args=[old_key.pk, EXAMPLE_ID])).content.decode()
    assert "Price per epoch (24 h)" in body and "0.298160" in body
    assert "Billed per second" not in body
    assert "Everything Fluence sent" in body and "&quot;pricePerEpoch&quot;" in body


def test_the_status_partial_does_not_ask_for_the_vm_alone(alice_client, b_key, sandbox):
    vm = _b_vm(sandbox)
    alice_client.get(reverse("vms:list"))
    sandbox.state.reset_counts()
    response = alice_client.get(reverse("vms:detail_status", args=[b_key.pk, vm["id"]]), **HX)
    assert response.status_code == 200 and "Billed per second" in response.content.decode()
    assert sandbox.state.request_count() == 0  # the list's cache answered


# --- the delete dialogs ---------------------------------------------------------------------------------


def test_the_delete_dialog_of_a_b_vm_explains_per_second_billing_and_names_what_stays(
    alice_client, b_key, sandbox
):
    vm = _b_vm(sandbox)
    address = _address(sandbox, vm)
    dialog = alice_client.get(reverse("vms:delete", args=[b_key.pk, vm["id"]]), **HX).content.decode()
    text = _text(dialog)
    assert "Billing is per second" in text and "stops when the VM is terminated" in text
    assert vm["bootDisk"] in text and vm["publicIp"] in text and address in text
    assert "does not say whether terminating the VM releases them" in text
    assert "not refunded" not in text and "epoch began" not in text

    response = alice_client.post(
        reverse("vms:delete", args=[b_key.pk, vm["id"]]), {"confirm": vm["name"]}, **HX
    )
    assert response.status_code == 200
    assert sandbox.state.request_count(method="POST", path=f"/v2/vms/{vm['id']}/terminate") == 1


def test_the_bulk_dialog_shows_each_cost_per_day_in_its_currency(alice_client, b_key, old_key, sandbox):
    vm = _b_vm(sandbox)
    refs = [f"{b_key.pk}:{vm['id']}", f"{old_key.pk}:{EXAMPLE_ID}"]
    dialog = alice_client.get(reverse("vms:bulk_delete"), {"vm": refs}, **HX).content.decode()
    text = _text(dialog)
    assert "Cost / day" in text
    assert f"{_cents(Decimal(vm['priceHourlyUsd']) * 24)} USD" in text and "0.30 USDC" in text
    assert "billing is per second and stops when a VM is terminated" in text
    assert "epochs are paid in advance" in text
    assert vm["bootDisk"] in text and vm["publicIp"] in text


def _text(markup: str) -> str:
    """What a person reads: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def test_the_add_key_form_offers_the_api_version_finding_it_by_default(alice_client):
    body = alice_client.get(reverse("vms:key_add")).content.decode()
    assert 'name="generation"' in body
    assert '<option value="auto" selected>Find it (recommended)</option>' in body
    for value in ("b", "a", "baseline"):
        assert f'<option value="{value}">' in body
