"""Benchmark of storing call records: what a call costs PostgreSQL on an empty table and on a
table of millions, with random (version 4) and time-ordered (version 7) ids.

In a database of its own (``orchestra_bench_store``, made afresh on the local PostgreSQL: WAL
positions are PostgreSQL's), batches of calls as a recorder ships them (one attempt each, a
request id each) are stored through the recorder's own ``write_records``: the time per batch,
and the WAL written per call for this database's relations (``pg_walinspect``'s records
between ``pg_current_wal_lsn`` before and after: other databases of the server write
meanwhile). Each figure is shown as a ratio of the baseline measured in the same run: version
4 ids on an empty table, what storing cost before on a fresh install. Then the table is seeded
(``seed_calls``) with ``--rows`` calls over 90 days with the same kind of ids, and measured
again, and the day past retention is pruned (``call_records_prune``) and timed. A checkpoint
precedes each measurement, so each starts with the full-page writes that follow one.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "orchestra_bench_store"
DAYS = 90


def _sql(statement: str) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchone() if cursor.description else None


def _batch(size: int, version: int) -> list[Any]:
    """A batch as a recorder ships it (after the JSON round trip through Redis)."""
    from apps.core.request_context import request_id_from
    from apps.providers.llm import new_call_id
    from apps.providers.llm.recording.records import CallRecord

    now = time.time()
    batch = []
    for _ in range(size):
        call_id = uuid.uuid4() if version == 4 else new_call_id()
        request_id = f"{random.getrandbits(128):032x}" if version == 4 else request_id_from(None)
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "+00:00"
        call = {
            "id": str(call_id), "request_id": request_id, "created_at": at,
            "entry_point": "openai", "requested_model": "gpt-4o-mini",
            "provider_name": "openai", "model_name": "gpt-4o-mini", "status": "success",
            "finish_reason": "stop", "input_tokens": random.randint(10, 4000),
            "output_tokens": random.randint(10, 800), "cost": "0.00012",
            "latency_ms": random.uniform(200, 3000), "attempt_count": 1,
        }  # fmt: skip
        attempt = {
            "number": 1, "provider_name": "openai", "model_name": "gpt-4o-mini",
            "status": "success", "http_status": 200, "latency_ms": call["latency_ms"],
            "started_at": at,
        }  # fmt: skip
        batch.append(CallRecord(call, [attempt]))
    return batch


def _wal_written_since(before: str) -> float:
    """Bytes of WAL written since ``before`` for this database's relations (``pg_walinspect``:
    the other databases of the server, test runs say, write meanwhile; commit records, a few
    dozen bytes per batch, name no relation and are left out). All the WAL written when its
    records are gone already (a checkpoint recycled them)."""
    from django.db import DatabaseError, transaction

    try:
        with transaction.atomic():
            (written,) = _sql(
                "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info("
                f"'{before}', pg_current_wal_lsn()) WHERE block_ref LIKE '%/' || (SELECT oid "
                "FROM pg_database WHERE datname = current_database()) || '/%'"
            )
    except DatabaseError:
        (written,) = _sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{before}')")
    return float(written)


def _store(batches: int, size: int, version: int) -> dict[str, float]:
    """Median time per batch and WAL bytes per call over ``batches`` batches of ``size``."""
    from apps.providers.llm.recording.records import write_records

    write_records(_batch(size, version))  # the staging tables made, the plan cached
    _sql("CHECKPOINT")
    seconds, wal = [], []
    for _ in range(batches):
        batch = _batch(size, version)
        (before,) = _sql("SELECT pg_current_wal_lsn()")
        started = time.perf_counter()
        write_records(batch)
        seconds.append(time.perf_counter() - started)
        wal.append(_wal_written_since(before) / size)
    return {
        "ms_per_batch": statistics.median(seconds) * 1000,
        "ms_per_batch_p90": statistics.quantiles(seconds, n=10)[-1] * 1000,
        "us_per_call": statistics.median(seconds) / size * 1e6,
        "wal_bytes_per_call": statistics.median(wal),
    }


def _empty() -> None:
    _sql("TRUNCATE providers_llmcallattempt, providers_llmcall")


def _prune_one_day() -> dict[str, float]:
    from apps.providers.llm.recording.records import call_records_prune

    _sql("CHECKPOINT")
    (before,) = _sql("SELECT pg_current_wal_lsn()")
    started = time.perf_counter()
    pruned = call_records_prune(older_than_days=DAYS - 1)
    seconds = time.perf_counter() - started
    written = _wal_written_since(before)
    return {
        "calls": pruned.calls,
        "attempts": pruned.attempts,
        "seconds": seconds,
        "calls_per_second": pruned.calls / seconds if seconds else 0.0,
        "wal_bytes_per_call": float(written) / max(pruned.calls, 1),
    }


def run(
    rows: int, batches: int, size: int, *, seeded: bool = False, versions: tuple[int, ...] = (4, 7)
) -> dict:
    """Each kind of ids on an empty table and on ``rows`` seeded calls; with ``seeded``, the
    database already holds calls (a copy of a seeded one, ``--template``): version 7 ids only,
    measured on the table as it is first, then on the emptied table."""
    _sql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    report: dict[str, Any] = {
        "rows": rows,
        "batch": size,
        "batches": batches,
        "postgresql": _sql("SHOW server_version")[0],
        "shared_buffers": _sql("SHOW shared_buffers")[0],
        "ids": {},
    }
    for version in (7,) if seeded else versions:
        if seeded:
            figures = _measure_seeded(batches, size, version, seeded_in=None)
            _empty()
            figures["empty"] = _store(batches, size, version)
        else:
            _empty()
            empty = _store(batches, size, version)
            _empty()
            from apps.providers.seeding import call_records_seed

            started = time.perf_counter()
            call_records_seed(count=rows, days=DAYS, id_version=version)
            figures = _measure_seeded(batches, size, version, time.perf_counter() - started)
            figures["empty"] = empty
        report["ids"][f"v{version}"] = figures
        print(f"  v{version} measured", file=sys.stderr)
    return report


def _measure_seeded(batches: int, size: int, version: int, seeded_in: float | None) -> dict:
    _sql("VACUUM ANALYZE providers_llmcall")
    _sql("VACUUM ANALYZE providers_llmcallattempt")
    full = _store(batches, size, version)
    _take_slivers(size, version)
    steady = _store(batches, size, version)
    sizes = _sql(
        "SELECT pg_relation_size('providers_llmcall_pkey'), "
        "pg_relation_size('llmcall_request_id'), pg_total_relation_size('providers_llmcall')"
    )
    return {
        "seeded": full,
        "seeded_steady": steady,
        "seeded_in_seconds": seeded_in,
        "pkey_mb": sizes[0] / 2**20,
        "request_id_index_mb": sizes[1] / 2**20,
        "calls_table_total_mb": sizes[2] / 2**20,
        "prune_one_day": _prune_one_day(),
    }


def _take_slivers(size: int, version: int) -> None:
    """As many calls stored as the table has pages. Vacuum records the sliver of free space
    each full page was left with, and the calls stored next go to those slivers, one to a
    page all over the table: a page written whole to the WAL each, once, until each sliver is
    taken. A live table sees this once per page after each vacuum; measured again after this,
    storing costs what it does the rest of the time."""
    from apps.providers.llm.recording.records import write_records

    (pages,) = _sql(
        "SELECT pg_relation_size('providers_llmcall') / current_setting('block_size')::int"
    )
    for _ in range(int(pages) // size + 1):
        write_records(_batch(size, version))


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def render(report: dict) -> str:
    first = next(iter(report["ids"]))
    base = report["ids"][first]["empty"]
    lines = [
        f"Storing call records: PostgreSQL {report['postgresql']} (shared_buffers "
        f"{report['shared_buffers']}), batches of {report['batch']} calls, median of "
        f"{report['batches']} batches; ratios of {first} ids on an empty table (this run).",
        "",
        f"{'ids':5}{'table':>26}{'ms/batch':>10}{'p90':>8}{'us/call':>9}{'WAL B/call':>11}"
        f"{'time':>8}{'WAL':>8}   (x {first} empty)",
    ]
    for version, figures in report["ids"].items():
        rows = f"{report['rows']:,} rows"
        for table, label in (
            ("empty", "empty"),
            ("seeded", f"{rows}, vacuumed"),
            ("seeded_steady", f"{rows}, steady"),
        ):
            m = figures[table]
            lines.append(
                f"{version:5}{label:>26}{m['ms_per_batch']:>10.1f}{m['ms_per_batch_p90']:>8.1f}"
                f"{m['us_per_call']:>9.0f}{m['wal_bytes_per_call']:>11.0f}"
                f"{_ratio(m['us_per_call'], base['us_per_call']):>8}"
                f"{_ratio(m['wal_bytes_per_call'], base['wal_bytes_per_call']):>8}"
            )
    lines.append("")
    for version, figures in report["ids"].items():
        prune = figures["prune_one_day"]
        seeded_in = figures["seeded_in_seconds"]
        lines.append(
            f"{version}: "
            + (f"seeded in {seeded_in:.0f} s; " if seeded_in is not None else "copied; ")
            + f"primary key "
            f"{figures['pkey_mb']:.0f} MB, request_id index {figures['request_id_index_mb']:.0f} "
            f"MB, calls with indexes {figures['calls_table_total_mb']:.0f} MB; pruning the oldest "
            f"day ({prune['calls']:,} calls, {prune['attempts']:,} attempts) took "
            f"{prune['seconds']:.1f} s ({prune['calls_per_second']:,.0f} calls/s, "
            f"{prune['wal_bytes_per_call']:.0f} WAL B/call)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000, help="calls in the big table")
    parser.add_argument("--batches", type=int, default=60, help="batches measured per table")
    parser.add_argument("--batch", type=int, default=200, help="calls per batch")
    parser.add_argument(
        "--template",
        help="a database seeded earlier (seed_calls, version 7 ids) to copy instead of seeding:"
        " its calls are the big table (nobody may be connected to it meanwhile)",
    )
    parser.add_argument(
        "--ids", default="4,7", help="the kinds of ids measured, in order (4, 7 or 4,7)"
    )
    args = parser.parse_args(argv)
    from bench.environment import _answers

    if not _answers(5432):
        print("bench.store needs PostgreSQL on 127.0.0.1:5432 (WAL positions are its own).")
        return {}
    from bench.environment import django_in_process

    django_in_process(BENCH_DATABASE, redis_db=14, template=args.template)
    if args.template:
        args.rows = int(_sql("SELECT count(*) FROM providers_llmcall")[0])
    versions = tuple(int(v) for v in args.ids.split(","))
    report = run(args.rows, args.batches, args.batch, seeded=bool(args.template), versions=versions)
    print(render(report))
    from bench.environment import save_report

    save_report("store", report)
    return report


if __name__ == "__main__":
    main()
