"""fluence_portal/middleware.py: a request id for the logs and the audit trail, and whole-page sign-in
redirects for htmx requests whose session has ended.

Every view's own "anonymous, htmx" case is in that view's tests (test_views_vms.py, test_access.py, …)."""

import logging
import re

import pytest
from django.http import HttpResponse, HttpResponseRedirect
from django.test import RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from fluence_portal.middleware import (
    HtmxLoginRedirectMiddleware,
    RequestIdLogFilter,
    RequestIdMiddleware,
    current_request_id,
)
from tests.factories import OPS_KEY, deletion_rows

LOGIN = "/accounts/login/"


# --- the request id ---------------------------------------------------------------------------------------


def _through_request_id(headers=None, view=None):
    seen = {}

    def get_response(request):
        seen["request"], seen["current"] = request.request_id, current_request_id()
        return view(request) if view else HttpResponse("ok")

    response = RequestIdMiddleware(get_response)(RequestFactory().get("/", headers=headers or {}))
    return response, seen


def test_each_request_gets_a_new_id_named_in_the_answer():
    first, seen = _through_request_id()
    second, _ = _through_request_id()

    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert seen == {"request": first["X-Request-ID"], "current": first["X-Request-ID"]}
    assert second["X-Request-ID"] != first["X-Request-ID"]
    assert current_request_id() == "-"  # outside a request


@pytest.mark.parametrize("offered", ["proxy-req-1234", "1-67891233.abcdef_0", "a" * 64])
def test_an_id_from_the_proxy_is_kept_so_that_both_logs_match(offered):
    response, seen = _through_request_id({"X-Request-ID": offered})

    assert response["X-Request-ID"] == offered == seen["request"] == seen["current"]


@pytest.mark.parametrize(
    "offered",
    [
        "short",
        "a" * 65,
        "id with spaces",
        "id\nFAKE log line",
        "proxy-req-1234\n",  # `$` would let the newline through, and the header could not be sent
        "<script>alert(1)</script>",
        "ünïcode-id-0001",
    ],
)
def test_an_id_from_the_proxy_that_does_not_look_like_one_is_replaced(offered):
    response, seen = _through_request_id({"X-Request-ID": offered})

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert seen["current"] == response["X-Request-ID"]


def test_the_id_is_forgotten_even_when_the_view_fails():
    def failing(request):
        raise RuntimeError("the view broke")

    with pytest.raises(RuntimeError):
        _through_request_id(view=failing)
    assert current_request_id() == "-"


def test_every_log_record_carries_the_id_of_its_request():
    record = logging.LogRecord("vms", logging.INFO, __file__, 1, "a line", None, None)

    def get_response(request):
        RequestIdLogFilter().filter(record)
        return HttpResponse()

    RequestIdMiddleware(get_response)(RequestFactory().get("/", headers={"X-Request-ID": "proxy-req-5678"}))

    assert record.request_id == "proxy-req-5678"
    RequestIdLogFilter().filter(record)
    assert record.request_id == "-"


@pytest.mark.django_db
def test_the_audit_rows_of_a_deletion_carry_the_id_of_its_request(alice_client, api_key, sandbox):
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")

    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]),
        {"confirm": vm["vmName"]},
        headers={"X-Request-ID": "proxy-req-audit-01"},
    )

    assert response["X-Request-ID"] == "proxy-req-audit-01"
    assert set(deletion_rows().values_list("kind", "request_id")) == {
        ("intent", "proxy-req-audit-01"),
        ("outcome", "proxy-req-audit-01"),
    }


# --- sign-in redirects under htmx ---------------------------------------------------------------------------


def _through_login_redirect(response, headers):
    stack = HtmxMiddleware(HtmxLoginRedirectMiddleware(lambda request: response))
    return stack(RequestFactory().get("/some/partial/", headers=headers))


HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/vms/3/?q=web&sort=-price"}


@pytest.mark.parametrize(
    "redirect", [HttpResponseRedirect, lambda url: HttpResponseRedirect(url, status=301)]
)
def test_an_htmx_request_sent_to_sign_in_reloads_the_whole_page_and_comes_back(redirect):
    response = _through_login_redirect(redirect(f"{LOGIN}?next=/some/partial/"), HTMX)

    assert response.status_code == 200  # htmx does not follow this one into the table: it reloads the page
    assert response["HX-Redirect"] == f"{LOGIN}?next=/vms/3/%3Fq%3Dweb%26sort%3D-price"


def test_the_page_to_come_back_to_is_the_one_shown_not_the_partial_asked_for():
    response = _through_login_redirect(
        HttpResponseRedirect(f"{LOGIN}?next=/some/partial/"),
        {"HX-Request": "true", "HX-Current-URL": "http://testserver/"},
    )

    assert response["HX-Redirect"] == f"{LOGIN}?next=/"


def test_a_plain_request_is_redirected_as_usual():
    redirect = HttpResponseRedirect(f"{LOGIN}?next=/some/partial/")

    assert _through_login_redirect(redirect, {}) is redirect


def test_an_htmx_redirect_elsewhere_is_left_alone():
    redirect = HttpResponseRedirect("/vms/")

    assert _through_login_redirect(redirect, HTMX) is redirect
