"""Sign-in behind an authenticating proxy: the user header, groups, the shared secret, forged headers."""

import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest

from fluence_portal.sso.models import SsoIdentity
from fluence_portal.sso.proxy import proxy_identity

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent
PROXY_SECRET = "proxy-shared-secret-0123456789"


@pytest.fixture
def proxy(settings):
    settings.SSO_PROXY_ENABLED = True
    settings.SSO_PROXY_USER_HEADER = "X-Auth-Request-User"
    settings.SSO_PROXY_EMAIL_HEADER = "X-Auth-Request-Email"
    settings.SSO_PROXY_GROUPS_HEADER = "X-Auth-Request-Groups"
    settings.SSO_PROXY_GROUPS_SEPARATOR = ","
    settings.SSO_PROXY_SECRET_HEADER = ""
    settings.SSO_PROXY_SECRET = ""
    settings.SSO_PROXY_TRUST_NETWORK = True  # no secret: only the proxy reaches the portal
    settings.SSO_CREATE_USERS = True
    settings.SSO_GROUP_MAP = {"ops-team": "Operators", "auditors": "Auditors"}
    return settings


def as_proxy(user="jane", *, email="jane@example.com", groups="ops-team", **extra):
    headers = {"X-Auth-Request-User": user, "X-Auth-Request-Email": email, "X-Auth-Request-Groups": groups}
    headers.update(extra)
    return {name: value for name, value in headers.items() if value is not None}


def signed_in_username(client):
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def group_names(username):
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_header_sign_in_creates_the_user_with_mapped_groups(client, proxy):
    response = client.get("/", headers=as_proxy(groups="ops-team,auditors"))

    assert response.status_code == 200
    assert signed_in_username(client) == "jane"
    jane = User.objects.get(username="jane")
    assert jane.email == "jane@example.com"
    assert group_names("jane") == {"Operators", "Auditors"}
    assert not jane.has_usable_password()
    assert SsoIdentity.objects.filter(user=jane, issuer="proxy", subject="jane").exists()


def test_a_new_sign_in_adds_and_removes_only_mapped_groups(client, proxy):
    client.get("/", headers=as_proxy(groups="ops-team"))
    jane = User.objects.get(username="jane")
    jane.groups.add(Group.objects.create(name="Hand-picked"))
    client.logout()

    client.get("/", headers=as_proxy(groups="auditors,unmapped-team"))

    assert group_names("jane") == {"Auditors", "Hand-picked"}
    assert not Group.objects.filter(name="unmapped-team").exists()


def test_group_changes_apply_within_a_session(client, proxy):
    client.get("/", headers=as_proxy(groups="ops-team,auditors"))
    client.get("/", headers=as_proxy(groups="auditors"))

    assert signed_in_username(client) == "jane"
    assert group_names("jane") == {"Auditors"}


def test_sso_never_grants_superuser_or_staff(client, proxy):
    Group.objects.create(name="admins")
    proxy.SSO_GROUP_MAP = {"ops-team": "Operators"}
    client.get("/", headers=as_proxy(groups="admin,superuser,staff,ops-team"))

    jane = User.objects.get(username="jane")
    assert not jane.is_superuser
    assert not jane.is_staff
    assert group_names("jane") == {"Operators"}


def test_a_header_naming_a_privileged_local_account_is_refused(client, proxy, caplog):
    User.objects.create_superuser(username="admin", password="break-glass-password-1")

    with caplog.at_level(logging.WARNING, logger="fluence_portal.security"):
        response = client.get("/", headers=as_proxy(user="admin", groups="ops-team"))

    assert response.status_code == 302
    assert signed_in_username(client) is None
    assert group_names("admin") == set()
    assert not SsoIdentity.objects.exists()
    assert "privileged" in caplog.text


def test_an_existing_plain_local_user_is_linked(client, proxy):
    User.objects.create_user(username="jane", password="jane-password-1")

    client.get("/", headers=as_proxy())

    assert signed_in_username(client) == "jane"
    assert User.objects.filter(username__startswith="jane").count() == 1
    assert SsoIdentity.objects.get(subject="jane").user.username == "jane"


def test_unknown_users_are_not_created_when_creation_is_off(client, proxy):
    proxy.SSO_CREATE_USERS = False

    response = client.get("/", headers=as_proxy())

    assert response.status_code == 302
    assert signed_in_username(client) is None
    assert not User.objects.filter(username="jane").exists()


def test_a_forged_header_does_nothing_while_the_feature_is_off(client, settings):
    settings.SSO_PROXY_ENABLED = False
    User.objects.create_user(username="jane", password="jane-password-1")

    response = client.get("/", headers=as_proxy())

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert signed_in_username(client) is None
    assert not SsoIdentity.objects.exists()


