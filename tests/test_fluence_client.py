"""The Fluence client against a mocked API: what it sends, how it retries, and how each failure is typed."""

import json
import logging
import pickle
import traceback
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from tests.test_fluence_models import EXAMPLE_VM_JSON
from vms.fluence import (
    ADAPTERS,
    AuthError,
    BadResponse,
    BaselineAdapter,
    FluenceClient,
    FluenceError,
    NotFound,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
    Vm,
)
from vms.fluence.client import parse_retry_after, thread_session

BASE = "https://api.fluence.dev"
KEY = "sk-test-SECRET-5b0e1f7c9a2d4e6f"
VM_ID = "0x0000000000000000000000000000000000000001"
LIST_URL = f"{BASE}/vms/v2"
DELETE_URL = f"{BASE}/vms/v3"


@pytest.fixture
def client() -> FluenceClient:
    return FluenceClient(base_url=BASE, api_key=KEY, connect_timeout=2.5, read_timeout=7.0)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def example_list() -> list:
    return [json.loads(EXAMPLE_VM_JSON)]


def assert_key_hidden(exc: BaseException) -> None:
    """The key is in no text an error can end up in: str, repr, args, a formatted traceback."""
    texts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    if isinstance(exc, FluenceError):
        texts.append(exc.user_message)
    for text in texts:
        assert KEY not in text
        assert KEY[-12:] not in text
    assert exc.__cause__ is None


# --- what is sent ------------------------------------------------------------------------------------------


def test_list_sends_both_auth_headers_and_timeouts(client, mocked):
    mocked.get(LIST_URL, json=example_list())

    vms = client.list_vms()

    assert [vm.id for vm in vms] == [VM_ID]
    assert isinstance(vms[0], Vm)
    assert vms[0].price_per_epoch == Decimal("0.298160")
    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert request.method == "GET"
    assert request.url == LIST_URL
    assert request.headers["X-API-KEY"] == KEY
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "fluence-portal/0.1"
    assert request.req_kwargs["timeout"] == (2.5, 7.0)
    assert not request.body


def test_list_answer_keeps_fluences_own_json_for_the_cache(client, mocked):
    body = json.dumps(example_list()).encode()
    mocked.get(LIST_URL, body=body, content_type="application/json")

    answer = client.list_answer()

    assert [vm.id for vm in answer.vms] == [VM_ID]
    assert answer.body == body  # kept as received, for the cache
    again = client.adapter.read_cached(answer.body)
    assert again.vms == answer.vms and len(mocked.calls) == 1


def test_list_answer_after_a_retried_get_keeps_only_the_answer(client, mocked):
    mocked.get(LIST_URL, status=503, json={"error": "busy"})
    mocked.get(LIST_URL, json=example_list())

    answer = client.list_answer()

    assert len(answer.vms) == 1 and json.loads(answer.body) == example_list()


def test_timeouts_default_to_settings(settings, mocked):
    settings.FLUENCE_CONNECT_TIMEOUT = 1.25
    settings.FLUENCE_READ_TIMEOUT = 4.5
    mocked.get(LIST_URL, json=[])
    client = FluenceClient(base_url=BASE + "/", api_key=KEY)

    assert client.list_vms() == []
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.25, 4.5)
    assert mocked.calls[0].request.url == LIST_URL


def test_delete_sends_exactly_the_vm_id(client, mocked):
    mocked.delete(
        DELETE_URL,
        json={},
        match=[matchers.json_params_matcher({"vmId": VM_ID}, strict_match=True)],
    )

    assert client.delete_vm(VM_ID) is None

    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert request.method == "DELETE"
    assert request.url == DELETE_URL
    assert json.loads(request.body) == {"vmId": VM_ID}
    assert request.headers["X-API-KEY"] == KEY
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.req_kwargs["timeout"] == (2.5, 7.0)


def test_delete_accepts_an_empty_or_text_success_body(client, mocked):
    mocked.delete(DELETE_URL, body="")
    mocked.delete(DELETE_URL, body="OK", content_type="text/plain")
    client.delete_vm(VM_ID)
    client.delete_vm(VM_ID)
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    "vm_id",
    [
        "",
        "0x1",
        "vm-name",
        "../vms/v2",
        "0x0000000000000000000000000000000000000001/x",
        None,
        1,
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    ],
)
def test_malformed_id_makes_no_call(client, mocked, vm_id):
    with pytest.raises(ValueError):
        client.delete_vm(vm_id)
    assert len(mocked.calls) == 0


