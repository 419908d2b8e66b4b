from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.services import instance_update

from . import budgets
from .models import (
    MAX_RPM_LIMIT,
    MAX_TPM_LIMIT,
    ApiKey,
    Budget,
    Role,
    Workspace,
    WorkspaceMember,
)

logger = logging.getLogger(__name__)

KEY_PREFIX = "ao"
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_api_key(raw_key: str) -> str:
    """SHA-256 suffices: keys carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def split_api_key(raw_key: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1]


def api_key_create(
    *,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored.

    ``rpm_limit``/``tpm_limit``: LLM requests and tokens per minute (None: no limit)."""
    errors = {
        field: f"Must be a whole number from 1 to {top} (or empty: no limit)."
        for field, value, top in (
            ("rpm_limit", rpm_limit, MAX_RPM_LIMIT),
            ("tpm_limit", tpm_limit, MAX_TPM_LIMIT),
        )
        if value is not None and not (isinstance(value, int) and 1 <= value <= top)
    }
    if errors:
        raise ValidationError(errors)
    while True:
        prefix = secrets.token_hex(4)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw_key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        key_hash=hash_api_key(raw_key),
        expires_at=expires_at,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Idempotent: a key revoked twice keeps its first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, with its user loaded, or None."""
    prefix = split_api_key(raw_key)
    if prefix is None:
        return None
    api_key = (
        ApiKey.objects.select_related("user", "user__workspace_membership")
        .filter(prefix=prefix)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_api_key(raw_key)):
        return None
    if not api_key.is_active:
        return None
    api_key_touch(api_key=api_key)
    return api_key


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Record use at most once a minute per key, so authentication rarely writes."""
    now = now or timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    api_key.last_used_at = now
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


def user_role(*, user: User) -> Role | None:
    """The strongest role the user holds; superusers are admins."""
    if user.is_superuser:
        return Role.ADMIN
    names = {group.name for group in user.groups.all()}
    return next((role for role in Role if role.value in names), None)


@transaction.atomic
def user_set_role(*, user: User, role: Role) -> User:
    """Give the user exactly one role group (which lets them log in to the dashboard)."""
    user.groups.remove(*Group.objects.filter(name__in=Role.values))
    user.groups.add(Group.objects.get(name=role.value))
    return user_staff_sync(user=user)


def user_staff_sync(*, user: User) -> User:
    """``is_staff`` follows the role: a user with a role (or a superuser) may log in to the
    dashboard (the admin site), which then shows what the role's permissions allow; a user
    without one may not. Run whenever a user's groups change (``roles.staff_follows_role``)."""
    staff = user.is_superuser or user_role(user=user) is not None
    if user.is_staff != staff:
        user.is_staff = staff
        User.objects.filter(pk=user.pk).update(is_staff=staff)
    return user


# --- workspaces -------------------------------------------------------------------------------

WORKSPACE_FIELDS = ("name", "description")


@transaction.atomic
def workspace_create(
    *,
    name: str,
    description: str = "",
    members: Iterable[User] = (),
    api_keys: Iterable[ApiKey] = (),
) -> Workspace:
    workspace = instance_update(
        instance=Workspace(),
        fields=WORKSPACE_FIELDS,
        data={"name": name, "description": description},
    )
    return workspace_set(workspace=workspace, members=members, api_keys=api_keys)


@transaction.atomic
def workspace_update(
    *,
    workspace: Workspace,
    members: Iterable[User] | None = None,
    api_keys: Iterable[ApiKey] | None = None,
    **fields: Any,
) -> Workspace:
    """Change its name or description; ``members``/``api_keys``, when given, become exactly
    its members and keys."""
    instance_update(instance=workspace, fields=WORKSPACE_FIELDS, data=fields)
    return workspace_set(workspace=workspace, members=members, api_keys=api_keys)


def workspace_set(
    *,
    workspace: Workspace,
    members: Iterable[User] | None = None,
    api_keys: Iterable[ApiKey] | None = None,
) -> Workspace:
    """Make ``members`` and ``api_keys`` (where given) exactly the workspace's. A user already
    in another workspace is refused (a user is in one at most), not moved: moving someone's
    calls to another team's budget is a choice to make on purpose, by removing them first."""
    if members is not None:
        users = {user.pk: user for user in members}
        elsewhere = (
            WorkspaceMember.objects.filter(user_id__in=users)
            .exclude(workspace=workspace)
            .select_related("user", "workspace")
        )
        taken = [f"{m.user.get_username()} is in {m.workspace.name}" for m in elsewhere]
        if taken:
            raise ValidationError(
                {"members": f"A user is in one workspace at most: {'; '.join(taken)}."}
            )
        workspace.members.exclude(user_id__in=users).delete()
        kept = set(workspace.members.values_list("user_id", flat=True))
        for pk, user in users.items():
            if pk not in kept:  # one by one: each save tells the principals' caches
                WorkspaceMember.objects.create(workspace=workspace, user=user)
    if api_keys is not None:
        key_ids = [api_key.pk for api_key in api_keys]
        for api_key in workspace.api_keys.exclude(pk__in=key_ids):
            api_key.workspace = None
            api_key.save(update_fields=["workspace"])
        for api_key in ApiKey.objects.filter(pk__in=key_ids).exclude(workspace=workspace):
            api_key.workspace = workspace
            api_key.save(update_fields=["workspace"])
    return workspace


def workspace_delete(*, workspace: Workspace) -> None:
    """Its keys and members are left without a workspace; the call records keep its id."""
    workspace.delete()


# --- budgets -----------------------------------------------------------------------------------

BUDGET_FIELDS = (
    "scope", "api_key", "user", "end_user", "workspace", "period", "limit", "soft_limit_percent",
)  # fmt: skip


@transaction.atomic
def budget_create(**fields: Any) -> Budget:
    """A budget of one scope (``scope`` names its target: ``api_key``, ``user``, ``end_user``
    or ``workspace``) per ``period``. Every process's request path sees it within
    ``API_KEY_CACHE_SECONDS``; its spend starts at what Redis holds for its target and window
    and is put right by the next reconciliation."""
    return instance_update(instance=Budget(), fields=BUDGET_FIELDS, data=fields)


@transaction.atomic
def budget_update(*, budget: Budget, **fields: Any) -> Budget:
    return instance_update(instance=budget, fields=BUDGET_FIELDS, data=fields)


def budget_delete(*, budget: Budget) -> None:
    budget.delete()


def budget_spend_correct(*, budget: Budget, spent: Decimal, now: datetime | None = None) -> bool:
    """Make the shared spend of ``budget``'s current window ``spent``, as the call records have
    it (reconciliation); whether it was wrong. Redis errors are the caller's."""
    before = budgets.spend_set(budget, spent, now)
    wrong = before is None or before != spent
    if wrong and before is not None:
        logger.info(
            "budgets: the spend of budget %s was %s in Redis, %s in the call records; corrected",
            budget.pk,
            before,
            spent,
        )
    return wrong
