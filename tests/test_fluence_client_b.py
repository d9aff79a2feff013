"""The generation-B client (today's `/v2/vms` API) against a mocked Fluence: every request it sends and
every documented answer, error body and status; and how a key's generation is detected."""

import json
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from vms.fluence import (
    AuthError,
    BadResponse,
    Conflict,
    FluenceClient,
    InsufficientBalance,
    NotAcceptable,
    NotFound,
    ReadOnlyKey,
    Unavailable,
    UpstreamTimeout,
    detect_generation,
)
from vms.fluence.client import MAX_PAGES

BASE = "https://api.fluence.dev"
KEY = "fl-test-SECRET-8c1d2e3f4a5b6c7d"
LIST_URL = f"{BASE}/v2/vms"
CLUSTER = "6f1c1b0e-0000-4000-8000-00000000c001"
DC = "dc-par-1"
EXPAND = {"expand[0]": "publicIp", "expand[1]": "bootDisk"}


def vm_object(number: int, **changes) -> dict:
    vm = {
        "id": f"9ba32273-49e6-4655-b193-{number:012x}",
        "userId": "7a2f0c55-1111-4222-8333-444455556666",
        "clusterId": CLUSTER,
        "configurationId": "0c8d2e1a-5555-4666-8777-888899990000",
        "configurationName": "Standard 4 vCPU / 8 GB",
        "name": f"web-{number}",
        "status": "launched",
        "restartRequired": False,
        "allowedActions": ["restart", "softReboot", "terminate"],
        "dataDisks": [],
        "subnets": [],
        "sshKeys": [],
        "networkInterfaces": [],
        "createdAt": "2026-11-30T08:12:44Z",
        "updatedAt": "2026-11-30T08:20:00Z",
        "priceHourlyUsd": "0.0685",
        "priceMonthlyUsd": "50.005",
        "vcpu": 4,
        "ramGb": 8,
        "publicIp": "1d0a4c2e-aaaa-4bbb-8ccc-dddddddddddd",
        "expanded": {"publicIp": {"id": "1d0a4c2e-aaaa-4bbb-8ccc-dddddddddddd", "address": "154.42.3.9"}},
    }
    vm.update(changes)
    return vm


def page(items: list, *, current: int, per_page: int = 100, total_pages: int = 1, total: int | None = None):
    total = len(items) if total is None else total
    return {
        "items": items,
        "pagination": {
            "totalRecords": total,
            "filteredRecords": total,
            "totalPages": total_pages,
            "currentPage": current,
            "perPage": per_page,
        },
    }


@pytest.fixture
def client() -> FluenceClient:
    return FluenceClient(base_url=BASE, api_key=KEY, generation="b", connect_timeout=2, read_timeout=5)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve_locations_and_balance(mocked, *, balance=None):
    mocked.get(f"{BASE}/v1/clusters", json={"items": [{"id": CLUSTER, "name": "par-1", "dcId": DC}]})
    mocked.get(
        f"{BASE}/v1/datacenters",
        json={
            "items": [
                {
                    "id": DC,
                    "countryCode": "FR",
                    "cityCode": "PAR",
                    "cityName": "Paris",
                    "index": 1,
                    "tier": 4,
                    "certifications": ["ISO/IEC 27001:2022"],
                    "slug": "fr-par-1",
                }
            ]
        },
    )
    mocked.get(
        f"{BASE}/v2/users/balances",
        json=balance
        if balance is not None
        else [
            {
                "balance": "125.40",
                "usage": "38.12",
                "estimatedUsage": "41.00",
                "overage": "0",
                "totalDepositedAmount": "500.00",
                "usageDaysLeft": 11,
                "userId": "7a2f0c55-1111-4222-8333-444455556666",
                "featureKey": "compute",
            }
        ],
    )


def serve_pages(mocked, vms: list, *, base: int, per_page: int = 100):
    """The account's VMs in pages numbered from `base`; the first answer is for a request without `page`."""
    chunks = [vms[i : i + per_page] for i in range(0, len(vms), per_page)] or [[]]
    total_pages = len(chunks) if vms else 0
    first = page(chunks[0], current=base, per_page=per_page, total_pages=total_pages, total=len(vms))
    mocked.get(
        LIST_URL,
        json=first,
        match=[matchers.query_param_matcher({"perPage": "100", **EXPAND}, strict_match=True)],
    )
    for index, chunk in enumerate(chunks[1:], start=1):
        answer = page(chunk, current=base + index, per_page=per_page, total_pages=total_pages, total=len(vms))
        query = {"page": str(base + index), "perPage": str(per_page), **EXPAND}
        mocked.get(LIST_URL, json=answer, match=[matchers.query_param_matcher(query, strict_match=True)])


def list_calls(mocked) -> list:
    return [call for call in mocked.calls if call.request.url.split("?")[0] == LIST_URL]


