"""Writes LLM call records in bulk, off the hot path.

A call is recorded by appending plain dicts to an in-memory queue (no I/O, no model
instances); a background thread writes whatever has gathered every ``FLUSH_INTERVAL`` seconds,
or sooner when ``FLUSH_BATCH`` records wait, in one transaction, over a connection it keeps
(closing and reopening one, a WAL checkpoint on SQLite, would cost more than the writes).
The queue is flushed on a clean shutdown: interpreter exit (daphne, uvicorn, management
commands), the ASGI lifespan shutdown and Celery's ``worker_process_shutdown``. A process
killed outright loses at most the records of its last ``FLUSH_INTERVAL`` seconds. If the
database is away, records are kept and retried, up to ``MAX_PENDING``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from functools import lru_cache
from typing import Any

from django.db import connections, models, transaction

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5
FLUSH_BATCH = 500
MAX_PENDING = 200_000

CallRecord = tuple[dict[str, Any], list[dict[str, Any]]]


# Field types whose Python values the database driver takes as they are.
_PLAIN_FIELDS = (
    models.BooleanField, models.CharField, models.FloatField, models.IntegerField,
    models.TextField,
)  # fmt: skip


@lru_cache
def _insert_plan(model) -> tuple[list, str]:
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    quote = connections["default"].ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(model._meta.db_table),
        ", ".join(quote(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    return fields, sql


def _insert(model, records: list[dict[str, Any]]) -> None:
    """``INSERT`` plain dicts keyed by field attname with one ``executemany``.

    The ORM's ``bulk_create`` builds a model instance and compiles SQL for every row, which
    cost more CPU than the gateway itself at a few hundred calls a second. Values of other
    than plain fields (UUIDs, decimals, datetimes, foreign keys) still go through the field's
    ``get_db_prep_save``, so every database backend gets what it expects.
    """
    connection = connections["default"]
    fields, sql = _insert_plan(model)
    converters = [
        None if isinstance(f, _PLAIN_FIELDS) and not f.is_relation else f.get_db_prep_save
        for f in fields
    ]
    defaults = {f.attname: f.get_default() for f in fields}
    rows = []
    for record in records:
        values = []
        for field, convert in zip(fields, converters, strict=True):
            value = record.get(field.attname, defaults[field.attname])
            values.append(value if convert is None or value is None else convert(value, connection))
        rows.append(values)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def write_records(batch: list[CallRecord]) -> None:
    from .models import LlmCall, LlmCallAttempt

    attempts = [
        {**attempt, "call_id": call["id"]}
        for call, call_attempts in batch
        for attempt in call_attempts
    ]
    with transaction.atomic():
        _insert(LlmCall, [call for call, _ in batch])
        if attempts:
            _insert(LlmCallAttempt, attempts)


class CallRecorder:
    def __init__(self) -> None:
        self._pending: deque[CallRecord] = deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    def record(self, call: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        if os.getpid() != self._pid:
            self._after_fork()
        self._pending.append((call, attempts))
        if self._thread is None:
            self._start()
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write everything queued so far; returns how many calls were written."""
        written = 0
        with self._flush_lock:
            while self._pending:
                size = min(FLUSH_BATCH, len(self._pending))
                batch = [self._pending.popleft() for _ in range(size)]
                try:
                    write_records(batch)
                except Exception:
                    self._pending.extendleft(reversed(batch))
                    self._trim()
                    connections.close_all()  # reconnect next time
                    logger.exception("could not write %d LLM call records; will retry", len(batch))
                    break
                written += len(batch)
        return written

    def close(self) -> None:
        """Stop the thread and write what is left; used at shutdown."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llm-call-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait(FLUSH_INTERVAL)
                self._wake.clear()
                if self._pending:
                    self.flush()
        finally:
            connections.close_all()

    def _after_fork(self) -> None:
        """A forked child starts empty: its parent writes what it had queued."""
        self._pending = deque()
        self._thread = None
        self._flush_lock = threading.Lock()
        self._pid = os.getpid()

    def _trim(self) -> None:
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            logger.error("LLM call record queue is full; dropping the oldest record")


recorder = CallRecorder()
atexit.register(recorder.close)
