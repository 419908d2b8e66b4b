"""OpenTelemetry tracing: on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its traces-only form) is
set, and then configured by the standard ``OTEL_*`` variables (service name, headers, sampler,
batch sizes, propagators); off otherwise, and then it costs nothing.

``tracing_setup`` runs once per process as it starts (``orchestra/asgi.py`` for the web,
``orchestra/celery.py`` for the worker and beat). Off, it imports nothing of OpenTelemetry and
installs no tracer provider and no instrumentation; the request path reads the module's
``enabled`` flag and makes no span. On, it installs the SDK's tracer provider with an OTLP/HTTP
exporter behind a batch processor and the maintained instrumentations: Django (with
``traceparent`` honoured on every page and REST call), Celery (the trace goes into a task in
its message's headers and carries on in the worker), psycopg and Redis. ``/v1``, served beside
Django, is wrapped in the ASGI instrumentation by ``apps.gateway.asgi``.

Database and Redis commands, and task messages, sent outside any traced work (the call
recorder's thread, the live log's, beat's schedule) are not sampled: they would make a trace of
their own several times a second and bury the ones that matter.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger(__name__)

# Read on hot paths: a module attribute, set once at process start.
enabled = False

TRACER_NAME = "orchestra"
AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue | None]


def tracing_configured() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, and the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_setup(*, process: str) -> bool:
    """Install tracing for this process (``web``, ``worker`` or ``beat``) when configured;
    returns whether it is on. Idempotent. The web process must call it before Django builds
    its middleware chain (the Django instrumentation adds a middleware)."""
    global enabled
    if enabled or not tracing_configured():
        return enabled
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes: dict[str, str] = {"service.namespace": "orchestra", "orchestra.process": process}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = f"orchestra-{process}"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.sampler = _background_work_dropped(provider.sampler)  # the OTEL_TRACES_SAMPLER one
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if process == "web":
        DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    enabled = True
    logger.info("tracing on: spans of the %s process exported over OTLP", process)
    return True


def _background_work_dropped(sampler: Any) -> Any:
    """``sampler``, except for client and producer spans that start a trace (see the module's
    docstring): those are dropped, and so is what a worker does for such a message."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind, get_current_span

    class BackgroundWorkDropped(Sampler):
        def should_sample(
            self,
            parent_context,
            trace_id,
            name,
            kind=None,
            attributes=None,
            links=None,
            trace_state=None,
        ) -> SamplingResult:
            orphan = not get_current_span(parent_context).get_span_context().is_valid
            if orphan and kind in (SpanKind.CLIENT, SpanKind.PRODUCER):
                return SamplingResult(Decision.DROP)
            return sampler.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"BackgroundWorkDropped{{{sampler.get_description()}}}"

    return BackgroundWorkDropped()


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


def _clean(attributes: Attributes | None) -> dict[str, AttributeValue]:
    return {name: value for name, value in (attributes or {}).items() if value is not None}


def start_span(name: str, attributes: Attributes | None = None) -> Span | None:
    """A span of ours, child of the current one, not made current; None when tracing is off.
    The caller ends it (``span_end``)."""
    if not enabled:
        return None
    return _tracer().start_span(name, attributes=_clean(attributes))


def span_end(
    span: Span | None, *, attributes: Attributes | None = None, error: str | None = None
) -> None:
    """End ``span`` (None: nothing), with last attributes; ``error`` marks it failed."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attributes(_clean(attributes))
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def span_record(
    name: str,
    *,
    parent: Span,
    start_ns: int,
    end_ns: int,
    attributes: Attributes | None = None,
    error: str | None = None,
) -> None:
    """A finished child of ``parent`` whose times are known afterwards (an attempt, written
    when its call ends)."""
    from opentelemetry import trace

    span = _tracer().start_span(
        name,
        context=trace.set_span_in_context(parent),
        start_time=start_ns,
        attributes=_clean(attributes),
    )
    if error:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end_ns)


@contextlib.contextmanager
def span_current(span: Span | None) -> Iterator[None]:
    """Make ``span`` the current one inside the block (what starts there is its child)."""
    if span is None:
        yield
        return
    from opentelemetry import trace

    with trace.use_span(span, end_on_exit=False):
        yield


@contextlib.contextmanager
def span_around(name: str, attributes: Attributes | None = None) -> Iterator[Span | None]:
    """A span of ours around the block, current inside it, failed by an exception leaving it.
    Nothing when tracing is off."""
    if not enabled:
        yield None
        return
    with _tracer().start_as_current_span(name, attributes=_clean(attributes)) as span:
        yield span


def trace_id_of(span: Span | None) -> str | None:
    """The span's trace id as 32 hex digits, as trace viewers show it."""
    if span is None:
        return None
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_trace_id() -> str | None:
    """The trace id of the work in progress; None when tracing is off or nothing is traced."""
    if not enabled:
        return None
    from opentelemetry import trace

    return trace_id_of(trace.get_current_span())


def context_carry(into: contextvars.Context) -> None:
    """Carry the current trace into ``into``, a context made afresh for work handed to
    another thread or loop (``apps.core.runtime.run_sync``)."""
    if enabled:
        from opentelemetry import context

        into.run(context.attach, context.get_current())


def asgi_traced(app: Any, *, route_of: Callable[[str], str]) -> Any:
    """``app`` (an ASGI application served beside Django) in the ASGI instrumentation: one
    server span per request, named by its route, continuing the caller's ``traceparent``."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, str]]:
        route = route_of(scope.get("path", ""))
        return f"{scope.get('method', 'HTTP')} {route}", {"http.route": route}

    return OpenTelemetryMiddleware(
        app, default_span_details=span_details, exclude_spans=["receive", "send"]
    )


def trace_url(trace_id: str | None, template: str) -> str | None:
    """The trace viewer's page of a trace (``TRACE_VIEWER_URL`` with ``{trace_id}``)."""
    if not (trace_id and template):
        return None
    return template.replace("{trace_id}", trace_id)
