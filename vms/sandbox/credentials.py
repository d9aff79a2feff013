"""Where a request's API key is read from, by the rules of each generation of the Fluence API."""

from __future__ import annotations

from email.message import Message

from .state import AuthFailure


def _authorization(headers: Message) -> tuple[str, str | None]:
    """(scheme in lower case, credential) of the Authorization header; ("", None) without one."""
    scheme, _, credential = (headers.get("Authorization") or "").strip().partition(" ")
    return scheme.lower(), credential.strip() or None


def naming_key(headers: Message) -> str | None:
    """The key a request names, before any rule is applied: it picks the account, its faults, its count."""
    header_key = (headers.get("X-API-KEY") or "").strip() or None
    scheme, credential = _authorization(headers)
    return header_key or (credential if scheme in ("bearer", "x-api-key") else None)


def baseline_key(headers: Message) -> str | None:
    """The 2025 API (baseline and generation A): ``X-API-KEY`` or ``Authorization: Bearer``, equal if both."""
    header_key = (headers.get("X-API-KEY") or "").strip() or None
    scheme, credential = _authorization(headers)
    bearer = credential if scheme == "bearer" else None
    if header_key is not None and bearer is not None and header_key != bearer:
        raise AuthFailure(403, {"error": "Invalid API key"})
    return header_key or bearer


def generation_b_key(headers: Message) -> str | None:
    """Generation B: ``X-API-KEY`` or ``Authorization: X-API-KEY <key>``, equal if both.

    B reads a Bearer value as a JWT access token, so a key sent as Bearer is refused even when
    X-API-KEY is right: the portal's tests rely on it to prove that it never does so.
    """
    header_key = (headers.get("X-API-KEY") or "").strip() or None
    scheme, credential = _authorization(headers)
    if scheme == "bearer":
        raise AuthFailure(401, {"code": "unauthorized", "error": "Invalid access token"})
    authorization_key = credential if scheme == "x-api-key" else None
    if header_key is not None and authorization_key is not None and header_key != authorization_key:
        raise AuthFailure(401, {"code": "unauthorized", "error": "Conflicting API keys"})
    return header_key or authorization_key
