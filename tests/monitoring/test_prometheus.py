"""The shipped Prometheus and Grafana files (``monitoring/``): promtool accepts them, and every
metric their expressions name is exposed by ``/metrics`` once a web process and a Celery worker
sharing a metrics directory have served traffic (``/v1`` calls, a stream, a fail-over, a
WebSocket query run by the worker, a failing task)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import httpx
import openai
import pytest
import websockets.sync.client
import yaml
from django.test import override_settings

from apps.monitoring.metrics import queue_lengths
from orchestra.celery import app as celery_app
from tests.providers.test_metrics import sample
from tests.support.factories import bearer
from tests.support.processes import REPO_ROOT, AsgiServer, CeleryWorker

MONITORING = REPO_ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "orchestra.json"
HELLO = [{"role": "user", "content": "x"}]

# What a PromQL expression holds besides metric names.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip
# Prometheus' own series, not the platform's.
SYNTHETIC = {"up"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: install Debian's prometheus package (it ships promtool)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs it in .ci/run", pytrace=False)
        pytest.skip(message)
    return path


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers once label matchers,
    grouping clauses, strings, durations and function calls are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return {name for name in names if name.lower() not in KEYWORDS} - SYNTHETIC


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def names_used() -> set[str]:
    return set().union(*map(metric_names, [*dashboard_expressions(), *alert_expressions()]))


def test_promtool_accepts_the_prometheus_config_and_the_alert_rules():
    tool = promtool()
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run(
            [tool, *command], cwd=MONITORING, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"orchestra"}


def test_the_parser_finds_the_names_and_nothing_else():
    expression = (
        'histogram_quantile(0.95, sum by (provider, le) (rate(x_seconds_bucket{route!~"/a|b"}'
        "[5m]))) > 3 and on(provider) max without (pid) (y_total offset 5m) > bool 2 or up == 0"
    )
    assert metric_names(expression) == {"x_seconds_bucket", "y_total"}
    used = names_used()
    assert {
        "ai_orchestra_llm_queries_total",
        "ai_orchestra_llm_circuit_state",
        "ai_orchestra_celery_queue_length",
        "ai_orchestra_call_records_backlog_seconds",
        "process_resident_memory_bytes",
    } <= used


def test_grafana_provisioning_points_the_dashboard_at_the_provisioned_datasource():
    provisioning = MONITORING / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "orchestra.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"

    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
    titles = " ".join(panel["title"] for panel in panels)
    for wanted in (
        "Request rate",
        "p95 / p99",
        "Queries by provider and status",
        "Time to first token",
        "Tokens",
        "Cost",
        "WebSocket connections",
        "Celery queue length",
        "Celery task duration",
        "memory",
    ):
        assert wanted in titles, wanted


@pytest.mark.django_db(transaction=True)
def test_every_metric_the_dashboard_and_the_alerts_name_is_exposed_after_traffic(
    two_providers, upstream_a, server_env, operator_key, tmp_path
):
    # A queue of this test's own: a worker of another test must not take its tasks.
    queue = f"prometheus-{uuid.uuid4().hex[:8]}"
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "WEBSOCKET_TASK_QUEUE": queue}
    server = AsgiServer(env, name="daphne-prometheus").start()
    worker = CeleryWorker(env, name="celery-prometheus", queues=queue).start()
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=operator_key, max_retries=0)
        client.chat.completions.create(model="chat", messages=HELLO)
        for _chunk in client.chat.completions.create(model="chat", messages=HELLO, stream=True):
            pass
        # a fails twice (its one retry included): b serves the call.
        upstream_a.enqueue({"status": 500}, {"status": 500})
        client.chat.completions.create(model="chat", messages=HELLO)
        # A WebSocket query, which the worker runs (realtime.llm_ask).
        with websockets.sync.client.connect(
            server.ws_url, additional_headers=bearer(operator_key)
        ) as socket:
            socket.send(
                json.dumps({"type": "query", "id": "q", "messages": HELLO, "model": "chat"})
            )
            while json.loads(socket.recv(timeout=20))["type"] not in ("response", "error"):
                pass
        # A task that fails (arguments it does not take).
        celery_app.send_task("providers.store_call_records", args=["unexpected"], queue=queue)

        def scrape() -> str:
            answer = httpx.get(f"{server.url}/metrics", timeout=10)
            assert answer.status_code == 200
            return answer.text

        deadline = time.monotonic() + 20
        text = scrape()
        while time.monotonic() < deadline and not sample(
            text,
            "ai_orchestra_celery_tasks_total",
            task="providers.store_call_records",
            state="failure",
        ):
            time.sleep(0.2)
            text = scrape()
    finally:
        worker.stop()
        server.stop()

    exposed = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE))
    missing = sorted(names_used() - exposed)
    assert not missing, f"named in monitoring/ but not exposed: {missing}"

    # The worker's tasks, counted by task and state and timed.
    llm_ask = {"task": "realtime.llm_ask"}
    assert sample(text, "ai_orchestra_celery_tasks_total", state="success", **llm_ask) == 1
    assert sample(text, "ai_orchestra_celery_task_duration_seconds_count", **llm_ask) == 1
    failed = {"task": "providers.store_call_records", "state": "failure"}
    assert sample(text, "ai_orchestra_celery_tasks_total", **failed) == 1
    for name in ("celery", queue):
        assert re.search(rf'^ai_orchestra_celery_queue_length{{queue="{name}"}} \d', text, re.M)
    # The LLM call the worker made is in the same series as the web's (all served by a: 2 + 1).
    served = {"provider": "a", "model": "fake-model", "status": "success"}
    assert sample(text, "ai_orchestra_llm_queries_total", **served) == 3
    assert sample(text, "ai_orchestra_llm_fallbacks_total", from_provider="a", to_provider="b")
    # Memory of the web process and of the worker, each under its pid.
    pids = set(re.findall(r'^process_resident_memory_bytes\{pid="(\d+)"\}', text, re.M))
    assert {str(server.process.pid), str(worker.process.pid)} <= pids
    # The event-loop lag of the web's loop and of the worker's, which ran the WebSocket query.
    for role in ("web", "worker"):
        count = rf'^ai_orchestra_event_loop_lag_seconds_count{{role="{role}"}} \S+$'
        assert re.search(count, text, re.M), role


def test_queue_lengths_count_every_priority_of_a_queue():
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    with override_settings(BUILD_TASK_QUEUE=queue):
        assert queue_lengths([queue]) == {queue: 0}
        for priority in (None, 0, 5, 9):
            celery_app.send_task("builds.run_step", args=[0], queue=queue, priority=priority)
        try:
            assert queue_lengths([queue, "celery-nothing-here"]) == {
                queue: 4,
                "celery-nothing-here": 0,
            }
        finally:
            with celery_app.connection_for_write() as connection:
                connection.default_channel.queue_purge(queue)
    assert queue_lengths([queue]) == {queue: 0}
