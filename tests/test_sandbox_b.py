"""The sandbox speaking generation B of the Fluence API (fluence-api.md §4), per-account generations."""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from vms.management.commands.runsandbox import Command as RunSandboxCommand
from vms.sandbox import SandboxServer, SandboxState
from vms.sandbox.data import DC_SPECS

CLOUD = "sbx_b_demo_alice_cloud"
STAGING = "sbx_demo_alice_staging"
PROD = "sbx_demo_alice_production"
TIMEOUT = 5
# 2026-11-30 08:12:44 UTC plus a fraction: a fixed "now" for the tests that move time.
NOW = 1_796_026_364.25

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NAME_RE = re.compile(r"^[a-z0-9-]{1,25}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
IPV4_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
VM_FIELDS = [
    "id",
    "userId",
    "clusterId",
    "configurationId",
    "configurationName",
    "configurationSlug",
    "name",
    "status",
    "restartRequired",
    "allowedActions",
    "dataDisks",
    "subnets",
    "sshKeys",
    "networkInterfaces",
    "createdAt",
    "updatedAt",
    "readySince",
    "lastPaidAt",
    "paidUntil",
    "terminatedAt",
    "priceHourlyUsd",
    "priceMonthlyUsd",
    "vcpu",
    "ramGb",
    "bootDisk",
    "publicIp",
    "cloudInit",
    "expanded",
]
LAUNCHED_ACTIONS = [
    "addPublicIp",
    "removePublicIp",
    "addStorages",
    "removeStorages",
    "updateNetworkInterface",
    "restart",
    "softReboot",
    "terminate",
]
NOT_FOUND_B = {"code": "not_found", "error": "Not found"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def server():
    with SandboxServer(port=0) as srv:
        yield srv


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def timed_server(clock):
    """A sandbox without demo accounts whose time only moves when the test says so."""
    state = SandboxState(preload_demo=False, clock=clock, deletion_delay=30)
    with SandboxServer(port=0, state=state) as srv:
        yield srv


def call(server, method, path, key=None, headers=None, **kwargs):
    hdrs = dict(headers or {})
    if key is not None:
        hdrs.setdefault("X-API-KEY", key)
    return requests.request(method, server.url + path, headers=hdrs, timeout=TIMEOUT, **kwargs)


def get(server, path, key=None, **kwargs):
    return call(server, "GET", path, key, **kwargs)


def all_vms(server, key, **params):
    """Every VM of a B account, walking the pages the way a client must (base read from the first answer)."""
    first = get(server, "/v2/vms", key, params={"perPage": 100, **params}).json()
    vms = list(first["items"])
    base = first["pagination"]["currentPage"]
    for page in range(base + 1, base + first["pagination"]["totalPages"]):
        vms.extend(
            get(server, "/v2/vms", key, params={"perPage": 100, "page": page, **params}).json()["items"]
        )
    return vms


# --- generations and routing ---------------------------------------------------------------------


def test_generation_follows_the_key_prefix_unless_configured():
    state = SandboxState(preload_demo=False)
    assert state.generation_of("sbx_b_prefix_check") == "b"
    assert state.generation_of("sbx_a_prefix_check") == "a"
    assert state.generation_of("sbx_prefix_check_x") == "baseline"
    assert state.generation_of("not-a-sandbox-key") is None
    state.configure_account("sbx_b_but_baseline", generation="baseline", vm_count=2)
    assert state.generation_of("sbx_b_but_baseline") == "baseline"
    state.configure_account("sbx_plain_but_b_1", generation="b", vm_count=2)
    assert state.generation_of("sbx_plain_but_b_1") == "b"
    assert state.vms_for("sbx_plain_but_b_1")[0]["status"] in {
        "launched",
        "launching",
        "failed",
        "terminated",
    }


# (method, path) -> the generations that serve it
ENDPOINTS = {
    ("GET", "/vms/v2"): {"baseline", "a"},
    ("GET", "/vms/v3"): {"a"},
    ("DELETE", "/vms/v3"): {"baseline", "a"},
    ("GET", "/v2/vms"): {"b"},
    ("GET", "/v2/vms/{id}"): {"b"},
    ("POST", "/v2/vms/{id}/terminate"): {"b"},
    ("GET", "/v1/clusters"): {"b"},
    ("GET", "/v1/datacenters"): {"b"},
    ("GET", "/v2/users/balances"): {"b"},
}
KEYS = {"baseline": "sbx_routing_baseline", "a": "sbx_a_routing_check", "b": "sbx_b_routing_check"}


@pytest.mark.parametrize("generation", ["baseline", "a", "b"])
@pytest.mark.parametrize(("method", "path"), list(ENDPOINTS))
def test_each_generation_serves_its_paths_and_404s_the_others(server, generation, method, path):
    key = KEYS[generation]
    server.state.configure_account(key, vm_count=6)
    vm = next(vm for vm in server.state.vms_for(key) if vm["status"] in ("launched", "ACTIVE", "failed"))
    vm_id = vm["id"] if generation == "b" else "3f2c1a9e-5b7d-4c11-9e2a-7d4b8c6a1f00"
    body = {"vmId": vm["id"]} if method == "DELETE" and generation != "b" else None
    response = call(server, method, path.replace("{id}", vm_id), key, json=body)
    if generation in ENDPOINTS[(method, path)]:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 404
        assert response.json() == (NOT_FOUND_B if generation == "b" else {"error": "Not found"})


def test_a_b_key_gets_404_on_old_paths_even_with_a_bearer_header(server):
    # The portal sends X-API-KEY and Bearer to the 2025 paths: a B account must answer 404, not 401.
    both = {"X-API-KEY": CLOUD, "Authorization": f"Bearer {CLOUD}"}
    for path in ("/vms/v2", "/vms/v3"):
        response = requests.get(server.url + path, headers=both, timeout=TIMEOUT)
        assert response.status_code == 404 and response.json() == NOT_FOUND_B


def test_a_baseline_key_gets_404_on_the_generation_a_list_but_405_on_an_unknown_method(server):
    assert get(server, "/vms/v3", PROD).status_code == 404
    assert get(server, "/vms/v3", STAGING).status_code == 200
    response = call(server, "POST", "/vms/v2", PROD)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    response = call(server, "PUT", "/v2/vms", CLOUD)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_unknown_paths_are_404_by_generation(server):
    assert get(server, "/v2/nothing", CLOUD).json() == NOT_FOUND_B
    assert get(server, "/v2/vms/a/b/c", CLOUD).json() == NOT_FOUND_B
    assert get(server, "/v2/nothing", PROD).json() == {"error": "Not found"}
    assert get(server, "/v2/nothing").json() == {"error": "Not found"}


def test_service_status_needs_no_key(server):
    for headers in ({}, {"X-API-KEY": CLOUD}, {"Authorization": "Bearer whatever"}):
        response = requests.get(server.url + "/v1/service/status", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {"maintenanceMode": False, "version": "0.10.0"}
    assert call(server, "POST", "/v1/service/status").status_code == 405


def test_new_keys_get_the_generation_of_their_prefix(server):
    assert get(server, "/v2/vms", "sbx_b_brand_new_key").json()["pagination"]["totalRecords"] == 12
    assert get(server, "/vms/v2", "sbx_b_brand_new_key").status_code == 404
    assert get(server, "/vms/v3", "sbx_a_brand_new_key").status_code == 200
    assert get(server, "/vms/v3", "sbx_brand_new_key_0").status_code == 404
    assert get(server, "/v2/vms", "sbx_a_brand_new_key").status_code == 404


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-KEY": CLOUD},
        {"Authorization": f"X-API-KEY {CLOUD}"},
        {"Authorization": f"x-api-key {CLOUD}"},
        {"X-API-KEY": CLOUD, "Authorization": f"X-API-KEY {CLOUD}"},
    ],
)
def test_b_accepts_the_key_in_x_api_key_or_the_authorization_scheme(server, headers):
    response = requests.get(server.url + "/v2/vms", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["pagination"]["totalRecords"] == 9


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-API-KEY": CLOUD, "Authorization": f"Bearer {CLOUD}"}, "Invalid access token"),
        ({"Authorization": f"Bearer {CLOUD}"}, "Invalid access token"),
        ({"X-API-KEY": CLOUD, "Authorization": "X-API-KEY sbx_b_someone_else"}, "Conflicting API keys"),
        ({}, "Missing API key"),
        ({"Authorization": f"Basic {CLOUD}"}, "Missing API key"),
        ({"X-API-KEY": "not-a-sandbox-key"}, "Invalid API key"),
    ],
)
def test_b_refuses_bearer_missing_conflicting_and_unknown_keys_with_401(server, headers, message):
    for path in ("/v2/vms", "/v1/clusters", "/v2/users/balances"):
        response = requests.get(server.url + path, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.json() == {"code": "unauthorized", "error": message}


def test_b_refuses_a_revoked_key(server):
    server.state.configure_account("sbx_b_revoked_key", vm_count=2, revoked=True)
    response = get(server, "/v2/vms", "sbx_b_revoked_key")
    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "error": "API key revoked"}


