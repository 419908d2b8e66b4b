"""Storing LLM call records: the database side of ``recorder.py``.

Recorders ship records to a Redis list as batches (``ship_batch``); a Celery worker stores them
(``call_records_store``). A batch the database refuses is split until the records it refuses are
found: those are kept aside as ``CallRecordDeadLetter`` rows (visible in the admin and
``/health``) and the rest are stored, so one bad record never stops the others. A database that
does not answer is another matter: the batches go back to the head of the list, untouched.
A worker takes batches by claiming them (moved, in one step, to a list of the claim's own); they
leave Redis once stored. A worker killed while it stores leaves its claim behind, and the next
store puts a claim older than ``CALL_RECORDS_CLAIM_SECONDS`` back at the head of the list, so
no batch is lost with a worker (a claim that outlives a slow but living worker is stored twice,
which changes nothing: see below).

Writes are idempotent, so a batch stored twice (a worker dying between its write and its pop)
changes nothing: a call's final record replaces its ``running`` record (streams are recorded
when they start), never the other way round, and attempts are written once. The call record
hooks (``apps.core.registry``; analytics marks the hours to roll up again) run inside the
transaction that writes final records or the sweep's changes, so they commit or roll back with
them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

import orjson
from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone

from apps.core.redis import key, redis_client
from apps.core.registry import call_record_hooks

from ...models import CallRecordDeadLetter, CallStatus, LlmCall, LlmCallAttempt

logger = logging.getLogger(__name__)

BLOBS_PER_STORE = 20
INTERRUPTED = "interrupted"

Call = dict[str, Any]
Attempts = list[dict[str, Any]]


@dataclass(frozen=True)
class CallRecord:
    """A call and its attempts; ``final`` is False for the record a stream makes as it starts."""

    call: Call
    attempts: Attempts
    final: bool = True

    def as_json(self) -> list[Any]:
        return [self.call, self.attempts] if self.final else [self.call, self.attempts, False]

    @classmethod
    def from_json(cls, value: Any) -> CallRecord:
        call, attempts, *rest = value
        if not isinstance(call, dict) or not isinstance(attempts, list):
            raise ValueError("a call record is [call, attempts]")
        return cls(call, attempts, final=not rest or bool(rest[0]))


def records_key() -> str:
    return key("llm", "call-records")


def _claims_key() -> str:
    return key("llm", "call-records", "claims")


def _claimed_key(token: str) -> str:
    return key("llm", "call-records", "claimed", token)


# Pop up to ARGV[1] batches into the claim's list (KEYS[3]), due back at Redis's time + ARGV[2].
_CLAIM = """
local blobs = redis.call('LPOP', KEYS[1], ARGV[1])
if not blobs then return {} end
redis.call('RPUSH', KEYS[3], unpack(blobs))
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(now[1]) + tonumber(ARGV[2]), ARGV[3])
return blobs
"""

# Put the batches of every claim past its time back at the head of the list, in their order.
_RECLAIM = """
local now = redis.call('TIME')
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now[1])
local count = 0
for _, token in ipairs(expired) do
  local claimed = ARGV[1] .. token
  local blobs = redis.call('LRANGE', claimed, 0, -1)
  for index = #blobs, 1, -1 do
    redis.call('LPUSH', KEYS[1], blobs[index])
  end
  count = count + #blobs
  redis.call('DEL', claimed)
  redis.call('ZREM', KEYS[2], token)
end
return count
"""


def _encode(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def ship_batch(batch: list[CallRecord]) -> None:
    """Push a batch onto the Redis list, stamped with when it was shipped. The record of a
    stream's start is left out when its final record goes in the same batch (a stream that
    lasted less than a flush): nobody would see it, and it would double a stream's storing."""
    ended = {record.call["id"] for record in batch if record.final}
    shipped = [record for record in batch if record.final or record.call["id"] not in ended]
    blob = orjson.dumps([record.as_json() for record in shipped], default=_encode)
    redis_client().rpush(records_key(), b"%.3f\n" % time.time() + blob)


def _decode(blob: bytes) -> list[CallRecord]:
    _, _, body = blob.partition(b"\n") if not blob.startswith(b"[") else (b"", b"", blob)
    return [CallRecord.from_json(record) for record in orjson.loads(body)]


