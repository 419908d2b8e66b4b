"""The dashboard's own pages: Home (the admin index), the circuit breakers, Providers and
routing (the platform's configuration) and the logs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from apps.alerts.selectors import alert_active_list
from apps.core.health import check_title
from apps.core.logging import live_log_recent
from apps.core.services import platform_settings_get, platform_settings_update
from apps.providers.llm import ProviderError
from apps.providers.models import Provider
from apps.providers.selectors import model_list, provider_list, providers_health
from apps.providers.services import (
    circuit_breaker_reset,
    provider_sync_models,
    provider_test,
    provider_update,
    routing_settings_get,
    routing_settings_update,
)

from .alerts import alerts_recent
from .figures import figures_snapshot
from .forms import PlatformSettingsForm, RoutingSettingsForm

# Who may reset a circuit (the API's reset asks the same).
RESET_PERMISSION = "providers.change_provider"
OPEN_ALERTS_SHOWN = 20
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
        {"name": name, "label": check_title(name), **result}
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
        "open_alerts": list(alert_active_list()[:OPEN_ALERTS_SHOWN]),
        "live_channels": "metrics alerts",
        "can_reset_circuits": request.user.has_perm(RESET_PERMISSION),
    }


def provider_circuit_rows(request: HttpRequest, *ordering: str) -> tuple[Page, list[dict]]:
    """The request's page of providers (50 to a page), each with its circuit as every process
    sees it: one query for the providers, one Redis read for their circuits."""
    page = Paginator(provider_list().order_by(*ordering), 50).get_page(request.GET.get("page"))
    rows = []
    for provider, circuit, health in providers_health(list(page.object_list)):
        state = circuit.state if circuit else "closed"
        rows.append(
            {
                "provider": provider,
                "circuit": circuit,
                "state": state,
                "label": state.replace("_", "-"),
                "health": health,
            }
        )
    return page, rows


def circuits(request: HttpRequest) -> HttpResponse:
    """Every provider's circuit, 50 to a page; operators may reset one (a POST)."""
    if request.method == "POST":
        return circuit_reset(request)
    page, rows = provider_circuit_rows(request, "name")
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
    _provider_reset(request, provider)
    target = request.POST.get("next", "")
    allowed = {reverse("admin:index"), reverse("admin:page-circuits")}
    return HttpResponseRedirect(target if target in allowed else reverse("admin:page-circuits"))


# --- Providers and routing -----------------------------------------------------------------------

# Who may use each write of the page (the admin and the API ask the same).
PROVIDER_PERMISSION = "providers.change_provider"
ROUTING_PERMISSION = "providers.change_routingsettings"
PLATFORM_PERMISSION = "core.change_platformsettings"
MODELS_SHOWN = 100


def _provider_reset(request: HttpRequest, provider: Provider) -> None:
    circuit_breaker_reset(provider=provider)
    messages.success(request, f"The circuit of {provider.name} was reset: it is closed.")


def _provider_enable(request: HttpRequest, provider: Provider) -> None:
    provider_update(provider=provider, enabled=True)
    messages.success(request, f"{provider.name} is enabled: routing uses it again.")


def _provider_disable(request: HttpRequest, provider: Provider) -> None:
    provider_update(provider=provider, enabled=False)
    messages.success(request, f"{provider.name} is disabled: routing no longer uses it.")


def _provider_sync(request: HttpRequest, provider: Provider) -> None:
    try:
        result = provider_sync_models(provider=provider)
    except ProviderError as error:
        messages.error(request, f"{provider.name}: {error.message}")
    else:
        messages.success(request, f"{provider.name}: {result.summary()}")


def _provider_test(request: HttpRequest, provider: Provider) -> None:
    result = provider_test(provider=provider)
    level = messages.SUCCESS if result.ok else messages.ERROR
    messages.add_message(request, level, f"Test of {provider.name}: {result.summary()}")


PROVIDER_ACTIONS = {
    "reset": _provider_reset,
    "enable": _provider_enable,
    "disable": _provider_disable,
    "sync": _provider_sync,
    "test": _provider_test,
}


def _require(request: HttpRequest, permission: str, what: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"{what} needs the operator role.")


