"""Who asked, from where: the client address behind our own proxies, and the request facts audit rows copy."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

UNKNOWN_CLIENT = "unknown"
USER_AGENT_MAX_LENGTH = 300  # DeletionEvent.user_agent
REQUEST_ID_MAX_LENGTH = 64  # DeletionEvent.request_id


def client_address(request: HttpRequest) -> str | None:
    """The address of the person, normalised: REMOTE_ADDR, or the entry our own proxies appended to
    X-Forwarded-For (`settings.TRUSTED_PROXY_HOPS` of them). None when that is not an IP address."""
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
        return None


def client_ip(request: HttpRequest) -> str:
    """The same address as a label for logs and rate-limit counters: "unknown" when it is not one."""
    return client_address(request) or UNKNOWN_CLIENT


def user_agent(request: HttpRequest) -> str:
    return request.headers.get("User-Agent", "")[:USER_AGENT_MAX_LENGTH]


def request_id(request: HttpRequest) -> str:
    """The id RequestIdMiddleware gave this request (the one its logs carry), or "" outside it."""
    return getattr(request, "request_id", "")[:REQUEST_ID_MAX_LENGTH]


@dataclass(frozen=True)
class RequestMeta:
    """Who asked, from where: copied into every audit row."""

    actor_username: str
    actor_id: str
    client_ip: str | None  # None: not an IP address (the audit column holds addresses only)
    user_agent: str
    request_id: str

    @classmethod
    def of_user(cls, user) -> RequestMeta:
        """A write made outside a request (a command, a test): the person only."""
        return cls(
            actor_username=user.get_username(),
            actor_id=str(user.pk),
            client_ip=None,
            user_agent="",
            request_id="",
        )

    @classmethod
    def from_request(cls, request: HttpRequest) -> RequestMeta:
        return cls(
            actor_username=request.user.get_username(),
            actor_id=str(request.user.pk),
            client_ip=client_address(request),
            user_agent=user_agent(request),
            request_id=request_id(request),
        )
