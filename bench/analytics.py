"""Benchmark of reading call records at scale: the analytics API, Home, the Calls page, the
call records API, the agent board and an experiment's stats, against a 200 ms target.

In a database of its own (``orchestra_bench_analytics``, or ``--database``, made afresh on the
local PostgreSQL by ``bench.environment.django_in_process`` unless ``--reuse`` finds it seeded),
``seed_calls`` stores ``--rows`` calls over ``--days`` days and rolls their hours up; a tenth
of them are then given to the two variants of a running experiment (500,000 of 5,000,000, the
size issue 20 names). Each page and endpoint is requested 21 times in this process through
Django's test client under the production settings (the first, which warms caches, is not
counted); printed: the median and p95 of the 20, against the target, then the tables' and their
indexes' sizes. Time spent in the client and the response's rendering counts, the network not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "orchestra_bench_analytics"
TARGET_MS = 200.0
REQUESTS = 20
TABLES = [
    "providers_llmcall", "providers_llmcallattempt", "analytics_hourlyrollup",
    "analytics_enduserhourlyrollup", "analytics_taghourlyrollup", "analytics_modelhourlyrollup",
    "analytics_dailyrollup", "analytics_enduserdailyrollup", "analytics_tagdailyrollup",
    "analytics_modeldailyrollup", "analytics_varianthourlyrollup", "analytics_variantdailyrollup",
]  # fmt: skip


def _seeded() -> bool:
    """Whether the bench database exists and holds calls (``--reuse`` skips seeding then)."""
    import psycopg

    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
        with psycopg.connect(url, autocommit=True) as db:
            row = db.execute("SELECT EXISTS (SELECT 1 FROM providers_llmcall)").fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def _sql(statement: str, params: list[Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def _seed(rows: int, days: float) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("seed_calls", "--count", str(rows), "--days", str(days))
    seeded_in = time.perf_counter() - started
    _vacuum()
    return seeded_in


def _vacuum() -> None:
    """Statistics and visibility maps as autovacuum keeps them on a live database."""
    for table in TABLES:
        _sql(f"VACUUM ANALYZE {table}")


def _experiment(user: Any, since: datetime) -> int:
    """A running experiment whose two variants have a tenth of the calls, given to them by an
    update no call record hook sees: the variant rollups are filled again afterwards."""
    from apps.analytics.services import rollups_fill_variants
    from apps.experiments.models import ExperimentPhase, ExperimentSettings
    from apps.experiments.services import experiment_create, experiment_start

    ExperimentSettings.objects.update_or_create(pk=1, defaults={"enabled": True})
    experiment = experiment_create(
        name=f"bench {since:%Y-%m-%d %H:%M:%S.%f}",
        by=user,
        variants=[
            {"name": "control", "type": "control", "traffic_percentage": 50, "config": {}},
            {"name": "treatment", "type": "treatment", "traffic_percentage": 50, "config": {}},
        ],
    )
    experiment_start(experiment=experiment, by=user)
    ExperimentPhase.objects.filter(experiment=experiment).update(started_at=since)
    type(experiment).objects.filter(pk=experiment.pk).update(started_at=since)
    control, treatment = experiment.variants.order_by("position").values_list("pk", flat=True)
    _sql(
        "UPDATE providers_llmcall SET experiment_variant_id = CASE WHEN random() < 0.5 "
        "THEN %s ELSE %s END WHERE random() < 0.1",
        [control, treatment],
    )
    started = time.perf_counter()
    counted = rollups_fill_variants()
    print(
        f"  variant rollups filled ({counted:,} calls) in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    for table in ("providers_llmcall", *TABLES[-2:]):
        _sql(f"VACUUM ANALYZE {table}")
    return int(experiment.pk)


def _targets(rows: int, days: float) -> tuple[Any, dict[str, str], list[tuple[str, str, str]]]:
    """A superuser's logged-in client, its API key's header, and (group, name, path)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.accounts.services import api_key_create
    from apps.providers.models import LlmCall

    user = get_user_model().objects.filter(username="bench").first()
    user = user or get_user_model().objects.create_superuser("bench", "bench@x.example", "bench")
    _, raw_key = api_key_create(user=user, name="bench")
    client = Client()
    client.force_login(user)
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    experiment = _experiment(user, since)
    month = f"startDate={(now - timedelta(days=30)).isoformat()}&endDate={now.isoformat()}"
    month = month.replace("+", "%2B")
    quarter = f"startDate={(now - timedelta(days=90)).isoformat()}&endDate={now.isoformat()}"
    quarter = quarter.replace("+", "%2B")
    provider = LlmCall.objects.values_list("provider_name", flat=True).first()
    caller = "seed-user-1"  # the username of the seeded keys' most frequent caller
    deep = max(rows // 2, 0)
    calls = "/admin/providers/llmcall/"
    # The next link (a cursor) of the page at that offset: keyset, whatever the depth.
    deep_page = client.get(
        f"/api/v1/llm-calls?offset={deep}&limit=50", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )
    next_page = (deep_page.json().get("next") or "/api/v1/llm-calls").removeprefix(
        "http://testserver"
    )
    targets = [
        ("analytics", "realtime (day)", "/api/v1/analytics/realtime?timeRange=day"),
        ("analytics", "usage per day, 30 d", f"/api/v1/analytics/usage?period=day&{month}"),
        ("analytics", "costs by model, 30 d", f"/api/v1/analytics/costs?groupBy=model&{month}"),
        ("analytics", "costs by end user, 30 d",
         f"/api/v1/analytics/costs?groupBy=end_user&{month}"),
        ("analytics", "costs by tag, 30 d", f"/api/v1/analytics/costs?groupBy=tag&{month}"),
        *[
            ("analytics", f"costs by {group}, 30 d",
             f"/api/v1/analytics/costs?groupBy={group}&{month}")
            for group in ("provider", "user", "key", "workspace", "service")
        ],
        ("analytics", "usage per week, 90 d", f"/api/v1/analytics/usage?period=week&{quarter}"),
        ("analytics", "performance, 30 d", f"/api/v1/analytics/performance?{month}"),
        ("analytics", "export (rollups, csv), 30 d",
         f"/api/v1/analytics/export?format=csv&source=rollups&{month}"),
        ("analytics", "export (rollups, json), 30 d",
         f"/api/v1/analytics/export?format=json&source=rollups&{month}"),
        ("pages", "Analytics page, 30 d", "/admin/usage-analytics/?range=30d"),
        ("pages", "Analytics page, 90 d", "/admin/usage-analytics/?range=90d"),
        ("pages", "Analytics page, 30 d, CSV", "/admin/usage-analytics/?range=30d&format=csv"),
        ("pages", "Home", "/admin/"),
        ("pages", "Calls, unfiltered", calls),
        ("pages", "Calls by provider", f"{calls}?provider_name={provider}"),
        ("pages", "Calls by status", f"{calls}?status__exact=error"),
        ("pages", "Calls by caller", f"{calls}?caller={caller}"),
        ("pages", "Calls, search", f"{calls}?q=gpt-4o"),
        ("api", "llm-calls, first page", "/api/v1/llm-calls"),
        ("api", f"llm-calls, offset {deep:,}", f"/api/v1/llm-calls?offset={deep}&limit=50"),
        ("api", f"llm-calls, page {deep // 50 + 1:,}",
         f"/api/v1/llm-calls?page={deep // 50 + 1}&limit=50"),
        ("api", f"llm-calls, next after {deep:,}", next_page),
        ("pages", "Agent board", "/admin/agent-board/"),
        ("api", "experiment stats", f"/api/v1/experiments/{experiment}/stats"),
    ]  # fmt: skip
    return client, {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}, targets


def _time(client: Any, headers: dict[str, str], path: str) -> dict[str, Any]:
    seconds = []
    status = 0
    for attempt in range(REQUESTS + 1):
        started = time.perf_counter()
        response = client.get(path, **headers)
        if response.streaming:
            b"".join(response.streaming_content)
        elapsed = time.perf_counter() - started
        status = response.status_code
        if attempt:
            seconds.append(elapsed)
    ms = sorted(s * 1000 for s in seconds)
    return {
        "status": status,
        "median_ms": statistics.median(ms),
        "p95_ms": ms[int(0.95 * len(ms)) - 1] if len(ms) >= 20 else ms[-1],
    }


def _sizes() -> dict[str, dict[str, float]]:
    found = {}
    for table in TABLES:
        ((rows, table_bytes, index_bytes),) = _sql(
            "SELECT c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid) "
            "FROM pg_class c WHERE c.relname = %s",
            [table],
        )
        found[table] = {
            "rows": max(int(rows), 0),
            "table_mb": table_bytes / 2**20,
            "indexes_mb": index_bytes / 2**20,
        }
    return found


def run(rows: int, days: float, *, seed: bool = True) -> dict[str, Any]:
    seeded_in = _seed(rows, days) if seed else 0.0
    client, headers, targets = _targets(rows, days)
    timings = []
    for group, name, path in targets:
        timings.append({"group": group, "name": name, "path": path,
                        **_time(client, headers, path)})  # fmt: skip
        print(f"  {name}: {timings[-1]['p95_ms']:.0f} ms", file=sys.stderr)
    return {
        "rows": rows,
        "days": days,
        "seeded_and_rolled_in_seconds": seeded_in,
        "postgresql": _sql("SHOW server_version")[0][0],
        "shared_buffers": _sql("SHOW shared_buffers")[0][0],
        "timings": timings,
        "sizes": _sizes(),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Reading {report['rows']:,} calls over {report['days']:g} days: PostgreSQL "
        f"{report['postgresql']} (shared_buffers {report['shared_buffers']}); seeded and rolled "
        f"up in {report['seeded_and_rolled_in_seconds']:.0f} s; {REQUESTS} requests each after "
        f"one warm-up; target p95 < {TARGET_MS:.0f} ms.",
        "",
        f"{'':40}{'status':>7}{'median':>9}{'p95':>9}{'x target':>10}",
    ]
    for t in report["timings"]:
        verdict = "ok" if t["p95_ms"] < TARGET_MS and t["status"] == 200 else "OVER"
        lines.append(
            f"{t['name']:40}{t['status']:>7}{t['median_ms']:>7.0f}ms{t['p95_ms']:>7.0f}ms"
            f"{t['p95_ms'] / TARGET_MS:>9.2f}x  {verdict}"
        )
    lines += ["", f"{'table':34}{'rows':>12}{'table MB':>10}{'indexes MB':>12}"]
    for table, size in report["sizes"].items():
        lines.append(
            f"{table:34}{size['rows']:>12,}{size['table_mb']:>10.0f}{size['indexes_mb']:>12.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global BENCH_DATABASE  # the module's functions read it
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000, help="calls to seed")
    parser.add_argument("--days", type=float, default=90.0, help="over how many days")
    parser.add_argument("--database", default=BENCH_DATABASE, help="the bench database's name")
    parser.add_argument(
        "--reuse", action="store_true",
        help="keep a database seeded by an earlier run (its rows, not --rows, are measured)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from bench.environment import _answers

    if not _answers(5432):
        print("bench.analytics needs PostgreSQL on 127.0.0.1:5432.")
        return {}
    BENCH_DATABASE = args.database
    reuse = args.reuse and _seeded()
    from bench.environment import django_in_process

    django_in_process(BENCH_DATABASE, redis_db=13, fresh=not reuse)
    if reuse:
        from apps.analytics.services import rollups_roll_pending

        args.rows = int(_sql("SELECT count(*) FROM providers_llmcall")[0][0])
        rollups_roll_pending()  # what beat would have rolled since (a migration may mark days)
        _vacuum()
    report = run(args.rows, args.days, seed=not reuse)
    print(render(report))
    from bench.environment import save_report

    save_report("analytics", report)
    return report


if __name__ == "__main__":
    main()
