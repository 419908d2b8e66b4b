"""Tests use the real PostgreSQL and Redis when CI is set or they answer, else embedded ones.

Processes started by tests (daphne, Celery workers) get ``DATABASE_URL`` and ``REDIS_URL``
explicitly, so they use the same test database and Redis database as the test run itself.
``ORCHESTRA_TEST_ID`` (and ``TEST_REDIS_DB``) let several test runs share one machine.
"""

from __future__ import annotations

import os
import socket


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ORCHESTRA_TEST_SERVICES=embedded runs as on a machine without PostgreSQL and Redis.
_embedded = os.environ.get("ORCHESTRA_TEST_SERVICES") == "embedded"
_use_services = bool(os.environ.get("CI")) and not _embedded
_run_id = os.environ.get("ORCHESTRA_TEST_ID", "")
if not _embedded and (_use_services or _answers("127.0.0.1", 5432)):
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orchestra")
if not _embedded and (_use_services or _answers("127.0.0.1", 6379)):
    os.environ.setdefault(
        "REDIS_URL", f"redis://127.0.0.1:6379/{os.environ.get('TEST_REDIS_DB', 9)}"
    )
os.environ.setdefault("EMBEDDED_REDIS_NAME", f"test-redis{_run_id}")
# Tests store call records themselves (``recorded_calls``): a worker writing them meanwhile
# could deadlock with the TRUNCATE that ends each transactional test.
os.environ.setdefault("CALL_RECORDS_STORE_ON_SHIP", "false")
# The test machine's cores are shared by parallel runs: a busy CPU there is no finding
# (tests/monitoring/test_health_run.py sets the threshold it tests).
os.environ.setdefault("HEALTH_CPU_MAX_PERCENT", "100")

from .base import *  # noqa: E402, F403
from .base import CACHES, CHANNEL_LAYERS, DATABASES, INSTALLED_APPS, VAR_DIR  # noqa: E402

# A throw-away app that plugs in through its AppConfig alone (tests/core/test_registries.py).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.plugin_app"]

_suffix = f"_{_run_id}" if _run_id else ""
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test{_suffix}.sqlite3")}
elif _suffix:
    DATABASES["default"]["TEST"] = {"NAME": f"test_orchestra{_suffix}"}

ENVIRONMENT = "test"
DEBUG = False
SERVE_STATIC = True  # daphne under test serves the admin's and dashboard's files (browser tests)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES["default"]["KEY_PREFIX"] = f"orchestra-test{_suffix}"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"orchestra-test{_suffix}"
