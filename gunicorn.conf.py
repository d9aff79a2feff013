"""gunicorn settings for Fluence Portal; `gunicorn` started in the repository root reads this file."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

wsgi_app = "fluence_portal.wsgi:application"

# WSGI folds X-Auth-Request-User and X_Auth_Request_User into one key, HTTP_X_AUTH_REQUEST_USER, so a
# client could slip an identity header past a proxy that only strips the hyphenated spelling. "drop"
# (gunicorn's default since 22, stated here so that nobody loosens it unknowingly) discards every header
# whose name has an underscore; "refuse" would answer 400 instead.
header_map = "drop"
# Headers listed here bypass header_map for trusted forwarders: never list the single sign-on headers.
forwarder_headers = "SCRIPT_NAME,PATH_INFO"

# Processes and threads (overridable on the command line). The portal spends most of a request waiting on
# Fluence, Redis and PostgreSQL, so threads (the gthread worker) carry the concurrency; a few processes use
# the cores. Every thread may hold one PostgreSQL connection: instances * workers * threads must stay
# below the server's max_connections.
workers = int(os.environ.get("GUNICORN_WORKERS") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
# PORT (as container platforms set it) binds every interface; without it gunicorn's 127.0.0.1:8000.
if os.environ.get("PORT"):
    bind = [f"0.0.0.0:{int(os.environ['PORT'])}"]

# Prometheus metrics (/-/metrics) add up every worker's counts: prometheus-client's multiprocess mode, where
# each worker writes its counts to files in one directory of this instance.
_METRICS_DIR_PREFIX = "fluence-portal-metrics-"


def on_starting(server):
    """Before any worker exists: the metrics directory of this instance, empty. Workers inherit the variable
    and read it when they import prometheus_client. A fresh directory unless PROMETHEUS_MULTIPROC_DIR names
    one (never one directory for two instances)."""
    if "prometheus_client" in sys.modules:
        # preload_app imported the app here already: each worker would count on its own, silently.
        raise RuntimeError("preload_app is not supported: the workers' metrics would not add up")
    named = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = Path(named or tempfile.mkdtemp(prefix=_METRICS_DIR_PREFIX))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # the counts of an earlier run are not this run's
        stale.unlink()


def child_exit(server, worker):
    """A worker ended: its live gauges go (its counters stay, so that totals never go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """The directory made above goes with the instance."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if directory.name.startswith(_METRICS_DIR_PREFIX) and directory.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(directory, ignore_errors=True)


# LOG_FORMAT=json: gunicorn's own lines (start, worker boot and exit, errors) are JSON objects too.
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "formatters": {"generic": {"()": "fluence_portal.request_logging.JsonFormatter"}},
    }
