"""Top-level URL map."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView

from fluence_portal.sso.views import LoginView


@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever a page links: send them to the icon whitenoise serves.
    Not permanent: the icon's name changes with its content (the manifest storage's hash)."""
    response = HttpResponseRedirect(static("favicon.svg"))
    patch_cache_control(response, public=True, max_age=24 * 3600)
    return response


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin signs in through the same rate-limited form.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("oidc/", include("fluence_portal.sso.urls")),
    path("", include("vms.urls")),
]
