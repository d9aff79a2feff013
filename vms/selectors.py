"""Reads: which keys a person may use, and their VMs fetched from Fluence in parallel through the cache."""

import contextvars
import dataclasses
import logging
import math
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from vms import resilience
from vms.crypto import SecretDecryptionError
from vms.fluence.client import ADAPTERS, FluenceClient, ListAnswer, detect_generation, generation_label
from vms.fluence.errors import AuthError, BadResponse, FluenceError, NotFound, RateLimited, Unavailable
from vms.fluence.models import Balance, Vm
from vms.models import ApiKey
from vms.permissions import OWNER, VIEWER, apikeys_visible_to, keys_visible_to, role_may_delete

logger = logging.getLogger("vms.selectors")

# One pool for the whole process: its threads keep their pooled HTTP sessions between requests.
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fluence")
LAST_GOOD_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Account:
    """What the pages may know of a key: never its secret."""

    key_id: int
    label: str
    fingerprint: str
    owner_username: str
    base_url: str
    # The requesting person's role on this key: "owner", "operator" or "viewer" (the least, unless told).
    role: str = VIEWER
    generation: str = "baseline"

    @property
    def generation_label(self) -> str:
        return generation_label(self.generation)

    @property
    def is_own(self) -> bool:
        return self.role == OWNER

    @property
    def can_delete(self) -> bool:
        return role_may_delete(self.role)


@dataclass(frozen=True, slots=True)
class FetchedList:
    answer: ListAnswer
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class AccountResult:
    account: Account
    vms: tuple[Vm, ...]
    fetched_at: datetime | None
    problem: str | None = None  # a clear sentence for the person, when the key or Fluence failed
    problem_kind: str | None = None  # "key", "rate_limited", "unavailable", "bad_response", "decrypt"
    unreadable: tuple[str, ...] = ()  # items of the answer that are not readable VMs, and why
    deleting: frozenset[str] = frozenset()  # ids (lowercase) of VMs whose deletion Fluence accepted
    notes: tuple[str, ...] = ()  # what the person should know about this account's list
    balance: Balance | None = None  # today's API: the account's prepaid balance
    switched_to: str | None = None  # Fluence retired the key's API path; it now speaks this generation

    @property
    def vms_with_unreadable_fields(self) -> tuple[Vm, ...]:
        return tuple(vm for vm in self.vms if vm.unreadable)

    @property
    def is_stale(self) -> bool:
        return self.problem is not None and self.fetched_at is not None


@dataclass(frozen=True, slots=True)
class VmRow:
    vm: Vm
    account: Account
    deleting: bool = False  # Fluence accepted a deletion; the VM is still listed until the provider is done


@dataclass(frozen=True, slots=True)
class VmListing:
    accounts: tuple[AccountResult, ...]
    rows: tuple[VmRow, ...]

    @property
    def problems(self) -> tuple[AccountResult, ...]:
        return tuple(result for result in self.accounts if result.problem)


def apikeys_for_user(*, user) -> QuerySet[ApiKey]:
    """The keys whose VMs this person may see: owned, or shared with one of their groups (the rule lives in
    vms.permissions). Each carries `role_for_user`. Never cached: a removed share is gone next request."""
    return apikeys_visible_to(user=user).select_related("owner")


def apikey_for_user(*, user, key_id: int) -> ApiKey | None:
    found = keys_visible_to(user=user, key_id=key_id)
    return found[0] if found else None


def _account_of(api_key: ApiKey) -> Account:
    return Account(
        key_id=api_key.pk,
        label=api_key.label,
        fingerprint=api_key.fingerprint,
        # Keys from keys_visible_to carry their owner's name; others have it through select_related.
        owner_username=getattr(api_key, "owner_username", None) or api_key.owner.get_username(),
        base_url=api_key.base_url,
        # Keys loaded through apikeys_for_user carry the role; it only shapes the page, checks ask afresh.
        role=getattr(api_key, "role_for_user", VIEWER),
        generation=api_key.generation,
    )


# One key's list lives in the shared cache in three entries: a short-lived "fresh" marker, a long-lived
# "last good" marker, and the data itself, each marker naming the data by a token. A process keeps the
# VMs it has already unpickled for a token, so a refresh costs one tiny cache read, not an unpickle of
# thousands of objects; every process still sees the same data through the shared cache.
_MEMO_SIZE = 256
_memo: OrderedDict[tuple[int, str], ListAnswer] = OrderedDict()
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Marker:
    token: str
    fetched_at: datetime
    generation: str  # whose adapter reads the stored answer back


