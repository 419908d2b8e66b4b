"""The one site, server side: Home's figures, the sidebar each role gets, and what a viewer
may not do (the server refuses it, whatever the page shows)."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.test import Client
from django.urls import clear_url_caches, reverse
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.services import user_set_role
from apps.core.health import check_title
from apps.core.registry import Page, pages, register_pages
from apps.providers.models import CallRecordDeadLetter, CallStatus, LlmCall
from apps.providers.services import provider_create
from tests.dashboard.conftest import call_record
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db
TITLES = {
    "cpu": "CPU",
    "github": "GitHub",
    "channel_layer": "Channel layer",
    "celery": "Celery workers",
    "beat": "Celery beat",
    "database": "Database",
    "call_records": "Call records",
}


def test_root_redirects_to_home_and_home_wants_a_login():
    assert Client().get("/")["Location"] == "/admin/"
    response = Client().get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_home_shows_the_figures_of_the_last_hour_and_day(client_as):
    now = timezone.now()
    LlmCall.objects.bulk_create(
        [
            call_record(latency_ms=100, cost="0.25"),
            call_record(latency_ms=300, cost="0.25"),
            call_record(status=CallStatus.ERROR, latency_ms=5000),
            call_record(at=now - timedelta(hours=3), latency_ms=900, input_tokens=1000),
            call_record(at=now - timedelta(days=2)),  # outside both windows
        ]
    )
    page = client_as(Role.VIEWER).get("/admin/")
    assert page.status_code == 200
    shown = page.context["shown"]
    assert shown["hour.requests"] == "3" and shown["day.requests"] == "4"
    assert shown["hour.tokens"] == "90" and shown["day.tokens"] == "1,110"
    assert shown["hour.error_rate"] == "33.3%" and shown["day.error_rate"] == "25.0%"
    assert shown["hour.p50"] == "200 ms" and shown["day.p50"] == "300 ms"
    assert shown["hour.cost"] == "$0.5010"
    html = page.content.decode()
    for name in ("database", "cache", "channel_layer", "celery", "providers"):
        assert f'data-health="{name}"' in html
    assert 'data-figure="hour.requests">3<' in html


def test_home_names_each_check_by_its_title_and_keeps_the_name_as_its_key(client_as):
    html = client_as(Role.VIEWER).get("/admin/").content.decode()
    shown = dict(
        re.findall(r'data-health="(\w+)">\s*<div class="health-head">\s*<span>([^<]+)</span>', html)
    )
    assert {name: shown.get(name) for name in TITLES} == TITLES
    assert shown["widget_store"] == "Widget store"  # a check given no title: made from its name
    assert not {"Cpu", "Github", "Channel_layer"} & set(shown.values())


def test_a_check_s_title_is_the_registered_one_or_made_from_its_name():
    assert {name: check_title(name) for name in TITLES} == TITLES
    assert check_title("search_index") == "Search index"  # registered by nobody


# --- the sidebar -----------------------------------------------------------------------------


def sidebar_of(client: Client, path: str = "/admin/") -> dict[str, list[str]]:
    groups = client.get(path).context["sidebar_navigation"]
    return {group["title"]: [item["title"] for item in group["items"]] for group in groups}


def test_the_sidebar_shows_each_role_what_it_may_use(client_as):
    viewer = sidebar_of(client_as(Role.VIEWER))
    assert list(viewer) == ["Dashboard", "LLM core", "Builds", "Experiments", "Accounts", "System"]
    assert "Artifacts" in viewer["Builds"]
    assert viewer["Dashboard"] == ["Home", "Analytics", "Playground"]  # the Playground read-only
    assert viewer["LLM core"] == [
        "Providers and routing",
        "Providers",
        "Models",
        "Routing settings",
        "Circuit breakers",
        "Calls",
        "Refused call records",
    ]
    assert viewer["Builds"] == [
        "Build",
        "Builds",
        "Build templates",
        "Agent board",
        "Agents",
        "Agent tasks",
        "Approval queue",
        "Approvals",
        "Artifact browser",
        "Artifacts",
        "GitHub",
    ]
    assert viewer["Experiments"] == ["Experiments", "Canary rollouts", "Experiment settings"]
    assert viewer["Accounts"] == ["API keys", "Workspaces", "Budgets"]
    assert viewer["System"] == ["Alerts", "Notification channels", "Platform settings"]

    operator = sidebar_of(client_as(Role.OPERATOR))
    assert operator["System"] == ["Alerts", "Notification channels", "Logs", "Platform settings"]

    admin = sidebar_of(client_as(Role.ADMIN))
    assert admin["Accounts"] == [
        "API keys", "Users", "Workspaces", "Budgets", "Roles (groups)", "Login lockouts",
    ]  # fmt: skip
    assert admin["System"] == [
        "Alerts",
        "Notification channels",
        "Logs",
        "Backups",
        "Platform settings",
        "Scheduled tasks",
    ]
    # The plug-in app's entry names a page no ModelAdmin serves: left out, not an error.
    assert "Plug-ins" not in admin


def test_sidebar_entries_are_marked_current_and_carry_their_badge(client_as):
    client = client_as(Role.OPERATOR)
    CallRecordDeadLetter.objects.create(reason="too long", payload="{}")
    provider = provider_create(name="alpha", kind="openai")
    response = client.get(f"/admin/providers/provider/{provider.pk}/change/")  # below Providers
    items = {i["title"]: i for g in response.context["sidebar_navigation"] for i in g["items"]}
    assert items["Providers"]["active"] and not items["Home"]["active"]
    assert items["Refused call records"]["badge"] == "1"
    assert "badge" not in items["Providers"]
    html = client.get("/admin/providers/provider/").content.decode()
    assert re.search(r'href="/admin/providers/provider/" aria-current="page"', html)


# --- pages registered by apps ----------------------------------------------------------------


def board(request: HttpRequest, **kwargs) -> TemplateResponse:
    return TemplateResponse(request, "admin/base_site.html", {"kwargs": kwargs})


@pytest.fixture
def widget_board(settings):
    """A page of a would-be app, registered as its ready() would, and the URLs built again."""
    page = Page(
        "widget-board",
        "Widget board",
        "tests.dashboard.test_pages.board",
        "Plug-ins",
        icon="widgets",
        permission="auth.view_user",
        order=500,
        urls=("<int:pk>/",),
    )
    register_pages(page)
    settings.ROOT_URLCONF = "tests.dashboard.page_urls"
    importlib.reload(importlib.import_module("tests.dashboard.page_urls"))
    clear_url_caches()
    yield page
    pages.unregister(page.slug)
    clear_url_caches()


def test_a_registered_page_is_served_in_the_site_behind_its_permission(client_as, widget_board):
    assert reverse("admin:page-widget-board") == "/admin/widget-board/"
    assert Client().get("/admin/widget-board/")["Location"].startswith("/admin/login/")
    assert client_as(Role.VIEWER).get("/admin/widget-board/").status_code == 403
    assert "Plug-ins" not in sidebar_of(client_as(Role.VIEWER))

    admin = client_as(Role.ADMIN)
    response = admin.get("/admin/widget-board/")
    assert response.status_code == 200
    assert response.context["title"] == "Widget board" and response.context["page"] == widget_board
    assert sidebar_of(admin, "/admin/widget-board/")["Plug-ins"] == ["Widget board"]
    assert admin.get("/admin/widget-board/7/").context["kwargs"] == {"pk": 7}
    assert b"<title>" in response.content and b"Widget board | AI Orchestra" in response.content


def test_a_page_cannot_take_the_admin_s_own_paths():
    with pytest.raises(ValueError, match="lower-case"):
        register_pages(Page("Bad Slug", "x", "x.y", "S"))
    register_pages(Page("providers", "Clash", "tests.dashboard.test_pages.board", "S"))
    try:
        with pytest.raises(ImproperlyConfigured, match="/admin/providers/"):
            admin.site.get_urls()
    finally:
        pages.unregister("providers")


# --- who may enter ----------------------------------------------------------------------------


def test_is_staff_follows_the_role():
    user = user_create(role=None)
    assert not user.is_staff
    user_set_role(user=user, role=Role.VIEWER)
    assert User.objects.get(pk=user.pk).is_staff
    user.groups.clear()  # however the groups change
    assert not User.objects.get(pk=user.pk).is_staff
    Group.objects.get(name=Role.OPERATOR).user_set.add(user)
    assert User.objects.get(pk=user.pk).is_staff
    Group.objects.get(name=Role.OPERATOR).user_set.clear()
    assert not User.objects.get(pk=user.pk).is_staff


def test_an_admin_gives_a_role_in_the_user_form_and_the_person_may_enter(client_as):
    person = user_create(role=None)
    admin = client_as(Role.ADMIN)
    form = admin.get(f"/admin/auth/user/{person.pk}/change/").context["adminform"].form
    assert "role" in form.fields and "groups" not in form.fields
    assert "user_permissions" not in form.fields and "is_superuser" not in form.fields
    data = {"username": person.username, "role": Role.VIEWER, "is_active": "on"}
    response = admin.post(f"/admin/auth/user/{person.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert User.objects.get(pk=person.pk).is_staff