def test_generation_a_paths_and_its_one_header(mocked):
    client = FluenceClient(base_url=BASE, api_key=KEY, generation="a", connect_timeout=1, read_timeout=2)
    mocked.get(f"{BASE}/vms/v3", json=example_list())
    mocked.delete(
        f"{BASE}/vms/v3", json={}, match=[matchers.json_params_matcher({"vmIds": [VM_ID]}, strict_match=True)]
    )

    assert [vm.id for vm in client.list_vms()] == [VM_ID]
    client.delete_vm(VM_ID)
    assert [call.request.method for call in mocked.calls] == ["GET", "DELETE"]
    for call in mocked.calls:
        assert call.request.headers["X-API-KEY"] == KEY
        assert "Authorization" not in call.request.headers


def test_generation_a_deletes_several_vms_in_one_call(mocked):
    client = FluenceClient(base_url=BASE, api_key=KEY, generation="a")
    other = "0x" + "ab" * 20
    mocked.delete(
        f"{BASE}/vms/v3",
        json={},
        match=[matchers.json_params_matcher({"vmIds": [VM_ID, other]}, strict_match=True)],
    )

    client.delete_vms([VM_ID, other])

    assert len(mocked.calls) == 1


def test_the_baseline_deletes_one_vm_per_call(client, mocked):
    other = "0x" + "ab" * 20
    for vm_id in (VM_ID, other):
        mocked.delete(
            DELETE_URL, json={}, match=[matchers.json_params_matcher({"vmId": vm_id}, strict_match=True)]
        )

    client.delete_vms([VM_ID, other])

    assert len(mocked.calls) == 2


def test_unknown_generation_and_bad_base_url():
    with pytest.raises(ValueError):
        FluenceClient(base_url=BASE, api_key=KEY, generation="v9")
    with pytest.raises(ValueError):
        FluenceClient(base_url="ftp://api.fluence.dev", api_key=KEY)
    with pytest.raises(ValueError):
        FluenceClient(base_url=BASE, api_key="")
    assert isinstance(ADAPTERS["baseline"], BaselineAdapter)
    assert ADAPTERS["baseline"].name == "baseline"


def test_client_repr_hides_the_key(client):
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert "api.fluence.dev" in repr(client)
    with pytest.raises(TypeError):
        pickle.dumps(client)


def test_redirects_are_not_followed(client, mocked):
    # Following one would send the key headers to whatever host the redirect names.
    mocked.get(LIST_URL, status=302, headers={"Location": "https://evil.example/steal"})
    with pytest.raises(BadResponse) as caught:
        client.list_vms()
    assert caught.value.status == 302
    assert len(mocked.calls) == 1
    assert_key_hidden(caught.value)


def test_no_cookie_carries_over_between_keys(mocked):
    mocked.get(LIST_URL, json=[], headers={"Set-Cookie": "session=for-key-one; Path=/"})
    mocked.get(LIST_URL, json=[])
    FluenceClient(base_url=BASE, api_key=KEY).list_vms()
    FluenceClient(base_url=BASE, api_key="another-key").list_vms()
    assert "Cookie" not in mocked.calls[1].request.headers


def test_one_pooled_session_per_thread_without_hidden_retries():
    import threading

    session = thread_session()
    assert thread_session() is session
    adapter = session.get_adapter(BASE)
    assert adapter.max_retries.total == 0
    others = []
    thread = threading.Thread(target=lambda: others.append(thread_session()))
    thread.start()
    thread.join()
    assert others[0] is not session


def test_one_log_line_per_call_without_the_key(client, mocked, caplog):
    mocked.get(LIST_URL, json=[])
    with caplog.at_level(logging.DEBUG, logger="vms.fluence"):
        client.list_vms()
    records = [r for r in caplog.records if r.name == "vms.fluence"]
    assert len(records) == 1
    line = records[0].getMessage()
    assert "GET" in line and "/vms/v2" in line and "200" in line and "ms" in line
    assert KEY not in line


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403])
@pytest.mark.parametrize(
    "body",
    [{"error": "Invalid API key"}, {"code": "unauthorized", "error": "Invalid API key"}],
)
def test_rejected_key_is_auth_error_with_the_upstream_text(client, mocked, status, body):
    mocked.get(LIST_URL, status=status, json=body)
    with pytest.raises(AuthError) as caught:
        client.list_vms()
    error = caught.value
    assert error.status == status
    assert error.upstream_message == "Invalid API key"
    assert f"HTTP {status}" in error.user_message
    assert "Invalid API key" in error.user_message
    assert "API key" in str(error)
    assert len(mocked.calls) == 1
    assert_key_hidden(error)


