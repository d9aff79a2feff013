"""Health and readiness probes: is the process alive (`/-/healthz`), and do the database and the cache answer
within a second (`/-/readyz`). Neither ever calls Fluence."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger("fluence_portal.probes")

CHECK_SECONDS = 1.0


def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is asked (a load balancer restarts nothing over a slow database)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    ready = all(result == "ok" for result in checks.values())
    if not ready:
        failed = ", ".join(f"{name} {result}" for name, result in checks.items() if result != "ok")
        logger.warning("not ready: %s", failed)
    response = JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
    response._has_been_logged = True  # logged above with the reason; Django would add "Service Unavailable"
    return response


def database_check() -> None:
    """A cheap query on a connection of its own, closed after it (the check runs on a pool thread)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


def cache_check() -> None:
    """A set and a get of a random key: the cache stores and gives back."""
    key, value = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise LookupError("the cache did not give back what was stored")
    finally:
        cache.delete(key)


CHECKS = ("database", "cache")
# Each check runs on its own small pool, so that a hung database never delays the cache's answer (and the
# other way round), and hung calls hold at most two threads each: later probes then wait and time out.
_pools = {name: ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"readyz-{name}") for name in CHECKS}


def readiness() -> dict[str, str]:
    """Each check's result within CHECK_SECONDS in all: "ok", "timed out after 1 s" or "failed (<error>)"."""
    checks = {"database": database_check, "cache": cache_check}
    futures = {name: _pools[name].submit(checks[name]) for name in CHECKS}
    deadline = time.monotonic() + CHECK_SECONDS
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()  # if it has not started yet (its pool is busy with hung checks)
            results[name] = f"timed out after {CHECK_SECONDS:g} s"
        except Exception as error:
            # The type only: a driver's message may name hosts, users or paths.
            results[name] = f"failed ({type(error).__name__})"
        else:
            results[name] = "ok"
    return results
