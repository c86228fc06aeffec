"""The health gate as tables: exact p-values by hand, the verdict rule, strata, looks, config."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from scipy import integrate, stats

from evota.domain import healthstats as hs
from evota.domain.health import (
    Cohort,
    Decision,
    GateConfig,
    KpiEvidence,
    KpiKind,
    KpiSpec,
    Observation,
    Outcome,
    Verdict,
    default_gate,
    judge,
)
from evota.errors import InputError

U, C = Cohort.UPDATED, Cohort.CONTROL
SOC = KpiSpec("soc_error_pct", KpiKind.CONTINUOUS, 1.0)
TEMP = KpiSpec("max_temp_c", KpiKind.CONTINUOUS, 3.0, hard_limit=60.0)
CHARGE = KpiSpec("charge_success", KpiKind.RATE, 0.05, higher_is_worse=False, min_trials=60)
FAULTS = KpiSpec("fault_codes", KpiKind.COUNT, 1.5, min_trials=50)
Value = float | tuple[float, float]


def gate(*kpis: KpiSpec, **kw: object) -> GateConfig:
    return GateConfig(kpis, **{"max_looks": 1, **kw})  # type: ignore[arg-type]


def cohort(
    stratum: str,
    group: Cohort,
    values: Sequence[Mapping[str, Value]],
    baselines: Sequence[Mapping[str, float]] | None = None,
    *,
    first: int = 0,
) -> list[Observation]:
    return [
        Observation(
            f"{stratum}-{group}-{first + i:03d}", group, stratum, v, baselines[i] if baselines else {}
        )
        for i, v in enumerate(values)
    ]


def soc(stratum: str, group: Cohort, xs: Sequence[float]) -> list[Observation]:
    return cohort(stratum, group, [{"soc_error_pct": x} for x in xs])


def noisy(n: int, mean: float, sd: float, seed: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(mean, sd, n)]


def row(verdict: Verdict, kpi: str, stratum: str | None) -> KpiEvidence:
    (found,) = [k for k in verdict.kpis if k.kpi == kpi and k.stratum == stratum]
    return found


# --- the statistics, by hand -------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "margin", "p_det", "p_ni"),
    [
        # C(5, 3) = 10 arrangements; {3, 4, 5} is the single most extreme one.
        pytest.param([([3, 4, 5], [1, 2])], 0.0, 1 / 10, 1.0, id="3v2-top-of-10"),
        # 2 vs 2: C(4, 2) = 6, so the smallest one-sided p is 1/6: never significant at 5 %.
        pytest.param([([2, 3], [0, 1])], 0.0, 1 / 6, 1.0, id="2v2-smallest-p-is-1/6"),
        pytest.param([([0, 1], [2, 3])], 0.0, 1.0, 1 / 6, id="2v2-better-shows-non-inferiority-at-1/6"),
        # Margin 2.5 shifts the updated values to {0.5, 1.5, 2.5}: T ≥ 0 for 6 of 10 subsets
        # (sums 6, 5.5, 5, 5, 4.5, 4.5) and T ≤ 0 for 6 (4.5, 4.5, 4, 4, 3.5, 3); ties count twice.
        pytest.param([([3, 4, 5], [1, 2])], 2.5, 6 / 10, 6 / 10, id="3v2-at-the-margin-ties"),
        # Two strata of 1 vs 1: 2 × 2 arrangements, permuted within strata only.
        pytest.param([([1], [0]), ([1], [0])], 0.0, 1 / 4, 1.0, id="stratified-1v1-twice"),
    ],
)
def test_exact_permutation_p_values_by_hand(
    groups: list[tuple[list[float], list[float]]], margin: float, p_det: float, p_ni: float
) -> None:
    arrays = [(np.array(u, dtype=np.float64), np.array(c, dtype=np.float64)) for u, c in groups]
    r = hs.permutation(arrays, margin, 0.05, np.random.default_rng(0), strictest=0.05)
    assert r.p_deterioration == pytest.approx(p_det)
    assert r.p_noninferiority == pytest.approx(p_ni)
    assert "exact" in r.method


def test_the_permutation_interval_inverts_both_tests() -> None:
    """Just inside the lower bound the deterioration test rejects, just outside it does not."""
    rng = np.random.default_rng(4)
    groups = [(rng.normal(1, 1, 4), rng.normal(0, 1, 3)), (rng.normal(0.5, 1, 3), rng.normal(0, 1, 3))]
    r = hs.permutation(groups, 0.0, 0.05, rng, strictest=0.05)
    assert r.lower is not None and r.upper is not None and r.lower < r.estimate < r.upper

    def at(m: float) -> hs.Inference:
        return hs.permutation(groups, m, 0.05, rng, strictest=0.05)

    assert at(r.lower - 1e-6).p_deterioration <= 0.05 < at(r.lower + 1e-6).p_deterioration
    assert at(r.upper + 1e-6).p_noninferiority <= 0.05 < at(r.upper - 1e-6).p_noninferiority


def test_monte_carlo_permutation_agrees_with_scipy() -> None:
    rng = np.random.default_rng(9)
    u, c = rng.normal(0.6, 1, 25), rng.normal(0, 1, 25)
    r = hs.permutation([(u, c)], 0.2, 0.05, np.random.default_rng(1), strictest=0.01)
    ref = stats.permutation_test(
        (u - 0.2, c),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        alternative="greater",
        n_resamples=9_999,
        vectorized=True,
        rng=2,
    )
    assert "Monte Carlo" in r.method
    assert r.p_deterioration == pytest.approx(ref.pvalue, abs=0.004)


@pytest.mark.parametrize(
    ("groups", "margin", "p_det", "p_ni"),
    [
        # Zero baseline: all N events in the updated cohort, equal exposure: p = (1.5/2.5)^N.
        pytest.param([(5, 10.0, 0, 10.0)], 1.5, 0.6**5, 1.0, id="zero-control-5-events"),
        pytest.param([(10, 10.0, 0, 10.0)], 1.5, 0.6**10, 1.0, id="zero-control-10-events"),
        # π = 1/2, N = 6: P(X ≥ 3) = P(X ≤ 3) = 42/64.
        pytest.param([(3, 10.0, 3, 10.0)], 1.0, 42 / 64, 42 / 64, id="even-split"),
        # π = 20/30 by exposure, N = 6: P(X ≤ 1) = (1 + 12)/729, P(X = 2) = 15·4/729.
        pytest.param([(2, 20.0, 4, 10.0)], 1.0, 1 - 13 / 729, 73 / 729, id="exposure-weighted"),
        # Two strata, one event each, all in the updated cohort: 1/2 · 1/2.
        pytest.param([(1, 1.0, 0, 1.0), (1, 1.0, 0, 1.0)], 1.0, 0.25, 1.0, id="stratified-convolution"),
    ],
)
def test_exact_poisson_rate_ratio_by_hand(
    groups: list[tuple[int, float, int, float]], margin: float, p_det: float, p_ni: float
) -> None:
    r = hs.poisson_ratio(groups, margin, 0.05)
    assert r.p_deterioration == pytest.approx(p_det)
    assert r.p_noninferiority == pytest.approx(p_ni)


def _posterior_reference(bu: int, tu: int, bc: int, tc: int, margin: float) -> float:
    """P(r_u − r_c ≤ margin) under Jeffreys posteriors, by quadrature (independent of the code)."""
    fu, fc = stats.beta(0.5 + bu, 0.5 + tu - bu), stats.beta(0.5 + bc, 0.5 + tc - bc)
    value, _ = integrate.quad(lambda x: fc.pdf(x) * fu.cdf(min(1.0, x + margin)), 0, 1, limit=200)
    return float(value)


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param((3, 40, 1, 40), id="few-failures"),
        pytest.param((0, 60, 0, 60), id="no-failures-in-60"),
        pytest.param((12, 100, 0, 300), id="zero-baseline"),
    ],
)
def test_rate_posterior_matches_quadrature(counts: tuple[int, int, int, int]) -> None:
    r = hs.rate_posterior([counts], 0.05, 0.05, np.random.default_rng(0), strictest=0.05)
    assert r.p_deterioration == pytest.approx(_posterior_reference(*counts, 0.05), abs=0.005)
    assert r.p_deterioration + r.p_noninferiority == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("pvalues", "adjusted", "rejected"),
    [
        # Sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → monotone 0.06.
        # 0.04 alone is below 0.05 but Holm stops at the first test it keeps.
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02], [True, False, False, True]),
        ([0.2, 0.01], [0.2, 0.02], [False, True]),
        ([0.5], [0.5], [False]),
        ([0.9, 0.8, 0.7], [1.0, 1.0, 1.0], [False, False, False]),
    ],
)
def test_holm_step_down(pvalues: list[float], adjusted: list[float], rejected: list[bool]) -> None:
    got = hs.holm(pvalues)
    assert got == pytest.approx(adjusted)
    assert [p <= 0.05 for p in got] == rejected


def test_alpha_spending_makes_an_early_look_stricter_than_a_late_one() -> None:
    config = default_gate()
    shares = [config.alpha_at(k) for k in range(1, config.max_looks + 1)]
    assert shares == sorted(shares) and shares[0] < shares[-1] / 30
    assert math.fsum(shares) == pytest.approx(config.alpha)
    assert config.alpha_at(config.max_looks + 1) == 0.0
    pocock_like = GateConfig(config.kpis, spending_gamma=1.0)
    assert pocock_like.alpha_at(1) > config.alpha_at(1)
    assert math.fsum(pocock_like.alpha_at(k) for k in range(1, 11)) == pytest.approx(0.05)


# --- the verdict ---------------------------------------------------------------------------


def test_the_same_evidence_rolls_back_at_a_late_look_but_not_at_an_early_one() -> None:
    """6 vs 6 clearly worse: exact p = 1/924 = 0.0011, above look 1's 0.00046, below look 10's."""
    obs = soc("mild", U, [5, 5.1, 5.2, 5.3, 5.4, 5.5]) + soc("mild", C, [1, 1.1, 1.2, 1.3, 1.4, 1.5])
    config = gate(SOC, max_looks=10)
    early, late = judge(config, obs, look=1), judge(config, obs, look=10)
    assert row(early, "soc_error_pct", "mild").p_deterioration == pytest.approx(1 / 924)
    assert early.outcome is Outcome.HOLD
    assert row(early, "soc_error_pct", "mild").decision is Decision.TRENDING_WORSE
    assert "not significantly yet" in early.reasons[0]
    assert late.outcome is Outcome.ROLLBACK
    assert "worse beyond the margin 1" in late.reasons[0]


@pytest.mark.parametrize(
    ("obs", "reason"),
    [
        pytest.param(
            soc("mild", U, [1, 1, 1]) + soc("mild", C, [1, 1]),
            "soc_error_pct in mild: not enough data: 3 updated / 2 control vehicles, need 5 per cohort",
            id="2-vehicles",
        ),
        pytest.param([], "soc_error_pct: not enough data: no stratum has both", id="nothing"),
        pytest.param(
            cohort("mild", U, [{"other": 1.0}] * 9) + soc("mild", C, [1] * 9),
            "soc_error_pct: not enough data: no stratum has both",
            id="kpi-missing-in-updated",
        ),
    ],
)
def test_not_enough_data_holds(obs: list[Observation], reason: str) -> None:
    v = judge(gate(SOC), obs, look=1)
    assert v.outcome is Outcome.HOLD
    assert any(r.startswith(reason) for r in v.reasons), v.reasons


def test_a_rate_needs_its_trials_as_well_as_its_vehicles() -> None:
    obs = cohort("mild", U, [{"charge_success": (2, 2)}] * 8) + cohort(
        "mild", C, [{"charge_success": (3, 3)}] * 8
    )
    v = judge(gate(CHARGE), obs, look=1)
    assert v.outcome is Outcome.HOLD
    assert v.reasons == (
        "charge_success in mild: not enough data: 16 updated / 24 control trials, need 60 per cohort",
    )


def test_a_harm_only_rate_does_not_hold_for_lack_of_sessions_but_still_rolls_back() -> None:
    harm_only = dataclasses.replace(CHARGE, blocking=False)
    fine = cohort("mild", U, [{"soc_error_pct": 1.0 + 0.01 * i, "charge_success": (2, 2)} for i in range(8)])
    fine += cohort(
        "mild", C, [{"soc_error_pct": 1.0 + 0.01 * i, "charge_success": (3, 3)} for i in range(40)]
    )
    assert judge(gate(SOC, harm_only), fine, look=1).outcome is Outcome.PROCEED
    assert judge(gate(SOC, CHARGE), fine, look=1).outcome is Outcome.HOLD  # blocking: 16 < 60 trials
    failing = cohort("mild", U, [{"soc_error_pct": 1.0, "charge_success": (2, 20)}] * 8)
    failing += cohort("mild", C, [{"soc_error_pct": 1.0, "charge_success": (20, 20)}] * 40)
    assert judge(gate(SOC, harm_only), failing, look=1).outcome is Outcome.ROLLBACK
    assert KpiSpec.from_dict(harm_only.to_dict()) == harm_only


def test_a_harm_only_count_holds_on_a_suggestive_trend_only() -> None:
    """One fault code among 8 updated vans and none among 40 controls is an infinite ratio but
    little evidence (p 0.23): it must not hold a wave; two (p 0.05, not yet significant) do."""
    faults = KpiSpec("fault_codes", KpiKind.COUNT, 1.5, blocking=False)

    def fleet(updated_events: list[int]) -> list[Observation]:
        obs = cohort(
            "mild",
            U,
            [
                {"soc_error_pct": 1.0 + 0.01 * i, "fault_codes": (e, 2.0)}
                for i, e in enumerate(updated_events)
            ],
        )
        return obs + cohort(
            "mild", C, [{"soc_error_pct": 1.0 + 0.01 * i, "fault_codes": (0, 2.0)} for i in range(40)]
        )

    one = judge(gate(SOC, faults), fleet([1] + [0] * 7), look=1)
    assert row(one, "fault_codes", "mild").decision is Decision.TRENDING_WORSE
    assert one.outcome is Outcome.PROCEED
    several = judge(gate(SOC, faults), fleet([1, 1] + [0] * 6), look=1)
    assert several.outcome is Outcome.HOLD
    assert any(e.kpi == "fault_codes" and e.holds for e in several.kpis)


def test_a_clear_harm_below_the_minimum_cohort_still_rolls_back() -> None:
    """Four cold vans are too few to show a release safe, not too few to show it harmful."""
    warm_u, warm_c = noisy(12, 0.5, 0.1, 1), noisy(60, 0.5, 0.1, 2)
    obs = soc("warm", U, warm_u) + soc("warm", C, warm_c) + soc("cold", C, noisy(40, 0.5, 0.1, 3))
    harmed = judge(gate(SOC), [*obs, *soc("cold", U, [3.1, 2.9, 3.4, 3.0])], look=1)
    assert harmed.outcome is Outcome.ROLLBACK
    assert row(harmed, "soc_error_pct", "cold").decision is Decision.DETERIORATED
    mild = judge(gate(SOC), [*obs, *soc("cold", U, [0.6, 0.4, 0.5, 0.55])], look=1)
    assert mild.outcome is not Outcome.ROLLBACK
    assert row(mild, "soc_error_pct", "cold").decision is Decision.COMBINED_ONLY


def _fine_fleet() -> list[Observation]:
    obs: list[Observation] = []
    for s, stratum in enumerate(("cold", "mild", "warm")):
        for g, group in enumerate((U, C)):
            rng = np.random.default_rng(100 + 10 * s + g)
            obs += cohort(
                stratum,
                group,
                [
                    {
                        "soc_error_pct": float(rng.normal(2.0, 0.3)),
                        "cell_spread_mv": float(rng.normal(20, 2)),
                        "max_temp_c": float(rng.normal(40, 1)),
                        "charge_success": (20 - i % 2, 20),
                        "fault_codes": (3, 30.0),
                        "energy_kwh_per_km": float(rng.normal(0.18, 0.005)),
                    }
                    for i in range(12)
                ],
            )
    return obs


def test_all_fine_large_cohorts_proceed() -> None:
    v = judge(default_gate(max_looks=1), _fine_fleet(), look=1)
    assert v.outcome is Outcome.PROCEED, v.reasons
    assert len(v.reasons) == 6 and all("within the margin" in r for r in v.reasons)
    assert [(s.stratum, s.n_updated, s.n_control) for s in v.strata] == [
        ("cold", 12, 12),
        ("mild", 12, 12),
        ("warm", 12, 12),
    ]
    assert v.tests == 6 * 4 and not any(k.holds for k in v.kpis)
    json.dumps(v.to_dict(), allow_nan=False)


def test_same_input_same_verdict_in_any_order() -> None:
    obs = _fine_fleet()
    shuffled = obs[:]
    random.Random(3).shuffle(shuffled)
    config = gate(SOC, CHARGE)  # Monte Carlo for the permutations, and the posterior draws
    first = judge(config, obs, look=1)
    assert "Monte Carlo" in row(first, "soc_error_pct", None).method
    assert first.to_dict() == judge(config, shuffled, look=1).to_dict()


def test_clear_deterioration_rolls_back() -> None:
    obs = soc("mild", U, noisy(10, 4.0, 0.3, 1)) + soc("mild", C, noisy(10, 2.0, 0.3, 2))
    v = judge(gate(SOC), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    ev = row(v, "soc_error_pct", "mild")
    assert ev.decision is Decision.DETERIORATED and ev.interval[0] is not None and ev.interval[0] > 1.0
    assert ev.n_updated == ev.n_control == 10 and ev.p_adjusted is not None and ev.p_adjusted <= 0.05


def test_a_higher_is_better_kpi_deteriorates_downwards() -> None:
    range_km = KpiSpec("range_km", KpiKind.CONTINUOUS, 5.0, higher_is_worse=False)
    obs = cohort("mild", U, [{"range_km": x} for x in noisy(10, 280, 3, 1)])
    obs += cohort("mild", C, [{"range_km": x} for x in noisy(10, 300, 3, 2)])
    v = judge(gate(range_km), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    assert row(v, "range_km", "mild").estimate == pytest.approx(20, abs=3)


def test_one_vehicle_beyond_a_hard_limit_rolls_back_at_once() -> None:
    """A rule, not a statistic: one updated vehicle, far too few for any test, is enough."""
    obs = cohort("mild", U, [{"max_temp_c": 61.5}]) + cohort(
        "mild", C, [{"max_temp_c": 62.0}, {"max_temp_c": 40.0}]
    )
    v = judge(gate(TEMP), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    assert v.reasons == (
        "max_temp_c: vehicle mild-updated-000 (mild) reached 61.5, beyond the hard limit 60",
    )
    assert [(b.vin, b.value) for b in v.breaches] == [("mild-updated-000", 61.5)]
    assert any("1 control vehicle beyond the hard limit too" in n for n in v.notes)


def test_a_hard_limit_still_rolls_back_after_the_budget_is_spent() -> None:
    obs = cohort("mild", U, [{"max_temp_c": 60.5}]) + cohort("mild", C, [{"max_temp_c": 40.0}])
    assert judge(gate(TEMP, max_looks=2), obs, look=3).outcome is Outcome.ROLLBACK


def test_past_the_last_look_the_gate_holds_for_a_person() -> None:
    fine = soc("mild", U, noisy(10, 2.0, 0.2, 1)) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    assert judge(gate(SOC), fine, look=1).outcome is Outcome.PROCEED
    v = judge(gate(SOC), fine, look=2)
    assert v.outcome is Outcome.HOLD and v.alpha == 0.0
    assert v.reasons[0].startswith("look 2 is past the campaign's 1 looks")


def test_the_zero_baseline_rate_is_caught() -> None:
    """Control: 0 failures in 300 sessions; updated: 3 in 20 each. A rank test sees ties only."""
    obs = cohort("mild", U, [{"charge_success": (17, 20)}] * 10) + cohort(
        "mild", C, [{"charge_success": (30, 30)}] * 10
    )
    v = judge(gate(CHARGE), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    ev = row(v, "charge_success", "mild")
    assert ev.estimate == pytest.approx(0.15) and ev.summary["trials_control"] == 300


def test_the_zero_baseline_count_is_caught_and_stays_json_safe() -> None:
    obs = cohort("mild", U, [{"fault_codes": (2, 10.0)}] * 6) + cohort(
        "mild", C, [{"fault_codes": (0, 10.0)}] * 6
    )
    v = judge(gate(FAULTS), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    ev = row(v, "fault_codes", "mild")
    assert ev.p_deterioration == pytest.approx(0.6**12) and ev.interval[1] is None
    assert json.loads(json.dumps(v.to_dict(), allow_nan=False))["kpis"][0]["estimate"] is None


def test_numpy_numbers_count_as_numbers() -> None:
    values = [{"fault_codes": (np.int64(2), np.float64(10.0))}] * 6
    obs = cohort("mild", U, values) + cohort("mild", C, [{"fault_codes": (0, 10.0)}] * 6)  # type: ignore[arg-type]
    assert judge(gate(FAULTS), obs, look=1).outcome is Outcome.ROLLBACK


def test_no_events_in_either_cohort_holds() -> None:
    obs = cohort("mild", U, [{"fault_codes": (0, 10.0)}] * 6) + cohort(
        "mild", C, [{"fault_codes": (0, 10.0)}] * 6
    )
    v = judge(gate(FAULTS), obs, look=1)
    assert v.outcome is Outcome.HOLD
    assert "no events in either cohort" in row(v, "fault_codes", "mild").notes[-1]


def test_a_cold_only_deterioration_is_caught_where_pooling_would_dilute_it() -> None:
    cold_u, cold_c = noisy(8, 4.5, 0.3, 1), noisy(8, 2.0, 0.3, 2)
    warm_u, warm_c = noisy(30, 2.0, 0.3, 3), noisy(30, 2.0, 0.3, 4)
    mild_u, mild_c = noisy(30, 2.0, 0.3, 5), noisy(30, 2.0, 0.3, 6)
    obs = soc("cold", U, cold_u) + soc("cold", C, cold_c) + soc("warm", U, warm_u) + soc("warm", C, warm_c)
    obs += soc("mild", U, mild_u) + soc("mild", C, mild_c)
    # One pooled, unstratified test (+2.5 in 8 of 68 updated vehicles ≈ +0.3) does not reject.
    pooled = hs.permutation(
        [(np.array(cold_u + warm_u + mild_u), np.array(cold_c + warm_c + mild_c))],
        1.0,
        0.05,
        np.random.default_rng(0),
        strictest=0.05,
    )
    assert pooled.p_deterioration > 0.5
    warm_alone = judge(gate(SOC), soc("warm", U, warm_u) + soc("warm", C, warm_c), look=1)
    assert warm_alone.outcome is Outcome.PROCEED
    v = judge(gate(SOC), obs, look=1)
    assert v.outcome is Outcome.ROLLBACK
    assert v.reasons[0].startswith("soc_error_pct in cold: worse beyond the margin 1")
    assert row(v, "soc_error_pct", "warm").decision is Decision.NON_INFERIOR
    assert row(v, "soc_error_pct", None).decision is not Decision.DETERIORATED


def test_a_stratum_without_controls_is_flagged_and_holds() -> None:
    fine = soc("mild", U, noisy(10, 2.0, 0.2, 1)) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    assert judge(gate(SOC), fine, look=1).outcome is Outcome.PROCEED
    v = judge(gate(SOC), fine + soc("arctic", U, [2.0, 2.1, 1.9]), look=1)
    assert v.outcome is Outcome.HOLD
    assert v.reasons == (
        "soc_error_pct in arctic: 3 updated vehicles and no control with data: they cannot be judged",
    )
    assert row(v, "soc_error_pct", "arctic").decision is Decision.NO_CONTROL


def test_a_small_stratum_counts_only_in_the_combined_test() -> None:
    obs = soc("mild", U, noisy(10, 2.0, 0.2, 1)) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    obs += soc("cold", U, [2.0, 2.1]) + soc("cold", C, [2.05, 1.95, 2.0])
    v = judge(gate(SOC), obs, look=1)
    assert v.outcome is Outcome.PROCEED
    assert row(v, "soc_error_pct", "cold").decision is Decision.COMBINED_ONLY
    assert row(v, "soc_error_pct", None).n_updated == 12


@pytest.mark.parametrize(
    ("bad", "note"),
    [
        (float("nan"), "non-finite values"),
        (float("inf"), "non-finite values"),
        ("2.0", "malformed values (not a number)"),
        (True, "malformed values (not a number)"),
    ],
)
def test_non_finite_and_malformed_values_are_dropped_and_named(bad: object, note: str) -> None:
    obs = soc("mild", U, noisy(10, 2.0, 0.2, 1)) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    obs += cohort("mild", U, [{"soc_error_pct": bad}] * 2, first=10)  # type: ignore[dict-item]
    v = judge(gate(SOC), obs, look=1)
    assert row(v, "soc_error_pct", "mild").n_updated == 10
    assert any(n.startswith(f"soc_error_pct: dropped {note} from 2 vehicles") for n in v.notes), v.notes


@pytest.mark.parametrize("bad", [(21, 20), (-1, 20), (1.5, 20), (1, 2, 3), 0.9, (float("nan"), 20)])
def test_impossible_rates_are_dropped(bad: object) -> None:
    obs = cohort("mild", U, [{"charge_success": bad}])  # type: ignore[dict-item]
    v = judge(gate(CHARGE), obs, look=1)
    assert v.outcome is Outcome.HOLD and any("charge_success: dropped" in n for n in v.notes)


def test_only_non_finite_data_holds_never_proceeds() -> None:
    obs = soc("mild", U, [math.nan] * 10) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    v = judge(gate(SOC), obs, look=1)
    assert v.outcome is Outcome.HOLD


def test_a_vehicle_observed_twice_is_left_out_and_holds() -> None:
    fine = soc("mild", U, noisy(10, 2.0, 0.2, 1)) + soc("mild", C, noisy(10, 2.0, 0.2, 2))
    v = judge(gate(SOC), [*fine, fine[0]], look=1)
    assert v.outcome is Outcome.HOLD
    assert "observed more than once (mild-updated-000)" in v.reasons[0]
    assert row(v, "soc_error_pct", "mild").n_updated == 9


def test_each_vehicles_own_baseline_sharpens_the_comparison() -> None:
    """Vehicles differ a lot (old and new packs); each one's pre-update value removes that."""
    level_u, level_c = noisy(10, 5.0, 3.0, 1), noisy(10, 5.0, 3.0, 2)
    after_u = [x + e for x, e in zip(level_u, noisy(10, 0.0, 0.1, 3), strict=True)]
    after_c = [x + e for x, e in zip(level_c, noisy(10, 0.0, 0.1, 4), strict=True)]
    plain = soc("mild", U, after_u) + soc("mild", C, after_c)
    adjusted = cohort(
        "mild", U, [{"soc_error_pct": x} for x in after_u], [{"soc_error_pct": b} for b in level_u]
    )
    adjusted += cohort(
        "mild", C, [{"soc_error_pct": x} for x in after_c], [{"soc_error_pct": b} for b in level_c]
    )
    assert judge(gate(SOC), plain, look=1).outcome is Outcome.HOLD
    v = judge(gate(SOC), adjusted, look=1)
    assert v.outcome is Outcome.PROCEED
    assert row(v, "soc_error_pct", "mild").method.endswith("change from each vehicle's baseline")
    partial = [*adjusted[:-1], plain[-1]]  # the last control vehicle without its baseline
    w = judge(gate(SOC), partial, look=1)
    assert any("no usable baseline from 1 of 20 vehicles: not adjusted" in n for n in w.notes)


