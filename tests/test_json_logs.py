"""LOG_FORMAT=json: one JSON object per line, with the request's id, user, path, status and duration; the
suite's secret guard reads that form too, and no secret gets through it."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.urls import reverse

from fluence_portal.request_logging import JsonFormatter, RequestContext, _context
from tests import secret_leak_guard
from tests.factories import ALICE_KEY, OPS_KEY

BASE_DIR = Path(__file__).resolve().parent.parent
FIELDS = {"time", "level", "logger", "message", "request_id", "user", "path", "status", "duration_ms"}


class JsonLines(logging.Handler):
    """What a LOG_FORMAT=json console would print, one string per record."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))

    def entries(self) -> list[dict]:
        entries = []
        for line in self.lines:
            assert len(line.splitlines()) == 1, line
            entries.append(json.loads(line))
        return entries


@pytest.fixture
def json_lines():
    handler, root = JsonLines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _run_django(code: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "fluence_portal.settings_test", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the process's own output -------------------------------------------------------------------------------


def test_log_format_json_prints_one_json_object_per_line():
    result = _run_django(
        "import logging\n"
        "log = logging.getLogger('vms.example')\n"
        "log.warning('two\\nlines, ünïcode and a \\u2028 separator')\n"
        "try:\n"
        "    raise ValueError('boom')\n"
        "except ValueError:\n"
        "    log.exception('it failed')\n",
        LOG_FORMAT="json",
    )

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2, lines
    assert set(entries[0]) >= FIELDS
    assert entries[0]["message"] == "two\nlines, ünïcode and a \u2028 separator"
    assert entries[0]["level"] == "WARNING" and entries[0]["logger"] == "vms.example"
    assert entries[0]["request_id"] is None and entries[0]["user"] is None and entries[0]["path"] is None
    assert entries[0]["time"].endswith("+00:00")
    assert "ValueError: boom" in entries[1]["exception"]


def test_the_plain_format_stays_the_default():
    result = _run_django("import logging; logging.getLogger('vms.example').warning('plain line')")

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("WARNING vms.example [-] plain line")


def test_an_unknown_log_format_refuses_to_start():
    result = _run_django("", LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json" in result.stderr


# --- a request's lines --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_line_of_a_request_carries_its_id_user_and_path(alice_client, alice_key, api_key, json_lines):
    response = alice_client.get(reverse("vms:list"))

    request_id = response["X-Request-ID"]
    entries = json_lines.entries()
    upstream = [entry for entry in entries if entry["logger"] == "vms.fluence"]
    # Two keys: one fetched in the request's thread, the other on the pool, both under the request's id.
    assert len(upstream) == 2
    for entry in upstream:
        assert (entry["request_id"], entry["user"], entry["path"]) == (request_id, "alice", "/")
    (access,) = [entry for entry in entries if entry["logger"] == "fluence_portal.requests"]
    assert access["message"].startswith("GET / 200 in ")
    assert (access["request_id"], access["user"], access["path"], access["status"]) == (
        request_id,
        "alice",
        "/",
        200,
    )
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0


@pytest.mark.django_db
def test_an_anonymous_request_has_no_user(client, json_lines):
    response = client.get(reverse("login"))

    (access,) = [entry for entry in json_lines.entries() if entry["logger"] == "fluence_portal.requests"]
    assert access["request_id"] == response["X-Request-ID"]
    assert access["user"] is None and access["path"] == "/accounts/login/" and access["status"] == 200


@pytest.mark.django_db
def test_a_path_cannot_forge_a_log_line(client, json_lines, caplog):
    caplog.set_level(logging.INFO, logger="fluence_portal.requests")

    client.get("/%0A2030-01-01 00:00:00 WARNING fake line")

    (access,) = [entry for entry in json_lines.entries() if entry["logger"] == "fluence_portal.requests"]
    assert access["path"] == "/%0A2030-01-01%2000:00:00%20WARNING%20fake%20line"
    plain = [record.getMessage() for record in caplog.records if record.name == "fluence_portal.requests"]
    assert plain and all("\n" not in message for message in plain)


def test_log_requests_off_writes_no_request_line(client, settings, json_lines, db):
    settings.LOG_REQUESTS = False

    client.get(reverse("login"))

    assert not [entry for entry in json_lines.entries() if entry["logger"] == "fluence_portal.requests"]


def test_service_endpoints_write_no_request_line(client, json_lines, db):
    client.get("/-/healthz")
    client.get("/-/readyz")

    assert not [entry for entry in json_lines.entries() if entry["logger"] == "fluence_portal.requests"]


# --- secrets ------------------------------------------------------------------------------------------------

QUOTED_SECRET = 'sbx_key"with\\quote'
UNICODE_SECRET = "sbx_ключ_секрет_01"


def _record(message, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("vms.example", logging.WARNING, __file__, 1, message, args, exc_info)


def test_the_guard_finds_a_secret_in_any_field_of_a_json_line():
    try:
        raise RuntimeError(f"upstream echoed {OPS_KEY}")
    except RuntimeError:
        exc_info = sys.exc_info()
    request = RequestFactory().get(f"/keys/{ALICE_KEY}/")
    token = _context.set(RequestContext(request=request, path=request.path))
    try:
        formatter = JsonFormatter()
        lines = [
            formatter.format(_record("nothing secret here")),
            formatter.format(_record("key %s in the arguments", QUOTED_SECRET)),
            formatter.format(_record(f"key {UNICODE_SECRET} in the message")),
            formatter.format(_record("failed", exc_info=exc_info)),
        ]
    finally:
        _context.reset(token)

    # JSON escapes two of them: a search of the raw lines misses what a log system would show.
    assert QUOTED_SECRET not in lines[1] and UNICODE_SECRET not in lines[2]
    decoded = [secret_leak_guard.json_line_text(line) for line in lines]
    secrets = {QUOTED_SECRET, UNICODE_SECRET, OPS_KEY, ALICE_KEY}
    leaked = secret_leak_guard.leaks(decoded, secrets)
    assert len(leaked) == 4  # every line names the request's path, which here holds a key
    assert all(ALICE_KEY[-4:] in line for line in leaked)
    assert any(QUOTED_SECRET[-4:] in line for line in leaked)
    assert any(UNICODE_SECRET[-4:] in line for line in leaked)
    assert any(OPS_KEY[-4:] in line for line in leaked)
    assert not any(secret in line for line in leaked for secret in secrets)


@pytest.mark.django_db
def test_the_suite_guard_reads_the_json_form_of_every_record(no_secret_in_any_log, alice_client):
    log, _ = no_secret_in_any_log
    start = len(log.lines)

    response = alice_client.get(reverse("vms:keys"))

    request_id = response["X-Request-ID"]
    json_forms = [line for line in log.lines[start:] if "fluence_portal.requests" in line and "alice" in line]
    assert json_forms and all(request_id in line and "/keys/" in line for line in json_forms)