def test_old_generations_keep_their_auth_rules(server):
    bearer_only = {"Authorization": f"Bearer {STAGING}"}
    assert requests.get(server.url + "/vms/v3", headers=bearer_only, timeout=TIMEOUT).status_code == 200
    response = get(server, "/vms/v2", "not-a-sandbox-key")
    assert response.status_code == 403 and response.json() == {"error": "Invalid API key"}
    # The B scheme means nothing to the 2025 API.
    scheme = {"Authorization": f"X-API-KEY {STAGING}"}
    assert requests.get(server.url + "/vms/v2", headers=scheme, timeout=TIMEOUT).status_code == 401


# --- the VM objects ------------------------------------------------------------------------------


def test_vm_objects_have_the_generation_b_shape(server):
    server.state.configure_account("sbx_b_shape_check", vm_count=300)
    now = datetime.now(UTC)
    vms = server.state.vms_for("sbx_b_shape_check")
    assert len({vm["id"] for vm in vms}) == 300
    assert len({vm["userId"] for vm in vms}) == 1
    for vm in vms:
        assert list(vm) == VM_FIELDS
        for name in ("id", "userId", "clusterId", "configurationId", "bootDisk"):
            assert UUID_RE.match(vm[name]), name
        for name in ("dataDisks", "subnets", "sshKeys", "networkInterfaces"):
            assert all(UUID_RE.match(value) for value in vm[name]), name
        assert len(vm["subnets"]) == len(vm["sshKeys"]) == len(vm["networkInterfaces"]) == 1
        assert len(vm["dataDisks"]) <= 2
        assert NAME_RE.match(vm["name"])
        assert vm["restartRequired"] is False and vm["expanded"] is None
        assert vm["cloudInit"] in (None, {})
        assert isinstance(vm["vcpu"], int) and isinstance(vm["ramGb"], int)
        assert (
            vm["configurationName"]
            == f"{vm['configurationName'].split()[0]} {vm['vcpu']} vCPU / {vm['ramGb']} GB"
        )
        assert vm["configurationSlug"].endswith(f"-{vm['vcpu']}vcpu-{vm['ramGb']}gb")
        for name in ("createdAt", "updatedAt", "readySince", "lastPaidAt", "paidUntil", "terminatedAt"):
            assert vm[name] is None or TIME_RE.match(vm[name]), name
        assert parse_time(vm["createdAt"]) <= parse_time(vm["updatedAt"]) <= now
        if vm["priceHourlyUsd"] is None:
            assert vm["priceMonthlyUsd"] is None
        else:
            assert Decimal(vm["priceMonthlyUsd"]) == Decimal(vm["priceHourlyUsd"]) * 730

        status = vm["status"]
        if status == "launched":
            expected = [
                a
                for a in LAUNCHED_ACTIONS
                if a != ("removePublicIp" if vm["publicIp"] is None else "addPublicIp")
            ]
            assert vm["allowedActions"] == expected
            assert vm["readySince"] is not None
        elif status in ("failed", "suspended"):
            assert vm["allowedActions"] == ["terminate"]
        else:
            assert vm["allowedActions"] == []
        if status in ("new", "launching", "terminated"):
            assert vm["publicIp"] is None
        if status == "terminated":
            assert vm["terminatedAt"] and vm["lastPaidAt"] is None and vm["paidUntil"] is None
        else:
            assert vm["terminatedAt"] is None
            paid_until, last_paid = parse_time(vm["paidUntil"]), parse_time(vm["lastPaidAt"])
            # prepaid hourly: paid up to the next full hour
            assert paid_until.minute == paid_until.second == paid_until.microsecond == 0
            assert last_paid < paid_until <= last_paid + timedelta(hours=1)
            assert now < paid_until <= now + timedelta(hours=1, seconds=5)
    statuses = {vm["status"] for vm in vms}
    assert statuses == {"launched", "launching", "new", "failed", "suspended", "terminated"}
    assert sum(vm["status"] == "launched" for vm in vms) > 200
    assert any(vm["publicIp"] is None for vm in vms if vm["status"] == "launched")
    assert any(vm["priceHourlyUsd"] is None for vm in vms)
    assert any("." in vm["createdAt"] for vm in vms) and any("." not in vm["createdAt"] for vm in vms)


