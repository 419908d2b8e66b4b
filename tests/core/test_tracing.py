"""OpenTelemetry tracing against a real OTLP/HTTP receiver: a server of the test's own that
decodes the exporter's protobuf. A ``/v1`` call that fails over is one trace (the request, the
call, an attempt per provider), continuing the caller's ``traceparent``; a build started by a
REST call goes on in the Celery worker in the same trace; JSON log lines carry the trace id;
and without ``OTEL_EXPORTER_OTLP_ENDPOINT`` nothing of OpenTelemetry is even imported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from websockets.sync.client import connect

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.builds.models import Build, BuildStatus
from apps.core import tracing
from apps.providers.llm.bookkeeping import Execution
from apps.providers.llm.calls import NO_USAGE, LlmRequest
from apps.providers.models import CallStatus, LlmCall, Provider
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import REPO_ROOT, AsgiServer, CeleryWorker
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

TRACED_QUEUE = "traced"  # only this module's worker takes its build steps and WebSocket queries
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
BUILD_CALLER_TRACE = "5ce0e9a56015fec5aadfa328ae398115"


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, Any]
    error: bool


def _value(any_value: Any) -> Any:
    return (
        getattr(any_value, any_value.WhichOneof("value")) if any_value.WhichOneof("value") else None
    )


class OtlpReceiver:
    """``POST /v1/traces`` with an ``ExportTraceServiceRequest``: its spans are kept."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.receive(self.path, self.headers.get("Content-Type", ""), body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, path: str, content_type: str, body: bytes) -> None:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            service=resource.get("service.name", ""),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            error=span.status.code == span.status.STATUS_CODE_ERROR,
                        )
                    )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def otel_env(server_env: dict[str, str], endpoint: str) -> dict[str, str]:
    return {
        **server_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        "BUILD_TASK_QUEUE": TRACED_QUEUE,
        "WEBSOCKET_TASK_QUEUE": TRACED_QUEUE,
    }


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced_web(server_env, receiver) -> Iterator[AsgiServer]:
    server = AsgiServer(otel_env(server_env, receiver.endpoint), name="daphne-traced").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_worker(server_env, receiver) -> Iterator[CeleryWorker]:
    env = otel_env(server_env, receiver.endpoint)
    worker = CeleryWorker(env, name="celery-traced", concurrency=2, queues=TRACED_QUEUE).start()
    yield worker
    worker.stop()


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def test_a_v1_call_that_fails_over_is_one_trace_of_request_call_and_attempts(
    two_providers, traced_web, receiver, operator_key, upstream_a, upstream_b, recorded_calls
):
    Provider.objects.filter(name="a").update(max_retries=0)
    upstream_a.enqueue({"status": 500})
    response = httpx.post(
        f"{traced_web.url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hello there"}]},
        headers={**bearer(operator_key), "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        timeout=30,
    )
    assert response.status_code == 200 and response.headers["x-orchestra-provider"] == "b"

    def complete() -> list[ReceivedSpan] | None:
        """The request's span ends last, after the response: it may come in a later batch."""
        spans = receiver.trace(CALLER_TRACE)
        names = [span.name for span in spans]
        wanted = {"POST /v1/chat/completions": 1, "llm.call": 1, "llm.attempt": 2}
        return spans if all(names.count(n) >= k for n, k in wanted.items()) else None

    spans = eventually(complete, 10, "the call's spans exported")
    (request,) = by_name(spans, "POST /v1/chat/completions")
    (call,) = by_name(spans, "llm.call")
    attempts = sorted(
        by_name(spans, "llm.attempt"), key=lambda s: s.attributes["orchestra.attempt"]
    )
    assert request.parent_id == CALLER_SPAN  # the caller's traceparent, honoured
    assert request.service == "orchestra-web" and request.attributes["http.route"] == (
        "/v1/chat/completions"
    )
    assert call.parent_id == request.span_id
    assert call.attributes["orchestra.call_id"] == response.headers["x-orchestra-call-id"]
    assert call.attributes["gen_ai.provider.name"] == "b" and not call.error
    assert [a.parent_id for a in attempts] == [call.span_id, call.span_id]
    failed, served = attempts
    assert failed.attributes["gen_ai.provider.name"] == "a" and failed.error
    assert failed.attributes["orchestra.status"] == CallStatus.ERROR
    assert failed.attributes["http.response.status_code"] == 500
    assert served.attributes["gen_ai.provider.name"] == "b" and not served.error
    assert served.attributes["gen_ai.request.model"] == "fake-model"
    assert served.attributes["orchestra.status"] == CallStatus.SUCCESS
    usage = response.json()["usage"]
    assert served.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert served.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert served.attributes["orchestra.cost"] > 0
    assert "gen_ai.usage.input_tokens" not in failed.attributes

    (record,) = recorded_calls(1)
    assert record.trace_id == CALLER_TRACE  # the call record names its trace


