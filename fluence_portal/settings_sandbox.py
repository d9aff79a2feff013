"""Settings for `manage.py runsandbox` alone: the fake Fluence API holds no secret and no data, so it needs
neither SECRET_KEY nor FIELD_ENCRYPTION_KEYS. manage.py picks this module only for that command (and its
help); the portal always runs on fluence_portal.settings and its checks."""

import secrets

DEBUG = False
# Nothing is signed with it: a fresh random value, so that no fixed key exists in the code.
SECRET_KEY = secrets.token_urlsafe(64)
ALLOWED_HOSTS: list[str] = []
# The command is found in the vms application; its models load, no database is opened.
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "vms"]
DATABASES: dict = {}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None
