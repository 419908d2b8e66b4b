"""Shared fixtures: the services the suite runs on, and real servers started against them.

The test run uses PostgreSQL and Redis when ``CI`` is set or they answer on localhost, otherwise
SQLite and the embedded Redis (see ``orchestra/settings/test.py``); the header says which.
Processes started here (daphne, Celery) point at the same test database and Redis database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from apps.core import embedded_redis
from apps.providers.llm.recording.recorder import recorder
from tests.support import alone, database, template_database
from tests.support.processes import AsgiServer, CeleryWorker, worker_redis_start
from tests.support.scheduling import ModuleFixtureScheduling

pytest_plugins = ["tests.support.providers", "tests.support.browser"]


def pytest_configure(config) -> None:
    database.install()  # transactional tests end by emptying only the tables they filled


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slow`` tests first, each group in the order collected. pytest-xdist hands tests
    out in this order; collected last (``tests/test_*.py`` come after the folders), the
    schema fuzz and the first-run and docs tests, minutes each, were the run's tail, on one
    worker while the others had nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each test on the next free worker, but a module's tests that share a module-scoped
    fixture together (``tests/support/scheduling.py``)."""
    return ModuleFixtureScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """A test marked ``alone`` runs while no other pytest-xdist worker of this run is in a
    test (its setup, call and teardown); the others wait meanwhile (``tests/support/alone.py``)."""
    with alone.turn(exclusive=item.get_closest_marker("alone") is not None):
        return (yield)


def pytest_report_header(config) -> list[str]:
    db = settings.DATABASES["default"]
    where = f"{db.get('HOST') or 'local file'}:{db.get('PORT') or ''}".rstrip(":")
    name = (db.get("TEST") or {}).get("NAME") or f"test_{db['NAME']}"
    if getattr(config.option, "numprocesses", None):  # pytest-xdist: the workers' own
        return [
            f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {name}_<worker> ({where})",
            "redis (cache, channel layer, celery broker): one server per worker, "
            "var/test-redis<ORCHESTRA_TEST_ID>_<worker>.sock",
        ]
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {name} ({where})",
        f"redis (cache, channel layer, celery broker): {settings.REDIS_URL}"
        + (" [embedded]" if settings.EMBEDDED_REDIS else ""),
    ]


@pytest.fixture(scope="session", autouse=True)
def redis_server() -> Iterator[str]:
    """The suite's Redis, emptied once at the start of the run: under pytest-xdist the worker's
    own server (``orchestra/settings/test.py``), else the embedded one or the configured one."""
    process = None
    if settings.TEST_WORKER_REDIS_SOCKET:
        process = worker_redis_start(Path(settings.TEST_WORKER_REDIS_SOCKET))
    elif settings.EMBEDDED_REDIS and not embedded_redis.answers(settings.EMBEDDED_REDIS_SOCKET):
        process = embedded_redis.start(settings.EMBEDDED_REDIS_SOCKET)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    yield settings.REDIS_URL
    if process:
        process.terminate()
        process.wait(10)


def database_url(settings_dict: dict) -> str:
    """A ``DATABASE_URL`` for the database pytest-django created, for other processes."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_blocker):
    """pytest-django's, and each pytest-xdist worker's database copied from one migrated per
    run (``tests/support/template_database.py``)."""
    with django_db_blocker.unblock():
        template_database.use_a_template()


@pytest.fixture(scope="session", autouse=True)
def recorder_stopped_at_the_end(django_db_setup, django_db_blocker) -> Iterator[None]:
    """The recorder thread keeps a database connection; it must let go before teardown."""
    yield
    with django_db_blocker.unblock():
        recorder.close()


@pytest.fixture(scope="session")
def server_env(django_db_setup, django_db_blocker, redis_server) -> dict[str, str]:
    """Environment for processes that must share this run's database and Redis."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestra.settings.test",
        "DATABASE_URL": url,
        "REDIS_URL": redis_server,
        # the run's own folders (orchestra/settings/test.py), the same in every process it starts
        "MEDIA_ROOT": settings.MEDIA_ROOT,
        "BACKUP_DIR": settings.BACKUP_DIR,
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "json",
        "WEBSOCKET_WORKER_SILENCE_SECONDS": "3",
    }


@pytest.fixture(scope="session")
def asgi_server(server_env) -> Iterator[AsgiServer]:
    """A real daphne serving the whole ASGI application, shared by the session."""
    server = AsgiServer(server_env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def granian_server(server_env) -> Iterator[AsgiServer]:
    """A real granian serving the whole ASGI application, for one module."""
    server = AsgiServer(server_env, name="granian", server="granian").start()
    yield server
    server.stop()


@pytest.fixture(params=["asgi_server", "granian_server"], ids=["daphne", "granian"])
def ws_server(request: pytest.FixtureRequest) -> AsgiServer:
    """daphne, then granian: each server hands WebSocket messages to the consumer its own way
    (granian's ``receive()`` answers an awaitable that is not a coroutine)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def celery_worker(server_env) -> Iterator[CeleryWorker]:
    """A real Celery worker process, shared by the session."""
    worker = CeleryWorker(server_env).start()
    yield worker
    worker.stop()
