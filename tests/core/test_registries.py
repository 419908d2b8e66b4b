"""A new app plugs in through its ``AppConfig`` alone: ``tests/plugin_app`` (installed by the
test settings) fills every registry (an event channel and type, a health check, an
operator-editable model, a navigation entry, a dashboard page, a request hook, a ``/ws/``
message type, a feature, an alert rule, a call record hook, call counts), and each takes effect
here without any other app knowing of it."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.accounts.services import api_key_create
from apps.core import events, health, registry
from apps.core.events import EventError, channel_names, publish_on_commit, valid_channel
from apps.core.health import forget_results
from apps.core.registry import (
    AlreadyRegisteredError,
    NavItem,
    Registry,
    navigation,
    pages,
    register_request_hook,
    request_hooks,
)
from apps.core.runtime import run_sync
from apps.providers.llm import (
    Caller,
    LlmRequest,
    ProviderError,
    complete,
    errors,
)
from tests.plugin_app import checks
from tests.plugin_app.hooks import COUNTS_ASKED, RECORDED_AT, REFUSED_MODEL
from tests.support.factories import api_key_issue, bearer, user_create

REGISTRY_MODULES = (registry, events, health)


def _registries() -> dict[str, Registry]:
    """Every registry of the platform's plug-in points, by its variable's name."""
    return {
        name: value
        for module in REGISTRY_MODULES
        for name, value in vars(module).items()
        if isinstance(value, Registry)
    }


# What the plug-in app registers, under which name, in each registry.
PLUGIN_ENTRIES = {
    "channels": "widget",
    "event_types": "widget.updated",
    "health_checks": "widget_store",
    "operator_models": "plugin_app.widget",
    "navigation": "admin:plugin_app_widget_changelist",
    "pages": "widgets",
    "request_hooks": "plugin_app.refuse",
    "socket_actions": "widget",
    "features": "widgets",
    "alert_rules": "widget_overflow",
    "call_record_hooks": "plugin_app.recorded",
    "call_counts": "plugin_app.none",
    "object_figures": "plugin_app.widgets",
}


def test_it_fills_every_registry():
    registries = _registries()
    assert set(registries) == set(PLUGIN_ENTRIES), "a registry the plug-in app does not fill"
    missing = [name for name, key in PLUGIN_ENTRIES.items() if key not in registries[name]]
    assert missing == []


@pytest.mark.django_db
def test_its_event_type_and_channel_are_accepted_and_listed():
    assert valid_channel("widget:7") and not valid_channel("widget")
    assert "widget:<id>" in channel_names()
    admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    listed = {t["event"]: t for t in admin.get("/api/v1/events").json()}
    assert listed["widget.updated"]["channel"] == "widget"
    payload = {"channel": "widget:7", "event": "widget.updated", "data": {"id": 7, "status": "x"}}
    assert admin.post("/api/v1/events", payload, format="json").status_code == 202
    with pytest.raises(EventError):
        publish_on_commit("widget:7", "widget.updated", {"id": "7", "status": "x"})


@pytest.mark.django_db
def test_its_health_check_is_part_of_health(monkeypatch):
    forget_results()
    assert Client().get("/health").json()["services"]["widget_store"] == "ok"
    monkeypatch.setitem(checks.WIDGET_STORE, "status", "error")
    forget_results()
    body = Client().get("/health").json()
    assert body["services"]["widget_store"] == "error" and body["status"] == "degraded"


@pytest.mark.django_db
def test_its_alert_rule_raises_and_resolves_an_alert():
    from apps.alerts.models import Alert
    from apps.alerts.services import alerts_from_rules
    from tests.plugin_app.models import Widget

    Widget.objects.bulk_create(Widget(name=f"w{n}") for n in range(3))
    alerts_from_rules()
    alert = Alert.objects.get(cause="widget_overflow:all")
    assert (alert.kind, alert.title, alert.severity, alert.status) == (
        "widget_overflow",
        "3 widgets",
        "critical",
        "open",
    )
    Widget.objects.first().delete()
    alerts_from_rules()
    alert.refresh_from_db()
    assert alert.status == "resolved"


@pytest.mark.django_db
def test_operators_may_edit_its_model_and_viewers_read_it():
    operator = set(
        Group.objects.get(name=Role.OPERATOR).permissions.values_list("codename", flat=True)
    )
    viewer = set(Group.objects.get(name=Role.VIEWER).permissions.values_list("codename", flat=True))
    assert {"add_widget", "change_widget", "delete_widget", "view_widget"} <= operator
    assert "view_widget" in viewer and "change_widget" not in viewer


def test_its_navigation_entry_is_registered():
    entry = navigation.get("admin:plugin_app_widget_changelist")
    assert entry == NavItem(
        "Widgets",
        "admin:plugin_app_widget_changelist",
        "Plug-ins",
        permission="plugin_app.view_widget",
    )


@pytest.mark.django_db
def test_its_page_is_served_inside_the_admin_site():
    from tests.plugin_app.models import Widget

    Widget.objects.create(name="sprocket")
    assert reverse("admin:page-widgets") == "/admin/widgets/"
    assert Client().get("/admin/widgets/")["Location"].startswith("/admin/login/")
    client = Client()
    client.force_login(user_create(role=Role.VIEWER))
    response = client.get("/admin/widgets/")
    assert response.status_code == 200 and response.context["page"] == pages["widgets"]
    assert b"<li>sprocket</li>" in response.content
    assert b"Widgets | AI Orchestra" in response.content  # the admin's context was added


@pytest.mark.django_db(transaction=True)
def test_its_request_hook_runs_on_every_call():
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ProviderError, match="widgets refuse this model"):
        run_sync(complete(LlmRequest(messages=messages, model=REFUSED_MODEL, caller=Caller())))
    with pytest.raises(ProviderError) as passed:  # let through, to routing: no such model
        run_sync(complete(LlmRequest(messages=messages, model="widget-other", caller=Caller())))
    assert passed.value.code == errors.MODEL_NOT_FOUND


def test_a_registry_refuses_a_different_entry_under_a_taken_name():
    registry: Registry[str] = Registry("thing")
    registry.register("a", "one")
    registry.register("a", "one")  # ready() running twice is harmless
    with pytest.raises(AlreadyRegisteredError):
        registry.register("a", "two")


@pytest.fixture
def hook():
    """A request hook, as an app's ready() would register it; removed after the test."""
    seen: list[LlmRequest] = []

    async def tag_or_refuse(request: LlmRequest) -> None:
        seen.append(request)
        if request.model == "refused":
            raise ProviderError(errors.BAD_REQUEST, "refused by a hook")
        request.agent_id = 99

    register_request_hook("test.tag", tag_or_refuse)
    yield seen
    request_hooks.unregister("test.tag")


