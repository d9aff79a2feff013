"""Fault injection: every fault the sandbox can produce ends in a clear message beside the affected
account, never a 500; the audit trail stays complete and no DELETE is retried."""

import threading
import time

import pytest
from django.urls import reverse

from tests.factories import deletion_rows
from vms import fetching, resilience, selectors, services, vm_cache
from vms.models import ApiKey

pytestmark = pytest.mark.django_db

KEY = "sbx_fault_injection_01"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/"}

# fault -> (sandbox faults, the message a person reads for a list call)
FAULTS = {
    "timeout": ({"latency_ms": 900}, "did not answer in time"),
    "500": ({"error_rate": 1.0, "error_status": 500}, "HTTP 500"),
    "502": ({"error_rate": 1.0, "error_status": 502}, "HTTP 502"),
    "503": ({"error_rate": 1.0, "error_status": 503}, "HTTP 503"),
    "429": ({"rate_limit_retry_after": 40}, "429"),
    "malformed": ({"malformed": True}, "the answer is not JSON"),
    "wrong_shape": ({"wrong_shape": True}, "the VM list is not a JSON array"),
    "drop": ({"drop": True}, "connection"),
    # A hostile server: one byte every 100 ms (each within the read timeout: only the total deadline ends
    # it), a body past the size cap, and a chunked body that never ends.
    "trickle": ({"trickle_ms": 100}, "no complete answer within 1 s"),
    "huge_body": ({"huge_body_mb": 3}, "more than 1,048,576 bytes"),
    "endless": ({"endless": True}, "more than 1,048,576 bytes"),
}


@pytest.fixture
def fast_timeouts(settings):
    settings.FLUENCE_READ_TIMEOUT = 0.4
    settings.FLUENCE_CONNECT_TIMEOUT = 0.4
    settings.FLUENCE_CACHE_SECONDS = 0
    settings.FLUENCE_TOTAL_TIMEOUT = 1.0
    settings.FLUENCE_MAX_RESPONSE_BYTES = 1024 * 1024


@pytest.fixture
def api_key(user, sandbox, fast_timeouts):
    sandbox.state.configure_account(KEY, vm_count=10)
    sandbox.state.deletion_delay = 60
    yield services.apikey_create(owner=user, label="Faulty", secret=KEY, base_url=sandbox.url)
    sandbox.state.deletion_delay = 3.0
    sandbox.state.set_revoked(KEY, False)


@pytest.fixture
def healthy_key(user, sandbox):
    sandbox.state.configure_account("sbx_fault_healthy_01", vm_count=4)
    return services.apikey_create(
        owner=user, label="Healthy", secret="sbx_fault_healthy_01", base_url=sandbox.url
    )


@pytest.fixture
def request_thread_sleeps(monkeypatch):
    """Every sleep the test's own thread (the request) asks for, in seconds; the sandbox's are left out."""
    sleeps, sleep, mine = [], time.sleep, threading.current_thread()

    def recorded(seconds):
        if threading.current_thread() is mine:
            sleeps.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", recorded)
    return sleeps


def _vm(sandbox):
    return next(vm for vm in sandbox.state.vms_for(KEY) if vm["status"] == "ACTIVE")


@pytest.mark.parametrize("fault", FAULTS)
def test_list_and_detail_under_each_fault(
    alice_client, api_key, healthy_key, sandbox, request_thread_sleeps, fault
):
    faults, message = FAULTS[fault]
    vm = _vm(sandbox)
    assert vm["vmName"] in alice_client.get(reverse("vms:list")).content.decode()  # last good data, kept
    sandbox.state.set_faults(key=KEY, **faults)
    for url, headers in (
        (reverse("vms:list"), {}),
        (reverse("vms:list"), HX),
        (reverse("vms:detail", args=[api_key.pk, vm["id"]]), {}),
        (reverse("vms:detail_status", args=[api_key.pk, vm["id"]]), HX),
    ):
        response = alice_client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code)
        body = response.content.decode()
        assert message in body, (url, body[:2000])
        assert vm["id"] in body  # the last good data is still shown …
        assert "showing data from" in body.lower()  # … marked with its time
        # A read is worded as one: never a deletion's advice, and no jargon.
        for wording in ("may have been received", "reload to check", "API generation"):
            assert wording not in body, (url, wording)
        if url == reverse("vms:list"):
            assert "could not load this account&#x27;s VMs: " in body
    assert max(request_thread_sleeps, default=0) < 1  # never slept on Retry-After (hanging: the deadline)
    listing = alice_client.get(reverse("vms:list")).content.decode()
    assert "Healthy" in listing and "Faulty (…n_01)" in listing  # the other account is untouched


