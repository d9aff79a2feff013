"""`GET /-/metrics`: the Prometheus text of every worker of this instance, for a bearer token or an allowed
client network; off (404) unless METRICS_TOKEN or METRICS_ALLOWED_NETWORKS is set."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from vms import metrics, metrics_gauges, request_meta

security_log = logging.getLogger("fluence_portal.security")


def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scrape_registry()), content_type=content_type)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scrape may go on; else the answer. Either a right token or an allowed address lets it
    in; with neither configured the endpoint does not exist."""
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    offered = _bearer_token(request)
    if token and offered is not None and hmac.compare_digest(offered.encode(), token.encode()):
        return None
    address = request_meta.client_address(request)
    if networks and address is not None and _in_networks(address, networks):
        return None
    client = address or request_meta.UNKNOWN_CLIENT
    if token:
        reason = "a wrong bearer token" if offered else "no bearer token"
        security_log.warning("metrics scrape refused: %s (client %s)", reason, client)
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    else:
        security_log.warning("metrics scrape refused: client %s is not in METRICS_ALLOWED_NETWORKS", client)
        response = HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    response._has_been_logged = True  # said above; Django's handler would log it again as "Unauthorized"
    return response


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _in_networks(address: str, networks: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


class _ThisProcess:
    """The instruments of this process (one process: runserver, tests)."""

    def collect(self):
        return metrics.REGISTRY.collect()


_registry: CollectorRegistry | None = None
_registry_lock = threading.Lock()


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every worker's counts (the files of PROMETHEUS_MULTIPROC_DIR) or this process's,
    and the gauges read from the shared cache."""
    global _registry
    with _registry_lock:
        if _registry is None:
            registry = CollectorRegistry()
            if metrics.MULTIPROCESS_DIR:
                MultiProcessCollector(registry, path=metrics.MULTIPROCESS_DIR)
            else:
                registry.register(_ThisProcess())
            registry.register(metrics_gauges.CircuitCollector())
            registry.register(metrics_gauges.AccountCollector())
            _registry = registry
        return _registry