@pytest.mark.parametrize("count", [4, 5, 9])
def test_every_account_of_four_or_more_shows_the_states_to_handle(count):
    state = SandboxState(preload_demo=False)
    for n in range(5):
        key = f"sbx_b_small_account_{count}_{n}"
        state.configure_account(key, vm_count=count)
        assert {"launching", "terminated", "failed"} <= {vm["status"] for vm in state.vms_for(key)}


def test_b_vms_are_deterministic_per_seed_and_day(clock):
    one = SandboxState(preload_demo=False, clock=clock)
    two = SandboxState(preload_demo=False, clock=clock)
    one.configure_account("sbx_b_determinism", vm_count=30)
    two.configure_account("sbx_b_determinism", vm_count=30)
    assert one.vms_for("sbx_b_determinism") == two.vms_for("sbx_b_determinism")
    two.configure_account("sbx_b_determinism_2", vm_count=30)
    first = {vm["id"] for vm in one.vms_for("sbx_b_determinism")}
    assert not first & {vm["id"] for vm in two.vms_for("sbx_b_determinism_2")}


def test_clusters_and_datacenters_locate_every_vm(server):
    clusters = get(server, "/v1/clusters", CLOUD).json()
    datacenters = get(server, "/v1/datacenters", CLOUD).json()
    assert list(clusters) == ["items"] and list(datacenters) == ["items"]
    assert 6 <= len(clusters["items"]) <= 10
    by_dc = {dc["id"]: dc for dc in datacenters["items"]}
    assert len(by_dc) == len(DC_SPECS)
    assert {(dc["countryCode"], dc["cityCode"], dc["index"], dc["tier"]) for dc in by_dc.values()} == {
        spec[:4] for spec in DC_SPECS
    }
    for dc in by_dc.values():
        assert list(dc) == [
            "id",
            "countryCode",
            "cityCode",
            "cityName",
            "index",
            "tier",
            "certifications",
            "slug",
        ]
        assert UUID_RE.match(dc["id"]) and dc["cityName"] and dc["slug"]
    by_cluster = {}
    for cluster in clusters["items"]:
        assert list(cluster) == ["id", "name", "dcId"]
        assert cluster["dcId"] in by_dc
        by_cluster[cluster["id"]] = cluster
    assert "par-1" in {cluster["name"] for cluster in clusters["items"]}
    server.state.configure_account("sbx_b_location_check", vm_count=200)
    vms = all_vms(server, "sbx_b_location_check")
    assert {vm["clusterId"] for vm in vms} <= set(by_cluster)
    assert len({vm["clusterId"] for vm in vms}) == len(by_cluster)


# --- GET /v2/vms: pagination ---------------------------------------------------------------------


