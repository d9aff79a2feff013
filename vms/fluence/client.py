"""The only code that speaks HTTP to Fluence: one client, one adapter per API generation."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ReadTimeoutError

from vms import metrics

from . import decoding, transport
from .errors import (
    AuthError,
    BadResponse,
    Conflict,
    FluenceError,
    InsufficientBalance,
    NotAcceptable,
    NotFound,
    RateLimited,
    ReadOnlyKey,
    TooLarge,
    Unavailable,
    UpstreamTimeout,
    clean_upstream_text,
)
from .models import (
    HEX_VM_ID_RE,
    UUID_VM_ID_RE,
    Balance,
    Vm,
    cyclic_gc_paused,
    datacenters_of,
    duplicates_note,
    parse_balance,
    parse_locations,
    parse_vm,
    parse_vm_list_lenient,
)
from .numbers import parse_retry_after

logger = logging.getLogger("vms.fluence")

USER_AGENT = "fluence-portal/0.1"
RETRYABLE_STATUSES = frozenset({502, 503, 504})
ERRORS_BY_STATUS: dict[int, type[FluenceError]] = {406: NotAcceptable, 409: Conflict}
ERRORS_BY_CODE: dict[str, type[FluenceError]] = {
    "unauthorized": AuthError,
    "forbidden": AuthError,
    "not_found": NotFound,
    "not_acceptable": NotAcceptable,
    "conflict": Conflict,
    "insufficient_balance": InsufficientBalance,
}
POOL_CONNECTIONS = 10
BODY_CHUNK_BYTES = 64 * 1024
POOL_MAXSIZE = 20


# --- the request an adapter asks for ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)
    # What the call is for, in a fixed word (metrics label it so; never the path, which may hold a VM id):
    # list, probe, get, delete, rename, restart, ports, locations or balance.
    operation: str = "other"

    @property
    def idempotent(self) -> bool:
        return self.method in ("GET", "HEAD")


@dataclass(frozen=True, slots=True)
class ListAnswer:
    """One key's VMs as Fluence listed them, and the JSON a cache keeps to read the same answer again
    (`adapter.read_cached(body)`) without asking Fluence."""

    vms: tuple[Vm, ...]
    unreadable: tuple[str, ...] = ()  # items that are no VM at all (no usable id), and why
    notes: tuple[str, ...] = ()  # what a person should know about the list (e.g. it was cut)
    balance: Balance | None = None
    body: bytes = b""


# --- adapters: what differs between API generations -----------------------------------------------------


class ApiAdapter:
    """One API generation. An adapter drives its own requests through the client's `send`, so that a
    paginated generation can make several calls for one list without the client or its callers changing."""

    name: ClassVar[str]
    label: ClassVar[str]  # in words, for people
    auth_statuses: ClassVar[frozenset[int]] = frozenset({400, 401, 403})
    can_get_vm: ClassVar[bool] = False  # a single VM can be asked for (else it is found in the list)
    deletes_in_one_call: ClassVar[bool] = False  # several VMs are deleted by one request, all or none
    can_rename: ClassVar[bool] = False  # a VM can be renamed through this API
    can_restart: ClassVar[bool] = False  # a VM can be restarted and soft-rebooted through this API
    can_set_ports: ClassVar[bool] = False  # a VM's open ports can be replaced through this API
    # What a new name must look like (None: this API cannot rename), and the rule in words.
    name_pattern: ClassVar[re.Pattern | None] = None
    name_rule: ClassVar[str] = ""
    name_max_length: ClassVar[int] = 0

    def auth_headers(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    def is_valid_id(self, vm_id: str) -> bool:
        raise NotImplementedError

    def probe(self, client: FluenceClient) -> int:
        """One cheap list call that answers only if the key speaks this generation: how many VMs it has."""
        raise NotImplementedError

    def list_answer(self, client: FluenceClient) -> ListAnswer:
        raise NotImplementedError

    def read_cached(self, body: bytes) -> ListAnswer:
        raise NotImplementedError

    def get_vm(self, client: FluenceClient, vm_id: str) -> Vm:
        raise NotImplementedError

    def delete_vms(self, client: FluenceClient, vm_ids: list[str]) -> None:
        raise NotImplementedError

    def rename_vm(self, client: FluenceClient, vm_id: str, name: str) -> None:
        raise NotImplementedError

    def restart_vm(self, client: FluenceClient, vm_id: str, *, soft: bool) -> None:
        raise NotImplementedError

    def set_ports(self, client: FluenceClient, vm_id: str, ports: list[dict]) -> None:
        raise NotImplementedError


class BaselineAdapter(ApiAdapter):
    """The baseline contract: `GET /vms/v2` (a plain array), `DELETE /vms/v3` with `{"vmId": id}`."""

    name = "baseline"
    label = "2025 draft API (v2)"
    list_path = "/vms/v2"
    delete_path = "/vms/v3"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        # The 2025 docs moved from Bearer to X-API-KEY; Fluence's own Terraform provider sent both.
        return {"X-API-KEY": api_key, "Authorization": f"Bearer {api_key}"}

    def is_valid_id(self, vm_id: str) -> bool:
        return isinstance(vm_id, str) and HEX_VM_ID_RE.match(vm_id) is not None

    def probe(self, client: FluenceClient) -> int:
        return len(self.list_answer(client).vms)

    def list_answer(self, client: FluenceClient) -> ListAnswer:
        # Decoded once, straight into VMs.
        return client.send(ApiRequest("GET", self.list_path, operation="list"), decode=self.read_cached)

    def read_cached(self, body: bytes) -> ListAnswer:
        vms, unreadable = decoding.read_vm_list(body, self.name)
        return ListAnswer(vms=tuple(vms), unreadable=tuple(unreadable), body=body)

    def delete_vms(self, client: FluenceClient, vm_ids: list[str]) -> None:
        # The first draft deletes one VM per call.
        for vm_id in vm_ids:
            client.send(ApiRequest("DELETE", self.delete_path, json={"vmId": vm_id}, operation="delete"))


class GenerationAAdapter(BaselineAdapter):
    """Generation A: `GET /vms/v3` (a plain array), `DELETE /vms/v3` with `{"vmIds": [id, …]}`."""

    name = "a"
    label = "2025 API (v3)"
    list_path = "/vms/v3"
    deletes_in_one_call = True

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"X-API-KEY": api_key}

    can_rename = True
    can_set_ports = True
    # Fluence documents no rule for vmName on this API: printable, without control characters.
    name_pattern = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
    name_rule = "1 to 100 characters, no control characters"
    name_max_length = 100

    def delete_vms(self, client: FluenceClient, vm_ids: list[str]) -> None:
        # One call deletes them all: Fluence accepts or refuses the batch as a whole.
        client.send(ApiRequest("DELETE", self.delete_path, json={"vmIds": list(vm_ids)}, operation="delete"))

    def rename_vm(self, client: FluenceClient, vm_id: str, name: str) -> None:
        # 204 without a body; the whole update is accepted or refused.
        update = {"updates": [{"id": vm_id, "vmName": name}]}
        client.send(ApiRequest("PATCH", self.delete_path, json=update, operation="rename"), decode=False)

    def set_ports(self, client: FluenceClient, vm_id: str, ports: list[dict]) -> None:
        # `openPorts` REPLACES the VM's whole list: the caller sends every port that is to stay open.
        update = {"updates": [{"id": vm_id, "openPorts": [dict(port) for port in ports]}]}
        client.send(ApiRequest("PATCH", self.delete_path, json=update, operation="ports"), decode=False)


# Today's API pages its list; the pages after the first are asked for together, so a large account costs
# about two round trips, bounded per process.
PER_PAGE = 100
MAX_PAGES = 200
PAGE_CONCURRENCY = 50
LOCATIONS_SECONDS = 3600
LOCATIONS_RETRY_SECONDS = 60
_EXPAND = {"expand[0]": "publicIp", "expand[1]": "bootDisk"}
_page_pool = ThreadPoolExecutor(max_workers=PAGE_CONCURRENCY, thread_name_prefix="fluence-page")


def _in_pool(function, *args):
    """Run on the page pool, logging under the caller's request id."""
    return _page_pool.submit(contextvars.copy_context().run, function, *args)


