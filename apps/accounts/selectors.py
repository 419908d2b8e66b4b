from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import ApiKey, Role, Workspace, WorkspaceMember
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