@pytest.mark.parametrize("page_base", [0, 1])
def test_pages_start_at_the_accounts_base_and_cover_every_vm_once(server, page_base):
    key = f"sbx_b_pages_base_{page_base}"
    server.state.configure_account(key, vm_count=250, page_base=page_base)
    first = get(server, "/v2/vms", key, params={"perPage": 100}).json()
    assert first["pagination"] == {
        "totalRecords": 250,
        "filteredRecords": 250,
        "totalPages": 3,
        "currentPage": page_base,
        "perPage": 100,
    }
    seen = []
    for offset, size in enumerate((100, 100, 50)):
        page = page_base + offset
        answer = get(server, "/v2/vms", key, params={"page": page, "perPage": 100}).json()
        assert len(answer["items"]) == size
        assert answer["pagination"]["currentPage"] == page
        assert answer["pagination"]["totalPages"] == 3
        seen.extend(vm["id"] for vm in answer["items"])
    assert (
        first["items"]
        == get(server, "/v2/vms", key, params={"page": page_base, "perPage": 100}).json()["items"]
    )
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == {vm["id"] for vm in server.state.vms_for(key)}
    past = get(server, "/v2/vms", key, params={"page": page_base + 3, "perPage": 100}).json()
    assert past["items"] == []
    assert past["pagination"] == {
        "totalRecords": 250,
        "filteredRecords": 250,
        "totalPages": 3,
        "currentPage": page_base + 3,
        "perPage": 100,
    }


def test_page_zero_on_an_account_counting_from_one_is_its_first_page(server):
    server.state.configure_account("sbx_b_page_zero_check", vm_count=30)
    zero = get(server, "/v2/vms", "sbx_b_page_zero_check", params={"page": 0}).json()
    one = get(server, "/v2/vms", "sbx_b_page_zero_check", params={"page": 1}).json()
    assert zero == one and one["pagination"]["currentPage"] == 1


def test_default_page_size_is_twenty(server):
    server.state.configure_account("sbx_b_default_page", vm_count=45)
    answer = get(server, "/v2/vms", "sbx_b_default_page").json()
    assert len(answer["items"]) == 20
    assert answer["pagination"]["perPage"] == 20 and answer["pagination"]["totalPages"] == 3


@pytest.mark.parametrize("parameter", ["perPage", "per_page"])
def test_per_page_is_capped_by_the_account(server, parameter):
    server.state.configure_account("sbx_b_capped_pages", vm_count=120, max_per_page=50)
    answer = get(server, "/v2/vms", "sbx_b_capped_pages", params={parameter: 100}).json()
    assert len(answer["items"]) == 50
    assert answer["pagination"]["perPage"] == 50 and answer["pagination"]["totalPages"] == 3
    small = get(server, "/v2/vms", "sbx_b_capped_pages", params={parameter: 7}).json()
    assert len(small["items"]) == 7 and small["pagination"]["totalPages"] == 18


def test_ten_thousand_vms_over_a_hundred_pages(server):
    server.state.configure_account("sbx_b_ten_thousand", vm_count=10_000)
    ids = [vm["id"] for vm in all_vms(server, "sbx_b_ten_thousand")]
    assert len(ids) == len(set(ids)) == 10_000


# --- GET /v2/vms: filters, order, expand ---------------------------------------------------------

NAMED_VMS = [
    ("api-prod-1", "launched"),
    ("api-prod-2", "failed"),
    ("apix-prod-1", "launched"),
    ("web-1", "suspended"),
    ("web-12", "new"),
    ("db-main", "terminated"),
]


@pytest.fixture
def named_account(timed_server, clock):
    key = "sbx_b_named_vms"
    timed_server.state.configure_account(key, vm_count=0)
    for name, status in NAMED_VMS:
        timed_server.state.add_vm(key, name=name, status=status)
        clock.now += 1000  # created one after the other
    return key


def names(server, key, **params):
    return [vm["name"] for vm in get(server, "/v2/vms", key, params=params).json()["items"]]


def test_default_order_is_newest_first(timed_server, named_account):
    assert names(timed_server, named_account) == [name for name, _ in reversed(NAMED_VMS)]
    assert names(timed_server, named_account, order="asc") == [name for name, _ in NAMED_VMS]


def test_sort_by_name_and_status(timed_server, named_account):
    by_name = sorted(name for name, _ in NAMED_VMS)
    assert names(timed_server, named_account, sort="name", order="asc") == by_name
    assert names(timed_server, named_account, sort="name") == by_name[::-1]
    statuses = [
        vm["status"]
        for vm in get(
            timed_server, "/v2/vms", named_account, params={"sort": "status", "order": "asc"}
        ).json()["items"]
    ]
    assert statuses == sorted(status for _, status in NAMED_VMS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=launched", {"api-prod-1", "apix-prod-1"}),
        ("status[0]=launched&status[1]=failed", {"api-prod-1", "api-prod-2", "apix-prod-1"}),
        ("status[]=new&status[]=suspended", {"web-1", "web-12"}),
        (
            "excludeStatus[0]=terminated&excludeStatus[1]=new",
            {"api-prod-1", "api-prod-2", "apix-prod-1", "web-1"},
        ),
        ("excludeStatus=launched&status[0]=launched&status[1]=new", {"web-12"}),
        ("status=", {name for name, _ in NAMED_VMS}),
        ("name=api-prod-1", {"api-prod-1"}),
        ("name=API-PROD-1", {"api-prod-1"}),
        ("name=api", set()),
        ("name=api%25", {"api-prod-1", "api-prod-2", "apix-prod-1"}),
        ("name=%25prod%25", {"api-prod-1", "api-prod-2", "apix-prod-1"}),
        ("name=web-_", {"web-1"}),
        ("name=web-__", {"web-12"}),
        ("name=%25-1", {"api-prod-1", "apix-prod-1", "web-1"}),
        ("name=db%5C-main", {"db-main"}),
        ("name=%25prod%25&status=failed", {"api-prod-2"}),
    ],
)
def test_filters(timed_server, named_account, query, expected):
    answer = get(timed_server, "/v2/vms?" + query, named_account).json()
    assert {vm["name"] for vm in answer["items"]} == expected
    assert answer["pagination"]["filteredRecords"] == len(expected)
    assert answer["pagination"]["totalRecords"] == len(NAMED_VMS)


