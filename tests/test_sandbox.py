"""The sandbox: a local Fluence API over real HTTP (no database)."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from vms.management.commands.runsandbox import Command as RunSandboxCommand
from vms.sandbox import DEMO_ACCOUNTS, DEMO_USERS, EXAMPLE_VM, SandboxServer, SandboxState
from vms.sandbox import server as sandbox_server

PROD = "sbx_demo_alice_production"
STAGING = "sbx_demo_alice_staging"
CLOUD = "sbx_b_demo_alice_cloud"
RESEARCH = "sbx_demo_bob_research"
REVOKED = "sbx_demo_revoked_0001"

ID_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
EXPANDED_RE = re.compile(r"^\+00\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
TIMEOUT = 5


def parse_expanded(value: str) -> datetime:
    return datetime.fromisoformat(value[3:].replace(".000000000Z", "+00:00"))


@pytest.fixture
def server():
    with SandboxServer(port=0) as srv:
        yield srv


@pytest.fixture
def clock():
    """The sandbox's time as the test moves it: [seconds since the epoch], starting now."""
    return [time.time()]


@pytest.fixture
def timed_server(clock):
    with SandboxServer(port=0, state=SandboxState(clock=lambda: clock[0])) as srv:
        yield srv


def get(server, key=None, path="/vms/v2", headers=None, **kwargs):
    hdrs = dict(headers or {})
    if key is not None:
        hdrs.setdefault("X-API-KEY", key)
        hdrs.setdefault("Authorization", f"Bearer {key}")
    return requests.get(server.url + path, headers=hdrs, timeout=TIMEOUT, **kwargs)


def delete(server, key, body=None, data=None):
    headers = {"X-API-KEY": key}
    return requests.delete(server.url + "/vms/v3", headers=headers, json=body, data=data, timeout=TIMEOUT)


# --- accounts and data ---------------------------------------------------------------------------


def test_demo_accounts_are_preloaded(server):
    counts = {key: len(get(server, key).json()) for key in (PROD, STAGING, RESEARCH)}
    assert counts == {PROD: 14, STAGING: 6, RESEARCH: 8}
    cloud = requests.get(server.url + "/v2/vms", headers={"X-API-KEY": CLOUD}, timeout=TIMEOUT).json()
    assert cloud["pagination"]["totalRecords"] == 9
    assert set(DEMO_ACCOUNTS) == {PROD, STAGING, CLOUD, RESEARCH, REVOKED}
    assert DEMO_USERS == {"alice": [PROD, STAGING, CLOUD], "bob": [RESEARCH]}
    assert [DEMO_ACCOUNTS[k]["label"] for k in (PROD, STAGING, CLOUD, RESEARCH)] == [
        "Production",
        "Staging",
        "Cloud",
        "Research",
    ]
    generations = {key: spec["generation"] for key, spec in DEMO_ACCOUNTS.items()}
    assert generations == {
        PROD: "baseline",
        STAGING: "a",
        CLOUD: "b",
        RESEARCH: "baseline",
        REVOKED: "baseline",
    }
    assert get(server, PROD, path="/vms/v3").status_code == 404  # the baseline has no generation A list
    assert get(server, STAGING, path="/vms/v3").status_code == 200


def test_example_vm_is_verbatim_and_first_in_alice_production(server):
    response = get(server, PROD)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    vms = response.json()
    assert vms[0] == EXAMPLE_VM
    assert vms[0]["pricePerEpoch"] == 298160
    assert vms[0]["createdAt"] == "+002025-04-01T16:50:57.000000000Z"
    assert vms[0]["datacenter"]["certifications"] == ["PCI DSS", "ISO 9001:2015", "ISO/IEC 27001:2022"]


