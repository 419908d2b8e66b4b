from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin  # type: ignore[import-untyped]

from apps.core.admin_support import ReadOnlyAdminMixin

from .models import MANAGE_PERMISSION, Backup


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """Backups, read only and for admins alone (the viewer role's view permissions do not
    reach them): the Backups page runs them, the schedule is a periodic task."""

    list_display = ["id", "status", "trigger", "created_at", "size", "name"]
    list_filter = ["status", "trigger"]
    readonly_fields = [
        "status",
        "trigger",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "name",
        "location",
        "size",
        "sha256",
        "encrypted",
        "database_vendor",
        "summary",
        "log",
        "error",
        "celery_task_id",
    ]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)
