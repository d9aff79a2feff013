"""`/-/healthz` and `/-/readyz`: what a load balancer and Kubernetes probe. No session, cookie, CSRF,
sign-in redirect, HTTPS redirect or host check stands in their way; readiness names what failed; neither
calls Fluence."""

import logging
import threading

import pytest
from django.core.cache import caches
from django.db import OperationalError, connections
from django.test import RequestFactory

from fluence_portal import probes
from fluence_portal.service_endpoints import ServiceEndpointsMiddleware

pytestmark = pytest.mark.django_db

PROBES = ["/-/healthz", "/-/readyz"]
DATABASE_WRAPPER = type(connections["default"])  # the class every thread's connection is made of
CACHE_BACKEND = type(caches["default"])  # local memory, or Redis when REDIS_URL is set
HX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}


def test_healthz_answers_200_without_asking_the_database_or_the_cache(client, monkeypatch):
    asked = []
    monkeypatch.setattr(DATABASE_WRAPPER, "ensure_connection", lambda self: asked.append("database"))
    monkeypatch.setattr(CACHE_BACKEND, "get", lambda self, *args, **kwargs: asked.append("cache"))

    response = client.get("/-/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert asked == []


def test_readyz_answers_200_when_the_database_and_the_cache_answer(client):
    response = client.get("/-/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}


def test_readyz_answers_503_naming_the_database_when_it_is_down(client, monkeypatch, caplog):
    def refused(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(DATABASE_WRAPPER, "ensure_connection", refused)
    caplog.set_level(logging.WARNING)

    response = client.get("/-/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "failed (OperationalError)", "cache": "ok"},
    }
    assert "not ready: database failed (OperationalError)" in caplog.text
    # One line says why; Django does not add its own "Service Unavailable" line.
    assert not [record for record in caplog.records if record.name == "django.request"]


def test_readyz_answers_503_naming_the_cache_when_it_is_down(client, settings):
    # A Redis that refuses connections (port 1 on loopback: nothing listens there).
    settings.CACHES = {
        "default": {"BACKEND": "fluence_portal.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    response = client.get("/-/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "cache": "failed (ConnectionError)"},
    }


def _hang_cache(monkeypatch, released):
    hanging_get = CACHE_BACKEND.get

    def hangs(self, *args, **kwargs):
        if threading.current_thread().name.startswith("readyz-"):
            released.wait(10)
        return hanging_get(self, *args, **kwargs)

    monkeypatch.setattr(CACHE_BACKEND, "get", hangs)


def _hang_database(monkeypatch, released):
    ensure_connection = DATABASE_WRAPPER.ensure_connection

    def hangs(self):
        if threading.current_thread().name.startswith("readyz-"):
            released.wait(10)
        return ensure_connection(self)

    monkeypatch.setattr(DATABASE_WRAPPER, "ensure_connection", hangs)


@pytest.mark.parametrize(
    ("hang", "checks"),
    [
        (_hang_cache, {"database": "ok", "cache": "timed out after 1 s"}),
        (_hang_database, {"database": "timed out after 1 s", "cache": "ok"}),
    ],
)
def test_readyz_answers_503_within_its_second_when_a_check_hangs(client, monkeypatch, hang, checks):
    released = threading.Event()
    hang(monkeypatch, released)
    try:
        response = client.get("/-/readyz")
    finally:
        released.set()  # after the answer: it did not wait for the hung check (that would read "ok")

    assert response.status_code == 503
    assert response.json()["checks"] == checks


@pytest.mark.parametrize("path", PROBES)
def test_probes_need_no_session_set_no_cookie_and_never_redirect(client, settings, path):
    # The strictest production settings: a probe to the instance's own address over plain HTTP still answers.
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    settings.SESSION_SAVE_EVERY_REQUEST = True

    response = client.get(path, headers={"Host": "10.1.2.3:8000", **HX})

    assert response.status_code == 200
    assert not response.cookies
    assert "Set-Cookie" not in response.headers
    assert "Location" not in response.headers and "HX-Redirect" not in response.headers
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", PROBES)
def test_probes_take_no_post_and_need_no_csrf_token(path, settings):
    from django.test import Client

    csrf_checking = Client(enforce_csrf_checks=True)

    assert csrf_checking.get(path).status_code == 200
    response = csrf_checking.post(path)
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", PROBES)
def test_a_head_probe_gets_the_status_without_a_body(path):
    # Straight through the middleware: the test client would drop the body itself, gunicorn does not.
    def rest_of_the_stack(request):
        raise AssertionError("a probe never reaches the rest of the middleware")

    response = ServiceEndpointsMiddleware(rest_of_the_stack)(RequestFactory().head(path))

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", PROBES)
def test_probes_never_call_fluence_and_leave_no_line_in_the_logs(client, alice_key, sandbox, caplog, path):
    caplog.set_level(logging.DEBUG)
    sandbox.state.reset_counts()

    for _ in range(3):
        assert client.get(path).status_code == 200

    assert sandbox.state.request_count() == 0
    assert not [
        record
        for record in caplog.records
        if record.name.startswith(("fluence_portal", "django.security", "django.request", "vms"))
    ], caplog.text


def test_readiness_runs_both_checks_at_once(monkeypatch):
    """A slow database does not delay the cache's check: each check has its own pool, both run together."""
    cache_checked = threading.Event()
    real_cache_check = probes.cache_check

    def cache_check():
        real_cache_check()
        cache_checked.set()

    def database_check():  # answers only once the cache's check has run beside it
        if not cache_checked.wait(probes.CHECK_SECONDS * 5):
            raise TimeoutError("the cache's check did not run meanwhile")

    monkeypatch.setattr(probes, "cache_check", cache_check)
    monkeypatch.setattr(probes, "database_check", database_check)
    assert probes.readiness() == {"database": "ok", "cache": "ok"}
