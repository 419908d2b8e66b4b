"""The admin of experiments and canaries: pages with the statistics shown, forms and actions
that go through the services (refusals shown), for whoever may operate the platform."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.experiments.models import (
    CanaryRollout,
    CanaryStatus,
    Experiment,
    ExperimentSettings,
    ExperimentStatus,
)
from apps.experiments.services import (
    conversion_track,
    experiment_create,
    experiment_start,
    experiment_variant_for_user,
)
from tests.support.factories import user_create

from .conftest import SEED_EXPERIMENT, variants

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/admin/experiments/experiment/"
CANARIES = "/admin/experiments/canaryrollout/"


def logged_in(role: Role) -> Client:
    client = Client()
    client.force_login(user_create(role=role))
    return client


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def form(**fields) -> dict:
    data = {
        "name": "admin test", "description": "", "hypothesis": "", "metric": "conversion",
        "user_percentage": "100", "variant_list": json.dumps(variants({"temperature": 0.2})),
    }  # fmt: skip
    return {**data, **fields}


def test_pages_show_the_experiments_and_their_statistics(admin_client):
    experiment = experiment_create(name="shown", variants=SEED_EXPERIMENT["variants"])
    experiment = experiment_start(experiment=experiment)
    for user in range(6):
        experiment_variant_for_user(experiment=experiment, user_id=user)
    conversion_track(experiment=Experiment.objects.get(pk=experiment.pk), user_id="0")

    listing = admin_client.get(EXPERIMENTS, {"status": "running"})
    assert listing.status_code == 200 and "shown" in listing.content.decode()
    page = admin_client.get(f"{EXPERIMENTS}{experiment.pk}/change/").content.decode()
    assert "Statistics (current phase)" in page
    assert "Phase 1 · 6 users · significance level 0.05" in page
    assert "Decision if stopped now:" in page and "No significant difference" in page
    assert "low_temp (treatment)" in page and "Chance to beat" in page
    assert "/start/" in page and "/stop/" in page
    assert "{&quot;temperature&quot;: 0.3}" in page  # the variants inline


def test_an_experiment_is_made_and_changed_through_the_services(admin_client):
    refused = admin_client.post(
        f"{EXPERIMENTS}add/",
        form(variant_list=json.dumps({"control": {"traffic_percentage": 100}})),
    )
    assert refused.status_code == 200
    assert "A list (JSON array) of variants" in refused.content.decode()
    saved = admin_client.post(f"{EXPERIMENTS}add/", form(), follow=True)
    assert saved.status_code == 200
    experiment = Experiment.objects.get(name="admin test")
    assert [v.name for v in experiment.variants.all()] == ["control", "treatment"]
    assert experiment.created_by is not None

    started = admin_client.post(
        EXPERIMENTS, {"action": "start_selected", "_selected_action": [experiment.pk]}, follow=True
    )
    assert "admin test started." in texts(started)
    reweighted = form(variant_list=json.dumps(variants({"temperature": 0.2}, 80)))
    for inline in ("variants", "phases"):  # the read-only inlines' management forms
        reweighted |= {f"{inline}-TOTAL_FORMS": 0, f"{inline}-INITIAL_FORMS": 0}
    changed = admin_client.post(f"{EXPERIMENTS}{experiment.pk}/change/", reweighted)
    assert changed.status_code == 302
    experiment.refresh_from_db()
    assert experiment.phase == 2
    assert [float(v.traffic_percentage) for v in experiment.variants.all()] == [20.0, 80.0]


def test_start_and_stop_from_the_page_for_operators_only(admin_client):
    experiment = experiment_create(name="buttons", variants=SEED_EXPERIMENT["variants"])
    viewer = logged_in(Role.VIEWER)
    denied = viewer.post(f"{EXPERIMENTS}{experiment.pk}/start/", {"_form_submitted": "True"})
    assert denied.status_code == 403
    assert "/start/" not in viewer.get(f"{EXPERIMENTS}{experiment.pk}/change/").content.decode()

    operator = logged_in(Role.OPERATOR)
    confirmed = operator.post(
        f"{EXPERIMENTS}{experiment.pk}/start/",
        {"_form_submitted": "True"},
        headers={"HX-Request": "true"},
    )
    assert confirmed.headers["HX-Redirect"] == f"{EXPERIMENTS}{experiment.pk}/change/"
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.RUNNING
    again = operator.post(
        f"{EXPERIMENTS}{experiment.pk}/start/", {"_form_submitted": "True"}, follow=True
    )
    assert "buttons: The experiment is already running." in texts(again)
    stopped = operator.post(
        f"{EXPERIMENTS}{experiment.pk}/stop/", {"_form_submitted": "True"}, follow=True
    )
    assert any("No data to decide on yet." in text for text in texts(stopped))
    assert Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.STOPPED


def test_canaries_are_started_shown_and_rolled_back(admin_client):
    experiment = experiment_create(name="admin canary", variants=variants({}, 0))
    made = admin_client.post(
        f"{CANARIES}add/",
        {
            "experiment": experiment.pk,
            "treatment_name": "treatment",
            "steps": "[10, 50, 100]",
            "step_interval_seconds": 600,
            "error_rate_margin": 0.05,
            "latency_margin": 0.5,
            "min_requests": 20,
        },
        follow=True,
    )
    assert made.status_code == 200
    rollout = CanaryRollout.objects.get()
    assert rollout.percentage == 10 and rollout.created_by is not None
    page = admin_client.get(f"{CANARIES}{rollout.pk}/change/").content.decode()
    assert "treatment starts at 10% of the traffic." in page and "/rollback/" in page

    admin_client.post(f"{CANARIES}{rollout.pk}/rollback/", {"_form_submitted": "True"})

    rollout.refresh_from_db()
    assert rollout.status == CanaryStatus.ROLLED_BACK
    assert "Rolled back" in admin_client.get(CANARIES, {"status": "rolled_back"}).content.decode()
    twice = admin_client.post(
        f"{CANARIES}add/",
        {
            "experiment": experiment.pk,
            "treatment_name": "control",
            "steps": "[10, 100]",
            "step_interval_seconds": 600,
            "error_rate_margin": 0.05,
            "latency_margin": 0.5,
            "min_requests": 20,
        },
        follow=True,
    )
    assert any("is the control" in text for text in texts(twice))
    assert CanaryRollout.objects.count() == 1


def test_the_settings_switch_goes_through_the_service(admin_client):
    page = admin_client.get("/admin/experiments/experimentsettings/add/")
    assert page.status_code == 200
    admin_client.post(
        "/admin/experiments/experimentsettings/add/",
        {
            "significance_level": 0.01,
            "error_rate_margin": 0.05,
            "latency_margin": 0.5,
            "cost_margin": 0.5,
            "guardrail_min_calls": 20,
            "latency_floor_ms": 250,
            "canary_steps": "[10, 100]",
            "canary_step_interval_seconds": 60,
            "canary_min_requests": 10,
        },
    )
    row = ExperimentSettings.objects.get()
    assert row.enabled is False and row.significance_level == 0.01  # unchecked box: off
    assert (row.guardrail_min_calls, row.latency_floor_ms) == (20, 250)
    assert row.canary_steps == [10, 100]
