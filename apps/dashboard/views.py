"""The dashboard's own pages: Home (the admin index), the circuit breakers and the logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.core.logging import live_log_recent
from apps.providers.models import Provider
from apps.providers.selectors import circuit_breaker_list, provider_list
from apps.providers.services import circuit_breaker_reset

from .alerts import alerts_recent
from .figures import figures_snapshot

# Who may reset a circuit (the API's reset asks the same).
RESET_PERMISSION = "providers.change_provider"
# Who may read the logs: operators and admins. Log lines are about the platform's insides
# (upstream URLs, errors, request ids of every caller), which viewers have no use for.
LOGS_PERMISSION = "accounts.operate_platform"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


WINDOWS = (("hour", "Last hour"), ("day", "Last 24 hours"))
WINDOW_FIGURES = (
    ("requests", "Requests"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("error_rate", "Error rate"),
    ("p50", "Latency p50"),
    ("p95", "Latency p95"),
)


def clock(iso: str) -> str:
    """``HH:MM:SS`` (UTC) of an ISO time, as the page shows times."""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S")


def home_context(request: HttpRequest) -> dict[str, Any]:
    figures = figures_snapshot()
    shown = figures["display"]
    windows = [
        {
            "key": key,
            "label": label,
            "figures": [
                {"label": name, "key": f"{key}.{figure}", "text": shown[f"{key}.{figure}"]}
                for figure, name in WINDOW_FIGURES
            ],
        }
        for key, label in WINDOWS
    ]
    health = [
        {"name": name, "label": name.replace("_", " ").capitalize(), **result}
        for name, result in figures["health"].items()
    ]
    streams = figures["active_streams"]
    alerts = [{**alert, "clock": clock(alert["at"])} for alert in alerts_recent()]
    return {
        "figures": figures,
        "updated": clock(figures["at"]),
        "shown": shown,
        "windows": windows,
        "health": health,
        "now": [
            {"label": "Active streams", "key": "streams.total", "text": shown["streams.total"]},
            {"label": "Open circuits", "key": "circuits.open", "text": shown["circuits.open"]},
        ],
        "streams_detail": " · ".join(
            f"{name} {count}" for name, count in streams.items() if name != "total" and count
        ),
        "alerts": alerts,
        "live_channels": "metrics alerts",
        "can_reset_circuits": request.user.has_perm(RESET_PERMISSION),
    }


def circuits(request: HttpRequest) -> HttpResponse:
    """Every provider's circuit, 50 to a page; operators may reset one (a POST)."""
    if request.method == "POST":
        return circuit_reset(request)
    paginator = Paginator(provider_list().order_by("name"), 50)
    page = paginator.get_page(request.GET.get("page"))
    providers = list(page.object_list)
    views = {
        view.provider: view for view in circuit_breaker_list(names=[p.name for p in providers])
    }
    rows = []
    for provider in providers:
        circuit = views.get(provider.name)
        state = circuit.state if circuit else "closed"
        rows.append(
            {
                "provider": provider,
                "circuit": circuit,
                "state": state,
                "label": state.replace("_", "-"),
            }
        )
    return TemplateResponse(
        request,
        "dashboard/circuits.html",
        {
            "rows": rows,
            "page_obj": page,
            "can_reset_circuits": request.user.has_perm(RESET_PERMISSION),
            "live_channels": "alerts",
        },
    )


def circuit_reset(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(RESET_PERMISSION):
        raise PermissionDenied("Resetting a circuit needs the operator role.")
    provider = get_object_or_404(Provider, name=request.POST.get("provider_name", ""))
    circuit_breaker_reset(provider=provider)
    messages.success(request, f"The circuit of {provider.name} was reset: it is closed.")
    target = request.POST.get("next", "")
    allowed = {reverse("admin:index"), reverse("admin:page-circuits")}
    return HttpResponseRedirect(target if target in allowed else reverse("admin:page-circuits"))


def logs(request: HttpRequest) -> HttpResponse:
    """The live tail of the platform's logs: the kept lines first (oldest at the top), then
    each new one as it comes (``logs.js``)."""
    lines = [{**line, "clock": clock(line["at"])} for line in reversed(live_log_recent())]
    threshold = settings.LOG_LIVE_LEVEL
    shown_levels = LOG_LEVELS[LOG_LEVELS.index(threshold) :] if threshold in LOG_LEVELS else ()
    return TemplateResponse(
        request,
        "dashboard/logs.html",
        {
            "lines": lines,
            "threshold": threshold,
            "levels": shown_levels[1:],  # the lowest is every line
            "kept": settings.LOG_LIVE_KEPT,
            "live_channels": "logs",
        },
    )
