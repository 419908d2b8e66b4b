from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Role
from apps.accounts.services import api_key_authenticate, api_key_create, api_key_revoke
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def get_me(raw_key: str | None):
    headers = bearer(raw_key) if raw_key else {}
    return APIClient().get("/api/v1/me", headers=headers)


def test_anonymous_request_is_refused_with_401_and_a_bearer_challenge():
    response = get_me(None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_valid_key_authenticates_as_its_user():
    user = user_create(role=Role.VIEWER)
    raw_key = api_key_issue(user=user)
    response = get_me(raw_key)
    assert response.status_code == 200
    assert response.json()["username"] == user.username
    assert response.json()["role"] == "viewer"


def test_revoked_key_is_refused():
    user = user_create()
    api_key, raw_key = api_key_create(user=user, name="ci")
    api_key_revoke(api_key=api_key)
    response = get_me(raw_key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expired_key_is_refused():
    raw_key = api_key_issue(expires_at=timezone.now() + timedelta(seconds=1))
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert get_me(raw_key).status_code == 401


def test_key_of_an_inactive_user_is_refused():
    user = user_create()
    raw_key = api_key_issue(user=user)
    user.is_active = False
    user.save()
    assert get_me(raw_key).status_code == 401


@pytest.mark.parametrize(
    "token", ["garbage", "ao_12345678_", "ao_1234567_x", "ao_deadbeef_wrong-secret", ""]
)
def test_malformed_or_unknown_keys_are_refused(token):
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_secret_is_stored_only_as_a_hash():
    api_key, raw_key = api_key_create(user=user_create(), name="ci")
    secret = raw_key.split("_", 2)[2]
    row = ApiKey.objects.values().get(pk=api_key.pk)
    assert all(secret not in str(value) for value in row.values())
    assert row["key_hash"] == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(f"ao_{row['prefix']}_")


def test_authentication_records_last_use():
    api_key, raw_key = api_key_create(user=user_create(), name="ci")
    assert api_key.last_used_at is None
    assert api_key_authenticate(raw_key=raw_key) is not None
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_api_creates_a_key_once_and_never_shows_it_again():
    raw_key = api_key_issue(role=Role.VIEWER)
    client = APIClient(headers=bearer(raw_key))
    created = client.post("/api/v1/api-keys", {"name": "script"}, format="json")
    assert created.status_code == 201
    new_key = created.json()["key"]
    assert get_me(new_key).status_code == 200
    listed = client.get("/api/v1/api-keys").json()
    assert listed and all("key" not in item and "key_hash" not in item for item in listed)
    detail = client.get(f"/api/v1/api-keys/{created.json()['id']}").json()
    assert new_key not in str(detail)


def test_a_viewers_own_key_is_read_only_like_the_viewer(client):
    """Viewers may hold keys of their own (scripts that read), never more than their role."""
    viewer = user_create(role=Role.VIEWER)
    client.force_login(viewer)
    raw_key = client.post("/api/v1/api-keys", {"name": "read"}, content_type="application/json")
    keyed = APIClient(headers=bearer(raw_key.json()["key"]))

    assert keyed.get("/api/v1/llm-calls").status_code == 200
    assert keyed.post("/api/v1/query", {"prompt": "hi"}, format="json").status_code == 403
    created = keyed.post("/api/v1/providers", {"name": "x", "kind": "openai"}, format="json")
    assert created.status_code == 403
    # What the client writes does not raise the key above its owner.
    minted = keyed.post("/api/v1/api-keys", {"name": "more", "role": "admin"}, format="json")
    assert minted.status_code == 201
    assert get_me(minted.json()["key"]).json()["role"] == "viewer"
    assert keyed.post("/api/v1/approvals/policy", {}, format="json").status_code in (403, 405)


def test_api_revokes_own_key_but_not_someone_elses():
    owner_key = api_key_issue(role=Role.VIEWER)
    other_key = api_key_issue(role=Role.VIEWER)
    own_id = APIClient(headers=bearer(owner_key)).get("/api/v1/api-keys").json()[0]["id"]
    stranger = APIClient(headers=bearer(other_key))
    assert stranger.post(f"/api/v1/api-keys/{own_id}/revoke").status_code == 404
    owner = APIClient(headers=bearer(owner_key))
    assert owner.post(f"/api/v1/api-keys/{own_id}/revoke").status_code == 200
    assert get_me(owner_key).status_code == 401


def test_api_rejects_an_expiry_in_the_past():
    client = APIClient(headers=bearer(api_key_issue()))
    response = client.post(
        "/api/v1/api-keys", {"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "expires_at" in response.json()["error"]["details"]


def test_management_command_prints_a_working_key(capsys):
    user = user_create(role=Role.OPERATOR)
    call_command("create_api_key", user.username, "--name", "deploy", "--expires-in-days", "3")
    raw_key = capsys.readouterr().out.strip()
    assert get_me(raw_key).status_code == 200
    assert ApiKey.objects.get(user=user).expires_at > timezone.now() + timedelta(days=2)


def test_admin_add_shows_the_key_once(admin_client):
    user = user_create()
    response = admin_client.post(
        "/admin/accounts/apikey/add/", {"user": user.pk, "name": "from-admin"}, follow=True
    )
    shown = [str(m) for m in response.context["messages"]]
    raw_key = next(word for m in shown for word in m.split() if word.startswith("ao_"))
    assert get_me(raw_key).status_code == 200
    change_page = admin_client.get(f"/admin/accounts/apikey/{ApiKey.objects.get().pk}/change/")
    assert raw_key.split("_", 2)[2] not in change_page.content.decode()


def test_admin_action_revokes_keys(admin_client):
    api_key, raw_key = api_key_create(user=user_create(), name="x")
    admin_client.post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}
    )
    assert get_me(raw_key).status_code == 401


def create_with(raw_key: str, **body):
    response = APIClient(headers=bearer(raw_key)).post(
        "/api/v1/api-keys", {"name": "child", **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    return ApiKey.objects.get(pk=response.json()["id"])


def test_a_key_created_with_an_expiring_key_expires_no_later_than_it():
    creator_expiry = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    creator = api_key_issue(role=Role.VIEWER, expires_at=creator_expiry)
    assert create_with(creator).expires_at == creator_expiry
    later = (creator_expiry + timedelta(days=30)).isoformat()
    assert create_with(creator, expires_at=later).expires_at == creator_expiry
    assert create_with(creator, expires_at=None).expires_at == creator_expiry
    sooner = creator_expiry - timedelta(hours=20)
    assert create_with(creator, expires_at=sooner.isoformat()).expires_at == sooner


def test_a_key_created_with_a_key_that_never_expires_gets_what_it_asks_for():
    creator = api_key_issue(role=Role.VIEWER)
    assert create_with(creator).expires_at is None
    wanted = (timezone.now() + timedelta(days=400)).replace(microsecond=0)
    assert create_with(creator, expires_at=wanted.isoformat()).expires_at == wanted


def test_a_key_created_in_a_session_is_not_limited_by_any_key(client):
    user = user_create(role=Role.VIEWER)
    api_key_issue(user=user, expires_at=timezone.now() + timedelta(hours=1))
    client.force_login(user)
    response = client.post("/api/v1/api-keys", {"name": "browser"}, content_type="application/json")
    assert response.status_code == 201 and response.json()["expires_at"] is None
