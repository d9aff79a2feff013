"""Every call to Fluence ends by its deadline and reads at most a bounded body, whatever the server does.

A socket read timeout restarts with every byte, so a server that trickles one byte a second holds a call
for as long as it likes. Here one watchdog thread per process shuts down the socket of any call that
outlives its deadline: the read blocked on it returns at once, and the call fails as a timeout. The body is
streamed and abandoned at the size cap. The watchdog also knows which calls are slow, so that one slow API
base URL cannot take every thread of a process (`slow_calls`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# How long the watchdog waits again for a call whose socket is not connected yet (it is connecting).
_RECHECK_SECONDS = 0.05


class Call:
    """One HTTP call in flight: where it goes, when it started and must end, and its connection."""

    __slots__ = ("base_url", "connection", "deadline", "done", "expired", "started")

    def __init__(self, base_url: str, deadline: float) -> None:
        self.base_url = base_url
        self.started = time.monotonic()
        self.deadline = deadline
        self.connection: HTTPConnection | None = None
        self.expired = False
        self.done = False


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Call]] = []
        self._order = itertools.count()
        self._in_flight: set[Call] = set()
        self._thread: threading.Thread | None = None

    def start(self, call: Call) -> None:
        with self._lock:
            self._in_flight.add(call)
            self._push(call.deadline, call)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fluence-watchdog", daemon=True)
                self._thread.start()

    def finish(self, call: Call) -> None:
        with self._lock:
            call.done = True
            self._in_flight.discard(call)

    def slow_calls(self, base_url: str, older_than: float) -> int:
        """How many calls to this base URL have been in flight for more than `older_than` seconds."""
        since = time.monotonic() - older_than
        with self._lock:
            return sum(1 for call in self._in_flight if call.base_url == base_url and call.started < since)

    def _push(self, when: float, call: Call) -> None:
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._order), call))
        if earliest is None or when < earliest:
            self._changed.notify()

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                when, _, call = self._heap[0]
                remaining = when - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                if not self._cut(call):
                    self._push(time.monotonic() + _RECHECK_SECONDS, call)

    @staticmethod
    def _cut(call: Call) -> bool:
        """Shut the call's socket down; False while it has none yet (still connecting: the connect
        timeout bounds that, and the watchdog looks again shortly)."""
        call.expired = True
        sock = getattr(call.connection, "sock", None)
        if sock is None:
            return False
        # socket.socket's own shutdown, also for a TLS socket: SSLSocket.shutdown would drop its TLS state
        # under the thread still reading it. An OSError: it is closed already.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return True

    def _after_fork(self) -> None:
        self.__init__()


watchdog = _Watchdog()
os.register_at_fork(after_in_child=watchdog._after_fork)

# The call this thread is making: the connection classes below attach themselves to it.
_current = threading.local()


def calling(call: Call | None) -> None:
    _current.call = call


class _WatchedConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        call = getattr(_current, "call", None)
        if call is not None:
            call.connection = self
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter, with connections the watchdog can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}
