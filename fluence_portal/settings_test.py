"""Settings for the test suite: the real settings, with test-only defaults for what the environment omits."""

import os
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault(
    "SECRET_KEY", "test-secret-key-for-the-suite-only-0123456789-abcdefghijklmnopqrstuvwxyz"
)
# A fixed test key (urlsafe base64 of 32 bytes); never used outside the suite.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWtleS1mb3ItdGhlLXN1aXRlLTAwMDE=")
os.environ.setdefault("FLUENCE_API_URLS", "https://api.fluence.dev,http://127.0.0.1:8099")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "0")

REDIS_DATABASES = 16  # Redis's default `databases`


def redis_url_of_worker(redis_url: str, worker: str) -> str:
    """The Redis database of one pytest-xdist worker: `gwN` uses db base + 1 + N of REDIS_URL, modulo 16.

    Every test empties the cache before and after it (tests/conftest.py), and with Redis the cache holds the
    sessions: two workers on one database would sign each other out at random. The xdist controller runs no
    test, so the base database is free and the 16 databases serve up to 16 workers without sharing.
    """
    number = int(worker.removeprefix("gw"))
    if number >= REDIS_DATABASES:
        raise ImproperlyConfigured(
            f"pytest-xdist worker {worker} has no Redis database of its own (there are {REDIS_DATABASES}): "
            f"run with at most {REDIS_DATABASES} workers (-n)"
        )
    parts = urlsplit(redis_url)
    query = parse_qs(parts.query)
    if "db" in query:  # unix:///run/redis.sock?db=3
        base = int(query["db"][0])
        query["db"] = [str((base + 1 + number) % REDIS_DATABASES)]
        return f"{redis_url.partition('?')[0]}?{urlencode(query, doseq=True)}"
    base = int(parts.path.strip("/") or 0)  # redis://host:6379/3
    return urlunsplit(parts._replace(path=f"/{(base + 1 + number) % REDIS_DATABASES}"))


# Rewritten in the environment, not only in CACHES: the app instances the scale-out test starts, and the
# Redis tests, read REDIS_URL too and must meet this worker's sessions there.
if os.environ.get("REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ["REDIS_URL"] = redis_url_of_worker(os.environ["REDIS_URL"], os.environ["PYTEST_XDIST_WORKER"])

from fluence_portal.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
