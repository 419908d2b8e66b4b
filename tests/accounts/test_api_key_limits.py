"""A key's rate limits (``rpm_limit``, ``tpm_limit``): set through the API, the admin and the
command, shown by the API, carried by the cached principal, no looser than a creating key's."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Role
from apps.accounts.principals import authenticate_bearer
from apps.accounts.services import api_key_create
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def create(raw_key: str, **body):
    return APIClient(headers=bearer(raw_key)).post(
        "/api/v1/api-keys", {"name": "child", **body}, format="json"
    )


def test_the_api_sets_and_shows_a_keys_limits():
    creator = api_key_issue(role=Role.VIEWER)
    created = create(creator, rpm_limit=60, tpm_limit=100_000)
    assert created.status_code == 201, created.json()
    assert (created.json()["rpm_limit"], created.json()["tpm_limit"]) == (60, 100_000)
    listed = APIClient(headers=bearer(creator)).get("/api/v1/api-keys").json()
    assert {(k["rpm_limit"], k["tpm_limit"]) for k in listed} == {(60, 100_000), (None, None)}


@pytest.mark.parametrize(
    "body", [{"rpm_limit": 0}, {"rpm_limit": 1_000_001}, {"tpm_limit": -5}, {"rpm_limit": "x"}]
)
def test_limits_out_of_range_are_refused(body):
    response = create(api_key_issue(role=Role.VIEWER), **body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert set(response.json()["error"]["details"]) == set(body)


def test_a_key_created_with_a_limited_key_is_no_looser_than_it():
    user = user_create(role=Role.VIEWER)
    _, creator = api_key_create(user=user, name="service", rpm_limit=10, tpm_limit=5_000)
    assert create(creator).json()["rpm_limit"] == 10, "no limit asked: the creator's"
    looser = create(creator, rpm_limit=100, tpm_limit=None).json()
    assert (looser["rpm_limit"], looser["tpm_limit"]) == (10, 5_000)
    tighter = create(creator, rpm_limit=2, tpm_limit=100).json()
    assert (tighter["rpm_limit"], tighter["tpm_limit"]) == (2, 100)


def test_a_key_without_limits_creates_what_it_asks_for():
    creator = api_key_issue(role=Role.VIEWER)
    assert create(creator).json()["rpm_limit"] is None
    assert create(creator, tpm_limit=7).json()["tpm_limit"] == 7


def test_the_service_refuses_limits_out_of_range():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as raised:
        api_key_create(user=user_create(), name="x", rpm_limit=0, tpm_limit=10**10)
    assert set(raised.value.message_dict) == {"rpm_limit", "tpm_limit"}


def test_the_command_sets_limits(capsys):
    user = user_create(role=Role.OPERATOR)
    call_command("create_api_key", user.username, "--rpm-limit", "30", "--tpm-limit", "9000")
    assert capsys.readouterr().out.startswith("ao_")
    key = ApiKey.objects.get(user=user)
    assert (key.rpm_limit, key.tpm_limit) == (30, 9000)
    with pytest.raises(CommandError, match="--rpm-limit"):
        call_command("create_api_key", user.username, "--rpm-limit", "0")


def test_the_admin_sets_limits_on_add_and_change(admin_client):
    user = user_create()
    admin_client.post(
        "/admin/accounts/apikey/add/",
        {"user": user.pk, "name": "from-admin", "rpm_limit": "5", "tpm_limit": ""},
        follow=True,
    )
    key = ApiKey.objects.get(user=user)
    assert (key.rpm_limit, key.tpm_limit) == (5, None)
    page = admin_client.post(
        f"/admin/accounts/apikey/{key.pk}/change/",
        {"name": "from-admin", "rpm_limit": "0", "tpm_limit": "100"},
    )
    assert page.status_code == 200 and "greater than or equal to 1" in page.content.decode()
    admin_client.post(
        f"/admin/accounts/apikey/{key.pk}/change/",
        {"name": "from-admin", "rpm_limit": "", "tpm_limit": "100"},
    )
    key.refresh_from_db()
    assert (key.rpm_limit, key.tpm_limit) == (None, 100)


@pytest.mark.django_db(transaction=True)
async def test_the_cached_principal_carries_the_limits_and_follows_a_change():
    from channels.db import database_sync_to_async

    user = await database_sync_to_async(user_create)(role=Role.OPERATOR)
    key, raw = await database_sync_to_async(api_key_create)(user=user, name="x", rpm_limit=3)
    principal = await authenticate_bearer(raw)
    assert principal is not None and (principal.rpm_limit, principal.tpm_limit) == (3, None)
    key.tpm_limit = 50
    await database_sync_to_async(key.save)()  # forgets what this process cached
    principal = await authenticate_bearer(raw)
    assert principal is not None and principal.tpm_limit == 50
