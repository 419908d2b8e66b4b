"""A dead Celery beat is visible: its scheduler leaves a heartbeat, and /health and the feature
status report beat down once the heartbeat is older than ``BEAT_HEARTBEAT_MAX_AGE``."""

from __future__ import annotations

import httpx
import pytest

from apps.accounts.models import Role
from tests.support.factories import api_key_issue
from tests.support.processes import AsgiServer, CeleryBeat
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

MAX_AGE = 3.0


def test_a_killed_beat_shows_in_health_and_feature_status(server_env, celery_worker):
    env = {**server_env, "BEAT_HEARTBEAT_MAX_AGE": str(MAX_AGE)}
    key = api_key_issue(role=Role.VIEWER)
    server = AsgiServer(env, name="daphne-beat").start()
    beat = CeleryBeat(env).start()
    try:

        def health() -> dict:
            return httpx.get(f"{server.url}/health", timeout=30).json()

        def features() -> dict:
            return httpx.get(
                f"{server.url}/api/v1/feature-status",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()

        alive = eventually(lambda: (body := health())["services"]["beat"] == "ok" and body)
        assert alive["checks"]["beat"]["details"]["age_seconds"] <= MAX_AGE
        assert features()["available"]["celery_beat"] is True
        assert features()["fallbacks"]["celery_beat"] is None

        beat.kill()  # SIGKILL: no goodbye
        down = eventually(
            lambda: (body := health())["services"]["beat"] == "error" and body,
            MAX_AGE + 10,
            "health reports beat down",
        )
        assert down["status"] == "degraded"
        assert (
            "sweeps, approval expiry and canaries are not running"
            in (down["checks"]["beat"]["message"])
        )
        status = features()
        assert status["available"]["celery_beat"] is False
        assert "approvals neither expire nor escalate" in status["fallbacks"]["celery_beat"]
    finally:
        beat.stop()
        server.stop()
