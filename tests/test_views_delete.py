"""Deleting VMs: confirmed, honest about billing, audited before and after, never retried."""

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import OPS_KEY as KEY
from tests.factories import deletion_rows
from vms import services
from vms.fluence.client import FluenceClient
from vms.fluence.models import parse_vm

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


def _vm(sandbox, status=None, index=0):
    vms = [vm for vm in sandbox.state.vms_for(KEY) if status is None or vm["status"] == status]
    return vms[index]


def _deletes(sandbox) -> int:
    return sandbox.state.request_count(method="DELETE", path="/vms/v3")


def _delete_url(api_key, vm):
    return reverse("vms:delete", args=[api_key.pk, vm["id"]])


def _delete(client, api_key, vm, typed=None):
    return client.post(
        _delete_url(api_key, vm), {"confirm": typed if typed is not None else vm["vmName"]}, **HX
    )


def test_the_dialog_names_the_vm_and_explains_the_billing(alice_client, api_key, sandbox):
    vm = _vm(sandbox, status="ACTIVE", index=1)
    response = alice_client.get(_delete_url(api_key, vm), **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    for expected in (
        vm["vmName"],
        vm["id"],
        "Ops (…ount)",
        "already paid",
        "not refunded",
        "of paid time is left",
        "reserved balance",
        "is released",
        "type the VM's name",
    ):
        assert expected in body, expected
    assert _deletes(sandbox) == 0
    assert deletion_rows().count() == 0


def test_the_dialog_does_not_count_paid_time_from_billing_data_that_is_out_of_date(
    alice_client, api_key, sandbox
):
    vm = _vm(sandbox)  # the documented example VM: Active, its nextBillingAt in April 2025
    body = alice_client.get(_delete_url(api_key, vm), **HX).content.decode()
    assert (
        "Billing data from Fluence is out of date (next billing 2025-04-16), so the portal cannot tell"
        in body
    )
    assert "of paid time is left" not in body and "The current epoch began" not in body
    assert "not refunded" in body and "is released" in body


def test_the_bulk_dialog_does_not_count_paid_time_from_billing_data_that_is_out_of_date(
    alice_client, api_key, sandbox
):
    example, other = _vm(sandbox), _vm(sandbox, status="ACTIVE", index=1)
    params = {"vm": [f"{api_key.pk}:{example['id']}", f"{api_key.pk}:{other['id']}"]}
    body = alice_client.get(reverse("vms:bulk_delete"), params, **HX).content.decode()
    assert "cannot tell: billing data from Fluence is out of date (next billing 2025-04-16)" in body
    assert "of paid epoch time left unused (1 VM)" in body  # the other VM's epoch is current: counted
    assert body.count('type="hidden" name="vm"') == 2


def test_the_dialog_is_a_full_page_without_javascript(alice_client, api_key, sandbox):
    body = alice_client.get(_delete_url(api_key, _vm(sandbox))).content.decode()
    assert "<html" in body and 'method="post"' in body and "csrfmiddlewaretoken" in body


def test_deleting_with_the_typed_name_calls_fluence_once_and_audits_both_sides(
    alice_client, user, api_key, sandbox
):
    vm = _vm(sandbox, status="ACTIVE", index=1)
    response = alice_client.post(
        _delete_url(api_key, vm), {"confirm": vm["vmName"]}, HTTP_USER_AGENT="pytest-browser/1.0", **HX
    )
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"vms-changed": {}}
    assert "Deleting" in response.content.decode()
    assert _deletes(sandbox) == 1
    intent, outcome = deletion_rows().order_by("pk")
    assert intent.kind == "intent" and outcome.kind == "outcome" and outcome.outcome == "succeeded"
    assert intent.correlation_id == outcome.correlation_id
    for row in (intent, outcome):
        assert row.actor_username == "alice" and row.actor_id == str(user.pk)
        assert row.client_ip == "127.0.0.1" and row.user_agent == "pytest-browser/1.0"
        assert len(row.request_id) == 32
        assert (row.key_label, row.key_last_four, row.key_id) == ("Ops", "ount", str(api_key.pk))
        assert (row.vm_id, row.vm_name) == (vm["id"], vm["vmName"])
        assert row.vm_snapshot["id"] == vm["id"] and row.vm_snapshot["pricePerEpoch"] == vm["pricePerEpoch"]
    # The row says "deleting" until the VM leaves the list upstream.
    listing = alice_client.get(reverse("vms:list")).content.decode()
    row_html = listing[listing.index(f'data-vm-id="{vm["id"]}"') :]
    assert "Deleting…" in row_html[: row_html.index("</tr>")]


def test_deleting_without_javascript_redirects_with_a_message(alice_client, api_key, sandbox):
    vm = _vm(sandbox, status="ACTIVE", index=1)
    response = alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("vms:list")
    assert "Fluence accepted the deletion" in response.content.decode()
    assert _deletes(sandbox) == 1


