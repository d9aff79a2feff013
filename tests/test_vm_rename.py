"""Renaming a VM: on each API generation that can, for each role, under each fault of the sandbox, audited
before and after the one call it sends."""

import itertools

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.factories import WRITE_FAULTS, make_team, short_timeouts, signed_in
from vms.models import DeletionEvent

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
# Fresh sandbox accounts for every test: a request that outlived its test (a timeout) lands on its own.
_ACCOUNTS = itertools.count()
KEYS: dict[str, str] = {}
CHOSEN: dict[str, str] = {}  # generation -> the id of the VM a test renames
RUNNING = {"b": "launched", "a": "ACTIVE", "baseline": "ACTIVE"}
NEW_NAME = "renamed-vm-7"


def renames():
    return DeletionEvent.objects.filter(action=DeletionEvent.Action.VM_RENAME).order_by("pk")


def patches(sandbox):
    return sandbox.state.request_count(method="PATCH")


def name_of(vm: dict) -> str:
    return vm.get("name", vm.get("vmName"))


@pytest.fixture
def world(user, sandbox, django_user_model, client):
    """Alice's key per generation, shared with the group "ops": otto operates it, vera views it; sam is a
    stranger. Each person comes with a signed-in client."""
    owner_perm = Permission.objects.get(codename="share_apikey")
    user.user_permissions.add(owner_perm)
    number = next(_ACCOUNTS)
    KEYS.update(
        {
            "a": f"sbx_a_rename_account_{number:04d}",
            "b": f"sbx_b_rename_account_{number:04d}",
            "baseline": f"sbx_rename_baseline_{number:04d}",
        }
    )
    team = make_team(user, sandbox, django_user_model, secrets=KEYS, vm_count=3, label="Rename")
    # The VM each test renames, running (the sandbox's own VMs have random statuses, and today's API
    # refuses to rename a terminated one).
    CHOSEN.update(
        {
            generation: sandbox.state.add_vm(secret, name="rename-me", status=RUNNING[generation])["id"]
            for generation, secret in KEYS.items()
        }
    )
    return team


def _vm(sandbox, generation):
    """The VM the test renames, as the sandbox holds it now."""
    return next(vm for vm in sandbox.state.vms_for(KEYS[generation]) if vm["id"] == CHOSEN[generation])


def _rename(world, sandbox, generation, role="owner", name=NEW_NAME, headers=HX):
    api_key = world["keys"][generation]
    vm = _vm(sandbox, generation)
    sandbox.state.reset_counts()
    person_client = signed_in(world["people"][role])
    url = reverse("vms:rename", args=[api_key.pk, vm["id"]])
    return vm, person_client.post(url, {"name": name}, **headers)


@pytest.mark.parametrize("generation", ["a", "b"])
@pytest.mark.parametrize("role", ["owner", "operator"])
def test_the_owner_and_an_operator_rename_once_and_both_sides_are_audited(world, sandbox, generation, role):
    vm, response = _rename(world, sandbox, generation, role)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-outcome="succeeded"' in body and "Fluence renamed the VM." in body
    assert "vms-changed" in response["HX-Trigger-After-Swap"]
    assert patches(sandbox) == 1
    assert name_of(_vm(sandbox, generation)) == NEW_NAME
    intent, outcome = renames()
    person = world["people"][role]
    assert (intent.kind, outcome.kind, outcome.outcome) == ("intent", "outcome", "succeeded")
    assert intent.correlation_id == outcome.correlation_id and intent.actor_username == person.username
    assert intent.details == {"before": {"name": name_of(vm)}, "after": {"name": NEW_NAME}}
    assert intent.vm_id == vm["id"] and intent.request_id and outcome.request_id == intent.request_id


@pytest.mark.parametrize("generation", ["a", "b", "baseline"])
@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("stranger", 404)])
def test_a_viewer_is_refused_and_a_stranger_finds_nothing_and_nothing_is_sent(
    world, sandbox, generation, role, status
):
    vm, response = _rename(world, sandbox, generation, role)
    assert response.status_code == status
    assert patches(sandbox) == 0 and not renames().exists()
    assert name_of(_vm(sandbox, generation)) == name_of(vm)


def test_the_baseline_api_cannot_rename_and_says_so(world, sandbox):
    _, response = _rename(world, sandbox, "baseline")
    assert response.status_code == 400 and "cannot rename VMs" in response.content.decode()
    assert patches(sandbox) == 0 and not renames().exists()


@pytest.mark.parametrize("bad", ["Upper-Case", "", "x" * 26, "with space"])
def test_a_name_todays_api_would_refuse_is_refused_before_anything_is_sent(world, sandbox, bad):
    _, response = _rename(world, sandbox, "b", name=bad)
    assert response.status_code == 400 and "1 to 25 lowercase letters" in response.content.decode()
    assert patches(sandbox) == 0 and not renames().exists()


def test_the_same_name_again_sends_nothing(world, sandbox):
    vm = _vm(sandbox, "b")
    _, response = _rename(world, sandbox, "b", name=name_of(vm))
    assert response.status_code == 400 and "already has this name" in response.content.decode()
    assert patches(sandbox) == 0