# --- writing to the database ------------------------------------------------------------------

# Field types whose Python values the database driver takes as they are.
_PLAIN_FIELDS = (
    models.BooleanField, models.CharField, models.FloatField, models.IntegerField,
    models.TextField,
)  # fmt: skip


@dataclass(frozen=True)
class _InsertPlan:
    """What an ``INSERT`` of a model's rows needs: its fields (all but a database-made primary
    key), the quoted table and column list, and the ``ON CONFLICT`` clause."""

    fields: list[Any]
    table: str
    columns: str
    on_conflict: str

    @property
    def values_sql(self) -> str:
        placeholders = ", ".join(["%s"] * len(self.fields))
        return (
            f"INSERT INTO {self.table} ({self.columns}) VALUES ({placeholders}){self.on_conflict}"
        )


@lru_cache
def _insert_plan(model: type[models.Model], conflict: str) -> _InsertPlan:
    """``conflict`` is ``"update"`` (the row replaces one with its primary key), ``"ignore"``
    (an existing row wins) or ``""``."""
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
    quote = connections["default"].ops.quote_name

    def column(field: Any) -> str:
        return quote(field.column)

    on_conflict = ""
    if conflict == "update":
        pk = model._meta.pk
        assert pk is not None
        updates = ", ".join(f"{column(f)} = excluded.{column(f)}" for f in fields)
        on_conflict = f" ON CONFLICT ({column(pk)}) DO UPDATE SET {updates}"
    elif conflict == "ignore":
        on_conflict = " ON CONFLICT DO NOTHING"
    columns = ", ".join(column(f) for f in fields)
    return _InsertPlan(fields, quote(model._meta.db_table), columns, on_conflict)


def _insert(model: type[models.Model], records: list[dict[str, Any]], conflict: str) -> None:
    """``INSERT`` plain dicts keyed by field attname, without building model instances."""
    if not records:
        return
    connection = connections["default"]
    if connection.vendor == "postgresql":
        _copy_insert(connection, model, records, conflict)
    else:
        _executemany_insert(connection, model, records, conflict)


def _copy_insert(
    connection: Any, model: type[models.Model], records: list[dict[str, Any]], conflict: str
) -> None:
    """PostgreSQL: ``COPY`` the rows into a temporary table, then one ``INSERT … SELECT``.

    Measured on the gateway benchmark, ``executemany`` (one parsed and planned ``INSERT`` per
    row) cost PostgreSQL and the worker about 0.5 ms of CPU per call record, a third of what
    the web processes spend serving the call; this costs about 0.1 ms. Values go as the text
    JSON made of them (UUIDs, datetimes and decimals as strings): PostgreSQL parses them, and a
    value it refuses fails the batch, which ``_write_or_split`` then splits.
    """
    plan = _insert_plan(model, conflict)
    defaults = [(field.attname, field.get_default()) for field in plan.fields]
    # JSON columns (a call's tags) go as their JSON text, which PostgreSQL parses like the rest.
    json_columns = [
        index for index, field in enumerate(plan.fields) if isinstance(field, models.JSONField)
    ]
    with connection.cursor() as cursor:
        staging = _staging_table(cursor, connection.ops.quote_name, model, plan, conflict)
        with cursor.cursor.copy(f"COPY {staging} ({plan.columns}) FROM STDIN") as copy:
            for record in records:
                row = [record.get(name, default) for name, default in defaults]
                for index in json_columns:
                    row[index] = orjson.dumps(row[index]).decode()
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {plan.table} ({plan.columns}) SELECT {plan.columns} FROM {staging}"
            + plan.on_conflict
        )


def _staging_table(
    cursor: Any, quote: Any, model: type[models.Model], plan: _InsertPlan, conflict: str
) -> str:
    """A temporary table shaped like the plan's columns, emptied at each commit and kept for
    the connection's life (creating one per batch cost about 2 ms). One per conflict mode,
    since a batch stages both final and running records; the name carries a digest of the
    columns, so a model that gains a column gets a new one."""
    digest = hashlib.sha256(plan.columns.encode()).hexdigest()[:12]
    staging = quote(f"staging_{model._meta.db_table}_{conflict or 'plain'}_{digest}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT {plan.columns} FROM {plan.table} WITH NO DATA"
    )
    return staging


