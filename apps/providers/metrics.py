"""Prometheus metrics of the LLM core (names from seed 000).

With ``PROMETHEUS_MULTIPROC_DIR`` set, every process (web replicas, Celery workers) writes its
samples there and ``/metrics`` sums them, so the counts hold with many processes.
"""

from __future__ import annotations

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
