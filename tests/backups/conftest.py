"""Backups' fixtures: the media and backups folders every process of the run shares, the
session's Celery worker (which runs the builds and the backups), and the tables' contents read
for comparison."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from tests.support.processes import CeleryWorker

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="session")
def backup_folders() -> dict[str, Path]:
    """The folders every process of the run uses by default: the session's worker and any
    worker a test starts write artifacts and archives where this process reads them (a task may
    reach any worker on the run's broker)."""
    from django.conf import settings

    return {"media": Path(settings.MEDIA_ROOT), "backups": Path(settings.BACKUP_DIR)}


@pytest.fixture(autouse=True)
def backup_settings(settings, backup_folders) -> dict[str, Path]:
    settings.BACKUP_ENCRYPTION_KEY = ""
    return backup_folders


@pytest.fixture(scope="session")
def backups_worker(celery_worker) -> CeleryWorker:
    """The session's worker: it runs the builds and the backups, with the default folders."""
    return celery_worker


def _params(name: str) -> dict[str, Any]:
    settings_dict = connection.settings_dict
    return {
        "dbname": name,
        "user": settings_dict.get("USER") or "postgres",
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or "127.0.0.1",
        "port": settings_dict.get("PORT") or 5432,
    }


def postgres_rows(name: str | None = None) -> dict[str, list[str]]:
    """Every table of database ``name`` (the test database by default): its rows, each as
    text, sorted."""
    name = name or connection.settings_dict["NAME"]
    with psycopg.connect(**_params(name), autocommit=True) as direct:
        tables = [
            row[0]
            for row in direct.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        found = {}
        for table in tables:
            rows = direct.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            found[table] = sorted(repr(row) for row in rows)
    return found


@pytest.fixture
def fresh_database() -> Iterator[dict[str, Any]]:
    """An empty PostgreSQL database on the test server: a ``DATABASES`` entry for it."""
    name = f"{connection.settings_dict['NAME']}_restored"[:63]
    with psycopg.connect(**_params("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield {**connection.settings_dict, "NAME": name}
    with psycopg.connect(**_params("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
