"""The SQL the ORM cannot write on every database: a call's service, a call's tag pairs
(PostgreSQL's JSON functions, SQLite's ``json_each``) and the rollup export's CSV cells as
PostgreSQL's ``COPY`` writes them."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    DecimalField,
    F,
    FloatField,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import Expression

from apps.providers.models import CallStatus, EntryPoint

# A call's service: builds' and agents' calls by their entry point, an experiment's by its
# variant, the rest by the OpenAI API they used (chat, completions, embeddings, responses).
SERVICES = ("chat", "completions", "embeddings", "responses", "build", "agent", "experiment")


def service_expression() -> Expression:
    return Case(
        When(entry_point=EntryPoint.BUILD, then=Value("build")),
        When(entry_point=EntryPoint.AGENT, then=Value("agent")),
        When(experiment_variant_id__isnull=False, then=Value("experiment")),
        default=F("endpoint"),
        output_field=CharField(),
    )


def service_filter(service: str) -> Q:
    """The raw records of a service (the same rule as ``service_expression``)."""
    if service in ("build", "agent"):
        return Q(entry_point=service)
    not_special = ~Q(entry_point__in=[EntryPoint.BUILD, EntryPoint.AGENT])
    if service == "experiment":
        return not_special & Q(experiment_variant_id__isnull=False)
    return not_special & Q(experiment_variant_id__isnull=True, endpoint=service)


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


FIGURES_SQL = (
    "COUNT(*) AS requests, SUM(CASE WHEN c.status = %s THEN 1 ELSE 0 END) AS errors, "
    "SUM(c.input_tokens) AS input_tokens_sum, SUM(c.output_tokens) AS output_tokens_sum, "
    "SUM(c.cost) AS cost_sum, SUM(c.latency_ms) AS latency_sum"
)


def tag_pairs_sql(calls: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """The figures of ``calls`` per tag pair (columns ``tag_key``, ``tag_value`` and the
    figures of ``services._figures``). The calls' own columns are selected by the inner query,
    so only their tags are expanded (a join back to the table let the planner expand every
    row's)."""
    columns = ("status", "input_tokens", "output_tokens", "cost", "latency_ms", "tags")
    inner, params = calls.values(*columns).order_by().query.sql_with_params()
    pairs = (
        "jsonb_each_text(c.tags) AS t(key, value)" if _postgresql() else "json_each(c.tags) AS t"
    )
    return (
        f"SELECT t.key AS tag_key, t.value AS tag_value, {FIGURES_SQL} "
        f"FROM ({inner}) c CROSS JOIN {pairs} GROUP BY t.key, t.value",
        (CallStatus.ERROR, *params),
    )


# --- CSV written by PostgreSQL --------------------------------------------------------------------
# ``COPY ... TO STDOUT WITH (FORMAT csv)`` writes the rollup export as Python's ``csv`` module
# wrote the rows Django read (``api.views._csv``), cell for cell: each column is turned into the
# text Python gives its value (``datetime.isoformat``, ``str(Decimal)``, ``repr(float)``) and an
# empty string into NULL (PostgreSQL quotes an empty string, Python does not).


def _python_datetime(expr: str) -> str:
    utc = f"({expr})::timestamptz AT TIME ZONE 'UTC'"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', "
        f"{expr}) = {expr} THEN '' ELSE to_char({utc}, '.US') END || '+00:00'"
    )


def _python_decimal(expr: str) -> str:
    """``str(Decimal)``: scientific under 1e-6 (``0E-8``, ``1.2E-7``), plain otherwise."""
    digits = f"ltrim(replace(abs({expr})::text, '.', ''), '0')"
    scientific = (
        f"CASE WHEN {expr} < 0 THEN '-' ELSE '' END || left({digits}, 1) || CASE WHEN "
        f"length({digits}) > 1 THEN '.' || substr({digits}, 2) ELSE '' END || 'E' || "
        f"(length({digits}) - 1 - scale({expr}))::text"
    )
    return (
        f"CASE WHEN {expr} = 0 AND scale({expr}) > 6 THEN '0E-' || scale({expr})::text "
        f"WHEN {expr} = 0 OR abs({expr}) >= 0.000001 THEN ({expr})::text ELSE {scientific} END"
    )


def _python_float(expr: str) -> str:
    """``repr(float)``: PostgreSQL's shortest text (``extra_float_digits`` 1, its default),
    with ``.0`` after a whole number and plain digits from 1e15 to 1e16 as Python has them
    (compared as floats first: a regular expression on every cell took as long as the rest)."""
    text = f"({expr})::text"
    digits = f"replace(regexp_replace({text}, '^-|e\\+15$', '', 'g'), '.', '')"
    e15 = (
        f"CASE WHEN {expr} < 0 THEN '-' ELSE '' END || CASE WHEN length({digits}) <= 16 THEN "
        f"rpad({digits}, 16, '0') || '.0' ELSE left({digits}, 16) || '.' || "
        f"substr({digits}, 17) END"
    )
    return (
        f"CASE WHEN {expr} = 'NaN' THEN 'nan' WHEN {expr} = 'Infinity' THEN 'inf' "
        f"WHEN {expr} = '-Infinity' THEN '-inf' "
        f"WHEN abs({expr}) < 1e15 AND {expr} = trunc({expr}) THEN {text} || '.0' "
        f"WHEN abs({expr}) >= 1e15 AND abs({expr}) < 1e16 THEN {e15} ELSE {text} END"
    )


def python_text_sql(field: object, expr: str) -> str:
    """The text Python's ``csv`` writer gives ``field``'s value (``expr``); NULL for none."""
    if isinstance(field, DateTimeField):
        return _python_datetime(expr)
    if isinstance(field, DecimalField):
        return _python_decimal(expr)
    if isinstance(field, FloatField):
        return _python_float(expr)
    if isinstance(field, CharField | TextField):
        return f"NULLIF({expr}, '')"
    return expr


def copy_csv_sql(
    sources: list[QuerySet[Any]],
    columns: tuple[str, ...],
    fields: list[object],
    *,
    order: int,
) -> tuple[str, tuple[Any, ...]]:
    """A ``COPY`` of the rows of ``sources`` (``values_list`` querysets of the same columns,
    each of type ``fields``) together, ordered by their first ``order`` columns, as CSV under
    a header of ``columns``, every cell the text Python's ``csv`` writer gives its value."""
    parts: list[str] = []
    params: list[Any] = []
    for rows in sources:
        sql, found = rows.query.sql_with_params()
        parts.append(f"({sql})")
        params.extend(found)
    names = [f"c{index}" for index in range(len(columns))]
    cells = ", ".join(
        f"{python_text_sql(field, f'u.{name}')} AS {connection.ops.quote_name(column)}"
        for name, column, field in zip(names, columns, fields, strict=True)
    )
    # Sorted before the cells are written: sorting the written rows, wider, took longer.
    ordered = (
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) AS u({', '.join(names)}) "
        f"ORDER BY {', '.join(names[:order])}"
    )
    return (
        f"COPY (SELECT {cells} FROM ({ordered}) AS u) TO STDOUT WITH (FORMAT csv, HEADER)",
        tuple(params),
    )