# "v2" in the names: markers and data of the time before API generations are not read back.
def _problem_key(key_id: int) -> str:
    return f"fluence:vms:v2:problem:{key_id}"


def _fresh_key(key_id: int) -> str:
    return f"fluence:vms:v2:fresh:{key_id}"


def _last_good_key(key_id: int) -> str:
    return f"fluence:vms:v2:last:{key_id}"


def _data_key(key_id: int) -> str:
    return f"fluence:vms:v2:data:{key_id}"


def _remember(key_id: int, token: str, answer: ListAnswer) -> None:
    with _memo_lock:
        _memo[(key_id, token)] = answer
        _memo.move_to_end((key_id, token))
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)


def _load(key_id: int, marker: "_Marker | None") -> FetchedList | None:
    if marker is None:
        return None
    with _memo_lock:
        answer = _memo.get((key_id, marker.token))
    if answer is None:
        stored = cache.get(_data_key(key_id))
        if not stored or stored[0] != marker.token or marker.generation not in ADAPTERS:
            return None  # the data moved on since the marker was written: treat as a miss
        # Stored as Fluence's own JSON: cheaper to write and read than pickled objects, and parsed once
        # per process and refresh, by the adapter of the generation that fetched it.
        answer = dataclasses.replace(ADAPTERS[marker.generation].read_cached(stored[1]), body=b"")
        _remember(key_id, marker.token, answer)
    return FetchedList(answer=answer, fetched_at=marker.fetched_at)


def _cached(key_id: int) -> FetchedList | None:
    return _load(key_id, cache.get(_fresh_key(key_id)))


def _last_good(key_id: int) -> FetchedList | None:
    return _load(key_id, cache.get(_last_good_key(key_id)))


def _store(key_id: int, answer: ListAnswer, generation: str) -> FetchedList:
    """Share a fresh list, as the JSON its adapter reads back."""
    marker = _Marker(token=uuid.uuid4().hex, fetched_at=timezone.now(), generation=generation)
    # The data and the last-good marker in one write, then the fresh marker: no marker ever names data that
    # is not there yet. The fresh one expires in the cache itself, so that the instances' clocks never
    # decide what is fresh.
    cache.set_many(
        {_data_key(key_id): (marker.token, answer.body), _last_good_key(key_id): marker}, LAST_GOOD_SECONDS
    )
    cache.set(_fresh_key(key_id), marker, settings.FLUENCE_CACHE_SECONDS)
    answer = dataclasses.replace(answer, body=b"")
    _remember(key_id, marker.token, answer)
    return FetchedList(answer=answer, fetched_at=marker.fetched_at)


def _problem_of(error: FluenceError) -> tuple[str, str]:
    if isinstance(error, AuthError):
        return "key", error.user_message
    if isinstance(error, RateLimited):
        return "rate_limited", error.user_message
    if isinstance(error, BadResponse):
        return "bad_response", error.user_message
    return "unavailable", error.user_message


def _fetch(account: Account, secret: str, generation: str) -> AccountResult:
    """Runs in a worker thread: the cache, else one list call per key at a time. Touches no database."""
    # One round trip reads the fresh marker, a remembered failure, the VMs being deleted, the key's
    # cool-down and the circuit.
    key_id = account.key_id
    also = (_fresh_key(key_id), _problem_key(key_id), _deleting_key(key_id))
    gate = resilience.Gate(key_id=key_id, base_url=account.base_url, also=also)
    result = _fetch_through(gate, account, secret, generation)
    pending = gate.get(_deleting_key(key_id))
    return dataclasses.replace(result, deleting=frozenset(pending)) if pending else result


def _fetch_through(gate: resilience.Gate, account: Account, secret: str, generation: str) -> AccountResult:
    hit = _load(account.key_id, gate.get(_fresh_key(account.key_id)))
    if hit is not None:
        return _result_of(account, hit)
    remembered = gate.get(_problem_key(account.key_id))
    if remembered is not None:
        return _fallback(account, *remembered)
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
    flight = resilience.SingleFlight(account.key_id)
    if not flight.acquire():
        # Someone (in this or another process) is already asking Fluence for this key: use their answer.
        hit = flight.wait_for(lambda: _cached(account.key_id) or cache.get(_problem_key(account.key_id)))
        if isinstance(hit, tuple):
            return _fallback(account, *hit)
        if hit is not None:
            return _result_of(account, hit)
        if not flight.acquire():
            return _fallback(account, "unavailable", "Fluence has not answered yet; showing the last data.")
    # Someone may have stored a fresh answer between our cache miss and taking the lock.
    hit = _cached(account.key_id)
    if hit is not None:
        flight.release()
        return _result_of(account, hit)
    try:
        return _call_upstream(account, secret, generation, gate)
    finally:
        flight.release()