def test_a_key_revoked_mid_session(alice_client, api_key, healthy_key, sandbox):
    alice_client.get(reverse("vms:list"))
    sandbox.state.set_revoked(KEY, True)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "refused this API key" in body and "API key revoked" in body and "Manage your keys" in body
    assert "showing data from" in body


# What a DELETE meets under each fault (the sandbox garbles only list bodies, so a DELETE under
# "malformed" or "wrong_shape" goes through).
DELETE_OUTCOMES = {
    "timeout": "unknown",
    "500": "unknown",
    "502": "unknown",
    "503": "unknown",
    "429": "failed",
    "malformed": "succeeded",
    "wrong_shape": "succeeded",
    "drop": "unknown",
    # Only reads are spoilt by these: a DELETE answers as usual.
    "trickle": "succeeded",
    "huge_body": "succeeded",
    "endless": "succeeded",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_delete_under_each_fault_is_audited_and_never_retried(
    alice_client, api_key, sandbox, settings, fault
):
    settings.FLUENCE_CACHE_SECONDS = 60  # the page was loaded while Fluence was fine
    faults, _ = FAULTS[fault]
    vm = _vm(sandbox)
    alice_client.get(reverse("vms:list"))
    sandbox.state.set_faults(key=KEY, **faults)
    sandbox.state.reset_counts()
    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, **HX
    )
    assert response.status_code == 200
    expected = DELETE_OUTCOMES[fault]
    label = {"unknown": "Outcome unknown", "failed": "Failed", "succeeded": "Deleting"}[expected]
    assert label in response.content.decode()
    assert sandbox.state.request_count(method="DELETE", path="/vms/v3") == 1  # never retried
    intent = deletion_rows().get(kind="intent")
    outcome = deletion_rows().get(kind="outcome")
    assert intent.correlation_id == outcome.correlation_id
    assert outcome.outcome == expected
    assert outcome.message


def test_adding_a_key_under_each_fault_saves_nothing(alice_client, sandbox, fast_timeouts, settings):
    settings.KEY_ADD_RATE_LIMIT = (100, 600)  # one try per fault, more than the default allows
    for fault, (faults, _) in FAULTS.items():
        sandbox.state.set_faults(**faults)
        response = alice_client.post(
            reverse("vms:key_add"),
            {"label": f"New {fault}", "secret": "sbx_new_key_under_fault", "base_url": sandbox.url},
        )
        assert response.status_code in (400, 429), fault
        assert "not saved" in response.content.decode() or "slow down" in response.content.decode(), fault
        sandbox.state.clear_faults()
    assert ApiKey.objects.count() == 0


# --- circuit breaker --------------------------------------------------------------------------------------


def test_the_circuit_opens_stops_hammering_and_recovers(alice_client, api_key, sandbox, settings):
    settings.FLUENCE_CIRCUIT_FAILURES = 3
    settings.FLUENCE_CIRCUIT_SECONDS = 1
    sandbox.state.set_faults(error_rate=1.0, error_status=503)
    for _ in range(3):
        alice_client.get(reverse("vms:list"))
    calls = sandbox.state.request_count(path="/vms/v2")
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "pauses its calls" in body
    for _ in range(5):
        alice_client.get(reverse("vms:list"))
    assert sandbox.state.request_count(path="/vms/v2") == calls  # open: no call reaches Fluence
    sandbox.state.clear_faults()
    time.sleep(1.1)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert "pauses its calls" not in body and "account-problem" not in body  # recovered by itself
    assert resilience.circuit_state(sandbox.url).open is False


def test_a_refused_key_never_opens_the_circuit_for_other_keys(alice_client, user, api_key, sandbox, settings):
    settings.FLUENCE_CIRCUIT_FAILURES = 2
    sandbox.state.set_revoked(KEY, True)
    # The refused key alone: no success of another key resets the count in between.
    for _ in range(5):
        assert "refused this API key" in alice_client.get(reverse("vms:list")).content.decode()
    assert sandbox.state.request_count(key=KEY) >= 5
    assert resilience.circuit_state(sandbox.url).open is False
    sandbox.state.configure_account("sbx_fault_healthy_01", vm_count=4)
    services.apikey_create(owner=user, label="Healthy", secret="sbx_fault_healthy_01", base_url=sandbox.url)
    assert "Healthy" in alice_client.get(reverse("vms:list")).content.decode()


# --- 429 cool-down ----------------------------------------------------------------------------------------