# --- what is sent ----------------------------------------------------------------------------------------


def test_every_request_carries_the_key_twice_and_never_as_bearer(client, mocked):
    serve_locations_and_balance(mocked)
    serve_pages(mocked, [vm_object(1)], base=1)

    client.list_vms()

    assert len(mocked.calls) == 4  # the list, clusters, datacenters, balances
    for call in mocked.calls:
        assert call.request.headers["X-API-KEY"] == KEY
        assert call.request.headers["Authorization"] == f"X-API-KEY {KEY}"
        assert "bearer" not in call.request.headers["Authorization"].lower()
        assert call.request.method == "GET"
        assert call.request.req_kwargs["timeout"] == (2, 5)


@pytest.mark.parametrize("base", [0, 1])
def test_250_vms_on_pages_counted_from_either_base_are_each_listed_once(client, mocked, base):
    vms = [vm_object(number) for number in range(250)]
    serve_locations_and_balance(mocked)
    serve_pages(mocked, vms, base=base)

    listed = client.list_vms()

    assert [vm.id for vm in listed] == [vm["id"] for vm in vms]
    pages_asked = sorted(
        dict(p.split("=") for p in call.request.url.split("?")[1].split("&")).get("page", "first")
        for call in list_calls(mocked)
    )
    assert pages_asked == sorted(["first", str(base + 1), str(base + 2)])


def test_the_page_size_the_server_grants_is_followed(client, mocked):
    vms = [vm_object(number) for number in range(120)]
    serve_locations_and_balance(mocked)
    serve_pages(mocked, vms, base=1, per_page=50)  # asked for 100, granted 50

    assert len(client.list_vms()) == 120
    assert len(list_calls(mocked)) == 3


def test_a_vm_on_two_pages_is_shown_once_and_an_empty_page_ends_the_list(client, mocked):
    serve_locations_and_balance(mocked)
    first = page([vm_object(1), vm_object(2)], current=0, per_page=2, total_pages=4, total=7)
    mocked.get(LIST_URL, json=first, match=[matchers.query_param_matcher({"perPage": "100", **EXPAND})])
    answers = {
        "1": page([vm_object(2), vm_object(3)], current=1, per_page=2, total_pages=4),
        "2": page([], current=2, per_page=2, total_pages=4),
        "3": page([vm_object(9)], current=3, per_page=2, total_pages=4),
    }
    for number, answer in answers.items():
        query = {"page": number, "perPage": "2", **EXPAND}
        mocked.get(LIST_URL, json=answer, match=[matchers.query_param_matcher(query)])

    answer = client.list_answer()

    assert [vm.name for vm in answer.vms] == ["web-1", "web-2", "web-3"]
    assert any("twice" in note for note in answer.notes)


def test_pages_beyond_the_cap_are_not_asked_for_and_the_list_says_so(client, mocked):
    serve_locations_and_balance(mocked)
    first = page([vm_object(0)], current=1, per_page=1, total_pages=MAX_PAGES + 50, total=MAX_PAGES + 50)
    mocked.get(LIST_URL, json=first, match=[matchers.query_param_matcher({"perPage": "100", **EXPAND})])
    for number in range(2, MAX_PAGES + 51):
        answer = page([vm_object(number)], current=number, per_page=1, total_pages=MAX_PAGES + 50)
        query = {"page": str(number), "perPage": "1", **EXPAND}
        mocked.get(LIST_URL, json=answer, match=[matchers.query_param_matcher(query)])

    answer = client.list_answer()

    assert len(list_calls(mocked)) == MAX_PAGES
    assert len(answer.vms) == MAX_PAGES
    assert answer.notes and f"first {MAX_PAGES}" in answer.notes[0]


def test_a_failing_page_fails_the_whole_list(client, mocked):
    serve_locations_and_balance(mocked)
    first = page([vm_object(1)], current=1, per_page=1, total_pages=3, total=3)
    mocked.get(LIST_URL, json=first, match=[matchers.query_param_matcher({"perPage": "100", **EXPAND})])
    mocked.get(
        LIST_URL,
        json=page([vm_object(2)], current=2, per_page=1, total_pages=3),
        match=[matchers.query_param_matcher({"page": "2", "perPage": "1", **EXPAND})],
    )
    mocked.get(
        LIST_URL,
        status=500,
        json={"code": "internal_server_error", "error": "boom"},
        match=[matchers.query_param_matcher({"page": "3", "perPage": "1", **EXPAND})],
    )

    with pytest.raises(Unavailable):
        client.list_vms()


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"items": []},
        {"items": [], "pagination": {"currentPage": "1", "perPage": 1, "totalPages": 1}},
        {"pagination": {}},
    ],
)
def test_a_list_without_usable_pagination_is_a_bad_response(client, mocked, body):
    serve_locations_and_balance(mocked)
    mocked.get(LIST_URL, json=body)

    with pytest.raises(BadResponse):
        client.list_vms()


