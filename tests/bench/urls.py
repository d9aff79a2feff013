"""The URL map `make bench` runs under: the portal's own, plus one view that exists only for the bench.

Kept out of fluence_portal.urls so that the portal never serves it; tests/bench/bench.py points
ROOT_URLCONF here before its first request.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path

from fluence_portal import urls as portal_urls


@login_required
def floor_view(request: HttpRequest) -> HttpResponse:
    """The framework's floor: what a signed-in request costs when the view has nothing to do. It goes
    through the same middleware, session and sign-in check as the portal's views, then answers an empty
    204, so an unchanged poll (also a 204) can be judged against it."""
    return HttpResponse(status=204)


urlpatterns = [
    path("bench/floor/", floor_view, name="bench_floor"),
    *portal_urls.urlpatterns,
]
