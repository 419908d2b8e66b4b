"""Backups are admins' alone: the API and the page refuse operators, viewers, API keys (an
admin's too) and anonymous callers, whatever they send; an admin's backup runs on a worker."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.backups.models import Backup, BackupStatus, BackupTrigger
from tests.dashboard.conftest import member
from tests.support.factories import api_key_issue, bearer
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/backups"
PAGE = "/admin/backup-runs/"


def signed_in(role: Role) -> Client:
    client = Client()
    client.force_login(member(role))
    return client


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_operators_and_viewers_are_refused(role):
    client = signed_in(role)
    assert client.get(API).status_code == 403
    assert client.post(API).status_code == 403
    assert client.get(f"{API}/1").status_code == 403
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE).status_code == 403
    # Nothing a caller adds gets around it: a field naming a role, proxy and role headers.
    forged = client.post(
        API,
        {"role": "admin", "is_superuser": True},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="127.0.0.1",
        HTTP_X_ROLE="admin",
    )
    assert forged.status_code == 403
    assert not Backup.objects.exists()
    assert client.get("/admin/backups/backup/").status_code == 403


def test_api_keys_are_refused_even_an_admins():
    for role in (Role.ADMIN, Role.OPERATOR):
        headers = bearer(api_key_issue(role=role))
        client = Client(headers=headers)
        assert client.get(API).status_code == 403
        assert client.post(API).status_code == 403
    # An admin's session with someone's key on top: the key decides, and keys are refused.
    client = signed_in(Role.ADMIN)
    assert client.post(API, headers=bearer(api_key_issue(role=Role.ADMIN))).status_code == 403
    assert not Backup.objects.exists()


def test_anonymous_callers_are_refused():
    client = Client()
    assert client.get(API).status_code in (401, 403)
    assert client.post(API).status_code in (401, 403)
    assert client.get(PAGE).status_code == 302  # to the login
    assert client.post(PAGE).status_code == 302
    assert client.post(API, headers={"Authorization": "Bearer ao_nope_nope"}).status_code == 401
    assert not Backup.objects.exists()


def test_an_admin_backs_up_through_the_api_on_a_worker(backups_worker, backup_settings):
    client = signed_in(Role.ADMIN)

    answer = client.post(API)

    assert answer.status_code == 202, answer.content
    body = answer.json()
    # queued, or already taken by the worker by the time the answer is written
    assert body["status"] in {"queued", "running"} and body["trigger"] == BackupTrigger.MANUAL
    backup = eventually(
        lambda: Backup.objects.filter(pk=body["id"], status__in=["succeeded", "failed"]).first(),
        60,
        "the backup finished",
    )
    assert backup.status == BackupStatus.SUCCEEDED, backup.error
    assert (backup_settings["backups"] / backup.name).stat().st_size == backup.size
    detail = client.get(f"{API}/{backup.pk}").json()
    assert detail["size"] == backup.size and "archive stored" in detail["log"]
    assert detail["duration_seconds"] > 0 and detail["requested_by"]
    listed = client.get(API).json()
    assert [row["id"] for row in listed["results"]] == [backup.pk]


def test_the_page_lists_backups_and_backs_up_now_for_an_admin(backups_worker):
    client = signed_in(Role.ADMIN)
    answer = client.post(PAGE, follow=True)
    assert answer.status_code == 200
    backup = Backup.objects.get()
    assert f"Backup #{backup.pk} queued" in answer.content.decode()
    eventually(lambda: Backup.objects.get(pk=backup.pk).status == "succeeded", 60, "done")
    page = client.get(PAGE).content.decode()
    assert f'data-backup="{backup.pk}" data-status="succeeded"' in page
    assert "Back up now" in page
    home = client.get("/admin/").content.decode()
    assert 'data-health="backups"' in home
