"""Whether a poll of the VM table would show what the page already shows: a version of what the table was
rendered from, sent back by htmx on every poll and checked in one cache round trip (no database, no parse
of a VM list, no rendering), so that an unchanged table is answered 204."""

import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare, salted_hmac

from fluence_portal.sessions import read_along, value_read_along
from vms import vm_cache
from vms.accounts import AccountResult
from vms.models import ApiKey, DeletionEvent, KeyShare, UserPreferences
from vms.vm_table import VmQuery

HEADER = "X-Vm-Table-Version"
EPOCH_KEY = "vms:table-epoch"
_SALT = "vms.table_version"
_MAC_LENGTH = 32  # hex digits: 128 bits of the SHA-256 HMAC

# "12o.13d.14n~<mac>": each account of the table, in the table's order, with how its part was built. The
# plan is readable so that a poll knows which cache entries to read without asking the database; the MAC
# makes a forged or edited plan worthless.
FRESH, DECRYPT, NOT_ALLOWED = "o", "d", "n"
_NEVER_FETCHED = {"decrypt": DECRYPT, "not_allowed": NOT_ALLOWED}
_STATE_NAMES = {FRESH: "ok", DECRYPT: "decrypt", NOT_ALLOWED: "not_allowed"}
MAX_ACCOUNTS = 64
MAX_LENGTH = MAX_ACCOUNTS * 14 + 1 + _MAC_LENGTH  # 12-digit key ids, a state letter and a separator each
_ENTRY = re.compile(r"([1-9][0-9]{0,11})([odn])")
_MAC = re.compile(f"[0-9a-f]{{{_MAC_LENGTH}}}")


# --- what the version covers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Basis:
    """The table epoch and the minute, read before the database and the rendering clock: a change after
    this read makes the version stale at once, never claimed as shown."""

    epoch: int | None
    minute: int


def basis(request: HttpRequest | None = None) -> Basis:
    """Read first thing: the counter as it was when the request's session was loaded (read along with it,
    in the same round trip, before any of the page's database reads), else as it is now."""
    epoch = value_read_along(request.session, EPOCH_KEY) if request is not None else None
    return Basis(epoch=epoch if epoch is not None else _epoch(), minute=_minute())


