"""Starts tests/oidc/provider.mjs (a real OpenID provider on Node.js) for the single sign-on tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

HERE = Path(__file__).resolve().parent
CLIENT_ID = "fluence-portal"
CLIENT_SECRET = "local-test-provider-client-secret"
ACCOUNT = {
    "sub": "248289761001",
    "email": "jane.doe@example.com",
    "email_verified": True,
    "preferred_username": "jane",
    "name": "Jane Doe",
    "groups": ["ops-team", "unmapped-team"],
}


class LocalProvider:
    def __init__(self, process: subprocess.Popen, issuer: str):
        self.process = process
        self.issuer = issuer

    def configure(self, settings) -> None:
        """Point the portal at this provider through the pytest-django `settings` fixture."""
        settings.OIDC_ENABLED = True
        settings.OIDC_PROVIDER_NAME = "Local IdP"
        settings.OIDC_RP_CLIENT_ID = CLIENT_ID
        settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
        settings.OIDC_OP_ISSUER = self.issuer
        settings.OIDC_RP_SCOPES = "openid email profile groups"
        settings.SSO_GROUP_MAP = {"ops-team": "Operators", "auditors": "Auditors"}


@contextlib.contextmanager
def local_provider(*, redirect_uris: list[str], account: dict | None = None) -> Iterator[LocalProvider]:
    """The running provider, or a skip saying what is missing (a failure when REQUIRE_OIDC_PROVIDER=1)."""
    missing = _missing_prerequisite()
    if missing:
        if os.environ.get("REQUIRE_OIDC_PROVIDER"):
            pytest.fail(f"the local OpenID provider is required but {missing}")
        pytest.skip(f"{missing}: the OpenID Connect integration tests need it")
    env = {
        **os.environ,
        "OIDC_TEST_CLIENT_ID": CLIENT_ID,
        "OIDC_TEST_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_TEST_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_TEST_ACCOUNT": json.dumps(account or ACCOUNT),
    }
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            ["node", str(HERE / "provider.mjs")], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            ready, _, _ = select.select([process.stdout], [], [], 20)
            line = process.stdout.readline() if ready else ""
            if not line:
                stderr.seek(0)
                pytest.fail(f"the local OpenID provider did not start: {stderr.read()[-2000:]}")
            yield LocalProvider(process, json.loads(line)["issuer"])
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _missing_prerequisite() -> str:
    if shutil.which("node") is None:
        return "Node.js is not installed (apt-get install -y nodejs npm)"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing (npm ci --prefix tests/oidc, which make test runs)"
    return ""


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def dev_sign_in(authorize_url: str, *, stop_at: str, login: str = ACCOUNT["sub"]) -> str:
    """Goes through the provider's development login and consent pages like a browser would.

    Returns the URL the provider finally redirects to under `stop_at` (the portal's callback).
    """
    browser = requests.Session()
    url, method, data = authorize_url, "GET", None
    for _ in range(12):
        response = browser.request(method, url, data=data, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url, method, data = urljoin(url, response.headers["Location"]), "GET", None
            if url.startswith(stop_at):
                return url
            continue
        response.raise_for_status()
        action = _FORM_ACTION.search(response.text)
        assert action, f"no form on the provider's page: {response.text[:500]}"
        prompt = re.search(r'name="prompt" value="(\w+)"', response.text).group(1)
        url, method = urljoin(url, unescape(action.group(1))), "POST"
        data = (
            {"prompt": prompt, "login": login, "password": "any"} if prompt == "login" else {"prompt": prompt}
        )
    raise AssertionError("the provider never redirected back to the portal")
