"""The sandbox's VM actions, spoken over HTTP as Fluence speaks them: renames and open ports on the 2025 API
(`PATCH /vms/v3`, 204), renames, restarts and soft reboots on today's API; bad requests change nothing."""

import pytest
import requests

from tests.test_sandbox_b import Clock  # a clock the test moves by hand
from vms.sandbox import SandboxServer, SandboxState

A_KEY, B_KEY, BASE_KEY = "sbx_a_actions_account", "sbx_b_actions_account", "sbx_actions_baseline"
TIMEOUT = 5


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def server(clock):
    state = SandboxState(preload_demo=False, clock=clock)
    with SandboxServer(port=0, state=state) as srv:
        for key in (A_KEY, B_KEY, BASE_KEY):
            srv.state.configure_account(key, vm_count=12)
        yield srv


def call(server, method, path, key, **kwargs):
    return requests.request(method, server.url + path, headers={"X-API-KEY": key}, timeout=TIMEOUT, **kwargs)


def vm_of(server, key, vm_id):
    return next(vm for vm in server.state.vms_for(key) if vm["id"] == vm_id)


def test_a_patch_renames_and_replaces_the_open_ports_on_the_2025_api(server):
    vm = server.state.vms_for(A_KEY)[0]
    ports = [{"port": 8080, "protocol": "tcp"}]
    answer = call(
        server,
        "PATCH",
        "/vms/v3",
        A_KEY,
        json={"updates": [{"id": vm["id"], "vmName": "new", "openPorts": ports}]},
    )
    assert answer.status_code == 204 and answer.content == b""
    after = vm_of(server, A_KEY, vm["id"])
    assert after["vmName"] == "new" and after["ports"] == ports  # replaced: 22/tcp is gone
    listed = next(item for item in call(server, "GET", "/vms/v3", A_KEY).json() if item["id"] == vm["id"])
    assert listed["vmName"] == "new" and listed["ports"] == ports


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"updates": []},
        {"updates": [{"id": "0x12"}]},
        {"updates": [{"id": "0x0000000000000000000000000000000000000001"}]},
        {
            "updates": [
                {
                    "id": "0x0000000000000000000000000000000000000001",
                    "openPorts": [{"port": 0, "protocol": "tcp"}],
                }
            ]
        },
        {
            "updates": [
                {
                    "id": "0x0000000000000000000000000000000000000001",
                    "openPorts": [{"port": 22, "protocol": "icmp"}],
                }
            ]
        },
        {"updates": [{"id": "0x0000000000000000000000000000000000000001", "vmName": ""}]},
    ],
)
def test_a_bad_update_is_a_400_and_changes_nothing(server, body):
    before = server.state.vms_for(A_KEY)
    assert call(server, "PATCH", "/vms/v3", A_KEY, json=body).status_code == 400
    assert server.state.vms_for(A_KEY) == before


def test_an_update_naming_a_vm_of_another_account_is_a_404_and_changes_nothing(server):
    mine = server.state.vms_for(A_KEY)[0]
    before = server.state.vms_for(A_KEY)
    updates = [
        {"id": mine["id"], "vmName": "x"},
        {"id": "0x00000000000000000000000000000000000dead1", "vmName": "y"},
    ]
    assert call(server, "PATCH", "/vms/v3", A_KEY, json={"updates": updates}).status_code == 404
    assert server.state.vms_for(A_KEY) == before  # all or nothing


def test_the_baseline_api_has_no_patch(server):
    vm = server.state.vms_for(BASE_KEY)[0]
    answer = call(server, "PATCH", "/vms/v3", BASE_KEY, json={"updates": [{"id": vm["id"], "vmName": "x"}]})
    assert answer.status_code in (404, 405)
    assert vm_of(server, BASE_KEY, vm["id"])["vmName"] == vm["vmName"]


def test_todays_api_renames_with_its_name_rule(server):
    vm = server.state.vms_for(B_KEY)[0]
    answer = call(server, "PATCH", f"/v2/vms/{vm['id']}", B_KEY, json={"name": "web-2"})
    assert answer.status_code == 200 and answer.json()["name"] == "web-2"
    refused = call(server, "PATCH", f"/v2/vms/{vm['id']}", B_KEY, json={"name": "Web 2"})
    assert refused.status_code == 422 and refused.json()["code"] == "unprocessable_entity"
    assert vm_of(server, B_KEY, vm["id"])["name"] == "web-2"


def test_a_restart_is_in_transition_then_launched_and_refused_meanwhile(server, clock):
    vm = next(vm for vm in server.state.vms_for(B_KEY) if "restart" in vm["allowedActions"])
    answer = call(server, "POST", f"/v2/vms/{vm['id']}/restart", B_KEY)
    assert answer.status_code == 200 and answer.json()["status"] == "restarting"
    assert answer.json()["allowedActions"] == []
    again = call(server, "POST", f"/v2/vms/{vm['id']}/softreboot", B_KEY)
    assert again.status_code == 406 and again.json()["code"] == "not_acceptable"
    clock.now += server.state.restart_delay + 1
    after = vm_of(server, B_KEY, vm["id"])
    assert after["status"] == "launched" and "softReboot" in after["allowedActions"]
    soft = call(server, "POST", f"/v2/vms/{vm['id']}/softreboot", B_KEY)
    assert soft.status_code == 200 and soft.json()["status"] == "softRebooting"


def test_a_read_only_key_may_not_act(server):
    server.state.configure_account("sbx_b_read_only_acts", vm_count=3, read_only=True)
    vm = server.state.vms_for("sbx_b_read_only_acts")[0]
    assert (
        call(server, "PATCH", f"/v2/vms/{vm['id']}", "sbx_b_read_only_acts", json={"name": "x"}).status_code
        == 403
    )
    assert call(server, "POST", f"/v2/vms/{vm['id']}/restart", "sbx_b_read_only_acts").status_code == 403
