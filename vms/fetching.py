"""Fetching the VM lists of many keys from Fluence at once: a thread pool, the cache in front, one call per
key at a time across every process (single flight), and the last good data with a clear sentence when
Fluence fails. Touches no database: the keys and their secrets come from the caller."""

import contextvars
import dataclasses
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import msgspec
from django.core.cache import cache

from vms import metrics, resilience, vm_cache
from vms.accounts import Account, AccountResult
from vms.fluence.client import FluenceClient, detect_generation
from vms.fluence.errors import AuthError, BadResponse, FluenceError, NotFound, RateLimited, Unavailable
from vms.fluence.models import Vm
from vms.models import ApiKey
from vms.vm_cache import FetchedList

logger = logging.getLogger("vms.fetching")

# One pool for the whole process: its threads keep their pooled HTTP sessions between requests.
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fluence")


def _problem_of(error: FluenceError) -> tuple[str, str]:
    # read_message: a list is a read the page repeats by itself; it never carries a write's advice.
    if isinstance(error, AuthError):
        return "key", error.read_message
    if isinstance(error, RateLimited):
        return "rate_limited", error.read_message
    if isinstance(error, BadResponse):
        return "bad_response", error.read_message
    return "unavailable", error.read_message


def fetch(account: Account, secret: str, generation: str) -> AccountResult:
    """Runs in a worker thread: the cache, else one list call per key at a time. Touches no database."""
    # One round trip reads the fresh marker, a remembered failure, the VMs being deleted, the key's
    # cool-down and the circuit, and takes the key's single-flight lock when there is neither a fresh list
    # nor a remembered failure: on a miss, the caller holds the lock with nothing more to ask.
    key_id = account.key_id
    fresh, problem = vm_cache.fresh_key(key_id), vm_cache.problem_key(key_id)
    flight = resilience.SingleFlight(key_id)
    gate = resilience.Gate(
        key_id=key_id,
        base_url=account.base_url,
        extra_cache_keys=(fresh, problem, vm_cache.deleting_key(key_id)),
        flight=flight,
        lock_unless=(fresh, problem),
    )
    try:
        result = _fetch_through(gate, flight, account, secret, generation)
    finally:
        flight.release()  # nothing to do unless held: the lock is released with the list's writes
    pending = gate.cached(vm_cache.deleting_key(key_id))
    return dataclasses.replace(result, deleting=frozenset(pending)) if pending else result


def _fetch_through(
    gate: resilience.Gate, flight: resilience.SingleFlight, account: Account, secret: str, generation: str
) -> AccountResult:
    hit = vm_cache.load(account.key_id, gate.cached(vm_cache.fresh_key(account.key_id)))
    if hit is not None:
        metrics.vm_list_cache("hit")
        return _result_of(account, hit)
    remembered = gate.cached(vm_cache.problem_key(account.key_id))
    if remembered is not None:
        metrics.vm_list_cache("remembered_failure")
        return _fallback(account, *remembered)
    metrics.vm_list_cache("miss")
    waiting = gate.cooldown_remaining()
    if waiting:
        return _fallback(
            account,
            "rate_limited",
            f"Fluence asked to slow down for this key (HTTP 429); the portal waits {math.ceil(waiting)} s "
            "before asking again.",
        )
    circuit = gate.circuit()
    if circuit.open:
        return _fallback(
            account,
            "unavailable",
            f"Fluence is failing at {account.base_url}; the portal pauses its calls and tries again "
            f"in {math.ceil(circuit.retry_in)} s.",
        )
    if not flight.held:
        # Someone (in this or another process) is already asking Fluence for this key: use their answer.
        hit = flight.wait_for(lambda: vm_cache.fresh(account.key_id) or vm_cache.problem(account.key_id))
        if isinstance(hit, tuple):
            return _fallback(account, *hit)
        if hit is not None:
            return _result_of(account, hit)
        # Someone may store a fresh answer between our wait and taking the lock: it is read with the lock.
        taken, marker = flight.acquire_reading(vm_cache.fresh_key(account.key_id))
        if not taken:
            return _fallback(account, "unavailable", "Fluence has not answered yet.")
        hit = vm_cache.load(account.key_id, marker)
        if hit is not None:
            return _result_of(account, hit)
    return _call_upstream(account, secret, generation, gate, flight)


def _result_of(account: Account, fetched: FetchedList) -> AccountResult:
    answer = fetched.answer
    return AccountResult(
        account=account,
        vms=answer.vms,
        fetched_at=fetched.fetched_at,
        unreadable=answer.unreadable,
        notes=answer.notes,
        balance=answer.balance,
        token=fetched.token,
    )