def test_location_balance_and_public_address_are_read(client, mocked):
    serve_locations_and_balance(mocked)
    serve_pages(mocked, [vm_object(1)], base=1)

    answer = client.list_answer()

    vm = answer.vms[0]
    assert (vm.datacenter.country_code, vm.datacenter.city_code, vm.datacenter.tier) == ("FR", "PAR", 4)
    assert vm.datacenter.city_index == 1
    assert vm.public_ip == "154.42.3.9"
    assert vm.public_ip_id == "1d0a4c2e-aaaa-4bbb-8ccc-dddddddddddd"
    assert (vm.cost_per_day, vm.cost_per_month, vm.currency) == (Decimal("1.6440"), Decimal("50.005"), "USD")
    assert answer.balance.balance == Decimal("125.40") and answer.balance.days_left == 11
    # The cache reads the same answer back without asking Fluence.
    again = client.adapter.read_cached(answer.body)
    assert again.vms == answer.vms and again.balance == answer.balance


def test_locations_are_asked_for_once_per_hour_for_every_key(mocked):
    serve_locations_and_balance(mocked)
    serve_pages(mocked, [vm_object(1)], base=1)
    for key in (KEY, KEY + "-other"):
        FluenceClient(base_url=BASE, api_key=key, generation="b").list_vms()

    paths = [call.request.url.split("?")[0] for call in mocked.calls]
    assert paths.count(f"{BASE}/v1/clusters") == 1 and paths.count(f"{BASE}/v1/datacenters") == 1
    assert paths.count(LIST_URL) == 2 and paths.count(f"{BASE}/v2/users/balances") == 2


def test_failing_locations_and_balance_never_fail_the_list(client, mocked):
    mocked.get(f"{BASE}/v1/clusters", status=500, json={"code": "internal_server_error", "error": "x"})
    mocked.get(f"{BASE}/v2/users/balances", status=403, json={"code": "forbidden", "error": "no"})
    serve_pages(mocked, [vm_object(1)], base=1)

    answer = client.list_answer()

    assert len(answer.vms) == 1 and answer.vms[0].datacenter is None and answer.balance is None


def test_a_vm_is_asked_for_by_id(client, mocked):
    serve_locations_and_balance(mocked)
    vm = vm_object(7)
    mocked.get(
        f"{LIST_URL}/{vm['id']}", json=vm, match=[matchers.query_param_matcher(EXPAND, strict_match=True)]
    )

    found = client.get_vm(vm["id"])

    assert found.id == vm["id"] and found.datacenter.country_code == "FR"


def test_an_unknown_vm_is_not_found(client, mocked):
    mocked.get(
        f"{LIST_URL}/{vm_object(7)['id']}", status=404, json={"code": "not_found", "error": "VM not found"}
    )

    with pytest.raises(NotFound):
        client.get_vm(vm_object(7)["id"])


def test_ids_of_another_generation_are_refused_before_any_call(client, mocked):
    with pytest.raises(ValueError):
        client.delete_vm("0x" + "ab" * 20)
    with pytest.raises(ValueError):
        client.get_vm("../v1/clusters")
    assert not mocked.calls


# --- terminate ---------------------------------------------------------------------------------------------

VM_ID = vm_object(1)["id"]
TERMINATE_URL = f"{LIST_URL}/{VM_ID}/terminate"


def test_terminate_is_one_post_without_a_body(client, mocked):
    mocked.post(TERMINATE_URL, json=vm_object(1, status="terminating", allowedActions=[]))

    client.delete_vm(VM_ID)

    (call,) = mocked.calls
    assert call.request.method == "POST" and not call.request.body
    assert call.request.headers["Authorization"] == f"X-API-KEY {KEY}"


def test_terminate_is_never_retried(client, mocked):
    mocked.post(TERMINATE_URL, status=503, json={"code": "service_unavailable", "error": "later"})

    with pytest.raises(Unavailable) as caught:
        client.delete_vm(VM_ID)

    assert len(mocked.calls) == 1 and caught.value.may_have_reached_server