def test_filter_by_ids_and_cluster(timed_server, named_account):
    vms = {vm["name"]: vm for vm in timed_server.state.vms_for(named_account)}
    wanted = [vms["web-1"]["id"], vms["db-main"]["id"].upper()]
    query = f"ids[0]={wanted[0]}&ids[1]={wanted[1]}"
    answer = get(timed_server, "/v2/vms?" + query, named_account).json()
    assert {vm["name"] for vm in answer["items"]} == {"web-1", "db-main"}
    cluster = vms["web-1"]["clusterId"]
    in_cluster = {vm["name"] for vm in vms.values() if vm["clusterId"] == cluster}
    assert set(names(timed_server, named_account, clusterId=cluster)) == in_cluster


def test_a_page_of_a_filtered_list(timed_server, named_account):
    answer = get(
        timed_server, "/v2/vms", named_account, params={"name": "%-%", "perPage": 4, "page": 2}
    ).json()
    assert answer["pagination"] == {
        "totalRecords": 6,
        "filteredRecords": 6,
        "totalPages": 2,
        "currentPage": 2,
        "perPage": 4,
    }
    assert [vm["name"] for vm in answer["items"]] == ["api-prod-2", "api-prod-1"]


@pytest.mark.parametrize("query", ["expand[0]=publicIp", "expand[]=publicIp", "expand=publicIp"])
def test_expand_public_ip(server, query):
    vms = get(server, "/v2/vms?perPage=100&" + query, CLOUD).json()["items"]
    with_ip = [vm for vm in vms if vm["publicIp"]]
    assert with_ip and len(with_ip) < len(vms)
    for vm in vms:
        assert list(vm["expanded"]) == ["publicIp"]
        ip = vm["expanded"]["publicIp"]
        if vm["publicIp"] is None:
            assert ip is None
            continue
        assert ip["id"] == vm["publicIp"]
        assert ip["userId"] == vm["userId"] and ip["clusterId"] == vm["clusterId"]
        assert IPV4_RE.match(ip["address"])
        assert ip["addressType"] == "V4" and ip["status"] == "ready"
        assert ip["attachedTo"] == {"id": vm["id"], "name": vm["name"]}
        assert TIME_RE.match(ip["createdAt"])
        assert Decimal(ip["priceMonthlyUsd"]) == Decimal(ip["priceHourlyUsd"]) * 730


def test_expand_boot_disk_and_public_ip_together(server):
    vms = get(server, "/v2/vms?expand[0]=bootDisk&expand[1]=publicIp", CLOUD).json()["items"]
    for vm in vms:
        assert list(vm["expanded"]) == ["publicIp", "bootDisk"]
        disk = vm["expanded"]["bootDisk"]
        assert disk["id"] == vm["bootDisk"]
        assert disk["role"] == "BOOT" and disk["status"] == "ready"
        assert isinstance(disk["volumeGb"], int) and disk["volumeGb"] >= 25
        assert disk["attachedTo"] == ([] if vm["status"] == "terminated" else [vm["id"]])
    without = get(server, "/v2/vms", CLOUD).json()["items"]
    assert all(vm["expanded"] is None for vm in without)
    assert [vm["id"] for vm in without] == [vm["id"] for vm in vms]


def test_expand_the_other_attached_resources(server):
    query = "expand[0]=dataDisks&expand[1]=subnets&expand[2]=sshKeys&expand[3]=networkInterfaces"
    server.state.configure_account("sbx_b_expand_all", vm_count=40)
    vms = get(server, "/v2/vms?perPage=40&" + query, "sbx_b_expand_all").json()["items"]
    assert any(vm["dataDisks"] for vm in vms)
    for vm in vms:
        expanded = vm["expanded"]
        assert list(expanded) == ["dataDisks", "subnets", "sshKeys", "networkInterfaces"]
        assert [disk["id"] for disk in expanded["dataDisks"]] == vm["dataDisks"]
        assert all(disk["role"] == "DATA" for disk in expanded["dataDisks"])
        assert [subnet["id"] for subnet in expanded["subnets"]] == vm["subnets"]
        assert [key["id"] for key in expanded["sshKeys"]] == vm["sshKeys"]
        assert all(key["publicKey"].startswith("ssh-ed25519 ") for key in expanded["sshKeys"])
        assert [nic["id"] for nic in expanded["networkInterfaces"]] == vm["networkInterfaces"]


@pytest.mark.parametrize(
    "query",
    [
        "page=-1",
        "page=abc",
        "page=",
        "page=1.5",
        "perPage=0",
        "perPage=ten",
        "per_page=0",
        "perPage=-5",
        "status=bogus",
        "status[0]=Launched",
        "excludeStatus[]=running",
        "sort=price",
        "sort=",
        "order=up",
        "expand[0]=everything",
        "ids[0]=0x0000000000000000000000000000000000000001",
        "clusterId=par-1",
    ],
)
def test_bad_list_queries_are_400(server, query):
    response = get(server, "/v2/vms?" + query, CLOUD)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_request" and body["error"]


# --- GET /v2/vms/{id} ----------------------------------------------------------------------------