def config(request: HttpRequest) -> HttpResponse:
    """Providers (health, circuit, actions), models, routing settings and the log level."""
    routing_form = platform_form = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action in PROVIDER_ACTIONS:
            _require(request, PROVIDER_PERMISSION, "Changing a provider")
            provider = get_object_or_404(Provider, name=request.POST.get("provider_name", ""))
            PROVIDER_ACTIONS[action](request, provider)
            return HttpResponseRedirect(reverse("admin:page-config"))
        if action == "routing":
            _require(request, ROUTING_PERMISSION, "Changing the routing settings")
            routing_form = RoutingSettingsForm(request.POST, instance=routing_settings_get())
            if _saved(routing_form, routing_settings_update):
                messages.success(request, "Routing settings saved: every process applies them.")
                return HttpResponseRedirect(reverse("admin:page-config"))
        elif action == "platform":
            _require(request, PLATFORM_PERMISSION, "Changing the log level")
            platform_form = PlatformSettingsForm(request.POST, instance=platform_settings_get())
            if _saved(platform_form, platform_settings_update):
                level = platform_form.instance.log_level or "as each process started"
                messages.success(request, f"Log level: {level}, in every process.")
                return HttpResponseRedirect(reverse("admin:page-config"))
        else:
            return HttpResponseBadRequest("Unknown action.")
    return TemplateResponse(
        request, "dashboard/config.html", config_context(request, routing_form, platform_form)
    )


def _saved(form: forms.ModelForm, update: Callable[..., Any]) -> bool:
    """Save a valid form through its service; the model's own rules show as form errors."""
    if not form.is_valid():
        return False
    try:
        form.instance = update(**form.cleaned_data)
    except ValidationError as error:
        form.add_error(None, error)
        return False
    return True


def config_context(
    request: HttpRequest,
    routing_form: RoutingSettingsForm | None = None,
    platform_form: PlatformSettingsForm | None = None,
) -> dict[str, Any]:
    user = request.user
    page, rows = provider_circuit_rows(request, "priority", "name")
    models = model_list().order_by("provider__priority", "provider__name", "name")
    can_routing = user.has_perm(ROUTING_PERMISSION)
    can_platform = user.has_perm(PLATFORM_PERMISSION)
    routing_form = routing_form or RoutingSettingsForm(instance=routing_settings_get())
    platform_form = platform_form or PlatformSettingsForm(instance=platform_settings_get())
    for form, allowed in ((routing_form, can_routing), (platform_form, can_platform)):
        if not allowed:
            for field in form.fields.values():
                field.disabled = True
    return {
        "rows": rows,
        "page_obj": page,
        "models": models[:MODELS_SHOWN],
        "model_count": models.count(),
        "routing_form": routing_form,
        "platform_form": platform_form,
        "can_change_providers": user.has_perm(PROVIDER_PERMISSION),
        "can_change_routing": can_routing,
        "can_change_platform": can_platform,
        "live_channels": "alerts",
    }


def logs(request: HttpRequest) -> HttpResponse:
    """The live tail of the platform's logs: the kept lines first (oldest at the top), then
    each new one as it comes (``logs.js``). Those who may change the platform settings show
    INFO lines too, or stop, for every process (the live log's level, ``live_log_level``)."""
    row = platform_settings_get()
    if request.method == "POST":
        _require(request, PLATFORM_PERMISSION, "Changing the live log's level")
        level = request.POST.get("live_log_level", "")
        if level not in ("", "INFO"):
            return HttpResponseBadRequest("The live log shows INFO or its configured level.")
        platform_settings_update(live_log_level=level)
        shown = level or settings.LOG_LIVE_LEVEL
        messages.success(request, f"The live log shows {shown} and above, from every process.")
        return HttpResponseRedirect(reverse("admin:page-logs"))
    lines = [{**line, "clock": clock(line["at"])} for line in reversed(live_log_recent())]
    threshold = row.live_log_level or settings.LOG_LIVE_LEVEL
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
            "can_change_live_level": request.user.has_perm(PLATFORM_PERMISSION),
            "showing_info": row.live_log_level == "INFO",
            "info_possible": settings.LOG_LIVE_LEVEL in LOG_LEVELS[2:],  # above INFO
        },
    )