def test_a_terminated_vm_can_be_deleted(alice_client, api_key, sandbox):
    vm = _vm(sandbox, status="Terminated")
    body = alice_client.get(_delete_url(api_key, vm)).content.decode()
    assert "not billed for new epochs" in body and "is released" in body
    alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]})
    assert _deletes(sandbox) == 1
    assert deletion_rows().filter(outcome="succeeded", vm_id=vm["id"]).exists()


# --- what must delete nothing --------------------------------------------------------------------------


def test_a_get_deletes_nothing(alice_client, api_key, sandbox):
    vm = _vm(sandbox)
    alice_client.get(_delete_url(api_key, vm), {"confirm": vm["vmName"]})
    assert _deletes(sandbox) == 0 and deletion_rows().count() == 0


def test_a_missing_csrf_token_deletes_nothing(user, api_key, sandbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    vm = _vm(sandbox)
    response = client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]})
    assert response.status_code == 403
    assert _deletes(sandbox) == 0 and deletion_rows().count() == 0


@pytest.mark.parametrize("typed", ["", "wrong", " vm-nam", "VM-NAME"])
def test_a_wrong_typed_name_deletes_nothing(alice_client, api_key, sandbox, typed):
    vm = _vm(sandbox)  # the example VM, named vm-name
    response = alice_client.post(_delete_url(api_key, vm), {"confirm": typed}, **HX)
    assert response.status_code == 400
    assert "Nothing was deleted" in response.content.decode()
    assert _deletes(sandbox) == 0 and deletion_rows().count() == 0


def test_another_users_vm_is_a_404_and_deletes_nothing(client, other_user, api_key, sandbox):
    client.force_login(other_user)
    vm = _vm(sandbox)
    assert client.get(_delete_url(api_key, vm)).status_code == 404
    assert client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]}).status_code == 404
    response = client.post(reverse("vms:bulk_delete"), {"vm": [f"{api_key.pk}:{vm['id']}"], "confirm": "1"})
    assert "not found under your keys" in response.content.decode()
    assert _deletes(sandbox) == 0 and deletion_rows().count() == 0


def test_anonymous_cannot_delete(client, api_key, sandbox):
    vm = _vm(sandbox)
    response = client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]})
    assert response.status_code == 302
    assert _deletes(sandbox) == 0 and deletion_rows().count() == 0


# --- failures: reported in place, never retried ---------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "outcome", "status", "text"),
    [
        ({"error_rate": 1.0, "error_status": 503}, "unknown", 503, "Outcome unknown"),
        ({"error_rate": 1.0, "error_status": 500}, "unknown", 500, "Use Check now"),
        ({"rate_limit_retry_after": 30}, "failed", 429, "30"),
        ({"drop": True}, "unknown", None, "Outcome unknown"),
    ],
)
def test_upstream_failures_are_reported_and_not_retried(
    alice_client, api_key, sandbox, faults, outcome, status, text
):
    vm = _vm(sandbox, status="ACTIVE", index=1)
    alice_client.get(reverse("vms:list"))  # the page was loaded while Fluence was fine
    sandbox.state.set_faults(**faults)
    response = alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]}, **HX)
    assert response.status_code == 200
    assert text in response.content.decode()
    assert _deletes(sandbox) == 1  # exactly one attempt
    row = deletion_rows().get(kind="outcome")
    assert (row.outcome, row.upstream_status) == (outcome, status)
    assert deletion_rows().filter(kind="intent").count() == 1


def test_a_timeout_is_an_unknown_outcome(alice_client, api_key, sandbox, settings):
    settings.FLUENCE_READ_TIMEOUT = 0.3
    vm = _vm(sandbox, status="ACTIVE", index=1)
    alice_client.get(reverse("vms:list"))  # cache the list before Fluence slows down
    sandbox.state.set_faults(latency_ms=800)
    response = alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]}, **HX)
    assert "Outcome unknown" in response.content.decode()
    assert deletion_rows().get(kind="outcome").outcome == "unknown"
    assert _deletes(sandbox) == 1


def test_a_vm_fluence_no_longer_knows_is_a_failure_with_the_reason(alice_client, api_key, sandbox):
    vm = _vm(sandbox, status="ACTIVE", index=1)
    alice_client.get(reverse("vms:list"))  # the portal still shows it from its cache
    sandbox.state.deletion_delay = 0
    FluenceClient(base_url=sandbox.url, api_key=KEY).delete_vm(vm["id"])
    response = alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]}, **HX)
    assert "VM not found" in response.content.decode()
    row = deletion_rows().get(kind="outcome")
    assert (row.outcome, row.upstream_status) == ("failed", 404)