def test_generation_is_deterministic_per_key():
    one = SandboxState(preload_demo=False)
    two = SandboxState(preload_demo=False)
    one.configure_account("sbx_determinism_01", vm_count=20)
    two.configure_account("sbx_determinism_01", vm_count=20)
    assert one.vms_for("sbx_determinism_01") == two.vms_for("sbx_determinism_01")
    two.configure_account("sbx_determinism_02", vm_count=20)
    ids_a = {vm["id"] for vm in one.vms_for("sbx_determinism_01")}
    ids_b = {vm["id"] for vm in two.vms_for("sbx_determinism_02")}
    assert not ids_a & ids_b
    # an explicit seed decouples the VMs from the key
    one.configure_account("sbx_seeded_aaaa", vm_count=5, seed=42)
    two.configure_account("sbx_seeded_bbbb", vm_count=5, seed=42)
    assert one.vms_for("sbx_seeded_aaaa") == two.vms_for("sbx_seeded_bbbb")


def test_new_sandbox_key_is_an_account_of_twelve(server):
    vms = get(server, "sbx_fresh_account_xyz").json()
    assert len(vms) == 12
    assert vms == get(server, "sbx_fresh_account_xyz").json()


@pytest.mark.parametrize("key", [PROD, STAGING, RESEARCH, "sbx_status_mix_check"])
def test_status_mix_and_shapes(server, key):
    vms = get(server, key).json()
    statuses = {vm["status"] for vm in vms}
    assert {"ACTIVE", "Launching", "SmallBalance", "Terminated"} <= statuses
    now = datetime.now(UTC)
    assert len({vm["id"].lower() for vm in vms}) == len(vms)
    for vm in vms:
        assert ID_RE.match(vm["id"])
        assert isinstance(vm["pricePerEpoch"], int)
        assert vm["reservedBalance"].isdigit() and vm["totalSpent"].isdigit()
        assert EXPANDED_RE.match(vm["createdAt"])
        assert parse_expanded(vm["createdAt"]) < now + timedelta(seconds=1)
        assert {r["type"] for r in vm["resources"]} >= {"VCPU", "RAM", "STORAGE", "PUBLIC_IP"}
        assert {"port": 22, "protocol": "tcp"} in vm["ports"]
        if vm["status"] == "Terminated":
            assert vm["datacenter"] is None and vm["publicIp"] is None and "nextBillingAt" not in vm
        if vm["status"] == "Launching":
            assert vm["publicIp"] is None
        if (vm["status"] == "ACTIVE" and vm is not vms[0]) or (key != PROD and vm["status"] == "ACTIVE"):
            assert vm["publicIp"]
            next_billing = parse_expanded(vm["nextBillingAt"])
            assert now < next_billing <= now + timedelta(hours=24, seconds=1)
            assert 50_000 <= vm["pricePerEpoch"] <= 5_000_000
            resources = {r["type"]: r["quantity"] for r in vm["resources"]}
            assert 2 <= resources["VCPU"] <= 32
            assert 2048 <= resources["RAM"] <= 131072
            assert 25600 <= resources["STORAGE"] <= 1048576


def test_data_variety_over_many_vms():
    state = SandboxState(preload_demo=False)
    state.configure_account("sbx_variety_check", vm_count=400)
    vms = state.vms_for("sbx_variety_check")
    assert {vm["datacenter"]["countryCode"] for vm in vms if vm["datacenter"]} >= {
        "FR",
        "DE",
        "NL",
        "US",
        "SG",
        "GB",
        "PL",
        "FI",
    }
    assert {vm["datacenter"]["tier"] for vm in vms if vm["datacenter"]} == {1, 2, 3, 4}
    assert any(r["type"] == "GPU" and r["metadata"] for vm in vms for r in vm["resources"])
    assert any(vm["id"] != vm["id"].lower() for vm in vms)
    assert {p["port"] for vm in vms for p in vm["ports"]} >= {22, 80, 443, 51820}
    assert len({vm["osImage"] for vm in vms}) == 3
    assert {vm["status"] for vm in vms} >= {"New", "InsufficientFunds", "Stopped"}


# --- auth ----------------------------------------------------------------------------------------


def test_missing_key_is_401(server):
    response = get(server)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "error": "Missing API key"}


def test_revoked_key_is_401_with_code(server):
    response = get(server, REVOKED)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "error": "API key revoked"}


