"""System checks of the single sign-on settings: a proxy header that anyone could send is refused."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


def proxy_trust_errors() -> list[Error]:
    """Proxy sign-in needs the proxy's shared secret, or the operator's word that only the proxy gets in."""
    if not settings.SSO_PROXY_ENABLED or settings.SSO_PROXY_TRUST_NETWORK:
        return []
    if settings.SSO_PROXY_SECRET_HEADER and settings.SSO_PROXY_SECRET:
        return []
    return [
        Error(
            f"SSO_PROXY_ENABLED is on without a shared secret (SSO_PROXY_SECRET_HEADER and "
            f"SSO_PROXY_SECRET): anyone who can reach the portal without going through the proxy can send "
            f"the {settings.SSO_PROXY_USER_HEADER} header and sign in as any user.",
            hint="Have the proxy send a secret header and set SSO_PROXY_SECRET_HEADER and SSO_PROXY_SECRET "
            "(16+ characters). Only if the network guarantees that nothing but the proxy reaches the "
            "portal, set SSO_PROXY_TRUST_NETWORK=1 instead.",
            id="sso.E001",
        )
    ]


@register(Tags.security)
def check_proxy_secret(app_configs, **kwargs) -> list[Error]:
    return proxy_trust_errors()