def test_the_intent_row_survives_a_crash_during_the_upstream_call(
    alice_client, api_key, sandbox, monkeypatch
):
    vm = _vm(sandbox, status="ACTIVE", index=1)

    def killed(self, vm_ids):
        raise SystemExit("worker killed mid-call")

    monkeypatch.setattr(FluenceClient, "delete_vms", killed)
    with pytest.raises(SystemExit):
        alice_client.post(_delete_url(api_key, vm), {"confirm": vm["vmName"]})
    intent = deletion_rows().get()
    assert intent.kind == "intent" and intent.vm_id == vm["id"]


# --- several at once -------------------------------------------------------------------------------------


def test_bulk_delete_three_vms(alice_client, api_key, sandbox):
    vms = [vm for vm in sandbox.state.vms_for(KEY) if vm["status"] == "ACTIVE"][1:4]
    values = [f"{api_key.pk}:{vm['id']}" for vm in vms]
    dialog = alice_client.get(reverse("vms:bulk_delete"), {"vm": values}, **HX).content.decode()
    assert "Delete 3 VMs?" in dialog and all(vm["vmName"] in dialog for vm in vms)
    wrong = alice_client.post(reverse("vms:bulk_delete"), {"vm": values, "confirm": "2"}, **HX)
    assert wrong.status_code == 400 and _deletes(sandbox) == 0
    response = alice_client.post(reverse("vms:bulk_delete"), {"vm": values, "confirm": "3"}, **HX)
    body = response.content.decode()
    assert body.count('class="outcome-succeeded"') == 3
    assert _deletes(sandbox) == 3
    assert deletion_rows().filter(kind="intent").count() == 3
    assert deletion_rows().filter(outcome="succeeded").count() == 3
    assert len(set(deletion_rows().values_list("correlation_id", flat=True))) == 3


def test_bulk_delete_refuses_garbage_references(alice_client, api_key, sandbox):
    response = alice_client.get(reverse("vms:bulk_delete"), {"vm": ["junk", "1:0x12", "x:y"]})
    assert response.status_code == 200
    assert response.content.decode().count("not a VM reference") == 3
    assert _deletes(sandbox) == 0


# --- twice, or not through this API ----------------------------------------------------------------------


def test_a_second_delete_of_the_same_vm_sends_nothing(alice_client, api_key, sandbox):
    vm = _vm(sandbox, status="ACTIVE")
    assert "Deleting" in _delete(alice_client, api_key, vm).content.decode()
    second = _delete(alice_client, api_key, vm)
    assert second.status_code == 400
    assert "already accepted" in second.content.decode()
    bulk = alice_client.post(
        reverse("vms:bulk_delete"), {"vm": [f"{api_key.pk}:{vm['id']}"], "confirm": "1"}, **HX
    )
    assert "already accepted its deletion" in bulk.content.decode()
    assert sandbox.state.request_count(method="DELETE") == 1
    assert deletion_rows().filter(kind="intent").count() == 1


def test_a_deletion_under_way_elsewhere_blocks_a_second_one(alice_client, api_key, sandbox):
    from django.core.cache import cache

    vm = _vm(sandbox, status="ACTIVE")
    cache.add(f"fluence:deleting-now:{api_key.pk}:{vm['id'].lower()}", "other-request", 30)
    response = _delete(alice_client, api_key, vm)
    assert response.status_code == 400 and "already under way" in response.content.decode()
    assert sandbox.state.request_count(method="DELETE") == 0 and deletion_rows().count() == 0


def test_a_vm_id_the_api_cannot_delete_is_refused_before_any_audit_row(user, api_key, sandbox):
    # A generation-B style id (a UUID) reached a baseline key's list: the baseline DELETE cannot take it.
    raw = dict(_vm(sandbox, status="ACTIVE"), id=str(uuid.uuid4()))
    meta = services.RequestMeta("alice", str(user.pk), "127.0.0.1", "pytest", "req-1")
    with pytest.raises(services.DeletionRefused, match="Nothing was sent"):
        services.vm_delete(user=user, api_key=api_key, vm=parse_vm(raw), meta=meta)
    assert deletion_rows().count() == 0 and sandbox.state.request_count(method="DELETE") == 0


def test_words_with_extra_spaces_confirm_as_shown(alice_client, api_key, sandbox):
    vm = sandbox.state.add_vm(KEY, name="web  01 ", status="ACTIVE")
    response = _delete(alice_client, api_key, vm, typed="web 01")
    assert response.status_code == 200 and sandbox.state.request_count(method="DELETE") == 1


def test_an_unknown_outcome_never_advises_trying_again(alice_client, api_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 60
    vm = _vm(sandbox, status="ACTIVE")
    alice_client.get(reverse("vms:list"))
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    _delete(alice_client, api_key, vm)
    outcome = deletion_rows().get(kind="outcome")
    assert outcome.outcome == "unknown"
    assert "try again" not in outcome.message.lower() and "before deleting again" in outcome.message
