"""``principal_current``: what open connections ask about their caller, one lookup per
principal per ``API_KEY_CACHE_SECONDS`` however many of them ask."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from apps.accounts import principals
from apps.accounts.models import ApiKey, Role
from apps.accounts.principals import principal_current, principal_for
from apps.accounts.services import api_key_create, api_key_revoke, user_set_role
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lookups(monkeypatch, settings) -> list[tuple]:
    """Every database lookup ``principal_current`` makes, with an empty cache to start."""
    settings.API_KEY_CACHE_SECONDS = 60
    monkeypatch.setattr(principals, "_current", {})
    made: list[tuple] = []
    look_up = principals._principal_now

    def counted(*key):
        made.append(key)
        return look_up(*key)

    monkeypatch.setattr(principals, "_principal_now", counted)
    return made


def operator_with_key() -> tuple[principals.Principal, ApiKey]:
    user = user_create(role=Role.OPERATOR)
    api_key, _ = api_key_create(user=user, name="ws")
    return principal_for(user, api_key), api_key


async def test_many_connections_of_one_key_cost_one_lookup(lookups):
    principal, _ = await database_sync_to_async(operator_with_key)()
    answers = await asyncio.gather(*(principal_current(principal) for _ in range(200)))
    assert all(answer == principal for answer in answers)
    assert await principal_current(principal) == principal
    assert len(lookups) == 1


async def test_a_revoked_key_and_a_changed_role_are_seen_at_once_in_this_process(lookups):
    principal, api_key = await database_sync_to_async(operator_with_key)()
    assert (await principal_current(principal)).can_operate
    user = await database_sync_to_async(lambda: api_key.user)()
    await database_sync_to_async(user_set_role)(user=user, role=Role.VIEWER)
    demoted = await principal_current(principal)
    assert demoted.can_view and not demoted.can_operate
    await database_sync_to_async(api_key_revoke)(api_key=api_key)
    assert await principal_current(principal) is None
    assert len(lookups) == 3


async def test_a_session_principal_ends_with_its_user(lookups):
    user = await database_sync_to_async(user_create)(role=Role.VIEWER)
    principal = await database_sync_to_async(principal_for)(user)
    assert await principal_current(principal) == principal
    user.is_active = False
    await database_sync_to_async(user.save)()
    assert await principal_current(principal) is None
