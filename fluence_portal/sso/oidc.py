"""OpenID Connect sign-in through mozilla-django-oidc: users matched on (issuer, sub), groups mapped."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import View
from django_htmx.http import HttpResponseClientRedirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from fluence_portal.sso import services
from fluence_portal.sso.discovery import OidcProviderError, Setting, oidc_setting

security_log = logging.getLogger("fluence_portal.security")
logger = logging.getLogger("fluence_portal.sso")


class SsoOidcBackend(OIDCAuthenticationBackend):
    """Signs in the user of an OpenID identity: matched on the issuer's `sub`, never on the email."""

    get_settings = staticmethod(oidc_setting)
    OIDC_OP_TOKEN_ENDPOINT = Setting("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = Setting("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = Setting("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_CLIENT_ID = Setting("OIDC_RP_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = Setting("OIDC_RP_CLIENT_SECRET")
    OIDC_RP_SIGN_ALGO = Setting("OIDC_RP_SIGN_ALGO", "RS256")
    OIDC_RP_IDP_SIGN_KEY = Setting("OIDC_RP_IDP_SIGN_KEY", None)

    def __init__(self, *args, **kwargs):
        # Not the parent's __init__, which reads (and so would discover) the endpoints; see Setting.
        self.UserModel = get_user_model()
        self.issuer = ""

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce; any other authenticate() (a password form) is not ours.
        if not settings.OIDC_ENABLED or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except SuspiciousOperation as exc:
            # A forged, replayed, expired or misaddressed token: nobody is signed in, and it is on record.
            security_log.warning("OIDC sign-in refused: %s", exc)
            return None

    def get_payload_data(self, token, key):
        try:
            return super().get_payload_data(token, key)
        except jwt.InvalidTokenError as exc:  # the parent turns only DecodeError into a refusal
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc

    def get_user(self, user_id):
        return ModelBackend.get_user(self, user_id)  # refuses inactive users, unlike the parent

    def get_or_create_user(self, access_token, id_token, payload):
        self.issuer = self._checked_issuer(payload)
        self._check_audience(payload)
        return super().get_or_create_user(access_token, id_token, payload)

    def get_userinfo(self, access_token, id_token, payload):
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo answer is about another subject than the ID token")
        return {**payload, **userinfo}

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def describe_user_by_claims(self, claims) -> str:
        return f"sub {claims.get('sub')!r} at {self.issuer}"

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(
            sso_identities__issuer=self.issuer, sso_identities__subject=claims["sub"]
        )

    def create_user(self, claims):
        return services.sso_user_create(
            issuer=self.issuer,
            subject=claims["sub"],
            username=_username(claims),
            email=_email(claims),
            idp_groups=_groups(claims),
        )

    def update_user(self, user, claims):
        return services.sso_user_update(user=user, email=_email(claims), idp_groups=_groups(claims))

    def _checked_issuer(self, payload: dict) -> str:
        issuer = payload.get("iss")
        expected = settings.OIDC_OP_ISSUER
        if not issuer or (expected and issuer != expected):
            security_log.warning(
                "OIDC sign-in refused: ID token from issuer %r, expected %r", issuer, expected
            )
            raise SuspiciousOperation("the ID token comes from another issuer")
        return issuer

    def _check_audience(self, payload: dict) -> None:
        # mozilla-django-oidc does not check the audience; a token minted for another client is refused.
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        client_id = self.OIDC_RP_CLIENT_ID
        authorized_party = payload.get("azp")
        if client_id not in audiences or (authorized_party and authorized_party != client_id):
            security_log.warning("OIDC sign-in refused: ID token for audience %r, not this client", audience)
            raise SuspiciousOperation("the ID token was issued to another client")


def _email(claims: dict) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return ""
    return email


def _username(claims: dict) -> str:
    for candidate in (claims.get("preferred_username"), _email(claims).partition("@")[0]):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return "oidc-" + hashlib.sha256(str(claims["sub"]).encode()).hexdigest()[:10]


def _groups(claims: dict) -> list[str]:
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    return [group for group in groups if isinstance(group, str)]


def _provider_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.warning("OpenID provider unavailable: %s", exc)
    messages.error(
        request, f"{settings.OIDC_PROVIDER_NAME} did not answer, so you could not be signed in. Try again."
    )
    return redirect(settings.LOGIN_URL)


class OidcAuthenticationRequestView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider (state, nonce and PKCE challenge kept in the session)."""

    get_settings = staticmethod(oidc_setting)
    OIDC_OP_AUTH_ENDPOINT = Setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
    OIDC_RP_CLIENT_ID = Setting("OIDC_RP_CLIENT_ID")

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the endpoint is read on use; see Setting

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("OpenID Connect is not enabled")
        try:
            return super().get(request)
        except OidcProviderError as exc:
            return _provider_unavailable(request, exc)


class OidcAuthenticationCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: code exchange, token checks, sign-in."""

    get_settings = staticmethod(oidc_setting)

    @property
    def failure_url(self) -> str:
        return resolve_url(settings.LOGIN_URL)

    def login_failure(self):
        messages.error(self.request, f"Signing in with {settings.OIDC_PROVIDER_NAME} did not succeed.")
        return super().login_failure()

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("OpenID Connect is not enabled")
        try:
            return super().get(request)
        except (requests.RequestException, OidcProviderError) as exc:
            return _provider_unavailable(request, exc)


class OidcSessionRefreshMiddleware(SessionRefresh):
    """mozilla-django-oidc's SessionRefresh, inert unless OIDC is on, and whole-page for htmx requests.

    When the ID token has expired, the parent answers a redirect to the provider (prompt=none), or JSON for
    XMLHttpRequest. Inside an htmx swap neither works (a cross-origin redirect followed by XHR), so htmx
    gets HX-Redirect and the browser comes back to the page it was showing.
    """

    get_settings = staticmethod(oidc_setting)
    OIDC_EXEMPT_URLS = Setting("OIDC_EXEMPT_URLS", [])
    OIDC_OP_AUTHORIZATION_ENDPOINT = Setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
    OIDC_RP_CLIENT_ID = Setting("OIDC_RP_CLIENT_ID")
    OIDC_STATE_SIZE = Setting("OIDC_STATE_SIZE", 32)
    OIDC_AUTHENTICATION_CALLBACK_URL = Setting(
        "OIDC_AUTHENTICATION_CALLBACK_URL", "oidc_authentication_callback"
    )
    OIDC_RP_SCOPES = Setting("OIDC_RP_SCOPES", "openid email")
    OIDC_USE_NONCE = Setting("OIDC_USE_NONCE", True)
    OIDC_NONCE_SIZE = Setting("OIDC_NONCE_SIZE", 32)

    def __init__(self, get_response):
        MiddlewareMixin.__init__(self, get_response)  # settings are read on use; see Setting

    def process_request(self, request: HttpRequest):
        if not settings.OIDC_ENABLED:
            return None
        try:
            response = super().process_request(request)
        except OidcProviderError as exc:
            # The session cannot be re-checked with the provider: it ends rather than outlives the check.
            auth.logout(request)
            return _provider_unavailable(request, exc)
        if response is None or not getattr(request, "htmx", False):
            return response
        refresh_url = response.get("refresh_url") or response["Location"]
        request.session["oidc_login_next"] = _page_of_htmx_request(request)
        return HttpResponseClientRedirect(refresh_url)


def _page_of_htmx_request(request: HttpRequest) -> str:
    current = request.htmx.current_url or ""
    if current and url_has_allowed_host_and_scheme(current, allowed_hosts={request.get_host()}):
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return resolve_url(settings.LOGIN_REDIRECT_URL)
