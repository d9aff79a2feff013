"""Which paths each generation of the Fluence API serves; one matcher for API and control paths alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .generations import BASELINE, GENERATION_A, GENERATION_B


@dataclass(frozen=True, slots=True)
class RouteMatch:
    pattern: str  # "/v2/vms/{id}/terminate"
    params: dict[str, str]  # {"id": "…"}
    methods: tuple[str, ...]


class Routes:
    """Path patterns (``{name}`` matches one path segment) and the methods each allows."""

    def __init__(self, table: dict[str, tuple[str, ...]]):
        self.table = dict(table)
        self._exact = {pattern: methods for pattern, methods in table.items() if "{" not in pattern}
        self._templated = [
            (re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"), pattern)
            for pattern in table
            if "{" in pattern
        ]

    def match(self, path: str) -> RouteMatch | None:
        methods = self._exact.get(path)
        if methods is not None:
            return RouteMatch(path, {}, methods)
        for regex, pattern in self._templated:
            found = regex.match(path)
            if found:
                return RouteMatch(pattern, found.groupdict(), self.table[pattern])
        return None

    def __contains__(self, pattern: object) -> bool:
        return pattern in self.table

    def __or__(self, other: Routes) -> Routes:
        merged = dict(self.table)
        for pattern, methods in other.table.items():
            merged[pattern] = tuple(dict.fromkeys(merged.get(pattern, ()) + methods))
        return Routes(merged)


B_ROUTES = Routes(
    {
        "/v2/vms": ("GET",),
        "/v2/vms/{id}": ("GET", "PATCH"),
        "/v2/vms/{id}/terminate": ("POST",),
        "/v2/vms/{id}/restart": ("POST",),
        "/v2/vms/{id}/softreboot": ("POST",),
        "/v1/clusters": ("GET",),
        "/v1/datacenters": ("GET",),
        "/v2/users/balances": ("GET",),
    }
)
ROUTES_BY_GENERATION = {
    BASELINE: Routes({"/vms/v2": ("GET",), "/vms/v3": ("DELETE",)}),
    GENERATION_A: Routes({"/vms/v2": ("GET",), "/vms/v3": ("GET", "DELETE", "PATCH")}),
    GENERATION_B: B_ROUTES,
}
#: For a request whose key names no account: a path is known if any generation serves it.
ANY_GENERATION = ROUTES_BY_GENERATION[BASELINE] | ROUTES_BY_GENERATION[GENERATION_A] | B_ROUTES
#: Served to anyone, without a key.
PUBLIC_ROUTES = Routes({"/v1/service/status": ("GET",)})
CONTROL_ROUTES = Routes(
    {
        "/_sandbox/health": ("GET",),
        "/_sandbox/stats": ("GET",),
        "/_sandbox/reset-counts": ("POST",),
        "/_sandbox/faults": ("GET", "POST", "DELETE"),
        "/_sandbox/accounts": ("POST",),
        "/_sandbox/accounts/vms": ("POST",),
        "/_sandbox/settings": ("GET", "POST"),
    }
)