@pytest.mark.django_db(transaction=True)
def test_request_hooks_run_before_routing_and_may_change_or_refuse(
    hook, two_providers, recorded_calls
):
    messages = [{"role": "user", "content": "hi"}]
    completion = run_sync(complete(LlmRequest(messages=messages, model="chat", caller=Caller())))
    with pytest.raises(ProviderError, match="refused by a hook"):
        run_sync(complete(LlmRequest(messages=messages, model="refused", caller=Caller())))
    assert [request.model for request in hook] == ["chat", "refused"]
    calls = {call.id: call for call in recorded_calls(2)}
    assert calls[completion.call_id].agent_id == 99


@pytest.mark.django_db(transaction=True)
async def test_its_socket_action_answers_over_the_websocket(asgi_server):
    from tests.realtime.test_events import subscribed

    async def ask(role: Role, message: dict) -> list[dict]:
        key = await database_sync_to_async(api_key_issue)(role=role)
        ws = await subscribed(asgi_server, key)
        await ws.send(json.dumps(message))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 10))]
        if replies[0]["type"] == "subscribed":
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        await ws.close()
        return replies

    (refused,) = await ask(Role.VIEWER, {"type": "widget", "id": 1, "name": "w"})
    assert refused["code"] == "forbidden" and refused["id"] == 1
    (bad,) = await ask(Role.OPERATOR, {"type": "widget", "id": 2})
    assert bad["code"] == "invalid_request" and "name" in bad["message"]
    subscribed_to, made = await ask(Role.OPERATOR, {"type": "widget", "id": 3, "name": "w"})
    assert made == {"type": "widget_made", "id": 3, "widget": made["widget"]}
    assert subscribed_to == {"type": "subscribed", "channel": f"widget:{made['widget']}"}


@pytest.mark.django_db
def test_its_feature_is_in_the_feature_status():
    from tests.plugin_app.models import Widget

    admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    assert admin.get("/api/v1/feature-status").json()["available"]["widgets"] is False
    Widget.objects.create(name="w")
    assert admin.get("/api/v1/feature-status").json()["available"]["widgets"] is True


@pytest.mark.django_db(transaction=True)
def test_its_call_record_hook_is_told_of_each_stored_call():
    from apps.providers.llm.recording.records import CallRecord, write_records

    made = "2026-01-02T03:04:05+00:00"
    call = {"id": "8d0b7a52-1c1e-4a3a-9a53-0c8f3f7f1a01", "created_at": made,
            "entry_point": "internal", "status": "success"}  # fmt: skip
    write_records([CallRecord(call, [])])
    assert RECORDED_AT[-1] == made


@pytest.mark.django_db
def test_its_call_counts_are_asked_what_no_other_source_counts():
    from datetime import timedelta

    from django.utils import timezone

    from apps.providers.models import LlmCall
    from apps.providers.selectors import CallFilters, llm_call_seek
    from tests.dashboard.conftest import call_record

    LlmCall.objects.bulk_create(
        [call_record(at=timezone.now() - timedelta(hours=hours)) for hours in (0, 3, 5)]
    )
    # No rollup keeps whether a call streamed: analytics declines, the plug-in is asked next.
    streamed = CallFilters({"stream": False})
    assert (
        llm_call_seek(calls=LlmCall.objects.filter(stream=False), offset=1, filters=streamed)
        is None
    )
    assert COUNTS_ASKED[-1] == ({"stream": False}, "day")


@pytest.mark.django_db
def test_its_figure_shows_on_an_api_key_s_page():
    admin = user_create(role=Role.ADMIN)
    key, _ = api_key_create(user=admin, name="laptop")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert "Widgets: 0 in all" in page
    assert [f.title for f in registry.object_figures_for("accounts.apikey")] == [
        "Spend this month",
        "Widgets",
    ]
    assert [f.title for f in registry.object_figures_for("auth.user")] == ["Spend this month"]
