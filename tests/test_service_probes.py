"""`/-/healthz` and `/-/readyz`: what a load balancer and Kubernetes probe. No session, cookie, CSRF,
sign-in redirect, HTTPS redirect or host check stands in their way; readiness names what failed; neither
calls Fluence."""

import logging
import threading
import time

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


def test_readyz_answers_503_within_about_a_second_when_the_cache_hangs(client, monkeypatch):
    released = threading.Event()
    hanging_get = CACHE_BACKEND.get

    def hangs(self, *args, **kwargs):
        if threading.current_thread().name.startswith("readyz-"):
            released.wait(10)
        return hanging_get(self, *args, **kwargs)

    monkeypatch.setattr(CACHE_BACKEND, "get", hangs)
    try:
        started = time.monotonic()
        response = client.get("/-/readyz")
        elapsed = time.monotonic() - started
    finally:
        released.set()

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "timed out after 1 s"}
    assert 0.9 <= elapsed < 2.0


def test_readyz_answers_503_within_about_a_second_when_the_database_hangs(client, monkeypatch):
    released = threading.Event()
    ensure_connection = DATABASE_WRAPPER.ensure_connection

    def hangs(self):
        if threading.current_thread().name.startswith("readyz-"):
            released.wait(10)
        return ensure_connection(self)

    monkeypatch.setattr(DATABASE_WRAPPER, "ensure_connection", hangs)
    try:
        started = time.monotonic()
        response = client.get("/-/readyz")
        elapsed = time.monotonic() - started
    finally:
        released.set()

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "timed out after 1 s", "cache": "ok"}
    assert elapsed < 2.0


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


def test_readiness_runs_both_checks_at_once():
    """A hung database does not delay the cache's answer: each check has its own pool."""
    started = time.monotonic()
    results = probes.readiness()

    assert results == {"database": "ok", "cache": "ok"}
    assert time.monotonic() - started < probes.CHECK_SECONDS
