"""API keys never reach error pages, logged tracebacks or exception reports (the admin e-mail)."""

import logging
import sys
from unittest import mock

import pytest
import requests
from django.conf import settings as django_settings
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from vms.fluence.client import FluenceClient

SECRET = "sbx_secret_in_flight_Zq81"
REDIS_PASSWORD = "redis-password-Xy7"


@pytest.fixture
def reports():
    """The exception reports Django's AdminEmailHandler would send for each 500 of the test."""
    captured = []

    def receiver(sender, request, **kwargs):
        exc_info = sys.exc_info()
        reporter = ExceptionReporter(request, *exc_info, is_email=True)
        plain = SafeExceptionReporterFilter()
        captured.append(
            {
                "text": reporter.get_traceback_text(),
                "html": reporter.get_traceback_html(),
                # The same report under Django's stock filter: shows what our own filter adds.
                "stock": _with_filter(ExceptionReporter(request, *exc_info, is_email=True), plain),
            }
        )

    got_request_exception.connect(receiver)
    yield captured
    got_request_exception.disconnect(receiver)


def _with_filter(reporter, report_filter) -> str:
    reporter.filter = report_filter
    return reporter.get_traceback_html()


@pytest.fixture
def failing_client(user, settings):
    settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _post_key(client, sandbox):
    return client.post(
        reverse("vms:key_add"), {"label": "Production", "secret": SECRET, "base_url": sandbox.url}
    )


def _secrets() -> list[str]:
    return [SECRET, REDIS_PASSWORD, django_settings.SECRET_KEY, *django_settings.FIELD_ENCRYPTION_KEYS]


def test_an_unexpected_error_while_adding_a_key_shows_and_reports_no_secret(
    failing_client, sandbox, reports, caplog
):
    caplog.set_level(logging.ERROR, logger="django.request")
    # Adding a key probes which API version answers it (detect_generation -> FluenceClient.probe).
    with mock.patch.object(FluenceClient, "probe", side_effect=RuntimeError("unexpected failure")):
        response = _post_key(failing_client, sandbox)

    assert response.status_code == 500
    assert len(reports) == 1
    report = reports[0]
    # The report is still useful: what failed, where, and which fields were posted.
    assert "RuntimeError" in report["text"] and "apikey_create" in report["text"]
    assert "label = 'Production'" in report["text"]
    assert "secret = '********************'" in report["text"]
    assert "apikey_verify" in report["html"] and "base_url" in report["html"]  # frame variables are shown
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "RuntimeError: unexpected failure" in logged
    for secret in _secrets():
        assert secret not in response.text
        assert secret not in report["text"]
        assert secret not in report["html"]
        assert secret not in logged


def test_a_failure_inside_the_http_transport_reports_no_key_even_from_its_header_dicts(
    failing_client, sandbox, reports
):
    def broken_send(adapter, request, **kwargs):
        headers = dict(request.headers)  # a frame local holding the key, as urllib3's own frames do
        raise RuntimeError(f"transport bug with {len(headers)} headers")

    with mock.patch.object(requests.adapters.HTTPAdapter, "send", broken_send):
        response = _post_key(failing_client, sandbox)

    assert response.status_code == 500
    (report,) = reports
    assert "transport bug" in report["text"]
    assert SECRET not in report["text"] and SECRET not in report["html"]
    # Django's stock filter alone would have printed it: the protection is ours, and it is needed.
    assert SECRET in report["stock"]


def test_the_posted_key_is_hidden_even_where_no_view_marked_it():
    from django.test import RequestFactory

    from fluence_portal.exception_filter import SecretHidingExceptionReporterFilter

    request = RequestFactory().post("/anywhere/", {"api_key": SECRET, "label": "Production"})

    parameters = SecretHidingExceptionReporterFilter().get_post_parameters(request)

    assert parameters["api_key"] != SECRET and parameters["label"] == "Production"


def test_connection_urls_with_passwords_are_hidden_among_the_reported_settings(settings):
    settings.REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"
    from fluence_portal.exception_filter import SecretHidingExceptionReporterFilter

    safe = SecretHidingExceptionReporterFilter().get_safe_settings()

    assert REDIS_PASSWORD not in repr(safe)
    assert all(key not in repr(safe) for key in settings.FIELD_ENCRYPTION_KEYS)


# --- the technical 500 page DEBUG shows ---------------------------------------------------------------

LIVE_KEY = "sbx_live_debug_page_Kp42"
STORED_KEY = "sbx_live_stored_key_Wm73"


def _debug_page_for_a_failure_holding_keys() -> str:
    """The HTML of Django's DEBUG error page for an error raised where decrypted keys are local variables."""
    from django.test import RequestFactory
    from django.views.debug import technical_500_response

    from vms.models import ApiKey

    def use_keys():
        api_key = LIVE_KEY  # noqa: F841 (a frame local, as in the code that calls Fluence)
        stored = ApiKey(label="Production", secret=STORED_KEY, last_four=STORED_KEY[-4:])
        plaintext = stored.secret.reveal()  # noqa: F841
        raise RuntimeError("failure while holding keys")

    request = RequestFactory().get("/keys/")
    try:
        use_keys()
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    return response.content.decode()


def _shown_value(page: str, variable: str) -> str:
    import html
    import re

    match = re.search(rf"<td>{variable}</td>\s*<td class=\"code\"><pre>(.*?)</pre></td>", page, re.DOTALL)
    assert match, f"the page lists no local variable {variable}"
    return html.unescape(match.group(1))


def test_the_debug_error_page_hides_decrypted_keys_held_in_local_variables(settings):
    settings.DEBUG = True

    page = _debug_page_for_a_failure_holding_keys()

    assert "failure while holding keys" in page and "use_keys" in page  # the page is still useful
    assert LIVE_KEY not in page
    assert STORED_KEY not in page
    masked = repr(SafeExceptionReporterFilter.cleansed_substitute)
    assert _shown_value(page, "api_key") == masked
    assert _shown_value(page, "plaintext") == masked
    assert "Production" in _shown_value(page, "stored")  # the model instance is shown, never its secret
