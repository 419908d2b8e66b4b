import httpx
import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core.health import forget_results
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer
from tests.support.providers import routing

pytestmark = pytest.mark.django_db(transaction=True)


def feature_status() -> dict:
    forget_results()
    response = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER))).get(
        "/api/v1/feature-status"
    )
    assert response.status_code == 200
    return response.json()


def test_without_a_worker_celery_has_a_fallback(two_providers, server_env):
    """A server on a broker no worker listens to (another Redis database) says so."""
    lonely = f"{server_env['REDIS_URL'].rsplit('/', 1)[0]}/15"
    if lonely.startswith("unix://"):
        lonely = server_env["REDIS_URL"] + "?db=15"
    server = AsgiServer({**server_env, "REDIS_URL": lonely}, name="daphne-lonely").start()
    try:
        key = api_key_issue(role=Role.VIEWER)
        status = httpx.get(
            f"{server.url}/api/v1/feature-status",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
    finally:
        server.stop()
    assert status["available"]["redis"] is True
    assert status["available"]["celery_worker"] is False
    assert "wait in the queue" in status["fallbacks"]["celery_worker"]
    assert status["fallbacks"]["redis"] is None


def test_with_a_worker_nothing_needs_a_fallback(two_providers, celery_worker):
    status = feature_status()
    assert status["available"]["celery_worker"] is True
    assert status["fallbacks"]["celery_worker"] is None


def test_providers_and_model_failover_order(two_providers):
    routing(fallback_enabled=True)
    status = feature_status()
    assert status["available"]["providers"] == {"a": True, "b": True}
    assert status["fallbacks"]["models"]["chat"] == ["a", "b"]
    assert status["fallbacks"]["provider_failover"] is True

    two_providers["a"].enabled = False
    two_providers["a"].save()
    status = feature_status()
    assert status["available"]["providers"]["a"] is False
    assert status["fallbacks"]["models"]["chat"] == ["b"]


def test_anonymous_is_refused():
    assert APIClient().get("/api/v1/feature-status").status_code == 401
