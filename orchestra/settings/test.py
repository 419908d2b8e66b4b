"""Tests use the real PostgreSQL and Redis when CI is set or they answer, else embedded ones.

Processes started by tests (daphne, Celery workers) get ``DATABASE_URL`` and ``REDIS_URL``
explicitly, so they use the same test database and Redis database as the test run itself.
``ORCHESTRA_TEST_ID`` (and ``TEST_REDIS_DB``) let several test runs share one machine.

Under pytest-xdist (``make test`` runs ``-n 4``) each worker (``PYTEST_XDIST_WORKER``: ``gw0``,
``gw1``...) is a run of its own: its id is ``<ORCHESTRA_TEST_ID>_<worker>`` (cache and
channel-layer prefixes, media and backup folders, the embedded Redis's name), pytest-django gives
its test database the suffix ``_<worker>``, and it gets a Redis server of its own on a Unix socket
in ``var/`` instead of a database of the shared Redis (16 databases cannot give every worker of
every concurrent run one that nobody else uses; ``TEST_REDIS_DB`` only picks a serial run's).
Its Celery queues, channel groups and routing state live in that server, so workers cannot see
each other's. Processes a worker starts inherit ``PYTEST_XDIST_WORKER`` and so the same id.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ORCHESTRA_TEST_SERVICES=embedded runs as on a machine without PostgreSQL and Redis.
_embedded = os.environ.get("ORCHESTRA_TEST_SERVICES") == "embedded"
_use_services = bool(os.environ.get("CI")) and not _embedded
_base_id = os.environ.get("ORCHESTRA_TEST_ID", "")
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
_run_id = f"{_base_id}_{_worker}" if _worker else _base_id
# The worker's own Redis (conftest.py starts it), set in the worker process only: the servers
# it starts get their REDIS_URL from it (it may be another one, a test's private Redis).
TEST_WORKER_REDIS_SOCKET: str | None = None
if not _embedded and (_use_services or _answers("127.0.0.1", 5432)):
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orchestra")
if _worker and not _embedded and "ORCHESTRA_TEST_WORKER_REDIS" not in os.environ:
    from apps.core.embedded_redis import socket_path

    _var = Path(os.environ.get("ORCHESTRA_VAR_DIR", Path(__file__).resolve().parents[2] / "var"))
    TEST_WORKER_REDIS_SOCKET = str(socket_path(_var, f"test-redis{_run_id}"))
    os.environ["ORCHESTRA_TEST_WORKER_REDIS"] = TEST_WORKER_REDIS_SOCKET
    os.environ["REDIS_URL"] = f"unix://{TEST_WORKER_REDIS_SOCKET}"
elif not _embedded and (_use_services or _answers("127.0.0.1", 6379)):
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

# pytest-django appends ``_<worker>`` to the test database's name itself.
_db_suffix = f"_{_base_id}" if _base_id else ""
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test{_db_suffix}.sqlite3")}
elif _db_suffix:
    DATABASES["default"]["TEST"] = {"NAME": f"test_orchestra{_db_suffix}"}
_suffix = f"_{_run_id}" if _run_id else ""
# Files a run writes stay its own (parallel workers, runs side by side, a developer's var/).
if "MEDIA_ROOT" not in os.environ:
    MEDIA_ROOT = str(VAR_DIR / f"test-media{_suffix}")
if "BACKUP_DIR" not in os.environ:
    BACKUP_DIR = str(VAR_DIR / f"test-backups{_suffix}")

ENVIRONMENT = "test"
DEBUG = False
SERVE_STATIC = True  # daphne under test serves the admin's and dashboard's files (browser tests)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES["default"]["KEY_PREFIX"] = f"orchestra-test{_suffix}"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"orchestra-test{_suffix}"
