"""The first minute with the portal: the demo's team and shared key, the sandbox without secrets, the icon."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from vms.demo_data import demo_data_create
from vms.models import ApiKey, KeyShare

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


# --- the demo: a group, a person who may share, a key already shared ------------------------------------


def test_the_demo_has_a_team_a_sharer_and_a_shared_key(sandbox):
    demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    users = get_user_model().objects
    alice, bob = users.get(username="alice"), users.get(username="bob")
    ops = Group.objects.get(name="Ops")
    assert set(ops.user_set.values_list("username", flat=True)) == {"alice", "bob"}
    assert alice.has_perm("vms.share_apikey") and not bob.has_perm("vms.share_apikey")
    share = KeyShare.objects.get()
    assert (share.api_key.owner, share.api_key.label, share.group, share.role) == (
        alice,
        "Production",
        ops,
        "viewer",
    )
    assert share.created_by_username == "alice"


def test_in_the_demo_bob_sees_alices_shared_key_and_alice_may_share(client, sandbox):
    demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    users = get_user_model().objects
    production = ApiKey.objects.get(owner__username="alice", label="Production")
    client.force_login(users.get(username="bob"))
    keys_page = client.get(reverse("vms:keys")).content.decode()
    assert "Shared with you" in keys_page and "Production" in keys_page
    client.force_login(users.get(username="alice"))
    sharing = client.get(reverse("vms:key_sharing", args=[production.pk]))
    assert sharing.status_code == 200 and "Ops" in sharing.content.decode()


def test_the_demo_can_be_made_again_and_again(sandbox):
    for _ in range(3):
        demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    assert Group.objects.filter(name="Ops").count() == 1
    assert Group.objects.get(name="Ops").user_set.count() == 2
    assert KeyShare.objects.count() == 1
    assert get_user_model().objects.get(username="alice").user_permissions.count() == 1


def test_rundemo_says_who_may_share(sandbox, monkeypatch):
    """What `make run` prints names the team, without starting a server here."""
    from io import StringIO

    from vms.management.commands import rundemo

    monkeypatch.setattr(rundemo, "SandboxServer", lambda **_: _FakeSandbox(sandbox.url))
    monkeypatch.setattr(rundemo, "call_command", lambda *args, **kwargs: None)
    out = StringIO()
    call_command("rundemo", stdout=out)
    assert (
        "Both are in the group Ops; alice may share keys and shares “Production” with Ops" in out.getvalue()
    )


class _FakeSandbox:
    def __init__(self, url):
        self.url = url

    def start(self):
        return self

    def stop(self):
        pass


# --- the sandbox needs no secret ------------------------------------------------------------------------


def _without_secrets() -> dict[str, str]:
    env = {
        name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "SYSTEMROOT")
    }
    assert "SECRET_KEY" not in env and "FIELD_ENCRYPTION_KEYS" not in env
    return env


@pytest.mark.parametrize("argv", [["runsandbox", "--help"], ["help", "runsandbox"]])
def test_runsandbox_help_needs_no_secret(argv):
    result = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=_without_secrets(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: manage.py runsandbox" in result.stdout and "--vms-per-account" in result.stdout
    assert "ImproperlyConfigured" not in result.stderr


def test_runsandbox_serves_without_secrets():
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runsandbox", "--port", "0"],
        cwd=ROOT,
        env={**_without_secrets(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("Fluence sandbox API at http://127.0.0.1:"), process.stderr.read()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_portal_still_refuses_to_start_without_its_secrets():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_without_secrets(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


# --- the icon -------------------------------------------------------------------------------------------


def test_every_page_links_the_icon(client):
    body = client.get(reverse("login")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body


def test_favicon_ico_is_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/favicon.svg"
    assert "max-age=86400" in response["Cache-Control"]


def test_whitenoise_serves_the_icon(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    response = Client().get("/favicon.ico", follow=True)  # a new client: whitenoise reads STATIC_ROOT
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(response.streaming_content)
