"""Django settings for Fluence Portal: every value comes from the environment."""

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}") from exc


def env_networks(name: str) -> list[str]:
    """Comma-separated networks (`10.0.0.0/8,192.168.1.7`), each checked now."""
    networks = env_list(name)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} holds {network!r}, which is not an IP network") from exc
    return networks


DEBUG = env_bool("DEBUG")

_INSECURE_SECRET_PREFIX = "django-insecure-"  # noqa: S105 (a prefix to refuse, not a secret)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a random string of "
            "at least 50 characters "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(64))')."
        )
    SECRET_KEY = _INSECURE_SECRET_PREFIX + "development-only-not-for-production"
elif not DEBUG and (
    len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith(_INSECURE_SECRET_PREFIX)
):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production (DEBUG is off). Set the SECRET_KEY environment "
        "variable to a random string of at least 50 characters with at least 5 distinct characters."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# API keys at rest: a dedicated list of Fernet keys, newest first. Never derived from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")

# Which Fluence API base URLs a stored key may point at (anything else would let a key make the
# server call arbitrary addresses).
FLUENCE_API_URLS = [url.rstrip("/") for url in env_list("FLUENCE_API_URLS", "https://api.fluence.dev")]
FLUENCE_CONNECT_TIMEOUT = env_float("FLUENCE_CONNECT_TIMEOUT", 3.05)
FLUENCE_READ_TIMEOUT = env_float("FLUENCE_READ_TIMEOUT", 10.0)
# No call (connect, headers and body) and no list of many pages outlives this, however slowly Fluence
# sends; nor is more than this read of one answer (32 MiB holds about 10,000 VMs several times over).
FLUENCE_TOTAL_TIMEOUT = env_float("FLUENCE_TOTAL_TIMEOUT", 15.0)
FLUENCE_MAX_RESPONSE_BYTES = int(env_float("FLUENCE_MAX_RESPONSE_BYTES", 32 * 1024 * 1024))
# A process adds no call to an API base URL while this many of its calls there have waited longer than
# FLUENCE_SLOW_CALL_SECONDS: one slow API cannot hold every thread (and so the sign-in page) hostage.
FLUENCE_SLOW_CALL_SECONDS = env_float("FLUENCE_SLOW_CALL_SECONDS", 2.0)
FLUENCE_SLOW_CALLS_PER_API = int(env_float("FLUENCE_SLOW_CALLS_PER_API", 4))
# How long a list answer from Fluence is reused before asking again (seconds).
FLUENCE_CACHE_SECONDS = env_float("FLUENCE_CACHE_SECONDS", 10.0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "vms",
    "fluence_portal.sso",
]

MIDDLEWARE = [
    "fluence_portal.middleware.RequestIdMiddleware",
    # /-/healthz, /-/readyz, /-/metrics: answered here, before HTTPS redirects, hosts, sessions and sign-in.
    "fluence_portal.service_endpoints.ServiceEndpointsMiddleware",
    "fluence_portal.request_logging.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "fluence_portal.middleware.HtmxLoginRedirectMiddleware",
]

ROOT_URLCONF = "fluence_portal.urls"
WSGI_APPLICATION = "fluence_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "fluence_portal.cache.RedisCache", "LOCATION": REDIS_URL}}
    SESSION_ENGINE = "fluence_portal.sessions"  # Django's cache sessions, read with a few entries along
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "vms:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The portal speaks English only: without the translation machinery every number and date a page shows is
# formatted without asking which language is active (Django's documented optimisation; about 0.15 ms of a
# list page).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` writes (and whitenoise serves from) when DEBUG is off.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Security headers. The policy allows no inline script or style anywhere.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", 8 * 3600))
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SESSION_COOKIE_SECURE:
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
if env_bool("TRUST_X_FORWARDED_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")

