"""A consistent snapshot of the database, and its restore, on PostgreSQL and SQLite.

PostgreSQL: a read-only ``REPEATABLE READ`` transaction exports its snapshot and ``pg_dump``
dumps exactly that snapshot (``--snapshot``), while the same transaction reads the migration
state, the row counts and the names of the files the rows reference: the manifest describes
the very data dumped, and the files are those of the rows in it. ``pg_dump`` takes only
``ACCESS SHARE`` locks (reads and writes go on; only schema changes wait), and waits at most
``LOCK_WAIT_MS`` for them.

SQLite: the online backup API copies the database while it is used (in WAL mode writers go on),
and the copy is read for the same facts.

Restores replace the whole database in one transaction: on PostgreSQL every table, view and
sequence of the schema is dropped and the dump's are created, filled and their sequences set,
by ``psql --single-transaction`` (an error, or a lock not granted within ``LOCK_WAIT_MS``,
rolls everything back); on SQLite the backup API writes the archived database over the live
one in one transaction.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.apps import apps
from django.db import models
from django.db.migrations.loader import MigrationLoader
from psycopg import sql
from psycopg.conninfo import make_conninfo

LOCK_WAIT_MS = 60_000
VENDORS = ("postgresql", "sqlite")


class DatabaseError(Exception):
    """A dump or restore that did not work; the message says what the tool said."""


@dataclass
class Snapshot:
    vendor: str
    server_version: str = ""
    tool: str = ""
    migrations: dict[str, list[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (field label, stored name)


def vendor_of(settings_dict: dict[str, Any]) -> str:
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return "sqlite"
    if "postgresql" in engine:
        return "postgresql"
    raise DatabaseError(f"backups support PostgreSQL and SQLite, not {engine}")


def file_fields() -> list[tuple[str, str, str]]:
    """Every file field of the installed models: (``app.model.field``, table, column)."""
    found = []
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, models.FileField):
                label = f"{model._meta.label_lower}.{model_field.name}"
                found.append((label, model._meta.db_table, str(model_field.column)))
    return found


def field_storage(label: str) -> Any:
    """The storage of file field ``app.model.field``."""
    app_model, _, name = label.rpartition(".")
    model_field = apps.get_model(app_model)._meta.get_field(name)
    assert isinstance(model_field, models.FileField)
    return model_field.storage


def migrations_unknown(applied: dict[str, list[str]]) -> list[str]:
    """Migrations an archive had applied that this code does not have (a newer schema)."""
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    return sorted(
        f"{app}.{name}"
        for app, names in applied.items()
        for name in names
        if (app, name) not in known
    )


def migrations_missing(applied: dict[str, list[str]]) -> list[str]:
    """Migrations of this code an archive had not applied (an older schema: ``migrate``)."""
    have = {(app, name) for app, names in applied.items() for name in names}
    known = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    return sorted(f"{app}.{name}" for app, name in known if (app, name) not in have)


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    tool = shutil.which(command[0])
    if tool is None:
        raise DatabaseError(f"{command[0]} is not installed (PostgreSQL's client tools)")
    done = subprocess.run(
        [tool, *command[1:]], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise DatabaseError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- PostgreSQL ------------------------------------------------------------------------------


def _libpq(settings_dict: dict[str, Any]) -> dict[str, str]:
    """Connection parameters as libpq names them, from a Django ``DATABASES`` entry."""
    options = settings_dict.get("OPTIONS") or {}
    params = {
        "dbname": settings_dict.get("NAME"),
        "user": settings_dict.get("USER"),
        "password": settings_dict.get("PASSWORD"),
        "host": settings_dict.get("HOST"),
        "port": settings_dict.get("PORT"),
        **{k: options[k] for k in ("sslmode", "sslrootcert", "sslcert", "sslkey") if k in options},
    }
    return {name: str(value) for name, value in params.items() if value}


def _libpq_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    names = {
        "dbname": "PGDATABASE",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "host": "PGHOST",
        "port": "PGPORT",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**inherited, **{names[k]: v for k, v in _libpq(settings_dict).items()}}


def _postgres_facts(connection: psycopg.Connection[Any], snapshot: Snapshot) -> None:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
    ]
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        row = connection.execute(query).fetchone()
        snapshot.row_counts[table] = int(row[0]) if row else 0
    if "django_migrations" in tables:
        for app, name in connection.execute(
            "SELECT app, name FROM django_migrations ORDER BY app, name"
        ):
            snapshot.migrations.setdefault(app, []).append(name)
    for label, table, column in file_fields():
        if table in tables:
            query = sql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {c} <> '' ORDER BY 1").format(
                c=sql.Identifier(column), t=sql.Identifier(table)
            )
            snapshot.files += [(label, row[0]) for row in connection.execute(query)]


def postgres_snapshot(settings_dict: dict[str, Any], target: Path) -> Snapshot:
    snapshot = Snapshot("postgresql")
    with psycopg.connect(make_conninfo(**_libpq(settings_dict)), autocommit=False) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = connection.execute("SELECT pg_export_snapshot(), version()").fetchone()
        assert row is not None
        exported, snapshot.server_version = row
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--compress=0",
                f"--snapshot={exported}",
                f"--lock-wait-timeout={LOCK_WAIT_MS}",
                "--no-password",
                f"--file={target}",
            ],
            env=_libpq_env(settings_dict),
        )
        _postgres_facts(connection, snapshot)
        connection.rollback()
    snapshot.tool = _run(["pg_dump", "--version"]).strip()
    return snapshot


def postgres_restore(settings_dict: dict[str, Any], dump: Path, folder: Path) -> None:
    script = folder / "restore.sql"
    _run(["pg_restore", "--no-owner", "--no-privileges", f"--file={script}", str(dump)])
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    with psycopg.connect(make_conninfo(**_libpq(settings_dict)), autocommit=True) as connection:
        relations = connection.execute(
            "SELECT c.relkind, n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
        ).fetchall()
        drops = [
            f"DROP {kinds[kind]} IF EXISTS "
            f"{sql.Identifier(schema, name).as_string(connection)} CASCADE;"
            for kind, schema, name in sorted(relations, key=lambda r: r[0] == "S")
        ]
    prelude = folder / "prelude.sql"
    prelude.write_text(f"SET lock_timeout = {LOCK_WAIT_MS};\n" + "\n".join(drops) + "\n")
    _run(
        [
            "psql",
            "--no-psqlrc",
            "--quiet",
            "--no-password",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--output=/dev/null",
            "-f",
            str(prelude),
            "-f",
            str(script),
        ],
        env=_libpq_env(settings_dict),
    )


# --- SQLite --------------------------------------------------------------------------------


def _sqlite_facts(connection: sqlite3.Connection, snapshot: Snapshot) -> None:
    tables = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    for table in tables:
        snapshot.row_counts[table] = connection.execute(
            f'SELECT count(*) FROM "{table}"'
        ).fetchone()[0]
    if "django_migrations" in tables:
        for app, name in connection.execute(
            "SELECT app, name FROM django_migrations ORDER BY app, name"
        ):
            snapshot.migrations.setdefault(app, []).append(name)
    for label, table, column in file_fields():
        if table in tables:
            rows = connection.execute(
                f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" <> \'\' ORDER BY 1'
            )
            snapshot.files += [(label, row[0]) for row in rows]


def sqlite_snapshot(settings_dict: dict[str, Any], target: Path) -> Snapshot:
    snapshot = Snapshot("sqlite", server_version=sqlite3.sqlite_version, tool="sqlite3 backup API")
    source = sqlite3.connect(str(settings_dict["NAME"]), timeout=30)
    copy = sqlite3.connect(str(target))
    try:
        source.backup(copy)
        _sqlite_facts(copy, snapshot)
    finally:
        copy.close()
        source.close()
    return snapshot


def sqlite_restore(settings_dict: dict[str, Any], database: Path) -> None:
    source = sqlite3.connect(str(database))
    target = sqlite3.connect(str(settings_dict["NAME"]), timeout=LOCK_WAIT_MS / 1000)
    try:
        source.backup(target)
    except sqlite3.Error as error:
        raise DatabaseError(f"the SQLite restore failed: {error}") from error
    finally:
        target.close()
        source.close()


def database_snapshot(settings_dict: dict[str, Any], target: Path) -> Snapshot:
    if vendor_of(settings_dict) == "postgresql":
        return postgres_snapshot(settings_dict, target)
    return sqlite_snapshot(settings_dict, target)


def database_restore(settings_dict: dict[str, Any], part: Path, folder: Path) -> None:
    if vendor_of(settings_dict) == "postgresql":
        postgres_restore(settings_dict, part, folder)
    else:
        sqlite_restore(settings_dict, part)
