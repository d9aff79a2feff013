"""The shared cache of what Fluence said about each key: its VM list, its last failure, VMs asked for alone,
and the VMs whose deletion Fluence accepted. Storage only: fetching decides when to ask Fluence, selectors
read, services write the deletion marks."""

import dataclasses
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from fluence_portal.cache import Operation, run_together
from vms.fluence.client import ADAPTERS, ListAnswer
from vms.fluence.models import Vm

LAST_GOOD_SECONDS = 7 * 24 * 3600
DELETING_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class FetchedList:
    answer: ListAnswer
    fetched_at: datetime
    token: str | None = None  # the marker's name for this list: what a page shown from it was built from


# One key's list lives in the shared cache in three entries: a short-lived "fresh" marker, a long-lived
# "last good" marker, and the data itself, each marker naming the data by a token. A process keeps the
# VMs it has already parsed for a key's latest token, so a refresh costs one tiny cache read, not a parse
# of thousands of objects; every process still sees the same data through the shared cache. One list per
# key, the one the shared cache names (a newer token replaces it): a key refreshed every 30 s must not
# pile up a list per refresh (38 MiB each at 10,000 VMs).
_MEMO_KEYS = 256
_memo: OrderedDict[int, tuple[str, ListAnswer]] = OrderedDict()
_memo_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Marker:
    token: str
    fetched_at: datetime
    generation: str  # whose adapter reads the stored answer back


# The cache keys, public so that a caller can read several in one round trip (resilience.Gate).
# The version in the names: what an older release stored is not read back (v2: the data as a pickled
# (token, JSON) pair; v1: before API generations).
def problem_key(key_id: int) -> str:
    return f"fluence:vms:v3:problem:{key_id}"


def fresh_key(key_id: int) -> str:
    return f"fluence:vms:v3:fresh:{key_id}"


def last_good_key(key_id: int) -> str:
    return f"fluence:vms:v3:last:{key_id}"


def data_key(key_id: int) -> str:
    return f"fluence:vms:v3:data:{key_id}"


def deleting_key(key_id: int) -> str:
    return f"fluence:deleting:{key_id}"


def _vm_key(key_id: int, vm_id: str) -> str:
    return f"fluence:vm:{key_id}:{vm_id.lower()}"


# --- the list of a key -------------------------------------------------------------------------------------


def _remember(key_id: int, token: str, answer: ListAnswer) -> None:
    with _memo_lock:
        _memo[key_id] = (token, answer)
        _memo.move_to_end(key_id)
        while len(_memo) > _MEMO_KEYS:
            _memo.popitem(last=False)


def _remembered(key_id: int, token: str) -> ListAnswer | None:
    with _memo_lock:
        kept = _memo.get(key_id)
    return kept[1] if kept is not None and kept[0] == token else None


def load(key_id: int, marker: Marker | None) -> FetchedList | None:
    """The list a marker names, or None when there is none (or the data has moved on since)."""
    if marker is None:
        return None
    answer = _remembered(key_id, marker.token)
    if answer is None:
        stored = cache.get(data_key(key_id))
        token = marker.token.encode("ascii")
        if not stored or stored[: len(token)] != token or marker.generation not in ADAPTERS:
            return None  # the data moved on since the marker was written: treat as a miss
        # Stored as Fluence's own JSON behind its token, all bytes: cheaper to write and read than pickled
        # objects (fluence_portal.cache stores bytes as they are), and parsed once per process and
        # refresh, by the adapter of the generation that fetched it.
        body = stored[len(token) :]
        answer = dataclasses.replace(ADAPTERS[marker.generation].read_cached(body), body=b"")
        _remember(key_id, marker.token, answer)
    return FetchedList(answer=answer, fetched_at=marker.fetched_at, token=marker.token)


def fresh(key_id: int) -> FetchedList | None:
    """The list, while it is younger than FLUENCE_CACHE_SECONDS."""
    return load(key_id, cache.get(fresh_key(key_id)))


def last_good(key_id: int) -> FetchedList | None:
    """The last list Fluence answered, however old (kept for a week), for when it fails."""
    return load(key_id, cache.get(last_good_key(key_id)))


def store(key_id: int, answer: ListAnswer, generation: str, *, also: Sequence[Operation] = ()) -> FetchedList:
    """Share a fresh list, as the JSON its adapter reads back. `also`: cache operations to run in the same
    round trip, after the list's (the release of the key's single-flight lock)."""
    marker = Marker(token=uuid.uuid4().hex, fetched_at=timezone.now(), generation=generation)
    # The data, then the markers, in this order: no marker ever names data that is not there yet. The
    # fresh one expires in the cache itself, so that the instances' clocks never decide what is fresh.
    run_together(
        [
            ("set", data_key(key_id), marker.token.encode("ascii") + answer.body, LAST_GOOD_SECONDS),
            ("set", last_good_key(key_id), marker, LAST_GOOD_SECONDS),
            ("set", fresh_key(key_id), marker, settings.FLUENCE_CACHE_SECONDS),
            *also,
        ]
    )
    answer = dataclasses.replace(answer, body=b"")
    _remember(key_id, marker.token, answer)
    return FetchedList(answer=answer, fetched_at=marker.fetched_at, token=marker.token)


def problem(key_id: int) -> tuple[str, str] | None:
    """The (kind, message) of the key's last failure, while it is remembered."""
    return cache.get(problem_key(key_id))


def remember_problem(key_id: int, kind: str, message: str) -> None:
    # For one refresh interval, like a success: N people watching a failing key cause one call per
    # interval, not one per page.
    cache.set(problem_key(key_id), (kind, message), settings.FLUENCE_CACHE_SECONDS)


def forget(key_id: int) -> None:
    """The next read of this key asks Fluence again (its last good data stays for fallbacks)."""
    cache.delete_many([fresh_key(key_id), problem_key(key_id)])


def forget_memo() -> None:
    """Drop what this process has parsed (the benchmarks measure a cold process)."""
    with _memo_lock:
        _memo.clear()


# --- one VM, asked for alone -------------------------------------------------------------------------------


def vm(key_id: int, vm_id: str) -> Vm | bool | None:
    """A VM as Fluence answered for it alone: the Vm, False when Fluence said it is gone, None unknown."""
    return cache.get(_vm_key(key_id, vm_id))


def store_vm(key_id: int, vm_id: str, found: Vm | None) -> None:
    cache.set(_vm_key(key_id, vm_id), found if found is not None else False, settings.FLUENCE_CACHE_SECONDS)


# --- deletions Fluence accepted ----------------------------------------------------------------------------


def mark_deleting(key_id: int, vm_id: str) -> None:
    """Remember that Fluence accepted this VM's deletion, so the list says "deleting" until it is gone; the
    key's list and the VM are asked for afresh."""
    marker = deleting_key(key_id)
    pending = dict(cache.get(marker) or {})
    pending[vm_id.lower()] = timezone.now().timestamp()
    cache.set(marker, pending, DELETING_SECONDS)
    cache.delete(_vm_key(key_id, vm_id))
    forget(key_id)


def is_deleting(key_id: int, vm_id: str) -> bool:
    return vm_id.lower() in (cache.get(deleting_key(key_id)) or {})
