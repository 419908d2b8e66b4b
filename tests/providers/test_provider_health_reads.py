"""``GET /api/v1/providers/{id}/health`` reads the last probe (viewers included) without calling
the provider or writing anything; ``POST`` probes now and is for operators."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import HealthStatus
from tests.support.factories import api_key_issue, bearer


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def provider_writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if "providers_" in q["sql"] and q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))
    ]


@pytest.mark.django_db
class TestHealth:
    def test_a_viewer_reads_the_last_probe_without_probing(self, two_providers, upstream_a):
        provider = two_providers["a"]
        viewer = client(Role.VIEWER)
        with CaptureQueriesContext(connection) as queries:
            response = viewer.get(f"/api/v1/providers/{provider.pk}/health")
        assert response.status_code == 200
        body = response.json()
        assert body["provider"]["health_status"] == HealthStatus.UNKNOWN
        assert body["provider"]["health_checked_at"] is None
        assert body["circuit"]["state"] == "closed"
        assert "/v1/models" not in upstream_a.stats()["by_path"]
        assert provider_writes(queries) == []
        provider.refresh_from_db()
        assert provider.health_checked_at is None

    def test_a_viewer_may_not_probe(self, two_providers, upstream_a):
        provider = two_providers["a"]
        denied = client(Role.VIEWER).post(f"/api/v1/providers/{provider.pk}/health")
        assert denied.status_code == 403
        assert "/v1/models" not in upstream_a.stats()["by_path"]
        provider.refresh_from_db()
        assert provider.health_checked_at is None

    def test_an_operator_probes_with_a_post_and_a_get_then_reads_it(
        self, two_providers, upstream_a
    ):
        provider = two_providers["a"]
        probed = client().post(f"/api/v1/providers/{provider.pk}/health")
        assert probed.status_code == 200
        assert probed.json()["provider"]["health_status"] == HealthStatus.OK
        assert probed.json()["circuit"]["state"] == "closed"
        assert upstream_a.stats()["by_path"]["/v1/models"] == 1
        provider.refresh_from_db()
        checked_at = provider.health_checked_at
        assert checked_at is not None

        read = client(Role.VIEWER).get(f"/api/v1/providers/{provider.pk}/health").json()
        assert read["provider"]["health_status"] == HealthStatus.OK
        assert read["provider"]["health_latency_ms"] == provider.health_latency_ms
        assert set(read) == set(probed.json()) == {"provider", "circuit"}
        assert upstream_a.stats()["by_path"]["/v1/models"] == 1
        provider.refresh_from_db()
        assert provider.health_checked_at == checked_at

    def test_unknown_provider_is_a_404_either_way(self):
        assert client().get("/api/v1/providers/987654/health").status_code == 404
        assert client().post("/api/v1/providers/987654/health").status_code == 404
