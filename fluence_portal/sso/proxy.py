"""Sign-in behind an authenticating proxy (oauth2-proxy, Authelia, ...): it names the user in a header.

Like Django's RemoteUserMiddleware (not the persistent variant): the proxy authenticates every request,
so a request that arrives without the header ends the session the header started.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse

from fluence_portal.sso import services
from fluence_portal.sso.checks import proxy_trust_errors
from fluence_portal.sso.models import SsoIdentity
from vms import request_meta

security_log = logging.getLogger("fluence_portal.security")

PROXY_BACKEND = "fluence_portal.sso.proxy.SsoProxyBackend"
_SESSION_SUBJECT = "sso_proxy_subject"
_SESSION_FINGERPRINT = "sso_proxy_fingerprint"
# Django's own username rule. A comma is what a server leaves when it folds two headers into one key
# (X-Auth-Request-User and X_Auth_Request_User both become HTTP_X_AUTH_REQUEST_USER), so it is refused.
_VALID_USERNAME = re.compile(r"[\w.@+-]{1,150}")


@dataclass(frozen=True)
class ProxyIdentity:
    username: str
    email: str
    groups: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """Changes when the email or groups the proxy sends change, so they are re-applied mid-session."""
        return hashlib.sha256(repr((self.email, sorted(self.groups))).encode()).hexdigest()


def meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def proxy_identity(request: HttpRequest) -> ProxyIdentity | None:
    """The identity the proxy asserts for this request, or None when there is none or it is not trusted."""
    username = request.META.get(meta_key(settings.SSO_PROXY_USER_HEADER))
    if username is None:
        return None
    # The address of whoever sent the header: the hop that connected, and the person behind it as the
    # trusted proxies name them (the same address the rate limits and the audit use).
    client = f"{request_meta.client_ip(request)} via {request.META.get('REMOTE_ADDR', '')}"
    if settings.SSO_PROXY_SECRET_HEADER:
        offered = request.META.get(meta_key(settings.SSO_PROXY_SECRET_HEADER), "")
        if not hmac.compare_digest(offered.encode(), settings.SSO_PROXY_SECRET.encode()):
            security_log.warning(
                "proxy sign-in refused: the proxy secret header %s is %s (user header %r, client %s)",
                settings.SSO_PROXY_SECRET_HEADER,
                "wrong" if offered else "missing",
                username[:150],
                client,
            )
            return None
    underscored = _underscore_variants(request)
    if underscored:
        security_log.warning(
            "proxy sign-in refused: underscore variant of an SSO header (%s) in the request (client %s)",
            ", ".join(underscored),
            client,
        )
        return None
    if not _VALID_USERNAME.fullmatch(username):
        security_log.warning(
            "proxy sign-in refused: the user header %s holds %r, not a username (two headers folded "
            "into one?) (client %s)",
            settings.SSO_PROXY_USER_HEADER,
            username[:150],
            client,
        )
        return None
    return ProxyIdentity(username=username, email=_email(request), groups=_groups(request))


def _sso_headers() -> set[str]:
    names = [
        settings.SSO_PROXY_USER_HEADER,
        settings.SSO_PROXY_EMAIL_HEADER,
        settings.SSO_PROXY_GROUPS_HEADER,
        settings.SSO_PROXY_SECRET_HEADER,
    ]
    return {name.lower().replace("_", "-") for name in names if name}


def _underscore_variants(request: HttpRequest) -> list[str]:
    """Raw header names spelling one of our headers with underscores.

    Only an ASGI request still carries the raw names (Django drops such headers from its META there, as
    gunicorn >= 22 and runserver do under WSGI); under WSGI the comma check above catches the folded case.
    """
    scope = getattr(request, "scope", None)
    if not scope:
        return []
    ours = _sso_headers()
    found = []
    for raw_name, _value in scope.get("headers", []):
        name = raw_name.decode("latin1").lower()
        if "_" in name and name.replace("_", "-") in ours:
            found.append(name)
    return found


def _email(request: HttpRequest) -> str:
    if not settings.SSO_PROXY_EMAIL_HEADER:
        return ""
    email = request.META.get(meta_key(settings.SSO_PROXY_EMAIL_HEADER), "").strip()
    try:
        validate_email(email)
    except ValidationError:
        return ""
    return email


def _groups(request: HttpRequest) -> tuple[str, ...]:
    if not settings.SSO_PROXY_GROUPS_HEADER:
        return ()
    raw = request.META.get(meta_key(settings.SSO_PROXY_GROUPS_HEADER), "")
    return tuple(name.strip() for name in raw.split(settings.SSO_PROXY_GROUPS_SEPARATOR) if name.strip())


class SsoProxyMiddleware:
    """Signs the proxy's user in, keeps their groups current, and signs them out when the header is gone.

    Inert unless `SSO_PROXY_ENABLED`: without it, the headers are ignored whoever sends them.
    """

    def __init__(self, get_response):
        # gunicorn runs no system checks; loading the app (each worker's boot) refuses what sso.E001 does.
        errors = proxy_trust_errors()
        if errors:
            raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint}")
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.SSO_PROXY_ENABLED:
            self._sign_in_or_out(request)
        return self.get_response(request)

    def _sign_in_or_out(self, request: HttpRequest) -> None:
        identity = proxy_identity(request)
        by_proxy = request.user.is_authenticated and request.session.get(BACKEND_SESSION_KEY) == PROXY_BACKEND
        if by_proxy and identity and request.session.get(_SESSION_SUBJECT) == identity.username:
            if request.session.get(_SESSION_FINGERPRINT) != identity.fingerprint:
                services.sso_user_update(user=request.user, email=identity.email, idp_groups=identity.groups)
                request.session[_SESSION_FINGERPRINT] = identity.fingerprint
            return
        if by_proxy:
            auth.logout(request)
        if identity is None:
            return
        user = auth.authenticate(request, proxy_identity=identity)
        if user is None:
            return
        auth.login(request, user)
        request.session[_SESSION_SUBJECT] = identity.username
        request.session[_SESSION_FINGERPRINT] = identity.fingerprint


class SsoProxyBackend(ModelBackend):
    """Finds or creates the user the proxy names; refuses to take over staff or superuser accounts."""

    def authenticate(self, request, proxy_identity: ProxyIdentity | None = None):
        if proxy_identity is None or not settings.SSO_PROXY_ENABLED:
            return None
        issuer, subject = SsoIdentity.PROXY_ISSUER, proxy_identity.username
        user = services.sso_user_for_identity(issuer=issuer, subject=subject)
        if user is None:
            user_model = get_user_model()
            existing = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: subject}).first()
            if existing is not None:
                if not services.sso_identity_link(user=existing, issuer=issuer, subject=subject):
                    return None
                user = existing
            elif settings.SSO_CREATE_USERS:
                user = services.sso_user_create(
                    issuer=issuer,
                    subject=subject,
                    username=subject,
                    email=proxy_identity.email,
                    idp_groups=proxy_identity.groups,
                )
            else:
                security_log.warning("proxy sign-in refused: no user %r and SSO_CREATE_USERS is off", subject)
                return None
        if not self.user_can_authenticate(user):
            return None
        return services.sso_user_update(
            user=user, email=proxy_identity.email, idp_groups=proxy_identity.groups
        )
