"""The query string of generation B's ``GET /v2/vms`` (fluence-api.md §4): parsed, validated, applied."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .data_b import STATUSES
from .expand_b import EXPANDABLE

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# "status", "status[]", "status[0]": Fluence reads bracket notation and a single plain parameter alike.
_PARAMETER = re.compile(r"^([A-Za-z_]+)(?:\[(\d*)\])?$")
_INTEGER = re.compile(r"^[0-9]{1,18}$")
_LIST_PARAMETERS = frozenset({"status", "excludeStatus", "ids", "expand"})
SORT_FIELDS = ("createdAt", "name", "status")
ORDERS = ("asc", "desc")
DEFAULT_PER_PAGE = 20


class BadQuery(ValueError):
    """A query parameter Fluence would refuse with 400 bad_request."""


@dataclass(frozen=True, slots=True)
class VmListQuery:
    page: int | None = None  # None: the account's first page
    per_page: int = DEFAULT_PER_PAGE  # as asked; the account caps it
    statuses: frozenset[str] = frozenset()
    excluded_statuses: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()  # lowercase
    name: str | None = None  # an ILIKE pattern
    cluster_id: str | None = None
    public_ip_id: str | None = None
    sort: str = "createdAt"
    order: str = "desc"
    expand: tuple[str, ...] = ()  # in EXPANDABLE order

    @property
    def filters(self) -> tuple[Any, ...]:
        """What selects VMs (not how they are ordered or paged): a cache key."""
        return (
            self.statuses,
            self.excluded_statuses,
            self.ids,
            self.name,
            self.cluster_id,
            self.public_ip_id,
        )

    @property
    def has_filters(self) -> bool:
        return any(self.filters)

    def matches(self, vm: dict[str, Any]) -> bool:
        if self.statuses and vm["status"] not in self.statuses:
            return False
        if vm["status"] in self.excluded_statuses:
            return False
        if self.ids and str(vm["id"]).lower() not in self.ids:
            return False
        if self.cluster_id is not None and str(vm["clusterId"]).lower() != self.cluster_id:
            return False
        if self.public_ip_id is not None and str(vm["publicIp"] or "").lower() != self.public_ip_id:
            return False
        return self.name is None or ilike(self.name).match(str(vm["name"])) is not None


@functools.lru_cache(maxsize=256)
def ilike(pattern: str) -> re.Pattern[str]:
    """PostgreSQL ILIKE as a regex: anchored, ``%`` any run, ``_`` one character, ``\\`` escapes."""
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


def _parameters(query_string: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(scalars, lists): the last value of each plain parameter; every value of each list parameter."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for raw_name, value in parse_qsl(query_string, keep_blank_values=True):
        match = _PARAMETER.match(raw_name)
        if match is None:
            continue  # unknown parameters are ignored, as by most HTTP APIs
        name, bracketed = match.group(1), match.group(2) is not None
        if name in _LIST_PARAMETERS:
            if value:  # "An empty set applies no filtering"
                lists.setdefault(name, []).append(value)
        elif not bracketed:
            scalars[name] = value
    return scalars, lists


def _integer(name: str, value: str, *, minimum: int) -> int:
    if not _INTEGER.match(value) or int(value) < minimum:
        raise BadQuery(f"Invalid query parameter {name}: expected an integer >= {minimum}")
    return int(value)


def _one_of(name: str, values: list[str], allowed: tuple[str, ...]) -> list[str]:
    for value in values:
        if value not in allowed:
            raise BadQuery(f"Invalid query parameter {name}: unknown value {value!r}")
    return values


def _uuid(name: str, value: str) -> str:
    if not UUID_PATTERN.match(value):
        raise BadQuery(f"Invalid query parameter {name}: expected a UUID")
    return value.lower()


def parse_expand(query_string: str) -> tuple[str, ...]:
    """The ``expand`` members of a query (``GET /v2/vms/{id}`` reads nothing else)."""
    _, lists = _parameters(query_string)
    asked = set(_one_of("expand", lists.get("expand", []), EXPANDABLE))
    return tuple(name for name in EXPANDABLE if name in asked)


def parse_list_query(query_string: str) -> VmListQuery:
    """The query of ``GET /v2/vms``; BadQuery for what Fluence answers with 400."""
    scalars, lists = _parameters(query_string)
    page = scalars.get("page")
    # perPage since 0.9; 0.8.210 spelt it per_page.
    per_page = scalars.get("perPage", scalars.get("per_page"))
    sort = scalars.get("sort", "createdAt")
    order = scalars.get("order", "desc")
    _one_of("sort", [sort], SORT_FIELDS)
    _one_of("order", [order], ORDERS)
    cluster_id = scalars.get("clusterId")
    public_ip_id = scalars.get("publicIpId")
    return VmListQuery(
        page=None if page is None else _integer("page", page, minimum=0),
        per_page=DEFAULT_PER_PAGE if per_page is None else _integer("perPage", per_page, minimum=1),
        statuses=frozenset(_one_of("status", lists.get("status", []), STATUSES)),
        excluded_statuses=frozenset(_one_of("excludeStatus", lists.get("excludeStatus", []), STATUSES)),
        ids=frozenset(_uuid("ids", value) for value in lists.get("ids", [])),
        name=scalars.get("name") or None,
        cluster_id=None if not cluster_id else _uuid("clusterId", cluster_id),
        public_ip_id=None if not public_ip_id else _uuid("publicIpId", public_ip_id),
        sort=sort,
        order=order,
        expand=parse_expand(query_string),
    )
