"""The admin of builds and build templates: the pages, and actions that go through the services
(refusals shown as messages), for whoever may operate the platform."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.builds.models import Build, BuildStatus, BuildTemplate, RunStatus
from apps.builds.services import build_cancel, build_create, build_template_create
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db

STEPS = [
    {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
    {
        "name": "implement",
        "model": "chat",
        "prompt": "Implement:\n{steps.plan}",
        "temperature": 0.2,
        "requires_approval": True,
        "approval_risk": "high",
    },
]
BUILDS = "/admin/builds/build/"
TEMPLATES = "/admin/builds/buildtemplate/"


@pytest.fixture
def planner() -> Agent:
    return Agent.objects.create(name="planner", role="planner", model="chat")


def logged_in(role: Role) -> Client:
    client = Client()
    client.force_login(user_create(role=role))
    return client


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def act(client: Client, action: str, *objects, url: str = BUILDS):
    return client.post(
        url, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True
    )


def test_the_list_shows_status_progress_and_filters(admin_client, planner):
    template = build_template_create(by=None, name="feature", steps=STEPS)
    widgets = build_create(title="Widgets", input="x", steps=STEPS, by=None)
    gadgets = build_create(title="Gadgets", steps=STEPS, by=None, template=template)
    Build.objects.filter(pk=gadgets.pk).update(status=BuildStatus.FAILED)

    page = admin_client.get(BUILDS)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Widgets" in html and "Gadgets" in html and "0/2" in html
    assert "Failed" in html and "Queued" in html
    only = admin_client.get(BUILDS, {"status": "failed"}).content.decode()
    assert "Gadgets" in only and "Widgets" not in only
    found = admin_client.get(BUILDS, {"q": "widg"}).content.decode()
    assert "Widgets" in found and "Gadgets" not in found
    by_template = admin_client.get(BUILDS, {"template__id__exact": template.pk}).content.decode()
    assert "Gadgets" in by_template and "Widgets" not in by_template
    assert widgets.pk


def test_the_change_page_shows_steps_and_lifecycle_read_only(admin_client, planner):
    build = build_create(title="Widgets", input="a widget app", steps=STEPS, by=None)

    page = admin_client.get(f"{BUILDS}{build.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "a widget app" in html and "implement" in html and "planner" in html
    assert "High risk" in html, "the gate's risk is shown with its step"
    assert "lifecycle" in html.lower() and "queued" in html
    assert 'name="title"' not in html, "a build is not edited here"
    assert "/cancel/" in html and "/retry/" in html and "/rerun/" in html
    assert admin_client.get(f"{BUILDS}add/").status_code == 403


def test_cancel_and_retry_actions_say_what_the_services_refused(admin_client, planner):
    queued = build_create(title="queued", steps=STEPS, by=None)
    cancelled = build_cancel(build=build_create(title="cancelled", steps=STEPS, by=None))

    response = act(admin_client, "cancel_selected", queued, cancelled)

    queued.refresh_from_db()
    assert queued.status == BuildStatus.CANCELLED
    messages = texts(response)
    assert any(m.endswith("cancelled.") and "queued" in m for m in messages), messages
    assert f"{cancelled}: The build already cancelled." in messages

    running = build_create(title="running", steps=STEPS, by=None)
    response = act(admin_client, "retry_selected", queued, running)

    queued.refresh_from_db()
    assert queued.status == BuildStatus.QUEUED
    assert queued.steps.get(name="plan").status == RunStatus.QUEUED
    assert f"{running}: Only a failed or cancelled build can be retried." in texts(response)


def test_rerun_starts_a_new_build_with_the_same_steps(admin_client, planner, admin_user):
    template = build_template_create(by=None, name="feature", steps=STEPS)
    first = build_create(
        title="Widgets", input="a widget app", steps=STEPS, by=None, template=template
    )

    response = act(admin_client, "rerun_selected", first)

    again = Build.objects.exclude(pk=first.pk).get()
    assert (again.title, again.input, again.template) == ("Widgets", "a widget app", template)
    assert again.created_by == admin_user and again.status == BuildStatus.QUEUED
    fields = [
        "name",
        "prompt_template",
        "agent",
        "model",
        "temperature",
        "requires_approval",
        "approval_risk",
    ]
    assert list(again.steps.values_list(*fields)) == list(first.steps.values_list(*fields))
    assert any("started" in m for m in texts(response))


def test_a_rerun_of_steps_that_no_longer_validate_is_refused(admin_client, planner):
    build = build_create(title="Widgets", steps=STEPS, by=None)
    Agent.objects.filter(pk=planner.pk).update(enabled=False)

    response = act(admin_client, "rerun_selected", build)

    assert Build.objects.count() == 1
    assert any("disabled" in m for m in texts(response)), texts(response)


def test_detail_actions_act_only_on_a_confirmed_post(admin_client, planner):
    build = build_create(title="Widgets", steps=STEPS, by=None)
    url = f"{BUILDS}{build.pk}/cancel/"

    dialog = admin_client.get(url)
    assert dialog.status_code == 200 and "Cancel this build?" in dialog.content.decode()
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED

    confirmed = admin_client.post(url, {"_form_submitted": "True"}, headers={"HX-Request": "true"})
    assert confirmed.headers["HX-Redirect"] == f"{BUILDS}{build.pk}/change/"
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED

    retried = admin_client.post(f"{BUILDS}{build.pk}/retry/", {"_form_submitted": "True"})
    assert retried.status_code == 302
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
    rerun = admin_client.post(f"{BUILDS}{build.pk}/rerun/", {"_form_submitted": "True"})
    again = Build.objects.exclude(pk=build.pk).get()
    assert rerun["Location"] == f"{BUILDS}{again.pk}/change/", "to the new build"
    assert (
        admin_client.post(f"{BUILDS}999999/cancel/", {"_form_submitted": "True"}).status_code == 404
    )


def test_operators_act_viewers_only_look(planner):
    build = build_create(title="Widgets", steps=STEPS, by=None)
    viewer = logged_in(Role.VIEWER)

    assert viewer.get(BUILDS).status_code == 200
    assert viewer.get(f"{BUILDS}{build.pk}/change/").status_code == 200
    act(viewer, "cancel_selected", build)
    denied = viewer.post(f"{BUILDS}{build.pk}/cancel/", {"_form_submitted": "True"})
    assert denied.status_code == 403
    build.refresh_from_db()
    assert build.status == BuildStatus.QUEUED
    assert "/cancel/" not in viewer.get(f"{BUILDS}{build.pk}/change/").content.decode()

    act(logged_in(Role.OPERATOR), "cancel_selected", build)
    build.refresh_from_db()
    assert build.status == BuildStatus.CANCELLED


# --- templates --------------------------------------------------------------------------------


def template_form(**overrides) -> dict:
    import json

    return {
        "name": "feature",
        "description": "Plan then code.",
        "steps": json.dumps(STEPS),
        **overrides,
    }


def test_a_template_is_saved_through_the_service_and_bad_steps_are_form_errors(planner):
    operator = user_create(role=Role.OPERATOR)
    client = Client()
    client.force_login(operator)
    bad = '[{"name": "plan", "prompt": "Plan"}, {"name": "code", "prompt": "{steps.nope}"}]'

    refused = client.post(f"{TEMPLATES}add/", template_form(steps=bad))

    assert refused.status_code == 200
    assert "Step 2: prompt: {steps.nope} names no earlier step." in refused.content.decode()
    assert not BuildTemplate.objects.exists()

    saved = client.post(f"{TEMPLATES}add/", template_form(), follow=True)
    assert saved.status_code == 200
    template = BuildTemplate.objects.get()
    assert template.steps == STEPS and template.created_by == operator

    client.post(f"{TEMPLATES}{template.pk}/change/", template_form(description="Changed."))
    template.refresh_from_db()
    assert template.description == "Changed." and template.created_by == operator
    page = client.get(TEMPLATES).content.decode()
    assert "feature" in page and "Changed." in page


def test_a_nul_in_a_templates_steps_is_a_form_error_not_a_500(planner):
    client = Client()
    client.force_login(user_create(role=Role.OPERATOR))
    bad = '[{"name": "plan", "agent": "planner", "prompt": "Plan\\u0000"}]'

    refused = client.post(f"{TEMPLATES}add/", template_form(steps=bad))

    assert refused.status_code == 200
    assert "Step 1: prompt: NUL characters" in refused.content.decode()
    assert not BuildTemplate.objects.exists()


def test_run_starts_a_build_from_the_list_or_with_a_title_and_input(
    admin_client, planner, admin_user
):
    template = build_template_create(by=None, name="feature", steps=STEPS)

    response = act(admin_client, "run_selected", template, url=TEMPLATES)

    build = Build.objects.get()
    assert (build.title, build.template, build.created_by) == ("feature", template, admin_user)
    assert any("started" in m for m in texts(response))

    run = admin_client.post(
        f"{TEMPLATES}{template.pk}/run/",
        {"_form_submitted": "True", "title": "Widgets", "input": "a widget app"},
    )
    latest = Build.objects.exclude(pk=build.pk).get()
    assert run["Location"] == f"{BUILDS}{latest.pk}/change/"
    assert (latest.title, latest.input, latest.template) == ("Widgets", "a widget app", template)


def test_running_a_template_whose_agent_is_gone_is_refused(admin_client, planner):
    template = build_template_create(by=None, name="feature", steps=STEPS)
    planner.delete()

    response = act(admin_client, "run_selected", template, url=TEMPLATES)

    assert not Build.objects.exists()
    assert any(m.startswith("feature: Step 1: agent: No agent") for m in texts(response))


def test_a_build_at_work_is_not_deleted_a_finished_one_is(admin_client, planner):
    queued = build_create(title="queued", steps=STEPS, by=None)
    done = build_cancel(build=build_create(title="done", steps=STEPS, by=None))

    assert admin_client.get(f"{BUILDS}{queued.pk}/delete/").status_code == 403
    both = {"action": "delete_selected", "_selected_action": [queued.pk, done.pk], "post": "yes"}
    assert admin_client.post(BUILDS, both).status_code == 403
    assert Build.objects.filter(pk__in=[queued.pk, done.pk]).count() == 2

    admin_client.post(f"{BUILDS}{done.pk}/delete/", {"post": "yes"})
    assert list(Build.objects.values_list("pk", flat=True)) == [queued.pk]
