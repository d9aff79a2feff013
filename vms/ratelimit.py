"""Rate limits for sign-in and key-adding, counted in the cache so that every app process shares them."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.http import HttpRequest

from vms import metrics
from vms.request_meta import client_ip

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
    metrics.rate_limit_checked(scope, refused=retry_after > 0)
    return Verdict(allowed=retry_after == 0, retry_after=retry_after, counters=tuple(counters))


def refund(verdict: Verdict) -> None:
    """Give an attempt back (a successful sign-in is not a failure to count)."""
    for key in verdict.counters:
        with contextlib.suppress(ValueError):  # the window has already ended
            cache.decr(key)


# --- the two limited actions ----------------------------------------------------------------------------


def _login_identities(username: str) -> list[str]:
    """Who a sign-in attempt is against: the username as authentication will read it, and its account.

    The sign-in form strips the username and NFKC-normalises it (full-width letters, ligatures such as
    U+0133, an `e` plus a combining accent: all plain letters by then), and the backend looks it up with
    `get_by_natural_key`. Counting the raw spelling would give each look-alike a fresh allowance of guesses
    at the same password; counting the account as well joins any spelling that reaches it.
    """
    user_model = get_user_model()
    max_length = user_model._meta.get_field(user_model.USERNAME_FIELD).max_length or 254
    name = username.strip()
    if not 0 < len(name) <= max_length or "\x00" in name:
        # The form refuses it before any backend is asked: nothing to normalise (a megabyte, say) or to
        # look up (PostgreSQL would fail on the NUL).
        return ["user:" + name.casefold()[:max_length]]
    name = user_model.normalize_username(name)
    identities = ["user:" + name.casefold()[:max_length]]
    try:
        account = user_model._default_manager.get_by_natural_key(name)
    except user_model.DoesNotExist:
        return identities
    return [*identities, f"account:{account.pk}"]


def login_attempt(*, request: HttpRequest, username: str) -> Verdict:
    """Count a sign-in attempt before the password is checked; refund it if the sign-in succeeds."""
    ip = client_ip(request)
    verdict = attempt("login", [*_login_identities(username), "ip:" + ip], settings.LOGIN_RATE_LIMIT)
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
