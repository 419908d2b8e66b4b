"""What each role may do, kept in Django groups and permissions.

``viewer`` reads everything; ``operator`` also runs queries and builds, decides approvals and
edits the models apps register with ``apps.core.registry.register_operator_models``; ``admin``
has every permission. The groups are brought in line after every ``migrate``, so a new app's
models are covered without a data migration.

A role is also what lets a person into the dashboard (the admin site): ``is_staff`` follows
it (``services.user_staff_sync``), set when a role is given and kept in line whenever a
user's groups change, however they change.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db.models import Q

from apps.core.registry import operator_models

from .models import Role


def _project_app_labels() -> list[str]:
    """The project's own apps (those in this checkout, not installed packages)."""
    from django.apps import apps

    root = Path(settings.BASE_DIR).resolve()
    labels = []
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if root in path.parents and "site-packages" not in path.parts:
            labels.append(config.label)
    return labels


def role_permissions(role: Role) -> list[Permission]:
    labels = _project_app_labels()
    if role == Role.ADMIN:
        return list(Permission.objects.all())
    can_view = Q(content_type__app_label__in=labels, codename__startswith="view_")
    if role == Role.VIEWER:
        return list(Permission.objects.filter(can_view))
    editable = Q()
    for model_label in operator_models:
        app_label, model = model_label.split(".")
        editable |= Q(content_type__app_label=app_label, content_type__model=model)
    can_operate = Q(content_type__app_label="accounts", codename="operate_platform")
    return list(Permission.objects.filter(can_view | can_operate | editable))


def roles_sync() -> None:
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set(role_permissions(role))
    # Users given a role before is_staff followed it may log in too.
    User.objects.filter(groups__name__in=Role.values, is_staff=False).update(is_staff=True)


def staff_follows_role(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """``m2m_changed`` of ``User.groups``: keep ``is_staff`` in line with the user's role
    however the groups changed (a service, the admin's user form, ``group.user_set``)."""
    from .services import user_staff_sync

    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        user_staff_sync(user=instance)
        return
    # A group cleared of its users says not which: those who may have to leave are staff.
    users = (
        User.objects.filter(is_staff=True) if pk_set is None else User.objects.filter(pk__in=pk_set)
    )
    for user in users.prefetch_related("groups"):
        user_staff_sync(user=user)


def roles_sync_after_migrate(sender, **kwargs) -> None:
    """Run once per ``migrate``, after the last app, when every app's permissions exist."""
    from django.apps import apps

    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if sender is with_models[-1]:
        roles_sync()
