"""A provider's API key and extra headers are secrets bound to where they are sent.

The issue: an operator (who may edit providers but never read the key) PATCHed a provider's
``base_url`` to another host, asked for its health, and the stored key arrived there as
``Authorization: Bearer <key>``. Changing ``base_url`` or ``kind`` now drops the stored key and
extra headers unless new ones come in the same request, through the API and the admin alike; and
extra header values are never shown, like the key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core.crypto import decrypt
from apps.providers.models import Provider
from tests.support.factories import api_key_issue, bearer
from tests.support.providers import deploy, routing

STORED_KEY = "sk-stored-secret-0001"
NEW_KEY = "sk-brand-new-secret-0002"
HEADER_SECRET = "hdr-secret-0003"
MASK = "********"
HELLO = [{"role": "user", "content": "hi"}]


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def provider_create_via_api(api: APIClient, **fields) -> dict:
    body = {"name": "mover", "kind": "openai_compatible", "api_key": STORED_KEY, **fields}
    response = api.post("/api/v1/providers", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


class HeaderCapture:
    """A minimal OpenAI-compatible ``/v1/models`` that remembers the headers of each request:
    the fake upstream records the headers of chat requests only, and probes list models."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                capture.seen.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def header_capture() -> Iterator[HeaderCapture]:
    capture = HeaderCapture()
    yield capture
    capture.stop()


# --- 1. moving a provider drops its key ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_moving_a_provider_sends_its_stored_key_nowhere_new(upstream_a, upstream_b, gateway):
    """The issue: PATCH base_url to another host, then use the provider: the stored key and
    extra headers went there. Now they are dropped; a key given with the move is used."""
    routing()
    api = client()
    created = provider_create_via_api(
        api, base_url=upstream_a.base_url, extra_headers={"X-Secret": HEADER_SECRET}
    )
    pk = created["id"]
    deploy(Provider.objects.get(pk=pk))
    gateway.chat.completions.create(model="chat", messages=HELLO)
    sent = upstream_a.stats()["last_request"]["headers"]
    assert sent["authorization"] == f"Bearer {STORED_KEY}" and sent["x-secret"] == HEADER_SECRET

    moved = api.patch(f"/api/v1/providers/{pk}", {"base_url": upstream_b.base_url}, format="json")
    assert moved.status_code == 200, moved.json()
    assert moved.json()["has_api_key"] is False and moved.json()["extra_headers"] == {}
    probed = api.post(f"/api/v1/providers/{pk}/health")
    assert probed.status_code == 200 and probed.json()["provider"]["health_status"] == "ok"
    assert upstream_b.stats()["by_path"].get("/v1/models") == 1
    gateway.chat.completions.create(model="chat", messages=HELLO)
    sent = upstream_b.stats()["last_request"]["headers"]
    assert "authorization" not in sent and "x-secret" not in sent
    assert STORED_KEY not in json.dumps(sent) and HEADER_SECRET not in json.dumps(sent)

    api.patch(f"/api/v1/providers/{pk}", {"base_url": upstream_a.base_url}, format="json")
    moved_with_key = api.patch(
        f"/api/v1/providers/{pk}",
        {"base_url": upstream_b.base_url, "api_key": NEW_KEY, "extra_headers": {"X-New": "1"}},
        format="json",
    )
    assert moved_with_key.json()["has_api_key"] is True
    assert moved_with_key.json()["extra_headers"] == {"X-New": MASK}
    gateway.chat.completions.create(model="chat", messages=HELLO)
    sent = upstream_b.stats()["last_request"]["headers"]
    assert sent["authorization"] == f"Bearer {NEW_KEY}" and sent["x-new"] == "1"


