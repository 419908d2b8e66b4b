"""Admins configure the connection, operators use it, viewers read; each lower role is refused,
and nothing reaches GitHub for a refused call."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.github.models import GitHubSettings
from tests.github.conftest import signed_in

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/github"
WRITES = [
    ("post", f"{API}/issues", {"title": "t"}),
    ("patch", f"{API}/issues/1", {"title": "t"}),
    ("post", f"{API}/issues/1/close", {}),
    ("post", f"{API}/issues/1/comments", {"body": "b"}),
    ("post", f"{API}/repos/acme/widgets/pulls", {"title": "t", "head": "feature", "base": "main"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_viewers_may_not_write(connected, method, path, body):
    answer = getattr(signed_in(Role.VIEWER), method)(path, body, content_type="application/json")
    assert answer.status_code == 403
    assert connected.requests == []


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_only_admins_configure_and_test_the_connection(connected, role):
    client = signed_in(role)
    assert client.get(f"{API}/settings").status_code == 403
    patched = client.patch(f"{API}/settings", {"enabled": False}, content_type="application/json")
    assert patched.status_code == 403
    assert client.post(f"{API}/settings/test").status_code == 403
    assert GitHubSettings.objects.get().enabled
    assert connected.requests == []


def test_anonymous_callers_are_refused(connected):
    client = Client()
    assert client.get(f"{API}/user").status_code in (401, 403)
    assert client.get(f"{API}/settings").status_code in (401, 403)
    assert connected.requests == []


def test_admins_configure_and_test(connected):
    admin = signed_in(Role.ADMIN)
    settings = admin.get(f"{API}/settings").json()
    assert settings["has_token"] and settings["owner"] == "acme"
    test = admin.post(f"{API}/settings/test").json()
    assert test["login"] == "octocat"
    assert test["scopes"] == ["repo", "read:org"]
    assert test["rate_limit"]["limit"] == 5000 and test["rate_limit"]["remaining"] > 0
    changed = admin.patch(f"{API}/settings", {"token": "wrong"}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["has_token"]
    failed = admin.post(f"{API}/settings/test")
    assert failed.status_code == 401
    assert "Bad credentials" in failed.json()["error"]["message"]
