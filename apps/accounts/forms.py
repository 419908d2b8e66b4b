"""The admin's user forms: a person's role is one field, not a groups picker and a hundred
permissions (``roles.py`` keeps each role's permissions; ``is_staff`` follows the role)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from unfold.forms import UserChangeForm, UserCreationForm  # type: ignore[import-untyped]
from unfold.widgets import UnfoldAdminSelectWidget  # type: ignore[import-untyped]

from .models import Role
from .services import user_role

ROLE_HELP = (
    "Viewer: reads everything. Operator: also runs queries and builds, decides approvals, edits "
    "providers. Admin: everything, including users, roles and the approval policy."
)


def role_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text=ROLE_HELP,
        widget=UnfoldAdminSelectWidget,
    )


class UserRoleCreationForm(UserCreationForm):
    """Add a person: a username, a password and a role."""

    role = role_field()


class UserRoleChangeForm(UserChangeForm):
    """Change a person: names, email, whether they may log in, and their role."""

    role = role_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance: User | None = self.instance if self.instance.pk else None
        role = user_role(user=instance) if instance is not None else None
        if role is not None:
            self.initial["role"] = role.value
