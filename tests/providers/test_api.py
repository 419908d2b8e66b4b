"""The REST API of providers, models, routing settings, breakers and call records."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core.crypto import decrypt
from apps.providers.llm.recording.recorder import recorder
from apps.providers.models import Provider
from tests.support.factories import api_key_issue, bearer

SECRET = "sk-very-secret-key-123"


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def provider_payload(**overrides) -> dict:
    return {"name": "openai-main", "kind": "openai", "api_key": SECRET, **overrides}


@pytest.mark.django_db
class TestProviders:
    def test_create_read_update_delete_never_show_the_key(self):
        api = client()
        created = api.post("/api/v1/providers", provider_payload(), format="json")
        assert created.status_code == 201, created.json()
        provider = Provider.objects.get()
        assert decrypt(provider.api_key_encrypted) == SECRET
        assert SECRET not in provider.api_key_encrypted
        pk = created.json()["id"]
        for response in (created, api.get("/api/v1/providers"), api.get(f"/api/v1/providers/{pk}")):
            text = response.content.decode()
            assert SECRET not in text and provider.api_key_encrypted not in text
            assert "api_key_encrypted" not in text
        assert created.json()["has_api_key"] is True

        kept = api.patch(f"/api/v1/providers/{pk}", {"priority": 5}, format="json")
        assert kept.json()["priority"] == 5 and kept.json()["has_api_key"] is True
        cleared = api.patch(f"/api/v1/providers/{pk}", {"api_key": ""}, format="json")
        assert cleared.json()["has_api_key"] is False

        assert api.delete(f"/api/v1/providers/{pk}").status_code == 204
        assert not Provider.objects.exists()

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"kind": "skynet"}, "kind"),
            ({"weight": -1}, "weight"),
            ({"name": "has spaces"}, "name"),
            ({"timeout_seconds": 0}, "timeout_seconds"),
            ({"base_url": "not a url"}, "base_url"),
            ({"extra_headers": {"X-A": 5}}, "extra_headers"),
        ],
    )
    def test_invalid_provider_input_is_a_400(self, payload, field):
        response = client().post("/api/v1/providers", provider_payload(**payload), format="json")
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]

    def test_duplicate_name_is_a_400(self):
        api = client()
        api.post("/api/v1/providers", provider_payload(), format="json")
        response = api.post("/api/v1/providers", provider_payload(), format="json")
        assert response.status_code == 400 and "name" in response.json()["error"]["details"]

    def test_viewers_read_but_do_not_write(self):
        client().post("/api/v1/providers", provider_payload(), format="json")
        viewer = client(Role.VIEWER)
        assert viewer.get("/api/v1/providers").status_code == 200
        denied = viewer.post("/api/v1/providers", provider_payload(name="x"), format="json")
        assert denied.status_code == 403
        assert APIClient().get("/api/v1/providers").status_code == 401

    def test_unknown_provider_is_a_404(self):
        assert client().get("/api/v1/providers/987654").status_code == 404


@pytest.mark.django_db
class TestModels:
    def make_provider(self, api: APIClient) -> int:
        return api.post("/api/v1/providers", provider_payload(), format="json").json()["id"]

    def test_create_filter_update(self):
        api = client()
        provider = self.make_provider(api)
        created = api.post(
            "/api/v1/models",
            {
                "provider": provider,
                "name": "gpt-4o-mini",
                "input_price_per_million": "0.15",
                "output_price_per_million": "0.6",
                "aliases": ["mini"],
                "fallbacks": ["gpt-4o"],
            },
            format="json",
        )
        assert created.status_code == 201, created.json()
        assert created.json()["input_price_per_million"] == "0.150000"
        assert api.get(f"/api/v1/models?provider={provider}").json()[0]["name"] == "gpt-4o-mini"
        assert api.get("/api/v1/models?enabled=false").json() == []
        pk = created.json()["id"]
        updated = api.patch(f"/api/v1/models/{pk}", {"enabled": False}, format="json")
        assert updated.json()["enabled"] is False

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"aliases": "mini"}, "aliases"),
            ({"aliases": ["ok", ""]}, "aliases"),
            ({"fallbacks": [1]}, "fallbacks"),
            ({"input_price_per_million": "-1"}, "input_price_per_million"),
            ({"provider": 999999}, "provider"),
        ],
    )
    def test_invalid_model_input_is_a_400(self, payload, field):
        api = client()
        provider = self.make_provider(api)
        body = {"provider": provider, "name": "m", **payload}
        response = api.post("/api/v1/models", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]

    def test_same_model_twice_on_a_provider_is_a_400(self):
        api = client()
        provider = self.make_provider(api)
        api.post("/api/v1/models", {"provider": provider, "name": "m"}, format="json")
        again = api.post("/api/v1/models", {"provider": provider, "name": "m"}, format="json")
        assert again.status_code == 400


@pytest.mark.django_db
class TestRuntimeSettings:
    def test_read_and_change(self):
        api = client()
        assert api.get("/api/v1/runtime-settings").json()["strategy"] == "default"
        changed = api.patch(
            "/api/v1/runtime-settings",
            {"strategy": "weighted", "fallback_enabled": False},
            format="json",
        )
        assert changed.status_code == 200
        assert (
            changed.json()["strategy"] == "weighted" and changed.json()["fallback_enabled"] is False
        )

    @pytest.mark.parametrize(
        "payload",
        [{"strategy": "fastest"}, {"breaker_error_rate": 2}, {"retry_base_delay_ms": -5}],
    )
    def test_invalid_settings_are_a_400(self, payload):
        response = client().patch("/api/v1/runtime-settings", payload, format="json")
        assert response.status_code == 400

    def test_viewer_cannot_change_them(self):
        response = client(Role.VIEWER).patch(
            "/api/v1/runtime-settings", {"strategy": "random"}, format="json"
        )
        assert response.status_code == 403


@pytest.mark.django_db(transaction=True)
class TestBreakersAndRecords:
    def test_breakers_list_and_reset(self, two_providers, upstream_a):
        from tests.support.providers import routing

        routing(breaker_failure_threshold=1)
        Provider.objects.filter(name="a").update(max_retries=0)
        upstream_a.configure(status=500)
        api = client()
        api.post("/api/v1/query", {"prompt": "x", "model": "chat"}, format="json")
        states = {b["provider"]: b for b in api.get("/api/v1/circuit-breakers").json()}
        assert states["a"]["state"] == "open" and "unavailable" in states["a"]["last_error"]
        assert states["b"]["state"] == "closed"
        reset = api.post("/api/v1/circuit-breakers/a/reset")
        assert reset.status_code == 200 and reset.json()["state"] == "closed"
        assert api.post("/api/v1/circuit-breakers/zzz/reset").status_code == 404
        assert client(Role.VIEWER).post("/api/v1/circuit-breakers/a/reset").status_code == 403

    def test_call_records_list_filter_and_detail(self, two_providers, upstream_a, recorded_calls):
        api = client()
        since = timezone.now().isoformat()
        upstream_a.enqueue({"status": 503})
        answer = api.post("/api/v1/query", {"prompt": "x", "model": "chat"}, format="json").json()
        recorder.flush()
        recorded_calls(1)
        listed = api.get(
            "/api/v1/llm-calls",
            {"status": "success", "entry_point": "query", "created_at_after": since},
        ).json()
        assert listed["count"] == 1 and listed["results"][0]["id"] == answer["id"]
        assert api.get("/api/v1/llm-calls?status=error").json()["count"] == 0
        detail = api.get(f"/api/v1/llm-calls/{answer['id']}").json()
        assert [a["status"] for a in detail["attempts"]] == ["error", "success"]
        assert api.get("/api/v1/llm-calls/00000000-0000-4000-8000-000000000000").status_code == 404

    def test_provider_health_and_sync_models(self, two_providers):
        api = client()
        pk = two_providers["a"].pk
        health = api.post(f"/api/v1/providers/{pk}/health").json()
        assert health["provider"]["health_status"] == "ok"
        assert health["circuit"]["state"] == "closed"
        synced = api.post(f"/api/v1/providers/{pk}/sync-models").json()
        assert synced == {"created": ["fake-model-2"], "existing": ["fake-model"], "priced": []}

    def test_sync_from_an_unreachable_provider_is_a_502(self):
        api = client()
        pk = api.post(
            "/api/v1/providers",
            provider_payload(kind="openai_compatible", base_url="http://127.0.0.1:9/v1"),
            format="json",
        ).json()["id"]
        response = api.post(f"/api/v1/providers/{pk}/sync-models")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "unavailable"
