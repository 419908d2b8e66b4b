"""Settings documented as writable through the REST API are stored, shown and applied: a
model's ``mode`` and a provider's ``responses_api`` (once silently dropped: 200, nothing
stored)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.providers.models import LlmModel, ModelMode, Provider
from tests.support.factories import api_key_issue, bearer

pytestmark = pytest.mark.django_db(transaction=True)


def rest(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def test_a_model_added_through_the_api_serves_embeddings(gateway, upstream_a):
    api = rest()
    provider = api.post(
        "/api/v1/providers",
        {"name": "emb", "kind": "openai_compatible", "base_url": upstream_a.base_url},
        format="json",
    ).json()
    created = api.post(
        "/api/v1/models",
        {"provider": provider["id"], "name": "fake-embed", "mode": "embedding"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["mode"] == "embedding"
    assert LlmModel.objects.get(name="fake-embed").mode == ModelMode.EMBEDDING

    answer = gateway.embeddings.create(model="fake-embed", input="hello")
    assert len(answer.data) == 1 and answer.data[0].embedding

    listed = api.get("/api/v1/models").json()
    assert [m["mode"] for m in listed if m["name"] == "fake-embed"] == ["embedding"]


def test_a_mode_that_does_not_exist_is_refused_by_name():
    provider = Provider.objects.create(name="p", kind="openai")
    refused = rest().post(
        "/api/v1/models", {"provider": provider.pk, "name": "m", "mode": "vision"}, format="json"
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "validation_error"
    assert "embedding" in str(error["details"]["mode"])
    assert not LlmModel.objects.exists()


def test_the_responses_api_flag_is_stored_and_shown():
    api = rest()
    provider = Provider.objects.create(name="p", kind="openai_compatible", base_url="http://h/v1")
    assert api.get(f"/api/v1/providers/{provider.pk}").json()["responses_api"] is None

    changed = api.patch(f"/api/v1/providers/{provider.pk}", {"responses_api": True}, format="json")
    assert changed.status_code == 200 and changed.json()["responses_api"] is True
    provider.refresh_from_db()
    assert provider.responses_api is True

    reset = api.patch(f"/api/v1/providers/{provider.pk}", {"responses_api": None}, format="json")
    assert reset.json()["responses_api"] is None
    provider.refresh_from_db()
    assert provider.responses_api is None


def test_a_viewer_may_not_set_the_responses_api_flag():
    provider = Provider.objects.create(name="p", kind="openai_compatible", base_url="http://h/v1")
    refused = rest(Role.VIEWER).patch(
        f"/api/v1/providers/{provider.pk}", {"responses_api": True}, format="json"
    )
    assert refused.status_code == 403
    provider.refresh_from_db()
    assert provider.responses_api is None


def test_the_admin_sets_and_clears_the_responses_api_flag(admin_client):
    form = {
        "name": "p1", "kind": "openai_compatible", "base_url": "http://h/v1", "enabled": "on",
        "priority": 100, "weight": 1, "timeout_seconds": 30, "max_retries": 2, "api_key": "",
        "models-TOTAL_FORMS": 0, "models-INITIAL_FORMS": 0,
    }  # fmt: skip
    admin_client.post("/admin/providers/provider/add/", {**form, "responses_api": "true"})
    provider = Provider.objects.get()
    assert provider.responses_api is True
    page = admin_client.get(f"/admin/providers/provider/{provider.pk}/change/").content.decode()
    assert 'name="responses_api"' in page

    change = f"/admin/providers/provider/{provider.pk}/change/"
    admin_client.post(change, {**form, "responses_api": "unknown"})
    provider.refresh_from_db()
    assert provider.responses_api is None