@pytest.mark.parametrize("offered", [None, "wrong-secret", PROXY_SECRET[:-1], PROXY_SECRET + "x"])
def test_a_missing_or_wrong_proxy_secret_leaves_the_request_anonymous(client, proxy, caplog, offered):
    proxy.SSO_PROXY_SECRET_HEADER = "X-Proxy-Secret"
    proxy.SSO_PROXY_SECRET = PROXY_SECRET

    with caplog.at_level(logging.WARNING, logger="fluence_portal.security"):
        response = client.get("/", headers=as_proxy(**{"X-Proxy-Secret": offered}))

    assert response.status_code == 302
    assert signed_in_username(client) is None
    assert not User.objects.filter(username="jane").exists()
    assert "proxy sign-in refused" in caplog.text
    assert PROXY_SECRET not in caplog.text
    if offered:
        assert offered not in caplog.text


def test_the_right_proxy_secret_signs_in(client, proxy):
    proxy.SSO_PROXY_SECRET_HEADER = "X-Proxy-Secret"
    proxy.SSO_PROXY_SECRET = PROXY_SECRET

    response = client.get("/", headers=as_proxy(**{"X-Proxy-Secret": PROXY_SECRET}))

    assert response.status_code == 200
    assert signed_in_username(client) == "jane"


def test_a_request_without_the_header_after_a_header_sign_in_is_signed_out(client, proxy):
    client.get("/", headers=as_proxy())
    assert signed_in_username(client) == "jane"

    response = client.get("/")

    assert response.status_code == 302
    assert signed_in_username(client) is None


def test_a_wrong_secret_after_a_header_sign_in_signs_out(client, proxy):
    client.get("/", headers=as_proxy())
    proxy.SSO_PROXY_SECRET_HEADER = "X-Proxy-Secret"
    proxy.SSO_PROXY_SECRET = PROXY_SECRET

    client.get("/", headers=as_proxy(**{"X-Proxy-Secret": "nope"}))

    assert signed_in_username(client) is None


def test_a_different_user_header_replaces_the_session_user(client, proxy):
    client.get("/", headers=as_proxy())
    client.get("/", headers=as_proxy(user="bob", email="bob@example.com"))

    assert signed_in_username(client) == "bob"


def test_a_password_session_is_kept_when_no_header_arrives(client, proxy, user):
    client.force_login(user)

    assert client.get("/").status_code == 200
    assert signed_in_username(client) == "alice"


def test_an_htmx_request_after_the_header_is_gone_redirects_the_whole_page(client, proxy):
    client.get("/", headers=as_proxy())

    response = client.get("/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?q=web"})

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/?next=/")


# --- Without the shared secret, proxy sign-in refuses to start unless the network is trusted -------------


def _check_ids() -> list[str]:
    from django.core import checks

    return [message.id for message in checks.run_checks(tags=[checks.Tags.security])]


def test_proxy_sign_in_without_a_secret_is_a_system_check_error(proxy):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    proxy.SSO_PROXY_TRUST_NETWORK = False

    assert "sso.E001" in _check_ids()
    with pytest.raises(SystemCheckError) as refused:  # manage.py check, migrate and runserver stop here
        call_command("check")
    assert "anyone who can reach the portal" in str(refused.value)
    assert "X-Auth-Request-User header and sign in as any user" in str(refused.value)


