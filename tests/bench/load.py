"""A bounded load of simulated users polling the VM list, against app instances on this machine only.

    result = run_load(base_urls=urls, sessions=cookies, duration_s=60, max_requests=100_000)
    result["status_5xx"], result["p50_ms"], result["p95_ms"], result["p99_ms"]

Each simulated user is one `requests.Session` holding one signed-in session's cookies, pinned to one instance
(user i on base_urls[i % len(base_urls)], as a sticky load balancer would, although nothing here needs it).
Users poll back to back (a closed loop: each waits for its answer, then asks again after `think_s`). The run
stops at `duration_s` or after `max_requests` requests in all, whichever comes first; it never follows a
redirect, and refuses any URL that is not on a loopback address.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

LOCAL_NAMES = {"localhost"}
MAX_DURATION_S = 600
MAX_REQUESTS = 1_000_000


def require_loopback(url: str) -> str:
    """The URL without a trailing slash, or ValueError when it is not http(s) on a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if host not in LOCAL_NAMES:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"load is only ever sent to this machine (a loopback address), not {host!r}")
    return url.rstrip("/")


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(round(fraction * len(sorted_values), 9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def sign_in(base_url: str, username: str, password: str, *, timeout: float = 30) -> dict[str, str]:
    """Sign in through the real password form (CSRF token first) and return the session's cookies."""
    base_url = require_loopback(base_url)
    with requests.Session() as browser:
        form = browser.get(f"{base_url}/accounts/login/", timeout=timeout, allow_redirects=False)
        form.raise_for_status()
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        if not match:
            raise RuntimeError("the sign-in page has no CSRF token")
        response = browser.post(
            f"{base_url}/accounts/login/",
            data={"csrfmiddlewaretoken": match.group(1), "username": username, "password": password},
            headers={"Referer": f"{base_url}/accounts/login/"},
            timeout=timeout,
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise RuntimeError(f"signing in as {username!r} answered {response.status_code}, not a redirect")
        return browser.cookies.get_dict()


class _Budget:
    """Request tickets: at most `limit` in all, none after the deadline."""

    def __init__(self, limit: int, deadline: float):
        self.limit = limit
        self.deadline = deadline
        self.issued = 0
        self.stopped_by: str | None = None
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.stopped_by:
                return False
            if time.monotonic() >= self.deadline:
                self.stopped_by = "duration"
                return False
            if self.issued >= self.limit:
                self.stopped_by = "max_requests"
                return False
            self.issued += 1
            return True


def run_load(
    *,
    base_urls: Sequence[str],
    sessions: Sequence[Mapping[str, str]],
    duration_s: float,
    max_requests: int,
    partial: bool = True,
    path: str = "/",
    threads: int | None = None,
    think_s: float = 0.0,
    timeout_s: float = 10.0,
) -> dict:
    """Poll `path` as len(sessions) simulated users (each a mapping of cookie name to value, e.g. from
    sign_in) spread over base_urls, with `HX-Request: true` when partial; bounded by duration_s and
    max_requests. `threads` (default: one per user, at most 64) share the users when fewer.

    Returns: requests, ok (2xx), status_5xx, status_counts {code: n}, hx_redirects (the session had expired),
    errors (no answer: timeouts, refused), error_samples, per_instance {url: requests}, elapsed_s, rps,
    stopped_by ("duration" / "max_requests"), and p50_ms, p95_ms, p99_ms, max_ms, mean_ms over answers."""
    urls = [require_loopback(url) for url in base_urls]
    if not urls or not sessions:
        raise ValueError("run_load needs at least one base URL and one session")
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("path must be a path on the instances, like '/' or '/?sort=name'")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S}]")
    if not 0 < max_requests <= MAX_REQUESTS:
        raise ValueError(f"max_requests must be in (0, {MAX_REQUESTS}]")
    thread_count = max(1, min(threads or 64, len(sessions), 64))

    headers = {"HX-Request": "true", "HX-Current-URL": "/"} if partial else {}
    users = []
    for number, cookies in enumerate(sessions):
        browser = requests.Session()
        browser.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
        browser.cookies.update(dict(cookies))
        browser.headers.update(headers)
        users.append((urls[number % len(urls)], browser))

    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    per_instance: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_samples: list[str] = []
    hx_redirects = 0

    def simulate(mine: list[tuple[str, requests.Session]]) -> None:
        nonlocal hx_redirects
        turn = 0
        while budget.take():
            base_url, browser = mine[turn % len(mine)]
            turn += 1
            started = time.perf_counter()
            try:
                response = browser.get(base_url + path, timeout=(3, timeout_s), allow_redirects=False)
                response.content  # noqa: B018 (read the whole body: that is part of the latency)
            except requests.RequestException as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                    per_instance[base_url] += 1
                    if len(error_samples) < 5:
                        error_samples.append(f"{base_url}: {type(exc).__name__}: {exc}"[:300])
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed_ms)
                    statuses[response.status_code] += 1
                    per_instance[base_url] += 1
                    if "HX-Redirect" in response.headers:
                        hx_redirects += 1
            if think_s:
                time.sleep(think_s)

    started = time.monotonic()
    budget = _Budget(max_requests, started + duration_s)
    shares = [users[index::thread_count] for index in range(thread_count)]
    try:
        with ThreadPoolExecutor(max_workers=thread_count, thread_name_prefix="load") as pool:
            for future in [pool.submit(simulate, share) for share in shares]:
                future.result()
    finally:
        for _, browser in users:
            browser.close()
    elapsed = time.monotonic() - started

    latencies.sort()
    answered = len(latencies)
    total = answered + sum(errors.values())

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "requests": total,
        "ok": sum(n for code, n in statuses.items() if 200 <= code < 300),
        "status_5xx": sum(n for code, n in statuses.items() if code >= 500),
        "status_counts": dict(sorted(statuses.items())),
        "hx_redirects": hx_redirects,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "error_samples": error_samples,
        "per_instance": dict(per_instance),
        "users": len(users),
        "threads": thread_count,
        "elapsed_s": round(elapsed, 2),
        "rps": round(total / elapsed, 1) if elapsed else 0.0,
        "stopped_by": budget.stopped_by or "duration",
        "p50_ms": rounded(percentile(latencies, 0.50)),
        "p95_ms": rounded(percentile(latencies, 0.95)),
        "p99_ms": rounded(percentile(latencies, 0.99)),
        "max_ms": rounded(latencies[-1] if latencies else None),
        "mean_ms": rounded(sum(latencies) / answered if answered else None),
    }