def _result_of(account: Account, fetched: FetchedList) -> AccountResult:
    answer = fetched.answer
    return AccountResult(
        account=account,
        vms=answer.vms,
        fetched_at=fetched.fetched_at,
        unreadable=answer.unreadable,
        notes=answer.notes,
        balance=answer.balance,
    )


REPROBE_SECONDS = 600


def _call_upstream(account: Account, secret: str, generation: str, gate: resilience.Gate) -> AccountResult:
    client = FluenceClient(base_url=account.base_url, api_key=secret, generation=generation)
    try:
        answer = client.list_answer()
    except NotFound as error:
        switched = _reprobe(account, secret, generation)
        if switched is None:
            return _failed(account, error)
        result = _call_upstream(account, secret, switched, gate)
        return dataclasses.replace(result, switched_to=switched)
    except FluenceError as error:
        return _failed(account, error)
    gate.record_success()
    return _result_of(account, _store(account.key_id, answer, generation))


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
        account.fingerprint,
        generation,
        found.generation,
    )
    return found.generation


def _failed(account: Account, error: FluenceError) -> AccountResult:
    kind, message = _problem_of(error)
    logger.warning("listing VMs failed for key %s (…%s): %s", account.key_id, account.fingerprint, kind)
    if isinstance(error, RateLimited):
        resilience.cooldown_start(key_id=account.key_id, retry_after=error.retry_after)
    elif isinstance(error, Unavailable):
        # Only outages count against the API's circuit: a refused key or one account's unreadable
        # answer says nothing about Fluence's health for the other keys.
        resilience.circuit_record_failure(account.base_url)
    # Remember the failure for one refresh interval, like a success: N people watching a failing key
    # cause one call per interval, not one per page.
    cache.set(_problem_key(account.key_id), (kind, message), settings.FLUENCE_CACHE_SECONDS)
    return _fallback(account, kind, message)


def _fallback(account: Account, kind: str, message: str) -> AccountResult:
    """The last good data of this key, if any, with what went wrong."""
    last = _last_good(account.key_id)
    if last is None:
        return AccountResult(account=account, vms=(), fetched_at=None, problem=message, problem_kind=kind)
    return dataclasses.replace(_result_of(account, last), problem=message, problem_kind=kind)


def vms_for_user(*, user) -> VmListing:
    """Every VM of every key the person may see, one account's failure never hiding the others."""
    return _listing_of(keys_visible_to(user=user))


@dataclass(frozen=True, slots=True)
class VmLookup:
    result: AccountResult
    vm: Vm | None  # None: the account answered (or failed) and this VM is not in what it shows
    deleting: bool
    api_key: ApiKey


def vm_for_user(*, user, key_id: int, vm_id: str, fresh: bool = False) -> VmLookup | None:
    """One VM under one key, or None when the person may not see that key (a 404, whatever exists).

    `fresh`: where the key's API can answer for one VM (today's API), ask it rather than the list, for a
    page that shows every field; a 404 there means the VM is gone.
    """
    api_key = apikey_for_user(user=user, key_id=key_id)
    if api_key is None:
        return None
    listing = _listing_of([api_key])
    result = listing.accounts[0]
    wanted = vm_id.lower()
    row = next((row for row in listing.rows if row.vm.key == wanted), None)
    vm = row.vm if row else None
    generation = result.account.generation
    if fresh and ADAPTERS[generation].can_get_vm and result.problem_kind not in ("decrypt", "not_allowed"):
        vm = _fresh_vm(api_key, generation, vm_id, fallback=vm)
    return VmLookup(result=result, vm=vm, deleting=bool(row and row.deleting), api_key=api_key)