def test_a_look_below_one_is_a_bug() -> None:
    with pytest.raises(ValueError, match="from 1"):
        judge(gate(SOC), [], look=0)


# --- the configuration ---------------------------------------------------------------------


def test_a_stored_gate_parses_without_loading_numpy() -> None:
    """The CLI and the API validate gates; only judging needs NumPy and SciPy."""
    code = (
        "import sys; from evota.domain.health import GateConfig, default_gate; "
        "GateConfig.from_dict(default_gate().to_dict()).alpha_at(1); "
        "sys.exit(int(any(m in sys.modules for m in ('numpy', 'scipy'))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this checkout's evota
    assert subprocess.run([sys.executable, "-c", code], check=False, env=env).returncode == 0


def test_the_default_gate_judges_the_kpis_fleet_telemetry_sends() -> None:
    g = default_gate()
    assert [(k.name, k.kind, k.margin, k.higher_is_worse, k.hard_limit) for k in g.kpis] == [
        ("soc_error_pct", KpiKind.CONTINUOUS, 1.0, True, None),
        ("cell_spread_mv", KpiKind.CONTINUOUS, 10.0, True, None),
        ("max_temp_c", KpiKind.CONTINUOUS, 3.0, True, 60.0),
        ("charge_success", KpiKind.RATE, 0.05, False, None),
        ("fault_codes", KpiKind.COUNT, 1.5, True, None),
        ("energy_kwh_per_km", KpiKind.CONTINUOUS, 0.02, True, None),
    ]
    assert g.min_vehicles_per_cohort == 5


@pytest.mark.parametrize("config", [default_gate(), gate(SOC, TEMP, alpha=0.1, spending_gamma=0.0)])
def test_config_round_trips_through_json(config: GateConfig) -> None:
    assert GateConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def _with(**changes: object) -> dict[str, object]:
    d = default_gate().to_dict()
    d.update(changes)
    return d


def _kpi(**changes: object) -> dict[str, object]:
    k = SOC.to_dict()
    k.update(changes)
    return _with(kpis=[k])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({k: v for k, v in _with().items() if k != "kpis"}, id="no-kpis"),
        pytest.param(_with(kpis=[]), id="empty-kpis"),
        pytest.param(_with(kpis={"soc": 1}), id="kpis-not-a-list"),
        pytest.param(_with(format="something-else"), id="wrong-format"),
        pytest.param(_with(version=2), id="wrong-version"),
        pytest.param(_with(alpha=0), id="alpha-0"),
        pytest.param(_with(alpha="0.05"), id="alpha-string"),
        pytest.param(_with(alpha=True), id="alpha-bool"),
        pytest.param(_with(max_looks=0), id="no-looks"),
        pytest.param(_with(min_vehicles_per_cohort=1), id="one-vehicle"),
        pytest.param(_with(spending_gamma=float("nan")), id="gamma-nan"),
        pytest.param(_with(extra=1), id="unknown-key"),
        pytest.param(_kpi(hard_limt=60), id="typo-in-a-kpi-key"),
        pytest.param(_kpi(kind="gauge"), id="unknown-kind"),
        pytest.param(_kpi(name="SoC Error"), id="bad-name"),
        pytest.param(_kpi(margin=-1), id="negative-margin"),
        pytest.param(_kpi(margin=float("inf")), id="infinite-margin"),
        pytest.param(_kpi(kind="count", margin=0.5), id="count-ratio-below-1"),
        pytest.param(_kpi(kind="rate", margin=1.2), id="rate-difference-above-1"),
        pytest.param(_kpi(min_trials=10), id="trials-for-a-continuous-kpi"),
        pytest.param(_kpi(min_vehicles=1), id="kpi-one-vehicle"),
        pytest.param(_kpi(higher_is_worse="yes"), id="direction-not-bool"),
        pytest.param(_with(kpis=[SOC.to_dict(), SOC.to_dict()]), id="duplicate-kpis"),
    ],
)
def test_malformed_config_is_refused(data: object) -> None:
    with pytest.raises(InputError):
        GateConfig.from_dict(data)