def _pagination(answer: object) -> tuple[list, dict]:
    if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
        raise BadResponse("the VM list is not a page of items")
    pagination = answer.get("pagination")
    if not isinstance(pagination, dict):
        raise BadResponse("the VM list has no pagination")
    for name in ("currentPage", "perPage", "totalPages"):
        value = pagination.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadResponse(f"the VM list's pagination has no usable {name}")
    return answer["items"], pagination


def _merged_items(pages: list) -> tuple[list, list[str]]:
    """Every VM object of the pages once, in page order, up to the first empty page."""
    items, seen, duplicates = [], set(), 0
    for page in pages:
        page_items, _ = _pagination(page)
        if not page_items:
            break
        for item in page_items:
            vm_id = item.get("id") if isinstance(item, dict) else None
            ident = vm_id.lower() if isinstance(vm_id, str) else None
            if ident is not None and ident in seen:
                duplicates += 1
                continue
            if ident is not None:
                seen.add(ident)
            items.append(item)
    return items, [duplicates_note(duplicates)] * bool(duplicates)


class GenerationBAdapter(ApiAdapter):
    """Today's API: `GET /v2/vms` in pages, `POST /v2/vms/{id}/terminate`, UUID ids, USD billed per second."""

    name = "b"
    label = "current API"
    auth_statuses = frozenset({401, 403})
    can_get_vm = True

    def auth_headers(self, api_key: str) -> dict[str, str]:
        # What Fluence's own Terraform provider sends. Never `Bearer`: today's API reads that as a JWT.
        return {"X-API-KEY": api_key, "Authorization": f"X-API-KEY {api_key}"}

    def is_valid_id(self, vm_id: str) -> bool:
        return isinstance(vm_id, str) and UUID_VM_ID_RE.match(vm_id) is not None

    def probe(self, client: FluenceClient) -> int:
        answer = client.send(ApiRequest("GET", "/v2/vms", params={"perPage": "1"}, operation="probe"))
        items, pagination = _pagination(answer)
        total = pagination.get("totalRecords")
        return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else len(items)

    def list_answer(self, client: FluenceClient) -> ListAnswer:
        # Where the VMs run and the balance are asked for while the first page is on its way.
        extras = [_in_pool(self._locations, client), _in_pool(self._balance, client)]
        pages: list[Future] = []
        try:
            first, first_body = client.send(
                ApiRequest("GET", "/v2/vms", params=self._page_query(), operation="list"), with_body=True
            )
            _, pagination = _pagination(first)
            # Whether pages count from 0 or 1 is not documented: the first answer says which. The page size
            # is the one the server granted.
            base, per_page, total_pages = (
                pagination["currentPage"],
                pagination["perPage"] or PER_PAGE,
                pagination["totalPages"],
            )
            notes = []
            if total_pages > MAX_PAGES:
                notes.append(
                    f"Fluence lists this account's VMs on {total_pages:,} pages; the portal reads the first "
                    f"{MAX_PAGES} ({MAX_PAGES * per_page:,} VMs)."
                )
            pages = [
                # Left undecoded: the pages are decoded once, together, when the list is read.
                _in_pool(
                    client.send,
                    ApiRequest("GET", "/v2/vms", params=self._page_query(page, per_page), operation="list"),
                    True,
                    False,
                )
                for page in range(base + 1, base + min(total_pages, MAX_PAGES))
            ]
            # Any page failing fails the whole list: a silently partial account hides VMs that cost money.
            bodies = [first_body, *(future.result()[1] for future in pages)]
            located, balance = (future.result() for future in extras)
        finally:
            # Nothing this call started outlives it, even when it fails.
            wait([*extras, *pages])
        body = b"".join(
            (
                b'{"pages":[',
                b",".join(bodies),
                b'],"locations":',
                json.dumps(located).encode(),
                b',"balance":',
                json.dumps(balance).encode(),
                b',"notes":',
                json.dumps(notes).encode(),
                b"}",
            )
        )
        return self.read_cached(body)

    @staticmethod
    def _page_query(page: int | None = None, per_page: int = PER_PAGE) -> dict[str, str]:
        first = {} if page is None else {"page": str(page)}
        return {**first, "perPage": str(per_page), **_EXPAND}

    def read_cached(self, body: bytes) -> ListAnswer:
        decoded = decoding.read_b_pages(body)
        if decoded is not None:
            vms, notes, balance_answer = decoded
            unreadable = []
        else:
            vms, unreadable, notes, balance_answer = self._read_tolerantly(body)
        try:
            balance = parse_balance(balance_answer) if balance_answer is not None else None
        except BadResponse:
            balance = None
        return ListAnswer(
            vms=tuple(vms), unreadable=tuple(unreadable), notes=tuple(notes), balance=balance, body=body
        )

    @staticmethod
    def _read_tolerantly(body: bytes) -> tuple[list[Vm], list[str], list[str], object]:
        """The stored pages read field by field (decoding.read_b_pages could not): VMs, unreadable items,
        notes and the balances answer."""
        try:
            stored = json.loads(body)
        except (ValueError, RecursionError):
            raise BadResponse("a page of the VM list is not JSON") from None
        items, notes = _merged_items(stored["pages"])
        vms, unreadable = (
            parse_vm_list_lenient(
                items, copy=False, generation="b", locations=datacenters_of(stored["locations"] or {})
            )
            if items
            else ([], [])
        )
        return vms, unreadable, stored["notes"] + notes, stored["balance"]

    def _locations(self, client: FluenceClient) -> dict:
        """Cluster id -> datacenter object, shared by every key of this API address for an hour. A failure
        never fails the list: the VMs then show no location."""
        key = "fluence:locations:" + hashlib.sha256(client.base_url.encode()).hexdigest()[:32]
        located = cache.get(key)
        if located is not None:
            return located
        try:
            clusters = client.send(ApiRequest("GET", "/v1/clusters", operation="locations"))
            datacenters = client.send(ApiRequest("GET", "/v1/datacenters", operation="locations"))
            located = parse_locations(clusters, datacenters)
        except FluenceError as error:
            logger.warning("reading Fluence's clusters and datacenters failed: %s", type(error).__name__)
            cache.set(key, {}, LOCATIONS_RETRY_SECONDS)
            return {}
        cache.set(key, located, LOCATIONS_SECONDS)
        return located

    def _balance(self, client: FluenceClient) -> object:
        """The balances answer as Fluence sent it (read later with the list), or None on any failure."""
        try:
            answer = client.send(ApiRequest("GET", "/v2/users/balances", operation="balance"))
        except FluenceError as error:
            logger.warning("reading the account's balance failed: %s", type(error).__name__)
            return None
        return answer

    def get_vm(self, client: FluenceClient, vm_id: str) -> Vm:
        answer = client.send(ApiRequest("GET", f"/v2/vms/{vm_id}", params=dict(_EXPAND), operation="get"))
        return parse_vm(answer, generation=self.name, locations=datacenters_of(self._locations(client)))

    can_rename = True
    can_restart = True
    name_pattern = re.compile(r"^[a-z0-9-]{1,25}$")
    name_rule = "1 to 25 lowercase letters, digits or hyphens"
    name_max_length = 25

    def delete_vms(self, client: FluenceClient, vm_ids: list[str]) -> None:
        # One call per VM, no body; a key without the vms:write scope is told so in words.
        for vm_id in vm_ids:
            _send_write(client, ApiRequest("POST", f"/v2/vms/{vm_id}/terminate", operation="delete"))

    def rename_vm(self, client: FluenceClient, vm_id: str, name: str) -> None:
        _send_write(client, ApiRequest("PATCH", f"/v2/vms/{vm_id}", json={"name": name}, operation="rename"))

    def restart_vm(self, client: FluenceClient, vm_id: str, *, soft: bool) -> None:
        path = f"/v2/vms/{vm_id}/{'softreboot' if soft else 'restart'}"
        _send_write(client, ApiRequest("POST", path, operation="restart"))


