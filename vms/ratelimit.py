"""Rate limits for sign-in and key-adding, counted in the cache so that every app process shares them."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

security_log = logging.getLogger("fluence_portal.security")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one counted attempt: allowed, or refused for `retry_after` more seconds."""

    allowed: bool
    retry_after: int = 0
    counters: tuple[str, ...] = ()

    @property
    def retry_minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def client_ip(request: HttpRequest) -> str:
    """The address of the person: REMOTE_ADDR, or the entry our own proxies appended to X-Forwarded-For."""
    address = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        # Each trusted proxy appends the address it saw; anything to the left of that can be forged.
        if len(forwarded) >= hops and forwarded[-hops]:
            address = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return "unknown"


def _counter(scope: str, identity: str, window: int, now: float) -> tuple[str, int]:
    """The cache key of this identity's current fixed window, and the seconds until it ends."""
    bucket = int(now // window)
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}:{bucket}", max(1, math.ceil((bucket + 1) * window - now))


def _increment(key: str, timeout: int) -> int:
    # add + incr are atomic in Redis and under the local-memory cache's lock: concurrent requests never
    # share a count. The key may expire between the two; then it starts again at 1.
    cache.add(key, 0, timeout=timeout + 1)
    try:
        return cache.incr(key)
    except ValueError:
        cache.add(key, 1, timeout=timeout + 1)
        return 1


def attempt(scope: str, identities: list[str], limit: tuple[int, int]) -> Verdict:
    """Count one attempt for each identity; refused when any of them is over `limit` (attempts, seconds)."""
    allowed_count, window = limit
    now = time.time()
    counters, retry_after = [], 0
    for identity in identities:
        key, remaining = _counter(scope, identity, window, now)
        counters.append(key)
        if _increment(key, remaining) > allowed_count:
            retry_after = max(retry_after, remaining)
    return Verdict(allowed=retry_after == 0, retry_after=retry_after, counters=tuple(counters))


def refund(verdict: Verdict) -> None:
    """Give an attempt back (a successful sign-in is not a failure to count)."""
    for key in verdict.counters:
        with contextlib.suppress(ValueError):  # the window has already ended
            cache.decr(key)


# --- the two limited actions ----------------------------------------------------------------------------


def _username_identity(username: str) -> str:
    return "user:" + username.strip().casefold()[:150]


def login_attempt(*, request: HttpRequest, username: str) -> Verdict:
    """Count a sign-in attempt before the password is checked; refund it if the sign-in succeeds."""
    ip = client_ip(request)
    verdict = attempt("login", [_username_identity(username), "ip:" + ip], settings.LOGIN_RATE_LIMIT)
    if not verdict.allowed:
        security_log.warning(
            "sign-in refused, too many attempts: username=%r ip=%s retry_after=%ss",
            username[:150],
            ip,
            verdict.retry_after,
        )
    return verdict


def login_failed(*, request: HttpRequest, username: str) -> None:
    security_log.warning("sign-in failed: username=%r ip=%s", username[:150], client_ip(request))


def key_add_attempt(*, request: HttpRequest) -> Verdict:
    """Count one try at adding an API key (each one costs an upstream call)."""
    ip = client_ip(request)
    verdict = attempt("key_add", [f"user:{request.user.pk}", "ip:" + ip], settings.KEY_ADD_RATE_LIMIT)
    if not verdict.allowed:
        security_log.warning(
            "adding an API key refused, too many attempts: user=%r ip=%s retry_after=%ss",
            request.user.get_username(),
            ip,
            verdict.retry_after,
        )
    return verdict