REPROBE_SECONDS = 600


def _call_upstream(
    account: Account, secret: str, generation: str, gate: resilience.Gate, flight: resilience.SingleFlight
) -> AccountResult:
    client = FluenceClient(base_url=account.base_url, api_key=secret, generation=generation)
    try:
        answer = client.list_answer()
    except NotFound as error:
        switched = _reprobe(account, secret, generation)
        if switched is None:
            return _failed(account, error)
        result = _call_upstream(account, secret, switched, gate, flight)
        return dataclasses.replace(result, switched_to=switched)
    except FluenceError as error:
        return _failed(account, error)
    gate.record_success()
    # The lock is released in the round trip that stores the list.
    stored = vm_cache.store(account.key_id, answer, generation, also=flight.release_operations())
    return _result_of(account, stored)


def _reprobe(account: Account, secret: str, generation: str) -> str | None:
    """The key's list path answered 404: Fluence may have retired it. Probe the generations once per key
    and REPROBE_SECONDS across every process; the generation that answers instead, if any."""
    if not cache.add(f"fluence:reprobe:{account.key_id}", 1, REPROBE_SECONDS):
        return None
    try:
        found = detect_generation(base_url=account.base_url, api_key=secret)
    except FluenceError:
        return None
    if found.generation == generation:
        return None
    logger.warning(
        "key %s (…%s) now answers on another Fluence API: %s -> %s",
        account.key_id,
        account.last_four,
        generation,
        found.generation,
    )
    return found.generation


def _failed(account: Account, error: FluenceError) -> AccountResult:
    kind, message = _problem_of(error)
    logger.warning("listing VMs failed for key %s (…%s): %s", account.key_id, account.last_four, kind)
    if isinstance(error, RateLimited):
        resilience.cooldown_start(key_id=account.key_id, retry_after=error.retry_after)
    elif isinstance(error, Unavailable):
        # Only outages count against the API's circuit: a refused key or one account's unreadable
        # answer says nothing about Fluence's health for the other keys.
        resilience.circuit_record_failure(account.base_url)
    vm_cache.remember_problem(account.key_id, kind, message)
    return _fallback(account, kind, message)


def _fallback(account: Account, kind: str, message: str) -> AccountResult:
    """The last good data of this key, if any, with what went wrong."""
    last = vm_cache.last_good(account.key_id)
    if last is None:
        return AccountResult(account=account, vms=(), fetched_at=None, problem=message, problem_kind=kind)
    return dataclasses.replace(_result_of(account, last), problem=message, problem_kind=kind, token=None)


def fresh_vm(api_key: ApiKey, generation: str, vm_id: str, *, fallback: Vm | None) -> Vm | None:
    """The VM as Fluence answers for it alone, shared for one refresh interval; the list's copy when that
    call fails for any other reason than the VM being gone."""
    found = vm_cache.vm(api_key.pk, vm_id)
    if found is not None:
        return found or None  # False: Fluence said it is gone
    client = FluenceClient(base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=generation)
    try:
        vm = client.get_vm(vm_id)
    except NotFound:
        vm_cache.store_vm(api_key.pk, vm_id, None)
        return None
    except (FluenceError, ValueError) as error:
        logger.warning("reading VM %s of key %s failed: %s", vm_id, api_key.pk, type(error).__name__)
        return fallback
    if fallback is not None:
        # Today's API sends the plan (configuration, vCPU, RAM) on list answers only.
        vm = msgspec.structs.replace(
            vm,
            configuration_name=vm.configuration_name or fallback.configuration_name,
            vcpu_count=fallback.vcpu_count if vm.vcpu_count is None else vm.vcpu_count,
            ram_gb=fallback.ram_gb if vm.ram_gb is None else vm.ram_gb,
        )
    vm_cache.store_vm(api_key.pk, vm_id, vm)
    return vm


def fetch_all(jobs: list[tuple[Account, str, str]]) -> list[AccountResult]:
    """Fetch every account at once: all but the first on the pool, the first in this thread meanwhile
    (one key, the common case, costs no thread hand-over at all)."""
    if not jobs:
        return []
    # The pool's threads log under this request's id too.
    futures = [_executor.submit(contextvars.copy_context().run, fetch, *job) for job in jobs[1:]]
    first = fetch(*jobs[0])
    return [first, *(future.result() for future in futures)]