@pytest.mark.parametrize("key", ["not-a-sandbox-key", "sbx_short", "sbx_bad chars here!"])
def test_unknown_key_is_403(server, key):
    response = get(server, key)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid API key"}


def test_either_header_is_enough_and_both_must_match(server):
    assert (
        requests.get(server.url + "/vms/v2", headers={"X-API-KEY": STAGING}, timeout=TIMEOUT).status_code
        == 200
    )
    bearer = {"Authorization": f"Bearer {STAGING}"}
    assert requests.get(server.url + "/vms/v2", headers=bearer, timeout=TIMEOUT).status_code == 200
    both = {"X-API-KEY": STAGING, "Authorization": f"Bearer {STAGING}"}
    assert requests.get(server.url + "/vms/v2", headers=both, timeout=TIMEOUT).status_code == 200
    mixed = {"X-API-KEY": STAGING, "Authorization": f"Bearer {RESEARCH}"}
    assert requests.get(server.url + "/vms/v2", headers=mixed, timeout=TIMEOUT).status_code == 403
    basic = {"Authorization": f"Basic {STAGING}"}
    assert requests.get(server.url + "/vms/v2", headers=basic, timeout=TIMEOUT).status_code == 401


def test_unknown_path_and_wrong_method(server):
    response = get(server, STAGING, path="/vms/v9")
    assert response.status_code == 404 and "error" in response.json()
    response = requests.post(server.url + "/vms/v2", headers={"X-API-KEY": STAGING}, timeout=TIMEOUT)
    assert response.status_code == 405 and "error" in response.json()


def test_v3_list_is_generation_a_shape(server):
    server.state.configure_account("sbx_a_with_example", vm_count=14, include_example=True)
    vms = get(server, "sbx_a_with_example", path="/vms/v3").json()
    example = vms[0]
    assert example["pricePerEpoch"] == "0.29816"
    assert example["reservedBalance"] == "0.35944" and example["totalSpent"] == "17.846"
    assert example["createdAt"] == "2025-04-01T16:50:57Z"
    assert example["status"] == "Active"
    ram = next(r for r in example["resources"] if r["type"] == "RAM")
    assert ram["supply"] == 4 and ram["units"] == "GiB" and "quantity" not in ram
    assert [vm["id"] for vm in vms] == [vm["id"] for vm in get(server, "sbx_a_with_example").json()]


# --- delete --------------------------------------------------------------------------------------


def test_delete_marks_then_removes_after_delay(timed_server, clock):
    server = timed_server
    server.state.deletion_delay = 0.2
    vms = get(server, RESEARCH).json()
    target = vms[1]["id"]
    response = delete(server, RESEARCH, {"vmId": target.upper().replace("0X", "0x")})
    assert response.status_code == 200 and response.json() == {}
    clock[0] += 0.19
    assert target in [vm["id"] for vm in get(server, RESEARCH).json()]  # still listed while deleting
    clock[0] += 0.01
    remaining = [vm["id"] for vm in get(server, RESEARCH).json()]
    assert target not in remaining and len(remaining) == len(vms) - 1
    assert delete(server, RESEARCH, {"vmId": target}).status_code == 404


def test_delete_many_with_vm_ids(server):
    server.state.deletion_delay = 0
    ids = [vm["id"] for vm in get(server, STAGING).json()[:2]]
    assert delete(server, STAGING, {"vmIds": ids}).status_code == 200
    assert not {vm["id"] for vm in get(server, STAGING).json()} & set(ids)


def test_delete_unknown_or_foreign_id_is_404_and_changes_nothing(server):
    foreign = get(server, RESEARCH).json()[0]["id"]
    mine = get(server, STAGING).json()[0]["id"]
    for body in ({"vmId": "0x" + "ab" * 20}, {"vmId": foreign}, {"vmIds": [mine, foreign]}):
        response = delete(server, STAGING, body)
        assert response.status_code == 404
        assert response.json() == {"error": "VM not found"}
    assert len(get(server, STAGING).json()) == 6
    assert len(get(server, RESEARCH).json()) == 8


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"id": "0x01"}', b'{"vmId": 5}', b'{"vmId": "0x12"}', b'{"vmIds": []}'],
)
def test_delete_malformed_body_is_400(server, data):
    response = delete(server, STAGING, data=data)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_delete_needs_auth(server):
    vm_id = get(server, STAGING).json()[0]["id"]
    response = requests.delete(server.url + "/vms/v3", json={"vmId": vm_id}, timeout=TIMEOUT)
    assert response.status_code == 401
    assert delete(server, REVOKED, {"vmId": vm_id}).status_code == 401


