"""Emptying the test database after a transactional test: faster, to the same end.

Django empties every table after each ``transaction=True`` test (the ``flush`` command): on
PostgreSQL one ``TRUNCATE`` of all ~100 tables, which creates and unlinks files for every table,
index and TOAST relation and waits for an exclusive lock on each, then the ``post_migrate``
signal fills the content types, permissions and role groups again (~150 queries). Most tests
fill a handful of tables, so on PostgreSQL the flush here:

* asks which tables hold rows (one query) and deletes those rows in one transaction (Django's
  foreign keys are deferred to the commit), sequences not reset, as Django's flush;
* leaves alone the tables ``post_migrate`` fills (those holding rows right after a full flush)
  while their content is exactly what it was then (one checksum query), and then skips
  ``post_migrate``, which would only write the same rows again. When a test changed them, the
  flush is whole: every table emptied and ``post_migrate`` run, as Django does.

A flush that resets sequences, or on another database, is Django's own.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands import flush as flush_command
from django.core.management.sql import emit_post_migrate_signal as django_emit_post_migrate
from django.core.management.sql import sql_flush as django_sql_flush


class Baseline:
    """The tables ``post_migrate`` fills and the checksum of their content after it ran."""

    tables: list[str] | None = None
    checksum: str | None = None
    skip_post_migrate = False


def _filled(connection: Any, tables: list[str]) -> list[str]:
    quote = connection.ops.quote_name
    probe = " UNION ALL ".join(
        f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(probe, tables)
        return [row[0] for row in cursor.fetchall()]


def _checksum(connection: Any, tables: list[str]) -> str:
    if not tables:
        return ""
    quote = connection.ops.quote_name
    parts = " || ".join(
        f"coalesce((SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {quote(table)} t),"
        " '')"
        for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT md5({parts})")
        return str(cursor.fetchone()[0])


def sql_flush(style: Any, connection: Any, reset_sequences: bool = True, **options: Any) -> list:
    Baseline.skip_post_migrate = False
    if reset_sequences or connection.vendor != "postgresql":
        return django_sql_flush(style, connection, reset_sequences=reset_sequences, **options)
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    if not tables:
        return []
    filled = _filled(connection, tables)
    kept = Baseline.tables
    if kept is not None and _checksum(connection, kept) == Baseline.checksum:
        filled = [table for table in filled if table not in kept]
        Baseline.skip_post_migrate = True
    else:
        Baseline.tables = None  # taken again after this whole flush's post_migrate
    return ["SET CONSTRAINTS ALL DEFERRED", *(f"DELETE FROM {connection.ops.quote_name(table)}"
                                              for table in filled)]  # fmt: skip


def emit_post_migrate_signal(verbosity: int, interactive: bool, db: str, **kwargs: Any) -> None:
    if Baseline.skip_post_migrate:
        return
    django_emit_post_migrate(verbosity, interactive, db, **kwargs)
    from django.db import connections

    connection = connections[db]
    if connection.vendor == "postgresql":
        tables = connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        Baseline.tables = _filled(connection, tables)
        Baseline.checksum = _checksum(connection, Baseline.tables)


class RetryingFlush(flush_command.Command):
    """Django's flush, tried again when PostgreSQL picked it as a deadlock's victim (a worker
    process still finishing the test's last task wrote the same rows): the victim's transaction
    was rolled back whole, so trying again is safe; failing, it left the rows to the next test."""

    ATTEMPTS = 3

    def handle(self, **options: Any) -> None:
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                return super().handle(**options)
            except CommandError as error:
                if attempt == self.ATTEMPTS or "deadlock detected" not in str(error.__cause__):
                    raise


def install() -> None:
    """Make the ``flush`` command (what ends a transactional test) use the functions above."""
    flush_command.Command = RetryingFlush  # type: ignore[misc]
    flush_command.sql_flush = sql_flush  # type: ignore[attr-defined]
    flush_command.emit_post_migrate_signal = emit_post_migrate_signal  # type: ignore[attr-defined]