def test_auth_error_on_delete_too(client, mocked):
    mocked.delete(DELETE_URL, status=403, json={"code": "forbidden", "error": "missing scope vms:write"})
    with pytest.raises(AuthError) as caught:
        client.delete_vm(VM_ID)
    assert caught.value.upstream_code == "forbidden"
    assert "missing scope vms:write" in caught.value.user_message
    assert_key_hidden(caught.value)


def test_auth_error_without_json_body(client, mocked):
    mocked.get(LIST_URL, status=401, body="<html>nope</html>", content_type="text/html")
    with pytest.raises(AuthError) as caught:
        client.list_vms()
    assert caught.value.upstream_message is None
    assert "<html>" not in caught.value.user_message
    assert_key_hidden(caught.value)


def test_upstream_echo_of_the_key_is_redacted(client, mocked):
    mocked.get(LIST_URL, status=403, json={"error": f"Invalid API key {KEY}"})
    with pytest.raises(AuthError) as caught:
        client.list_vms()
    assert caught.value.upstream_message == "Invalid API key [key]"
    assert_key_hidden(caught.value)


def test_upstream_text_is_plain_and_truncated(client, mocked):
    mocked.get(LIST_URL, status=400, json={"error": "line one\nline\ttwo\x00 " + "x" * 1000})
    with pytest.raises(AuthError) as caught:
        client.list_vms()
    message = caught.value.upstream_message
    assert message.startswith("line one line two ")
    assert len(message) == 300
    assert message.endswith("…")
    assert "\n" not in caught.value.user_message


def test_not_found(client, mocked):
    mocked.delete(DELETE_URL, status=404, json={"error": "VM not found"})
    with pytest.raises(NotFound) as caught:
        client.delete_vm(VM_ID)
    assert caught.value.status == 404
    assert "VM not found" in caught.value.user_message
    assert len(mocked.calls) == 1
    assert_key_hidden(caught.value)


