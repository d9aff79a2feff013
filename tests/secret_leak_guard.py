"""The suite-wide guard: every log record of the whole run is kept and searched for every secret the run used.

Secrets are collected as they appear, not listed by hand: every API key put on the wire or sealed into the
database, every Fernet key, every session id, every password tried, plus the demo keys and SECRET_KEY.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading

import pytest

MIN_SECRET_LENGTH = 8


class SuiteLog(logging.Handler):
    """Keeps every record, formatted with its traceback, from every logger of the process: as plain text, and
    as LOG_FORMAT=json writes it (with the request's user and path), decoded."""

    def __init__(self) -> None:
        from fluence_portal.request_logging import JsonFormatter

        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.json_formatter = JsonFormatter()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
            self.lines.append(json_line_text(self.json_formatter.format(record)))
        except Exception:
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r}")


def json_line_text(line: str) -> str:
    """A JSON log line's values as text: JSON escapes a quote, a backslash or any non-ASCII character of a
    secret, which a search of the raw line would then miss."""
    return " ".join(str(value) for value in json.loads(line).values() if value is not None)


class SecretRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: set[str] = set()

    def add(self, value: object) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
            with self._lock:
                self.secrets.add(value.strip())


def _recording(registry: SecretRegistry, original, pick):
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        with contextlib.suppress(Exception):
            for value in pick(args, kwargs, result):
                registry.add(value)
        return result

    wrapper.__wrapped__ = original
    return wrapper


def _argument(position: int, name: str):
    def pick(args, kwargs, result):
        return [kwargs[name] if name in kwargs else args[position] if len(args) > position else None]

    return pick


@contextlib.contextmanager
def watching():
    """Capture all logging and record secrets as the suite uses them; yields (log, registry)."""
    from cryptography.fernet import Fernet
    from django.conf import settings
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.sessions.backends.base import SessionBase

    from vms import crypto
    from vms.fluence import client as fluence_client
    from vms.sandbox.demo_accounts import DEMO_ACCOUNTS

    registry = SecretRegistry()
    for value in [*DEMO_ACCOUNTS, settings.SECRET_KEY, *settings.FIELD_ENCRYPTION_KEYS]:
        registry.add(value)

    log = SuiteLog()
    root = logging.getLogger()
    previous_level = root.level
    # Nothing escapes: DEBUG records too, and loggers that do not propagate to the root.
    silent = [logging.getLogger(name) for name in ("django.server", "django.security", "py.warnings")]
    quieted = [(handler, handler.level) for handler in root.handlers]
    for handler, _ in quieted:
        if handler.level == logging.NOTSET:
            handler.setLevel(previous_level)  # the console keeps its level; only our handler sees DEBUG
    root.setLevel(logging.DEBUG)
    root.addHandler(log)
    for logger in silent:
        if not logger.propagate:
            logger.addHandler(log)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            fluence_client.KeyAuth,
            "__init__",
            _recording(registry, fluence_client.KeyAuth.__init__, _argument(1, "api_key")),
        )
        patch.setattr(crypto, "encrypt", _recording(registry, crypto.encrypt, _argument(0, "plaintext")))
        patch.setattr(Fernet, "__init__", _recording(registry, Fernet.__init__, _argument(1, "key")))
        patch.setattr(
            SessionBase,
            "_get_new_session_key",
            _recording(registry, SessionBase._get_new_session_key, lambda args, kwargs, result: [result]),
        )
        patch.setattr(
            ModelBackend,
            "authenticate",
            _recording(
                registry, ModelBackend.authenticate, lambda args, kwargs, result: [kwargs.get("password")]
            ),
        )
        try:
            yield log, registry
        finally:
            root.removeHandler(log)
            for logger in silent:
                logger.removeHandler(log)
            root.setLevel(previous_level)
            for handler, level in quieted:
                handler.setLevel(level)


def leaks(lines: list[str], secrets: set[str]) -> list[str]:
    """The log lines holding a secret, with every secret masked (the report must not leak either)."""
    found = []
    for line in lines:
        hits = [secret for secret in secrets if secret in line]
        if hits:
            for secret in sorted(hits, key=len, reverse=True):
                line = line.replace(secret, f"[secret …{secret[-4:]}]")
            found.append(line[:500])
    return found
