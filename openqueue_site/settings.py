"""OpenQueue settings.

Every difference between deployments is an environment variable with a safe
default, read through the small helpers below, which refuse malformed values
instead of guessing. docs/operations.md documents each variable.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise ImproperlyConfigured(f"{name} must be a number of at least {minimum}, got {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_rate(name: str, default: tuple[float, int]) -> tuple[float, int]:
    """A rate limit written as ``RATE,BURST``: tokens per second and bucket size."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        rate_text, burst_text = raw.split(",")
        rate, burst = float(rate_text), int(burst_text)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be 'RATE,BURST' (tokens per second, bucket size), got {raw!r}"
        ) from None
    if rate <= 0 or burst < 1:
        raise ImproperlyConfigured(f"{name} needs a rate > 0 and a burst >= 1, got {raw!r}")
    return rate, burst


# --- Core Django ----------------------------------------------------------------

OPENQUEUE_ENV = env_str("OPENQUEUE_ENV", "dev")
if OPENQUEUE_ENV not in {"dev", "test", "prod"}:
    raise ImproperlyConfigured(f"OPENQUEUE_ENV must be dev, test or prod, got {OPENQUEUE_ENV!r}")
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if OPENQUEUE_ENV == "prod":
        raise ImproperlyConfigured("SECRET_KEY must be set when OPENQUEUE_ENV=prod.")
    # Outside production: random per process, so nothing guessable is ever a
    # default. `make run` writes one to var/secret_key so its workers agree.
    import secrets

    SECRET_KEY = "dev-" + secrets.token_urlsafe(48)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# --- Security headers and cookies (`manage.py check --deploy` is clean in prod) -----
if OPENQUEUE_ENV == "prod" and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when OPENQUEUE_ENV=prod.")
# Session and CSRF cookies only over HTTPS in production.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = OPENQUEUE_ENV == "prod"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"  # nothing here is meant to be framed
# HTTPS is usually terminated by a proxy, which then also redirects plain HTTP
# and may send HSTS itself: both are off unless asked for. Behind such a proxy,
# OPENQUEUE_PROXY_SSL_HEADER names its scheme header (e.g. X-Forwarded-Proto).
SECURE_SSL_REDIRECT = env_bool("OPENQUEUE_SSL_REDIRECT", False)
# Probes and scrapers talk plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
_proxy_ssl_header = env_str("OPENQUEUE_PROXY_SSL_HEADER").strip()
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# How many reverse proxies in front of the server append to X-Forwarded-For.
# 0: the client is the socket peer (REMOTE_ADDR). N: the N-th address from
# the right of X-Forwarded-For, the one the outermost trusted proxy saw
# (ratelimits/clients.py, client_address). Never more than the proxies you run:
# every address further left is whatever the client claimed.
OPENQUEUE_TRUSTED_PROXIES = env_int("OPENQUEUE_TRUSTED_PROXIES", 0, minimum=0)
SECURE_HSTS_SECONDS = env_int("OPENQUEUE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("OPENQUEUE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("OPENQUEUE_HSTS_PRELOAD", False)
# check --deploy warns about each of these when it is off. Off is a deliberate,
# documented default (docs/operations.md, "Production security settings"):
# HSTS cannot be taken back once browsers cache it, and redirection belongs to
# the TLS proxy. Only the switch that is actually off is silenced.
SILENCED_SYSTEM_CHECKS = [
    check
    for check, is_off in [
        ("security.W004", SECURE_HSTS_SECONDS == 0),
        ("security.W005", SECURE_HSTS_SECONDS > 0 and not SECURE_HSTS_INCLUDE_SUBDOMAINS),
        ("security.W021", SECURE_HSTS_SECONDS > 0 and not SECURE_HSTS_PRELOAD),
        ("security.W008", not SECURE_SSL_REDIRECT),
    ]
    if is_off
]

INSTALLED_APPS = [
    # Django's admin, with our site (openqueue_site/admin.py) as admin.site.
    "openqueue_site.apps.OpenQueueAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "accounts",
    "ratelimits",
    "queues",
    "schedules",
    "maintenance",
    "api",
    "console",
]

MIDDLEWARE = [
    "openqueue_site.middleware.RequestIdMiddleware",
    # Just inside the request id, so they see it and every final status (500s too).
    "openqueue_site.logging.RequestLogMiddleware",
    "openqueue_site.middleware.HttpMetricsMiddleware",
    # CORS before the size check, so a browser can read a 413 too.
    "openqueue_site.middleware.ApiCorsMiddleware",
    "openqueue_site.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, auth and messages serve the admin and the console; they step
    # aside on the bearer-token API's paths (openqueue_site/middleware.py).
    # CSRF stays everywhere: it is cheap, and check --deploy looks for it.
    "openqueue_site.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "openqueue_site.middleware.TrailingSlashRedirectMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "openqueue_site.middleware.AuthenticationMiddleware",
    "openqueue_site.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# django-prometheus's request middleware exports django_http_* series that
# repeat what openqueue_http_* (openqueue_site/middleware.py, by route) already
# say, for about an eighth of the CPU of a small API request
# (docs/benchmarks.md). Off unless asked for.
OPENQUEUE_DJANGO_HTTP_METRICS = env_bool("OPENQUEUE_DJANGO_HTTP_METRICS", False)
if OPENQUEUE_DJANGO_HTTP_METRICS:
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]

ROOT_URLCONF = "openqueue_site.urls"
WSGI_APPLICATION = "openqueue_site.wsgi.application"
ASGI_APPLICATION = "openqueue_site.asgi.application"

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

# The contract's routes have no trailing slash; /jobs/ is redirected by our
# own middleware (307, like the original), never by CommonMiddleware (301).
APPEND_SLASH = False

# --- Database -------------------------------------------------------------------

SQLITE_PATH = BASE_DIR / "var" / "openqueue.sqlite3"
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(SQLITE_PATH)}

