"""vms.htmx.render: the page, or its fragment for htmx, and nothing of it left for the garbage collector."""

import gc
import weakref
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from vms import htmx


@dataclass
class _Balance:
    balance: object = None
    days_left: int | None = 3
    currency: str = "USDC"


def _request(**headers):
    request = RequestFactory().get("/", **headers)
    request.user = AnonymousUser()
    request.htmx = HtmxDetails(request)
    return request


def test_what_a_page_is_rendered_from_is_freed_with_the_page_not_by_the_garbage_collector():
    balance = _Balance()
    kept = weakref.ref(balance)
    gc.disable()  # only reference counting: what a cycle holds stays
    try:
        response = htmx.render(_request(), "vms/_balance.html", {"balance": balance})
        del balance
        assert kept() is None
    finally:
        gc.enable()
    assert b"about 3 days left" in response.content
    assert response["Vary"] == "HX-Request"


def test_htmx_gets_the_fragment_and_a_boosted_navigation_the_page():
    context = {"balance": _Balance(days_left=0)}
    fragment = htmx.render(
        _request(HTTP_HX_REQUEST="true"), "vms/_time.html", context, partial="vms/_balance.html"
    )
    assert b"less than a day left" in fragment.content
    boosted = _request(HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true")
    page = htmx.render(boosted, "vms/_balance.html", context, partial="vms/_time.html", status=202)
    assert b"less than a day left" in page.content and page.status_code == 202
