"""The statistics of an experiment, as pure functions of counts (SciPy does the distributions).

- Conversion rate interval: Wilson's score interval (no continuity correction), which stays
  inside [0, 1] and keeps its coverage for small samples and rates near 0 or 1, unlike Wald's.
- Difference to the control: the two-proportion z-test with the pooled rate,
  ``z = (p_t - p_c) / sqrt(p (1 - p) (1/n_t + 1/n_c))``, two-sided ``p = 2 (1 - Φ(|z|))`` (the
  same p-value as Pearson's chi-square on the 2×2 table without Yates' correction); the
  difference's interval is Wald's unpooled ``d ± z_{1-α/2} sqrt(p_t q_t / n_t + p_c q_c / n_c)``.
- Chance to beat the control: posteriors ``Beta(1 + conversions, 1 + non-conversions)`` (a
  uniform prior) and ``P(p_t > p_c)`` in closed form (Evan Miller's sum,
  ``Σ_{i<α_t} B(α_c + i, β_c + β_t) / ((β_t + i) B(1 + i, β_t) B(α_c, β_c))``), exact and
  deterministic, summed over the smaller of the two alphas.
- Feedback scores: Welch's t-test of the means (unequal variances).
- Guardrails (error rate, p95 latency, cost per successful answer) are judged only once each
  arm has a minimum of calls, and the latency one has an absolute floor besides its relative
  margin (``latency_limit``).
- Sample ratio mismatch: Pearson's chi-square goodness of fit of the assigned users against the
  planned split; mismatched below ``SRM_ALPHA`` (0.001), the usual threshold, so that a real
  skew is caught while a healthy experiment is almost never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType

SRM_ALPHA = 0.001


@cache
def _scipy() -> tuple[ModuleType, ModuleType, ModuleType]:
    """NumPy, ``scipy.special`` and ``scipy.stats``, imported on first use: SciPy's statistics
    take over a second and about 70 MB to import, which the processes that never compute a
    report (the gateway, the workers) should not pay at start-up (the admin imports this)."""
    import numpy
    from scipy import special, stats  # type: ignore[import-untyped]

    return numpy, special, stats


@dataclass(frozen=True)
class ProportionTest:
    """A treatment's conversion rate against the control's."""

    difference: float  # p_t - p_c
    difference_low: float
    difference_high: float
    relative_lift: float | None  # difference / p_c; None when the control converts nobody
    z: float
    p_value: float


@dataclass(frozen=True)
class SrmCheck:
    chi2: float
    p_value: float
    mismatch: bool


def rate(successes: int, trials: int) -> float | None:
    return successes / trials if trials else None


def _z(confidence: float) -> float:
    _, _, stats = _scipy()
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def wilson_interval(
    successes: int, trials: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Wilson's score interval of a proportion; None without trials."""
    if trials <= 0:
        return None
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(
    treatment_successes: int,
    treatment_trials: int,
    control_successes: int,
    control_trials: int,
    confidence: float = 0.95,
) -> ProportionTest | None:
    """The pooled two-proportion z-test and Wald's interval of the difference; None unless both
    arms have trials."""
    if treatment_trials <= 0 or control_trials <= 0:
        return None
    p_t = treatment_successes / treatment_trials
    p_c = control_successes / control_trials
    difference = p_t - p_c
    pooled = (treatment_successes + control_successes) / (treatment_trials + control_trials)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / treatment_trials + 1 / control_trials))
    if pooled_se == 0:  # both arms all or nothing alike: no evidence of a difference
        z, p_value = 0.0, 1.0
    else:
        _, _, stats = _scipy()
        z = difference / pooled_se
        p_value = float(2 * stats.norm.sf(abs(z)))
    se = math.sqrt(p_t * (1 - p_t) / treatment_trials + p_c * (1 - p_c) / control_trials)
    half = _z(confidence) * se
    return ProportionTest(
        difference=difference,
        difference_low=difference - half,
        difference_high=difference + half,
        relative_lift=difference / p_c if p_c else None,
        z=z,
        p_value=min(1.0, p_value),
    )


def _probability_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    np, special, _ = _scipy()
    i = np.arange(alpha_b, dtype=np.float64)
    logs = (
        special.betaln(alpha_a + i, beta_a + beta_b)
        - np.log(beta_b + i)
        - special.betaln(1 + i, beta_b)
        - special.betaln(alpha_a, beta_a)
    )
    return float(np.exp(logs).sum())


def chance_to_beat(
    treatment_successes: int, treatment_trials: int, control_successes: int, control_trials: int
) -> float:
    """P(treatment's rate > control's) under Beta(1 + s, 1 + f) posteriors (0.5 with no data)."""
    alpha_t, beta_t = 1 + treatment_successes, 1 + treatment_trials - treatment_successes
    alpha_c, beta_c = 1 + control_successes, 1 + control_trials - control_successes
    if alpha_t <= alpha_c:
        chance = _probability_b_beats_a(alpha_c, beta_c, alpha_t, beta_t)
    else:
        chance = 1 - _probability_b_beats_a(alpha_t, beta_t, alpha_c, beta_c)
    return min(1.0, max(0.0, chance))


def welch_p_value(
    mean_t: float, sd_t: float, n_t: int, mean_c: float, sd_c: float, n_c: int
) -> float | None:
    """Two-sided p-value of Welch's t-test of two means; None below two observations a side or
    without any spread."""
    if n_t < 2 or n_c < 2 or (sd_t == 0 and sd_c == 0):
        return None
    _, _, stats = _scipy()
    result = stats.ttest_ind_from_stats(mean_t, sd_t, n_t, mean_c, sd_c, n_c, equal_var=False)
    return float(result.pvalue)


def srm_check(observed: Sequence[int], planned: Sequence[float]) -> SrmCheck | None:
    """Chi-square of the assigned users per variant against the planned shares (any scale).

    A variant planned at 0% that has users is a mismatch outright; variants planned at 0% with
    none are left out. None when there is nothing to compare (no users, one variant)."""
    if len(observed) != len(planned):
        raise ValueError("one planned share per observed count")
    total = sum(observed)
    if total == 0:
        return None
    if any(count > 0 and share <= 0 for count, share in zip(observed, planned, strict=True)):
        return SrmCheck(chi2=math.inf, p_value=0.0, mismatch=True)
    kept = [(count, share) for count, share in zip(observed, planned, strict=True) if share > 0]
    if len(kept) < 2:
        return None
    planned_total = sum(share for _, share in kept)
    expected = [total * share / planned_total for _, share in kept]
    _, _, stats = _scipy()
    chi2, p_value = stats.chisquare([count for count, _ in kept], expected)
    return SrmCheck(chi2=float(chi2), p_value=float(p_value), mismatch=bool(p_value < SRM_ALPHA))


def latency_limit(control_ms: float, margin: float, floor_ms: float) -> float:
    """The highest p95 latency a treatment may have against the control's: the control's times
    ``1 + margin``, but never less than the control's plus ``floor_ms``, so that a ratio of
    tiny latencies (2 ms against 3 ms, timer noise) is not a regression."""
    return max(control_ms * (1 + margin), control_ms + floor_ms)