# --- add_vm and time -----------------------------------------------------------------------------


def test_add_vm_activates_after_delay(timed_server, clock):
    server = timed_server
    vm = server.state.add_vm(STAGING, name="new-box-1", activate_after=0.15)
    assert vm["status"] == "Launching" and vm["publicIp"] is None and "nextBillingAt" not in vm
    clock[0] += 0.14
    listed = get(server, STAGING).json()
    assert listed[-1]["id"] == vm["id"] and listed[-1]["status"] == "Launching"
    clock[0] += 0.01
    active = next(v for v in get(server, STAGING).json() if v["id"] == vm["id"])
    assert active["status"] == "ACTIVE" and active["publicIp"]
    assert parse_expanded(active["nextBillingAt"]) > datetime.now(UTC)
    assert active["vmName"] == "new-box-1"


def test_add_vm_overrides_and_stays_launching_without_delay():
    state = SandboxState(preload_demo=False)
    vm = state.add_vm("sbx_addvm_target", name="x", id="0x" + "cd" * 20, pricePerEpoch=1_000_000)
    assert vm["id"] == "0x" + "cd" * 20 and vm["pricePerEpoch"] == 1_000_000
    assert state.vms_for("sbx_addvm_target")[-1]["status"] == "Launching"
    assert len(state.vms_for("sbx_addvm_target")) == 13
    with pytest.raises(ValueError):
        state.add_vm("sbx_addvm_target", name="dup", id="0x" + "CD" * 20)


def test_billing_epoch_rolls_over_with_time():
    now = [time.time()]
    state = SandboxState(preload_demo=False, clock=lambda: now[0])
    state.configure_account("sbx_billing_clock", vm_count=10)
    before = {vm["id"]: vm for vm in state.vms_for("sbx_billing_clock")}
    now[0] += 86_400 + 5
    after = {vm["id"]: vm for vm in state.vms_for("sbx_billing_clock")}
    for vm_id, vm in before.items():
        if "nextBillingAt" in vm and vm["status"] == "ACTIVE":
            later = after[vm_id]
            assert parse_expanded(later["nextBillingAt"]) == parse_expanded(vm["nextBillingAt"]) + timedelta(
                days=1
            )
            assert int(later["totalSpent"]) == int(vm["totalSpent"]) + vm["pricePerEpoch"]


# --- faults --------------------------------------------------------------------------------------


def test_fault_latency(server, monkeypatch):
    waits = []  # what the sandbox sleeps for before it answers (it no longer sleeps: the test owns time)
    monkeypatch.setattr(sandbox_server, "time", SimpleNamespace(sleep=waits.append))
    server.state.set_faults(latency_ms=200)
    assert get(server, STAGING).status_code == 200
    assert waits == [0.2]
    server.state.clear_faults()
    assert get(server, STAGING).status_code == 200
    assert waits == [0.2]  # no fault, no wait


def test_fault_errors(server):
    server.state.set_faults(error_rate=1.0)
    response = get(server, STAGING)
    assert response.status_code == 500 and response.json() == {"error": "Internal server error"}
    server.state.set_faults(error_rate=1.0, error_status=503)
    assert get(server, STAGING).status_code == 503
    server.state.clear_faults()
    assert get(server, STAGING).status_code == 200


def test_fault_error_rate_is_deterministic(server):
    server.state.set_faults(error_rate=0.5)
    first = [get(server, STAGING).status_code for _ in range(12)]
    server.state.set_faults(error_rate=0.5)
    second = [get(server, STAGING).status_code for _ in range(12)]
    assert first == second
    assert set(first) == {200, 500}