def test_without_htmx_the_outcome_is_a_message_on_the_vms_page(world, sandbox):
    vm, response = _rename(world, sandbox, "a", headers={})
    assert response.status_code == 302
    assert response["Location"] == reverse("vms:detail", args=[world["keys"]["a"].pk, vm["id"]])


@pytest.mark.parametrize("generation", ["a", "b"])
def test_the_page_offers_the_form_to_owners_and_operators_only(world, sandbox, generation):
    api_key = world["keys"][generation]
    url = reverse("vms:detail", args=[api_key.pk, _vm(sandbox, generation)["id"]])
    for role, offered in (("owner", True), ("operator", True), ("viewer", False)):
        body = signed_in(world["people"][role]).get(url).content.decode()
        assert ('id="rename-form"' in body) is offered, role


def test_the_page_offers_no_rename_on_the_baseline_api(world, sandbox):
    api_key = world["keys"]["baseline"]
    url = reverse("vms:detail", args=[api_key.pk, _vm(sandbox, "baseline")["id"]])
    assert 'id="rename-form"' not in signed_in(world["people"]["owner"]).get(url).content.decode()


# --- faults -----------------------------------------------------------------------------------------------


@pytest.fixture
def fast_timeouts(settings):
    short_timeouts(settings)


@pytest.mark.parametrize("generation", ["a", "b"])
@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_a_rename_under_each_fault_ends_with_its_outcome_and_is_never_retried(
    world, sandbox, fast_timeouts, generation, fault
):
    faults, expected = WRITE_FAULTS[fault]
    vm = _vm(sandbox, generation)
    signed_in(world["people"]["owner"]).get(
        reverse("vms:detail", args=[world["keys"][generation].pk, vm["id"]])
    )
    sandbox.state.set_faults(key=KEYS[generation], **faults)
    try:
        _, response = _rename(world, sandbox, generation)
    finally:
        sandbox.state.clear_faults(KEYS[generation])
    assert response.status_code == 200
    assert f'data-outcome="{expected}"' in response.content.decode()
    assert patches(sandbox) == 1  # never retried
    intent, outcome = renames()
    assert intent.kind == "intent" and outcome.outcome == expected and outcome.message
    if fault == "429":
        # The key cools down: a second try sends nothing.
        _, again = _rename(world, sandbox, generation)
        assert again.status_code == 400 and "slow down" in again.content.decode()
        assert patches(sandbox) == 0


def test_a_vm_in_transition_answers_406_and_the_rename_failed(world, sandbox):
    vm = _vm(sandbox, "b")
    sandbox.state.deletion_delay = 60
    sandbox.state.terminate_vm(KEYS["b"], vm["id"])  # terminating: Fluence refuses the rename with 406
    _, response = _rename(world, sandbox, "b")
    assert response.status_code == 200 and 'data-outcome="failed"' in response.content.decode()
    (_, outcome) = renames()
    assert outcome.outcome == "failed" and outcome.upstream_status == 406
    assert name_of(_vm(sandbox, "b")) == name_of(vm)


def test_a_rename_changes_the_polled_tables_version_and_shows_at_the_next_poll(
    world, sandbox, settings, monkeypatch
):
    from types import SimpleNamespace

    from vms import table_version

    settings.FLUENCE_CACHE_SECONDS = 600  # the list stays fresh: only the rename may change the table
    frozen = 1_800_000_000 * 60 + 5  # the table's minute does not turn during the test
    monkeypatch.setattr(table_version, "time", SimpleNamespace(time=lambda: frozen))
    owner = signed_in(world["people"]["owner"])
    first = owner.get(reverse("vms:list"), **HX)
    version = first["X-Vm-Table-Version"]
    unchanged = owner.get(reverse("vms:list"), HTTP_X_VM_TABLE_VERSION=version, **HX)
    assert unchanged.status_code == 204
    _rename(world, sandbox, "b")
    poll = owner.get(reverse("vms:list"), HTTP_X_VM_TABLE_VERSION=version, **HX)
    assert poll.status_code == 200 and NEW_NAME in poll.content.decode()


def test_an_unknown_rename_is_not_taken_for_an_unknown_deletion(world, sandbox, fast_timeouts, settings):
    settings.FLUENCE_CACHE_SECONDS = 60
    vm = _vm(sandbox, "b")
    owner = signed_in(world["people"]["owner"])
    owner.get(reverse("vms:list"))  # the list, read while Fluence answered
    sandbox.state.set_faults(key=KEYS["b"], drop=True)
    try:
        _, response = _rename(world, sandbox, "b")
    finally:
        sandbox.state.clear_faults(KEYS["b"])
    assert 'data-outcome="unknown"' in response.content.decode()
    listing = owner.get(reverse("vms:list"), **HX).content.decode()
    row = listing[listing.index(f'data-vm-id="{vm["id"]}"') :]
    assert "deletion-unknown" not in row[: row.index("</tr>")]
    page = owner.get(reverse("vms:detail", args=[world["keys"]["b"].pk, vm["id"]])).content.decode()
    assert "Check now" not in page
    assert "asked Fluence to rename it (name: " in page  # the VM's history names the rename