@pytest.mark.django_db
def test_a_health_probe_after_a_move_does_not_carry_the_stored_key(header_capture):
    """The probe itself (``POST …/health`` lists the models) with the headers it really sent."""
    api = client()
    pk = provider_create_via_api(api, base_url=header_capture.url())["id"]
    api.post(f"/api/v1/providers/{pk}/health")
    assert header_capture.seen[-1]["authorization"] == f"Bearer {STORED_KEY}"

    api.patch(
        f"/api/v1/providers/{pk}", {"base_url": header_capture.url("localhost")}, format="json"
    )
    assert api.post(f"/api/v1/providers/{pk}/health").json()["provider"]["health_status"] == "ok"
    assert STORED_KEY not in header_capture.seen[-1].get("authorization", "")

    api.patch(
        f"/api/v1/providers/{pk}",
        {"base_url": header_capture.url(), "api_key": NEW_KEY},
        format="json",
    )
    api.post(f"/api/v1/providers/{pk}/health")
    assert header_capture.seen[-1]["authorization"] == f"Bearer {NEW_KEY}"
    assert len(header_capture.seen) == 3


@pytest.mark.django_db
class TestMovingKeepsOrDrops:
    def provider(self, api: APIClient) -> int:
        return provider_create_via_api(
            api, base_url="https://one.example/v1", extra_headers={"X-Secret": HEADER_SECRET}
        )["id"]

    def test_changing_the_kind_drops_the_key(self):
        api = client()
        pk = self.provider(api)
        changed = api.patch(f"/api/v1/providers/{pk}", {"kind": "vllm"}, format="json")
        assert changed.json()["has_api_key"] is False and changed.json()["extra_headers"] == {}

    @pytest.mark.parametrize(
        "patch",
        [
            {"priority": 7},
            {"base_url": "https://one.example/v1"},
            {"kind": "openai_compatible", "name": "renamed"},
        ],
    )
    def test_other_changes_keep_the_key(self, patch):
        api = client()
        pk = self.provider(api)
        changed = api.patch(f"/api/v1/providers/{pk}", patch, format="json")
        assert changed.status_code == 200 and changed.json()["has_api_key"] is True
        stored = Provider.objects.get(pk=pk)
        assert decrypt(stored.api_key_encrypted) == STORED_KEY
        assert stored.extra_headers == {"X-Secret": HEADER_SECRET}

    def test_a_refused_move_keeps_everything(self):
        api = client()
        pk = self.provider(api)
        refused = api.patch(
            f"/api/v1/providers/{pk}",
            {"base_url": "https://two.example/v1", "timeout_seconds": 99999},
            format="json",
        )
        assert refused.status_code == 400
        stored = Provider.objects.get(pk=pk)
        assert decrypt(stored.api_key_encrypted) == STORED_KEY
        assert stored.base_url == "https://one.example/v1"


def admin_provider_form(**overrides) -> dict:
    return {
        "name": "p1",
        "kind": "openai_compatible",
        "base_url": "https://one.example/v1",
        "enabled": "on",
        "priority": 100,
        "weight": 1,
        "timeout_seconds": 30,
        "max_retries": 2,
        "api_key": "",
        "new_extra_headers": "",
        "models-TOTAL_FORMS": 0,
        "models-INITIAL_FORMS": 0,
        **overrides,
    }