def test_terminate_that_times_out_may_have_happened(client, mocked):
    mocked.post(TERMINATE_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(UpstreamTimeout) as caught:
        client.delete_vm(VM_ID)

    assert caught.value.may_have_reached_server and len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (406, {"code": "not_acceptable", "error": "VM is launching"}, NotAcceptable, "current status"),
        (403, {"code": "forbidden", "error": "missing vms:write"}, ReadOnlyKey, "read-only"),
        (401, {"code": "unauthorized", "error": "bad key"}, AuthError, "refused this API key"),
        (409, {"code": "conflict", "error": "busy"}, Conflict, "conflict"),
        (422, {"code": "insufficient_balance", "error": "top up"}, InsufficientBalance, "balance"),
        (404, {"code": "not_found", "error": "VM not found"}, NotFound, "does not know"),
    ],
)
def test_terminate_errors_are_typed_with_fluences_text(client, mocked, status, body, error, words):
    mocked.post(TERMINATE_URL, status=status, json=body)

    with pytest.raises(error) as caught:
        client.delete_vm(VM_ID)

    assert words in caught.value.user_message
    assert body["error"] in caught.value.user_message
    assert caught.value.status == status and KEY not in caught.value.user_message


def test_a_400_of_todays_api_is_no_refused_key(client, mocked):
    mocked.get(LIST_URL, status=400, json={"code": "bad_request", "error": "perPage too large"})
    serve_locations_and_balance(mocked)

    with pytest.raises(Exception) as caught:
        client.list_vms()

    assert not isinstance(caught.value, AuthError)
    assert "perPage too large" in str(caught.value)


# --- which generation a key speaks -------------------------------------------------------------------------

B_PROBE = matchers.query_param_matcher({"perPage": "1"}, strict_match=True)


def probe_paths(mocked) -> list[str]:
    return [call.request.url.removeprefix(BASE) for call in mocked.calls]


def test_a_key_of_todays_api_is_found_first_with_its_vm_count(mocked):
    mocked.get(
        LIST_URL, json=page([vm_object(1)], current=1, per_page=1, total_pages=7, total=7), match=[B_PROBE]
    )

    found = detect_generation(base_url=BASE, api_key=KEY)

    assert (found.generation, found.vm_count) == ("b", 7)
    assert probe_paths(mocked) == ["/v2/vms?perPage=1"]
    assert mocked.calls[0].request.headers["Authorization"] == f"X-API-KEY {KEY}"


def test_a_2025_key_is_found_after_404s(mocked):
    mocked.get(LIST_URL, status=404, json={"error": "Not found"})
    mocked.get(f"{BASE}/vms/v3", json=[json.loads(json.dumps(vm_object(0, id="0x" + "ab" * 20)))])

    found = detect_generation(base_url=BASE, api_key=KEY)

    assert found.generation == "a"
    assert probe_paths(mocked) == ["/v2/vms?perPage=1", "/vms/v3"]


def test_the_draft_api_is_the_last_tried(mocked):
    mocked.get(LIST_URL, status=404)
    mocked.get(f"{BASE}/vms/v3", status=404)
    mocked.get(f"{BASE}/vms/v2", json=[])

    assert detect_generation(base_url=BASE, api_key=KEY).generation == "baseline"
    assert probe_paths(mocked) == ["/v2/vms?perPage=1", "/vms/v3", "/vms/v2"]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_on_the_first_probe_stops_at_once(mocked, status):
    mocked.get(LIST_URL, status=status, json={"code": "unauthorized", "error": "Invalid API key"})

    with pytest.raises(AuthError):
        detect_generation(base_url=BASE, api_key=KEY)

    assert len(mocked.calls) == 1


def test_a_first_probe_that_times_out_moves_on(mocked):
    mocked.get(LIST_URL, body=requests.ReadTimeout("read timed out"))
    mocked.get(f"{BASE}/vms/v3", json=[])

    assert detect_generation(base_url=BASE, api_key=KEY).generation == "a"


def test_when_only_the_timed_out_probe_could_have_answered_the_timeout_is_raised(mocked):
    mocked.get(LIST_URL, body=requests.ReadTimeout("read timed out"))
    mocked.get(f"{BASE}/vms/v3", status=404)
    mocked.get(f"{BASE}/vms/v2", status=404)

    with pytest.raises(UpstreamTimeout):
        detect_generation(base_url=BASE, api_key=KEY)


def test_nothing_answering_is_not_found(mocked):
    for path in ("/v2/vms", "/vms/v3", "/vms/v2"):
        mocked.get(BASE + path, status=404)

    with pytest.raises(NotFound):
        detect_generation(base_url=BASE, api_key=KEY)


def test_a_later_page_that_is_not_json_fails_the_whole_list(client, mocked):
    serve_locations_and_balance(mocked)
    first = page([vm_object(1)], current=1, per_page=1, total_pages=2, total=2)
    mocked.get(LIST_URL, json=first, match=[matchers.query_param_matcher({"perPage": "100", **EXPAND})])
    query = {"page": "2", "perPage": "1", **EXPAND}
    mocked.get(LIST_URL, body=b'{"items": [{"id": "trunc', match=[matchers.query_param_matcher(query)])

    with pytest.raises(BadResponse) as caught:
        client.list_vms()

    assert "not JSON" in caught.value.user_message and KEY not in caught.value.user_message
