"""The REST API of experiments: the documented walk-through under /api/v1/, validation, roles,
state conflicts, phases, the runtime switch, canaries."""

from __future__ import annotations

import copy
import math

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.experiments.models import Assignment, Experiment, ExperimentStatus
from tests.dashboard.conftest import member

from .conftest import SEED_EXPERIMENT, client, variants

pytestmark = pytest.mark.django_db

API = "/api/v1/experiments"


def created(api: APIClient, payload: dict | None = None) -> dict:
    response = api.post(API, payload or SEED_EXPERIMENT, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_seed_004s_walk_through_works_under_api_v1():
    api = client()
    body = created(api)
    assert body["status"] == "draft" and body["metric"] == "accuracy"
    shown = [(v["name"], v["type"], v["traffic_percentage"], v["config"]) for v in body["variants"]]
    assert shown == [
        ("control", "control", 50.0, {"temperature": 0.7}),
        ("low_temp", "treatment", 50.0, {"temperature": 0.3}),
    ]
    pk = body["id"]

    started = api.post(f"{API}/{pk}/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert started.json()["phases"][0]["number"] == 1

    variant = api.get(f"{API}/{pk}/variant/42").json()
    assert variant["experiment_id"] == pk and variant["assigned"] is True
    assert variant["variant_name"] in ("control", "low_temp")
    expected = {"control": {"temperature": 0.7}, "low_temp": {"temperature": 0.3}}
    assert variant["variant_config"] == expected[variant["variant_name"]]
    assert api.get(f"{API}/{pk}/variant/42").json()["variant_name"] == variant["variant_name"]

    conversion = api.post(f"{API}/{pk}/track/conversion", {"user_id": 42}, format="json")
    assert conversion.status_code == 201, conversion.json()
    assert conversion.json()["variant_name"] == variant["variant_name"]

    assert api.get(f"{API}/{pk}").json()["name"] == "LLM Temperature Test"
    assert [e["id"] for e in api.get(API).json()["results"]] == [pk]
    stats = api.get(f"{API}/{pk}/stats").json()
    mine = next(v for v in stats["variants"] if v["name"] == variant["variant_name"])
    assert (mine["users"], mine["converted_users"], mine["conversion_rate"]) == (1, 1, 1.0)

    stopped = api.post(f"{API}/{pk}/stop").json()
    assert stopped["status"] == "stopped" and stopped["winner"] is None
    assert stopped["conclusion"].startswith("No significant difference")

    summary = api.get(f"{API}/stats/summary").json()
    assert summary["total_experiments"] == 1 and summary["stopped_experiments"] == 1
    assert summary["total_assignments"] == 1 and summary["total_conversions"] == 1
    health = api.get(f"{API}/health").json()
    assert (
        health
        == {
            "status": "healthy",
            "service": "experiments",
            "storage": "postgresql",
            "enabled": True,
            "total_experiments": 1,
            "running_experiments": 0,
            "running_canaries": 0,
            "unhealthy_experiments": [],
        }
        or health["storage"] == "sqlite"
    )


def with_variants(value) -> dict:
    payload = copy.deepcopy(SEED_EXPERIMENT)
    payload["variants"] = value
    return payload


@pytest.mark.parametrize(
    ("variants_value", "message"),
    [
        (
            {"control": {"traffic_percentage": 50}, "low_temp": {"traffic_percentage": 50}},
            "A list (JSON array) of variants, not an object",
        ),
        (
            [{**v, "traffic_percentage": 40} for v in SEED_EXPERIMENT["variants"]],
            "The traffic percentages add up to 80, not 100.",
        ),
        (
            [{**v, "type": "control"} for v in SEED_EXPERIMENT["variants"]],
            "Exactly one variant is the control; found 2 (control, low_temp).",
        ),
        (
            [{**v, "type": "treatment"} for v in SEED_EXPERIMENT["variants"]],
            "Exactly one variant is the control; found none.",
        ),
        (
            [
                SEED_EXPERIMENT["variants"][0],
                {**SEED_EXPERIMENT["variants"][0], "type": "treatment"},
            ],
            "Variant names are unique; repeated: control.",
        ),
        (SEED_EXPERIMENT["variants"][:1], "A list of at least two variants."),
        (
            [
                SEED_EXPERIMENT["variants"][0],
                {**SEED_EXPERIMENT["variants"][1], "config": {"temperature": 3}},
            ],
            "Variant 2: config.temperature: A number from 0 to 2.",
        ),
        (
            [
                SEED_EXPERIMENT["variants"][0],
                {**SEED_EXPERIMENT["variants"][1], "config": {"top_k": 3}},
            ],
            "Variant 2: config.top_k: Unknown override.",
        ),
        (
            [
                SEED_EXPERIMENT["variants"][0],
                {**SEED_EXPERIMENT["variants"][1], "config": {"provider": "nowhere"}},
            ],
            "Variant 2: config.provider: No provider 'nowhere'.",
        ),
        (
            [
                SEED_EXPERIMENT["variants"][0],
                {**SEED_EXPERIMENT["variants"][1], "traffic_percentage": 49.999},
            ],
            "Variant 2: traffic_percentage: At most two decimals (0.01% steps).",
        ),
    ],
    ids=[
        "dict",
        "sum",
        "two-controls",
        "no-control",
        "duplicate",
        "one",
        "temperature",
        "unknown-override",
        "provider",
        "decimals",
    ],
)
def test_invalid_variants_are_a_400_that_says_why(variants_value, message):
    response = client().post(API, with_variants(variants_value), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert message in " ".join(error["details"]["variants"])
    assert not Experiment.objects.exists()


def test_other_invalid_fields_are_400s():
    api = client()
    assert api.post(API, {**SEED_EXPERIMENT, "name": "123"}, format="json").status_code == 400
    assert api.post(API, {**SEED_EXPERIMENT, "user_percentage": 120}, format="json").json()[
        "error"
    ]["details"]["user_percentage"]
    created(api)
    duplicate = api.post(API, SEED_EXPERIMENT, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()["error"]["details"]


def test_viewers_read_operators_write():
    experiment = created(client())
    viewer = client(Role.VIEWER)
    assert viewer.get(API).status_code == 200
    assert viewer.get(f"{API}/{experiment['id']}/stats").status_code == 200
    assert viewer.post(API, SEED_EXPERIMENT, format="json").status_code == 403
    assert viewer.post(f"{API}/{experiment['id']}/start").status_code == 403
    assert viewer.patch(f"{API}/settings", {"enabled": False}, format="json").status_code == 403
    assert APIClient().get(API).status_code == 401


def test_what_the_state_does_not_allow_is_a_409():
    api = client()
    pk = created(api)["id"]
    assert api.post(f"{API}/{pk}/stop").json()["error"]["code"] == "conflict"
    draft_track = api.post(f"{API}/{pk}/track/conversion", {"user_id": "x"}, format="json")
    assert draft_track.status_code == 409
    api.post(f"{API}/{pk}/start")
    again = api.post(f"{API}/{pk}/start")
    assert again.status_code == 409 and again.json()["error"]["message"] == (
        "The experiment is already running."
    )
    unknown = api.post(f"{API}/{pk}/track/conversion", {"user_id": "nobody"}, format="json")
    assert unknown.status_code == 400
    assert "has no variant in the current phase" in unknown.json()["error"]["details"]["user_id"][0]
    api.post(f"{API}/{pk}/stop")
    restart = api.post(f"{API}/{pk}/start")
    assert (
        restart.status_code == 409 and "does not start again" in restart.json()["error"]["message"]
    )
    assert api.get(f"{API}/999999").status_code == 404


def test_feedback_scores_and_values_show_in_the_stats():
    api = client()
    pk = created(api)["id"]
    api.post(f"{API}/{pk}/start")
    users = [str(n) for n in range(12)]
    names = {u: api.get(f"{API}/{pk}/variant/{u}").json()["variant_name"] for u in users}
    for n, user in enumerate(users):
        assert (
            api.post(
                f"{API}/{pk}/track/feedback", {"user_id": user, "score": n % 5}, format="json"
            ).status_code
            == 201
        )
    api.post(f"{API}/{pk}/track/conversion", {"user_id": "0", "value": 9.5}, format="json")
    bad = api.post(f"{API}/{pk}/track/feedback", {"user_id": "0"}, format="json")
    assert bad.status_code == 400 and "score" in bad.json()["error"]["details"]
    stats = api.get(f"{API}/{pk}/stats").json()
    for variant in stats["variants"]:
        scores = [n % 5 for n, u in enumerate(users) if names[u] == variant["name"]]
        assert variant["feedback_count"] == len(scores)
        if scores:
            assert variant["feedback_mean"] == pytest.approx(sum(scores) / len(scores))
    assert sum(v["conversion_value"] for v in stats["variants"]) == 9.5


def test_changing_a_running_experiments_split_starts_a_new_phase():
    api = client()
    pk = created(api)["id"]
    api.post(f"{API}/{pk}/start")
    for user in range(20):
        api.get(f"{API}/{pk}/variant/{user}")
    renamed = api.patch(f"{API}/{pk}", {"description": "Only the text."}, format="json")
    assert renamed.json()["phase"] == 1  # no new split, no new phase

    reweighted = copy.deepcopy(SEED_EXPERIMENT["variants"])
    reweighted[0]["traffic_percentage"], reweighted[1]["traffic_percentage"] = 10, 90
    changed = api.patch(f"{API}/{pk}", {"variants": reweighted}, format="json")

    assert changed.status_code == 200, changed.json()
    body = changed.json()
    assert body["phase"] == 2
    assert [p["reason"] for p in body["phases"]] == [
        "Started.",
        "The variants or the split changed.",
    ]
    assert body["phases"][0]["ended_at"] is not None
    assert [p["allocation"][1]["traffic_percentage"] for p in body["phases"]] == [50.0, 90.0]
    # Phase 1's users are not silently moved: phase 2 starts with nobody, phase 1 keeps them.
    assert api.get(f"{API}/{pk}/stats").json()["users"] == 0
    earlier = api.get(f"{API}/{pk}/stats?phase=1").json()
    assert earlier["users"] == 20 and earlier["phase"] == 1
    current = api.get(f"{API}/{pk}/stats").json()
    assert [(p["number"], p["ended_at"] is None) for p in current["phases"]] == [
        (1, False),
        (2, True),
    ]
    assert current["phases"] == earlier["phases"] and current["phases"][1]["reason"]
    unknown = api.get(f"{API}/{pk}/stats?phase=3")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"]["phase"] == (
        "No phase 3: this experiment's phases are 1, 2."
    )
    assert [v["traffic_percentage"] for v in earlier["variants"]] == [50.0, 50.0]
    lookup = api.get(f"{API}/{pk}/variant/0").json()
    assert lookup["phase"] == 2
    assert Assignment.objects.filter(experiment_id=pk, user_id="0").count() == 2

    missing = api.patch(
        f"{API}/{pk}",
        {
            "variants": [
                {**reweighted[0], "traffic_percentage": 50},
                {"name": "new", "type": "treatment", "traffic_percentage": 50},
            ]
        },
        format="json",
    )
    assert missing.status_code == 400
    assert "missing: low_temp." in missing.json()["error"]["details"]["variants"][0]
    assert api.get(f"{API}/{pk}/stats?phase=x").status_code == 400


def test_the_runtime_switch_turns_the_feature_off_and_the_api_says_so():
    api = client()
    pk = created(api)["id"]
    api.post(f"{API}/{pk}/start")
    assert api.get("/api/v1/feature-status").json()["available"]["ab_testing"] is True
    assert api.get(f"{API}/settings").json()["enabled"] is True

    switched = api.patch(f"{API}/settings", {"enabled": False}, format="json")

    assert switched.status_code == 200 and switched.json()["enabled"] is False
    assert api.get("/api/v1/feature-status").json()["available"]["ab_testing"] is False
    lookup = api.get(f"{API}/{pk}/variant/7").json()
    assert lookup["assigned"] is False and "switched off" in lookup["reason"]
    assert api.get(f"{API}/health").json()["status"] == "disabled"
    other = created(api, {**SEED_EXPERIMENT, "name": "another"})
    refused = api.post(f"{API}/{other['id']}/start")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "feature_disabled"
    bad = api.patch(f"{API}/settings", {"significance_level": 0.5}, format="json")
    assert bad.status_code == 400
    api.patch(f"{API}/settings", {"enabled": True}, format="json")
    assert api.get(f"{API}/{pk}/variant/7").json()["assigned"] is True


def test_users_outside_the_user_percentage_get_the_default_config():
    api = client()
    pk = created(api, {**SEED_EXPERIMENT, "user_percentage": 10})["id"]
    api.post(f"{API}/{pk}/start")
    answers = [api.get(f"{API}/{pk}/variant/u{n}").json() for n in range(60)]
    outside = [a for a in answers if not a["assigned"]]
    assert 40 < len(outside) < 60
    assert outside[0]["variant_name"] is None and outside[0]["variant_config"] == {}
    assert "10% of users" in outside[0]["reason"]
    assert Assignment.objects.count() == 60 - len(outside)


def test_canaries_through_the_api(two_providers):
    api = client()
    pk = created(api, {**SEED_EXPERIMENT, "variants": variants({"model": "chat"})})["id"]
    url = f"{API}/canaries"
    bad = api.post(
        url, {"experiment": pk, "treatment": "treatment", "steps": [50, 20, 100]}, format="json"
    )
    assert bad.status_code == 400 and "steps" in bad.json()["error"]["details"]
    control = api.post(url, {"experiment": pk, "treatment": "control"}, format="json")
    assert control.status_code == 400
    assert "is the control" in control.json()["error"]["details"]["treatment"][0]

    made = api.post(
        url,
        {"experiment": pk, "treatment": "treatment", "steps": [10, 50, 100], "min_requests": 5},
        format="json",
    )

    assert made.status_code == 201, made.json()
    canary = made.json()
    assert (canary["status"], canary["percentage"], canary["current_step"]) == ("running", 10, 0)
    assert canary["min_requests"] == 5 and canary["step_interval_seconds"] == 600
    assert [e["kind"] for e in canary["log"]] == ["started"]
    experiment = api.get(f"{API}/{pk}").json()
    assert experiment["status"] == "running"
    assert [v["traffic_percentage"] for v in experiment["variants"]] == [90.0, 10.0]
    second = api.post(url, {"experiment": pk, "treatment": "treatment"}, format="json")
    assert (
        second.status_code == 409
        and "already has a running canary" in second.json()["error"]["message"]
    )
    assert [c["id"] for c in api.get(url).json()["results"]] == [canary["id"]]
    judged = api.post(f"{url}/{canary['id']}/advance").json()
    assert judged["status"] == "running" and judged["percentage"] == 10  # no calls yet

    rolled = api.post(f"{url}/{canary['id']}/rollback", {"reason": "Not today."}, format="json")

    assert rolled.status_code == 200
    assert (rolled.json()["status"], rolled.json()["percentage"]) == ("rolled_back", 0)
    assert [e["kind"] for e in rolled.json()["log"]] == ["started", "rolled_back"]
    assert api.get(f"{API}/{pk}").json()["variants"][1]["traffic_percentage"] == 0.0
    assert api.post(f"{url}/{canary['id']}/rollback", format="json").status_code == 409
    assert Experiment.objects.get(pk=pk).status == ExperimentStatus.RUNNING
    assert api.get(f"{url}/{canary['id']}").json()["reason"] == "Not today."


def test_one_feedback_score_gives_no_standard_deviation_and_no_error():
    """SQLite's sample standard deviation raises over a single value; PostgreSQL's is NULL:
    every figure built on it answers, in both databases."""
    api = client()
    pk = created(api)["id"]
    api.post(f"{API}/{pk}/start")
    api.get(f"{API}/{pk}/variant/7")
    tracked = api.post(f"{API}/{pk}/track/feedback", {"user_id": "7", "score": 4}, format="json")
    assert tracked.status_code == 201, tracked.json()
    name = tracked.json()["variant_name"]

    stats = api.get(f"{API}/{pk}/stats")

    assert stats.status_code == 200, stats.content
    mine = next(v for v in stats.json()["variants"] if v["name"] == name)
    assert (mine["feedback_count"], mine["feedback_mean"], mine["feedback_stddev"]) == (
        1,
        4.0,
        None,
    )
    assert api.get(f"{API}/stats/summary").status_code == 200
    assert api.get(f"{API}/health").json()["status"] == "healthy"
    page = Client()
    page.force_login(member(Role.VIEWER))
    assert page.get(f"/admin/experiment-board/{pk}/").status_code == 200

    api.post(f"{API}/{pk}/track/feedback", {"user_id": "7", "score": 2}, format="json")
    two = next(v for v in api.get(f"{API}/{pk}/stats").json()["variants"] if v["name"] == name)
    assert two["feedback_stddev"] == pytest.approx(math.sqrt(2))


def test_the_guardrails_minimum_and_latency_floor_are_settings_an_operator_changes():
    api = client()
    assert api.get(f"{API}/settings").json()["guardrail_min_calls"] == 30
    changed = api.patch(
        f"{API}/settings", {"guardrail_min_calls": 100, "latency_floor_ms": 250}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["guardrail_min_calls"], changed.json()["latency_floor_ms"]) == (100, 250)
    for bad in ({"guardrail_min_calls": 0}, {"latency_floor_ms": -1}, {"latency_floor_ms": "x"}):
        refused = api.patch(f"{API}/settings", bad, format="json")
        assert refused.status_code == 400 and set(refused.json()["error"]["details"]) == set(bad)
    viewer = client(Role.VIEWER)
    assert (
        viewer.patch(f"{API}/settings", {"latency_floor_ms": 0}, format="json").status_code == 403
    )
    assert api.get(f"{API}/settings").json()["latency_floor_ms"] == 250
    pk = created(api)["id"]
    assert api.get(f"{API}/{pk}/stats").json()["guardrail_min_calls"] == 100
