"""Workspaces: the REST API (admins write, every role reads), one workspace per user, the
principal's workspace, and the call records' filters by end user, workspace and tag."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Role, Workspace
from apps.accounts.principals import principal_for
from apps.accounts.services import api_key_create, workspace_create
from apps.providers.llm.recording.records import CallRecord, write_records
from apps.providers.models import CallStatus, EntryPoint
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def api(role: Role) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


def test_an_admin_creates_a_workspace_with_members_and_keys():
    member = user_create(role=Role.OPERATOR)
    api_key, _ = api_key_create(user=user_create(), name="service")
    response = api(Role.ADMIN).post(
        "/api/v1/workspaces",
        {"name": "growth", "description": "Growth team", "members": [member.pk],
         "api_keys": [api_key.pk]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "growth" and body["members"] == [member.pk]
    assert body["api_keys"] == [api_key.pk]
    api_key.refresh_from_db()
    assert api_key.workspace_id == body["id"]
    users = {u["id"]: u for u in api(Role.ADMIN).get("/api/v1/users").json()}
    assert users[member.pk]["workspace"] == body["id"]
    keys = api(Role.ADMIN).get(f"/api/v1/api-keys/{api_key.pk}").json()
    assert keys["workspace"] == body["id"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_other_roles_read_workspaces_but_cannot_write_them(role):
    workspace = workspace_create(name="growth")
    client = api(role)
    listed = client.get("/api/v1/workspaces")
    assert listed.status_code == 200 and [w["name"] for w in listed.json()] == ["growth"]
    assert client.get(f"/api/v1/workspaces/{workspace.pk}").status_code == 200
    assert client.post("/api/v1/workspaces", {"name": "x"}, format="json").status_code == 403
    patched = client.patch(f"/api/v1/workspaces/{workspace.pk}", {"name": "y"}, format="json")
    assert patched.status_code == 403
    assert client.delete(f"/api/v1/workspaces/{workspace.pk}").status_code == 403
    assert Workspace.objects.get().name == "growth"


def test_a_user_is_in_one_workspace_at_most():
    user = user_create()
    workspace_create(name="first", members=[user])
    response = api(Role.ADMIN).post(
        "/api/v1/workspaces", {"name": "second", "members": [user.pk]}, format="json"
    )
    assert response.status_code == 400
    assert "first" in str(response.json()["error"]["details"])
    assert not Workspace.objects.filter(name="second").exists()


def test_bad_input_is_a_400():
    client = api(Role.ADMIN)
    workspace_create(name="taken")
    for body in ({"name": "taken"}, {"name": ""}, {"name": "x", "members": [10**9]}):
        response = client.post("/api/v1/workspaces", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"


def test_patch_sets_exactly_the_members_and_delete_frees_them():
    kept, dropped = user_create(), user_create()
    workspace = workspace_create(name="growth", members=[kept, dropped])
    client = api(Role.ADMIN)
    response = client.patch(
        f"/api/v1/workspaces/{workspace.pk}", {"members": [kept.pk]}, format="json"
    )
    assert response.status_code == 200 and response.json()["members"] == [kept.pk]
    assert client.delete(f"/api/v1/workspaces/{workspace.pk}").status_code == 204
    assert principal_for(User.objects.get(pk=kept.pk)).workspace_id is None


def test_the_principals_workspace_is_the_keys_else_the_users():
    user = user_create(role=Role.OPERATOR)
    api_key, _ = api_key_create(user=user, name="k")
    assert principal_for(user, api_key).workspace_id is None
    team = workspace_create(name="team", members=[user])
    assert principal_for(user, ApiKey.objects.get(pk=api_key.pk)).workspace_id == team.pk
    service = workspace_create(name="service", api_keys=[api_key])
    assert principal_for(user, ApiKey.objects.get(pk=api_key.pk)).workspace_id == service.pk


def record(**fields) -> str:
    call_id = str(uuid.uuid4())
    call = {
        "id": call_id,
        "created_at": timezone.now(),
        "entry_point": EntryPoint.OPENAI,
        "status": CallStatus.SUCCESS,
        **fields,
    }
    write_records([CallRecord(call, [])])
    return call_id


def test_call_records_filter_by_end_user_workspace_and_tag():
    workspace = workspace_create(name="growth")
    tagged = record(end_user="alice", tags={"team": "growth", "feature": "search"},
                    workspace_id=workspace.pk)  # fmt: skip
    other = record(end_user="bob", tags={"team": "search"})
    plain = record()
    client = api(Role.VIEWER)

    def ids(query: str) -> set[str]:
        response = client.get(f"/api/v1/llm-calls?{query}")
        assert response.status_code == 200, response.json()
        return {call["id"] for call in response.json()["results"]}

    assert ids("end_user=alice") == {tagged}
    assert ids(f"workspace={workspace.pk}") == {tagged}
    assert ids("tag=team:growth") == {tagged}
    assert ids("tag=team:search") == {other}
    assert ids("tag=feature:search") == {tagged}
    assert plain in ids("") and tagged in ids("")
    detail = client.get(f"/api/v1/llm-calls/{tagged}").json()
    assert detail["tags"] == {"team": "growth", "feature": "search"}
    assert (detail["end_user"], detail["workspace"]) == ("alice", workspace.pk)
    for bad in ("tag=team", "tag=te%20am:growth", "workspace=nope"):
        response = client.get(f"/api/v1/llm-calls?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "validation_error"


def test_the_calls_page_shows_and_filters_attribution(admin_client):
    workspace = workspace_create(name="growth")
    record(end_user="alice", tags={"team": "growth"}, workspace_id=workspace.pk)
    record(end_user="bob")
    page = admin_client.get("/admin/providers/llmcall/?tag=team:growth")
    assert page.status_code == 200
    content = page.content.decode()
    assert "alice" in content and "bob" not in content and "growth" in content
    page = admin_client.get(f"/admin/providers/llmcall/?workspace={workspace.pk}&end_user=alice")
    assert "alice" in page.content.decode()


def test_the_dashboard_shows_workspaces_with_their_members_and_keys(admin_client):
    member = user_create(username="wendy")
    api_key, _ = api_key_create(user=user_create(), name="billing-service")
    workspace = workspace_create(name="growth", members=[member], api_keys=[api_key])
    listed = admin_client.get("/admin/accounts/workspace/").content.decode()
    assert "growth" in listed
    page = admin_client.get(f"/admin/accounts/workspace/{workspace.pk}/change/")
    assert page.status_code == 200
    assert "wendy" in page.content.decode() and "billing-service" in page.content.decode()
    assert "growth" in admin_client.get("/admin/accounts/apikey/").content.decode()
    assert "growth" in admin_client.get("/admin/auth/user/").content.decode()
    key_page = admin_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/")
    assert key_page.status_code == 200 and 'name="workspace"' in key_page.content.decode()