def _fresh_vm(api_key: ApiKey, generation: str, vm_id: str, *, fallback: Vm | None) -> Vm | None:
    """The VM as Fluence answers for it alone, shared for one refresh interval; the list's copy when that
    call fails for any other reason than the VM being gone."""
    cache_key = f"fluence:vm:{api_key.pk}:{vm_id.lower()}"
    found = cache.get(cache_key)
    if found is not None:
        return found or None  # False: Fluence said it is gone
    client = FluenceClient(base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=generation)
    try:
        vm = client.get_vm(vm_id)
    except NotFound:
        cache.set(cache_key, False, settings.FLUENCE_CACHE_SECONDS)
        return None
    except (FluenceError, ValueError) as error:
        logger.warning("reading VM %s of key %s failed: %s", vm_id, api_key.pk, type(error).__name__)
        return fallback
    if fallback is not None:
        # Today's API sends the plan (configuration, vCPU, RAM) on list answers only.
        vm = dataclasses.replace(
            vm,
            configuration_name=vm.configuration_name or fallback.configuration_name,
            vcpu_count=fallback.vcpu_count if vm.vcpu_count is None else vm.vcpu_count,
            ram_gb=fallback.ram_gb if vm.ram_gb is None else vm.ram_gb,
        )
    cache.set(cache_key, vm, settings.FLUENCE_CACHE_SECONDS)
    return vm


def _fetch_all(jobs: list[tuple[Account, str, str]]) -> list[AccountResult]:
    """Fetch every account at once: all but the first on the pool, the first in this thread meanwhile
    (one key, the common case, costs no thread hand-over at all)."""
    if not jobs:
        return []
    # The pool's threads log under this request's id too.
    futures = [_executor.submit(contextvars.copy_context().run, _fetch, *job) for job in jobs[1:]]
    first = _fetch(*jobs[0])
    return [first, *(future.result() for future in futures)]


def _listing_of(api_keys: list[ApiKey]) -> VmListing:
    jobs = []
    results: list[AccountResult] = []
    for api_key in api_keys:
        account = _account_of(api_key)
        try:
            secret = api_key.secret.reveal()
        except SecretDecryptionError:
            results.append(
                AccountResult(
                    account=account,
                    vms=(),
                    fetched_at=None,
                    problem="This key cannot be decrypted on this server (its encryption key is missing). "
                    "Ask the administrator, or remove and re-add the key.",
                    problem_kind="decrypt",
                )
            )
            continue
        if api_key.base_url not in settings.FLUENCE_API_URLS:
            # The allowlist holds at every use, not only when a key is added: the administrator may have
            # removed the address since.
            results.append(
                AccountResult(
                    account=account,
                    vms=(),
                    fetched_at=None,
                    problem=f"This key points at {api_key.base_url}, which the administrator no longer "
                    "allows (FLUENCE_API_URLS). Nothing was sent there.",
                    problem_kind="not_allowed",
                )
            )
            continue
        jobs.append((account, secret, api_key.generation))
    results.extend(_switch_generations(_fetch_all(jobs)))
    results.sort(key=lambda result: (result.account.label.lower(), result.account.key_id))
    rows = tuple(
        VmRow(vm=vm, account=result.account, deleting=vm.key in result.deleting)
        for result in results
        for vm in result.vms
    )
    return VmListing(accounts=tuple(results), rows=rows)


def _switch_generations(results: list[AccountResult]) -> list[AccountResult]:
    """Keys whose API path Fluence retired answered on another generation: remember it (once, whoever
    notices first), so that every later request asks the right path and the keys page can say so."""
    switched = []
    for result in results:
        if result.switched_to is None:
            switched.append(result)
            continue
        account = result.account
        ApiKey.objects.filter(pk=account.key_id, generation=account.generation).update(
            generation=result.switched_to,
            previous_generation=account.generation,
            generation_changed_at=timezone.now(),
        )
        account = dataclasses.replace(account, generation=result.switched_to)
        switched.append(dataclasses.replace(result, account=account))
    return switched


def forget_cached_vms(*, key_id: int) -> None:
    """The next read of this key asks Fluence again (its last good data stays for fallbacks)."""
    cache.delete_many([_fresh_key(key_id), _problem_key(key_id)])


DELETING_SECONDS = 3600


def _deleting_key(key_id: int) -> str:
    return f"fluence:deleting:{key_id}"


def vm_mark_deleting(*, key_id: int, vm_id: str) -> None:
    """Remember that Fluence accepted this VM's deletion, so the list says "deleting" until it is gone."""
    marker = _deleting_key(key_id)
    pending = dict(cache.get(marker) or {})
    pending[vm_id.lower()] = timezone.now().timestamp()
    cache.set(marker, pending, DELETING_SECONDS)
    cache.delete(f"fluence:vm:{key_id}:{vm_id.lower()}")
    forget_cached_vms(key_id=key_id)


def vm_is_deleting(*, key_id: int, vm_id: str) -> bool:
    return vm_id.lower() in (cache.get(_deleting_key(key_id)) or {})