def _manage_py_check(**environment: str) -> subprocess.CompletedProcess:
    # A fresh interpreter: the check is registered and the setting read the way a real start does it.
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SSO_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env={**clean, "DJANGO_SETTINGS_MODULE": "fluence_portal.settings_test", **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manage_py_check_stops_proxy_sign_in_without_a_secret_unless_the_network_is_trusted():
    refused = _manage_py_check(SSO_PROXY_ENABLED="1")
    trusted = _manage_py_check(SSO_PROXY_ENABLED="1", SSO_PROXY_TRUST_NETWORK="1")

    assert refused.returncode != 0
    assert "sso.E001" in refused.stderr and "sign in as any user" in refused.stderr
    assert trusted.returncode == 0, trusted.stderr


def test_proxy_sign_in_without_a_secret_refuses_to_load_the_app(proxy):
    from fluence_portal.sso.proxy import SsoProxyMiddleware

    proxy.SSO_PROXY_TRUST_NETWORK = False

    # What each gunicorn worker does at boot (gunicorn runs no system checks).
    with pytest.raises(ImproperlyConfigured, match="sign in as any user"):
        SsoProxyMiddleware(lambda request: None)


@pytest.mark.parametrize(
    ("secret_header", "secret", "trust_network"),
    [
        ("X-Proxy-Secret", PROXY_SECRET, False),  # the proxy proves itself
        ("", "", True),  # the operator says only the proxy reaches the portal
        ("X-Proxy-Secret", PROXY_SECRET, True),
    ],
)
def test_proxy_sign_in_with_a_secret_or_a_trusted_network_passes_the_checks(
    proxy, secret_header, secret, trust_network
):
    from fluence_portal.sso.proxy import SsoProxyMiddleware

    proxy.SSO_PROXY_SECRET_HEADER = secret_header
    proxy.SSO_PROXY_SECRET = secret
    proxy.SSO_PROXY_TRUST_NETWORK = trust_network

    assert "sso.E001" not in _check_ids()
    SsoProxyMiddleware(lambda request: None)


def test_a_secret_header_without_a_secret_value_is_no_secret(proxy):
    # An empty secret would match a request that sends no secret header at all.
    proxy.SSO_PROXY_TRUST_NETWORK = False
    proxy.SSO_PROXY_SECRET_HEADER = "X-Proxy-Secret"
    proxy.SSO_PROXY_SECRET = ""

    assert "sso.E001" in _check_ids()


def test_without_proxy_sign_in_no_secret_is_needed(settings):
    settings.SSO_PROXY_ENABLED = False
    settings.SSO_PROXY_SECRET_HEADER = ""
    settings.SSO_PROXY_SECRET = ""
    settings.SSO_PROXY_TRUST_NETWORK = False

    assert "sso.E001" not in _check_ids()


# --- The underscore variant: X_Auth_Request_User lands in the same WSGI key as X-Auth-Request-User ---


def test_a_folded_header_value_is_refused(client, proxy, caplog):
    # What a server that keeps underscore headers makes of `X-Auth-Request-User: jane` plus
    # `X_Auth_Request_User: admin`: one HTTP_X_AUTH_REQUEST_USER of "jane,admin".
    with caplog.at_level(logging.WARNING, logger="fluence_portal.security"):
        response = client.get("/", HTTP_X_AUTH_REQUEST_USER="jane,admin")

    assert response.status_code == 302
    assert signed_in_username(client) is None
    assert not User.objects.exists()
    assert "two headers folded" in caplog.text


def asgi_request(headers):
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(name.encode(), value.encode()) for name, value in headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    return ASGIRequest(scope, io.BytesIO())


@pytest.mark.parametrize(
    "underscored", ["x_auth_request_user", "X_Auth_Request_Groups", "x-auth_request-email"]
)
def test_an_underscore_variant_under_asgi_is_refused(proxy, caplog, underscored):
    request = asgi_request([("x-auth-request-user", "jane"), (underscored, "admin")])

    with caplog.at_level(logging.WARNING, logger="fluence_portal.security"):
        assert proxy_identity(request) is None
    assert "underscore variant" in caplog.text


def test_an_asgi_request_with_only_the_underscore_variant_has_no_identity(proxy):
    # Django's ASGI handler drops the header from META; it never becomes an identity.
    assert proxy_identity(asgi_request([("x_auth_request_user", "admin")])) is None


def test_an_asgi_request_with_the_proper_header_has_an_identity(proxy):
    identity = proxy_identity(asgi_request([("x-auth-request-user", "jane"), ("x-other_header", "1")]))

    assert identity is not None
    assert identity.username == "jane"


@pytest.mark.parametrize("header", ["X_Auth_Request_User", "X-Auth Request", "X-Üser"])
def test_settings_refuse_header_names_that_are_not_plain(monkeypatch, header):
    from fluence_portal import settings as portal_settings

    monkeypatch.setenv("SSO_PROXY_USER_HEADER", header)
    with pytest.raises(ImproperlyConfigured):
        portal_settings.env_header("SSO_PROXY_USER_HEADER")


ECHO_APP = """
def app(environ, start_response):
    body = repr(environ.get("HTTP_X_AUTH_REQUEST_USER")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


@pytest.fixture
def gunicorn_with_our_config(tmp_path):
    """gunicorn with the repository's gunicorn.conf.py, serving an app that echoes the user header, on a port
    the kernel picks and gunicorn's log names: a port found free beforehand could be taken meanwhile (by
    another xdist worker's server), and the test would talk to that one."""
    (tmp_path / "echo.py").write_text(ECHO_APP)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(REPO / "gunicorn.conf.py"),
                "--pythonpath",
                str(tmp_path),
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "echo:app",
            ],
            cwd=REPO,
            env={**os.environ, "GUNICORN_CMD_ARGS": ""},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while not (listening := LISTENING.search(log.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield int(listening[1])
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_get(port, header_lines):
    request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + "".join(
        f"{line}\r\n" for line in header_lines
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((request + "\r\n").encode())
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.decode().split("\r\n\r\n", 1)[1]


def test_gunicorn_with_our_config_drops_the_underscore_variant(gunicorn_with_our_config):
    port = gunicorn_with_our_config

    assert raw_get(port, ["X_Auth_Request_User: admin"]) == "None"
    assert raw_get(port, ["X-Auth-Request-User: jane", "X_Auth_Request_User: admin"]) == "'jane'"
    assert raw_get(port, ["X-Auth-Request-User: jane"]) == "'jane'"


def test_our_gunicorn_config_states_drop_and_forwards_no_sso_header():
    import runpy

    config = runpy.run_path(str(REPO / "gunicorn.conf.py"))

    assert config["header_map"] == "drop"
    assert "AUTH" not in config["forwarder_headers"].upper()