def _send_write(client: FluenceClient, request: ApiRequest):
    """A write on today's API: a key without the vms:write scope (403) is told so in words."""
    try:
        return client.send(request)
    except AuthError as error:
        if error.status == 403:
            raise ReadOnlyKey(
                status=error.status,
                upstream_message=error.upstream_message,
                upstream_code=error.upstream_code,
            ) from None
        raise


ADAPTERS: dict[str, ApiAdapter] = {
    adapter.name: adapter for adapter in (GenerationBAdapter(), GenerationAAdapter(), BaselineAdapter())
}
GENERATIONS = tuple(ADAPTERS)  # the order in which a new key is probed: today's API first
GENERATION_LABELS = {name: adapter.label for name, adapter in ADAPTERS.items()}


def generation_label(generation: str | None) -> str:
    """A generation in words ("current API"); an unknown name as it is."""
    return GENERATION_LABELS.get(generation or "", generation or "")


# --- one pooled session per thread -----------------------------------------------------------------------


class _NoCookies(DefaultCookiePolicy):
    """The session is shared by every key of a thread: a cookie set for one key must never reach another."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


_local = threading.local()


def thread_session() -> requests.Session:
    """This thread's pooled HTTP session: its connections are reused from call to call, its cookies never
    kept, and the watchdog can cut its calls."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(_NoCookies())
        # max_retries=0: no transparent retries; the client decides (GET once, DELETE never).
        adapter = transport.WatchedAdapter(
            pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        _local.session = session
    return session


class KeyAuth(AuthBase):
    """Puts the key in the headers its API generation reads. Passing an auth object also stops requests
    from replacing the header with ~/.netrc credentials. Its repr never shows the key."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return "KeyAuth(<hidden>)"


# --- helpers ---------------------------------------------------------------------------------------------


class _BodyTimeout(Exception):
    """The body stopped coming: a read timeout, or the watchdog cut the call at its deadline."""


def _connection_never_made(exc: requests.ConnectionError) -> bool:
    """True when the connection was refused or the name did not resolve: nothing reached the server."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | NameResolutionError)


# --- the client ------------------------------------------------------------------------------------------


class FluenceClient:
    """Lists and deletes the VMs of one Fluence API key."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        generation: str = "baseline",
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        if generation not in ADAPTERS:
            raise ValueError(f"unknown Fluence API generation {generation!r}; known: {', '.join(ADAPTERS)}")
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the Fluence API base URL must be an http(s) URL")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("an API key is required")
        self.base_url = base_url.rstrip("/")
        self.generation = generation
        self.adapter = ADAPTERS[generation]
        self._api_key = api_key.strip()
        self._auth = KeyAuth(self.adapter.auth_headers(self._api_key))
        self.connect_timeout = (
            settings.FLUENCE_CONNECT_TIMEOUT if connect_timeout is None else float(connect_timeout)
        )
        self.read_timeout = settings.FLUENCE_READ_TIMEOUT if read_timeout is None else float(read_timeout)
        # No call outlives this, and no operation (a list of many pages) outlives it from its start.
        self.total_timeout = max(settings.FLUENCE_TOTAL_TIMEOUT, self.connect_timeout)
        self._operation_deadline: float | None = None
        self.unreadable: list[str] = []  # why items of the last list answer could not be read

    def __repr__(self) -> str:
        return f"FluenceClient(base_url={self.base_url!r}, generation={self.generation!r}, api_key=<hidden>)"

    def __reduce__(self):
        raise TypeError("a FluenceClient holds an API key and is not picklable")

    # public operations

    def list_answer(self) -> ListAnswer:
        """Every VM of the key (all pages), with the JSON a cache keeps to read it again."""
        self._operation_deadline = time.monotonic() + self.total_timeout
        try:
            # Decoding and parsing a list allocate many small, acyclic objects: see cyclic_gc_paused.
            with cyclic_gc_paused():
                answer = self.adapter.list_answer(self)
        except BadResponse as exc:
            raise self._redacted(exc) from None
        finally:
            self._operation_deadline = None
        self.unreadable = list(answer.unreadable)
        return answer

    def list_vms(self) -> list[Vm]:
        return list(self.list_answer().vms)

    def probe(self) -> int:
        """How many VMs the key sees, in one cheap call that fails unless the key speaks this generation."""
        try:
            return self.adapter.probe(self)
        except BadResponse as exc:
            raise self._redacted(exc) from None

    def get_vm(self, vm_id: str) -> Vm:
        """One VM, asked for by id (only where the generation can: see `adapter.can_get_vm`)."""
        if not self.adapter.is_valid_id(vm_id):
            raise ValueError("malformed VM id")
        try:
            return self.adapter.get_vm(self, vm_id)
        except BadResponse as exc:
            raise self._redacted(exc) from None

    def delete_vm(self, vm_id: str) -> None:
        """Ask Fluence to delete one VM. Never retried: a repeat could act twice or hide the outcome."""
        self.delete_vms([vm_id])

    def delete_vms(self, vm_ids: list[str]) -> None:
        """Ask Fluence to delete these VMs: in one call where the generation can (A), else one by one."""
        if not vm_ids or not all(self.adapter.is_valid_id(vm_id) for vm_id in vm_ids):
            raise ValueError("malformed VM id")
        self.adapter.delete_vms(self, vm_ids)

    def rename_vm(self, vm_id: str, name: str) -> None:
        """Ask Fluence to rename one VM. Never retried (PATCH is not idempotent here: a repeat could hide the
        outcome). ValueError for a malformed id, an API that cannot rename, or a name it would refuse."""
        if not self.adapter.is_valid_id(vm_id):
            raise ValueError("malformed VM id")
        pattern = self.adapter.name_pattern
        if not self.adapter.can_rename or pattern is None:
            raise ValueError("this API cannot rename VMs")
        if not isinstance(name, str) or not pattern.match(name):
            raise ValueError("name not accepted by this API")
        self.adapter.rename_vm(self, vm_id, name)

    def restart_vm(self, vm_id: str, *, soft: bool = False) -> None:
        """Ask Fluence to restart (or soft-reboot) one VM. Never retried: a POST that may have arrived is
        not sent twice. ValueError for a malformed id or an API that cannot restart."""
        if not self.adapter.is_valid_id(vm_id):
            raise ValueError("malformed VM id")
        if not self.adapter.can_restart:
            raise ValueError("this API cannot restart VMs")
        self.adapter.restart_vm(self, vm_id, soft=soft)

    def set_ports(self, vm_id: str, ports: list[dict]) -> None:
        """Replace one VM's open ports with `ports` ({port, protocol} each): every port not listed closes.
        Never retried. ValueError for a malformed id or an API that cannot."""
        if not self.adapter.is_valid_id(vm_id):
            raise ValueError("malformed VM id")
        if not self.adapter.can_set_ports:
            raise ValueError("this API cannot change open ports")
        self.adapter.set_ports(self, vm_id, ports)

    # transport

    def send(self, request: ApiRequest, with_body: bool = False, decode: bool | Callable = True):
        """Perform one request: its decoded JSON (None for an empty body), with the raw body if asked.
        `decode=False` leaves a success's body undecoded (None in its place) for a caller that decodes it
        later with others (the pages of a list); a function decodes it instead of json.loads (ValueError:
        it is not JSON)."""
        # Only idempotent requests are retried, once, without sleeping, and only when the first attempt
        # surely changed nothing worth keeping: a connection failure or a gateway error (502/503/504).
        # A read timeout is not retried: it would double the wait of a page that is already slow; nor is
        # a body abandoned at the size cap (it would be read again).
        attempts = 2 if request.idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._perform(request)
            except Unavailable as exc:
                retryable = not isinstance(exc, TooLarge) and not (
                    isinstance(exc, UpstreamTimeout) and exc.may_have_reached_server
                )
                if retryable and attempt < attempts:
                    continue
                raise
            if response.status_code in RETRYABLE_STATUSES and attempt < attempts:
                continue
            decoded = self._decode(request, response, decode)
            return (decoded, response.content) if with_body else decoded
        raise AssertionError("unreachable")  # pragma: no cover

    def _perform(self, request: ApiRequest) -> requests.Response:
        """One HTTP exchange, its body read in full (at most FLUENCE_MAX_RESPONSE_BYTES) by the deadline."""
        url = self.base_url + request.path
        self._refuse_when_slow()
        started = time.monotonic()
        deadline = started + self.total_timeout
        if self._operation_deadline is not None:
            deadline = min(deadline, self._operation_deadline)
        call = transport.Call(self.base_url, deadline)
        transport.watchdog.start(call)
        transport.calling(call)
        outcome = "?"
        try:
            response = thread_session().request(
                request.method,
                url,
                params=request.params or None,
                json=request.json,
                auth=self._auth,
                timeout=(self.connect_timeout, self.read_timeout),
                # The key is in custom headers that requests would carry across a redirect to any host.
                allow_redirects=False,
                stream=True,
            )
            try:
                response._content = self._read_body(response, call)
            finally:
                response.close()
            outcome = str(response.status_code)
            return response
        except TooLarge as exc:
            outcome, error = "too large", exc
        except (requests.RequestException, _BodyTimeout) as exc:
            outcome, error = self._failure(exc, call)
        finally:
            transport.calling(None)
            transport.watchdog.finish(call)
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.info("fluence %s %s -> %s in %.0f ms", request.method, request.path, outcome, elapsed_ms)
            metrics.upstream_call(self.base_url, self.generation, request, outcome, elapsed_ms / 1000)
        # Raised outside the except blocks: no chained cause carries a requests exception (and its request).
        raise error

    def _failure(self, exc: Exception, call: transport.Call) -> tuple[str, Unavailable]:
        """What a failed exchange means: the outcome to log and the error to raise. The message of requests
        may quote the request, so only an exception's type goes into ours."""
        if call.expired:
            return "deadline", UpstreamTimeout(
                f"no complete answer within {self.total_timeout:g} s", may_have_reached_server=True
            )
        if isinstance(exc, requests.ConnectTimeout):
            return "connect timeout", UpstreamTimeout(
                f"no connection within {self.connect_timeout:g} s", may_have_reached_server=False
            )
        if isinstance(exc, requests.ReadTimeout | _BodyTimeout):
            return "read timeout", UpstreamTimeout(
                f"no answer within {self.read_timeout:g} s", may_have_reached_server=True
            )
        if isinstance(exc, requests.ConnectionError):
            never_made = _connection_never_made(exc)
            return "connection refused" if never_made else "connection error", Unavailable(
                "the connection was refused" if never_made else "the connection failed or was dropped",
                may_have_reached_server=not never_made,
            )
        # Anything else (a broken body, an invalid URL).
        return type(exc).__name__, Unavailable(
            f"the request failed ({type(exc).__name__})", may_have_reached_server=True
        )

    def _read_body(self, response: requests.Response, call: transport.Call) -> bytes:
        """The whole body, or TooLarge past the cap (the connection is then closed, not reused)."""
        limit = settings.FLUENCE_MAX_RESPONSE_BYTES
        too_large = TooLarge(f"more than {limit:,} bytes", may_have_reached_server=True)
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(BODY_CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
        except requests.ConnectionError as exc:
            # requests reports a read timeout inside the body as a connection error.
            if isinstance(exc.args[0] if exc.args else None, ReadTimeoutError):
                raise _BodyTimeout from None
            raise
        if call.expired:
            # The watchdog cut the connection: what was read may look complete and is not.
            raise _BodyTimeout
        return b"".join(chunks)

    def _refuse_when_slow(self) -> None:
        """Add no call to an API base URL that already has FLUENCE_SLOW_CALLS_PER_API calls waiting in this
        process for more than FLUENCE_SLOW_CALL_SECONDS: one slow API cannot take every thread."""
        waiting = transport.watchdog.slow_calls(self.base_url, settings.FLUENCE_SLOW_CALL_SECONDS)
        if waiting >= settings.FLUENCE_SLOW_CALLS_PER_API:
            raise Unavailable(
                f"{waiting} calls to {self.base_url} have waited more than "
                f"{settings.FLUENCE_SLOW_CALL_SECONDS:g} s; the portal adds no more until they end",
                may_have_reached_server=False,
            )

    def _decode(
        self, request: ApiRequest, response: requests.Response, decode: bool | Callable = True
    ) -> object:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content.strip():
                if request.method == "GET":
                    raise BadResponse("the answer was empty", status=status)
                return None
            if not decode:
                return None
            try:
                return decode(response.content) if callable(decode) else response.json()
            except (ValueError, RecursionError):
                if request.method == "GET":
                    raise BadResponse("the answer is not JSON", status=status) from None
                return None  # a non-JSON success body of a DELETE changes nothing
        upstream_code, upstream_text = self._error_body(response)
        context = {"status": status, "upstream_message": upstream_text, "upstream_code": upstream_code}
        if status in self.adapter.auth_statuses:
            raise AuthError(**context)
        if status == 404:
            raise NotFound(**context)
        if status == 429:
            raise RateLimited(retry_after=parse_retry_after(response.headers.get("Retry-After")), **context)
        # Today's API names its errors: `{"code": "not_acceptable", "error": "…"}`.
        by_code = ERRORS_BY_CODE.get(upstream_code or "")
        if status in ERRORS_BY_STATUS or by_code is not None:
            raise (ERRORS_BY_STATUS.get(status) or by_code)(**context)
        if status >= 500:
            # The request did arrive; behind a gateway (502/504) it may even have been carried out.
            raise Unavailable(may_have_reached_server=True, **context)
        if 300 <= status < 400:
            raise BadResponse("the API answered with a redirect; check the API address", status=status)
        raise FluenceError(**context)

    def _error_body(self, response: requests.Response) -> tuple[str | None, str | None]:
        """The `code` and `error` of `{"error": …}` / `{"code": …, "error": …}` bodies, cleaned, redacted."""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return None, None
        if not isinstance(body, dict):
            return None, None
        text = body.get("error")
        if not isinstance(text, str):
            text = body.get("message")
        code = body.get("code")
        return self._redact(code if isinstance(code, str) else None), self._redact(text)

    def _redact(self, text: object) -> str | None:
        """Upstream text as plain, bounded text, with the key cut out should the server echo it."""
        if not isinstance(text, str):
            return None
        return clean_upstream_text(text.replace(self._api_key, "[key]"))

    def _redacted(self, exc: BadResponse) -> BadResponse:
        return BadResponse(self._redact(exc.detail), status=exc.status)


# --- which generation a key speaks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detection:
    generation: str
    vm_count: int


def detect_generation(
    *, base_url: str, api_key: str, read_timeout: float | None = None, order: tuple[str, ...] = GENERATIONS
) -> Detection:
    """Which API generation answers this key: each is probed in `order` (today's API first) and the first
    that answers 2xx wins. A 401/403 on the first probe is a refused key (AuthError at once); a 404 moves
    on to the next. A timeout or an outage moves on too, and is raised if no generation answers."""
    first_failure: FluenceError | None = None
    for position, generation in enumerate(order):
        client = FluenceClient(
            base_url=base_url, api_key=api_key, generation=generation, read_timeout=read_timeout
        )
        try:
            return Detection(generation=generation, vm_count=client.probe())
        except NotFound:
            continue
        except AuthError as error:
            if position == 0:
                raise
            first_failure = first_failure or error
        except FluenceError as error:
            first_failure = first_failure or error
    if first_failure is not None:
        raise first_failure
    raise NotFound("none of the Fluence API versions the portal knows answers at this address")
