"""Changing a VM's open ports (the 2025 API): the list replaces the VM's whole list, the form starts from the
current ports, and closing 22/tcp asks for an explicit confirmation; each role, each fault, audited."""

import itertools

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.factories import WRITE_FAULTS, make_team, meta_for, short_timeouts, signed_in
from vms import selectors, vm_actions
from vms.models import DeletionEvent

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}
_ACCOUNTS = itertools.count()


def attempts():
    return DeletionEvent.objects.filter(action=DeletionEvent.Action.VM_PORTS).order_by("pk")


def patches(sandbox):
    return sandbox.state.request_count(method="PATCH")


@pytest.fixture
def world(user, sandbox, django_user_model):
    number = next(_ACCOUNTS)
    secrets = {
        "a": f"sbx_a_ports_{number:04d}",
        "b": f"sbx_b_ports_{number:04d}",
        "baseline": f"sbx_ports_{number:04d}",
    }
    team = make_team(user, sandbox, django_user_model, secrets=secrets, vm_count=3, label="Ports")
    return team


def first_vm(sandbox, world, generation="a"):
    return sandbox.state.vms_for(world["secrets"][generation])[0]


def ports_of(sandbox, world, vm_id):
    vm = next(vm for vm in sandbox.state.vms_for(world["secrets"]["a"]) if vm["id"] == vm_id)
    return vm["ports"]


def post_ports(world, sandbox, vm, ports, *, role="owner", generation="a", confirm=False, headers=HX):
    sandbox.state.reset_counts()
    url = reverse("vms:ports", args=[world["keys"][generation].pk, vm["id"]])
    data = {"ports": ports, **({"confirm_ssh": "yes"} if confirm else {})}
    return signed_in(world["people"][role]).post(url, data, **headers)


@pytest.mark.parametrize("role", ["owner", "operator"])
def test_the_new_list_replaces_the_old_one_once_and_is_audited_before_and_after(world, sandbox, role):
    vm = first_vm(sandbox, world)
    before = vm["ports"]
    assert {"port": 22, "protocol": "tcp"} in before
    response = post_ports(world, sandbox, vm, "22/tcp, 8080, 51820/udp", role=role)
    assert response.status_code == 200 and 'data-outcome="succeeded"' in response.content.decode()
    assert patches(sandbox) == 1
    after = [
        {"port": 22, "protocol": "tcp"},
        {"port": 8080, "protocol": "tcp"},
        {"port": 51820, "protocol": "udp"},
    ]
    assert ports_of(sandbox, world, vm["id"]) == after
    intent, outcome = attempts()
    assert (
        intent.details == {"before": {"ports": before}, "after": {"ports": after}}
        and outcome.outcome == "succeeded"
    )


def test_the_form_starts_from_the_current_ports_and_only_for_owners_and_operators(world, sandbox):
    vm = first_vm(sandbox, world)
    url = reverse("vms:detail", args=[world["keys"]["a"].pk, vm["id"]])
    current = ", ".join(f"{port['port']}/{port['protocol']}" for port in vm["ports"])
    for role, offered in (("owner", True), ("operator", True), ("viewer", False)):
        body = signed_in(world["people"][role]).get(url).content.decode()
        assert (f'name="ports" value="{current}"' in body) is offered, role


@pytest.mark.parametrize("generation", ["b", "baseline"])
def test_apis_without_open_ports_offer_no_form_and_refuse(world, sandbox, generation):
    vm = first_vm(sandbox, world, generation)
    body = (
        signed_in(world["people"]["owner"])
        .get(reverse("vms:detail", args=[world["keys"][generation].pk, vm["id"]]))
        .content.decode()
    )
    assert 'id="ports-form"' not in body
    response = post_ports(world, sandbox, vm, "22/tcp", generation=generation)
    assert response.status_code == 400 and "cannot change open ports" in response.content.decode()
    assert patches(sandbox) == 0 and not attempts().exists()


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("stranger", 404)])
def test_a_viewer_is_refused_and_a_stranger_finds_nothing_and_nothing_is_sent(world, sandbox, role, status):
    vm = first_vm(sandbox, world)
    assert post_ports(world, sandbox, vm, "22/tcp, 8080/tcp", role=role).status_code == status
    assert patches(sandbox) == 0 and not attempts().exists()