def _executemany_insert(
    connection: Any, model: type[models.Model], records: list[dict[str, Any]], conflict: str
) -> None:
    """Other databases: one ``executemany``. Values of other than plain fields (UUIDs,
    decimals, datetimes, foreign keys, also as the strings JSON made of them) go through the
    field's ``get_db_prep_save``, so every database backend gets what it expects."""
    plan = _insert_plan(model, conflict)
    fields = plan.fields
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
        cursor.executemany(plan.values_sql, rows)


def write_records(batch: list[CallRecord]) -> None:
    """Store a batch in one transaction. A call's final record replaces its ``running`` one
    (the last final wins within a batch: one statement cannot update a row twice; a running
    record whose final is in the batch is not written at all)."""
    finals_by_id = {record.call["id"]: record for record in batch if record.final}
    finals = list(finals_by_id.values())
    running = [r.call for r in batch if not r.final and r.call["id"] not in finals_by_id]
    attempts = [
        {**attempt, "call_id": record.call["id"]}
        for record in finals
        for attempt in record.attempts
    ]
    with transaction.atomic():
        _insert(LlmCall, [record.call for record in finals], "update")
        _insert(LlmCall, running, "ignore")
        _insert(LlmCallAttempt, attempts, "ignore")
        # A running record changes no figure: only final ones are told of.
        call_record_hooks_run([record.call.get("created_at") for record in finals])


def call_record_hooks_run(created: list[Any]) -> None:
    """Run the registered call record hooks (analytics' rollups) in the writing transaction."""
    if created:
        for hook in call_record_hooks.values():
            hook(created)


# --- storing what waits in Redis ----------------------------------------------------------------


def _database_answers() -> bool:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        connection.close()
        return False


def _write_or_split(batch: list[CallRecord]) -> list[tuple[CallRecord, str]]:
    """Write the batch; returns the records the database refused, with why. Raises when the
    database itself does not answer."""
    try:
        write_records(batch)
        return []
    except Exception as exc:
        if not _database_answers():
            raise
        if len(batch) == 1:
            return [(batch[0], f"{type(exc).__name__}: {exc}")]
        middle = len(batch) // 2
        return _write_or_split(batch[:middle]) + _write_or_split(batch[middle:])


def _set_aside(refused: list[tuple[Any, str]]) -> None:
    if not refused:
        return
    letters = []
    for record, reason in refused:
        call = record.call if isinstance(record, CallRecord) else {}
        payload = record.as_json() if isinstance(record, CallRecord) else record
        call_id = call.get("id") if isinstance(call.get("id"), str) else None
        letters.append(
            CallRecordDeadLetter(
                call_id=call_id if call_id and len(call_id) == 36 else None,
                reason=reason[:500],
                payload=orjson.dumps(payload, default=_encode).decode(),
            )
        )
        logger.error("a call record was refused and set aside: %s", reason[:200])
    CallRecordDeadLetter.objects.bulk_create(letters)


def call_records_store() -> int:
    """Store the records waiting in Redis (any process may call it; pops are atomic).

    Returns how many were stored. Records the database refuses are set aside; if the database
    does not answer, the batches go back to the head of the list and the error is raised.
    """
    stored = 0
    client = redis_client()
    records, claims = records_key(), _claims_key()
    reclaimed = client.eval(_RECLAIM, 2, records, claims, _claimed_key(""))
    if reclaimed:
        logger.warning("%d batches of call records a stopped worker left queued again", reclaimed)
    while True:
        token = uuid.uuid4().hex
        claimed = _claimed_key(token)
        blobs = cast(
            list[bytes],
            client.eval(
                _CLAIM, 3, records, claims, claimed, BLOBS_PER_STORE,
                settings.CALL_RECORDS_CLAIM_SECONDS, token,
            ),
        )  # fmt: skip
        if not blobs:
            break
        batch: list[CallRecord] = []
        refused: list[tuple[Any, str]] = []
        for blob in blobs:
            try:
                batch += _decode(blob)
            except (ValueError, TypeError) as exc:
                refused.append((blob.decode(errors="replace")[:100_000], f"unreadable: {exc}"))
        try:
            written_refused = _write_or_split(batch)
            _set_aside(refused + written_refused)
        except Exception:
            _release(client, token, requeue=blobs)
            raise
        _release(client, token)
        stored += len(batch) - len(written_refused)
    return stored