def test_get_one_vm(server):
    listed = get(server, "/v2/vms?expand[0]=publicIp", CLOUD).json()["items"]
    vm = next(vm for vm in listed if vm["publicIp"])
    response = get(server, f"/v2/vms/{vm['id']}?expand[0]=publicIp", CLOUD)
    assert response.status_code == 200
    single = response.json()
    # The plan's name, slug, vCPU and RAM are "set on list/create responses, omitted elsewhere".
    plan_fields = {"configurationName", "configurationSlug", "vcpu", "ramGb"}
    assert single == {name: value for name, value in vm.items() if name not in plan_fields}
    assert get(server, f"/v2/vms/{vm['id'].upper()}", CLOUD).json()["id"] == vm["id"]
    assert get(server, f"/v2/vms/{vm['id']}", CLOUD).json()["expanded"] is None


def test_get_an_unknown_or_malformed_vm_id(server):
    foreign = server.state.vms_for("sbx_b_someone_elses")[0]["id"]
    for vm_id in ("3f2c1a9e-5b7d-4c11-9e2a-7d4b8c6a1f00", foreign):
        response = get(server, f"/v2/vms/{vm_id}", CLOUD)
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "error": "VM not found"}
    for vm_id in (
        "not-a-uuid",
        "0x0000000000000000000000000000000000000001",
        "3f2c1a9e5b7d4c119e2a7d4b8c6a1f00",
    ):
        response = get(server, f"/v2/vms/{vm_id}", CLOUD)
        assert response.status_code == 400
        assert response.json() == {"code": "bad_request", "error": "Invalid VM id"}


# --- terminate -----------------------------------------------------------------------------------


def terminate(server, key, vm_id, **kwargs):
    return call(server, "POST", f"/v2/vms/{vm_id}/terminate", key, **kwargs)


def vm_now(server, key, vm_id):
    return get(server, f"/v2/vms/{vm_id}", key).json()


def test_terminate_then_terminated_after_the_delay(timed_server, clock):
    key = "sbx_b_terminate_flow"
    timed_server.state.configure_account(key, vm_count=10)
    vm = next(vm for vm in timed_server.state.vms_for(key) if vm["status"] == "launched" and vm["publicIp"])
    clock.now += 5
    response = terminate(timed_server, key, vm["id"], json={"ignored": True})
    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == vm["id"] and answer["status"] == "terminating"
    assert answer["allowedActions"] == [] and answer["terminatedAt"] is None
    assert parse_time(answer["updatedAt"]).timestamp() == pytest.approx(clock.now, abs=1)
    listed = {v["id"]: v for v in all_vms(timed_server, key)}
    assert listed[vm["id"]]["status"] == "terminating"

    again = terminate(timed_server, key, vm["id"])
    assert again.status_code == 406
    assert again.json() == {
        "code": "not_acceptable",
        "error": "The VM is terminating: terminate is not allowed now",
    }

    clock.now += 29
    assert vm_now(timed_server, key, vm["id"])["status"] == "terminating"
    clock.now += 1
    done = vm_now(timed_server, key, vm["id"])
    assert done["status"] == "terminated"
    assert parse_time(done["terminatedAt"]).timestamp() == pytest.approx(clock.now, abs=1)
    assert done["publicIp"] is None and done["paidUntil"] is None and done["allowedActions"] == []
    answer = get(timed_server, "/v2/vms", key).json()
    assert answer["pagination"]["totalRecords"] == 10  # terminated VMs stay listed
    assert (
        terminate(timed_server, key, vm["id"]).json()["error"]
        == "The VM is terminated: terminate is not allowed now"
    )


def test_terminate_answers_terminating_even_without_a_delay(timed_server):
    key = "sbx_b_terminate_no_delay"
    timed_server.state.deletion_delay = 0
    timed_server.state.configure_account(key, vm_count=6)
    vm = next(vm for vm in timed_server.state.vms_for(key) if "terminate" in vm["allowedActions"])
    assert terminate(timed_server, key, vm["id"]).json()["status"] == "terminating"
    assert vm_now(timed_server, key, vm["id"])["status"] == "terminated"


def test_a_failed_vm_may_be_terminated(timed_server):
    key = "sbx_b_terminate_failed"
    timed_server.state.configure_account(key, vm_count=6)
    failed = next(vm for vm in timed_server.state.vms_for(key) if vm["status"] == "failed")
    assert terminate(timed_server, key, failed["id"]).json()["status"] == "terminating"


@pytest.mark.parametrize(
    "status", ["new", "launching", "updating", "restarting", "softRebooting", "suspending"]
)
def test_terminating_a_vm_in_transition_is_406(timed_server, status):
    key = "sbx_b_in_transition"
    vm = timed_server.state.add_vm(key, name="moving-1", status=status)
    response = terminate(timed_server, key, vm["id"])
    assert response.status_code == 406
    assert response.json() == {
        "code": "not_acceptable",
        "error": f"The VM is {status}: terminate is not allowed now",
    }
    assert vm_now(timed_server, key, vm["id"])["status"] == status


def test_terminate_with_a_read_only_key_is_403(server):
    key = "sbx_b_read_only_key"
    server.state.configure_account(key, vm_count=6, read_only=True)
    vm = next(vm for vm in server.state.vms_for(key) if "terminate" in vm["allowedActions"])
    response = terminate(server, key, vm["id"])
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "error": "This API key lacks the vms:write scope"}
    assert vm_now(server, key, vm["id"])["status"] == vm["status"]
    assert get(server, "/v2/vms", key).status_code == 200  # reading needs only vms:read