def test_rate_limited_with_seconds(client, mocked):
    mocked.get(LIST_URL, status=429, json={"error": "slow down"}, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as caught:
        client.list_vms()
    assert caught.value.retry_after == 30.0
    assert caught.value.status == 429
    assert "30 s" in caught.value.user_message
    assert len(mocked.calls) == 1  # reported at once: no retry, no sleep
    assert_key_hidden(caught.value)


def test_rate_limited_with_http_date(client, mocked):
    when = datetime.now(UTC) + timedelta(seconds=120)
    mocked.get(LIST_URL, status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(RateLimited) as caught:
        client.list_vms()
    assert 100 <= caught.value.retry_after <= 121
    assert len(mocked.calls) == 1
    assert_key_hidden(caught.value)


def test_rate_limited_without_or_with_garbage_retry_after(client, mocked):
    mocked.delete(DELETE_URL, status=429, headers={"Retry-After": "soon"})
    with pytest.raises(RateLimited) as caught:
        client.delete_vm(VM_ID)
    assert caught.value.retry_after is None
    assert len(mocked.calls) == 1


def test_parse_retry_after():
    now = datetime(2025, 4, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Tue, 01 Apr 2025 12:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Tue, 01 Apr 2025 11:00:00 GMT", now=now) == 0.0
    for value in (None, "", "-5", "1.5", "later", "Tue, 99 Foo 2025"):
        assert parse_retry_after(value) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_unavailable(client, mocked, status):
    mocked.get(LIST_URL, status=status, json={"error": "boom"})
    with pytest.raises(Unavailable) as caught:
        client.list_vms()
    assert caught.value.status == status
    assert f"HTTP {status}" in caught.value.user_message
    assert_key_hidden(caught.value)


def test_500_is_not_retried(client, mocked):
    mocked.get(LIST_URL, status=500)
    with pytest.raises(Unavailable):
        client.list_vms()
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_is_retried_once_on_gateway_errors(client, mocked, status):
    mocked.get(LIST_URL, status=status)
    mocked.get(LIST_URL, json=example_list())
    vms = client.list_vms()
    assert [vm.id for vm in vms] == [VM_ID]
    assert len(mocked.calls) == 2


def test_get_is_retried_only_once(client, mocked):
    mocked.get(LIST_URL, status=503)
    with pytest.raises(Unavailable):
        client.list_vms()
    assert len(mocked.calls) == 2


def test_get_is_retried_once_on_connection_errors(client, mocked):
    mocked.get(LIST_URL, body=requests.ConnectionError("connection reset"))
    mocked.get(LIST_URL, json=[])
    assert client.list_vms() == []
    assert len(mocked.calls) == 2


def test_other_4xx_is_a_plain_fluence_error(client, mocked):
    mocked.get(LIST_URL, status=418, json={"code": "teapot", "error": "busy"})
    with pytest.raises(FluenceError) as caught:
        client.list_vms()
    assert type(caught.value) is FluenceError
    assert caught.value.status == 418
    assert "busy" in caught.value.user_message
    assert_key_hidden(caught.value)


# The requests exceptions below carry the key in their own message, as a worst case: none may leak.
def _connect_timeout():
    return requests.ConnectTimeout(f"connect timed out; headers X-API-KEY={KEY}")


def _read_timeout():
    return requests.ReadTimeout(f"read timed out; Authorization: Bearer {KEY}")


def _dropped():
    return requests.ConnectionError(f"Connection aborted: RemoteDisconnected ({KEY})")


def _refused():
    reason = NewConnectionError(None, f"Failed to establish a new connection: [Errno 111] refused {KEY}")
    return requests.ConnectionError(MaxRetryError(None, "/vms/v3", reason))


def test_connect_timeout(client, mocked):
    mocked.get(LIST_URL, body=_connect_timeout())
    with pytest.raises(UpstreamTimeout) as caught:
        client.list_vms()
    assert caught.value.may_have_reached_server is False
    assert isinstance(caught.value, Unavailable)
    assert caught.value.status is None
    assert len(mocked.calls) == 2  # a GET whose connection never opened is retried once
    assert_key_hidden(caught.value)


def test_read_timeout(client, mocked):
    mocked.get(LIST_URL, body=_read_timeout())
    with pytest.raises(UpstreamTimeout) as caught:
        client.list_vms()
    assert caught.value.may_have_reached_server is True
    assert "7 s" in caught.value.user_message
    assert len(mocked.calls) == 1  # not retried: it would double an already long wait
    assert_key_hidden(caught.value)


def test_connection_error(client, mocked):
    mocked.get(LIST_URL, body=_dropped())
    with pytest.raises(Unavailable) as caught:
        client.list_vms()
    assert type(caught.value) is Unavailable
    assert caught.value.status is None
    assert len(mocked.calls) == 2
    assert_key_hidden(caught.value)


@pytest.mark.parametrize(
    ("make_error", "error_class", "may_have_reached"),
    [
        (_connect_timeout, UpstreamTimeout, False),
        (_read_timeout, UpstreamTimeout, True),
        (_dropped, Unavailable, True),
        (_refused, Unavailable, False),
    ],
)
def test_delete_network_failures_are_never_retried(client, mocked, make_error, error_class, may_have_reached):
    mocked.delete(DELETE_URL, body=make_error())
    mocked.delete(DELETE_URL, json={})
    with pytest.raises(error_class) as caught:
        client.delete_vm(VM_ID)
    assert caught.value.may_have_reached_server is may_have_reached
    assert len(mocked.calls) == 1
    assert_key_hidden(caught.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_delete_gateway_errors_are_never_retried(client, mocked, status):
    mocked.delete(DELETE_URL, status=status)
    mocked.delete(DELETE_URL, json={})
    with pytest.raises(Unavailable) as caught:
        client.delete_vm(VM_ID)
    assert caught.value.status == status
    assert caught.value.may_have_reached_server is True  # the outcome of the deletion is unknown
    assert len(mocked.calls) == 1


def test_non_json_200_is_bad_response(client, mocked):
    mocked.get(LIST_URL, body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(BadResponse) as caught:
        client.list_vms()
    assert caught.value.status == 200
    assert "<html>" not in caught.value.user_message
    assert len(mocked.calls) == 1
    assert_key_hidden(caught.value)


def test_empty_200_is_bad_response(client, mocked):
    mocked.get(LIST_URL, body="")
    with pytest.raises(BadResponse):
        client.list_vms()


@pytest.mark.parametrize(
    "body",
    [{"items": example_list()}, {"error": "x"}, "a string", 42, None, [1, 2], [{"id": "not-an-id"}]],
)
def test_wrong_shape_200_is_bad_response(client, mocked, body):
    mocked.get(LIST_URL, json=body)
    with pytest.raises(BadResponse) as caught:
        client.list_vms()
    assert_key_hidden(caught.value)


def test_client_returns_the_readable_vms_and_why_the_others_are_not(sandbox):
    sandbox.state.configure_account("sbx_partly_readable_1", vm_count=3)
    sandbox.state.add_vm("sbx_partly_readable_1", name="bad-ports", status="ACTIVE", ports="22")
    client = FluenceClient(base_url=sandbox.url, api_key="sbx_partly_readable_1")
    vms = client.list_vms()
    # A VM with one odd field is listed, the field said to be unreadable.
    assert len(vms) == 4 and client.unreadable == []
    (bad_ports,) = [vm for vm in vms if vm.name == "bad-ports"]
    assert bad_ports.ports == () and [item.field for item in bad_ports.unreadable] == ["ports"]

    # Only an item without a usable id is left out (the sandbox never sends one: Fluence's answer is
    # replayed with one added), and the client says why.
    items = sandbox.state.vms_for("sbx_partly_readable_1")
    bad_id = {**items[0], "id": "not-an-id", "vmName": "bad-id"}
    with responses.RequestsMock() as mocked:
        mocked.get("https://api.fluence.dev/vms/v2", json=[*items, bad_id])
        client = FluenceClient(base_url="https://api.fluence.dev", api_key="sbx_partly_readable_1")
        vms = client.list_vms()
    assert len(vms) == 4 and "bad-id" not in {vm.name for vm in vms}
    assert len(client.unreadable) == 1 and "id" in client.unreadable[0]


def test_errors_pickle_for_caching(client, mocked):
    mocked.get(LIST_URL, status=429, json={"error": "slow down"}, headers={"Retry-After": "5"})
    with pytest.raises(RateLimited) as caught:
        client.list_vms()
    again = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 (our own object)
    assert type(again) is RateLimited
    assert again.retry_after == 5.0
    assert str(again) == str(caught.value)


def test_user_messages_are_clear_sentences():
    assert (
        str(AuthError(status=403, upstream_message="Invalid API key"))
        == "Fluence refused this API key (HTTP 403): Invalid API key. Check that the key is still valid and "
        "has the needed permissions; if it was replaced, add the new one."
    )
    assert str(RateLimited(status=429, retry_after=2.4)).endswith("Try again in 2 s.")
    # Never a write's "may have been received": the messages serve reads too (a delete words that itself).
    assert str(Unavailable("dropped", may_have_reached_server=True)) == (
        "Fluence could not be reached: dropped. Try again in a moment."
    )
    assert str(UpstreamTimeout("no answer within 10 s", may_have_reached_server=True)).startswith(
        "Fluence did not answer in time: no answer within 10 s."
    )


# A VM list is a read the page repeats by itself: its messages say what failed and what the portal does next,
# never a write's advice, and no jargon.
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            Unavailable("the connection failed or was dropped", may_have_reached_server=True),
            "Fluence could not be reached: the connection failed or was dropped. "
            "The portal tries again at the next refresh.",
        ),
        (
            UpstreamTimeout("no answer within 10 s", may_have_reached_server=True),
            "Fluence did not answer in time: no answer within 10 s. "
            "The portal tries again at the next refresh.",
        ),
        (
            RateLimited(status=429, retry_after=7),
            "Fluence is limiting the number of requests for this key (HTTP 429). "
            "The portal waits 7 s before asking again.",
        ),
        (
            BadResponse("the answer is not JSON", status=200),
            "Fluence sent an answer the portal cannot read (HTTP 200): the answer is not JSON. Fluence may "
            "have changed its API. The portal keeps asking; if it lasts, tell the administrator.",
        ),
        (
            NotFound(status=404),
            "Fluence has no VM list for this key at its address (HTTP 404). "
            "If this lasts, remove the key and add it again.",
        ),
    ],
)
def test_read_messages_have_reading_advice(error, expected):
    assert error.read_message == expected
    for wording in ("may have been received", "reload to check", "API generation", "VM may already be gone"):
        assert wording not in error.read_message


def test_messages_for_a_bad_answer_use_no_jargon():
    assert "API generation" not in BadResponse("wrong shape").user_message