def test_fault_rate_limit(server):
    server.state.set_faults(rate_limit_retry_after=7)
    response = get(server, STAGING)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"error": "Too many requests"}


def test_fault_malformed_and_wrong_shape(server):
    server.state.set_faults(malformed=True)
    response = get(server, STAGING)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    server.state.set_faults(wrong_shape=True)
    response = get(server, STAGING)
    assert response.status_code == 200 and isinstance(response.json(), dict)


def test_fault_drop(server):
    server.state.set_faults(drop=True)
    with pytest.raises(requests.ConnectionError):
        get(server, STAGING)
    server.state.clear_faults()
    assert get(server, STAGING).status_code == 200


def test_per_key_faults_leave_other_keys_alone(server):
    server.state.set_faults(error_rate=1.0, key=STAGING)
    assert get(server, STAGING).status_code == 500
    assert get(server, RESEARCH).status_code == 200
    server.state.set_faults(latency_ms=1, key=RESEARCH)
    server.state.set_faults(rate_limit_retry_after=1)  # global; keys with their own faults keep them
    assert get(server, STAGING).status_code == 500
    assert get(server, RESEARCH).status_code == 200
    assert get(server, PROD).status_code == 429


def test_invalid_faults_are_refused():
    state = SandboxState(preload_demo=False)
    for bad in ({"error_rate": 2}, {"latency_ms": -1}, {"error_status": 200}, {"drop": "yes"}):
        with pytest.raises(ValueError):
            state.set_faults(**bad)


# --- counting and logging ------------------------------------------------------------------------


def test_request_counting(server):
    state = server.state
    get(server, STAGING)
    get(server, STAGING)
    get(server, STAGING, path="/vms/v3")
    delete(server, STAGING, {"vmId": "0x" + "00" * 20})
    requests.get(server.url + "/_sandbox/stats", timeout=TIMEOUT)
    requests.post(server.url + "/_sandbox/faults", json={}, timeout=TIMEOUT)
    assert state.request_count() == 4
    assert state.request_count(method="GET") == 3
    assert state.request_count(path="/vms/v2") == 2
    assert state.request_count(key=STAGING) == 4
    assert state.request_count(method="DELETE", path="/vms/v3", key=STAGING) == 1
    state.set_faults(drop=True)
    with pytest.raises(requests.ConnectionError):
        get(server, STAGING)
    assert state.request_count(key=STAGING) == 5  # a dropped request was still received
    state.reset_counts()
    assert state.request_count() == 0


def test_keys_are_never_logged(server, caplog):
    caplog.set_level(logging.DEBUG, logger="vms.sandbox")
    get(server, STAGING)
    get(server, "sbx_log_probe_key_123")
    requests.get(server.url + "/_sandbox/stats", timeout=TIMEOUT)
    assert caplog.records  # it does log, at DEBUG
    assert STAGING not in caplog.text and "sbx_log_probe_key_123" not in caplog.text


# --- scale ---------------------------------------------------------------------------------------


def test_ten_thousand_vms_are_built_and_served_twice(server):
    # How fast is `make bench`'s business (a timed test fails on a busy machine); this pins what is served.
    server.state.configure_account("sbx_bench_10k_vms", vm_count=10_000)
    for _ in range(2):
        response = get(server, "sbx_bench_10k_vms")
        assert response.status_code == 200
        vms = response.json()
        assert len(vms) == 10_000 and len({vm["id"].lower() for vm in vms}) == 10_000


# --- control API ---------------------------------------------------------------------------------