def _minute() -> int:
    # Row texts ("12 min", "in 3 h") have minute granularity: a version is good for the minute it was made
    # in, which also heals, within a minute, anything a signal missed.
    return int(time.time() // 60)


def _deleting_ids(pending) -> list[str]:
    """The VMs being deleted as fetching.fetch reads them (the ids of the deletion marks): alike at render
    and at poll time."""
    return sorted(pending or ())


def _mac(*, user_pk, epoch: int, minute: int, query: VmQuery, entries: list) -> str:
    message = json.dumps(
        [user_pk, epoch, minute, sorted(query.params().items()), list(query.notes), entries],
        separators=(",", ":"),
    )
    return salted_hmac(_SALT, message, algorithm="sha256").hexdigest()[:_MAC_LENGTH]


def version(table_basis: Basis, *, user, query: VmQuery, accounts: tuple[AccountResult, ...]) -> str | None:
    """The version of a table rendered from these results (never from the cache read again: a list stored
    since would be claimed as shown). None when any account is not in a state a poll can check (a failure,
    old data, a cool-down…): its page is rendered in full on every poll, so that its ages stay honest."""
    if table_basis.epoch is None or len(accounts) > MAX_ACCOUNTS:
        return None
    plan, entries = [], []
    for result in accounts:
        key_id = result.account.key_id
        never_fetched = _NEVER_FETCHED.get(result.problem_kind)
        if never_fetched is not None:
            plan.append(f"{key_id}{never_fetched}")
            entries.append([key_id, _STATE_NAMES[never_fetched]])
        elif result.token is not None and result.problem is None and result.switched_to is None:
            plan.append(f"{key_id}{FRESH}")
            entries.append([key_id, _STATE_NAMES[FRESH], result.token, _deleting_ids(result.deleting)])
        else:
            return None
    mac = _mac(
        user_pk=user.pk, epoch=table_basis.epoch, minute=table_basis.minute, query=query, entries=entries
    )
    return ".".join(plan) + "~" + mac


# --- what a full render reads from the database, kept by epoch ------------------------------------------

REMEMBERED_SECONDS = 3600
_KEPT_HERE = 1024  # answers this process keeps, the most recently used

_kept: OrderedDict[str, object] = OrderedDict()
_kept_lock = threading.Lock()
_ABSENT = object()


def remembered(table_basis: Basis, *reads: tuple[str, Callable[[], object]]) -> list:
    """What each `compute()` of `reads` ((name, compute) pairs) reads from the database for a table (a
    person's columns, the unknown deletion outcomes of some keys), kept for this epoch: every write that
    could change them moves the epoch (the signals below), so a kept answer is never older than the
    database. Kept in this process first (no round trip at all once seen: an answer for an epoch never
    changes), then in the shared cache, read in one round trip. A `name` says everything its answer
    depends on. The answers, in the order of `reads`; callers only read them."""
    if table_basis.epoch is None:
        return [compute() for _, compute in reads]
    keys = [
        f"vms:table-read:{table_basis.epoch}:{hashlib.sha256(name.encode()).hexdigest()[:32]}"
        for name, _ in reads
    ]
    with _kept_lock:
        found = {key: value for key in keys if (value := _kept.get(key, _ABSENT)) is not _ABSENT}
    missing = [key for key in keys if key not in found]
    if missing:
        found.update(cache.get_many(missing))
    computed = {key: compute() for key, (_, compute) in zip(keys, reads, strict=True) if key not in found}
    if computed:
        cache.set_many(computed, REMEMBERED_SECONDS)
    answers = {**found, **computed}
    with _kept_lock:
        for key in keys:
            _kept[key] = answers[key]
            _kept.move_to_end(key)
        while len(_kept) > _KEPT_HERE:
            _kept.popitem(last=False)
    return [answers[key] for key in keys]


def forget_kept_here() -> None:
    """Drop what this process keeps of `remembered` (a test models another process with it)."""
    with _kept_lock:
        _kept.clear()


# --- a poll --------------------------------------------------------------------------------------------


def _parse(claimed: str) -> tuple[list[tuple[int, str]], str] | None:
    """(key id, state letter) per account and the MAC of a version sent back, or None if it is not one."""
    if not claimed or len(claimed) > MAX_LENGTH:
        return None
    plan, separator, mac = claimed.partition("~")
    if not separator or not _MAC.fullmatch(mac):
        return None
    if not plan:
        return [], mac
    parts = plan.split(".")
    if len(parts) > MAX_ACCOUNTS:
        return None
    entries = []
    for part in parts:
        found = _ENTRY.fullmatch(part)
        if found is None:
            return None
        entries.append((int(found[1]), found[2]))
    return entries, mac


def unchanged(request: HttpRequest, query: VmQuery) -> bool:
    """The version this poll sent back is still the table's: the epoch, the minute, and each fetched
    account's fresh list and deletion marks are what it was built from. One cache round trip."""
    parsed = _parse(request.headers.get(HEADER, ""))
    if parsed is None:
        return False
    plan, claimed_mac = parsed
    fetched = [key_id for key_id, state in plan if state == FRESH]
    found = cache.get_many(
        [EPOCH_KEY]
        + [name for key_id in fetched for name in (vm_cache.fresh_key(key_id), vm_cache.deleting_key(key_id))]
    )
    epoch = found.get(EPOCH_KEY)
    if epoch is None:
        return False
    entries = []
    for key_id, state in plan:
        if state != FRESH:
            entries.append([key_id, _STATE_NAMES[state]])
            continue
        marker = found.get(vm_cache.fresh_key(key_id))
        if not isinstance(marker, vm_cache.Marker):
            return False  # no fresh list: a full render fetches (or fails) and says so
        pending = found.get(vm_cache.deleting_key(key_id))
        entries.append([key_id, _STATE_NAMES[FRESH], marker.token, _deleting_ids(pending)])
    mac = _mac(user_pk=request.user.pk, epoch=epoch, minute=_minute(), query=query, entries=entries)
    return constant_time_compare(mac, claimed_mac)


# --- the table epoch: database changes that alter the table ---------------------------------------------

read_along(EPOCH_KEY)  # with every session load, where sessions live in the cache (fluence_portal.sessions)


def _epoch() -> int | None:
    value = cache.get(EPOCH_KEY)
    if value is None:
        _epoch_start()
        value = cache.get(EPOCH_KEY)
    return value


def _epoch_start() -> None:
    # A random start, not 0: an epoch evicted and started again never meets a version made before.
    cache.add(EPOCH_KEY, secrets.randbelow(2**48), None)


def bump_epoch() -> None:
    """Every table version made so far is stale: call after a database write that changes what a VM table
    shows and sends no model signal (QuerySet.update())."""
    _epoch_start()
    # Evicted between the two calls: the next reader starts a new epoch, a change all the same.
    with contextlib.suppress(ValueError):
        cache.incr(EPOCH_KEY)


def _table_changed(*, using=None) -> None:
    bump_epoch()
    # Again once committed: a page rendered between the first bump and the commit read the old rows.
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(bump_epoch, using=using, robust=True)


def _on_save(sender, *, update_fields=None, using=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # signing in: nothing a table shows
    _table_changed(using=using)


def _on_delete(sender, *, using=None, **kwargs) -> None:
    _table_changed(using=using)


def _on_m2m(sender, *, action: str, using=None, **kwargs) -> None:
    if action.startswith("post_"):
        _table_changed(using=using)


def connect_signals() -> None:
    """From VmsConfig.ready: the keys, their shares, the audit rows ("outcome unknown" badges), the column
    choice, and who people are and which groups and permissions they hold."""
    user_model = get_user_model()
    for model in (ApiKey, KeyShare, DeletionEvent, UserPreferences, user_model, Group):
        label = model._meta.label_lower
        post_save.connect(_on_save, sender=model, dispatch_uid=f"table_version.save.{label}")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"table_version.delete.{label}")
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(
            _on_m2m, sender=through, dispatch_uid=f"table_version.m2m.{through._meta.label_lower}"
        )
