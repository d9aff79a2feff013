"""vms/resilience.py: the circuit breaker per API address, the cool-down per key after a 429, and the wait
for another caller's list call. The clock is the test's: nothing here sleeps.

How a person sees them (list pages under faults, deleting during a cool-down, one call for many watchers)
is in tests/test_faults.py."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from vms import resilience, services

BASE_URL = "https://api.fluence.dev"


class Clock:
    """Stands in for the `time` module inside vms/resilience.py: time passes only when a test says so."""

    def __init__(self):
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(resilience, "time", clock)
    return clock


@pytest.fixture
def breaker(settings, clock):
    settings.FLUENCE_CIRCUIT_FAILURES = 3
    settings.FLUENCE_CIRCUIT_SECONDS = 30
    return settings


# --- the circuit breaker ------------------------------------------------------------------------------


def test_the_circuit_opens_at_the_threshold_of_failures_and_not_before(breaker):
    for _ in range(2):
        resilience.circuit_record_failure(BASE_URL)
    assert resilience.circuit_state(BASE_URL) == resilience.CircuitState(open=False, retry_in=0.0)

    resilience.circuit_record_failure(BASE_URL)

    assert resilience.circuit_state(BASE_URL) == resilience.CircuitState(open=True, retry_in=30.0)
    assert resilience.circuit_state("https://another.example") == resilience.CircuitState(False, 0.0)


def test_an_open_circuit_says_when_to_try_again(breaker, clock):
    for _ in range(3):
        resilience.circuit_record_failure(BASE_URL)
    clock.now += 20
    assert resilience.circuit_state(BASE_URL) == resilience.CircuitState(open=True, retry_in=10.0)


def test_after_the_pause_one_caller_gets_the_trial_call_and_the_others_still_wait(breaker, clock):
    for _ in range(3):
        resilience.circuit_record_failure(BASE_URL)
    clock.now += 30

    trial = resilience.circuit_state(BASE_URL)
    others = [resilience.circuit_state(BASE_URL) for _ in range(3)]

    assert trial.open is False
    assert others == [resilience.CircuitState(open=True, retry_in=1.0)] * 3


def test_a_failed_trial_opens_the_circuit_again_at_once(breaker, clock):
    for _ in range(3):
        resilience.circuit_record_failure(BASE_URL)
    clock.now += 30
    assert resilience.circuit_state(BASE_URL).open is False  # the trial call goes out
    breaker.FLUENCE_CIRCUIT_FAILURES = 100

    resilience.circuit_record_failure(
        BASE_URL
    )  # one failure is enough when half open, whatever the threshold

    assert resilience.circuit_state(BASE_URL) == resilience.CircuitState(open=True, retry_in=30.0)
    clock.now += 30
    assert resilience.circuit_state(BASE_URL).open is False  # and a new trial after the next pause


def test_a_successful_trial_closes_the_circuit_and_forgets_the_failures(breaker, clock):
    for _ in range(3):
        resilience.circuit_record_failure(BASE_URL)
    clock.now += 30
    assert resilience.circuit_state(BASE_URL).open is False

    resilience.circuit_record_success(BASE_URL)

    assert [resilience.circuit_state(BASE_URL).open for _ in range(3)] == [False] * 3
    for _ in range(2):
        resilience.circuit_record_failure(BASE_URL)
    assert resilience.circuit_state(BASE_URL).open is False  # counting starts again from nothing


@pytest.mark.django_db
def test_one_accounts_garbage_never_opens_the_circuit_for_the_others(
    alice_client, user, api_key, sandbox, settings
):
    settings.FLUENCE_CIRCUIT_FAILURES = 2
    # The healthy account's list stays fresh meanwhile: a success of its own would reset the count.
    settings.FLUENCE_CACHE_SECONDS = 60
    alice_client.get(reverse("vms:list"))
    settings.FLUENCE_CACHE_SECONDS = 0
    services.apikey_create(owner=user, label="Odd", secret="sbx_garbage_answers_01", base_url=sandbox.url)
    sandbox.state.set_faults(key="sbx_garbage_answers_01", wrong_shape=True)
    sandbox.state.reset_counts()
    for _ in range(5):
        alice_client.get(reverse("vms:list"))
    assert sandbox.state.request_count(key="sbx_garbage_answers_01") == 5  # five answers it cannot read
    assert resilience.circuit_state(sandbox.url).open is False
    assert "pauses its calls" not in alice_client.get(reverse("vms:list")).content.decode()


# --- the cool-down after a 429 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        (45, 45),
        (None, 30),  # Fluence named no time: the default
        (0, 30),
        (-5, 30),
        (86_400, 900),  # a day asked for: clamped to the longest cool-down
    ],
)
def test_a_cool_down_lasts_what_fluence_asked_within_the_limits(settings, clock, retry_after, waited):
    settings.FLUENCE_DEFAULT_COOLDOWN_SECONDS = 30
    settings.FLUENCE_MAX_COOLDOWN_SECONDS = 900

    until = resilience.cooldown_start(key_id=7, retry_after=retry_after)

    assert until == clock.now + waited
    assert resilience.cooldown_remaining(key_id=7) == waited
    assert resilience.cooldown_remaining(key_id=8) == 0.0  # per key
    clock.now += waited - 1
    assert resilience.cooldown_remaining(key_id=7) == 1.0
    clock.now += 1
    assert resilience.cooldown_remaining(key_id=7) == 0.0


def test_a_cool_down_lives_in_the_shared_cache_only(settings, clock):
    settings.FLUENCE_MAX_COOLDOWN_SECONDS = 900
    resilience.cooldown_start(key_id=7, retry_after=120)
    assert resilience.cooldown_remaining(key_id=7) == 120.0
    cache.clear()  # what every process reads (Redis in production): emptied, nothing is left to wait for
    assert resilience.cooldown_remaining(key_id=7) == 0.0


# --- the gate: everything above, read once ------------------------------------------------------------


def test_the_gate_answers_from_what_it_read_when_made(breaker, clock, settings):
    settings.FLUENCE_MAX_COOLDOWN_SECONDS = 900
    resilience.cooldown_start(key_id=7, retry_after=60)
    gate = resilience.Gate(key_id=7, base_url=BASE_URL)
    for _ in range(3):
        resilience.circuit_record_failure(BASE_URL)  # after the gate was made

    assert gate.cooldown_remaining() == 60.0
    assert gate.circuit().open is False
    assert resilience.Gate(key_id=7, base_url=BASE_URL).circuit().open is True


def test_a_success_through_the_gate_closes_a_circuit_that_had_failures(breaker):
    for _ in range(2):
        resilience.circuit_record_failure(BASE_URL)
    resilience.Gate(key_id=7, base_url=BASE_URL).record_success()
    resilience.circuit_record_failure(BASE_URL)
    resilience.circuit_record_failure(BASE_URL)
    assert resilience.circuit_state(BASE_URL).open is False  # two, not four: the count started again


# --- waiting for another caller's list call -----------------------------------------------------------


def test_a_waiter_takes_the_result_as_soon_as_it_is_there(settings, clock):
    holder = resilience.SingleFlight(41)
    assert holder.acquire()
    answers = iter([None, None, "the list"])

    assert resilience.SingleFlight(41).wait_for(lambda: next(answers), poll=0.5) == "the list"
    assert clock.sleeps == [0.5, 0.5]


def test_a_waiter_reads_once_more_when_the_holder_lets_go_without_a_result(settings, clock):
    holder = resilience.SingleFlight(42)
    assert holder.acquire()
    reads = []

    def read():
        reads.append(len(reads))
        if len(reads) == 2:
            holder.release()  # the holder failed: it leaves no result
        return None

    assert resilience.SingleFlight(42).wait_for(read) is None
    assert reads == [0, 1, 2] and len(clock.sleeps) == 1


def test_a_waiter_gives_up_after_the_longest_a_call_may_take(settings, clock):
    settings.FLUENCE_TOTAL_TIMEOUT = 3.0
    holder = resilience.SingleFlight(43)
    assert holder.acquire()
    started = clock.now

    assert resilience.SingleFlight(43).wait_for(lambda: None, poll=1.0) is None
    assert clock.now - started == 6.0  # twice the total deadline: the other API generations are tried too
