"""The admin of providers, models, routing settings and call records."""

from __future__ import annotations

import pytest

from apps.core.crypto import decrypt
from apps.providers.models import HealthStatus, LlmCall, LlmModel, Provider, RoutingSettings

SECRET = "sk-admin-entered-secret-42"


def provider_form(**overrides) -> dict:
    return {
        "name": "p1",
        "kind": "openai",
        "base_url": "",
        "enabled": "on",
        "priority": 100,
        "weight": 1,
        "timeout_seconds": 30,
        "max_retries": 2,
        "extra_headers": "{}",
        "api_key": "",
        "models-TOTAL_FORMS": 0,
        "models-INITIAL_FORMS": 0,
        **overrides,
    }


@pytest.mark.django_db
def test_key_is_write_only_encrypted_and_never_shown(admin_client):
    response = admin_client.post(
        "/admin/providers/provider/add/", provider_form(api_key=SECRET), follow=True
    )
    assert response.status_code == 200
    provider = Provider.objects.get()
    assert decrypt(provider.api_key_encrypted) == SECRET

    page = admin_client.get(f"/admin/providers/provider/{provider.pk}/change/").content.decode()
    assert SECRET not in page and provider.api_key_encrypted not in page
    assert "set" in page
    listing = admin_client.get("/admin/providers/provider/").content.decode()
    assert SECRET not in listing and provider.api_key_encrypted not in listing

    admin_client.post(f"/admin/providers/provider/{provider.pk}/change/", provider_form())
    provider.refresh_from_db()
    assert decrypt(provider.api_key_encrypted) == SECRET, "a blank key keeps the stored one"

    admin_client.post(
        f"/admin/providers/provider/{provider.pk}/change/", provider_form(clear_api_key="on")
    )
    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""


@pytest.mark.django_db(transaction=True)
def test_actions_sync_models_probe_and_reset(admin_client, upstream_a):
    provider = Provider.objects.create(name="a", base_url=upstream_a.base_url)
    for action in ("sync_models", "probe_health", "reset_circuit"):
        response = admin_client.post(
            "/admin/providers/provider/",
            {"action": action, "_selected_action": [provider.pk]},
            follow=True,
        )
        assert response.status_code == 200
    assert set(LlmModel.objects.values_list("name", flat=True)) == {"fake-model", "fake-model-2"}
    provider.refresh_from_db()
    assert provider.health_status == HealthStatus.OK and provider.health_latency_ms is not None


@pytest.mark.django_db(transaction=True)
def test_sync_action_reports_an_unreachable_provider(admin_client):
    provider = Provider.objects.create(name="dead", base_url="http://127.0.0.1:9/v1")
    response = admin_client.post(
        "/admin/providers/provider/",
        {"action": "sync_models", "_selected_action": [provider.pk]},
        follow=True,
    )
    assert any("dead:" in str(m) for m in response.context["messages"])


@pytest.mark.django_db
def test_routing_settings_are_a_single_row(admin_client):
    assert admin_client.get("/admin/providers/routingsettings/add/").status_code == 200
    RoutingSettings.objects.create()
    assert admin_client.get("/admin/providers/routingsettings/add/").status_code == 403
    row = RoutingSettings.objects.get()
    assert (
        admin_client.post(f"/admin/providers/routingsettings/{row.pk}/delete/").status_code == 403
    )


@pytest.mark.django_db
def test_call_records_are_read_only(admin_client):
    from django.utils import timezone

    call = LlmCall.objects.create(created_at=timezone.now(), entry_point="query", status="success")
    assert admin_client.get("/admin/providers/llmcall/").status_code == 200
    page = admin_client.get(f"/admin/providers/llmcall/{call.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get("/admin/providers/llmcall/add/").status_code == 403


@pytest.mark.django_db
def test_model_admin_lists_models(admin_client):
    provider = Provider.objects.create(name="p")
    LlmModel.objects.create(provider=provider, name="m1", aliases=["alias-one"])
    page = admin_client.get("/admin/providers/llmmodel/?q=m1").content.decode()
    assert "m1" in page and "alias-one" in page
