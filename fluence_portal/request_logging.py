"""Logs for people who run the portal: one line per request (LOG_REQUESTS), and with LOG_FORMAT=json one
JSON object per line carrying the request's id, user, path, status and duration."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path
from django.utils.functional import LazyObject, empty

from fluence_portal.middleware import current_request_id

access_log = logging.getLogger("fluence_portal.requests")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request: HttpRequest
    path: str  # percent-encoded again: a decoded path could carry a line break into a plain log

    def username(self) -> str | None:
        """The signed-in person, once something in the request has looked them up (a log line never makes
        the session or the database be read)."""
        user = self.request.__dict__.get("user")
        if user is None or (isinstance(user, LazyObject) and user._wrapped is empty):
            return None
        return user.get_username() if user.is_authenticated else None


_context: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None
)


def current_request() -> RequestContext | None:
    return _context.get()


class RequestLogMiddleware:
    """Makes the request known to every log line written while it runs (threads it starts copy the context)
    and, with LOG_REQUESTS, logs one line when it ends: method, path, status, duration."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        context = RequestContext(request=request, path=escape_uri_path(request.path))
        token = _context.set(context)
        try:
            response = self.get_response(request)
            if settings.LOG_REQUESTS:
                duration_ms = round((time.monotonic() - started) * 1000, 1)
                access_log.info(
                    "%s %s %s in %.0f ms",
                    request.method,
                    context.path,
                    response.status_code,
                    duration_ms,
                    extra={"status": response.status_code, "duration_ms": duration_ms},
                )
            return response
        finally:
            _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (every character past ASCII escaped, line breaks included):
    time, level, logger, message, request_id, user, path, status, duration_ms, and exception when any."""

    def format(self, record: logging.LogRecord) -> str:
        context = current_request()
        request_id = getattr(record, "request_id", None) or current_request_id()
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
            "user": context.username() if context else None,
            "path": context.path if context else None,
            "status": getattr(record, "status", None) or getattr(record, "status_code", None),
            "duration_ms": getattr(record, "duration_ms", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)
