"""The token is write-only: no API answer, page, log line or health report carries it, and it
is stored encrypted."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.github.models import GitHubSettings
from tests.github.conftest import TOKEN, signed_in

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/github"


def test_the_token_is_in_no_answer_page_or_log_line(connected, caplog):
    caplog.set_level(logging.DEBUG)
    admin = signed_in(Role.ADMIN)
    answers = [
        admin.get(f"{API}/settings"),
        admin.patch(
            f"{API}/settings", {"token": TOKEN, "owner": "acme"}, content_type="application/json"
        ),  # fmt: skip
        admin.post(f"{API}/settings/test"),
        admin.get(f"{API}/user"),
        admin.get(f"{API}/issues"),
        admin.get(f"{API}/repos/acme/nothing"),
        admin.get("/api/github/user"),
        admin.get("/health"),
        admin.get("/api/v1/feature-status"),
        admin.get("/api/schema/"),
        admin.get("/admin/github/githubsettings/"),
        admin.get(f"/admin/github/githubsettings/{GitHubSettings.objects.get().pk}/change/"),
    ]
    connected.fail_next(401, {"message": "Bad credentials"})
    answers.append(admin.get(f"{API}/user"))
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[-1].status_code == 401
    for answer in answers:
        assert TOKEN not in answer.content.decode(errors="replace"), answer.request["PATH_INFO"]
    assert caplog.records, "the calls logged nothing: the check would prove nothing"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)
    stored = GitHubSettings.objects.get().token_encrypted
    assert stored and TOKEN not in stored
    # it did reach GitHub
    assert all(r.headers["Authorization"].endswith(TOKEN) for r in connected.requests[:1])


def test_anonymous_pages_do_not_show_it_either(connected):
    assert TOKEN not in Client().get("/health").content.decode()