def test_terminate_an_unknown_or_malformed_id(server):
    response = terminate(server, CLOUD, "3f2c1a9e-5b7d-4c11-9e2a-7d4b8c6a1f00")
    assert response.status_code == 404 and response.json() == {"code": "not_found", "error": "VM not found"}
    response = terminate(server, CLOUD, "0x0000000000000000000000000000000000000001")
    assert response.status_code == 400 and response.json() == {
        "code": "bad_request",
        "error": "Invalid VM id",
    }
    assert (
        call(server, "GET", "/v2/vms/3f2c1a9e-5b7d-4c11-9e2a-7d4b8c6a1f00/terminate", CLOUD).status_code
        == 405
    )


# --- add_vm and time -----------------------------------------------------------------------------


def test_add_vm_launches_after_the_delay(timed_server, clock):
    key = "sbx_b_launching_vm"
    vm = timed_server.state.add_vm(key, name="fresh-box-1", activate_after=10)
    assert vm["status"] == "launching" and vm["publicIp"] is None and vm["readySince"] is None
    assert vm["allowedActions"] == [] and UUID_RE.match(vm["id"])
    clock.now += 10
    launched = get(timed_server, f"/v2/vms/{vm['id']}?expand[]=publicIp", key).json()
    assert launched["status"] == "launched" and launched["name"] == "fresh-box-1"
    assert parse_time(launched["readySince"]).timestamp() == pytest.approx(clock.now, abs=1)
    assert "terminate" in launched["allowedActions"] and "removePublicIp" in launched["allowedActions"]
    assert IPV4_RE.match(launched["expanded"]["publicIp"]["address"])


def test_add_vm_overrides_and_refuses_duplicate_ids():
    state = SandboxState(preload_demo=False)
    vm_id = "3f2c1a9e-5b7d-4c11-9e2a-7d4b8c6a1f00"
    vm = state.add_vm("sbx_b_add_override", name="x", status="launched", id=vm_id, priceHourlyUsd=None)
    assert vm["id"] == vm_id and vm["priceHourlyUsd"] is None
    assert state.vms_for("sbx_b_add_override")[-1]["id"] == vm_id
    with pytest.raises(ValueError):
        state.add_vm("sbx_b_add_override", name="dup", id=vm_id.upper())
    with pytest.raises(ValueError):
        state.add_vm("sbx_b_add_override", name="bad", id="0x" + "ab" * 20)


def test_billing_rolls_over_every_hour(timed_server, clock):
    key = "sbx_b_hourly_billing"
    timed_server.state.configure_account(key, vm_count=8)
    before = {vm["id"]: vm for vm in timed_server.state.vms_for(key)}
    clock.now += 3600
    after = {vm["id"]: vm for vm in timed_server.state.vms_for(key)}
    for vm_id, vm in before.items():
        if vm["paidUntil"] is not None:
            later = after[vm_id]
            assert parse_time(later["paidUntil"]) == parse_time(vm["paidUntil"]) + timedelta(hours=1)
            assert parse_time(later["lastPaidAt"]) == parse_time(vm["paidUntil"])


# --- balances ------------------------------------------------------------------------------------


def test_balances(server):
    answer = get(server, "/v2/users/balances", CLOUD).json()
    assert isinstance(answer, list) and len(answer) == 1
    entitlement = answer[0]
    assert list(entitlement) == [
        "balance",
        "usage",
        "estimatedUsage",
        "overage",
        "totalDepositedAmount",
        "usageDaysLeft",
        "userId",
        "featureKey",
    ]
    money = ("balance", "usage", "estimatedUsage", "overage", "totalDepositedAmount")
    assert all(isinstance(entitlement[name], str) and Decimal(entitlement[name]) >= 0 for name in money)
    assert Decimal(entitlement["balance"]) + Decimal(entitlement["usage"]) == Decimal(
        entitlement["totalDepositedAmount"]
    )
    assert isinstance(entitlement["usageDaysLeft"], int)
    assert entitlement["featureKey"] == "compute"
    assert entitlement["userId"] == server.state.vms_for(CLOUD)[0]["userId"]
    assert get(server, "/v2/users/balances", CLOUD).json() == answer
    assert (
        get(server, "/v2/users/balances", "sbx_b_another_user").json()[0]["userId"] != entitlement["userId"]
    )


