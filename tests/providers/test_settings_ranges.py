"""Every numeric provider and routing setting has a sane range: outside it, the API answers 400
in the one error shape and the admin shows a form error (the rules live in the model)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import Provider, RoutingSettings
from tests.support.factories import api_key_issue, bearer


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def provider_create_via_api(api: APIClient, **fields) -> dict:
    response = api.post(
        "/api/v1/providers", {"name": "p", "kind": "openai", **fields}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


# (field, value just outside, value at the bound, other fields the valid value needs)
Bound = tuple[str, float, float, dict[str, int]]
PROVIDER_BOUNDS: list[Bound] = [
    ("priority", 10_001, 10_000, {}),
    ("priority", -1, 0, {}),
    ("weight", 10_001, 10_000, {}),
    ("weight", -1, 0, {}),
    ("timeout_seconds", 3600.5, 3600, {}),
    ("timeout_seconds", 0.05, 0.1, {}),
    ("max_retries", 11, 10, {}),
    ("max_retries", -1, 0, {}),
    ("rpm_limit", 1_000_001, 1_000_000, {}),
    ("rpm_limit", 0, 1, {}),
    ("tpm_limit", 1_000_000_001, 1_000_000_000, {}),
    ("tpm_limit", 0, 1, {}),
]
ROUTING_BOUNDS: list[Bound] = [
    ("retry_base_delay_ms", 300_001, 300_000, {"retry_max_delay_ms": 300_000}),
    ("retry_base_delay_ms", -1, 0, {}),
    ("retry_max_delay_ms", 300_001, 300_000, {}),
    ("breaker_failure_threshold", 1001, 1000, {}),
    ("breaker_failure_threshold", 0, 1, {}),
    ("breaker_error_rate", 1.01, 1, {}),
    ("breaker_error_rate", 0, 0.001, {}),
    ("breaker_window_seconds", 86_401, 86_400, {}),
    ("breaker_window_seconds", 0, 1, {}),
    ("breaker_min_requests", 100_001, 100_000, {}),
    ("breaker_min_requests", 0, 1, {}),
    ("breaker_cooldown_seconds", 3600.5, 3600, {}),
    ("breaker_cooldown_seconds", 0.05, 0.1, {}),
]


def bound_id(case) -> str:
    field, outside, at, _ = case
    return f"{field}:{outside}->{at}"


@pytest.mark.django_db
class TestRanges:
    @pytest.mark.parametrize("case", PROVIDER_BOUNDS, ids=bound_id)
    def test_provider_settings(self, case):
        field, outside, at, extra = case
        api = client()
        pk = provider_create_via_api(api)["id"]
        refused = api.patch(f"/api/v1/providers/{pk}", {field: outside, **extra}, format="json")
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "validation_error" and field in error["details"]
        assert getattr(Provider.objects.get(pk=pk), field) != outside
        taken = api.patch(f"/api/v1/providers/{pk}", {field: at, **extra}, format="json")
        assert taken.status_code == 200, taken.json()
        assert taken.json()[field] == at

    @pytest.mark.parametrize("case", PROVIDER_BOUNDS[:1], ids=bound_id)
    def test_provider_settings_on_create(self, case):
        field, outside, _, _ = case
        payload = {"name": "n", "kind": "openai", field: outside}
        response = client().post("/api/v1/providers", payload, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["details"]

    @pytest.mark.parametrize("case", ROUTING_BOUNDS, ids=bound_id)
    def test_runtime_settings(self, case):
        field, outside, at, extra = case
        api = client()
        refused = api.patch("/api/v1/runtime-settings", {field: outside, **extra}, format="json")
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "validation_error" and field in error["details"]
        taken = api.patch("/api/v1/runtime-settings", {field: at, **extra}, format="json")
        assert taken.status_code == 200, taken.json()
        assert taken.json()[field] == at

    def test_every_bounded_field_is_covered(self):
        provider_fields = {
            "priority",
            "weight",
            "timeout_seconds",
            "max_retries",
            "rpm_limit",
            "tpm_limit",
        }
        routing_fields = {f.name for f in RoutingSettings._meta.get_fields()} - {
            "id",
            "strategy",
            "default_provider",
            "default_model",
            "fallback_enabled",
            "updated_at",
        }
        assert {case[0] for case in PROVIDER_BOUNDS} == provider_fields
        assert {case[0] for case in ROUTING_BOUNDS} == routing_fields

    def test_the_base_delay_is_at_most_the_max_delay(self):
        api = client()
        refused = api.patch(
            "/api/v1/runtime-settings",
            {"retry_base_delay_ms": 2000, "retry_max_delay_ms": 1000},
            format="json",
        )
        assert refused.status_code == 400
        assert "retry_base_delay_ms" in refused.json()["error"]["details"]
        # against the stored max (5000 by default)
        alone = api.patch("/api/v1/runtime-settings", {"retry_base_delay_ms": 6000}, format="json")
        assert alone.status_code == 400
        equal = api.patch(
            "/api/v1/runtime-settings",
            {"retry_base_delay_ms": 1000, "retry_max_delay_ms": 1000},
            format="json",
        )
        assert equal.status_code == 200

    @pytest.mark.parametrize(
        ("field", "outside"),
        [("breaker_window_seconds", 86_401), ("breaker_error_rate", 0), ("retry_max_delay_ms", 1)],
    )
    def test_the_admin_shows_the_error(self, admin_client, field, outside):
        form = {
            "strategy": "default", "default_model": "", "fallback_enabled": "on",
            "retry_base_delay_ms": 200, "retry_max_delay_ms": 5000,
            "breaker_failure_threshold": 5, "breaker_error_rate": 0.5,
            "breaker_window_seconds": 60, "breaker_min_requests": 20,
            "breaker_cooldown_seconds": 30,
        }  # fmt: skip
        response = admin_client.post(
            "/admin/providers/routingsettings/add/", {**form, field: outside}
        )
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert field in errors or "retry_base_delay_ms" in errors
        assert not RoutingSettings.objects.exists()
        saved = admin_client.post("/admin/providers/routingsettings/add/", form)
        assert saved.status_code == 302
        row = RoutingSettings.objects.get()
        changed = admin_client.post(
            f"/admin/providers/routingsettings/{row.pk}/change/",
            {**form, "breaker_window_seconds": 120},
        )
        assert changed.status_code == 302
        row.refresh_from_db()
        assert row.breaker_window_seconds == 120
