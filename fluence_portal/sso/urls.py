"""OpenID Connect endpoints, under /oidc/ (the names are mozilla-django-oidc's). 404 unless OIDC is on."""

from django.urls import path
from mozilla_django_oidc.views import OIDCLogoutView

from fluence_portal.sso.oidc import OidcAuthenticationCallbackView, OidcAuthenticationRequestView

urlpatterns = [
    path("callback/", OidcAuthenticationCallbackView.as_view(), name="oidc_authentication_callback"),
    path("authenticate/", OidcAuthenticationRequestView.as_view(), name="oidc_authentication_init"),
    # POST only; SessionRefresh exempts it by this name.
    path("logout/", OIDCLogoutView.as_view(), name="oidc_logout"),
]
