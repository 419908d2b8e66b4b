from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from django.test import Client

from tests.support.processes import AsgiServer, CeleryBeat

pytestmark = pytest.mark.django_db


def test_health_has_the_documented_shape():
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in {"ok", "degraded"}
    datetime.fromisoformat(body["timestamp"])
    assert body["uptime"] >= 0 and body["version"]
    assert set(body["services"]) >= {"database", "cache", "channel_layer", "celery"}
    assert body["services"]["database"] == "ok"
    assert body["services"]["cache"] == "ok"
    assert body["services"]["channel_layer"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_health_is_ok_with_every_service_up(asgi_server, celery_worker, server_env):
    beat = CeleryBeat(server_env).start()
    try:
        body = httpx.get(f"{asgi_server.url}/health").json()
    finally:
        beat.stop()
    assert body["status"] == "ok", body
    assert set(body["services"].values()) <= {"ok", "disabled"}
    assert body["services"]["celery"] == "ok"


def test_health_is_503_when_the_database_is_unreachable(server_env):
    env = {
        **server_env,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/unreachable",
        "DATABASE_POOL_TIMEOUT": "2",
    }
    server = AsgiServer(env, name="daphne-no-db").start()
    try:
        response = httpx.get(f"{server.url}/health", timeout=30)
    finally:
        server.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["services"]["database"] == "error"


def test_metrics_are_exposed_for_prometheus():
    Client().get("/health")
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert "django_http_requests_total_by_method_total" in response.content.decode()