def test_a_build_step_continues_the_web_requests_trace_in_the_worker(
    two_providers, traced_web, traced_worker, receiver, upstream_a
):
    Agent.objects.create(name="planner", role="planner", model="chat")
    upstream_a.enqueue({"content": "The plan."})
    created = httpx.post(
        f"{traced_web.url}/api/v1/builds",
        json={
            "title": "Traced",
            "input": "x",
            "steps": [{"name": "plan", "agent": "planner", "prompt": "Plan: {input}"}],
        },
        headers={
            **bearer(api_key_issue(role=Role.OPERATOR)),
            "traceparent": f"00-{BUILD_CALLER_TRACE}-{CALLER_SPAN}-01",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text

    def step_traced() -> ReceivedSpan | None:
        steps = [
            s
            for s in by_name(receiver.spans, "build.step")
            if s.attributes.get("orchestra.build_id") == created.json()["id"]
        ]
        return steps[0] if steps else None

    step = eventually(step_traced, 30, "the build step's span exported")
    assert step.service == "orchestra-worker" and step.trace_id == BUILD_CALLER_TRACE

    def up_to_the_root() -> list[ReceivedSpan] | None:
        """From the step up, parent by parent, once every span up to the caller's has arrived."""
        ids = {span.span_id: span for span in receiver.trace(step.trace_id)}
        chain = [step]
        while chain[-1].parent_id in ids:
            chain.append(ids[chain[-1].parent_id])
        return chain if chain[-1].parent_id == CALLER_SPAN else None

    # The Celery task's run in the worker, its message sent by the web process, the request.
    chain = eventually(up_to_the_root, 10, "the step's ancestors exported")
    request = chain[-1]
    assert request.name == "POST api/v1/builds" and request.service == "orchestra-web"
    kinds = [(span.service, span.name) for span in chain]
    assert ("orchestra-worker", "run/builds.run_step") in kinds
    assert ("orchestra-web", "apply_async/builds.run_step") in kinds

    spans = receiver.trace(step.trace_id)
    (call,) = [s for s in by_name(spans, "llm.call") if s.parent_id == step.span_id]
    assert call.service == "orchestra-worker"
    build = Build.objects.get(pk=created.json()["id"])
    eventually(lambda: Build.objects.get(pk=build.pk).finished, 30, "the build finished")
    assert Build.objects.get(pk=build.pk).status == BuildStatus.SUCCEEDED


def test_a_websocket_query_is_a_span_that_the_worker_continues(
    two_providers, traced_web, traced_worker, receiver
):
    key = api_key_issue(role=Role.OPERATOR)
    hello = [{"role": "user", "content": "hello there"}]
    with connect(traced_web.ws_url, additional_headers=bearer(key)) as ws:
        ws.send(json.dumps({"type": "query", "id": "q1", "messages": hello, "model": "chat"}))
        while (answer := json.loads(ws.recv(timeout=15)))["type"] not in ("response", "error"):
            pass
    assert answer["type"] == "response", answer

    def call_traced() -> list[ReceivedSpan] | None:
        calls = [
            s
            for s in by_name(receiver.spans, "llm.call")
            if s.attributes["orchestra.call_id"] == answer["call_id"]
        ]
        return calls or None

    (call,) = eventually(call_traced, 15, "the query's call exported")
    (query,) = eventually(
        lambda: by_name(receiver.trace(call.trace_id), "ws.query"), 10, "the query's span"
    )
    assert call.service == "orchestra-worker" and query.service == "orchestra-web"
    assert query.attributes["orchestra.status"] == "response" and not query.error

    def up_to_the_query() -> list[ReceivedSpan] | None:
        ids = {span.span_id: span for span in receiver.trace(call.trace_id)}
        chain = [call]
        while chain[-1].parent_id in ids:
            chain.append(ids[chain[-1].parent_id])
        return chain if chain[-1] == query else None

    chain = eventually(up_to_the_query, 10, "the call's ancestors up to the query exported")
    assert ("orchestra-worker", "run/realtime.llm_ask") in [(s.service, s.name) for s in chain]


SETUP_AND_LOG = """
import json, logging, os, sys
import django
django.setup()
from apps.core import tracing
from opentelemetry import trace
on = tracing.tracing_setup(process="web")
logger = logging.getLogger("apps.test")
with trace.get_tracer("test").start_as_current_span("work") as span:
    logger.warning("inside")
    trace_id = f"{span.get_span_context().trace_id:032x}"
print(json.dumps({"on": on, "trace_id": trace_id}), file=sys.stderr)
"""


def test_json_log_lines_carry_the_trace_id(server_env, receiver):
    env = {**otel_env(server_env, receiver.endpoint), "LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", SETUP_AND_LOG],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert result.returncode == 0, result.stderr
    outcome = lines[-1]
    assert outcome["on"] is True
    (logged,) = [line for line in lines if line.get("message") == "inside"]
    assert logged["trace_id"] == outcome["trace_id"] and "request_id" in logged
    eventually(lambda: receiver.trace(outcome["trace_id"]), 10, "the span exported at exit")


IMPORT_THE_WEB_APP = """
import json, sys
import orchestra.asgi
from django.conf import settings
from apps.core import tracing
from opentelemetry import trace
print(json.dumps({
    "enabled": tracing.enabled,
    "provider": type(trace.get_tracer_provider()).__name__,
    "loaded": sorted(
        name for name in sys.modules
        if name.startswith(("opentelemetry.instrumentation", "opentelemetry.exporter",
                            "opentelemetry.sdk.trace"))
    ),
    "middleware": [name for name in settings.MIDDLEWARE if "opentelemetry" in name],
}))
"""


def test_without_an_endpoint_nothing_is_installed(server_env):
    env = {k: v for k, v in server_env.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_THE_WEB_APP],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    # No tracer provider, no instrumentation, no exporter: none of them is even imported (the
    # Redis client imports OpenTelemetry's API for metrics of its own, off unless set up).
    assert outcome == {
        "enabled": False,
        "provider": "ProxyTracerProvider",
        "loaded": [],
        "middleware": [],
    }


def test_without_an_endpoint_a_call_makes_no_span_and_its_record_no_trace_id():
    assert not tracing.enabled
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    execution = Execution(LlmRequest(messages=[{"role": "user", "content": "hi"}]), stream=False)
    assert execution.span is None
    assert "trace_id" not in execution._call_record(
        status=CallStatus.SUCCESS, usage=NO_USAGE, latency=0.0
    )


def test_a_calls_admin_page_links_its_trace_when_a_viewer_is_configured(admin_client, settings):
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    call = LlmCall.objects.create(
        created_at=timezone.now(), entry_point="query", status="success", trace_id=trace_id
    )
    page = f"/admin/providers/llmcall/{call.pk}/change/"
    assert trace_id in admin_client.get(page).content.decode()
    assert "jaeger" not in admin_client.get(page).content.decode()

    settings.TRACE_VIEWER_URL = "https://jaeger.example.com/trace/{trace_id}"
    shown = admin_client.get(page).content.decode()
    assert f'href="https://jaeger.example.com/trace/{trace_id}"' in shown
