"""Staying useful while Fluence struggles: a circuit breaker per API base URL, a cool-down per key after a
429, and single-flight list calls. All state lives in Django's cache, so every app process shares it when
Redis is configured. Nothing here ever sleeps on Retry-After."""

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from fluence_portal.cache import run_together
from vms import metrics

logger = logging.getLogger("vms.resilience")


def _url_token(base_url: str) -> str:
    return hashlib.sha256(base_url.encode()).hexdigest()[:16]


# --- cool-down after a 429 ------------------------------------------------------------------------------


def cooldown_start(*, key_id: int, retry_after: float | None) -> float:
    """Fluence asked this key to wait: remember until when (default when it named no time)."""
    seconds = retry_after if retry_after and retry_after > 0 else settings.FLUENCE_DEFAULT_COOLDOWN_SECONDS
    seconds = min(seconds, settings.FLUENCE_MAX_COOLDOWN_SECONDS)
    until = time.time() + seconds
    cache.set(_cooldown_key(key_id), until, timeout=int(seconds) + 1)
    metrics.cooldown_started()
    logger.info("key %s cooling down for %.0f s after a 429", key_id, seconds)
    return until


def _cooldown_key(key_id: int) -> str:
    return f"fluence:cooldown:{key_id}"


def cooldown_remaining(*, key_id: int) -> float:
    return _seconds_until(cache.get(_cooldown_key(key_id)))


def _seconds_until(until: float | None) -> float:
    return max(0.0, until - time.time()) if until else 0.0


# --- circuit breaker per base URL -----------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitState:
    open: bool
    retry_in: float  # seconds until a trial call is allowed


def _failures_key(base_url: str) -> str:
    return f"fluence:circuit:failures:{_url_token(base_url)}"


def _opened_key(base_url: str) -> str:
    return f"fluence:circuit:opened:{_url_token(base_url)}"


def circuit_state(base_url: str) -> CircuitState:
    return _circuit_state(base_url, cache.get(_opened_key(base_url)))


def _circuit_state(base_url: str, opened_until: float | None) -> CircuitState:
    if opened_until is None:
        return CircuitState(open=False, retry_in=0.0)
    remaining = opened_until - time.time()
    if remaining > 0:
        return CircuitState(open=True, retry_in=remaining)
    # Half-open: one caller (in any process) gets the trial call, the others still wait.
    if cache.add(f"fluence:circuit:trial:{_url_token(base_url)}", 1, timeout=int(_call_budget()) + 1):
        return CircuitState(open=False, retry_in=0.0)
    return CircuitState(open=True, retry_in=1.0)


def circuit_snapshot(base_url: str) -> tuple[str, int]:
    """(state: "closed", "open" or "half_open", consecutive failures), for monitoring: read without taking
    the half-open trial call that circuit_state would take."""
    values = cache.get_many([_opened_key(base_url), _failures_key(base_url)])
    opened_until = values.get(_opened_key(base_url))
    if opened_until is None:
        state = "closed"
    elif opened_until > time.time():
        state = "open"
    else:
        state = "half_open"
    return state, int(values.get(_failures_key(base_url)) or 0)


def circuit_record_success(base_url: str) -> None:
    if cache.get(_failures_key(base_url)) or cache.get(_opened_key(base_url)) is not None:
        cache.delete_many(
            [_failures_key(base_url), _opened_key(base_url), f"fluence:circuit:trial:{_url_token(base_url)}"]
        )
        logger.info("circuit for %s closed again", base_url)


def circuit_record_failure(base_url: str) -> None:
    """An upstream failure that says nothing about one key (5xx, timeout, refused, garbage)."""
    key = _failures_key(base_url)
    cache.add(key, 0, timeout=settings.FLUENCE_CIRCUIT_SECONDS * 4)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.FLUENCE_CIRCUIT_SECONDS * 4)
        failures = 1
    half_open = cache.get(_opened_key(base_url)) is not None
    if failures >= settings.FLUENCE_CIRCUIT_FAILURES or half_open:
        until = time.time() + settings.FLUENCE_CIRCUIT_SECONDS
        cache.set(_opened_key(base_url), until, timeout=settings.FLUENCE_CIRCUIT_SECONDS * 4)
        cache.delete(f"fluence:circuit:trial:{_url_token(base_url)}")
        metrics.circuit_opened(base_url)
        logger.warning(
            "circuit for %s open for %s s after %s failures",
            base_url,
            settings.FLUENCE_CIRCUIT_SECONDS,
            failures,
        )


