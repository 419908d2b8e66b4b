"""The SQL the ORM cannot write on every database: a call's service and a call's tag pairs
(PostgreSQL's JSON functions, SQLite's ``json_each``)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Case, CharField, F, Q, QuerySet, Value, When
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
