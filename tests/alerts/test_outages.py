"""What an operator is told when a part goes away, against real processes: Celery beat runs
the health run itself every second, alerts are raised and resolved, and notifications reach a
real webhook receiver. Redis is a private one the test kills and starts again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from apps.accounts.models import Role
from apps.alerts.models import Alert, AlertStatus
from apps.alerts.services import notification_channel_create
from apps.monitoring.models import HealthCheckState
from apps.providers.models import Provider
from apps.providers.services import circuit_breaker_reset
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer, CeleryBeat, CeleryWorker, PrivateRedis
from tests.support.providers import routing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# One outage fails several checks (each its own alert): no channel limit in the way here.
FAST_RUNS = {
    "HEALTH_RUN_INTERVAL": "1",
    "ALERT_CIRCUIT_OPEN_MINUTES": "0.05",
    "NOTIFICATION_RATE_PER_MINUTE": "1000",
}


def eventually(condition: Callable[[], object], timeout: float = 40.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or condition}")


def stored_status(check: str) -> str | None:
    state = HealthCheckState.objects.filter(check_name=check).first()
    return state.status if state else None


def open_alert(cause: str) -> Alert | None:
    return Alert.objects.filter(cause=cause).exclude(status=AlertStatus.RESOLVED).first()


def resolved_alert(cause: str) -> Alert | None:
    return Alert.objects.filter(cause=cause, status=AlertStatus.RESOLVED).first()


def start_beat(env: dict[str, str], first_check: str) -> CeleryBeat:
    """Beat on ``env``, ready once its health run stored ``first_check`` (its heartbeat may be
    in a Redis this process does not read)."""
    return CeleryBeat({**env, **FAST_RUNS}, name="beat-health").start(
        lambda: stored_status(first_check) is not None, timeout=60
    )


def private_worker(env: dict[str, str], name: str) -> CeleryWorker:
    """A worker on the private broker, ready once it says so (this process's Celery app talks
    to the run's broker, where it cannot be pinged)."""
    worker = CeleryWorker(env, name=name, concurrency=1)
    return worker.start(lambda: " ready." in worker.output(), timeout=60)


@pytest.fixture
def channel(webhook):
    return notification_channel_create(name="ops hook", url=webhook.url, min_severity="warning")


@pytest.fixture
def private_platform(server_env) -> Iterator[tuple[PrivateRedis, dict[str, str]]]:
    private = PrivateRedis()
    yield private, {**server_env, "REDIS_URL": private.url}
    private.close()


def test_stopping_redis_is_degraded_alerted_notified_and_resolved_when_back(
    private_platform, channel, webhook
):
    private, env = private_platform
    viewer = bearer(api_key_issue(role=Role.VIEWER))
    server = AsgiServer(env, name="daphne-health").start()
    beat = start_beat(env, "redis")
    try:
        eventually(lambda: stored_status("redis") == "ok", what="redis ok")
        assert (
            httpx.get(f"{server.url}/health/detailed", headers=viewer, timeout=30).json()["checks"][
                "redis"
            ]["status"]
            == "ok"
        )

        private.kill()

        alert = eventually(lambda: open_alert("health:redis"), what="the redis alert")
        assert alert.severity == "warning" and "Redis does not answer" in alert.detail
        detailed = httpx.get(f"{server.url}/health/detailed", headers=viewer, timeout=30)
        assert detailed.json()["checks"]["redis"]["status"] == "degraded"
        assert detailed.json()["status"] == "degraded"
        one = httpx.get(
            f"{server.url}/api/v1/monitoring/health/redis", headers=viewer, timeout=30
        ).json()
        assert one["status"] == "degraded"
        assert one["history"][0]["status"] == "degraded"
        assert one["history"][0]["previous_status"] == "ok"
        raised = webhook.wait_for(lambda m: m["title"] == "[WARNING] Health check Redis: degraded")
        assert "Redis does not answer" in raised["message"] and raised["type"] == "warning"
        assert raised["path"] == f"/hook/{webhook.token}"

        private.restart()

        eventually(lambda: resolved_alert("health:redis"), what="the redis alert resolved")
        webhook.wait_for(lambda m: m["title"] == "[RESOLVED] Health check Redis: degraded")
        assert (
            httpx.get(f"{server.url}/health/detailed", headers=viewer, timeout=30).json()["checks"][
                "redis"
            ]["status"]
            == "ok"
        )
    finally:
        beat.stop()
        server.stop()
    assert Alert.objects.filter(cause="health:redis").count() == 1  # one alert per cause


def test_a_stopped_worker_is_alerted_notified_and_resolved_when_one_is_back(
    private_platform, channel, webhook
):
    # A broker of its own: the session's worker, on the run's Redis, would still answer.
    _, server_env = private_platform
    worker = private_worker(server_env, "celery-health")
    beat = start_beat(server_env, "celery")
    try:
        eventually(lambda: stored_status("celery") == "ok", what="the worker seen")
        assert not open_alert("health:celery")

        worker.stop()

        alert = eventually(lambda: open_alert("health:celery"), what="the worker alert")
        assert alert.severity == "critical" and "no worker answered" in alert.detail
        webhook.wait_for(lambda m: m["title"] == "[CRITICAL] Health check Celery workers: error")

        worker = private_worker(server_env, "celery-health-2")

        eventually(lambda: resolved_alert("health:celery"), what="the worker alert resolved")
        webhook.wait_for(lambda m: m["title"] == "[RESOLVED] Health check Celery workers: error")
    finally:
        beat.stop()
        worker.stop()


def test_a_circuit_left_open_past_the_threshold_is_alerted_and_resolved_when_closed(
    two_providers, asgi_server, operator_key, upstream_a, server_env, channel, webhook
):
    routing(breaker_failure_threshold=1, breaker_cooldown_seconds=3600)
    Provider.objects.filter(name="a").update(max_retries=0)
    upstream_a.configure(status=500)
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
    answer = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        json=chat,
        headers=bearer(operator_key),
        timeout=30,
    )
    assert answer.status_code == 200  # served by b; a's circuit opened
    viewer = bearer(api_key_issue(role=Role.VIEWER))
    detailed = httpx.get(f"{asgi_server.url}/health/detailed", headers=viewer, timeout=30).json()
    assert detailed["checks"]["providers"]["status"] == "degraded"
    assert detailed["providers"]["a"]["circuit"] == "open"
    assert detailed["providers"]["a"]["health"] == "error"

    beat = start_beat(server_env, "providers")
    try:
        alert = eventually(lambda: open_alert("circuit_open:a"), what="the circuit alert")
        assert alert.severity == "critical" and alert.kind == "circuit_open"
        webhook.wait_for(lambda m: m["title"].startswith("[CRITICAL] Circuit of a open for"))
        assert not open_alert("circuit_open:b")

        upstream_a.configure(status=200)
        circuit_breaker_reset(provider=Provider.objects.get(name="a"))

        eventually(lambda: resolved_alert("circuit_open:a"), what="the circuit alert resolved")
        webhook.wait_for(lambda m: m["title"].startswith("[RESOLVED] Circuit of a open"))
    finally:
        beat.stop()