# --- all of the above, read at once --------------------------------------------------------------------


class Gate:
    """Whether a list call for one key may go to Fluence now: its cool-down and its API's circuit, read
    from the shared cache in one round trip, together with the caller's own `extra_cache_keys`. With a
    `flight`, the same round trip takes its lock unless one of `lock_unless` is in the cache (a fresh list,
    a remembered failure: no call to make), in one step no other client can split (fluence_portal.cache)."""

    def __init__(
        self,
        *,
        key_id: int,
        base_url: str,
        extra_cache_keys: tuple[str, ...] = (),
        flight: "SingleFlight | None" = None,
        lock_unless: tuple[str, ...] = (),
    ):
        self.key_id = key_id
        self.base_url = base_url
        keys = [_cooldown_key(key_id), _opened_key(base_url), _failures_key(base_url), *extra_cache_keys]
        if flight is None:
            self._values = cache.get_many(keys)
        else:
            self._values, taken = run_together(
                [("get_many", keys), flight.take_operation(unless=lock_unless)]
            )
            flight.held = taken

    def cached(self, key: str):
        """The value of one of the `extra_cache_keys`, as read with the gate (None when absent)."""
        return self._values.get(key)

    def cooldown_remaining(self) -> float:
        return _seconds_until(self._values.get(_cooldown_key(self.key_id)))

    def circuit(self) -> CircuitState:
        return _circuit_state(self.base_url, self._values.get(_opened_key(self.base_url)))

    def record_success(self) -> None:
        """As circuit_record_success, without reading again when the circuit was closed and clean."""
        if self._values.get(_failures_key(self.base_url)) or _opened_key(self.base_url) in self._values:
            circuit_record_success(self.base_url)


# --- single flight --------------------------------------------------------------------------------------


def _call_budget() -> float:
    """The longest one list call may take: the client's total deadline, twice (a list that Fluence
    answers with 404 is probed again on the other API generations)."""
    return 2 * settings.FLUENCE_TOTAL_TIMEOUT


class SingleFlight:
    """At most one list call per key at a time across every process; the others wait for its result.

    The lock is a cache key taken with `add` (atomic in Redis and in the local-memory cache) and released
    only by its holder's token.
    """

    def __init__(self, key_id: int, *, clock=time.monotonic):
        self.lock_key = f"fluence:lock:{key_id}"
        self._clock = clock
        self.token = uuid.uuid4().hex
        self.held = False
        self.timeout = int(_call_budget()) + 1
        self._taken_at = 0.0

    def acquire(self) -> bool:
        return self.acquire_reading(None)[0]

    def take_operation(self, *, unless: tuple[str, ...]) -> tuple:
        """Taking the lock, unless one of the keys `unless` is in the cache, as an operation to run with
        others (fluence_portal.cache.run_together); its answer goes to `held`."""
        self._taken_at = self._clock()
        return ("add_unless", self.lock_key, self.token, self.timeout, unless)

    def acquire_reading(self, key: str | None) -> tuple[bool, object]:
        """Take the lock and, in the same round trip, read `key` as it is once the lock is taken (what a
        holder stored before releasing it): (taken, value)."""
        self._taken_at = self._clock()
        operations = [("add", self.lock_key, self.token, self.timeout)]
        if key is not None:
            operations.append(("get", key))
        self.held, *read = run_together(operations)
        return self.held, (read[0] if read else None)

    def release(self) -> None:
        # Past its timeout the lock may have expired and been taken by another caller, whose lock must stay.
        if self.held and (self._in_time() or cache.get(self.lock_key) == self.token):
            cache.delete(self.lock_key)
        self.held = False

    def release_operations(self) -> list:
        """The release, as operations to run together with the holder's last writes (fluence_portal.cache):
        none once released, or when the lock may have expired (then `release` checks whose it is)."""
        if not self.held or not self._in_time():
            return []
        self.held = False
        return [("delete", self.lock_key)]

    def _in_time(self) -> bool:
        # Until its timeout the lock can only be ours, and deleting it needs no check.
        return self._clock() - self._taken_at < self.timeout - 1

    def wait_for(self, read, *, poll: float = 0.02):
        """Wait while another caller holds the lock, until `read()` returns something or the lock goes."""
        metrics.single_flight_waited()
        deadline = time.monotonic() + _call_budget()
        while time.monotonic() < deadline:
            value = read()
            if value is not None:
                return value
            if cache.get(self.lock_key) is None:
                return read()
            time.sleep(poll)
        return read()
