"""The bookkeeping of one LLM call: its attempts, timings, record and metrics.

An ``Execution`` goes along with a request through the engine: each try at a deployment adds an
attempt, the first content marks the time to first token, and ``finish`` writes the one call
record (through ``recorder.py``) and updates the metrics, once, whatever ended the call. A
stream is also recorded when it starts (``record_started``), so a process that dies in the
middle of it leaves a record behind.

When tracing is on (``apps.core.tracing``), the call is a span (``llm.call``), child of the
request's, from the start of its bookkeeping to ``finish``; its attempts become its children
there, from the times they kept; and its record carries the trace id.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from apps.accounts.admission import charge
from apps.core import tracing
from apps.core.metrics import count, observe

from ..models import CallStatus
from . import metrics
from .calls import NO_USAGE, LlmRequest, Usage
from .config import Deployment
from .errors import ProviderError
from .recording.recorder import recorder
from .routing.state import routing_state

logger = logging.getLogger(__name__)

MAX_COST = Decimal("999999.99999999")  # the record's cost column


class Execution:
    """Bookkeeping for one request: its attempts, timings and the record written at the end."""

    def __init__(self, request: LlmRequest, *, stream: bool) -> None:
        self.request = request
        self.stream = stream
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)  # timezone.now() with USE_TZ, less its settings read
        self.attempts: list[dict[str, Any]] = []
        self.first_token_at: float | None = None
        self.deployment: Deployment | None = None
        self.last_tried: Deployment | None = None
        self.finished = False
        # Set by the engine when the serving attempt may clear the provider's circuit: at once
        # for a completion, at the end for a stream (one cut mid-answer is a failure).
        self.success_pending = False
        self.probed = False
        self.span = (
            tracing.start_span(
                "llm.call",
                {
                    "orchestra.call_id": str(request.call_id),
                    "orchestra.entry_point": request.entry_point,
                    "orchestra.endpoint": request.endpoint,
                    "orchestra.stream": stream,
                    "gen_ai.request.model": request.model,
                },
            )
            if tracing.enabled
            else None
        )

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def add_attempt(
        self,
        deployment: Deployment,
        started: float,
        started_at: datetime,
        error: ProviderError | None = None,
        cancelled: bool = False,
    ) -> None:
        status = (
            CallStatus.CANCELLED
            if cancelled
            else (CallStatus.ERROR if error else CallStatus.SUCCESS)
        )
        self.attempts.append(
            {
                "number": len(self.attempts) + 1,
                "provider_id": deployment.provider.id,
                "provider_name": deployment.provider.name,
                "model_name": deployment.model.name,
                "status": status,
                "error_code": error.code if error else ("cancelled" if cancelled else ""),
                "error_message": error.message[:500] if error else "",
                "http_status": error.http_status if error else None,
                "latency_ms": (time.perf_counter() - started) * 1000,
                "started_at": started_at,
            }
        )
        self.last_tried = deployment
        if error:
            metrics.attempt_failures_total.labels(deployment.provider.name, error.code).inc()

    def record_started(self) -> None:
        """Record the call as running (a stream that has begun); ``finish`` replaces it."""
        recorder.record_started(
            self._call_record(status=CallStatus.RUNNING, usage=NO_USAGE, latency=0.0)
        )

    def finish(
        self,
        *,
        status: str,
        usage: Usage = NO_USAGE,
        finish_reason: str = "",
        error: ProviderError | None = None,
    ) -> tuple[Decimal, float]:
        """Record the call once; returns its cost and latency."""
        if self.finished:
            return Decimal(0), 0.0
        self.finished = True
        latency = time.perf_counter() - self.started
        call = self._call_record(
            status=status, usage=usage, latency=latency, finish_reason=finish_reason, error=error
        )
        recorder.record(call, self.attempts)
        if call["cost"]:
            charge(self.request.caller, end_user=self.request.user, cost=call["cost"])
        if self.span is not None:
            self._trace(call)
        if self.deployment:
            routing_state().note_outcome(self.deployment.provider.name, usage.total_tokens, False)
        try:
            self._observe(status, usage, call["cost"], latency, self._ttft())
        except Exception:  # metrics must never fail a request that has been served
            logger.exception("could not update the LLM metrics")
        return call["cost"], latency * 1000

    def discard(self) -> None:
        """A call refused before it was routed (a spent budget): no record, no metrics."""
        self.finished = True
        if self.span is not None:
            tracing.span_end(self.span, attributes={"orchestra.status": "refused"})

    def _ttft(self) -> float | None:
        return (self.first_token_at - self.started) if self.first_token_at else None

    @property
    def time_to_first_token_ms(self) -> float | None:
        ttft = self._ttft()
        return ttft * 1000 if ttft is not None else None

    def _call_record(
        self,
        *,
        status: str,
        usage: Usage,
        latency: float,
        finish_reason: str = "",
        error: ProviderError | None = None,
    ) -> dict[str, Any]:
        deployment, request = self.deployment, self.request
        # A failed call names the last deployment it tried (its attempts name each one).
        named = deployment or self.last_tried
        cost = (
            min(deployment.model.cost(usage.input_tokens, usage.output_tokens), MAX_COST)
            if deployment
            else Decimal(0)
        )
        ttft = self._ttft()
        cancelled = status == CallStatus.CANCELLED
        record = {
            "id": request.call_id,
            "request_id": request.request_id[:128],
            "created_at": self.started_at,
            "entry_point": request.entry_point,
            "endpoint": request.endpoint,
            "user_id": request.caller.user_id,
            "api_key_id": request.caller.api_key_id,
            "workspace_id": request.caller.workspace_id,
            "end_user": request.user,
            "tags": request.tags,
            "requested_model": request.model[:200],
            "provider_id": named.provider.id if named else None,
            "model_id": named.model.id if named else None,
            "provider_name": named.provider.name if named else "",
            "model_name": named.model.name if named else "",
            "stream": self.stream,
            "status": status,
            "error_code": error.code if error else ("cancelled" if cancelled else ""),
            "error_message": error.message[:500] if error else "",
            "finish_reason": (finish_reason or "")[:32],
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "tokens_estimated": usage.estimated,
            "cost": cost,
            "latency_ms": latency * 1000,
            "time_to_first_token_ms": ttft * 1000 if ttft is not None else None,
            "attempt_count": len(self.attempts),
            "experiment_variant_id": request.experiment_variant_id,
            "build_id": request.build_id,
            "build_step_id": request.build_step_id,
            "agent_id": request.agent_id,
        }
        if self.span is not None:
            record["trace_id"] = tracing.trace_id_of(self.span)
        return record

    def _trace(self, call: dict[str, Any]) -> None:
        """End the call's span, its attempts as its children (the serving one with the call's
        tokens and cost)."""
        span = self.span
        assert span is not None
        try:
            for attempt in self.attempts:
                start_ns = int(attempt["started_at"].timestamp() * 1e9)
                served = attempt["status"] == CallStatus.SUCCESS
                tracing.span_record(
                    "llm.attempt",
                    parent=span,
                    start_ns=start_ns,
                    end_ns=start_ns + int(attempt["latency_ms"] * 1e6),
                    attributes={
                        "orchestra.attempt": attempt["number"],
                        "gen_ai.provider.name": attempt["provider_name"],
                        "gen_ai.request.model": attempt["model_name"],
                        "orchestra.status": attempt["status"],
                        "orchestra.error_code": attempt["error_code"] or None,
                        "http.response.status_code": attempt["http_status"],
                        "gen_ai.usage.input_tokens": call["input_tokens"] if served else None,
                        "gen_ai.usage.output_tokens": call["output_tokens"] if served else None,
                        "orchestra.cost": float(call["cost"]) if served else None,
                    },
                    error=(attempt["error_message"] or attempt["error_code"])
                    if attempt["status"] == CallStatus.ERROR
                    else None,
                )
            tracing.span_end(
                span,
                attributes={
                    "gen_ai.provider.name": call["provider_name"] or None,
                    "gen_ai.response.model": call["model_name"] or None,
                    "orchestra.status": call["status"],
                    "orchestra.error_code": call["error_code"] or None,
                    "orchestra.attempts": call["attempt_count"],
                    "gen_ai.usage.input_tokens": call["input_tokens"],
                    "gen_ai.usage.output_tokens": call["output_tokens"],
                    "orchestra.cost": float(call["cost"]),
                },
                error=(call["error_message"] or call["error_code"])
                if call["status"] == CallStatus.ERROR
                else None,
            )
        except Exception:  # tracing must never fail a request that has been served
            logger.exception("could not trace an LLM call")

    def _observe(
        self, status: str, usage: Usage, cost: Decimal, latency: float, ttft: float | None
    ) -> None:
        # A failed call counts against the last deployment it tried, as its record names it;
        # one that tried none stays "none": callers' model names are unbounded.
        named = self.deployment or self.last_tried
        provider = named.provider.name if named else "none"
        model = named.model.name if named else "none"
        series = metrics.for_deployment(provider, model)
        count(series.calls[status])  # batched per loop iteration (``apps.core.metrics``)
        observe(series.duration, latency)
        if ttft is not None:
            observe(series.time_to_first_token, ttft)
        if usage.total_tokens:
            count(series.input_tokens, usage.input_tokens)
            count(series.output_tokens, usage.output_tokens)
        if cost:
            count(series.cost, float(cost))
        first = self.attempts[0]["provider_name"] if self.attempts else provider
        if self.deployment and first != provider:
            metrics.fallbacks_total.labels(first, provider).inc()
