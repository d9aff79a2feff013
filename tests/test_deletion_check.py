"""*Check now*: a deletion whose outcome is unknown, settled by asking Fluence, by whom, with what record;
the selector that tells the VM list which VMs have one; and the view around it."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import OPS_KEY
from tests.test_reconcile import GONE_VM, add_outcome, make_intent, outcomes_of
from vms import audit, services, vm_cache
from vms.models import KeyShare

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}


@pytest.fixture
def unknown_attempt(api_key):
    """A deletion of a VM that Fluence no longer lists, ten minutes ago, whose outcome was unknown."""
    intent = make_intent(api_key, vm_id=GONE_VM)
    add_outcome(intent, "unknown")
    return intent


def _member(django_user_model, api_key, username: str, role: str):
    person = django_user_model.objects.create_user(username=username, password="pw-123456789")
    group = Group.objects.create(name=f"{role}s")
    person.groups.add(group)
    KeyShare.objects.create(api_key=api_key, group=group, role=role)
    return person


# --- the service -------------------------------------------------------------------------------------------


def test_a_viewer_is_refused_and_nothing_is_asked_or_recorded(
    django_user_model, api_key, sandbox, unknown_attempt
):
    viewer = _member(django_user_model, api_key, "vic", "viewer")
    sandbox.state.reset_counts()
    with pytest.raises(services.NotAllowed):
        services.deletion_check(user=viewer, api_key=api_key, vm_id=GONE_VM)
    assert sandbox.state.request_count() == 0
    assert [row.outcome for row in outcomes_of(unknown_attempt)] == ["unknown"]


def test_an_operator_settles_a_vm_that_has_gone_as_succeeded(django_user_model, api_key, unknown_attempt):
    operator = _member(django_user_model, api_key, "otto", "operator")
    settlement = services.deletion_check(user=operator, api_key=api_key, vm_id=GONE_VM)
    assert settlement.outcome == "succeeded" and settlement.appended
    unknown, row = outcomes_of(unknown_attempt)
    assert (unknown.outcome, row.outcome, row.source) == ("unknown", "succeeded", "check")
    assert row.message == "VM no longer listed by Fluence (checked by otto)"
    # The attempt stays the attempt: who asked for the deletion, which key and VM (copied, never changed).
    assert (row.actor_username, row.key_id, row.vm_id) == ("alice", str(api_key.pk), GONE_VM)
    assert vm_cache.is_deleting(api_key.pk, GONE_VM)
    assert audit.unknown_deletions(key_ids=[api_key.pk]) == {}


def test_the_owner_may_check_and_a_vm_still_listed_soon_after_is_left_for_later(user, api_key, sandbox):
    present = sandbox.state.add_vm(OPS_KEY, name="still-here", status="ACTIVE")
    intent = make_intent(api_key, vm_id=present["id"], minutes_ago=12)
    add_outcome(intent, "unknown", minutes_ago=11)
    settlement = services.deletion_check(user=user, api_key=api_key, vm_id=present["id"])
    assert settlement.outcome == services.PENDING and not settlement.appended
    assert "still lists the VM 12 min after the request" in settlement.message
    assert [row.outcome for row in outcomes_of(intent)] == ["unknown"]
    assert list(audit.unknown_deletions(key_ids=[api_key.pk])) == [(api_key.pk, present["id"].lower())]


def test_a_vm_still_listed_an_hour_later_is_settled_as_failed(user, api_key, sandbox):
    present = sandbox.state.add_vm(OPS_KEY, name="still-here", status="ACTIVE")
    intent = make_intent(api_key, vm_id=present["id"], minutes_ago=75)
    add_outcome(intent, "unknown", minutes_ago=74)
    settlement = services.deletion_check(user=user, api_key=api_key, vm_id=present["id"])
    assert settlement.outcome == "failed"
    assert outcomes_of(intent)[-1].message == (
        "VM still listed by Fluence 75 minutes after the request (checked by alice)"
    )


def test_fluence_failing_records_nothing(user, api_key, sandbox, unknown_attempt, settings):
    settings.FLUENCE_CACHE_SECONDS = 0
    sandbox.state.set_faults(key=OPS_KEY, error_rate=1, error_status=503)
    with pytest.raises(services.CheckFailed, match="Nothing was recorded"):
        services.deletion_check(user=user, api_key=api_key, vm_id=GONE_VM)
    assert [row.outcome for row in outcomes_of(unknown_attempt)] == ["unknown"]


def test_an_attempt_already_settled_is_not_asked_again(user, api_key, sandbox, unknown_attempt):
    add_outcome(unknown_attempt, "succeeded", minutes_ago=1)
    sandbox.state.reset_counts()
    settlement = services.deletion_check(user=user, api_key=api_key, vm_id=GONE_VM)
    assert settlement.outcome == services.SETTLED
    assert sandbox.state.request_count() == 0
    assert len(outcomes_of(unknown_attempt)) == 2


def test_the_command_and_a_check_share_one_answer(user, api_key, unknown_attempt):
    from tests.test_reconcile import reconcile

    services.deletion_check(user=user, api_key=api_key, vm_id=GONE_VM)
    output = reconcile()
    assert "Checked 0 attempt(s)" in output  # settled by the check: the command leaves it alone
    assert [row.source for row in outcomes_of(unknown_attempt)] == ["portal", "check"]


# --- the selector the VM list reads ------------------------------------------------------------------------


def test_only_the_latest_attempt_with_a_latest_outcome_unknown_counts(api_key):
    settled = make_intent(api_key, vm_id="0x" + "1" * 40, minutes_ago=30)
    add_outcome(settled, "unknown", minutes_ago=29)
    add_outcome(settled, "succeeded", minutes_ago=20)  # reconciled since
    superseded = make_intent(api_key, vm_id="0x" + "2" * 40, minutes_ago=30)
    add_outcome(superseded, "unknown", minutes_ago=29)
    retried = make_intent(api_key, vm_id="0x" + "2" * 40, minutes_ago=5)  # a later attempt: it counts
    add_outcome(retried, "failed", minutes_ago=4)
    open_one = make_intent(api_key, vm_id="0x" + "3" * 40, minutes_ago=30)
    add_outcome(open_one, "unknown", minutes_ago=29)
    other_key = make_intent(api_key, vm_id="0x" + "4" * 40)
    found = audit.unknown_deletions(key_ids=[api_key.pk])
    assert list(found) == [(api_key.pk, "0x" + "3" * 40)]
    assert found[(api_key.pk, "0x" + "3" * 40)].correlation_id == open_one.correlation_id
    assert audit.unknown_deletions(key_ids=[api_key.pk + 1]) == {}
    assert other_key.kind == "intent"


def test_the_selector_is_one_query_however_many_vms(api_key):
    for index in range(20):
        intent = make_intent(api_key, vm_id=f"0x{index:040x}")
        add_outcome(intent, "unknown")
    with CaptureQueriesContext(connection) as queries:
        found = audit.unknown_deletions(key_ids=[api_key.pk])
    assert len(found) == 20
    assert len(queries) == 1


# --- the view ----------------------------------------------------------------------------------------------


def _check_url(api_key, vm_id=GONE_VM, **query):
    url = reverse("vms:deletion_check", args=[api_key.pk, vm_id])
    return url + ("?in=row" if query.get("row") else "")


def test_the_view_settles_in_place_and_refreshes_the_pages(alice_client, api_key, unknown_attempt):
    response = alice_client.post(_check_url(api_key), **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Fluence no longer lists this VM" in body and 'class="notice deletion-unknown' in body
    assert "vms-changed" in response["HX-Trigger"]
    assert outcomes_of(unknown_attempt)[-1].source == "check"


def test_the_row_gets_a_short_answer(alice_client, api_key, unknown_attempt):
    body = alice_client.post(_check_url(api_key, row=True), **HX).content.decode()
    assert '<span class="deletion-unknown is-checked"' in body and ">Deleted<" in body


def test_without_javascript_it_goes_back_to_the_vm_page_with_a_message(
    alice_client, api_key, unknown_attempt
):
    response = alice_client.post(_check_url(api_key))
    assert response.status_code == 302
    assert response["Location"] == reverse("vms:detail", args=[api_key.pk, GONE_VM])


def test_a_viewer_gets_403_and_a_stranger_404(
    client, django_user_model, api_key, unknown_attempt, other_user
):
    viewer = _member(django_user_model, api_key, "vic", "viewer")
    client.force_login(viewer)
    assert client.post(_check_url(api_key), **HX).status_code == 403
    client.force_login(other_user)
    assert client.post(_check_url(api_key), **HX).status_code == 404
    client.logout()
    assert "/accounts/login/" in client.post(_check_url(api_key), **HX)["HX-Redirect"]  # to sign in
    assert [row.outcome for row in outcomes_of(unknown_attempt)] == ["unknown"]


def test_a_get_checks_nothing(alice_client, api_key, unknown_attempt):
    assert alice_client.get(_check_url(api_key)).status_code == 405
    assert len(outcomes_of(unknown_attempt)) == 1


def test_the_delete_dialog_names_the_earlier_attempt(alice_client, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    intent = make_intent(api_key, vm_id=vm["id"], minutes_ago=3)
    add_outcome(intent, "unknown", minutes_ago=3)
    body = alice_client.get(reverse("vms:delete", args=[api_key.pk, vm["id"]]), **HX).content.decode()
    when = (intent.created_at).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert "An earlier deletion of this VM on <time datetime=" in body and when in body
    assert "check it before deleting again" in body and "Check now" in body


def test_the_delete_dialog_says_nothing_without_an_unknown_attempt(alice_client, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    body = alice_client.get(reverse("vms:delete", args=[api_key.pk, vm["id"]]), **HX).content.decode()
    assert "unknown outcome" not in body and "Check now" not in body


def test_the_list_row_and_the_vm_page_show_an_unknown_outcome(alice_client, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    intent = make_intent(api_key, vm_id=vm["id"], minutes_ago=3)
    add_outcome(intent, "unknown", minutes_ago=3)
    listing = alice_client.get(reverse("vms:list")).content.decode()
    row = listing.split(f'data-vm-id="{vm["id"]}"')[1].split("</tr>")[0]
    assert "Outcome unknown" in row and "deletion-check/?in=row" in row
    page = alice_client.get(reverse("vms:detail", args=[api_key.pk, vm["id"]])).content.decode()
    assert "has an unknown outcome: Fluence did not confirm it" in page
    assert f'action="{reverse("vms:deletion_check", args=[api_key.pk, vm["id"]])}"' in page


def test_a_viewer_sees_the_unknown_outcome_without_check_now(client, django_user_model, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    add_outcome(make_intent(api_key, vm_id=vm["id"], minutes_ago=3), "unknown", minutes_ago=3)
    client.force_login(_member(django_user_model, api_key, "vic", "viewer"))
    page = client.get(reverse("vms:detail", args=[api_key.pk, vm["id"]])).content.decode()
    assert "has an unknown outcome" in page and "Check now" not in page
    assert "Check now" not in client.get(reverse("vms:list")).content.decode()


def test_an_outcome_recorded_while_fluence_was_asked_is_not_doubled(
    user, api_key, unknown_attempt, monkeypatch
):
    listed = services.deletion_listed_vm_ids

    def answered_meanwhile(key):
        add_outcome(unknown_attempt, "succeeded", minutes_ago=0)  # reconcile_deletions, a moment earlier
        return listed(key)

    monkeypatch.setattr(services, "deletion_listed_vm_ids", answered_meanwhile)
    settlement = services.deletion_check(user=user, api_key=api_key, vm_id=GONE_VM)
    assert settlement.outcome == services.SETTLED and not settlement.appended
    assert [row.outcome for row in outcomes_of(unknown_attempt)] == ["unknown", "succeeded"]