def test_closing_ssh_asks_for_a_confirmation_first_and_sends_nothing_until_given(world, sandbox):
    vm = first_vm(sandbox, world)
    response = post_ports(world, sandbox, vm, "80/tcp")
    body = response.content.decode()
    assert response.status_code == 400 and "you may lock yourself out of SSH" in body
    assert 'name="confirm_ssh"' in body and 'name="ports" value="80/tcp"' in body
    assert patches(sandbox) == 0 and not attempts().exists()
    assert ports_of(sandbox, world, vm["id"]) == vm["ports"]

    confirmed = post_ports(world, sandbox, vm, "80/tcp", confirm=True)
    assert confirmed.status_code == 200 and patches(sandbox) == 1
    assert ports_of(sandbox, world, vm["id"]) == [{"port": 80, "protocol": "tcp"}]


def test_closing_ssh_without_javascript_is_a_confirmation_page(world, sandbox):
    vm = first_vm(sandbox, world)
    response = post_ports(world, sandbox, vm, "", headers={})
    assert (
        response.status_code == 400
        and "I understand: I may lock myself out of SSH." in response.content.decode()
    )
    assert patches(sandbox) == 0


@pytest.mark.parametrize("bad", ["22/tcpx", "0", "65536/udp", "ssh", "22/icmp"])
def test_bad_ports_are_a_clear_message_and_nothing_is_sent(world, sandbox, bad):
    vm = first_vm(sandbox, world)
    response = post_ports(world, sandbox, vm, f"22/tcp, {bad}")
    assert response.status_code == 400 and "is not a port" in response.content.decode()
    assert patches(sandbox) == 0 and not attempts().exists()


def test_the_same_list_again_sends_nothing(world, sandbox):
    vm = first_vm(sandbox, world)
    same = " ".join(f"{port['port']}/{port['protocol']}" for port in reversed(vm["ports"]))
    response = post_ports(world, sandbox, vm, same)
    assert response.status_code == 400 and "already" in response.content.decode()
    assert patches(sandbox) == 0


def test_clean_ports_reads_the_forms_spellings():
    assert vm_actions.clean_ports(" 22 ,80/TCP;51820/udp 22/tcp ") == [
        {"port": 22, "protocol": "tcp"},
        {"port": 80, "protocol": "tcp"},
        {"port": 51820, "protocol": "udp"},
    ]
    assert vm_actions.clean_ports("") == []
    with pytest.raises(ValidationError):
        vm_actions.clean_ports(", ".join(str(port) for port in range(1, 103)))


@pytest.mark.parametrize("fault", WRITE_FAULTS)
def test_a_change_under_each_fault_ends_with_its_outcome_and_is_never_retried(
    world, sandbox, settings, fault
):
    short_timeouts(settings)
    faults, expected = WRITE_FAULTS[fault]
    owner, api_key = world["people"]["owner"], world["keys"]["a"]
    vm = selectors.vm_for_user(user=owner, key_id=api_key.pk, vm_id=first_vm(sandbox, world)["id"]).vm
    sandbox.state.reset_counts()
    sandbox.state.set_faults(key=world["secrets"]["a"], **faults)
    try:
        result = vm_actions.vm_ports_set(
            user=owner,
            api_key=api_key,
            vm=vm,
            ports=[{"port": 22, "protocol": "tcp"}, {"port": 9999, "protocol": "tcp"}],
            meta=meta_for(owner),
        )
    finally:
        sandbox.state.clear_faults(world["secrets"]["a"])
    assert result.outcome == expected and patches(sandbox) == 1
    intent, outcome = attempts()
    assert outcome.outcome == expected and intent.correlation_id == outcome.correlation_id