def test_control_api_over_http(server):
    control = server.url + "/_sandbox"
    assert requests.get(control + "/health", timeout=TIMEOUT).json() == {"status": "ok"}

    response = requests.post(
        control + "/accounts",
        json={"key": "sbx_control_made_1", "vm_count": 3, "include_example": True},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200 and response.json()["vm_count"] == 3
    vms = get(server, "sbx_control_made_1").json()
    assert len(vms) == 3 and vms[0] == EXAMPLE_VM

    response = requests.post(
        control + "/accounts/vms",
        json={"key": "sbx_control_made_1", "name": "booting", "status": "Launching", "activate_after": 0},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert get(server, "sbx_control_made_1").json()[-1]["status"] == "ACTIVE"

    requests.post(control + "/accounts", json={"key": "sbx_control_made_2", "revoked": True}, timeout=TIMEOUT)
    assert get(server, "sbx_control_made_2").status_code == 401

    response = requests.post(
        control + "/faults", json={"error_rate": 1.0, "key": "sbx_control_made_1"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert "sbx_control_made_1" not in response.text
    assert get(server, "sbx_control_made_1").status_code == 500
    assert requests.delete(control + "/faults", timeout=TIMEOUT).status_code == 200
    assert get(server, "sbx_control_made_1").status_code == 200

    stats = requests.get(control + "/stats", timeout=TIMEOUT).json()
    assert stats["total"] == server.state.request_count() == 5
    assert stats["by_endpoint"]["GET /vms/v2"] == 5
    assert stats["by_key"]["…de_1"] == 4
    assert "sbx_control_made_1" not in str(stats)
    assert requests.post(control + "/reset-counts", timeout=TIMEOUT).status_code == 200
    assert requests.get(control + "/stats", timeout=TIMEOUT).json()["total"] == 0

    response = requests.post(control + "/settings", json={"deletion_delay": 0.5}, timeout=TIMEOUT)
    assert response.json() == {"deletion_delay": 0.5} and server.state.deletion_delay == 0.5


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/faults", b"{not json"),
        ("POST", "/faults", b'{"error_rate": 3}'),
        ("POST", "/faults", b'{"colour": "red"}'),
        ("POST", "/accounts", b'{"vm_count": 3}'),
        ("POST", "/accounts", b'{"key": "sbx_x_control", "vm_count": -1}'),
        ("POST", "/accounts/vms", b'{"key": "nope", "name": "x"}'),
        ("POST", "/accounts/vms", b'{"key": "sbx_control_made_3"}'),
    ],
)
def test_control_api_rejects_bad_input(server, method, path, body):
    response = requests.request(method, server.url + "/_sandbox" + path, data=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"]


def test_control_api_unknown_path_and_method(server):
    assert requests.get(server.url + "/_sandbox/nothing", timeout=TIMEOUT).status_code == 404
    assert requests.get(server.url + "/_sandbox/reset-counts", timeout=TIMEOUT).status_code == 405


# --- server lifecycle and the command ------------------------------------------------------------


def test_server_start_stop_and_keep_alive():
    server = SandboxServer(port=0).start()
    with requests.Session() as session:
        try:
            assert server.url.startswith("http://127.0.0.1:")
            for _ in range(3):
                assert session.get(server.url + "/vms/v2", headers={"X-API-KEY": STAGING}, timeout=TIMEOUT).ok
        finally:
            server.stop()
        # a stopped sandbox answers nobody, not even a pooled keep-alive connection
        with pytest.raises(requests.ConnectionError):
            session.get(server.url + "/vms/v2", headers={"X-API-KEY": STAGING}, timeout=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/vms/v2", timeout=1)
    server.stop()  # idempotent


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])  # noqa: S104
def test_runsandbox_refuses_non_loopback(host):
    with pytest.raises(CommandError, match="--allow-remote"):
        call_command("runsandbox", host=host, port=0)


def test_runsandbox_serves_until_stopped():
    command = RunSandboxCommand()
    out = io.StringIO()
    thread = threading.Thread(
        target=call_command,
        args=(command,),
        kwargs={"port": 0, "vms_per_account": 2, "stdout": out},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 5
    url = None
    while time.monotonic() < deadline and url is None:
        match = re.search(r"http://127\.0\.0\.1:\d+", out.getvalue())
        url = match.group(0) if match else None
        time.sleep(0.02)
    assert url, out.getvalue()
    assert "Production" in out.getvalue() and PROD in out.getvalue()
    assert len(requests.get(url + "/vms/v2", headers={"X-API-KEY": STAGING}, timeout=TIMEOUT).json()) == 2
    command.stop_event.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "stopped" in out.getvalue()
