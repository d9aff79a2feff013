"""The OpenID provider's endpoints: set explicitly, or discovered from `OIDC_OP_ISSUER` and cached."""

from __future__ import annotations

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from mozilla_django_oidc.utils import import_from_settings

# mozilla-django-oidc setting -> discovery document field.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class OidcProviderError(Exception):
    """The OpenID provider could not be reached, or its discovery document is not usable."""


def oidc_setting(attr: str, *default):
    """mozilla-django-oidc's settings lookup, with endpoints discovered when they are not set explicitly."""
    if attr in ENDPOINTS and not getattr(settings, attr, ""):
        return provider_metadata()[ENDPOINTS[attr]]
    if attr == "OIDC_CREATE_USER":
        return settings.SSO_CREATE_USERS
    return import_from_settings(attr, *default)


class Setting:
    """A mozilla-django-oidc setting read when used rather than when the object is built.

    Django builds every authentication backend for each password sign-in and each request's user, and the
    middleware at start-up: reading a discovered endpoint there would call the provider, and an unreachable
    provider would then break the break-glass password sign-in, or the start.
    """

    def __init__(self, name: str, *default):
        self.name = name
        self.default = default

    def __get__(self, instance, owner=None):
        return oidc_setting(self.name, *self.default)


def provider_metadata() -> dict:
    issuer = settings.OIDC_OP_ISSUER
    if not issuer:
        raise ImproperlyConfigured("Set OIDC_OP_ISSUER, or every OIDC_OP_*_ENDPOINT explicitly.")
    cache_key = f"sso:oidc:discovery:{issuer}"
    metadata = cache.get(cache_key)
    if metadata is None:
        metadata = _fetch_metadata(issuer)
        cache.set(cache_key, metadata, settings.OIDC_DISCOVERY_CACHE_SECONDS)
    return metadata


def _fetch_metadata(issuer: str) -> dict:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcProviderError(f"discovery at {url} failed: {type(exc).__name__}") from exc
    if not isinstance(metadata, dict) or metadata.get("issuer") != issuer:
        # The spec requires the document to name exactly the issuer it was fetched for.
        raise OidcProviderError(f"discovery at {url} names another issuer")
    missing = [field for field in ENDPOINTS.values() if not isinstance(metadata.get(field), str)]
    if missing:
        raise OidcProviderError(f"discovery at {url} lacks {', '.join(missing)}")
    return metadata
