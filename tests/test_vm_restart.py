"""Restarting and soft-rebooting a VM (today's API only, where Fluence lists the action as allowed): for each
role, under each fault, audited, and the VM shown in transition (polled faster) while Fluence works."""

import itertools

import pytest
from django.urls import reverse

from tests.factories import WRITE_FAULTS, make_team, meta_for, short_timeouts, signed_in
from vms import vm_actions
from vms.models import DeletionEvent

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
_ACCOUNTS = itertools.count()  # fresh accounts per test: a request that outlived its test lands on its own
KIND_ACTION = {"restart": "vm_restart", "softreboot": "vm_soft_reboot"}


def attempts(action):
    return DeletionEvent.objects.filter(action=action).order_by("pk")


def posts(sandbox):
    return sandbox.state.request_count(method="POST")


@pytest.fixture
def world(user, sandbox, django_user_model, settings):
    settings.FLUENCE_CACHE_SECONDS = 60
    number = next(_ACCOUNTS)
    secrets = {"b": f"sbx_b_restart_{number:04d}", "a": f"sbx_a_restart_{number:04d}"}
    team = make_team(user, sandbox, django_user_model, secrets=secrets, vm_count=12, label="Restart")
    sandbox.state.restart_delay = 60  # restarting for the whole test
    yield team
    sandbox.state.restart_delay = 3.0


def vm_where(sandbox, world, generation="b", *, allowed=True):
    """A VM of the account whose allowedActions list restart (or, with allowed=False, lack it)."""
    for vm in sandbox.state.vms_for(world["secrets"][generation]):
        if generation != "b" or ("restart" in vm.get("allowedActions", [])) is allowed:
            return vm
    raise AssertionError("no such VM in the sandbox account")


def restart(world, sandbox, vm, *, role="owner", kind="restart", generation="b", headers=HX):
    sandbox.state.reset_counts()
    url = reverse("vms:restart", args=[world["keys"][generation].pk, vm["id"]])
    return signed_in(world["people"][role]).post(url, {"kind": kind}, **headers)


def status_of(sandbox, world, vm_id):
    return next(vm for vm in sandbox.state.vms_for(world["secrets"]["b"]) if vm["id"] == vm_id)["status"]


@pytest.mark.parametrize("kind", ["restart", "softreboot"])
@pytest.mark.parametrize("role", ["owner", "operator"])
def test_the_owner_and_an_operator_restart_once_audited(world, sandbox, kind, role):
    vm = vm_where(sandbox, world)
    response = restart(world, sandbox, vm, role=role, kind=kind)
    assert response.status_code == 200 and 'data-outcome="succeeded"' in response.content.decode()
    path = f"/v2/vms/{vm['id']}/{kind}"
    assert sandbox.state.request_count(method="POST", path=path) == 1 and posts(sandbox) == 1
    assert (
        status_of(sandbox, world, vm["id"]) == {"restart": "restarting", "softreboot": "softRebooting"}[kind]
    )
    intent, outcome = attempts(KIND_ACTION[kind])
    assert intent.actor_username == world["people"][role].username and outcome.outcome == "succeeded"
    assert intent.details == {"status_before": vm["status"]}


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("stranger", 404)])
def test_a_viewer_is_refused_and_a_stranger_finds_nothing_and_nothing_is_sent(world, sandbox, role, status):
    vm = vm_where(sandbox, world)
    assert restart(world, sandbox, vm, role=role).status_code == status
    assert posts(sandbox) == 0 and not attempts("vm_restart").exists()
    assert status_of(sandbox, world, vm["id"]) == vm["status"]


def test_the_2025_api_cannot_restart_and_says_so(world, sandbox):
    vm = vm_where(sandbox, world, "a")
    response = restart(world, sandbox, vm, generation="a")
    assert response.status_code == 400 and "cannot restart" in response.content.decode()
    assert posts(sandbox) == 0 and not attempts("vm_restart").exists()


def test_a_vm_whose_allowed_actions_lack_restart_is_refused_before_anything_is_sent(world, sandbox):
    vm = vm_where(sandbox, world, allowed=False)
    response = restart(world, sandbox, vm)
    assert response.status_code == 400 and "does not allow to restart" in response.content.decode()
    assert posts(sandbox) == 0 and not attempts("vm_restart").exists()


def test_a_vm_already_in_transition_answers_406_and_the_restart_failed(world, sandbox, user):
    vm_row = vm_where(sandbox, world)
    api_key = world["keys"]["b"]
    from vms import selectors

    stale = selectors.vm_for_user(user=user, key_id=api_key.pk, vm_id=vm_row["id"]).vm  # read while launched
    sandbox.state.restart_vm_b(world["secrets"]["b"], vm_row["id"])  # someone else restarted it meanwhile
    result = vm_actions.vm_restart(user=user, api_key=api_key, vm=stale, meta=meta_for(user))
    assert result.outcome == "failed"
    (_, outcome) = attempts("vm_restart")
    assert outcome.outcome == "failed" and outcome.upstream_status == 406


def test_the_page_offers_the_buttons_fluence_allows_to_owners_and_operators_only(world, sandbox):
    vm = vm_where(sandbox, world)
    url = reverse("vms:detail", args=[world["keys"]["b"].pk, vm["id"]])
    for role, offered in (("owner", True), ("operator", True), ("viewer", False)):
        body = signed_in(world["people"][role]).get(url).content.decode()
        assert ('id="restart-button"' in body) is offered, role
        assert ('id="softreboot-button"' in body) is offered, role
    busy = vm_where(sandbox, world, allowed=False)
    body = (
        signed_in(world["people"]["owner"])
        .get(reverse("vms:detail", args=[world["keys"]["b"].pk, busy["id"]]))
        .content.decode()
    )
    assert 'id="restart-button"' not in body


def test_while_fluence_restarts_it_the_vm_is_shown_in_transition_and_polled_faster(world, sandbox, settings):
    vm = vm_where(sandbox, world)
    owner = signed_in(world["people"]["owner"])
    owner.get(reverse("vms:list"))  # the list is cached (FLUENCE_CACHE_SECONDS)
    assert restart(world, sandbox, vm).status_code == 200
    status = owner.get(reverse("vms:detail_status", args=[world["keys"]["b"].pk, vm["id"]]), **HX)
    body = status.content.decode()
    assert "Restarting" in body and f"every {settings.VM_POLL_FAST_SECONDS}s" in body
    assert 'id="restart-button"' not in body  # Fluence allows nothing while it restarts


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_a_restart_under_each_fault_ends_with_its_outcome_and_is_never_retried(
    world, sandbox, settings, fault
):
    short_timeouts(settings)
    faults, expected = WRITE_FAULTS[fault]
    vm = vm_where(sandbox, world)
    owner, api_key = world["people"]["owner"], world["keys"]["b"]
    from vms import selectors

    lookup = selectors.vm_for_user(user=owner, key_id=api_key.pk, vm_id=vm["id"])
    sandbox.state.reset_counts()
    sandbox.state.set_faults(key=world["secrets"]["b"], **faults)
    try:
        result = vm_actions.vm_restart(user=owner, api_key=api_key, vm=lookup.vm, meta=meta_for(owner))
    finally:
        sandbox.state.clear_faults(world["secrets"]["b"])
    assert result.outcome == expected and result.message
    assert sandbox.state.request_count(method="POST", path=f"/v2/vms/{vm['id']}/restart") == 1
    intent, outcome = attempts("vm_restart")
    assert intent.correlation_id == outcome.correlation_id and outcome.outcome == expected
