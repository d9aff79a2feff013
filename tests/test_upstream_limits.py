"""A hostile or broken Fluence endpoint cannot hold a call past its deadline, fill the memory, or take every
thread: the trickle, huge-body and endless-stream faults of the sandbox against the client itself."""

import socket
import socketserver
import threading
import time
import tracemalloc

import pytest

from vms.fluence import transport
from vms.fluence.client import FluenceClient
from vms.fluence.errors import TooLarge, Unavailable, UpstreamTimeout

KEY = "sbx_hostile_upstream_01"
MiB = 1024 * 1024

pytestmark = pytest.mark.timeout(60)  # without its deadline a trickled call would take many minutes


@pytest.fixture
def limits(settings):
    settings.FLUENCE_READ_TIMEOUT = 0.5
    settings.FLUENCE_CONNECT_TIMEOUT = 0.5
    settings.FLUENCE_TOTAL_TIMEOUT = 1.0
    settings.FLUENCE_MAX_RESPONSE_BYTES = MiB


@pytest.fixture
def hostile(sandbox, limits):
    sandbox.state.configure_account(KEY, vm_count=20)
    return sandbox


def _client(url: str) -> FluenceClient:
    return FluenceClient(base_url=url, api_key=KEY)


def _list_calls(sandbox) -> int:
    return sandbox.state.request_count(method="GET", path="/vms/v2")


def test_a_trickled_body_ends_at_the_total_deadline_and_is_not_retried(hostile):
    # Each byte comes well within the read timeout: only the deadline of the whole call can end it.
    hostile.state.set_faults(key=KEY, trickle_ms=50)
    with pytest.raises(UpstreamTimeout, match="no complete answer within 1 s") as caught:
        _client(hostile.url).list_vms()
    assert caught.value.may_have_reached_server
    assert _list_calls(hostile) == 1


def test_trickled_headers_end_at_the_total_deadline_too(limits, settings):
    server = _TrickleServer()
    settings.FLUENCE_API_URLS = [server.url]
    try:
        with pytest.raises(UpstreamTimeout, match="no complete answer within 1 s"):
            FluenceClient(base_url=server.url, api_key=KEY).list_vms()
    finally:
        server.stop()
    assert server.bytes_sent < len(_TrickleServer.HEADERS)  # cut in the middle of the status line


def test_a_body_announced_past_the_cap_is_refused_before_it_is_read(hostile):
    hostile.state.set_faults(key=KEY, huge_body_mb=64)
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match="more than 1,048,576 bytes"):
            _client(hostile.url).list_vms()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB
    assert _list_calls(hostile) == 1


def test_an_endless_stream_is_read_up_to_the_cap_once(hostile):
    hostile.state.set_faults(key=KEY, endless=True)
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge) as caught:
            _client(hostile.url).list_vms()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(caught.value, Unavailable)  # an outage for the circuit breaker
    assert peak < 8 * MiB  # the cap (1 MiB) and one chunk, not the stream
    assert _list_calls(hostile) == 1  # never retried: it would be read again


def test_after_an_abandoned_body_the_next_call_gets_a_clean_connection(hostile):
    hostile.state.set_faults(key=KEY, endless=True)
    with pytest.raises(TooLarge):
        _client(hostile.url).list_vms()
    hostile.state.clear_faults()
    assert len(_client(hostile.url).list_vms()) == 20


def test_an_answer_within_the_limits_is_read_whole(hostile, settings):
    settings.FLUENCE_MAX_RESPONSE_BYTES = 4 * MiB
    hostile.state.set_faults(key=KEY, huge_body_mb=2)  # leading whitespace, then the real answer
    assert len(_client(hostile.url).list_vms()) == 20


def test_a_slow_api_gets_no_more_calls_while_enough_of_them_wait(hostile, settings):
    settings.FLUENCE_TOTAL_TIMEOUT = 5.0
    settings.FLUENCE_SLOW_CALL_SECONDS = 0.1
    settings.FLUENCE_SLOW_CALLS_PER_API = 2
    hostile.state.set_faults(key=KEY, trickle_ms=200)
    outcomes = []
    waiting = [
        threading.Thread(target=lambda: outcomes.append(_outcome(hostile.url)), daemon=True) for _ in range(2)
    ]
    for thread in waiting:
        thread.start()
    _until(lambda: transport.watchdog.slow_calls(hostile.url, 0.1) >= 2)
    calls_before = _list_calls(hostile)

    with pytest.raises(Unavailable, match=r"2 calls to \S+ have waited more than 0\.1 s") as refused:
        _client(hostile.url).list_vms()
    assert not refused.value.may_have_reached_server
    assert _list_calls(hostile) == calls_before  # nothing was sent

    # Another API base URL (the same sandbox under another name) is not held up.
    other = hostile.url.replace("127.0.0.1", "localhost")
    settings.FLUENCE_API_URLS = [*settings.FLUENCE_API_URLS, other]
    hostile.state.configure_account("sbx_healthy_neighbour_01", vm_count=3)
    assert len(FluenceClient(base_url=other, api_key="sbx_healthy_neighbour_01").list_vms()) == 3

    for thread in waiting:
        thread.join()
    assert outcomes == ["timeout", "timeout"]
    assert transport.watchdog.slow_calls(hostile.url, 0) == 0


def _outcome(url: str) -> str:
    try:
        _client(url).list_vms()
    except UpstreamTimeout:
        return "timeout"
    return "answered"


def _until(condition, attempts: int = 500) -> None:
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition never became true")


class _TrickleServer:
    """A server that sends its status line and headers one byte every 50 ms."""

    HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"

    def __init__(self) -> None:
        self.bytes_sent = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)
                try:
                    for index in range(len(outer.HEADERS)):
                        time.sleep(0.05)
                        self.request.sendall(outer.HEADERS[index : index + 1])
                        outer.bytes_sent += 1
                except OSError:
                    pass  # the client hung up

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_the_watchdog_cuts_a_socket_blocked_in_a_read():
    """The mechanism itself, without HTTP: a read blocked with no timeout returns when the deadline passes."""
    left, right = socket.socketpair()
    with left, right:

        class Connection:
            sock = left

        call = transport.Call("http://example.invalid", time.monotonic() + 0.2)
        call.connection = Connection()
        transport.watchdog.start(call)
        try:
            assert left.recv(1) == b""  # woken by the shutdown, not by data
        finally:
            transport.watchdog.finish(call)
        assert call.expired
