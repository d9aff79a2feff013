"""`/-/healthz`, `/-/readyz` and `/-/metrics`, answered before the rest of the middleware runs.

A load balancer, the kubelet and Prometheus reach an instance at its own address over plain HTTP, with no
session: these paths therefore skip the HTTPS redirect, ALLOWED_HOSTS (the kubelet sends the pod's IP as
the host), sessions, CSRF, single sign-on and the sign-in redirects, set no cookie, and leave no line in the
request log or the security log unless something is wrong.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from fluence_portal import metrics_endpoint, probes

ENDPOINTS = {
    "/-/healthz": probes.healthz,
    "/-/readyz": probes.readyz,
    "/-/metrics": metrics_endpoint.metrics_view,
}


class ServiceEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponseNotAllowed(["GET", "HEAD"])
        else:
            response = endpoint(request)
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        if request.method == "HEAD":
            response.content = b""
        return response
