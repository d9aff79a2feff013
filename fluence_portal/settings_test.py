"""Settings for the test suite: the real settings, with test-only defaults for what the environment omits."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault(
    "SECRET_KEY", "test-secret-key-for-the-suite-only-0123456789-abcdefghijklmnopqrstuvwxyz"
)
# A fixed test key (urlsafe base64 of 32 bytes); never used outside the suite.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWtleS1mb3ItdGhlLXN1aXRlLTAwMDE=")
os.environ.setdefault("FLUENCE_API_URLS", "https://api.fluence.dev,http://127.0.0.1:8099")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "0")

from fluence_portal.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
