"""The Alerts page: alerts not resolved yet and the history, filtered by status, severity and
kind, each open one acknowledged here by an operator. Live on ``alerts``: each event fetches
the list again (``?part=live`` with the same filters)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.accounts.permissions import OPERATE

from .models import Alert, AlertStatus, Severity
from .selectors import alert_kinds, alert_list, alert_open_count
from .services import alert_acknowledge

SHOWN = 200
STATUSES = [("active", "Not resolved"), *AlertStatus.choices, ("", "Any")]


def open_count_badge(request: HttpRequest) -> str | None:
    """The sidebar badge: how many alerts nobody has acknowledged."""
    count = alert_open_count()
    return str(count) if count else None


def _filters(request: HttpRequest) -> dict[str, str]:
    status = request.GET.get("status", "active")
    severity = request.GET.get("severity", "")
    return {
        "status": status if status in dict(STATUSES) else "active",
        "severity": severity if severity in Severity.values else "",
        "kind": request.GET.get("kind", "")[:64],
    }


def _live(request: HttpRequest, filters: dict[str, str]) -> dict[str, Any]:
    alerts = alert_list(
        status=filters["status"] or None,
        severity=filters["severity"] or None,
        kind=filters["kind"] or None,
    )
    return {
        "alerts": list(alerts[:SHOWN]),
        "can_acknowledge": request.user.has_perm(OPERATE),
        "open_count": alert_open_count(),
    }


def alerts(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The page (``?part=live``: only the list); a POST to ``<pk>/acknowledge/``
    acknowledges."""
    if pk is not None:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:page-alert-list"))
        if not request.user.has_perm(OPERATE):
            raise PermissionDenied("Acknowledging an alert needs the operator role.")
        alert = get_object_or_404(Alert, pk=pk)
        user = request.user
        assert isinstance(user, User)  # the admin site lets no one else in
        try:
            alert_acknowledge(alert=alert, by=user)
            messages.success(request, f"Acknowledged: {alert.title}")
        except ValidationError as error:
            messages.warning(request, " ".join(error.messages))
        return HttpResponseRedirect(reverse("admin:page-alert-list"))
    filters = _filters(request)
    if request.GET.get("part") == "live":
        return render(request, "alerts/includes/live.html", _live(request, filters))
    query = request.GET.copy()
    query["part"] = "live"
    return TemplateResponse(
        request,
        "alerts/alerts.html",
        {
            **_live(request, filters),
            "filters": filters,
            "statuses": STATUSES,
            "severities": Severity.choices,
            "kinds": alert_kinds(),
            "live_url": reverse("admin:page-alert-list") + "?" + query.urlencode(),
            "live_channels": "alerts",
        },
    )
