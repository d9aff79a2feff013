"""The sandbox's HTTP server: the Fluence API of fluence-api.md over real HTTP, plus a control API.

Standard library only, so that it starts in milliseconds and runs in a thread of any process.

API, by the generation of the key's account (routes.py); any other path answers 404:
    baseline (``X-API-KEY`` or ``Authorization: Bearer``):
        GET /vms/v2       baseline list        DELETE /vms/v3   {"vmId": …} or {"vmIds": […]}
    generation A (same keys): the baseline, plus GET /vms/v3 (generation A list)
    generation B (``X-API-KEY`` or ``Authorization: X-API-KEY``, never Bearer):
        GET /v2/vms, /v2/vms/{id}, /v1/clusters, /v1/datacenters, /v2/users/balances
        POST /v2/vms/{id}/terminate
    anyone, without a key: GET /v1/service/status
Control (no auth, never counted, never faulted), under /_sandbox/:
    GET  health, stats, faults       POST reset-counts, faults, accounts, accounts/vms, settings
    DELETE faults
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import credentials, data_b
from .generations import GENERATION_B
from .query_b import UUID_PATTERN, BadQuery, parse_expand, parse_list_query
from .routes import (
    ANY_GENERATION,
    B_ROUTES,
    CONTROL_ROUTES,
    PUBLIC_ROUTES,
    ROUTES_BY_GENERATION,
    RouteMatch,
    Routes,
)
from .state import VM_ID_PATTERN, ApiError, AuthFailure, Faults, SandboxState, fingerprint

logger = logging.getLogger("vms.sandbox")

MAX_BODY = 1 << 20
CONTROL_PREFIX = "/_sandbox/"

NOT_FOUND = {"error": "Not found"}
B_NOT_FOUND = {"code": "not_found", "error": "Not found"}
HOSTILE_CHUNK = 1024 * 1024
# What a wrong_shape fault answers instead of a JSON object, and instead of a JSON array.
WRONG_SHAPE_ARRAY = b'[{"result": "ok", "message": "not the object you were looking for"}]'
WRONG_SHAPE_BODY = b'{"result": "ok", "message": "not the list you were looking for"}'


class _BadRequest(Exception):
    pass


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm the body would wait for the
    # client's delayed ACK (40 ms on Linux) on every call of a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "FluenceSandbox/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds

    server: _HTTPServer

    # --- plumbing ---------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines hold methods and paths only; keys travel in headers and are never logged.
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers=None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _routed(
        self,
        routes: Routes,
        path: str,
        not_found: dict[str, str] = NOT_FOUND,
        elsewhere: Routes | None = None,
    ) -> RouteMatch | None:
        """The route of this path and method in ``routes``; None once the 404 or 405 has been sent.

        A method that ``elsewhere`` serves on this path is an endpoint these routes do not have: 404,
        not 405 (a baseline account's ``GET /vms/v3`` is generation A's list, unknown to it).
        """
        route = routes.match(path)
        if route is None:
            self._json(404, not_found)
            return None
        if self.command not in route.methods:
            other = elsewhere.match(path) if elsewhere is not None else None
            if other is not None and self.command in other.methods:
                self._json(404, not_found)
            else:
                self._json(405, {"error": "Method not allowed"}, {"Allow": ", ".join(route.methods)})
            return None
        return route

    def _send_read(self, payload: bytes, faults: Faults) -> None:
        """A successful read, spoilt as the malformed, wrong_shape and hostile-server faults ask."""
        if faults.malformed:
            payload = payload[: len(payload) // 2]  # a truncated JSON object or array never parses
        elif faults.wrong_shape:
            payload = WRONG_SHAPE_ARRAY if payload.startswith(b"{") else WRONG_SHAPE_BODY
        if faults.trickle_ms or faults.huge_body_mb or faults.endless:
            # A client that gives up hangs up: that ends these answers.
            with contextlib.suppress(OSError):
                self._send_hostile(payload, faults)
            self.close_connection = True
            return
        self._send(200, payload)

    def _send_hostile(self, payload: bytes, faults: Faults) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if faults.endless:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b" " * HOSTILE_CHUNK
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            while True:  # JSON may start with any amount of whitespace: the answer just never comes
                self.wfile.write(frame)
        padding = faults.huge_body_mb * 1024 * 1024
        self.send_header("Content-Length", str(padding + len(payload)))
        self.end_headers()
        self.wfile.flush()
        if faults.trickle_ms:
            for index in range(len(payload)):
                time.sleep(faults.trickle_ms / 1000)
                self.wfile.write(payload[index : index + 1])
                self.wfile.flush()
            return
        chunk = b" " * HOSTILE_CHUNK
        for _ in range(padding // HOSTILE_CHUNK):
            self.wfile.write(chunk)
        self.wfile.write(b" " * (padding % HOSTILE_CHUNK) + payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _BadRequest("Chunked request bodies are not supported")
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _BadRequest("Invalid Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise _BadRequest("Request body too large")
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        if path.startswith(CONTROL_PREFIX):
            self._control(path, body)
        else:
            self._api(path, body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    # --- the Fluence API --------------------------------------------------------------------------

    def _api(self, path: str, body: bytes) -> None:
        state = self.server.state
        key = credentials.naming_key(self.headers)
        state.record_request(self.command, path, key)
        faults, failed = state.fault_decision(key)
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if faults.rate_limit_retry_after is not None:
            self._json(
                429, {"error": "Too many requests"}, {"Retry-After": str(faults.rate_limit_retry_after)}
            )
            return
        if failed:
            status = faults.error_status
            message = "Internal server error" if status == 500 else http.HTTPStatus(status).phrase
            self._json(status, {"error": message})
            return

        if PUBLIC_ROUTES.match(path) is not None:
            if self._routed(PUBLIC_ROUTES, path):
                self._send_read(data_b.SERVICE_STATUS_JSON, faults)
            return
        # Routing comes before authentication, so that an account answers 404 on another generation's
        # paths whatever headers it sends: that is how the portal finds which generation a key speaks.
        generation = state.generation_of(key)
        routes = ANY_GENERATION if generation is None else ROUTES_BY_GENERATION[generation]
        route = self._routed(
            routes, path, B_NOT_FOUND if generation == GENERATION_B else NOT_FOUND, ANY_GENERATION
        )
        if route is None:
            return
        generation_b = route.pattern in B_ROUTES
        try:
            key = (
                credentials.generation_b_key(self.headers)
                if generation_b
                else credentials.baseline_key(self.headers)
            )
            state.authenticate(key, generation_b=generation_b)
        except AuthFailure as exc:
            self._json(exc.status, exc.body)
            return
        assert key is not None
        try:
            self._API_HANDLERS[(self.command, route.pattern)](self, key, route, body, faults)
        except BadQuery as exc:
            self._json(400, {"code": "bad_request", "error": str(exc)})
        except ApiError as exc:
            self._json(exc.status, exc.body)

    def _list_baseline(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send_read(self.server.state.list_json(key, "v2"), faults)

    def _list_generation_a(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send_read(self.server.state.list_json(key, "v3"), faults)

    def _delete(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        try:
            vm_ids = _parse_delete_body(body)
        except _BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        self.server.state.delete_vms(key, vm_ids)
        self._json(200, {})

    def _update_a(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        try:
            updates = _parse_update_body(body)
        except _BadRequest as exc:
            self._json(400, {"error": str(exc)})
            return
        self.server.state.update_vms(key, updates)
        self._send(204, b"")

    def _rename_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        vm_id = _path_vm_id(route)
        try:
            fields = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            fields = None
        if not isinstance(fields, dict) or "name" not in fields:
            raise BadQuery("Request body must be a JSON object with name")
        self._send(200, self.server.state.rename_vm_b(key, vm_id, fields["name"]))

    def _list_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        query = parse_list_query(urlsplit(self.path).query)
        self._send_read(self.server.state.vm_list_json(key, query), faults)

    def _get_vm_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        vm_id = _path_vm_id(route)
        expand = parse_expand(urlsplit(self.path).query)
        self._send_read(self.server.state.vm_json(key, vm_id, expand), faults)

    def _terminate_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        # No body is needed, and one is ignored.
        self._send(200, self.server.state.terminate_vm(key, _path_vm_id(route)))

    def _restart_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send(200, self.server.state.restart_vm_b(key, _path_vm_id(route)))

    def _soft_reboot_b(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send(200, self.server.state.restart_vm_b(key, _path_vm_id(route), soft=True))

    def _clusters(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send_read(data_b.CLUSTERS_JSON, faults)

    def _datacenters(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send_read(data_b.DATACENTERS_JSON, faults)

    def _balances(self, key: str, route: RouteMatch, body: bytes, faults: Faults) -> None:
        self._send_read(self.server.state.balances_json(key), faults)

    _API_HANDLERS = {
        ("GET", "/vms/v2"): _list_baseline,
        ("GET", "/vms/v3"): _list_generation_a,
        ("DELETE", "/vms/v3"): _delete,
        ("PATCH", "/vms/v3"): _update_a,
        ("PATCH", "/v2/vms/{id}"): _rename_b,
        ("POST", "/v2/vms/{id}/restart"): _restart_b,
        ("POST", "/v2/vms/{id}/softreboot"): _soft_reboot_b,
        ("GET", "/v2/vms"): _list_b,
        ("GET", "/v2/vms/{id}"): _get_vm_b,
        ("POST", "/v2/vms/{id}/terminate"): _terminate_b,
        ("GET", "/v1/clusters"): _clusters,
        ("GET", "/v1/datacenters"): _datacenters,
        ("GET", "/v2/users/balances"): _balances,
    }

    # --- control ----------------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        if self._routed(CONTROL_ROUTES, path) is None:
            return
        state = self.server.state
        try:
            fields = _json_object(body) if self.command in ("POST", "DELETE") else {}
            if path == "/_sandbox/health":
                self._json(200, {"status": "ok"})
            elif path == "/_sandbox/stats":
                self._json(200, {**state.stats(), "accounts": state.accounts_summary()})
            elif path == "/_sandbox/reset-counts":
                state.reset_counts()
                self._json(200, {})
            elif path == "/_sandbox/faults":
                if self.command == "POST":
                    state.set_faults(**_pick(fields, _FAULT_FIELDS | {"key"}))
                elif self.command == "DELETE":
                    state.clear_faults(_optional_str(fields, "key"))
                self._json(200, state.faults_summary())
            elif path == "/_sandbox/accounts":
                key = fields.get("key")
                count = state.configure_account(key, **_pick(fields, _ACCOUNT_FIELDS))
                self._json(200, {"key": _fp(key), "vm_count": count})
            elif path == "/_sandbox/accounts/vms":
                key = fields.get("key")
                if not isinstance(key, str) or not key:
                    raise ValueError("key is required")
                vm = state.add_vm(key, **{k: v for k, v in fields.items() if k != "key"})
                self._json(200, vm)
            elif path == "/_sandbox/settings":
                if self.command == "POST":
                    _apply_settings(state, fields)
                self._json(200, {"deletion_delay": state.deletion_delay})
        except (_BadRequest, ValueError, TypeError, KeyError) as exc:
            message = str(exc) if not isinstance(exc, KeyError) else "Unknown account"
            self._json(400, {"error": message})


_FAULT_FIELDS = frozenset(
    {
        "latency_ms",
        "error_rate",
        "error_status",
        "rate_limit_retry_after",
        "malformed",
        "wrong_shape",
        "drop",
        "trickle_ms",
        "huge_body_mb",
        "endless",
    }
)
_ACCOUNT_FIELDS = frozenset(
    {
        "vm_count",
        "include_example",
        "revoked",
        "seed",
        "generation",
        "page_base",
        "max_per_page",
        "read_only",
        "balance",
    }
)


def _fp(key: Any) -> str:
    return fingerprint(key if isinstance(key, str) else None)


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("Request body must be a JSON object")
    return value


def _pick(fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    unknown = set(fields) - allowed - {"key"}
    if unknown:
        raise ValueError(f"Unknown field(s): {', '.join(sorted(unknown))}")
    return {k: v for k, v in fields.items() if k in allowed}


def _optional_str(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _apply_settings(state: SandboxState, fields: dict[str, Any]) -> None:
    _pick(fields, frozenset({"deletion_delay"}))
    if "deletion_delay" in fields:
        delay = fields["deletion_delay"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise ValueError("deletion_delay must be between 0 and 3600 seconds")
        state.deletion_delay = float(delay)


def _path_vm_id(route: RouteMatch) -> str:
    vm_id = route.params["id"]
    if not UUID_PATTERN.match(vm_id):
        raise BadQuery("Invalid VM id")
    return vm_id


def _parse_delete_body(body: bytes) -> list[str]:
    """The ids of a DELETE /vms/v3 body: {"vmId": id} or {"vmIds": [ids]}."""
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _BadRequest("Request body must be a JSON object with vmId or vmIds")
    if "vmIds" in value:
        ids = value["vmIds"]
        if not isinstance(ids, list) or not ids:
            raise _BadRequest("vmIds must be a non-empty array of VM ids")
    elif "vmId" in value:
        ids = [value["vmId"]]
    else:
        raise _BadRequest("Request body must contain vmId or vmIds")
    for vm_id in ids:
        if not isinstance(vm_id, str) or not VM_ID_PATTERN.match(vm_id):
            raise _BadRequest("Invalid VM id")
    return ids


_PORT_PROTOCOLS = ("tcp", "udp", "sctp")


def _parse_update_body(body: bytes) -> list[dict[str, Any]]:
    """The updates of a PATCH /vms/v3 body: {"updates": [{"id", "vmName"?, "openPorts"?}, …]}."""
    try:
        value = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("Request body is not valid JSON") from None
    updates = value.get("updates") if isinstance(value, dict) else None
    if not isinstance(updates, list) or not updates:
        raise _BadRequest("updates must be a non-empty array")
    for update in updates:
        if not isinstance(update, dict) or not isinstance(update.get("id"), str):
            raise _BadRequest("each update needs an id")
        if not VM_ID_PATTERN.match(update["id"]):
            raise _BadRequest("Invalid VM id")
        if not ({"vmName", "openPorts"} & set(update)):
            raise _BadRequest("an update changes vmName or openPorts")
        if "vmName" in update and (
            not isinstance(update["vmName"], str) or not 0 < len(update["vmName"]) <= 100
        ):
            raise _BadRequest("vmName must be a text of 1 to 100 characters")
        if "openPorts" in update:
            ports = update["openPorts"]
            if not isinstance(ports, list) or not all(
                isinstance(port, dict)
                and set(port) == {"port", "protocol"}
                and isinstance(port["port"], int)
                and not isinstance(port["port"], bool)
                and 1 <= port["port"] <= 65535
                and port["protocol"] in _PORT_PROTOCOLS
                for port in ports
            ):
                raise _BadRequest("openPorts must be an array of {port: 1-65535, protocol: tcp|udp|sctp}")
    return updates


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: SandboxState

    def __init__(self, *args: Any, **kwargs: Any):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open (keep-alive) connection, so that a stopped sandbox really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts, dropped faults, a stop) are normal here: no tracebacks on stderr.
        logger.debug("sandbox connection error", exc_info=True)


class SandboxServer:
    """A sandbox Fluence API served from a daemon thread.

    >>> with SandboxServer() as server:   # port 0 picks a free port
    ...     requests.get(server.url + "/vms/v2", headers={"X-API-KEY": "sbx_demo_alice_staging"})
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: SandboxState | None = None):
        self.host = host
        self.port = port
        self.state = state if state is not None else SandboxState()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the sandbox server has no port yet: start it first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        server_class = _HTTPServer
        if ":" in self.host:
            server_class = type("_HTTPServer6", (_HTTPServer,), {"address_family": socket.AF_INET6})
        httpd = server_class((self.host, self.port), SandboxRequestHandler)
        httpd.state = self.state
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="fluence-sandbox", daemon=True
        )
        self._thread.start()
        logger.debug("sandbox serving on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        # shutdown() waits for the serving loop's next poll; a connection wakes it at once.
        stopper = threading.Thread(target=httpd.shutdown, name="fluence-sandbox-stop", daemon=True)
        stopper.start()
        address = httpd.server_address[:2]
        if address[0] in ("0.0.0.0", "::"):  # noqa: S104 - only the address to connect to for the wake-up
            address = ("127.0.0.1" if address[0] == "0.0.0.0" else "::1", address[1])  # noqa: S104
        while stopper.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.2):
                pass
            stopper.join(timeout=0.05)
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