@pytest.mark.django_db
class TestAdminProviderForm:
    def add(self, admin_client) -> Provider:
        response = admin_client.post(
            "/admin/providers/provider/add/",
            admin_provider_form(
                api_key=STORED_KEY, new_extra_headers=json.dumps({"X-Secret": HEADER_SECRET})
            ),
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        return Provider.objects.get()

    def change(self, admin_client, provider: Provider, **overrides):
        return admin_client.post(
            f"/admin/providers/provider/{provider.pk}/change/",
            admin_provider_form(**overrides),
            follow=True,
        )

    def test_moving_drops_the_key_and_headers_and_says_so(self, admin_client):
        provider = self.add(admin_client)
        assert decrypt(provider.api_key_encrypted) == STORED_KEY
        assert provider.extra_headers == {"X-Secret": HEADER_SECRET}

        response = self.change(admin_client, provider, base_url="https://two.example/v1")
        provider.refresh_from_db()
        assert provider.base_url == "https://two.example/v1"
        assert provider.api_key_encrypted == "" and provider.extra_headers == {}
        warning = " ".join(str(m) for m in response.context["messages"])
        assert "API key and extra headers were removed" in warning

        self.change(
            admin_client,
            provider,
            base_url="https://three.example/v1",
            api_key=NEW_KEY,
            new_extra_headers='{"X-New": "1"}',
        )
        provider.refresh_from_db()
        assert decrypt(provider.api_key_encrypted) == NEW_KEY
        assert provider.extra_headers == {"X-New": "1"}

    def test_other_changes_keep_the_key_and_headers(self, admin_client):
        provider = self.add(admin_client)
        self.change(admin_client, provider, priority=5)
        provider.refresh_from_db()
        assert provider.priority == 5
        assert decrypt(provider.api_key_encrypted) == STORED_KEY
        assert provider.extra_headers == {"X-Secret": HEADER_SECRET}

    def test_header_values_are_never_rendered_back(self, admin_client):
        provider = self.add(admin_client)
        page = admin_client.get(f"/admin/providers/provider/{provider.pk}/change/")
        text = page.content.decode()
        assert HEADER_SECRET not in text and STORED_KEY not in text
        assert f"X-Secret: {MASK}" in text
        refused = self.change(admin_client, provider, new_extra_headers='{"X-B": "a\\r\\nb"}')
        assert "new_extra_headers" in refused.context["adminform"].form.errors
        assert "a\\r\\nb" not in refused.content.decode()

    def test_headers_can_be_replaced_or_removed(self, admin_client):
        provider = self.add(admin_client)
        self.change(admin_client, provider, new_extra_headers='{"X-Other": "2"}')
        provider.refresh_from_db()
        assert provider.extra_headers == {"X-Other": "2"}
        self.change(admin_client, provider, new_extra_headers="{}")
        provider.refresh_from_db()
        assert provider.extra_headers == {}

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"base_url": "https://user:pw@one.example/v1"}, "base_url"),
            ({"new_extra_headers": '{"Bad Name": "x"}'}, "new_extra_headers"),
            ({"timeout_seconds": 3601}, "timeout_seconds"),
            ({"max_retries": 11}, "max_retries"),
            ({"api_key": "sk-a\r\nX-Evil: 1"}, "api_key"),
        ],
    )
    def test_invalid_input_is_a_form_error(self, admin_client, overrides, field):
        provider = self.add(admin_client)
        response = self.change(admin_client, provider, **overrides)
        assert field in response.context["adminform"].form.errors
        provider.refresh_from_db()
        assert provider.base_url == "https://one.example/v1" and provider.max_retries == 2
        assert decrypt(provider.api_key_encrypted) == STORED_KEY


@pytest.mark.django_db
class TestSecretsInTheApi:
    def test_a_key_with_a_line_break_is_refused(self):
        response = client().post(
            "/api/v1/providers", {"name": "k", "api_key": "sk-a\r\nX-Evil: 1"}, format="json"
        )
        assert response.status_code == 400
        assert "api_key" in response.json()["error"]["details"]

    def test_header_values_are_masked_for_everyone_and_kept_by_a_patch(self):
        api = client()
        pk = provider_create_via_api(
            api, base_url="https://one.example/v1", extra_headers={"X-Secret": HEADER_SECRET}
        )["id"]
        viewer = client(Role.VIEWER)
        for who in (api, viewer):
            for path in (
                "/api/v1/providers",
                f"/api/v1/providers/{pk}",
                f"/api/v1/providers/{pk}/health",
            ):
                response = who.get(path)
                assert response.status_code == 200
                assert HEADER_SECRET not in response.content.decode()
        assert viewer.get(f"/api/v1/providers/{pk}").json()["extra_headers"] == {"X-Secret": MASK}

        kept = api.patch(f"/api/v1/providers/{pk}", {"priority": 3}, format="json")
        assert kept.json()["extra_headers"] == {"X-Secret": MASK}
        assert Provider.objects.get(pk=pk).extra_headers == {"X-Secret": HEADER_SECRET}
        replaced = api.patch(
            f"/api/v1/providers/{pk}", {"extra_headers": {"X-Other": "v"}}, format="json"
        )
        assert replaced.json()["extra_headers"] == {"X-Other": MASK}
        assert Provider.objects.get(pk=pk).extra_headers == {"X-Other": "v"}