def test_balance_override_through_the_control_api(server):
    response = requests.post(
        server.url + "/_sandbox/accounts",
        json={
            "key": "sbx_b_broke_account",
            "vm_count": 2,
            "balance": {"balance": "0.42", "usageDaysLeft": 0},
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    entitlement = get(server, "/v2/users/balances", "sbx_b_broke_account").json()[0]
    assert entitlement["balance"] == "0.42" and entitlement["usageDaysLeft"] == 0
    assert entitlement["featureKey"] == "compute"


# --- faults, counting, control -------------------------------------------------------------------

B_READS = ["/v2/vms", "/v1/clusters", "/v1/datacenters", "/v2/users/balances"]


@pytest.mark.parametrize("path", B_READS)
def test_faults_spoil_b_reads(server, path):
    state = server.state
    state.set_faults(error_rate=1.0, error_status=503)
    assert get(server, path, CLOUD).status_code == 503
    state.set_faults(rate_limit_retry_after=9)
    response = get(server, path, CLOUD)
    assert response.status_code == 429 and response.headers["Retry-After"] == "9"
    state.set_faults(malformed=True)
    response = get(server, path, CLOUD)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    state.set_faults(wrong_shape=True)
    healthy_type = list if path == "/v2/users/balances" else dict
    shape = get(server, path, CLOUD).json()
    assert not isinstance(shape, healthy_type)
    state.set_faults(drop=True)
    with pytest.raises(requests.ConnectionError):
        get(server, path, CLOUD)
    state.clear_faults()
    assert isinstance(get(server, path, CLOUD).json(), healthy_type)


def test_faults_spoil_a_single_vm_and_come_before_routing(server):
    vm_id = server.state.vms_for(CLOUD)[0]["id"]
    server.state.set_faults(malformed=True, key=CLOUD)
    with pytest.raises(ValueError):
        get(server, f"/v2/vms/{vm_id}", CLOUD).json()
    server.state.set_faults(error_rate=1.0, key=CLOUD)
    assert get(server, "/vms/v2", CLOUD).status_code == 500  # faulted before it could be a 404
    assert get(server, "/v2/vms", PROD).status_code == 404  # other keys unaffected


def test_requests_to_b_paths_are_counted_by_path_and_key(server):
    state = server.state
    vm_id = state.vms_for(CLOUD)[0]["id"]
    get(server, "/v2/vms", CLOUD)
    requests.get(server.url + "/v2/vms", headers={"Authorization": f"X-API-KEY {CLOUD}"}, timeout=TIMEOUT)
    get(server, f"/v2/vms/{vm_id}", CLOUD)
    terminate(server, CLOUD, vm_id)
    get(server, "/v1/service/status")
    assert state.request_count(path="/v2/vms", key=CLOUD) == 2
    assert state.request_count(method="GET", path=f"/v2/vms/{vm_id}") == 1
    assert state.request_count(method="POST", path=f"/v2/vms/{vm_id}/terminate", key=CLOUD) == 1
    assert state.request_count(path="/v1/service/status") == 1
    assert state.request_count(key=CLOUD) == 4
    stats = requests.get(server.url + "/_sandbox/stats", timeout=TIMEOUT).json()
    assert stats["by_endpoint"]["GET /v2/vms"] == 2
    assert {"key": "…loud", "generation": "b", "vms": 9, "revoked": False} in stats["accounts"]


def test_control_api_configures_generation_paging_and_scopes(server):
    control = server.url + "/_sandbox"
    response = requests.post(
        control + "/accounts",
        json={
            "key": "sbx_control_b_acct",
            "vm_count": 30,
            "generation": "b",
            "page_base": 0,
            "max_per_page": 10,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200 and response.json()["vm_count"] == 30
    answer = get(server, "/v2/vms", "sbx_control_b_acct", params={"perPage": 50}).json()
    assert answer["pagination"]["currentPage"] == 0 and answer["pagination"]["perPage"] == 10
    assert len(answer["items"]) == 10

    requests.post(
        control + "/accounts",
        json={"key": "sbx_control_ro_b", "read_only": True, "generation": "b"},
        timeout=TIMEOUT,
    )
    vm = next(vm for vm in server.state.vms_for("sbx_control_ro_b") if "terminate" in vm["allowedActions"])
    assert terminate(server, "sbx_control_ro_b", vm["id"]).status_code == 403

    requests.post(
        control + "/accounts", json={"key": "sbx_control_a_acct", "generation": "a"}, timeout=TIMEOUT
    )
    assert get(server, "/vms/v3", "sbx_control_a_acct").status_code == 200

    response = requests.post(
        control + "/accounts/vms",
        json={"key": "sbx_control_b_acct", "name": "from-control", "activate_after": 0},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200 and response.json()["status"] == "launched"
    assert UUID_RE.match(response.json()["id"])


@pytest.mark.parametrize(
    "fields",
    [
        {"generation": "c"},
        {"generation": 2},
        {"page_base": 2},
        {"page_base": True},
        {"max_per_page": 0},
        {"max_per_page": "100"},
        {"read_only": "yes"},
        {"balance": "lots"},
        {"balance": {"colour": "green"}},
        {"balance": {"balance": 12.5}},
        {"balance": {"usageDaysLeft": -1}},
        {"generation": "b", "include_example": True},
    ],
)
def test_control_api_refuses_nonsense_account_options(server, fields):
    response = requests.post(
        server.url + "/_sandbox/accounts", json={"key": "sbx_b_nonsense_acct", **fields}, timeout=TIMEOUT
    )
    assert response.status_code == 400 and response.json()["error"]
    assert not server.state.has_account("sbx_b_nonsense_acct")


def test_a_read_only_baseline_key_cannot_delete(server):
    server.state.configure_account("sbx_read_only_base", vm_count=3, read_only=True)
    vm_id = server.state.vms_for("sbx_read_only_base")[0]["id"]
    response = call(server, "DELETE", "/vms/v3", "sbx_read_only_base", json={"vmId": vm_id})
    assert response.status_code == 403
    assert len(server.state.vms_for("sbx_read_only_base")) == 3


def test_runsandbox_lists_each_keys_generation():
    command = RunSandboxCommand()
    out = io.StringIO()
    thread = threading.Thread(
        target=call_command,
        args=(command,),
        kwargs={"port": 0, "vms_per_account": 1, "stdout": out},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "Quit with" not in out.getvalue():
        time.sleep(0.02)
    command.stop_event.set()
    thread.join(timeout=5)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line.startswith("  sbx_")}
    assert "generation b" in lines[CLOUD] and "Cloud" in lines[CLOUD]
    assert "generation a" in lines[STAGING]
    assert "generation baseline" in lines[PROD]
