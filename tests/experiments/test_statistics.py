"""The statistics against SciPy's reference computations, on known data sets, as pure functions
and through an experiment's stored assignments and conversions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from django.utils import timezone
from scipy import integrate, stats  # type: ignore[import-untyped]

from apps.analytics.histograms import ERROR_BOUND
from apps.core.aggregates import percentile
from apps.experiments.models import (
    Assignment,
    CanaryRollout,
    Experiment,
    TrackedEvent,
    TrackedEventKind,
)
from apps.experiments.pages import verdict
from apps.experiments.selectors import CallFigures, experiment_stats
from apps.experiments.services import (
    canary_problems,
    experiment_create,
    experiment_settings_update,
    experiment_start,
    experiment_stop,
)
from apps.experiments.statistics import (
    chance_to_beat,
    latency_limit,
    srm_check,
    two_proportion_test,
    welch_p_value,
    wilson_interval,
)
from apps.providers.models import LlmCall
from tests.dashboard.conftest import call_record

from .conftest import variants

# Known data: the control converts 200 of 2000 users (10%), the treatment 250 of 2000 (12.5%).
CONTROL = (200, 2000)
TREATMENT = (250, 2000)


def reference_p_value(treatment: tuple[int, int], control: tuple[int, int]) -> float:
    """Pearson's chi-square on the 2×2 table without Yates' correction: the pooled z-test's
    two-sided p-value."""
    table = [[treatment[0], treatment[1] - treatment[0]], [control[0], control[1] - control[0]]]
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def reference_chance(treatment: tuple[int, int], control: tuple[int, int]) -> float:
    """P(p_t > p_c) = ∫ f_t(x) F_c(x) dx for the Beta(1 + s, 1 + f) posteriors."""
    t = stats.beta(1 + treatment[0], 1 + treatment[1] - treatment[0])
    c = stats.beta(1 + control[0], 1 + control[1] - control[0])
    return integrate.quad(lambda x: t.pdf(x) * c.cdf(x), 0, 1, limit=200)[0]


def test_the_conversion_interval_is_scipys_wilson_interval():
    for successes, trials in [TREATMENT, CONTROL, (0, 20), (20, 20), (3, 7)]:
        expected = stats.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
        low, high = wilson_interval(successes, trials, 0.95)
        assert low == pytest.approx(expected.low, abs=1e-12)
        assert high == pytest.approx(expected.high, abs=1e-12)
    expected = stats.binomtest(*TREATMENT).proportion_ci(0.99, method="wilson")
    assert wilson_interval(*TREATMENT, 0.99) == pytest.approx((expected.low, expected.high))
    assert wilson_interval(0, 0) is None


def test_the_difference_has_scipys_p_value_and_walds_interval():
    test = two_proportion_test(*TREATMENT, *CONTROL)
    assert test.difference == pytest.approx(0.025)
    assert test.p_value == pytest.approx(reference_p_value(TREATMENT, CONTROL), rel=1e-9)
    assert test.p_value == pytest.approx(0.01235, abs=1e-5)  # significant at 5%, not at 1%
    se = np.sqrt(0.125 * 0.875 / 2000 + 0.1 * 0.9 / 2000)
    z = stats.norm.ppf(0.975)
    assert (test.difference_low, test.difference_high) == pytest.approx(
        (0.025 - z * se, 0.025 + z * se)
    )
    assert test.relative_lift == pytest.approx(0.25)
    assert test.z == pytest.approx(
        np.sqrt(stats.chi2_contingency([[250, 1750], [200, 1800]], correction=False).statistic)
    )
    same = two_proportion_test(0, 10, 0, 10)
    assert same.p_value == 1.0 and same.difference == 0


def test_the_chance_to_beat_the_control_matches_integration_and_sampling():
    for treatment, control in [
        (TREATMENT, CONTROL),
        ((5, 20), (9, 20)),
        ((0, 0), (0, 0)),
        ((300, 2000), (280, 2100)),
        ((1, 3), (40, 41)),
    ]:
        assert chance_to_beat(*treatment, *control) == pytest.approx(
            reference_chance(treatment, control), abs=1e-9
        )
    rng = np.random.default_rng(7)
    draws_t = rng.beta(251, 1751, 400_000)
    draws_c = rng.beta(201, 1801, 400_000)
    assert chance_to_beat(*TREATMENT, *CONTROL) == pytest.approx(
        (draws_t > draws_c).mean(), abs=0.003
    )
    assert chance_to_beat(*CONTROL, *TREATMENT) == pytest.approx(
        1 - chance_to_beat(*TREATMENT, *CONTROL)
    )


def test_the_srm_check_is_scipys_chi_square_flagged_below_one_in_a_thousand():
    balanced = srm_check([5040, 4960], [50, 50])
    assert balanced.p_value == pytest.approx(stats.chisquare([5040, 4960]).pvalue)
    assert not balanced.mismatch
    skewed = srm_check([5200, 4800], [50, 50])
    assert skewed.p_value == pytest.approx(stats.chisquare([5200, 4800]).pvalue)
    assert skewed.p_value < 0.001 and skewed.mismatch
    three = srm_check([2100, 2900, 5000], [20, 30, 50])
    assert three.chi2 == pytest.approx(stats.chisquare([2100, 2900, 5000], [2000, 3000, 5000])[0])
    assert srm_check([10, 3], [100, 0]).mismatch  # users on a variant planned at 0%
    assert srm_check([10, 0], [100, 0]) is None and srm_check([0, 0], [50, 50]) is None


def test_welch_and_percentiles_match_numpy_and_scipy():
    a = [4.0, 5.0, 3.0, 5.0, 4.0, 4.5]
    b = [3.0, 2.5, 4.0, 3.0, 3.5]
    expected = stats.ttest_ind(a, b, equal_var=False).pvalue
    got = welch_p_value(
        np.mean(a), np.std(a, ddof=1), len(a), np.mean(b), np.std(b, ddof=1), len(b)
    )
    assert got == pytest.approx(expected)
    assert welch_p_value(4, 1, 1, 3, 1, 5) is None
    assert percentile([1.0, 2.0, 3.0, 10.0], 0.95) == pytest.approx(
        np.percentile([1, 2, 3, 10], 95)
    )
    assert percentile([], 0.5) is None


def store_outcomes(experiment: Experiment, counts: dict[str, tuple[int, int]]) -> None:
    """``converted`` of ``users`` assigned users per variant, in the current phase."""
    for variant in experiment.variants.all():
        converted, users = counts[variant.name]
        Assignment.objects.bulk_create(
            Assignment(
                experiment=experiment,
                phase=experiment.phase,
                variant=variant,
                user_id=f"{variant.name}-{n}",
            )
            for n in range(users)
        )
        TrackedEvent.objects.bulk_create(
            TrackedEvent(
                experiment=experiment,
                phase=experiment.phase,
                variant=variant,
                user_id=f"{variant.name}-{n}",
                kind=TrackedEventKind.CONVERSION,
            )
            for n in range(converted)
        )


@pytest.mark.django_db
def test_an_experiments_stats_give_scipys_p_value_and_interval_and_stop_picks_the_winner():
    experiment = experiment_create(name="known data", variants=variants())
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    store_outcomes(experiment, {"control": CONTROL, "treatment": TREATMENT})
    # A second conversion of a converted user does not count twice in the rate.
    TrackedEvent.objects.create(
        experiment=experiment,
        phase=1,
        variant=experiment.variants.get(name="treatment"),
        user_id="treatment-0",
        kind=TrackedEventKind.CONVERSION,
        value=3.5,
    )

    stats_ = experiment_stats(experiment=experiment)

    control, treatment = stats_["variants"]
    assert (control["users"], control["converted_users"]) == (2000, 200)
    assert (treatment["converted_users"], treatment["conversions"]) == (250, 251)
    assert treatment["conversion_value"] == 3.5
    wilson = stats.binomtest(250, 2000).proportion_ci(0.95, method="wilson")
    assert treatment["conversion_rate_interval"] == pytest.approx([wilson.low, wilson.high])
    versus = treatment["versus_control"]
    assert versus["p_value"] == pytest.approx(reference_p_value(TREATMENT, CONTROL))
    assert versus["significant"] is True
    assert versus["chance_to_beat_control"] == pytest.approx(
        reference_chance(TREATMENT, CONTROL), abs=1e-9
    )
    assert control["versus_control"] is None
    assert stats_["srm"]["p_value"] == pytest.approx(1.0) and stats_["healthy"] is True
    assert stats_["decision"]["winner"] == "treatment"

    stopped = experiment_stop(experiment=experiment)
    assert stopped.winner.name == "treatment"
    assert "(p = 0.0124 < 0.05): treatment wins." in stopped.conclusion


@pytest.mark.django_db
def test_without_a_significant_difference_stopping_names_no_winner():
    experiment = experiment_create(name="no difference", variants=variants())
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    store_outcomes(experiment, {"control": (100, 1000), "treatment": (110, 1000)})
    stopped = experiment_stop(experiment=experiment)
    assert stopped.winner is None
    assert stopped.conclusion.startswith("No significant difference at the 0.05 level")
    assert f"lowest p = {reference_p_value((110, 1000), (100, 1000)):.3g}" in stopped.conclusion


def test_the_latency_limit_is_the_relative_margin_but_never_below_the_floor():
    assert latency_limit(3.0, 0.5, 100) == 103.0  # tiny latencies: the floor decides
    assert latency_limit(2000.0, 0.5, 100) == 3000.0  # real ones: the margin decides
    assert latency_limit(200.0, 0.5, 0) == 300.0


def store_calls(experiment: Experiment, latencies: dict[str, list[float]]) -> None:
    """Successful call records of each variant with these latencies, in the current phase."""
    calls = []
    for variant in experiment.variants.all():
        for latency in latencies[variant.name]:
            call = call_record(at=timezone.now(), latency_ms=latency)
            call.experiment_variant_id = variant.pk
            calls.append(call)
    LlmCall.objects.bulk_create(calls)


def latency_check(experiment: Experiment) -> tuple[dict, list[str]]:
    stats_ = experiment_stats(experiment=experiment)
    treatment = stats_["variants"][1]
    return treatment["versus_control"]["guardrails"]["latency_p95_ms"], verdict(stats_)


@pytest.mark.django_db
def test_a_latency_guardrail_of_a_few_milliseconds_holds_and_a_real_regression_breaches():
    experiment = experiment_create(name="latency", variants=variants())
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    store_outcomes(experiment, {"control": (1, 40), "treatment": (1, 40)})
    store_calls(experiment, {"control": [2.0] * 40, "treatment": [3.5] * 40})

    check, sentences = latency_check(experiment)

    # p95 read from histograms: within their bound of the calls' latencies, each side.
    within = pytest.approx
    assert check["control"] == within(2.0, rel=ERROR_BOUND)
    assert check["treatment"] == within(3.5, rel=ERROR_BOUND)
    assert check["limit"] == within(check["control"] + 100, abs=0.01)
    assert check["judged"] and not check["breached"]
    assert "latency guardrail breached" not in sentences[0]
    assert "latency" in sentences[0] and "hold" in sentences[0]
    experiment_settings_update(latency_floor_ms=0)  # a bare ratio: 3.5 ms > 2 ms × 1.5
    assert latency_check(experiment)[0]["breached"]
    experiment_settings_update(latency_floor_ms=100)

    store_calls(experiment, {"control": [], "treatment": [400.0] * 40})
    check, sentences = latency_check(experiment)
    assert check["treatment"] == pytest.approx(400.0, rel=ERROR_BOUND)
    assert check["judged"] and check["breached"]
    assert "latency guardrail breached" in sentences[0]
    stats_ = experiment_stats(experiment=experiment)
    assert stats_["variants"][1]["versus_control"]["guardrails_breached"] == ["latency_p95_ms"]


@pytest.mark.django_db
def test_guardrails_wait_for_their_minimum_of_calls_on_both_sides():
    experiment = experiment_create(name="few calls", variants=variants())
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    store_outcomes(experiment, {"control": (1, 40), "treatment": (1, 29)})
    store_calls(experiment, {"control": [2.0] * 40, "treatment": [900.0] * 29})

    check, sentences = latency_check(experiment)

    assert check["sample"] == 29 and not check["judged"] and not check["breached"]
    assert "guardrails wait for 30 calls a side" in sentences[0]
    assert "breached" not in sentences[0]

    experiment_settings_update(guardrail_min_calls=29)
    check, sentences = latency_check(experiment)
    assert check["judged"] and check["breached"]
    assert "latency guardrail breached" in sentences[0]

    experiment_settings_update(guardrail_min_calls=5, latency_floor_ms=1000)
    check, _ = latency_check(experiment)
    assert check["judged"] and not check["breached"]
    assert check["limit"] == pytest.approx(check["control"] + 1000, abs=0.01)


def test_a_canary_is_not_rolled_back_for_milliseconds_but_is_for_a_real_regression():
    rollout = CanaryRollout(latency_margin=0.5, error_rate_margin=0.05)
    control = CallFigures(requests=50, successes=50, latency_p95_ms=2.0)
    assert canary_problems(rollout, control, replace(control, latency_p95_ms=3.0), 100) == []
    slow = replace(control, latency_p95_ms=150.0)
    assert canary_problems(rollout, control, slow, 100)[0].startswith(
        "p95 latency 150 ms against the control's 2 ms"
    )
    assert canary_problems(rollout, control, slow, 200) == []
