"""Small factories for test data; each returns saved objects."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from apps.accounts.models import Role
from apps.accounts.services import api_key_create, user_set_role

_sequence = itertools.count(1)


def user_create(*, role: Role | None = Role.VIEWER, username: str | None = None) -> User:
    user = get_user_model().objects.create_user(
        username=username or f"user{next(_sequence)}", password="pw-not-used-by-tests"
    )
    if role is not None:
        user_set_role(user=user, role=role)
    return user


def api_key_issue(
    *,
    role: Role | None = Role.OPERATOR,
    user: User | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A raw key for a new user with ``role`` (or for ``user``)."""
    user = user or user_create(role=role)
    return api_key_create(user=user, name="test", expires_at=expires_at)[1]


def bearer(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw_key}"}
