"""The Backups page: every backup with its state, size, duration and log, and a button that
backs up now. For admins alone (the page's permission; the POST checks it again)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .models import MANAGE_PERMISSION, BackupStatus
from .selectors import backup_list, backup_state
from .services import backup_request

PAGE_SIZE = 25
TONES: dict[str, str] = {
    BackupStatus.SUCCEEDED: "ok",
    BackupStatus.FAILED: "error",
    BackupStatus.RUNNING: "starting",
    BackupStatus.QUEUED: "starting",
}


def size_text(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def backups(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.user.has_perm(MANAGE_PERMISSION) or not isinstance(request.user, User):
            raise PermissionDenied("Backups are for admins.")
        backup = backup_request(by=request.user)
        messages.success(request, f"Backup #{backup.pk} queued: it runs on a worker now.")
        return HttpResponseRedirect(reverse("admin:page-backup-runs"))
    page = Paginator(backup_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {
            "backup": backup,
            "tone": TONES.get(backup.status, "info"),
            "size": size_text(backup.size),
            "duration": duration_text(backup.duration_seconds),
        }
        for backup in page.object_list
    ]
    return TemplateResponse(
        request,
        "backups/backups.html",
        {
            "rows": rows,
            "page_obj": page,
            "label": "Pages of backups",
            "state": backup_state(),
            "encrypted": bool(settings.BACKUP_ENCRYPTION_KEY),
            "active": any(
                backup.status in (BackupStatus.QUEUED, BackupStatus.RUNNING)
                for backup in page.object_list
            ),
        },
    )
