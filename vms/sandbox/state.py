"""The sandbox's state: accounts and their VMs, faults to inject, and request counters. Thread-safe.

Each account speaks one generation of the Fluence API (generations.py). Time-driven changes (a deletion
or termination completing, a VM becoming ready, a billing period rolling over) are applied lazily,
whenever an account is read, so no timer threads are needed.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from . import data as vmdata
from . import data_b, expand_b
from .accounts import Account, AccountOptions
from .demo_accounts import DEMO_ACCOUNTS, configure_kwargs
from .generations import GENERATION_A, GENERATION_B, generation_of_key
from .query_b import UUID_PATTERN, VmListQuery

KEY_PATTERN = re.compile(r"^sbx_[A-Za-z0-9_-]{8,80}$")
VM_ID_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_VM_COUNT = 12
MAX_VM_COUNT = 200_000
_SELECTION_CACHE_SIZE = 64  # distinct filtered lists kept per account until it changes


# Ties keep a stable order, as the database's secondary order by id would.
_SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "createdAt": lambda r: (r.created, r.id_lower),
    "name": lambda r: (str(r.data["name"]), r.id_lower),
    "status": lambda r: (str(r.data["status"]), r.id_lower),
}


def _compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def fingerprint(key: str | None) -> str:
    """What may be shown of a key: its last four characters."""
    if not key:
        return "(none)"
    return "…" + key[-4:]


@dataclass(frozen=True, slots=True)
class Faults:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_retry_after: int | None = None
    malformed: bool = False
    wrong_shape: bool = False
    drop: bool = False
    # A hostile server: the body of a read one byte every `trickle_ms`; a body of `huge_body_mb` MiB (the
    # answer, after that much leading whitespace); or a chunked body that never ends.
    trickle_ms: int = 0
    huge_body_mb: int = 0
    endless: bool = False

    @classmethod
    def build(
        cls,
        *,
        latency_ms: Any = 0,
        error_rate: Any = 0.0,
        error_status: Any = 500,
        rate_limit_retry_after: Any = None,
        malformed: Any = False,
        wrong_shape: Any = False,
        drop: Any = False,
        trickle_ms: Any = 0,
        huge_body_mb: Any = 0,
        endless: Any = False,
    ) -> Faults:
        """Validated faults; ValueError on nonsense (the control API answers it with 400)."""
        if (
            isinstance(latency_ms, bool)
            or not isinstance(latency_ms, int | float)
            or not 0 <= latency_ms <= 120_000
        ):
            raise ValueError("latency_ms must be a number of milliseconds between 0 and 120000")
        if (
            isinstance(error_rate, bool)
            or not isinstance(error_rate, int | float)
            or not 0 <= error_rate <= 1
        ):
            raise ValueError("error_rate must be between 0 and 1")
        if (
            isinstance(error_status, bool)
            or not isinstance(error_status, int)
            or not 400 <= error_status <= 599
        ):
            raise ValueError("error_status must be an HTTP error status (400-599)")
        if rate_limit_retry_after is not None and (
            isinstance(rate_limit_retry_after, bool)
            or not isinstance(rate_limit_retry_after, int)
            or not 0 <= rate_limit_retry_after <= 86_400
        ):
            raise ValueError("rate_limit_retry_after must be null or whole seconds between 0 and 86400")
        for name, value, most in (("trickle_ms", trickle_ms, 60_000), ("huge_body_mb", huge_body_mb, 4096)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
                raise ValueError(f"{name} must be a whole number between 0 and {most}")
        for name, value in (
            ("malformed", malformed),
            ("wrong_shape", wrong_shape),
            ("drop", drop),
            ("endless", endless),
        ):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        return cls(
            latency_ms=int(latency_ms),
            error_rate=float(error_rate),
            error_status=error_status,
            rate_limit_retry_after=rate_limit_retry_after,
            malformed=malformed,
            wrong_shape=wrong_shape,
            drop=drop,
            trickle_ms=trickle_ms,
            huge_body_mb=huge_body_mb,
            endless=endless,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_FAULTS = Faults()


class AuthFailure(Exception):
    """A request's key is not accepted: carries the HTTP status and JSON body to answer."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


