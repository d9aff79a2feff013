"""The sandbox's state: accounts and their VMs, faults to inject, and request counters. Thread-safe.

Time-driven changes (a deletion completing, a Launching VM becoming ACTIVE, a billing epoch rolling
over) are applied lazily, whenever an account is read, so no timer threads are needed.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from . import data as vmdata
from .demo import DEMO_ACCOUNTS, configure_kwargs

KEY_PATTERN = re.compile(r"^sbx_[A-Za-z0-9_-]{8,80}$")
VM_ID_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_VM_COUNT = 12
MAX_VM_COUNT = 200_000


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
        for name, value in (("malformed", malformed), ("wrong_shape", wrong_shape), ("drop", drop)):
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
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"error": message}


class _Account:
    __slots__ = ("by_id", "cache", "key", "next_event", "revoked", "vms")

    def __init__(self, key: str, revoked: bool = False):
        self.key = key
        self.revoked = revoked
        self.vms: list[vmdata.VmRecord] = []
        self.by_id: dict[str, vmdata.VmRecord] = {}
        self.cache: dict[str, bytes] = {}
        self.next_event: float | None = None

    def set_vms(self, records: list[vmdata.VmRecord]) -> None:
        self.vms = records
        self.by_id = {r.id_lower: r for r in records}
        self.changed()

    def changed(self) -> None:
        self.cache.clear()
        events = []
        for r in self.vms:
            for t in (r.next_billing, r.activate_at, r.delete_at):
                if t is not None:
                    events.append(t)
        self.next_event = min(events) if events else None


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
        self._accounts: dict[str, _Account] = {}
        self._faults: Faults = NO_FAULTS
        self._key_faults: dict[str, Faults] = {}
        self._fault_rng = random.Random(0)
        self._rng = random.Random(0)
        self._counts: Counter[tuple[str, str, str | None]] = Counter()
        self.default_vm_count = default_vm_count
        self.deletion_delay = deletion_delay
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
    ) -> int:
        """(Re)create an account of ``vm_count`` VMs in all, deterministic for ``seed`` (default: key)."""
        if not isinstance(key, str) or not key or len(key) > 200:
            raise ValueError("key must be a non-empty string")
        if isinstance(vm_count, bool) or not isinstance(vm_count, int) or not 0 <= vm_count <= MAX_VM_COUNT:
            raise ValueError(f"vm_count must be an integer between 0 and {MAX_VM_COUNT}")
        now = self.clock()
        records: list[vmdata.VmRecord] = []
        if include_example and vm_count > 0:
            records.append(vmdata.example_record())
        records.extend(vmdata.generate_vms(key if seed is None else seed, vm_count - len(records), now=now))
        account = _Account(key, revoked=bool(revoked))
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

    def add_vm(
        self,
        key: str,
        *,
        name: str,
        status: str = vmdata.LAUNCHING,
        activate_after: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Add one VM at the end of the account's list; returns it as the API would list it.

        With ``activate_after`` seconds, a pending (Launching/New) VM becomes ACTIVE after that delay.
        ``overrides`` replace fields of the API object (``id``, ``pricePerEpoch``, ``datacenter`` …).
        """
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        if not isinstance(status, str) or not status:
            raise ValueError("status must be a non-empty string")
        if activate_after is not None and (
            isinstance(activate_after, bool)
            or not isinstance(activate_after, int | float)
            or activate_after < 0
        ):
            raise ValueError("activate_after must be a number of seconds >= 0")
        with self._lock:
            account = self._account(key)
            now = self.clock()
            created = now if status in vmdata.PENDING else None
            record = vmdata.make_vm(self._rng, name=name, status=status, now=now, created=created)
            if "id" in overrides:
                vm_id = overrides["id"]
                if not isinstance(vm_id, str) or not VM_ID_PATTERN.match(vm_id):
                    raise ValueError("id must be 0x followed by 40 hex digits")
                if vm_id.lower() in account.by_id:
                    raise ValueError("a VM with this id already exists in the account")
            record.data.update(overrides)
            while record.id_lower in account.by_id:  # practically never
                record.data["id"] = vmdata.random_vm_id(self._rng)
            if activate_after is not None:
                record.activate_at = now + activate_after
            account.vms.append(record)
            account.by_id[record.id_lower] = record
            account.changed()
            if record.activate_at is not None and record.activate_at <= now:
                self._tick(account, now)
            return json.loads(json.dumps(record.data))

    def vms_for(self, key: str) -> list[dict[str, Any]]:
        """The account's VMs as ``GET /vms/v2`` would list them now (fresh copies)."""
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

    def authenticate(self, key: str | None) -> None:
        """Raise AuthFailure unless ``key`` may use the API; creates accounts for new sandbox keys."""
        if not key:
            raise AuthFailure(401, {"code": "unauthorized", "error": "Missing API key"})
        with self._lock:
            account = self._accounts.get(key)
            if account is None and KEY_PATTERN.match(key):
                account = self._account(key)
        if account is None:
            raise AuthFailure(403, {"error": "Invalid API key"})
        if account.revoked:
            raise AuthFailure(401, {"code": "unauthorized", "error": "API key revoked"})

    def accounts_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"key": fingerprint(a.key), "vms": len(a.vms), "revoked": a.revoked}
                for a in self._accounts.values()
            ]

    def _account(self, key: str) -> _Account:
        """The account of ``key``, created on first use for a sandbox-shaped key; KeyError otherwise."""
        account = self._accounts.get(key)
        if account is None:
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                raise KeyError("no such sandbox account")
            self.configure_account(key, vm_count=self.default_vm_count)
            account = self._accounts[key]
        return account

    def _tick(self, account: _Account, now: float) -> None:
        """Apply what time has brought: finished deletions, activations, billing rollovers."""
        if account.next_event is None or account.next_event > now:
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
