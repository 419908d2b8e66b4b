"""What each role may do, kept in Django groups and permissions.

``viewer`` reads everything; ``operator`` also runs queries and builds, decides approvals and
edits the models in ``OPERATOR_EDITABLE_MODELS``; ``admin`` has every permission. The groups are
brought in line after every ``migrate``, so a new app's models are covered without a data
migration: add them to ``OPERATOR_EDITABLE_MODELS`` if operators may edit them.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from .models import Role

PROJECT_APP_PREFIX = "apps."
OPERATOR_EDITABLE_MODELS: set[str] = {
    "providers.provider",
    "providers.llmmodel",
    "providers.routingsettings",
}


def _project_app_labels() -> list[str]:
    from django.apps import apps

    return [c.label for c in apps.get_app_configs() if c.name.startswith(PROJECT_APP_PREFIX)]


def role_permissions(role: Role) -> list[Permission]:
    labels = _project_app_labels()
    if role == Role.ADMIN:
        return list(Permission.objects.all())
    can_view = Q(content_type__app_label__in=labels, codename__startswith="view_")
    if role == Role.VIEWER:
        return list(Permission.objects.filter(can_view))
    editable = Q()
    for model_label in OPERATOR_EDITABLE_MODELS:
        app_label, model = model_label.split(".")
        editable |= Q(content_type__app_label=app_label, content_type__model=model)
    can_operate = Q(content_type__app_label="accounts", codename="operate_platform")
    return list(Permission.objects.filter(can_view | can_operate | editable))


def roles_sync() -> None:
    for role in Role:
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set(role_permissions(role))


def roles_sync_after_migrate(sender, **kwargs) -> None:
    """Run once per ``migrate``, after the last app, when every app's permissions exist."""
    from django.apps import apps

    with_models = [c for c in apps.get_app_configs() if c.models_module is not None]
    if sender is with_models[-1]:
        roles_sync()
