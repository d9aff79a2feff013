"""The only code that speaks HTTP to Fluence: one client, one adapter per API generation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from .errors import (
    AuthError,
    BadResponse,
    FluenceError,
    NotFound,
    RateLimited,
    Unavailable,
    UpstreamTimeout,
    clean_upstream_text,
)
from .models import HEX_VM_ID_RE, Vm, cyclic_gc_paused, parse_vm_list_lenient

logger = logging.getLogger("vms.fluence")

USER_AGENT = "fluence-portal/0.1"
RETRYABLE_STATUSES = frozenset({502, 503, 504})
AUTH_STATUSES = frozenset({400, 401, 403})
POOL_CONNECTIONS = 10
POOL_MAXSIZE = 20


# --- the request an adapter asks for ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        return self.method in ("GET", "HEAD")


Send = Callable[[ApiRequest], object]
"""Performs one request and returns the decoded JSON body (None when the body is empty)."""


# --- adapters: what differs between API generations -----------------------------------------------------


class ApiAdapter:
    """One API generation. An adapter drives its own requests through `send`, so that a paginated
    generation can make several calls for one `list_vms` without the client or its callers changing."""

    name: ClassVar[str]
    # True when a list is one answer whose JSON body is the array of VMs itself.
    single_answer_list: ClassVar[bool] = False

    def is_valid_id(self, vm_id: str) -> bool:
        raise NotImplementedError

    def list_vms(self, send: Send) -> tuple[list[Vm], list[str]]:
        """The readable VMs, and why each unreadable item of the answer could not be read."""
        raise NotImplementedError

    def delete_vm(self, send: Send, vm_id: str) -> None:
        raise NotImplementedError


class BaselineAdapter(ApiAdapter):
    """The baseline contract: `GET /vms/v2` (a plain array), `DELETE /vms/v3` with `{"vmId": id}`."""

    name = "baseline"
    single_answer_list = True
    list_path = "/vms/v2"
    delete_path = "/vms/v3"

    def is_valid_id(self, vm_id: str) -> bool:
        return isinstance(vm_id, str) and HEX_VM_ID_RE.match(vm_id) is not None

    def list_vms(self, send: Send) -> tuple[list[Vm], list[str]]:
        return parse_vm_list_lenient(send(ApiRequest("GET", self.list_path)), copy=False)

    def delete_body(self, vm_id: str) -> dict[str, object]:
        return {"vmId": vm_id}

    def delete_vm(self, send: Send, vm_id: str) -> None:
        send(ApiRequest("DELETE", self.delete_path, json=self.delete_body(vm_id)))


class V3Adapter(BaselineAdapter):
    """Generation A: `GET /vms/v3` (a plain array), `DELETE /vms/v3` with `{"vmIds": [id, …]}`."""

    name = "v3"
    list_path = "/vms/v3"

    def delete_body(self, vm_id: str) -> dict[str, object]:
        return {"vmIds": [vm_id]}


ADAPTERS: dict[str, ApiAdapter] = {adapter.name: adapter for adapter in (BaselineAdapter(), V3Adapter())}


# --- one pooled session per thread -----------------------------------------------------------------------


class _NoCookies(DefaultCookiePolicy):
    """The session is shared by every key of a thread: a cookie set for one key must never reach another."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(_NoCookies())
        # max_retries=0: no transparent retries; the client decides (GET once, DELETE never).
        adapter = HTTPAdapter(pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        _local.session = session
    return session


class _KeyAuth(AuthBase):
    """Puts the key in both headers Fluence has documented. Passing an auth object also stops requests
    from replacing the header with ~/.netrc credentials. Its repr never shows the key."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-API-KEY"] = self._api_key
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        return request

    def __repr__(self) -> str:
        return "_KeyAuth(<hidden>)"


# --- helpers ---------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date. None when unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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
        self._auth = _KeyAuth(self._api_key)
        self.connect_timeout = (
            settings.FLUENCE_CONNECT_TIMEOUT if connect_timeout is None else float(connect_timeout)
        )
        self.read_timeout = settings.FLUENCE_READ_TIMEOUT if read_timeout is None else float(read_timeout)
        self._bodies: list[bytes] | None = None  # collected only during list_vms_with_body()
        self.unreadable: list[str] = []  # why items of the last list answer could not be read

    def __repr__(self) -> str:
        return f"FluenceClient(base_url={self.base_url!r}, generation={self.generation!r}, api_key=<hidden>)"

    def __reduce__(self):
        raise TypeError("a FluenceClient holds an API key and is not picklable")

    # public operations

    def list_vms(self) -> list[Vm]:
        try:
            # Decoding and parsing a list allocate many small, acyclic objects: see cyclic_gc_paused.
            with cyclic_gc_paused():
                vms, self.unreadable = self.adapter.list_vms(self._send)
                return vms
        except BadResponse as exc:
            raise self._redacted(exc) from None

    def list_vms_with_body(self) -> tuple[list[Vm], bytes | None]:
        """The VMs, and the JSON body they came from when one answer held the whole list (the baseline
        and generation A): a cache can keep those bytes as they are instead of serialising the VMs again."""
        self._bodies = []
        vms = self.list_vms()
        bodies, self._bodies = self._bodies, None
        return vms, bodies[0] if len(bodies) == 1 and self.adapter.single_answer_list else None

    def delete_vm(self, vm_id: str) -> None:
        """Ask Fluence to delete one VM. Never retried: a repeat could act twice or hide the outcome."""
        if not self.adapter.is_valid_id(vm_id):
            raise ValueError("malformed VM id")
        self.adapter.delete_vm(self._send, vm_id)

    # transport

    def _send(self, request: ApiRequest) -> object:
        # Only idempotent requests are retried, once, without sleeping, and only when the first attempt
        # surely changed nothing worth keeping: a connection failure or a gateway error (502/503/504).
        # A read timeout is not retried: it would double the wait of a page that is already slow.
        attempts = 2 if request.idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._perform(request)
            except Unavailable as exc:
                retryable = not (isinstance(exc, UpstreamTimeout) and exc.may_have_reached_server)
                if retryable and attempt < attempts:
                    continue
                raise
            if response.status_code in RETRYABLE_STATUSES and attempt < attempts:
                continue
            decoded = self._decode(request, response)
            if self._bodies is not None and request.method == "GET":
                self._bodies.append(response.content)
            return decoded
        raise AssertionError("unreachable")  # pragma: no cover

    def _perform(self, request: ApiRequest) -> requests.Response:
        url = self.base_url + request.path
        started = time.monotonic()
        outcome = "?"
        try:
            response = _session().request(
                request.method,
                url,
                params=request.params or None,
                json=request.json,
                auth=self._auth,
                timeout=(self.connect_timeout, self.read_timeout),
                # The key is in custom headers that requests would carry across a redirect to any host.
                allow_redirects=False,
            )
            outcome = str(response.status_code)
            return response
        except requests.ConnectTimeout:
            outcome = "connect timeout"
            error = UpstreamTimeout(
                f"no connection within {self.connect_timeout:g} s", may_have_reached_server=False
            )
        except requests.ReadTimeout:
            outcome = "read timeout"
            error = UpstreamTimeout(f"no answer within {self.read_timeout:g} s", may_have_reached_server=True)
        except requests.ConnectionError as exc:
            never_made = _connection_never_made(exc)
            outcome = "connection refused" if never_made else "connection error"
            error = Unavailable(
                "the connection was refused" if never_made else "the connection failed or was dropped",
                may_have_reached_server=not never_made,
            )
        except requests.RequestException as exc:
            # Anything else (a broken body, an invalid URL): the message of requests may quote the
            # request, so only the exception's type goes into ours.
            outcome = type(exc).__name__
            error = Unavailable(f"the request failed ({type(exc).__name__})", may_have_reached_server=True)
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.info("fluence %s %s -> %s in %.0f ms", request.method, request.path, outcome, elapsed_ms)
        # Raised outside the except blocks: no chained cause carries a requests exception (and its request).
        raise error

    def _decode(self, request: ApiRequest, response: requests.Response) -> object:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content.strip():
                if request.method == "GET":
                    raise BadResponse("the answer was empty", status=status)
                return None
            try:
                return response.json()
            except (ValueError, RecursionError):
                if request.method == "GET":
                    raise BadResponse("the answer is not JSON", status=status) from None
                return None  # a non-JSON success body of a DELETE changes nothing
        upstream_code, upstream_text = self._error_body(response)
        context = {"status": status, "upstream_message": upstream_text, "upstream_code": upstream_code}
        if status in AUTH_STATUSES:
            raise AuthError(**context)
        if status == 404:
            raise NotFound(**context)
        if status == 429:
            raise RateLimited(retry_after=parse_retry_after(response.headers.get("Retry-After")), **context)
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