def _release(client: Any, token: str, requeue: list[bytes] | None = None) -> None:
    """Drop a claim, its batches stored (or, ``requeue``, put back at the head of the list)."""
    with client.pipeline() as pipe:
        if requeue:
            pipe.lpush(records_key(), *reversed(requeue))
        pipe.delete(_claimed_key(token))
        pipe.zrem(_claims_key(), token)
        pipe.execute()


@dataclass(frozen=True)
class Backlog:
    batches: int
    oldest_seconds: float | None


def call_records_backlog() -> Backlog:
    """How many batches wait in Redis to be stored, and how long the oldest has waited."""
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.llen(records_key())
    pipe.lindex(records_key(), 0)
    size, oldest = pipe.execute()
    age = None
    if oldest and not oldest.startswith(b"["):
        try:
            age = max(0.0, time.time() - float(oldest.partition(b"\n")[0]))
        except ValueError:
            age = None
    return Backlog(int(size), age)


def call_records_sweep(*, older_than: timedelta) -> int:
    """Fail the records of streams left ``running`` by a process that died before their end."""
    with transaction.atomic():
        stale = LlmCall.objects.select_for_update().filter(
            status=CallStatus.RUNNING, created_at__lt=timezone.now() - older_than
        )
        found = dict(stale.values_list("id", "created_at"))
        if not found:
            return 0
        count = LlmCall.objects.filter(id__in=found, status=CallStatus.RUNNING).update(
            status=CallStatus.ERROR,
            error_code=INTERRUPTED,
            error_message="the process serving this call stopped before the call ended",
        )
        call_record_hooks_run(list(found.values()))
        return count


PRUNE_BATCH = 5_000


@dataclass(frozen=True)
class Pruned:
    calls: int
    attempts: int
    dead_letters: int


def call_records_prune(*, older_than_days: float, batch: int = PRUNE_BATCH) -> Pruned:
    """Delete the call records (with their attempts) and refused records created before
    ``older_than_days`` ago; 0 keeps everything.

    Oldest first, ``batch`` calls per transaction, found through the ``created_at`` index: each
    transaction holds its row locks for a few milliseconds, so the recorder's inserts and the
    pages never wait behind a day's delete, and a prune stopped midway has lost nothing but time.
    The rows are deleted without loading them (no model instances, no signals).
    """
    if older_than_days <= 0:
        return Pruned(0, 0, 0)
    cutoff = timezone.now() - timedelta(days=older_than_days)
    calls = attempts = 0
    old = LlmCall.objects.filter(created_at__lt=cutoff).order_by("created_at")
    while ids := list(old.values_list("id", flat=True)[:batch]):
        with transaction.atomic():
            attempts += _delete(LlmCallAttempt.objects.filter(call_id__in=ids))
            calls += _delete(LlmCall.objects.filter(pk__in=ids))
        if len(ids) < batch:
            break
    letters = CallRecordDeadLetter.objects.filter(created_at__lt=cutoff).order_by("created_at")
    dead = 0
    while letter_ids := list(letters.values_list("id", flat=True)[:batch]):
        dead += _delete(CallRecordDeadLetter.objects.filter(pk__in=letter_ids))
        if len(letter_ids) < batch:
            break
    if calls or dead:
        logger.info(
            "call records older than %s days deleted: %d calls, %d attempts, %d refused records",
            older_than_days, calls, attempts, dead,
        )  # fmt: skip
    return Pruned(calls, attempts, dead)


def _delete(rows: models.QuerySet[Any]) -> int:
    """One ``DELETE … WHERE …``: what ``QuerySet.delete`` does when it may, without loading
    every row first to cascade from (the calls' attempts go before them) or to send signals."""
    return rows._raw_delete(rows.db)


def dead_letters_requeue(*, letters: models.QuerySet[CallRecordDeadLetter]) -> int:
    """Put refused records back in the queue (once what refused them is fixed)."""
    count = 0
    client = redis_client()
    for letter in letters:
        client.rpush(records_key(), b"%.3f\n" % time.time() + b"[" + letter.payload.encode() + b"]")
        letter.delete()
        count += 1
    return count
