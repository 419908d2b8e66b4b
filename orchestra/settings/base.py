"""Settings shared by every environment, each read from the environment with a safe default.

With nothing set the platform runs embedded: SQLite in ``var/`` and one private Redis-compatible
server on a unix socket (started by ``manage.py runplatform``) that serves the cache, the channel
layer and the Celery broker. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import environ
from django.core.exceptions import ImproperlyConfigured

from apps.core import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("ORCHESTRA_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VERSION = "0.1.0"
# What /health calls this deployment: each settings module names itself; another module (a
# project's own ``orchestra.settings.staging``) is called by its own name.
ENVIRONMENT = os.environ.get("DJANGO_SETTINGS_MODULE", "").rpartition(".")[2] or "base"

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-in-production-0123456789")
# Django's debug pages show tracebacks and settings to anyone: only when asked for (DEBUG=1).
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    # The admin theme (its templates come before Django's); the site is ours (apps.dashboard).
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.filters",
    "apps.dashboard.admin_config.OrchestraAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "corsheaders",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.monitoring",
    "apps.providers",
    "apps.analytics",
    "apps.gateway",
    "apps.realtime",
    "apps.agents",
    "apps.approvals",
    "apps.builds",
    "apps.artifacts",
    "apps.experiments",
    "apps.backups",
    "apps.alerts",
    "apps.github",
    "apps.dashboard",
]

# Django's middleware as apps/core/async_middleware.py's subclasses: under ASGI, no thread hop
# per step (only for a step that may block: a session save, a messages store).
MIDDLEWARE = [
    "apps.core.async_middleware.PrometheusBeforeMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.DebugApiErrorMiddleware",  # used only with DEBUG
    "apps.core.middleware.DatabaseUnavailableMiddleware",  # before DEBUG's: a 503, not a 500
    "apps.accounts.middleware.ClientIpLimitMiddleware",  # /api/: before authentication
    "apps.core.async_middleware.SecurityMiddleware",
    "apps.core.async_middleware.SessionMiddleware",
    "apps.core.async_middleware.CommonMiddleware",
    "apps.core.async_middleware.CsrfViewMiddleware",
    "apps.core.async_middleware.AuthenticationMiddleware",
    "apps.core.async_middleware.MessageMiddleware",
    "apps.core.async_middleware.XFrameOptionsMiddleware",
    "apps.core.middleware.ContentSecurityPolicyMiddleware",
    "apps.core.async_middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into the lockout page
]
# Django's "not in MIDDLEWARE" warnings look for its own paths; the checks they gate run with
# the subclasses above (apps.core.async_middleware.security_checks).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "orchestra.urls"
ASGI_APPLICATION = "orchestra.asgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
_db["CONN_MAX_AGE"] = 0  # persistent connections leak under ASGI; PostgreSQL uses a pool instead.
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif _db["ENGINE"] == "django.db.backends.postgresql" and env.bool("DATABASE_POOL", default=True):
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=1),
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
    # The pool checks a connection (one round trip) before handing it out (Django passes
    # psycopg_pool's ``check_connection``): after a database restart the idle ones are dead,
    # and a request given one would fail (a 500) instead of getting a new connection.
    _db["CONN_HEALTH_CHECKS"] = True
    # Django's backend, failing fast for a moment once the pool found the database unavailable
    # (apps/core/postgresql): callers during an outage get their 503 at once, not after the
    # pool's timeout each.
    _db["ENGINE"] = "apps.core.postgresql"
# /health's own connection to the database: it waits at most this long to connect or for its
# query, so it says the database is down instead of hanging (or waiting for a busy pool).
HEALTH_DATABASE_TIMEOUT = env.float("HEALTH_DATABASE_TIMEOUT", default=2.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery broker ---------------------------------------------


EMBEDDED_REDIS = "REDIS_URL" not in os.environ
EMBEDDED_REDIS_SOCKET = embedded_redis.socket_path(
    VAR_DIR, env("EMBEDDED_REDIS_NAME", default="redis")
)
REDIS_URL = env("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}")


def _celery_broker_url(redis_url: str) -> str:
    """Celery's URL for the same Redis: kombu's socket transport names the database
    ``virtual_host`` (a ``db`` there is overwritten with 0)."""
    if redis_url.startswith("unix://"):
        path, _, query = redis_url.removeprefix("unix://").partition("?")
        params = [("virtual_host" if k == "db" else k, v) for k, v in parse_qsl(query)]
        return "redis+socket://" + path + (f"?{urlencode(params)}" if params else "")
    return redis_url


# The size of each Redis connection pool: the cache's and the shared routing client's (per
# process; through the URL, which apps.core.redis reads too) and the channel layer's (per event
# loop). Unset: redis-py's own default (100). A pool that is full refuses further connections.
REDIS_MAX_CONNECTIONS: int | None = env.int("REDIS_MAX_CONNECTIONS", default=None)


def _sized(url: str) -> str:
    if REDIS_MAX_CONNECTIONS is None or "max_connections=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}max_connections={REDIS_MAX_CONNECTIONS}"


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _sized(env("CACHE_URL", default=REDIS_URL)),
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="orchestra"),
        "TIMEOUT": 300,
        "OPTIONS": {
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            # redis-py's pool, tracked for GET /api/v1/connection-stats
            "pool_class": "apps.core.pools.TrackedConnectionPool",
        },
    }
}

CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {
        # channels-redis's, with one reader per process for the /ws/ connections' channels.
        "BACKEND": "apps.realtime.layer.RealtimeChannelLayer",
        "CONFIG": {
            # redis-py's default socket timeout (5 s) equals channels-redis's blocking pop
            # timeout: an idle connection's receive would race it and fail.
            "hosts": [
                {
                    "address": _sized(env("CHANNEL_LAYER_URL", default=REDIS_URL)),
                    "socket_timeout": 30,
                }
            ],
            "prefix": env("CHANNEL_LAYER_PREFIX", default="orchestra"),
            "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
            "expiry": 60,
        },
    }
}

# Each channel's events are kept in a Redis stream so a client that comes back gets what it missed
# (apps/core/events.py): at most this many per channel, none older than this.
EVENTS_KEPT_PER_CHANNEL = env.int("EVENTS_KEPT_PER_CHANNEL", default=10_000)
EVENTS_KEPT_SECONDS = env.int("EVENTS_KEPT_SECONDS", default=3600)

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=_celery_broker_url(REDIS_URL))
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Builds, agent tasks and artifacts ---------------------------------------------------------
# A build step or agent task may run this long (seconds) before its worker stops it.
BUILD_STEP_TIME_LIMIT = env.int("BUILD_STEP_TIME_LIMIT", default=900)
# A running step or task whose worker has not reported for this long lost its worker: the
# sweep (every BUILD_SWEEP_INTERVAL seconds) fails it, and its build.
BUILD_STEP_STALE_SECONDS = env.float("BUILD_STEP_STALE_SECONDS", default=120.0)
BUILD_SWEEP_INTERVAL = env.float("BUILD_SWEEP_INTERVAL", default=30.0)
# A build step's prompt, rendered, may be this large (UTF-8 bytes); see apps/builds/prompts.py.
PROMPT_MAX_BYTES = env.int("PROMPT_MAX_BYTES", default=4 * 1024 * 1024)
# The Celery queue build steps go to (a deployment may give builds workers of their own).
BUILD_TASK_QUEUE = env("BUILD_TASK_QUEUE", default="celery")
# An approval request that says nothing expires after this long (the approval policy's default
# expiry, editable at runtime, overrides it); a build step waiting on it then fails.
APPROVAL_TIMEOUT_SECONDS = env.int("APPROVAL_TIMEOUT_SECONDS", default=86400)
# Artifacts are stored through Django's storage API: local files under MEDIA_ROOT by default.
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"

# --- GitHub (apps/github) --------------------------------------------------------------------
# The connection is a runtime setting (the dashboard, /api/v1/github/settings); these variables
# bootstrap it (manage.py bootstrap_github, each value once, as bootstrap_providers does).
# GITHUB_API_URL is also the API root used while the setting is blank (GitHub Enterprise:
# https://github.example.com/api/v3), named as GitHub's own runners name it.
GITHUB_ENABLED = env("GITHUB_ENABLED", default="")
GITHUB_TOKEN = env("GITHUB_TOKEN", default="")
GITHUB_OWNER = env("GITHUB_OWNER", default="")
GITHUB_REPO = env("GITHUB_REPO", default="")
GITHUB_API_URL = env("GITHUB_API_URL", default="https://api.github.com")
# Seconds a call to GitHub may take; a secondary rate limit asking for a wait up to
# GITHUB_RETRY_MAX_WAIT seconds is waited out once, a longer one answered as a 429.
GITHUB_TIMEOUT = env.float("GITHUB_TIMEOUT", default=15.0)
GITHUB_RETRY_MAX_WAIT = env.float("GITHUB_RETRY_MAX_WAIT", default=10.0)
# Beat refreshes the state (open, merged, closed) of the open pull requests builds opened this
# often (seconds).
GITHUB_PULL_REFRESH_INTERVAL = env.float("GITHUB_PULL_REFRESH_INTERVAL", default=300.0)
# The platform's address as people reach it: links to it from elsewhere (a pull request's body
# links back to its build's page) start with it.
PLATFORM_URL = env("PLATFORM_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Backups (apps/backups) ------------------------------------------------------------------
# Archives are kept through the storage named "backups": a local folder by default, any backend
# Django's storage API has (django-storages' S3Storage for an S3-compatible store) when
# BACKUP_STORAGE_BACKEND names one, with BACKUP_STORAGE_OPTIONS (JSON) as its options.
BACKUP_DIR = env("BACKUP_DIR", default=str(VAR_DIR / "backups"))
BACKUP_STORAGE_BACKEND = env(
    "BACKUP_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
)
BACKUP_STORAGE_OPTIONS: dict[str, Any] = env.json(
    "BACKUP_STORAGE_OPTIONS",
    default={"location": BACKUP_DIR}
    if BACKUP_STORAGE_BACKEND.endswith("FileSystemStorage")
    else {},
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "backups": {"BACKEND": BACKUP_STORAGE_BACKEND, "OPTIONS": BACKUP_STORAGE_OPTIONS},
}
# A key (32 random bytes, URL-safe base64: what Fernet.generate_key() prints) encrypts every
# archive with AES-256-GCM; without it archives are not encrypted. Restoring needs the same key.
BACKUP_ENCRYPTION_KEY = env("BACKUP_ENCRYPTION_KEY", default="")
# Retention, applied after each successful backup: at most BACKUP_KEEP_LAST archives, none
# older than BACKUP_KEEP_DAYS (0: no such limit); the newest successful one is always kept.
BACKUP_KEEP_LAST = env.int("BACKUP_KEEP_LAST", default=14)
BACKUP_KEEP_DAYS = env.float("BACKUP_KEEP_DAYS", default=30.0)
# Home and /health call the backups stale when the last successful one is older than this.
BACKUP_MAX_AGE_HOURS = env.float("BACKUP_MAX_AGE_HOURS", default=26.0)
# --- Health checks, alerts and notifications (apps/monitoring, apps/alerts) -------------------
# Beat runs every health check this often (seconds, in its own process: a stopped worker or
# broker cannot stop it), stores each check's state changes and raises or resolves alerts.
HEALTH_RUN_INTERVAL = env.float("HEALTH_RUN_INTERVAL", default=60.0)
# The host checks: degraded below this much free disk in the var and media folders, above this
# much memory in use, above this CPU use (percent of every core, since the previous run).
HEALTH_DISK_FREE_MIN_PERCENT = env.float("HEALTH_DISK_FREE_MIN_PERCENT", default=10.0)
HEALTH_MEMORY_MAX_PERCENT = env.float("HEALTH_MEMORY_MAX_PERCENT", default=90.0)
HEALTH_CPU_MAX_PERCENT = env.float("HEALTH_CPU_MAX_PERCENT", default=90.0)
# Thresholds the health run judges too, per provider over the last ALERT_WINDOW_MINUTES:
# an error rate above ALERT_ERROR_RATE (with at least ALERT_MIN_CALLS finished calls), a p95
# latency above ALERT_P95_LATENCY_MS; and a circuit open longer than ALERT_CIRCUIT_OPEN_MINUTES.
ALERT_WINDOW_MINUTES = env.float("ALERT_WINDOW_MINUTES", default=5.0)
ALERT_MIN_CALLS = env.int("ALERT_MIN_CALLS", default=20)
ALERT_ERROR_RATE = env.float("ALERT_ERROR_RATE", default=0.25)
ALERT_P95_LATENCY_MS = env.float("ALERT_P95_LATENCY_MS", default=30_000.0)
ALERT_CIRCUIT_OPEN_MINUTES = env.float("ALERT_CIRCUIT_OPEN_MINUTES", default=5.0)
# Resolved alerts and health check changes are deleted after this many days.
ALERT_RETENTION_DAYS = env.int("ALERT_RETENTION_DAYS", default=30)
# A notification channel sends at most this many notifications per minute (the rest are logged
# as skipped); a failed send is tried again this many times, with growing waits, on Celery.
NOTIFICATION_RATE_PER_MINUTE = env.int("NOTIFICATION_RATE_PER_MINUTE", default=10)
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=4)
NOTIFICATION_TIMEOUT_SECONDS = env.float("NOTIFICATION_TIMEOUT_SECONDS", default=10.0)

# django-celery-beat's scheduler, leaving a heartbeat at each tick (apps/core/beat.py): /health
# and the feature status report beat down once its heartbeat is older than this (seconds).
CELERY_BEAT_SCHEDULER = "apps.core.beat:HeartbeatScheduler"
BEAT_HEARTBEAT_MAX_AGE = env.float("BEAT_HEARTBEAT_MAX_AGE", default=30.0)
# Tasks of the schedule beat runs itself, in a thread, instead of sending them to a worker: the
# health run must tell of a stopped worker or broker, so it cannot wait for them.
BEAT_IN_PROCESS_TASKS = ["monitoring.health_run"]
# How often budgets' spend counters are reconciled with the call records (seconds).
BUDGET_RECONCILE_INTERVAL = env.float("BUDGET_RECONCILE_INTERVAL", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "probe-providers": {
        "task": "providers.probe_all",
        "schedule": env.float("PROVIDER_PROBE_INTERVAL", default=60.0),
    },
    "store-call-records": {"task": "providers.store_call_records", "schedule": 5.0},
    "sweep-call-records": {"task": "providers.sweep_call_records", "schedule": 60.0},
    # Call records past CALL_RECORD_RETENTION_DAYS, an hour's worth at a time.
    "prune-call-records": {"task": "providers.prune_call_records", "schedule": 3600.0},
    # Analytics: the closed hours whose call records changed, rolled up again.
    "roll-analytics-hours": {"task": "analytics.roll_hours", "schedule": 60.0},
    "sweep-builds": {"task": "builds.sweep", "schedule": BUILD_SWEEP_INTERVAL},
    "sweep-agent-tasks": {"task": "agents.sweep", "schedule": BUILD_SWEEP_INTERVAL},
    "expire-approvals": {"task": "approvals.expire_overdue", "schedule": 30.0},
    # Canary rollouts: next step, completion or rollback of each running one.
    "advance-canaries": {
        "task": "experiments.advance_canaries",
        "schedule": env.float("CANARY_ADVANCE_INTERVAL", default=30.0),
    },
    "escalate-approvals": {"task": "approvals.escalate_overdue", "schedule": 60.0},
    # The state of the pull requests builds opened (open, merged, closed).
    "refresh-github-pulls": {
        "task": "github.refresh_build_pulls",
        "schedule": GITHUB_PULL_REFRESH_INTERVAL,
    },
    # Budgets' spend counters (Redis) put right from the call records.
    "reconcile-budgets": {
        "task": "providers.reconcile_budgets",
        "schedule": BUDGET_RECONCILE_INTERVAL,
    },
    # Every health check, its state changes stored, alerts raised and resolved (run by beat in
    # its own process: BEAT_IN_PROCESS_TASKS).
    "run-health-checks": {"task": "monitoring.health_run", "schedule": HEALTH_RUN_INTERVAL},
    # Home's live figures (requests, tokens, cost, latency, health) on the ``metrics`` channel.
    "publish-dashboard-figures": {
        "task": "dashboard.publish_figures",
        "schedule": env.float("DASHBOARD_FIGURES_INTERVAL", default=5.0),
    },
}
# Processes that ship LLM call records to Redis ask a worker to store them at once (at most
# once a second); without it they wait for the beat schedule above.
CALL_RECORDS_STORE_ON_SHIP = env.bool("CALL_RECORDS_STORE_ON_SHIP", default=True)
# A stream still recorded as running after this long lost its process: the sweep fails it.
CALL_RECORD_STALE_SECONDS = env.float("CALL_RECORD_STALE_SECONDS", default=900.0)
# Call records (calls, their attempts, refused records) are deleted this many days after they
# were made, by beat every hour in batches of 5,000 calls; 0 keeps them forever.
CALL_RECORD_RETENTION_DAYS = env.int("CALL_RECORD_RETENTION_DAYS", default=90)
# Batches a worker took to store and still holds after this long (it was killed) go back to the
# queue; a living worker's batch stored twice changes nothing, so this only bounds the delay.
CALL_RECORDS_CLAIM_SECONDS = env.int("CALL_RECORDS_CLAIM_SECONDS", default=60)
# /health is degraded while the oldest batch of call records has waited longer than this.
CALL_RECORDS_BACKLOG_MAX_SECONDS = env.float("CALL_RECORDS_BACKLOG_MAX_SECONDS", default=60.0)
CELERY_TIMEZONE = "UTC"

# --- Connection pools (GET /api/v1/connection-stats shows them) ------------------------------
# Per provider and event loop, for both HTTP clients (the /v1 pass-through and the openai SDK):
# at most HTTP_MAX_CONNECTIONS connections, of which HTTP_MAX_KEEPALIVE are kept open idle.
HTTP_MAX_CONNECTIONS = env.int("HTTP_MAX_CONNECTIONS", default=1024)
HTTP_MAX_KEEPALIVE = env.int("HTTP_MAX_KEEPALIVE", default=HTTP_MAX_CONNECTIONS)
# Every web process, Celery worker and beat publishes its pool figures (and process gauges)
# this often; a process silent for three periods is left out of connection-stats.
PROCESS_STATS_SECONDS = env.float("PROCESS_STATS_SECONDS", default=5.0)
# Each web process's event loop (and a Celery worker's) is checked for lag this often
# (ai_orchestra_event_loop_lag_seconds, apps/core/loop_lag.py); 0: never.
EVENT_LOOP_LAG_SECONDS = env.float("EVENT_LOOP_LAG_SECONDS", default=0.25)

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
# A login with no ``next`` (/admin/login/ opened directly) lands on the dashboard's Home, not
# Django's default /accounts/profile/, which does not exist here.
LOGIN_REDIRECT_URL = "admin:index"
# Login throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords in a row for one username
# from one address lock that pair out for AXES_COOLOFF_MINUTES; admins see and clear lockouts
# in the admin (Accounts > Login lockouts). The address is the platform's one client address
# (TRUSTED_PROXIES). API keys never go through a password login, so they are not affected.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.accounts.middleware.login_client"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_ENABLE_ADMIN = False  # registered by apps/accounts/admin.py, in the dashboard's look
AXES_VERBOSE = False  # its start-up banner; lockouts are still logged as warnings
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)
# While the database does not answer, a key this process checked within this many seconds keeps
# working (/v1, the SSE API): a revoked key stops within this bound at most, even in an outage.
API_KEY_OUTAGE_SECONDS = env.float("API_KEY_OUTAGE_SECONDS", default=300.0)
# Fernet keys for provider API keys at rest, newest first; empty: derived from SECRET_KEY.
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])

# --- Inbound rate limits (apps/accounts/limits.py) ------------------------------------------
# Per API key: rpm_limit/tpm_limit on the key. Per client IP, on /v1, the REST and SSE APIs
# and WebSocket queries: RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS. A web app's usual 100 per
# 15 minutes suits a web page; a team's services call a gateway many times a minute from one
# address (or one NAT), so the default is 6,000 a minute (100/s on average): far above what
# they send, yet it keeps one runaway client or key-guessing scanner to a twentieth of what a
# 2-core instance serves (bench/).
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)
RATE_LIMIT_WINDOW_MS = env.int("RATE_LIMIT_WINDOW_MS", default=60_000)
RATE_LIMIT_MAX = env.int("RATE_LIMIT_MAX", default=6_000)
# Proxies (addresses or networks) whose X-Forwarded-For is believed; empty: the peer is the
# client. Behind nginx, list nginx's address, or every client counts as nginx.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
if RATE_LIMIT_WINDOW_MS < 1000 or RATE_LIMIT_MAX < 1:
    raise ImproperlyConfigured("RATE_LIMIT_WINDOW_MS must be >= 1000 and RATE_LIMIT_MAX >= 1.")
# /metrics answers scrapers from these networks (the client as above) or with this bearer
# token; anyone else gets 403. The bundled nginx does not proxy it at all.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env("METRICS_TOKEN", default="")
for _setting, _networks in (
    ("TRUSTED_PROXIES", TRUSTED_PROXIES),
    ("METRICS_ALLOWED_NETWORKS", METRICS_ALLOWED_NETWORKS),
):
    for _network in _networks:
        try:
            ipaddress.ip_network(_network.strip(), strict=False)
        except ValueError as _error:
            raise ImproperlyConfigured(f"{_setting}: {_error}") from None
METRICS_ALLOWED_NETWORKS = [
    str(ipaddress.ip_network(n.strip(), strict=False))
    for n in METRICS_ALLOWED_NETWORKS
    if n.strip()
]

# --- Internationalisation, static files ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Off in production, where nginx serves the collected files; on in the development settings
# (``make run``), DEBUG or not.
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)

# --- The dashboard: the admin site, themed by django-unfold ----------------------------------
FAVICON = "dashboard/favicon.svg"  # linked from every page; /favicon.ico redirects to it
# Its pages and sidebar come from the apps' registrations (apps/core/registry.py); see
# apps/dashboard. Styles use unfold's compiled CSS plus our own small file.
UNFOLD: dict[str, Any] = {
    "SITE_TITLE": "AI Orchestra",
    "SITE_HEADER": "AI Orchestra",
    "SITE_SUBHEADER": "Site administration",
    "SITE_SYMBOL": "hub",
    "SITE_FAVICONS": [
        {"rel": "icon", "type": "image/svg+xml", "href": lambda request: _static(FAVICON)},
    ],
    "SITE_URL": None,  # the dashboard is the site: no "View site" link
    "SHOW_VIEW_ON_SITE": False,
    "LOGIN": {"form": "apps.dashboard.forms.LoginForm"},
    "STYLES": [lambda request: _static("dashboard/dashboard.css")],
    "SCRIPTS": [lambda request: _static("dashboard/a11y.js")],
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": "apps.dashboard.navigation.sidebar",
    },
}


def _static(path: str) -> str:
    from django.templatetags.static import static

    return static(path)


# --- Browser security headers ------------------------------------------------------------------
# Content-Security-Policy of every page, in Django 6.0's shape (apps/core/middleware.py). Nothing
# loads from another origin and no page runs an inline script. unfold's Alpine.js is its
# standard build, which evaluates x-data/x-on expressions with `new Function` ('unsafe-eval');
# unfold and Alpine write inline styles. 'self' covers the page's own WebSocket (ws:/wss: to the
# same host and port). SecurityMiddleware's defaults add X-Content-Type-Options: nosniff,
# Referrer-Policy: same-origin and Cross-Origin-Opener-Policy: same-origin; clickjacking's
# X-Frame-Options: DENY matches frame-ancestors 'none'.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'unsafe-eval'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"


# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.permissions.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser let RecursionError (deeply nested bodies) escape as a 500.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.json.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ]

SPECTACULAR_SETTINGS = {
    "TITLE": "AI Orchestra API",
    "DESCRIPTION": "LLM orchestration: providers, routing, builds, approvals, experiments.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets of fields sharing a name (``kind``, ``status``) keep stable names of their own.
    "ENUM_NAME_OVERRIDES": {
        "KindEnum": "apps.providers.models.ProviderKind",
        "ArtifactKindEnum": "apps.artifacts.models.ArtifactKind",
        "CallStatusEnum": "apps.providers.models.CallStatus",
        "RunStatusEnum": "apps.agents.models.RunStatus",
        "BuildStatusEnum": "apps.builds.models.BuildStatus",
        "ApprovalStatusEnum": "apps.approvals.models.ApprovalStatus",
        "ExperimentStatusEnum": "apps.experiments.models.ExperimentStatus",
        "CanaryStatusEnum": "apps.experiments.models.CanaryStatus",
        "DeciderRoleEnum": "apps.approvals.models.DeciderRole",
        "RiskLevelEnum": "apps.approvals.models.RiskLevel",
        "BackupStatusEnum": "apps.backups.models.BackupStatus",
        "BackupTriggerEnum": "apps.backups.models.BackupTrigger",
        "LogLevelEnum": "apps.core.models.LogLevel",
        "EventEnum": "apps.approvals.models.AuditEvent",
        "AlertSeverityEnum": "apps.alerts.models.Severity",
        "AlertStatusEnum": "apps.alerts.models.AlertStatus",
        "NotificationEventEnum": "apps.alerts.models.NotificationEvent",
        "DeliveryStatusEnum": "apps.alerts.models.DeliveryStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.gateway.schema.add_openai_and_streaming",
    ],
}

# --- Observability --------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
# The dashboard's Logs page: records at or above this level are published live (the ``logs``
# channel) and the latest LOG_LIVE_KEPT are kept in Redis for its history.
LOG_LIVE_LEVEL = env("LOG_LIVE_LEVEL", default="WARNING").upper()
LOG_LIVE_KEPT = env.int("LOG_LIVE_KEPT", default=500)
LOGGING: dict[str, Any] = {  # typed: the other settings modules adjust it
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "apps.core.logging.JsonFormatter"},
        "text": {
            "()": "apps.core.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        },
        "live": {"()": "apps.core.logging.LiveLogHandler", "level": LOG_LIVE_LEVEL},
    },
    "root": {"handlers": ["console", "live"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": [], "level": LOG_LEVEL},  # drop Django's own DEBUG console handler
        "django.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # Apprise (alert notifications) logs the URLs it posts to, tokens in their paths: it
        # stays out of the logs; a failed send's reason is kept, redacted, on its delivery.
        "apprise": {"handlers": [], "propagate": False},
    },
}

# With LOG_DIR, every process also writes combined.log (every line) and error.log (ERROR and
# above) there, as JSON lines, renamed with their date at midnight UTC; LOG_FILE_DAYS are kept.
LOG_DIR = env("LOG_DIR", default="")
LOG_FILE_DAYS = env.int("LOG_FILE_DAYS", default=30)
if LOG_DIR:
    for _name, _file, _level in (
        ("file", "combined.log", "NOTSET"),
        ("error_file", "error.log", "ERROR"),
    ):
        LOGGING["handlers"][_name] = {
            "()": "apps.core.logging.DailyLogFile",
            "filename": os.path.join(LOG_DIR, _file),
            "days": LOG_FILE_DAYS,
            "level": _level,
            "filters": ["request_id"],
            "formatter": "json",
        }
        LOGGING["root"]["handlers"].append(_name)

PROMETHEUS_EXPORT_MIGRATIONS = False
# Tracing (apps/core/tracing.py) is on when OTEL_EXPORTER_OTLP_ENDPOINT is set; the standard
# OTEL_* variables configure it. A call's admin page links to its trace through this template,
# e.g. https://jaeger.example.com/trace/{trace_id}.
TRACE_VIEWER_URL = env("TRACE_VIEWER_URL", default="")

SESSION_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "apps.core.errors.csrf_failure"

# --- CORS (django-cors-headers; the same settings apply to /v1, served beside Django) ----------
# Off unless origins are allowed. CORS_ORIGIN and CORS_ENABLED are the names earlier versions
# used (a single origin; false turns CORS off whatever else is set).
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=env.list("CORS_ORIGIN", default=[]))
CORS_ALLOWED_ORIGIN_REGEXES = env.list("CORS_ALLOWED_ORIGIN_REGEXES", default=[])
CORS_ALLOW_ALL_ORIGINS = env.bool("CORS_ALLOW_ALL_ORIGINS", default=False)
CORS_ENABLED = env.bool(
    "CORS_ENABLED",
    default=bool(CORS_ALLOWED_ORIGINS or CORS_ALLOWED_ORIGIN_REGEXES or CORS_ALLOW_ALL_ORIGINS),
)
# Browsers get CORS headers on the APIs only, never on the admin or the dashboard.
CORS_URLS_REGEX = env("CORS_URLS_REGEX", default=r"^/(v1|api)/")
CORS_ALLOW_CREDENTIALS = env.bool("CORS_ALLOW_CREDENTIALS", default=False)
CORS_PREFLIGHT_MAX_AGE = env.int("CORS_PREFLIGHT_MAX_AGE", default=86400)
# What browser clients send: the OpenAI SDKs' own headers, ours, and the library's defaults.
CORS_ALLOW_HEADERS = env.list(
    "CORS_ALLOW_HEADERS",
    default=[
        "accept", "authorization", "content-type", "user-agent", "x-csrftoken",
        "x-requested-with", "x-request-id", "x-orchestra-provider", "x-orchestra-strategy",
        "openai-organization", "openai-project", "openai-beta", "x-stainless-arch",
        "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
        "x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version",
        "x-stainless-timeout", "x-stainless-helper-method",
    ],
)  # fmt: skip
# What browser code may read of an answer: the request id and the retry hints.
CORS_EXPOSE_HEADERS = env.list(
    "CORS_EXPOSE_HEADERS",
    default=["x-request-id", "retry-after", "retry-after-ms", "x-should-retry"],
)
if CORS_ENABLED:  # as early as it can be: before anything that may answer (redirects, 404s)
    MIDDLEWARE.insert(
        MIDDLEWARE.index("apps.core.async_middleware.SecurityMiddleware"),
        "corsheaders.middleware.CorsMiddleware",
    )

WEBSOCKET_ALLOWED_ORIGINS = env.list("WEBSOCKET_ALLOWED_ORIGINS", default=[])
# Per connection: LLM queries/streams running at once, and messages per second (burst allowed).
WEBSOCKET_MAX_CONCURRENT = env.int("WEBSOCKET_MAX_CONCURRENT", default=4)
WEBSOCKET_MESSAGES_PER_SECOND = env.float("WEBSOCKET_MESSAGES_PER_SECOND", default=10.0)
WEBSOCKET_MESSAGE_BURST = env.int("WEBSOCKET_MESSAGE_BURST", default=30)
# Connections open at once, across every web process, per API key (or logged-in user) and per
# client address (apps/realtime/slots.py); 0: no cap.
WEBSOCKET_MAX_PER_KEY = env.int("WEBSOCKET_MAX_PER_KEY", default=100)
WEBSOCKET_MAX_PER_ADDRESS = env.int("WEBSOCKET_MAX_PER_ADDRESS", default=200)
# A query or stream whose worker says nothing for this long is answered with an error.
WEBSOCKET_WORKER_SILENCE_SECONDS = env.float("WEBSOCKET_WORKER_SILENCE_SECONDS", default=30.0)
WEBSOCKET_TASK_QUEUE = env("WEBSOCKET_TASK_QUEUE", default="celery")