class ApiError(Exception):
    """A refused API call: the HTTP status and JSON body to answer (with ``code`` on generation B)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": message} if code is None else {"code": code, "error": message}


B_NAME_PATTERN = re.compile(r"^[a-z0-9-]{1,25}$")


class SandboxState:
    """Accounts, faults and counters of one sandbox. Every public method is thread-safe."""

    def __init__(
        self,
        *,
        preload_demo: bool = True,
        default_vm_count: int = DEFAULT_VM_COUNT,
        demo_vm_count: int | None = None,
        deletion_delay: float = 3.0,
        clock: Callable[[], float] = time.time,
    ):
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._faults: Faults = NO_FAULTS
        self._key_faults: dict[str, Faults] = {}
        self._fault_rng = random.Random(0)
        self._rng = random.Random(0)
        self._counts: Counter[tuple[str, str, str | None]] = Counter()
        self.default_vm_count = default_vm_count
        self.deletion_delay = deletion_delay
        # How long a generation B VM stays restarting (or soft rebooting) before it is launched again.
        self.restart_delay = 3.0
        self.clock = clock
        if preload_demo:
            for key, spec in DEMO_ACCOUNTS.items():
                kwargs = configure_kwargs(spec)
                if demo_vm_count is not None:
                    kwargs["vm_count"] = demo_vm_count
                self.configure_account(key, **kwargs)

    # --- accounts ----------------------------------------------------------------------------------

    def configure_account(
        self,
        key: str,
        *,
        vm_count: int = DEFAULT_VM_COUNT,
        include_example: bool = False,
        seed: Any = None,
        revoked: bool = False,
        generation: str | None = None,
        page_base: int = 1,
        max_per_page: int = 100,
        read_only: bool = False,
        balance: dict[str, Any] | None = None,
    ) -> int:
        """(Re)create an account of ``vm_count`` VMs in all, deterministic for ``seed`` (default: key).

        ``generation`` defaults to the key's (``sbx_b_…`` speaks B, ``sbx_a_…`` A, any other the
        baseline). ``page_base``, ``max_per_page`` and ``balance`` shape generation B answers;
        ``read_only`` refuses deletions and terminations with 403.
        """
        if not isinstance(key, str) or not key or len(key) > 200:
            raise ValueError("key must be a non-empty string")
        if isinstance(vm_count, bool) or not isinstance(vm_count, int) or not 0 <= vm_count <= MAX_VM_COUNT:
            raise ValueError(f"vm_count must be an integer between 0 and {MAX_VM_COUNT}")
        options = AccountOptions.build(
            generation=generation_of_key(key) if generation is None else generation,
            page_base=page_base,
            max_per_page=max_per_page,
            read_only=read_only,
            balance=balance,
        )
        if include_example and options.generation == GENERATION_B:
            raise ValueError("include_example is the baseline example VM: not for a generation B account")
        seed = key if seed is None else seed
        now = self.clock()
        records: list[Any] = []
        if options.generation == GENERATION_B:
            records.extend(data_b.generate_vms(seed, vm_count, now=now))
        else:
            if include_example and vm_count > 0:
                records.append(vmdata.example_record())
            records.extend(vmdata.generate_vms(seed, vm_count - len(records), now=now))
        account = Account(key, options, seed=seed, revoked=bool(revoked))
        account.set_vms(records)
        with self._lock:
            self._accounts[key] = account
        return len(records)

    def set_revoked(self, key: str, revoked: bool = True) -> None:
        with self._lock:
            self._account(key).revoked = revoked

    def has_account(self, key: str) -> bool:
        with self._lock:
            return key in self._accounts

    def generation_of(self, key: str | None) -> str | None:
        """The generation ``key`` speaks, without authenticating it; None when no account can have it."""
        if not key:
            return None
        with self._lock:
            account = self._accounts.get(key)
            if account is not None:
                return account.generation
        return generation_of_key(key) if KEY_PATTERN.match(key) else None

    def add_vm(
        self,
        key: str,
        *,
        name: str,
        status: str | None = None,
        activate_after: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Add one VM at the end of the account's list; returns it as the API would list it.

        ``status`` defaults to Launching (``launching`` on generation B). With ``activate_after``
        seconds, a pending VM becomes ACTIVE (``launched``) after that delay. ``overrides`` replace
        fields of the API object (``id``, ``pricePerEpoch``, ``datacenter``, ``priceHourlyUsd`` …).
        """
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        if status is not None and (not isinstance(status, str) or not status):
            raise ValueError("status must be a non-empty string")
        if activate_after is not None and (
            isinstance(activate_after, bool)
            or not isinstance(activate_after, int | float)
            or activate_after < 0
        ):
            raise ValueError("activate_after must be a number of seconds >= 0")
        with self._lock:
            account = self._account(key)
            if account.generation == GENERATION_B:
                return self._add_vm_b(
                    account,
                    name=name,
                    status=status or data_b.LAUNCHING,
                    activate_after=activate_after,
                    **overrides,
                )
            status = status or vmdata.LAUNCHING
            now = self.clock()
            created = now if status in vmdata.PENDING else None
            record = vmdata.make_vm(self._rng, name=name, status=status, now=now, created=created)
            self._insert(
                account,
                record,
                overrides,
                id_pattern=VM_ID_PATTERN,
                id_rule="id must be 0x followed by 40 hex digits",
                new_id=vmdata.random_vm_id,
                activate_at=None if activate_after is None else now + activate_after,
            )
            if record.activate_at is not None and record.activate_at <= now:
                self._tick(account, now)
            return json.loads(json.dumps(record.data))

    def _add_vm_b(
        self, account: Account, *, name: str, status: str, activate_after: float | None, **overrides: Any
    ) -> dict[str, Any]:
        now = self.clock()
        self._tick(account, now)
        # Added VMs are recent: a pending one is created now, any other long enough ago (15 minutes)
        # for its readySince or failure to lie in the past.
        created = now if status in data_b.PENDING else now - 900
        user_id = data_b.user_id(account.seed)
        record = data_b.make_vm(
            self._rng, user_id=user_id, name=name, status=status, now=now, created=created
        )
        self._insert(
            account,
            record,
            overrides,
            id_pattern=UUID_PATTERN,
            id_rule="id must be a UUID",
            new_id=data_b.random_uuid,
            activate_at=None if activate_after is None else now + activate_after,
        )
        self._tick(account, now)
        return expand_b.api_object(record)

    def _insert(self, account, record, overrides, *, id_pattern, id_rule, new_id, activate_at) -> None:
        """Put an added VM at the end of the account's list, with a given id checked or a fresh one."""
        if "id" in overrides:
            vm_id = overrides["id"]
            if not isinstance(vm_id, str) or not id_pattern.match(vm_id):
                raise ValueError(id_rule)
            if vm_id.lower() in account.by_id:
                raise ValueError("a VM with this id already exists in the account")
        record.data.update(overrides)
        while record.id_lower in account.by_id:  # practically never
            record.data["id"] = new_id(self._rng)
        record.activate_at = activate_at
        account.vms.append(record)
        account.by_id[record.id_lower] = record
        account.changed()

    def vms_for(self, key: str) -> list[dict[str, Any]]:
        """The account's VMs as its list would show them now, all of them, in the account's order.

        Fresh copies: ``GET /vms/v2`` objects, or generation B objects (without pagination or expand).
        """
        with self._lock:
            account = self._account(key)
            if account.generation == GENERATION_B:
                self._tick(account, self.clock())
                return json.loads(
                    b"[" + b",".join(self._vm_json_b(account, r, ()) for r in account.vms) + b"]"
                )
        return json.loads(self.list_json(key))

    def list_json(self, key: str, version: str = "v2") -> bytes:
        """The serialized list (cached per account and shape until something changes)."""
        with self._lock:
            account = self._account(key)
            self._tick(account, self.clock())
            body = account.cache.get(version)
            if body is None:
                if version == "v3":
                    payload = [vmdata.to_v3(r.data) for r in account.vms]
                else:
                    payload = [r.data for r in account.vms]
                body = json.dumps(payload, separators=(",", ":")).encode()
                account.cache[version] = body
            return body

    def delete_vms(self, key: str, vm_ids: list[str]) -> None:
        """Mark VMs for deletion; ApiError 404 if any id is not the account's (then nothing changes)."""
        with self._lock:
            account = self._account(key)
            if account.generation == GENERATION_B:
                raise ValueError("a generation B account terminates its VMs: use terminate_vm")
            if account.options.read_only:
                raise ApiError(403, "This API key lacks the vms:write scope")
            now = self.clock()
            self._tick(account, now)
            records = []
            for vm_id in vm_ids:
                record = account.by_id.get(vm_id.lower())
                if record is None:
                    raise ApiError(404, "VM not found")
                records.append(record)
            delay = max(0.0, float(self.deletion_delay))
            for record in records:
                if record.delete_at is None:
                    record.delete_at = now + delay
            account.changed()
            self._tick(account, now)

    def update_vms(self, key: str, updates: list[dict[str, Any]]) -> None:
        """``PATCH /vms/v3`` (generation A): each update renames a VM (``vmName``) and/or **replaces** its
        open ports (``openPorts``). All or nothing: ApiError 404 if any id is not the account's, 403 for a
        read-only key; the caller has checked the body's shape."""
        with self._lock:
            account = self._account(key)
            if account.generation != GENERATION_A:
                raise ValueError("only a generation A account is updated through PATCH /vms/v3")
            if account.options.read_only:
                raise ApiError(403, "This API key lacks the vms:write scope")
            now = self.clock()
            self._tick(account, now)
            records = []
            for update in updates:
                record = account.by_id.get(str(update["id"]).lower())
                if record is None or record.delete_at is not None:
                    raise ApiError(404, "VM not found")
                records.append(record)
            for record, update in zip(records, updates, strict=True):
                if "vmName" in update:
                    record.data["vmName"] = update["vmName"]
                if "openPorts" in update:
                    record.data["ports"] = [dict(port) for port in update["openPorts"]]
            account.changed()

    def rename_vm_b(self, key: str, vm_id: str, name: str) -> bytes:
        """``PATCH /v2/vms/{id}`` ``{"name"}``: the VM, renamed. ApiError 403 for a read-only key, 404 for
        an unknown VM, 422 for a name outside ``^[a-z0-9-]{1,25}$``, 406 while the VM is terminating or
        terminated."""
        with self._lock:
            account, record, now = self._b_write_target(key, vm_id)
            if not isinstance(name, str) or not B_NAME_PATTERN.match(name):
                raise ApiError(422, "name must match ^[a-z0-9-]{1,25}$", "unprocessable_entity")
            status = record.data["status"]
            if status in ("terminating", "terminated"):
                raise ApiError(406, f"The VM is {status}: it cannot be renamed", "not_acceptable")
            record.data["name"] = name
            record.data["updatedAt"] = data_b.rfc3339(now, fractional=record.fractional)
            account.changed()
            return self._vm_json_b(account, record, (), listed=False)

    def restart_vm_b(self, key: str, vm_id: str, *, soft: bool = False) -> bytes:
        """``POST /v2/vms/{id}/restart`` (or ``/softreboot``): restarting (softRebooting) now, launched again
        after ``restart_delay``. ApiError 403 for a read-only key, 404 for an unknown VM, 406 when the VM's
        allowedActions lack the action (a VM in transition, or ended)."""
        action, status = ("softReboot", "softRebooting") if soft else ("restart", "restarting")
        with self._lock:
            account, record, now = self._b_write_target(key, vm_id)
            _refuse_unless_allowed(record, action)
            data_b.begin_restart(record, now, max(0.0, float(self.restart_delay)), status)
            account.changed()
            return self._vm_json_b(account, record, (), listed=False)

    def authenticate(self, key: str | None, *, generation_b: bool = False) -> None:
        """Raise AuthFailure unless ``key`` may use the API; creates accounts for new sandbox keys.

        ``generation_b``: answer as generation B does, always 401 with ``code`` (the 2025 API answered
        an unknown key with 403 and no code).
        """
        if not key:
            raise AuthFailure(401, {"code": "unauthorized", "error": "Missing API key"})
        with self._lock:
            account = self._accounts.get(key)
            if account is None and KEY_PATTERN.match(key):
                account = self._account(key)
        if account is None:
            if generation_b:
                raise AuthFailure(401, {"code": "unauthorized", "error": "Invalid API key"})
            raise AuthFailure(403, {"error": "Invalid API key"})
        if account.revoked:
            raise AuthFailure(401, {"code": "unauthorized", "error": "API key revoked"})

    def accounts_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "key": fingerprint(a.key),
                    "generation": a.generation,
                    "vms": len(a.vms),
                    "revoked": a.revoked,
                }
                for a in self._accounts.values()
            ]

    # --- generation B ------------------------------------------------------------------------------

    def vm_list_json(self, key: str, query: VmListQuery) -> bytes:
        """``GET /v2/vms``: one page of the account's VMs and the pagination, serialized."""
        with self._lock:
            account = self._b_account(key)
            self._tick(account, self.clock())
            options = account.options
            selected = self._selection(account, query)
            per_page = min(query.per_page, options.max_per_page)
            # A page below the first (page=0 where pages start at 1) is the first page.
            page = options.page_base if query.page is None else max(query.page, options.page_base)
            start = (page - options.page_base) * per_page
            items = b",".join(
                self._vm_json_b(account, r, query.expand) for r in selected[start : start + per_page]
            )
            pagination = {
                "totalRecords": len(account.vms),
                "filteredRecords": len(selected),
                "totalPages": math.ceil(len(selected) / per_page),
                "currentPage": page,
                "perPage": per_page,
            }
            return b'{"items":[' + items + b'],"pagination":' + _compact(pagination) + b"}"

    def vm_json(self, key: str, vm_id: str, expand: tuple[str, ...] = ()) -> bytes:
        """``GET /v2/vms/{id}``; ApiError 404 when the account has no such VM."""
        with self._lock:
            account = self._b_account(key)
            self._tick(account, self.clock())
            return self._vm_json_b(account, self._b_record(account, vm_id), expand, listed=False)

    def terminate_vm(self, key: str, vm_id: str) -> bytes:
        """``POST /v2/vms/{id}/terminate``: terminating now, terminated after ``deletion_delay``.

        ApiError 403 for a read-only key, 404 for an unknown VM, 406 when the VM's allowedActions
        lack ``terminate`` (transitional states, and VMs already terminated).
        """
        with self._lock:
            account, record, now = self._b_write_target(key, vm_id)
            _refuse_unless_allowed(record, "terminate")
            data_b.begin_termination(record, now, max(0.0, float(self.deletion_delay)))
            account.changed()
            # The answer shows the VM as the request left it (terminating), even with no delay at all.
            answer = self._vm_json_b(account, record, (), listed=False)
            self._tick(account, now)
            return answer

    def balances_json(self, key: str) -> bytes:
        """``GET /v2/users/balances``: the account's compute entitlement, a list of one."""
        with self._lock:
            account = self._b_account(key)
            entitlement = {**data_b.balance(account.seed), **(account.options.balance or {})}
            return _compact([entitlement])

    def _b_account(self, key: str) -> Account:
        account = self._account(key)
        if account.generation != GENERATION_B:
            raise ValueError("not a generation B account")
        return account

    def _b_write_target(self, key: str, vm_id: str) -> tuple[Account, data_b.VmRecordB, float]:
        """For a write to one VM of today's API, under the lock: the account, brought up to now, the VM and
        now. ApiError 403 for a read-only key, 404 for an unknown VM."""
        account = self._b_account(key)
        if account.options.read_only:
            raise ApiError(403, "This API key lacks the vms:write scope", "forbidden")
        now = self.clock()
        self._tick(account, now)
        return account, self._b_record(account, vm_id), now

    def _b_record(self, account: Account, vm_id: str) -> data_b.VmRecordB:
        record = account.by_id.get(vm_id.lower())
        if record is None:
            raise ApiError(404, "VM not found", "not_found")
        return record

    def _selection(self, account: Account, query: VmListQuery) -> list[data_b.VmRecordB]:
        """The account's VMs that the query selects, in its order (cached until the account changes)."""
        cache_key = ("selection", query.sort, query.order, query.filters)
        selected = account.cache.get(cache_key)
        if selected is None:
            ordered = account.cache.get(("order", query.sort))
            if ordered is None:
                ordered = sorted(account.vms, key=_SORT_KEYS[query.sort])
                account.cache[("order", query.sort)] = ordered
            selected = ordered[::-1] if query.order == "desc" else ordered
            if query.has_filters:
                selected = [r for r in selected if query.matches(r.data)]
            if sum(1 for k in account.cache if k[0] == "selection") >= _SELECTION_CACHE_SIZE:
                for stale in [k for k in account.cache if k[0] == "selection"]:
                    del account.cache[stale]
            account.cache[cache_key] = selected
        return selected

    def _vm_json_b(
        self, account: Account, record: data_b.VmRecordB, expand: tuple[str, ...], *, listed: bool = True
    ) -> bytes:
        """One VM serialized (cached per VM, expand and form until the account changes)."""
        serialized = account.cache.setdefault(("vm", expand, listed), {})
        body = serialized.get(record.id_lower)
        if body is None:
            body = _compact(expand_b.api_object(record, expand, listed=listed))
            serialized[record.id_lower] = body
        return body

    def _account(self, key: str) -> Account:
        """The account of ``key``, created on first use for a sandbox-shaped key; KeyError otherwise."""
        account = self._accounts.get(key)
        if account is None:
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                raise KeyError("no such sandbox account")
            self.configure_account(key, vm_count=self.default_vm_count)
            account = self._accounts[key]
        return account

    def _tick(self, account: Account, now: float) -> None:
        """Apply what time has brought: finished deletions, activations, billing rollovers."""
        if account.next_event is None or account.next_event > now:
            return
        if account.generation == GENERATION_B:  # terminated VMs stay listed
            for record in account.vms:
                data_b.advance(record, self._rng, now)
            account.changed()
            return
        kept = []
        for record in account.vms:
            if record.delete_at is not None and record.delete_at <= now:
                account.by_id.pop(record.id_lower, None)
                continue
            if record.activate_at is not None and record.activate_at <= now:
                vmdata.activate(record, self._rng, now)
            vmdata.roll_billing(record, now)
            kept.append(record)
        account.vms = kept
        account.changed()

    # --- faults ------------------------------------------------------------------------------------

    def set_faults(self, *, key: str | None = None, **fields: Any) -> Faults:
        """Inject faults into API requests: for all keys (key=None) or only for one key.

        A key's own faults take precedence over the global ones. Resets the error-rate RNG so that a
        given sequence of requests always fails the same way.
        """
        faults = Faults.build(**fields)
        with self._lock:
            if key is None:
                self._faults = faults
            else:
                self._key_faults[key] = faults
            self._fault_rng.seed(0)
        return faults

    def clear_faults(self, key: str | None = None) -> None:
        """Clear every fault (key=None) or only one key's own faults."""
        with self._lock:
            if key is None:
                self._faults = NO_FAULTS
                self._key_faults.clear()
            else:
                self._key_faults.pop(key, None)
            self._fault_rng.seed(0)

    def reseed(self, seed: int = 0) -> None:
        """Start the random draws of added and advancing VMs again, so that what a test adds does not
        depend on what ran before it in the same sandbox."""
        with self._lock:
            self._rng.seed(seed)

    def faults_for(self, key: str | None) -> Faults:
        with self._lock:
            if key is not None and key in self._key_faults:
                return self._key_faults[key]
            return self._faults

    def fault_decision(self, key: str | None) -> tuple[Faults, bool]:
        """The faults for this request, and whether its error_rate roll says it fails."""
        with self._lock:
            faults = self.faults_for(key)
            failed = faults.error_rate > 0 and self._fault_rng.random() < faults.error_rate
            return faults, failed

    def faults_summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "global": self._faults.as_dict(),
                "keys": {fingerprint(k): f.as_dict() for k, f in self._key_faults.items()},
            }

    # --- counters ----------------------------------------------------------------------------------

    def record_request(self, method: str, path: str, key: str | None) -> None:
        with self._lock:
            self._counts[(method, path, key or None)] += 1

    def request_count(
        self, method: str | None = None, path: str | None = None, key: str | None = None
    ) -> int:
        """API requests served (control requests excluded), filtered by method, path and/or key."""
        method = method.upper() if method else None
        with self._lock:
            return sum(
                n
                for (m, p, k), n in self._counts.items()
                if (method is None or m == method)
                and (path is None or p == path)
                and (key is None or k == key)
            )

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def stats(self) -> dict[str, Any]:
        """Counts by endpoint and by key fingerprint; never a full key."""
        by_endpoint: Counter[str] = Counter()
        by_key: Counter[str] = Counter()
        with self._lock:
            for (m, p, k), n in self._counts.items():
                by_endpoint[f"{m} {p}"] += n
                by_key[fingerprint(k)] += n
            total = sum(self._counts.values())
        return {"total": total, "by_endpoint": dict(by_endpoint), "by_key": dict(by_key)}


def _refuse_unless_allowed(record: data_b.VmRecordB, action: str) -> None:
    """ApiError 406 unless the VM's allowedActions list `action` (today's API refuses it in this status)."""
    if action not in record.data["allowedActions"]:
        status = record.data["status"]
        raise ApiError(406, f"The VM is {status}: {action} is not allowed now", "not_acceptable")