def test_a_429_cools_the_key_down_without_sleeping(
    alice_client, api_key, healthy_key, sandbox, request_thread_sleeps
):
    alice_client.get(reverse("vms:list"))
    sandbox.state.set_faults(key=KEY, rate_limit_retry_after=120)
    body = alice_client.get(reverse("vms:list")).content.decode()
    assert max(request_thread_sleeps, default=0) < 1  # the 120 s are not waited for
    assert "429" in body
    sandbox.state.clear_faults()
    calls = sandbox.state.request_count(key=KEY)
    for _ in range(3):
        body = alice_client.get(reverse("vms:list")).content.decode()
    assert sandbox.state.request_count(key=KEY) == calls  # cooling down: the key is left alone
    assert "waits 1" in body or "waits 12" in body  # "the portal waits 120 s" (or 119)
    assert "Healthy" in body
    # Deleting during the cool-down is refused before anything is sent or audited.
    vm = _vm(sandbox)
    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]), {"confirm": vm["vmName"]}, **HX
    )
    assert response.status_code == 400
    assert "Nothing was sent" in response.content.decode()
    assert sandbox.state.request_count(method="DELETE") == 0
    assert deletion_rows().count() == 0


# --- single flight ----------------------------------------------------------------------------------------


def test_concurrent_refreshes_of_one_key_make_one_upstream_call(user, api_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 30
    sandbox.state.set_faults(key=KEY, latency_ms=300)
    sandbox.state.reset_counts()
    account = selectors.account_of(api_key)
    results = []

    def watch():
        # What each request thread does for this key (the part that needs no database).
        results.append(fetching.fetch(account, KEY, "baseline"))

    threads = [threading.Thread(target=watch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(len(result.vms) == 10 and not result.problem for result in results)
    assert sandbox.state.request_count(key=KEY, path="/vms/v2") == 1


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lock_kept_past_its_timeout_is_left_to_whoever_took_it_since():
    from django.core.cache import cache

    clock = _Clock()
    flight = resilience.SingleFlight(987, clock=clock)
    assert flight.acquire()
    # This caller's lock expired during a very slow call, and another caller took the key since.
    cache.set(flight.lock_key, "someone else", 60)
    clock.now += flight.timeout + 5
    assert flight.release_operations() == []  # no blind delete in the round trip that stores the list…
    flight.release()  # …only the careful release, which finds the lock is not ours
    assert cache.get(flight.lock_key) == "someone else"
    cache.delete(flight.lock_key)


def test_a_lock_released_together_with_the_lists_writes_is_released_once():
    from django.core.cache import cache

    flight = resilience.SingleFlight(990)
    assert flight.acquire_reading(vm_cache.fresh_key(990)) == (True, None)
    assert flight.release_operations() == [("delete", flight.lock_key)]
    cache.delete(flight.lock_key)  # as the store's round trip does
    assert resilience.SingleFlight(990).acquire()  # someone else takes it at once…
    flight.release()  # …and the first holder's release in `finally` leaves their lock alone
    assert cache.get(flight.lock_key) is not None
    cache.delete(flight.lock_key)


def test_a_lock_released_in_time_is_deleted_at_once():
    from django.core.cache import cache

    flight = resilience.SingleFlight(988)
    assert flight.acquire()
    assert not resilience.SingleFlight(988).acquire()
    flight.release()
    assert cache.get(flight.lock_key) is None
    assert resilience.SingleFlight(988).acquire()
    cache.delete(flight.lock_key)


def test_a_list_stays_fresh_for_the_cache_interval_then_is_asked_again(user, api_key, sandbox, settings):
    settings.FLUENCE_CACHE_SECONDS = 1  # the shortest interval the cache's own expiry keeps (whole seconds)
    account = selectors.account_of(api_key)
    sandbox.state.reset_counts()
    first = fetching.fetch(account, KEY, "baseline")
    assert fetching.fetch(account, KEY, "baseline").fetched_at == first.fetched_at
    assert sandbox.state.request_count(key=KEY, path="/vms/v2") == 1
    time.sleep(1.2)
    second = fetching.fetch(account, KEY, "baseline")
    assert second.fetched_at > first.fetched_at and not second.problem
    assert sandbox.state.request_count(key=KEY, path="/vms/v2") == 2
    # Forgetting a key's list (after a deletion) asks again at once.
    vm_cache.forget(api_key.pk)
    fetching.fetch(account, KEY, "baseline")
    assert sandbox.state.request_count(key=KEY, path="/vms/v2") == 3
