from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from . import budgets
from .models import ApiKey, Budget, Role, Workspace, WorkspaceMember
from .services import user_role


def api_key_list(*, visible_to: User) -> QuerySet[ApiKey]:
    """Admins see every key; everyone else sees their own."""
    keys = ApiKey.objects.select_related("user")
    if user_role(user=visible_to) == Role.ADMIN:
        return keys
    return keys.filter(user=visible_to)


def api_key_get(*, pk: int, visible_to: User) -> ApiKey:
    return get_object_or_404(api_key_list(visible_to=visible_to), pk=pk)


def user_list() -> QuerySet[User]:
    return (
        get_user_model()
        .objects.select_related("workspace_membership")
        .prefetch_related("groups")
        .order_by("username")
    )


def user_get(*, pk: int) -> User:
    return get_object_or_404(get_user_model(), pk=pk)


def workspace_list() -> QuerySet[Workspace]:
    return Workspace.objects.prefetch_related("members__user", "api_keys")


def workspace_get(*, pk: int) -> Workspace:
    return get_object_or_404(workspace_list(), pk=pk)


def workspace_id_for(*, user: User, api_key: ApiKey | None = None) -> int | None:
    """The workspace a call of ``user`` (with ``api_key``) is recorded against: the key's,
    else the user's, else none. Never anything the request says. No query when the key has a
    workspace or the user's membership was loaded with it (``api_key_authenticate`` does)."""
    if api_key is not None and api_key.workspace_id is not None:
        return api_key.workspace_id
    try:
        membership = user.workspace_membership
    except WorkspaceMember.DoesNotExist:
        return None
    return membership.workspace_id


def workspace_id_of_user(user_id: int | None) -> int | None:
    """The workspace of the user with ``user_id`` (one query): for calls made on a user's behalf
    without a key, such as build steps and agent tasks."""
    if user_id is None:
        return None
    memberships = WorkspaceMember.objects.filter(user_id=user_id)
    return memberships.values_list("workspace_id", flat=True).first()


def budget_list() -> QuerySet[Budget]:
    return Budget.objects.select_related("api_key", "user", "workspace")


def budget_get(*, pk: int) -> Budget:
    return get_object_or_404(budget_list(), pk=pk)


@dataclass(frozen=True)
class BudgetStanding:
    """Where a budget stands now: its window, and its spend in it as Redis has it (None when
    Redis does not answer)."""

    spent: Decimal | None
    window_starts: datetime
    resets_at: datetime

    def share_of(self, limit: Decimal) -> float | None:
        return None if self.spent is None else float(self.spent / limit)


def budget_standings(
    budgets_: Iterable[Budget], *, now: datetime | None = None
) -> dict[int, BudgetStanding]:
    """Each budget's standing, by id (one Redis round trip for all)."""
    listed = list(budgets_)
    spent = budgets.spend_read(listed, now)
    standings = {}
    for budget in listed:
        current = budgets.window(budget.period, now)
        standings[budget.pk] = BudgetStanding(spent[budget.pk], current.starts, current.ends)
    return standings


def budget_window(*, budget: Budget, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The start and end (UTC, end excluded) of ``budget``'s current day or month."""
    current = budgets.window(budget.period, now)
    return current.starts, current.ends
