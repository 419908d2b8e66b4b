"""Prometheus metrics of the LLM core (the names dashboards of earlier versions expect).

With ``PROMETHEUS_MULTIPROC_DIR`` set, every process (web replicas, Celery workers) writes its
samples there and ``/metrics`` sums them, so the counts hold with many processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

queries_total = Counter(
    "ai_orchestra_llm_queries_total", "LLM requests by outcome.", ["provider", "model", "status"]
)
query_duration_seconds = Histogram(
    "ai_orchestra_llm_query_duration_seconds",
    "LLM request duration, all attempts included.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
time_to_first_token_seconds = Histogram(
    "ai_orchestra_llm_time_to_first_token_seconds",
    "Time from request to the first streamed token.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
tokens_total = Counter(
    "ai_orchestra_llm_tokens_total", "Tokens by direction.", ["provider", "model", "direction"]
)
cost_total = Counter(
    "ai_orchestra_llm_cost_usd_total", "Cost in USD from model prices.", ["provider", "model"]
)
attempt_failures_total = Counter(
    "ai_orchestra_llm_attempt_failures_total", "Failed attempts by error.", ["provider", "error"]
)
retries_total = Counter(
    "ai_orchestra_llm_retries_total", "Attempts repeated on the same provider.", ["provider"]
)
fallbacks_total = Counter(
    "ai_orchestra_llm_fallbacks_total",
    "Requests served by another deployment than the first tried.",
    ["from_provider", "to_provider"],
)
circuit_state = Gauge(
    "ai_orchestra_llm_circuit_state",
    "Circuit breaker state last seen: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    multiprocess_mode="mostrecent",
)
CIRCUIT_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class DeploymentMetrics:
    """The labelled series of one provider/model, looked up once: ``labels()`` is not free."""

    calls: dict[str, Counter]
    duration: Histogram
    time_to_first_token: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


@lru_cache(maxsize=4096)
def for_deployment(provider: str, model: str) -> DeploymentMetrics:
    return DeploymentMetrics(
        calls={
            status: queries_total.labels(provider, model, status)
            for status in ("success", "error", "cancelled")
        },
        duration=query_duration_seconds.labels(provider, model),
        time_to_first_token=time_to_first_token_seconds.labels(provider, model),
        input_tokens=tokens_total.labels(provider, model, "input"),
        output_tokens=tokens_total.labels(provider, model, "output"),
        cost=cost_total.labels(provider, model),
    )
