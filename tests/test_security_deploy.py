"""`manage.py check --deploy --fail-level WARNING` passes with the production settings of the README."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
CHECK = (
    "import django; django.setup(); from django.core.management import call_command; "
    "call_command('check', deploy=True, fail_level='WARNING')"
)


def readme_production_environment(tmp_path) -> dict[str, str]:
    """The `KEY=value` lines of the README's Production block, each `<…>` placeholder given a real value."""
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("\n## Production\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    placeholders = {
        "SECRET_KEY": secrets.token_urlsafe(64),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy-check.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/15",  # the check never connects
    }
    environment = {}
    for line in block.strip().splitlines():
        name, _, value = line.partition("=")
        environment[name] = placeholders[name] if value.startswith("<") else value
    return environment


def run_check(environment: dict[str, str]) -> subprocess.CompletedProcess:
    # A fresh interpreter, so settings are read from this environment alone (none of the test settings).
    clean = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "fluence_portal.settings"}
    return subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=BASE_DIR,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_documented_production_settings_pass_the_deploy_check(tmp_path):
    environment = readme_production_environment(tmp_path)
    assert environment["DEBUG"] == "0" and environment["SECURE_SSL_REDIRECT"] == "1"

    result = run_check(environment)

    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dropped", "warning"),
    [
        ("SECURE_HSTS_SECONDS", "security.W004"),
        ("SECURE_SSL_REDIRECT", "security.W008"),
        ("SECURE_HSTS_PRELOAD", "security.W021"),
    ],
)
def test_the_check_fails_without_a_documented_setting(tmp_path, dropped, warning):
    environment = readme_production_environment(tmp_path)
    del environment[dropped]

    result = run_check(environment)

    assert result.returncode != 0
    assert warning in result.stderr


def test_insecure_cookies_are_caught(tmp_path):
    environment = {**readme_production_environment(tmp_path), "SECURE_COOKIES": "0"}

    result = run_check(environment)

    assert result.returncode != 0
    assert "security.W012" in result.stderr and "security.W016" in result.stderr
