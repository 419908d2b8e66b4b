"""Backups' fixtures: a media root and a backups folder of the run's own, shared with a Celery
worker of these tests (which runs the builds and the backups), and the tables' contents read
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
def backup_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backups")
    return {"media": root / "media", "backups": root / "archives"}


@pytest.fixture(autouse=True)
def backup_settings(settings, backup_folders) -> dict[str, Path]:
    settings.MEDIA_ROOT = str(backup_folders["media"])
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(backup_folders["backups"])},
        },
    }
    settings.BACKUP_ENCRYPTION_KEY = ""
    return backup_folders


@pytest.fixture(scope="session")
def backups_worker(server_env, backup_folders) -> Iterator[CeleryWorker]:
    """A worker whose media and backups folders are this run's (builds and backups alike)."""
    env = {
        **server_env,
        "MEDIA_ROOT": str(backup_folders["media"]),
        "BACKUP_DIR": str(backup_folders["backups"]),
    }
    worker = CeleryWorker(env, name="backups-celery").start()
    yield worker
    worker.stop()


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
