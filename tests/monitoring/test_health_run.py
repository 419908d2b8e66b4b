"""The health endpoints for probes and people, the host checks, and the periodic run's
stored state changes."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from apps.accounts.models import Role
from apps.core.health import forget_results, health_check, health_checks
from apps.monitoring.models import HealthCheckChange, HealthCheckState
from apps.monitoring.services import health_run
from tests.support.factories import api_key_issue, bearer

pytestmark = pytest.mark.django_db


def test_probes_answer_without_credentials():
    client = Client()
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database"}


def test_the_detailed_health_is_for_viewers_and_holds_every_check_host_and_provider():
    client = Client()
    assert client.get("/health/detailed").status_code in (401, 403)
    body = client.get("/health/detailed", headers=bearer(api_key_issue(role=Role.VIEWER))).json()
    assert {
        "database",
        "redis",
        "cache",
        "channel_layer",
        "celery",
        "beat",
        "disk",
        "memory",
        "cpu",
        "providers",
        "call_records",
    } <= set(body["checks"])
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["memory"]["details"]["total_bytes"] > 0
    assert set(body["checks"]["disk"]["details"]) == {"var", "media"}
    assert body["system"]["cpu"]["cores"] >= 1 and body["system"]["memory"]["percent"] > 0
    assert "providers" in body


def test_the_monitoring_api_has_each_check_and_the_system():
    key = bearer(api_key_issue(role=Role.VIEWER))
    client = Client()
    assert client.get("/api/v1/monitoring/health", headers=key).json()["checks"]["disk"]
    assert client.get("/api/v1/monitoring/health/memory", headers=key).json()["status"] == "ok"
    assert client.get("/api/v1/monitoring/health/nope", headers=key).status_code == 404
    assert client.get("/api/v1/monitoring/system", headers=key).json()["process"]["pid"] > 0


@override_settings(
    HEALTH_MEMORY_MAX_PERCENT=0.0, HEALTH_DISK_FREE_MIN_PERCENT=100.0, HEALTH_CPU_MAX_PERCENT=-1.0
)
def test_host_thresholds_degrade_their_checks():
    forget_results()
    key = bearer(api_key_issue(role=Role.VIEWER))
    checks = Client().get("/health/detailed", headers=key).json()["checks"]
    assert checks["memory"]["status"] == "degraded" and "in use" in checks["memory"]["message"]
    assert checks["disk"]["status"] == "degraded" and "free" in checks["disk"]["message"]
    assert checks["cpu"]["status"] == "degraded"
    forget_results()


def test_the_run_stores_state_changes_only():
    flips = iter(["ok", "ok", "degraded"])

    @health_check("flipping")
    def flipping():
        from apps.core.health import CheckResult

        return CheckResult(next(flips), "as told")

    try:
        for _ in range(3):
            health_run()
    finally:
        health_checks.unregister("flipping")
    changes = list(HealthCheckChange.objects.filter(check_name="flipping").order_by("id"))
    assert [(c.previous_status, c.status) for c in changes] == [("", "ok"), ("ok", "degraded")]
    state = HealthCheckState.objects.get(check_name="flipping")
    assert state.status == "degraded" and state.since == changes[-1].changed_at
    assert HealthCheckState.objects.filter(check_name="database", status="ok").exists()