if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, so two processes
    # leasing at once queue up on the busy timeout instead of failing with
    # "database is locked" when the read turns into a write. WAL lets readers
    # proceed while one writer works. (No mmap_size: SQLite < 3.51.3 has a
    # WAL-reset corruption bug with it.)
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("OPENQUEUE_SQLITE_TIMEOUT_SECONDS", 20, minimum=1),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not the shared-cache in-memory database: that one takes table
    # locks and ignores the busy timeout under concurrent tests.
    _name = Path(_db["NAME"])
    _db["TEST"] = {"NAME": str(_name.with_name(f"test-{_name.name}"))}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = 0  # the pool below owns connection lifetime
    _db.setdefault("OPTIONS", {})
    if env_bool("OPENQUEUE_DB_POOL", True):
        # Django's backend with one change: the pool pings a connection at
        # checkout only when it sat idle (openqueue_site/postgresql/base.py);
        # Django's CONN_HEALTH_CHECKS would ping on every request.
        _db["ENGINE"] = "openqueue_site.postgresql"
        _db["CONN_HEALTH_CHECKS"] = False
        _db["OPTIONS"]["pool"] = {
            "min_size": env_int("OPENQUEUE_DB_POOL_MIN_SIZE", 1, minimum=0),
            "max_size": env_int("OPENQUEUE_DB_POOL_MAX_SIZE", 10, minimum=1),
            "timeout": env_int("OPENQUEUE_DB_POOL_TIMEOUT_SECONDS", 10, minimum=1),
        }
    else:
        _db["CONN_HEALTH_CHECKS"] = True
    _timeout_ms = env_int("OPENQUEUE_DB_STATEMENT_TIMEOUT_MS", 0, minimum=0)
    if _timeout_ms:
        _db["OPTIONS"]["options"] = f"-c statement_timeout={_timeout_ms}"
# A pooled connection given back less than this long ago is handed out
# without a ping (openqueue_site/postgresql/base.py, openqueue_site/dbpool.py).
OPENQUEUE_DB_POOL_CHECK_IDLE_SECONDS = env_float(
    "OPENQUEUE_DB_POOL_CHECK_IDLE_SECONDS", 1.0, minimum=0
)

# The hot statements (enqueue, lease, ack, nack, heartbeat) as server-side
# prepared statements on PostgreSQL (queues/store/postgres.py, _hot_cursor):
# psycopg prepares a statement after it ran this many times on a connection.
# Only those statements bind on the server; every other query keeps Django's
# client-side binding, which never prepares.
OPENQUEUE_DB_PREPARED_STATEMENTS = env_bool("OPENQUEUE_DB_PREPARED_STATEMENTS", True)
if _db["ENGINE"] != "django.db.backends.sqlite3" and OPENQUEUE_DB_PREPARED_STATEMENTS:
    _db["OPTIONS"]["prepare_threshold"] = 5

DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The console's login (Django's auth views); the admin keeps its own at /admin/login/.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- I18N / time ----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# ISO-style dates with seconds and the zone ("2026-11-28 01:48:03 UTC") in the
# admin, instead of the en locale's "Nov. 28, 2026, 1:48 a.m.".
FORMAT_MODULE_PATH = ["openqueue_site.formats"]

# --- Static files -----------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Outside production, serve straight from the apps (no collectstatic needed);
# in production only the collected, compressed files in STATIC_ROOT (the image
# collects them at build time), so a missing collectstatic shows up as a 404.
WHITENOISE_USE_FINDERS = OPENQUEUE_ENV != "prod"

# --- REST framework ---------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON whatever Accept says, written by orjson (api/rendering.py).
    "DEFAULT_RENDERER_CLASSES": ["api.rendering.OrjsonRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.rendering.JsonOnlyNegotiation",
    # Views parse bodies themselves, before authentication (api/parsing.py);
    # the parser is declared so the OpenAPI schema lists application/json bodies.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.TokenBucketThrottle"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OpenQueue",
    "DESCRIPTION": "A multi-tenant job queue over HTTP. See docs/api.md.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # pydantic emits JSON Schema 2020-12 (anyOf with null), which is OpenAPI 3.1.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # The recursive schema the job payloads refer to (api/schemas.py).
        "api.schemas.openapi_postprocess",
    ],
}

CORS_ALLOWED_ORIGINS_RAW = env_list("OPENQUEUE_CORS_ORIGINS", "*")
if "*" in CORS_ALLOWED_ORIGINS_RAW:
    CORS_ALLOW_ALL_ORIGINS = True
else:
    CORS_ALLOWED_ORIGINS = CORS_ALLOWED_ORIGINS_RAW
# CORS serves browser clients of the bearer-token API only (the middleware,
# openqueue_site/middleware.py, answers on the API's paths and nowhere else)
# and never with credentials: the API needs no cookies, and the console's
# and admin's session cookies must never be usable from another origin.
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 600
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After"]
# Named, not "*": browsers never let "*" cover Authorization, so every
# bearer-token preflight would fail.
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-admin-secret",
    "x-request-id",
    "x-requested-with",
]

# --- OpenQueue ----------------------------------------------------------------------

OPENQUEUE_TOKEN_HMAC_SECRET = env_str("OPENQUEUE_TOKEN_HMAC_SECRET")
ADMIN_SECRET = env_str("ADMIN_SECRET")
# When set, GET /metrics needs `Authorization: Bearer <this>` (401 otherwise).
OPENQUEUE_METRICS_TOKEN = env_str("OPENQUEUE_METRICS_TOKEN")
# Without a token, may anyone scrape /metrics (every tenant's queue names)?
# Not in production unless the operator says so; elsewhere yes.
OPENQUEUE_METRICS_PUBLIC = env_bool("OPENQUEUE_METRICS_PUBLIC", OPENQUEUE_ENV != "prod")
# Queues with their own metric series; the rest are counted as "other".
OPENQUEUE_METRICS_MAX_QUEUES = env_int("OPENQUEUE_METRICS_MAX_QUEUES", 100, minimum=1)
# How long one reading of the database gauges serves every scrape.
OPENQUEUE_METRICS_GAUGE_SECONDS = env_int("OPENQUEUE_METRICS_GAUGE_SECONDS", 15, minimum=0)

OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES = env_int(
    "OPENQUEUE_MAX_ENQUEUE_PAYLOAD_BYTES", 256 * 1024, minimum=1
)
OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES = env_int(
    "OPENQUEUE_MAX_RESULT_PAYLOAD_BYTES", 256 * 1024, minimum=1
)
OPENQUEUE_MAX_ERROR_TEXT_BYTES = env_int("OPENQUEUE_MAX_ERROR_TEXT_BYTES", 8 * 1024, minimum=1)
OPENQUEUE_MAX_REQUEST_BYTES = env_int("OPENQUEUE_MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1)
# Bodies up to this size are parsed before authentication (malformed JSON is
# 422 even without a token, as the original); a bigger body is read only once
# the request is authenticated, so an anonymous client cannot make a worker
# build a big document (api/parsing.py). /admin/provision takes no bigger body.
OPENQUEUE_PREAUTH_BODY_BYTES = env_int("OPENQUEUE_PREAUTH_BODY_BYTES", 64 * 1024, minimum=1024)
OPENQUEUE_MAX_BATCH_SIZE = env_int("OPENQUEUE_MAX_BATCH_SIZE", 1000, minimum=1)
# Jobs one POST /queues/{queue}/lease/batch may lease (its max_jobs bound).
OPENQUEUE_MAX_LEASE_BATCH = env_int("OPENQUEUE_MAX_LEASE_BATCH", 100, minimum=1)
# Long-poll leases (wait_seconds) waiting at once in one server process. Each
# holds a gunicorn thread (never a database connection): the default leaves
# 16 of the process's threads (OPENQUEUE_THREADS, as gunicorn.conf.py reads
# it) for everything else. Above it a lease that finds nothing answers at once.
OPENQUEUE_LEASE_MAX_WAITERS = env_int(
    "OPENQUEUE_LEASE_MAX_WAITERS",
    max(env_int("OPENQUEUE_THREADS", 128, minimum=1) - 16, 1),
    minimum=0,
)
# ...of which one tenant may hold at most this many (default: half), so one
# tenant's hundreds of long-polls cannot take every slot from the others.
OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT = env_int(
    "OPENQUEUE_LEASE_MAX_WAITERS_PER_TENANT",
    max(OPENQUEUE_LEASE_MAX_WAITERS // 2, 1),
    minimum=0,
)
# Django's own limit stays as a backstop; RequestSizeLimitMiddleware checks
# Content-Length and api.parsing.read_body bounds chunked bodies, and
# both answer 413 with a JSON detail.
DATA_UPLOAD_MAX_MEMORY_SIZE = OPENQUEUE_MAX_REQUEST_BYTES

OPENQUEUE_RATE_LIMIT_ENABLED = env_bool("OPENQUEUE_RATE_LIMIT_ENABLED", True)
# Tokens per second and burst per (tenant, action), from the original server.
OPENQUEUE_RATE_LIMITS = {
    "enqueue": env_rate("OPENQUEUE_RATE_LIMIT_ENQUEUE", (5, 20)),
    "list_jobs": env_rate("OPENQUEUE_RATE_LIMIT_LIST_JOBS", (2, 10)),
    "queue_stats": env_rate("OPENQUEUE_RATE_LIMIT_QUEUE_STATS", (2, 10)),
    "lease": env_rate("OPENQUEUE_RATE_LIMIT_LEASE", (10, 30)),
    "ack": env_rate("OPENQUEUE_RATE_LIMIT_ACK", (20, 50)),
    "nack": env_rate("OPENQUEUE_RATE_LIMIT_NACK", (20, 50)),
    "heartbeat": env_rate("OPENQUEUE_RATE_LIMIT_HEARTBEAT", (20, 50)),
    # The routes beyond the original (contract A.4).
    "queues": env_rate("OPENQUEUE_RATE_LIMIT_QUEUES", (5, 20)),
    "queue_control": env_rate("OPENQUEUE_RATE_LIMIT_QUEUE_CONTROL", (2, 10)),
    "attempts": env_rate("OPENQUEUE_RATE_LIMIT_ATTEMPTS", (5, 20)),
    "schedules": env_rate("OPENQUEUE_RATE_LIMIT_SCHEDULES", (5, 20)),
    "schedule_control": env_rate("OPENQUEUE_RATE_LIMIT_SCHEDULE_CONTROL", (5, 30)),
}
# Failed bearer authentications (and every /admin/provision call) per client
# address: brute-force protection, checked before any token is hashed. Applies
# even when OPENQUEUE_RATE_LIMIT_ENABLED is off; this setting alone turns it off.
OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED = env_bool("OPENQUEUE_AUTH_FAILURE_LIMIT_ENABLED", True)
OPENQUEUE_AUTH_FAILURE_LIMIT = env_rate("OPENQUEUE_AUTH_FAILURE_LIMIT", (1, 20))
# Attempts kept per job (GET /jobs/{id}/attempts): the oldest are dropped
# first, the attempt numbers keep counting. At least 2 (queues/store/postgres.py).
OPENQUEUE_MAX_ATTEMPTS_KEPT = env_int("OPENQUEUE_MAX_ATTEMPTS_KEPT", 25, minimum=2)
# How long an Idempotency-Key keeps returning the job it created (24 h).
OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS = env_int(
    "OPENQUEUE_IDEMPOTENCY_WINDOW_SECONDS", 86400, minimum=1
)

# --- Maintenance (manage.py run_maintenance) -------------------------------------------
# Days a finished job is kept, per status (the original's defaults); 0 keeps
# jobs in that status forever. Dead jobs are the DLQ, so they are kept unless
# an operator decides otherwise.
OPENQUEUE_RETENTION_DAYS = {
    "completed": env_int("OPENQUEUE_RETENTION_COMPLETED_DAYS", 7, minimum=0),
    "cancelled": env_int("OPENQUEUE_RETENTION_CANCELLED_DAYS", 7, minimum=0),
    "dead": env_int("OPENQUEUE_RETENTION_DEAD_DAYS", 0, minimum=0),
}
OPENQUEUE_LEASE_REAP_GRACE_SECONDS = env_int("OPENQUEUE_LEASE_REAP_GRACE_SECONDS", 0, minimum=0)
# Rows per transaction: small enough that no batch holds its locks (or, on
# SQLite, the single write lock) for long; capped so a typo cannot undo that.
OPENQUEUE_MAINTENANCE_BATCH_SIZE = env_int("OPENQUEUE_MAINTENANCE_BATCH_SIZE", 2000, minimum=1)
if OPENQUEUE_MAINTENANCE_BATCH_SIZE > 50_000:
    raise ImproperlyConfigured("OPENQUEUE_MAINTENANCE_BATCH_SIZE must be at most 50000.")
OPENQUEUE_MAINTENANCE_INTERVAL_SECONDS = env_int(
    "OPENQUEUE_MAINTENANCE_INTERVAL_SECONDS", 30, minimum=1
)
# Between passes, run_maintenance --loop fires due schedules this often (one
# indexed query when none is due), so a schedule fires within about this
# many seconds of its time.
OPENQUEUE_SCHEDULE_CHECK_SECONDS = env_int("OPENQUEUE_SCHEDULE_CHECK_SECONDS", 1, minimum=1)
# Days the record of each fired occurrence is kept (the console lists them).
# 0 keeps them forever.
# The per-minute queue samples behind the dashboards' charts (queues/samples.py):
# a day's chart needs 24 hours of them.
OPENQUEUE_RETENTION_SAMPLES_HOURS = env_int("OPENQUEUE_RETENTION_SAMPLES_HOURS", 26, minimum=1)
OPENQUEUE_RETENTION_SCHEDULE_RUNS_DAYS = env_int(
    "OPENQUEUE_RETENTION_SCHEDULE_RUNS_DAYS", 7, minimum=0
)

# --- Logging --------------------------------------------------------------------------

OPENQUEUE_LOG_LEVEL = env_str("OPENQUEUE_LOG_LEVEL", "INFO").strip().upper() or "INFO"
if OPENQUEUE_LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"OPENQUEUE_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
        f"got {OPENQUEUE_LOG_LEVEL!r}"
    )
# One JSON object per line on stdout (openqueue_site/logging.py), for our
# events and for Django's own warnings, errors and tracebacks alike.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "openqueue_site.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stdout"], "level": OPENQUEUE_LOG_LEVEL},
    "loggers": {
        # Replace Django's default handlers (plain text to stderr when DEBUG,
        # mail_admins): its records propagate to the JSON handler instead.
        "django": {"handlers": [], "level": OPENQUEUE_LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": OPENQUEUE_LOG_LEVEL, "propagate": True},
        # Never below INFO: at DEBUG (with DEBUG=true) it logs every SQL
        # statement with its parameters, token hashes and payloads included.
        "django.db.backends": {
            "level": "INFO" if OPENQUEUE_LOG_LEVEL == "DEBUG" else OPENQUEUE_LOG_LEVEL
        },
        "openqueue": {"level": OPENQUEUE_LOG_LEVEL},
    },
}
# Python warnings (e.g. whitenoise's "No directory at: staticfiles/" on a fresh
# checkout) go through the same JSON handler instead of raw text on stderr.
logging.captureWarnings(True)
