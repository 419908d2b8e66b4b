from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import ApiKey, Role
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
    return get_user_model().objects.prefetch_related("groups").order_by("username")


def user_get(*, pk: int) -> User:
    return get_object_or_404(get_user_model(), pk=pk)
