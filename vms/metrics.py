"""The portal's Prometheus counters and histograms, and one small function per event the code reports.

The client, the cache, resilience, the services and the rate limits each call one of these functions at the
moment something happens; `/-/metrics` (fluence_portal/metrics_endpoint.py) exposes them. Labels are few
and bounded: an allowlisted API base URL, an API generation, a fixed operation or outcome name, never a key,
a secret or a VM id.

Under gunicorn (gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any worker imports this module)
every worker writes its counts to files in that directory, and a scrape of any worker adds them all up.
"""

from __future__ import annotations

import functools
import os

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# prometheus_client chose its storage (one process, or files shared by the workers) when it was imported,
# from this same variable.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROCESS_DIR:
    # A command run with the service's environment (a cron job) must not fail because the directory is gone.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

# This process's instruments; in multiprocess mode the scrape reads the files instead.
REGISTRY = CollectorRegistry(auto_describe=True)
# No `_created` samples: multiprocess mode has none, and one process should expose what several do.
disable_created_metrics()

UPSTREAM_SECONDS = Histogram(
    "fluence_portal_upstream_request_duration_seconds",
    "Calls to Fluence, by API base URL, API generation, operation and outcome (the HTTP status, or timeout, "
    "connection_error, too_large, error), and how long each took.",
    ["base_url", "generation", "operation", "outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=REGISTRY,
)
VM_LIST_CACHE = Counter(
    "fluence_portal_vm_list_cache_lookups_total",
    "Refreshes of one key's VM list: answered from the cache (hit), by a failure remembered for one "
    "interval (remembered_failure), or neither (miss: cool-down, circuit, single flight or Fluence).",
    ["result"],
    registry=REGISTRY,
)
SINGLE_FLIGHT_WAITS = Counter(
    "fluence_portal_single_flight_waits_total",
    "Refreshes that waited for another caller's list call of the same key instead of calling Fluence.",
    registry=REGISTRY,
)
COOLDOWNS = Counter(
    "fluence_portal_upstream_cooldowns_total",
    "Cool-downs of a key started because Fluence answered 429 (the portal then asks nothing for a while).",
    registry=REGISTRY,
)
CIRCUIT_OPENED = Counter(
    "fluence_portal_circuit_opened_total",
    "Times the circuit of an API base URL opened after consecutive failures.",
    ["base_url"],
    registry=REGISTRY,
)
ACTIONS = Counter(
    "fluence_portal_actions_total",
    "Actions by outcome. vm_delete counts each VM, and vm_rename, vm_restart, vm_soft_reboot and vm_ports "
    "each request: succeeded, failed, unknown (Fluence did not confirm), refused (not sent now), invalid "
    "(bad input) or not_allowed. Key and sharing actions: succeeded, invalid, not_allowed, failed.",
    ["action", "outcome"],
    registry=REGISTRY,
)
SIGN_IN_FAILURES = Counter(
    "fluence_portal_sign_in_failures_total",
    "Sign-ins refused after the credentials were checked, by method (password, proxy, oidc).",
    ["method"],
    registry=REGISTRY,
)
RATE_LIMIT_REFUSALS = Counter(
    "fluence_portal_rate_limit_refusals_total",
    "Attempts refused by a rate limit, by scope (login, key_add).",
    ["scope"],
    registry=REGISTRY,
)

OTHER_BASE_URL = "other"  # a base URL that is not (or no longer) on the allowlist: never a label of its own


def base_url_label(base_url: str) -> str:
    """The API base URL as a label: allowlisted ones only (FLUENCE_API_URLS), so the label stays bounded."""
    return base_url if base_url in settings.FLUENCE_API_URLS else OTHER_BASE_URL


# --- upstream calls -----------------------------------------------------------------------------------------

# What the client logs as the outcome of a call that got no HTTP status.
_FAILURE_OUTCOMES = {
    "deadline": "timeout",
    "connect timeout": "timeout",
    "read timeout": "timeout",
    "connection refused": "connection_error",
    "connection error": "connection_error",
    "too large": "too_large",
}


def upstream_outcome(outcome: str) -> str:
    """The HTTP status as text ("200", "429"), or one of a few failure names."""
    return outcome if outcome.isdigit() else _FAILURE_OUTCOMES.get(outcome, "error")


def upstream_call(base_url: str, generation: str, request, outcome: str, seconds: float) -> None:
    """One HTTP exchange with Fluence ended (`request` is the client's ApiRequest)."""
    UPSTREAM_SECONDS.labels(
        base_url=base_url_label(base_url),
        generation=generation,
        operation=request.operation,
        outcome=upstream_outcome(outcome),
    ).observe(seconds)


# --- the VM list cache, single flight, cool-downs, circuits -------------------------------------------------


def vm_list_cache(result: str) -> None:
    """One refresh of a key's list: "hit", "remembered_failure" or "miss"."""
    VM_LIST_CACHE.labels(result=result).inc()


def single_flight_waited() -> None:
    SINGLE_FLIGHT_WAITS.inc()


def cooldown_started() -> None:
    COOLDOWNS.inc()


def circuit_opened(base_url: str) -> None:
    CIRCUIT_OPENED.labels(base_url=base_url_label(base_url)).inc()


# --- actions ------------------------------------------------------------------------------------------------


def action_counted(action: str, outcome: str, count: int = 1) -> None:
    if count:
        ACTIONS.labels(action=action, outcome=outcome).inc(count)


def counted_action(action: str):
    """Decorates a service: each call is counted as succeeded, invalid (ValidationError), not_allowed
    (NotAllowed) or failed (anything else), and the exception goes on as before."""

    def decorate(service):
        @functools.wraps(service)
        def counted(*args, **kwargs):
            try:
                result = service(*args, **kwargs)
            except Exception as error:
                action_counted(action, _outcome_of(error))
                raise
            action_counted(action, "succeeded")
            return result

        return counted

    return decorate


def _outcome_of(error: Exception) -> str:
    from vms.services import NotAllowed  # the services import this module

    if isinstance(error, NotAllowed):
        return "not_allowed"
    if isinstance(error, ValidationError):
        return "invalid"
    return "failed"


# --- sign-in and rate limits --------------------------------------------------------------------------------


@receiver(user_login_failed, dispatch_uid="vms.metrics.sign_in_failed")
def _sign_in_failed(sender, credentials: dict, **kwargs) -> None:
    """Django's signal for credentials that no backend accepted; which backend's they were."""
    if "proxy_identity" in credentials:
        method = "proxy"
    elif "nonce" in credentials:  # mozilla-django-oidc's callback
        method = "oidc"
    else:
        method = "password"
    SIGN_IN_FAILURES.labels(method=method).inc()


def rate_limit_checked(scope: str, *, refused: bool) -> None:
    if refused:
        RATE_LIMIT_REFUSALS.labels(scope=scope).inc()
