"""The sign-in page: the password form when local sign-in is on, and the OpenID button when OIDC is."""

import logging

from django.conf import settings
from django.http import HttpResponse

from fluence_portal.login import RateLimitedLoginView

security_log = logging.getLogger("fluence_portal.security")


class LoginView(RateLimitedLoginView):
    def post(self, request, *args, **kwargs) -> HttpResponse:
        if not settings.LOCAL_LOGIN_ENABLED:
            security_log.warning("password sign-in refused: LOCAL_LOGIN_ENABLED is off")
            return self.render_to_response(self.get_context_data(), status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            local_login_enabled=settings.LOCAL_LOGIN_ENABLED,
            oidc_enabled=settings.OIDC_ENABLED,
            oidc_provider_name=settings.OIDC_PROVIDER_NAME,
            **kwargs,
        )
