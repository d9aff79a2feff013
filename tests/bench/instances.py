"""Start real app instances (gunicorn subprocesses on loopback ports) for the scale-out test and benchmarks.

    env = instance_environment(database_url=..., redis_url=..., secret_key=..., field_encryption_keys=...,
                               fluence_api_urls=sandbox.url, static_root=tmp / "static")
    with start_instances(2, env=env) as urls:          # ["http://127.0.0.1:41234", "http://127.0.0.1:41235"]
        ...                                            # urls.logs() is every instance's stdout and stderr

Each instance is `python -m gunicorn -c gunicorn.conf.py fluence_portal.wsgi` bound to 127.0.0.1 on a port the
kernel picks (read back from gunicorn's "Listening at" line, so there is no race for a free port), with the
production settings module (`fluence_portal.settings`), never the test settings. Each runs in its own process
group; leaving the block stops exactly those groups (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")
# What a subprocess inherits from this process: nothing of the test settings, only what it needs to run.
SHARED_SERVICES_MISSING = "needs a shared PostgreSQL and Redis: set DATABASE_URL=postgres://… and REDIS_URL"


def shared_services_configured() -> bool:
    """Instances share one PostgreSQL and one Redis (the local-memory cache is per process by design)."""
    database_url = os.environ.get("DATABASE_URL", "")
    return database_url.startswith(("postgres://", "postgresql://")) and bool(os.environ.get("REDIS_URL"))


INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class InstanceError(RuntimeError):
    """An instance did not start or answer; the message ends with its output."""


def instance_environment(
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    field_encryption_keys: str,
    fluence_api_urls: str,
    static_root: str | os.PathLike,
    cache_seconds: float = 10,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a production-like instance on loopback (plain HTTP, so no secure cookies)."""
    if len(secret_key) < 50:
        raise ValueError("secret_key must be at least 50 characters (DEBUG is off in the instances)")
    return {
        "DJANGO_SETTINGS_MODULE": "fluence_portal.settings",
        "DEBUG": "0",
        "SECURE_COOKIES": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "FIELD_ENCRYPTION_KEYS": field_encryption_keys,
        "FLUENCE_API_URLS": fluence_api_urls,
        "FLUENCE_CACHE_SECONDS": str(cache_seconds),
        "STATIC_ROOT": str(static_root),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def _process_env(env: Mapping[str, str]) -> dict[str, str]:
    base = {name: os.environ[name] for name in INHERITED if name in os.environ}
    return {**base, **env}


def collectstatic(env: Mapping[str, str], *, timeout: float = 120) -> None:
    """`manage.py collectstatic` into env["STATIC_ROOT"] (whitenoise's manifest storage needs it with DEBUG
    off); skipped when that directory already holds a manifest."""
    static_root = Path(env["STATIC_ROOT"])
    if (static_root / "staticfiles.json").exists():
        return
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=_process_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise InstanceError(f"collectstatic failed ({result.returncode}):\n{result.stdout}{result.stderr}")


class Instance:
    """One gunicorn master (and its workers) in its own process group, its output in a file."""

    def __init__(self, env: Mapping[str, str], *, workers: int, threads: int, log_dir: Path, number: int):
        self.log_path = log_dir / f"instance-{number}.log"
        self._log = self.log_path.open("wb")
        self.url: str | None = None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--graceful-timeout",
                "5",
                "fluence_portal.wsgi",
            ],
            cwd=BASE_DIR,
            env=_process_env(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its workers, nothing else
        )

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_listening(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            match = LISTENING.search(self.output())
            if match:
                self.url = match.group(1)
                return self.url
            if self.process.poll() is not None:
                raise InstanceError(self._failure(f"exited with {self.process.returncode} before listening"))
            time.sleep(0.05)
        raise InstanceError(self._failure("did not start listening in time"))

    def wait_answering(self, deadline: float) -> None:
        """Until the sign-in page answers 200 (the app is imported and reaches the database)."""
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InstanceError(self._failure(f"exited with {self.process.returncode}"))
            try:
                response = requests.get(f"{self.url}/accounts/login/", timeout=(1, 5), allow_redirects=False)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise InstanceError(self._failure(f"did not answer in time (last: {last})"))

    def _failure(self, what: str) -> str:
        return f"instance {self.url or '(no port yet)'} {what}; its output:\n{self.output()[-8000:]}"

    def stop(self, grace: float = 10) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # the group this Popen created, by its id
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)
        # Workers left behind by a master that died first are still in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


class InstanceUrls(list):
    """The base URLs of the running instances (a list of str), with their output for failure reports."""

    def __init__(self, instances: list[Instance]):
        super().__init__(instance.url for instance in instances)
        self.instances = instances

    def logs(self) -> str:
        return "\n".join(f"===== {instance.url} =====\n{instance.output()}" for instance in self.instances)


@contextlib.contextmanager
def start_instances(
    count: int,
    *,
    env: Mapping[str, str],
    workers: int = 1,
    threads: int = 8,
    startup_timeout: float = 60,
    collect_static: bool = True,
    print_logs_on_error: bool = True,
) -> Iterator[InstanceUrls]:
    """Start `count` gunicorn instances with `env` (see instance_environment) and yield their base URLs once
    every one answers; stop them all on leaving, whatever happened. The migrations must already be applied
    to the database in env["DATABASE_URL"]."""
    if not 1 <= count <= 8:
        raise ValueError("count must be between 1 and 8")
    if collect_static:
        collectstatic(env)
    with tempfile.TemporaryDirectory(prefix="fluence-instances-") as log_dir:
        instances: list[Instance] = []
        try:
            for number in range(count):
                instances.append(
                    Instance(env, workers=workers, threads=threads, log_dir=Path(log_dir), number=number)
                )
            deadline = time.monotonic() + startup_timeout
            for instance in instances:
                instance.wait_listening(deadline)
            for instance in instances:
                instance.wait_answering(deadline)
            urls = InstanceUrls(instances)
            try:
                yield urls
            except BaseException:
                if print_logs_on_error:
                    print(urls.logs()[-20000:], file=sys.stderr)
                raise
        finally:
            for instance in instances:
                instance.stop()


def session_cookie_for(user) -> dict[str, str]:
    """A signed-in session written straight into the shared session store (Redis), as the instances would:
    fifty sign-ins through the form would each spend a production-strength password hash."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.cache import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "fluence_portal.sso.backends.LocalPasswordBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {settings.SESSION_COOKIE_NAME: session.session_key}


def database_url_of(connection) -> str:
    """A DATABASE_URL for the database this connection uses (e.g. the test database pytest-django made)."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