# --- Running as a service: probes, Prometheus metrics (/-/metrics), logs ---
LOG_FORMAT = (os.environ.get("LOG_FORMAT", "") or "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)  # one line per request: method, path, status, duration
# /-/metrics is off unless a bearer token or client networks (CIDR, behind TRUSTED_PROXY_HOPS) let scrapes in.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters (or unset: metrics off).")
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
METRICS_INCLUDE_ACCOUNTS = env_bool("METRICS_INCLUDE_ACCOUNTS")  # VMs and cost per day of every key

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "fluence_portal.middleware.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "fluence_portal.request_logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Live refresh of the VM pages: fast while any VM is changing state, slow when all are settled.
VM_POLL_FAST_SECONDS = int(env_float("VM_POLL_FAST_SECONDS", 5))
VM_POLL_SLOW_SECONDS = int(env_float("VM_POLL_SLOW_SECONDS", 30))
# A bulk deletion job not heard of for this long is taken as dead (its process stopped): its unfinished VMs
# read "outcome unknown". Longer than the slowest single DELETE (FLUENCE_TOTAL_TIMEOUT) can take.
DELETION_JOB_STALL_SECONDS = int(env_float("DELETION_JOB_STALL_SECONDS", 60))

# --- Resilience: Fluence failing or asking to slow down ---
# Consecutive upstream failures (5xx, timeouts, refused connections, garbage) that open the circuit of an
# API base URL, and how long it stays open before one trial call.
FLUENCE_CIRCUIT_FAILURES = int(env_float("FLUENCE_CIRCUIT_FAILURES", 5))
FLUENCE_CIRCUIT_SECONDS = int(env_float("FLUENCE_CIRCUIT_SECONDS", 30))
# After a 429: the cool-down when Fluence names no Retry-After, and the longest one honoured.
FLUENCE_DEFAULT_COOLDOWN_SECONDS = env_float("FLUENCE_DEFAULT_COOLDOWN_SECONDS", 30)
FLUENCE_MAX_COOLDOWN_SECONDS = env_float("FLUENCE_MAX_COOLDOWN_SECONDS", 900)


# --- Security: rate limits, client addresses, exception reports ---
def env_rate(name: str, default: str) -> tuple[int, int]:
    """A rate limit written "attempts/seconds", e.g. "10/300"."""
    raw = os.environ.get(name, "") or default
    count, _, seconds = raw.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        limit = (0, 0)
    if limit[0] < 1 or limit[1] < 1:
        raise ImproperlyConfigured(f"{name} must look like 10/300 (attempts per seconds), got {raw!r}")
    return limit


# Counted in the cache, so every app process shares them when REDIS_URL is set.
LOGIN_RATE_LIMIT = env_rate("LOGIN_RATE_LIMIT", "10/300")  # failed sign-ins per username and per address
KEY_ADD_RATE_LIMIT = env_rate("KEY_ADD_RATE_LIMIT", "10/600")  # keys tried per user and per address
# How many reverse proxies in front of the portal append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_HOPS = int(env_float("TRUSTED_PROXY_HOPS", 0))
# Rotating SECRET_KEY: the previous keys, still accepted for sessions and signatures until removed.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
# Exception reports (the admin e-mail, logged 500s, and the technical 500 page DEBUG shows) hide API keys
# and secret-named values. Unlike Django's own filter, this one stays on when DEBUG is on.
DEFAULT_EXCEPTION_REPORTER_FILTER = "fluence_portal.exception_filter.SecretHidingExceptionReporterFilter"


# --- Single sign-on ---
# Behind an authenticating proxy (SSO_PROXY_*), through OpenID Connect (OIDC_*), and/or the password form.
def env_group_map(name: str) -> dict[str, str]:
    """`idp-group=Django group,...`: the only Django groups single sign-on ever adds or removes."""
    mapping = {}
    for entry in env_list(name):
        idp_group, separator, django_group = entry.partition("=")
        if not separator or not idp_group.strip() or not django_group.strip():
            raise ImproperlyConfigured(f"{name} entries look like idp-group=Django group, got {entry!r}")
        mapping[idp_group.strip()] = django_group.strip()
    return mapping


def env_header(name: str, default: str = "") -> str:
    header = os.environ.get(name, "").strip() or default
    if header and not all(char.isascii() and (char.isalnum() or char == "-") for char in header):
        # An underscore would be folded with the hyphen into one WSGI key, or dropped by the server.
        raise ImproperlyConfigured(f"{name} must be a header name of letters, digits and hyphens: {header!r}")
    return header


LOCAL_LOGIN_ENABLED = env_bool("LOCAL_LOGIN_ENABLED", True)  # the password form (and the admin's)
SSO_CREATE_USERS = env_bool("SSO_CREATE_USERS", True)
SSO_GROUP_MAP = env_group_map("SSO_GROUP_MAP")

SSO_PROXY_ENABLED = env_bool("SSO_PROXY_ENABLED")
SSO_PROXY_USER_HEADER = env_header("SSO_PROXY_USER_HEADER", "X-Auth-Request-User")
SSO_PROXY_EMAIL_HEADER = env_header("SSO_PROXY_EMAIL_HEADER")
SSO_PROXY_GROUPS_HEADER = env_header("SSO_PROXY_GROUPS_HEADER")
SSO_PROXY_GROUPS_SEPARATOR = os.environ.get("SSO_PROXY_GROUPS_SEPARATOR", "") or ","
SSO_PROXY_SECRET_HEADER = env_header("SSO_PROXY_SECRET_HEADER")
SSO_PROXY_SECRET = os.environ.get("SSO_PROXY_SECRET", "")
if SSO_PROXY_SECRET_HEADER and len(SSO_PROXY_SECRET) < 16:
    raise ImproperlyConfigured(
        "SSO_PROXY_SECRET_HEADER is set: SSO_PROXY_SECRET must be at least 16 characters."
    )
# Without the secret, anyone who reaches the portal around the proxy could send the user header: proxy
# sign-in then refuses to start (check sso.E001) unless this says the network lets only the proxy in.
SSO_PROXY_TRUST_NETWORK = env_bool("SSO_PROXY_TRUST_NETWORK")

OIDC_ENABLED = env_bool("OIDC_ENABLED")
OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "") or "single sign-on"
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
# The issuer's discovery document supplies every endpoint not set explicitly.
OIDC_OP_ISSUER = os.environ.get("OIDC_OP_ISSUER", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "") or "openid email profile"
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "") or "groups"
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 5.0)  # seconds, for every call to the provider
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = int(env_float("OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS", 900))
OIDC_RP_SIGN_ALGO = "RS256"  # verified with the provider's JWKS
OIDC_USE_PKCE = True
OIDC_VERIFY_SSL = True
OIDC_DISCOVERY_CACHE_SECONDS = 3600
if OIDC_ENABLED:
    _oidc_endpoints = [
        OIDC_OP_AUTHORIZATION_ENDPOINT,
        OIDC_OP_TOKEN_ENDPOINT,
        OIDC_OP_USER_ENDPOINT,
        OIDC_OP_JWKS_ENDPOINT,
    ]
    if not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
        raise ImproperlyConfigured("OIDC_ENABLED needs OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET.")
    if not OIDC_OP_ISSUER and not all(_oidc_endpoints):
        raise ImproperlyConfigured(
            "OIDC_ENABLED needs OIDC_OP_ISSUER, or all four OIDC_OP_*_ENDPOINT settings."
        )

# Each backend and middleware is inert while its feature is off.
AUTHENTICATION_BACKENDS = [
    "fluence_portal.sso.backends.LocalPasswordBackend",
    "fluence_portal.sso.proxy.SsoProxyBackend",
    "fluence_portal.sso.oidc.SsoOidcBackend",
]
MIDDLEWARE = [
    *MIDDLEWARE,
    "fluence_portal.sso.proxy.SsoProxyMiddleware",
    "fluence_portal.sso.oidc.OidcSessionRefreshMiddleware",
]
