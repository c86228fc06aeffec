"""The health gate's statistics: exact and resampling tests for tiny cohorts, no I/O.

Every test here compares an updated group with a control group, optionally split into strata,
on a *deterioration* scale that grows when the updated group is worse (the caller orients the
data), and answers both one-sided questions the gate asks at a margin m:

- `p_deterioration`  for H0 "deterioration ≤ m": small → worse beyond the margin (roll back);
- `p_noninferiority` for H0 "deterioration ≥ m": small → within the margin (may proceed);

plus the interval (lower, upper) that inverts those two tests at `alpha`: the deterioration
test rejects at `alpha` exactly when lower > m, the non-inferiority test when upper < m. So an
operator reading "interval -0.3…+1.2, margin 0.5" sees the same thing the test saw.

Nothing here decides or knows about KPIs; `evota.domain.health` does. Why these methods and
not a t-test or Mann-Whitney's normal approximation: docs/health-gate.md. In short, cohorts
of 3 to 30 vehicles and rare events, where central-limit arguments do not hold yet.

This module is loaded only when the gate first judges (`health.judge` imports its driver
lazily), and SciPy only inside the functions that need it: parsing a stored gate loads
neither NumPy nor SciPy.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_LIMIT",
    "Inference",
    "arrangements",
    "holm",
    "permutation",
    "poisson_ratio",
    "rate_posterior",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Up to this many label arrangements the permutation distribution is enumerated (exact p);
# beyond it, seeded Monte Carlo. 100,000 keeps enumeration under ~0.1 s.
EXACT_LIMIT = 100_000
# Random label arrangements are drawn in chunks of about this many cells, to bound memory.
_CHUNK_CELLS = 2_000_000
# The Jeffreys prior Beta(1/2, 1/2) for every rate: the standard non-informative choice, with
# near-nominal frequentist coverage for one proportion (Brown, Cai & DasGupta 2001).
JEFFREYS = 0.5


@dataclasses.dataclass(frozen=True)
class Inference:
    """One comparison's answer, on the deterioration scale.

    `estimate` may be inf (a rate ratio over zero control events) or NaN (no events at all).
    """

    estimate: float
    lower: float | None  # None: unbounded below (ratios stop at 0.0 instead)
    upper: float | None  # None: unbounded above
    p_deterioration: float
    p_noninferiority: float
    min_p: float | None  # the smallest p_deterioration this n could give (None: posteriors)
    method: str


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (reject where adjusted ≤ alpha), in the input's order.

    Holm controls the family-wise error under any dependence between the tests, which the
    KPIs of one vehicle have (a hot battery drifts its SoC error and its spread together).
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def arrangements(groups: Sequence[tuple[int, int]]) -> int:
    """Label arrangements of a stratified permutation test: ∏ C(n_updated + n_control, n_updated)."""
    return math.prod(math.comb(nu + nc, nu) for nu, nc in groups)


def permutation(
    groups: Sequence[tuple[FloatArray, FloatArray]],
    margin: float,
    alpha: float,
    rng: np.random.Generator,
    *,
    strictest: float,
) -> Inference:
    """Stratified permutation test of the weighted difference in means, against a margin.

    `groups` holds (updated values, control values) per stratum, oriented so that larger is
    worse. The statistic is Σ w_s (mean_updated − mean_control) with w_s ∝ n_u·n_c/(n_u + n_c)
    (the inverse-variance weight under equal variances), and labels are permuted *within*
    strata only, so a cold depot is never compared with a warm one.

    H0 at margin m says the updated values minus m are exchangeable with the controls. Rather
    than shifting and re-permuting for each m, the statistic of every arrangement j is kept as
    A_j − m·B_j (A: the arrangement's statistic on the raw values; B: the weighted share of
    updated vehicles it keeps in the updated group), which is linear in m. One set of
    arrangements gives both p-values and the exactly inverted interval.

    Up to `EXACT_LIMIT` arrangements are enumerated. Beyond, random arrangements are drawn in
    blocks of 10,000 (the observed one counted once, so p = (1 + b)/(1 + R), never 0) until
    each tail has `_ENOUGH` arrangements at least as extreme or enough resamples to resolve
    its level (5/level: `strictest` for the deterioration tail, the smallest level Holm may
    compare it with; `alpha` for the other), at most 199,999: a sequential Monte Carlo p-value
    in the manner of Besag & Clifford (1991), cheap when the answer is clear.
    """
    sizes = [(len(u), len(c)) for u, c in groups]
    if not groups or any(nu == 0 or nc == 0 for nu, nc in sizes):
        raise ValueError("every stratum of a permutation test needs both cohorts")
    weights = np.array([nu * nc / (nu + nc) for nu, nc in sizes])
    weights /= weights.sum()
    strata = []
    for u, c in groups:
        z = np.concatenate([u, c])
        is_u = np.zeros(len(z), dtype=np.bool_)
        is_u[: len(u)] = True
        strata.append((z, is_u))
    observed = float(sum(w * (u.mean() - c.mean()) for w, (u, c) in zip(weights, groups, strict=True)))
    scale = max(max(float(np.abs(z).max()) for z, _ in strata), abs(margin), 1e-300)
    tol = 1e-9 * scale  # ties count against rejection, within float noise

    def gap(a: FloatArray, b: FloatArray) -> FloatArray:  # T*(m) − T(m); the observed has B = 1
        return (a - observed) - margin * (b - 1.0)

    total = arrangements(sizes)
    if total <= EXACT_LIMIT:
        a_all, b_all, same_all = _combine(weights, [_exact_stats(z, is_u) for z, is_u in strata], outer=True)
        how = f"exact ({total:,} arrangements)"
    else:
        need_det, need_ni = _resolution(strictest), _resolution(alpha)
        blocks: list[tuple[FloatArray, FloatArray, BoolArray]] = []
        drawn = hits_det = hits_ni = 0
        while True:
            first = not blocks
            size = 9_999 if first else 10_000
            parts = [_random_stats(z, is_u, rng, size, first) for z, is_u in strata]
            block = _combine(weights, parts, outer=False)
            g = gap(block[0], block[1])
            hits_det += int(np.count_nonzero(g >= -tol))
            hits_ni += int(np.count_nonzero(g <= tol))
            drawn += size
            blocks.append(block)
            if (hits_det >= _ENOUGH or drawn >= need_det) and (hits_ni >= _ENOUGH or drawn >= need_ni):
                break
        a_all, b_all, same_all = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
        how = f"Monte Carlo ({drawn:,} resamples)"
    n = len(a_all)
    g = gap(a_all, b_all)
    p_det = float(np.count_nonzero(g >= -tol)) / n
    p_ni = float(np.count_nonzero(g <= tol)) / n
    # Arrangement j beats the observed statistic exactly for shifts δ ≥ t_j (deterioration
    # side) or δ ≤ t_j (non-inferiority side), so the bounds are order statistics of t.
    cross = np.sort((a_all[~same_all] - observed) / (b_all[~same_all] - 1.0))
    allowed = math.floor(alpha * n + 1e-9) - int(np.count_nonzero(same_all))
    lower: float | None = None
    upper: float | None = None
    if 0 <= allowed < len(cross):
        lower, upper = float(cross[allowed]), float(cross[len(cross) - 1 - allowed])
    kind = "stratified permutation" if len(groups) > 1 else "permutation"
    return Inference(observed, lower, upper, p_det, p_ni, 1.0 / n, f"{kind} of the mean difference, {how}")


_ENOUGH = 10  # exceedances that make a Monte Carlo tail precise enough (relative error ≈ 1/√10)


def _resolution(level: float) -> int:
    """Resamples (or draws) that resolve a p-value at `level`: 5/level, within 9,999…199,999."""
    return 9_999 if level <= 0 else int(min(199_999, max(9_999, math.ceil(5 / level))))


def _combine(
    weights: FloatArray, parts: Sequence[tuple[FloatArray, FloatArray, BoolArray]], *, outer: bool
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per-stratum (A, B, is-the-observed) to the weighted statistic over strata.

    `outer`: every combination of the strata's arrangements (enumeration); otherwise the r-th
    arrangement of every stratum makes arrangement r (random draws, independent per stratum).
    """
    a_all: FloatArray = np.zeros(1)
    b_all: FloatArray = np.zeros(1)
    same_all: BoolArray = np.ones(1, dtype=np.bool_)
    for w, (a, b, same) in zip(weights, parts, strict=True):
        if outer:
            a_all = (a_all[:, None] + w * a[None, :]).ravel()
            b_all = (b_all[:, None] + w * b[None, :]).ravel()
            same_all = (same_all[:, None] & same[None, :]).ravel()
        else:
            a_all, b_all, same_all = a_all + w * a, b_all + w * b, same_all & same
    return a_all, b_all, same_all


def _stats(
    z: FloatArray, is_u: BoolArray, chosen: npt.NDArray[np.intp]
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """For each row of `chosen` (the vehicles labelled updated): A, B and "is the observed"."""
    nu = int(is_u.sum())
    nc = len(z) - nu
    sums = z[chosen].sum(axis=1)
    kept = is_u[chosen].sum(axis=1)
    a = sums / nu - (z.sum() - sums) / nc
    b = kept / nu - (nu - kept) / nc
    return a, b.astype(np.float64), kept == nu


def _exact_stats(z: FloatArray, is_u: BoolArray) -> tuple[FloatArray, FloatArray, BoolArray]:
    k = int(is_u.sum())
    chosen = np.array(list(itertools.combinations(range(len(z)), k)), dtype=np.intp).reshape(-1, k)
    return _stats(z, is_u, chosen)


def _random_stats(
    z: FloatArray, is_u: BoolArray, rng: np.random.Generator, size: int, with_observed: bool
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """`size` random labellings (uniform over arrangements), after the observed one if asked."""
    n, k = len(z), int(is_u.sum())
    pieces = [np.flatnonzero(is_u)[None, :]] if with_observed else []
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, size, rows):
        order = np.broadcast_to(np.arange(n, dtype=np.intp), (min(rows, size - start), n))
        pieces.append(rng.permuted(order, axis=1)[:, :k])
    return _stats(z, is_u, np.concatenate(pieces))


def rate_posterior(
    groups: Sequence[tuple[int, int, int, int]],
    margin: float,
    alpha: float,
    rng: np.random.Generator,
    *,
    strictest: float,
) -> Inference:
    """Beta-binomial posterior of the weighted difference in bad-outcome rates, against a margin.

    `groups` holds (bad_updated, trials_updated, bad_control, trials_control) per stratum. Each
    rate gets the Jeffreys prior, so its posterior is Beta(bad + ½, good + ½), defined even with
    zero bad outcomes: a control with 0 failures in 300 sessions has a posterior near 0, not
    exactly 0, and an updated cohort with 12 failures in 100 stands far from it. That is the
    zero-baseline case where a rank test sees nothing (Kayenta #426).

    The combined difference weights stratum s by n_u·n_c/(n_u + n_c) over trials, the
    Mantel-Haenszel risk-difference weight. `p_deterioration` is the posterior probability of
    "difference ≤ margin" (and conversely); with the Jeffreys prior it tracks the frequentist
    one-sided p-value closely but is not exact. Draws are seeded (the same input gives the same
    answer), 100,000 at a time until each tail has `_ENOUGH` draws or resolves its level as in
    `permutation`, and probabilities are reported as (count + 1)/(draws + 1), never 0.
    """
    if not groups or any(tu <= 0 or tc <= 0 for _, tu, _, tc in groups):
        raise ValueError("every stratum of a rate comparison needs trials in both cohorts")
    weights = np.array([tu * tc / (tu + tc) for _, tu, _, tc in groups], dtype=np.float64)
    weights /= weights.sum()
    estimate = float(
        sum(w * (bu / tu - bc / tc) for w, (bu, tu, bc, tc) in zip(weights, groups, strict=True))
    )
    need_det, need_ni = _resolution(strictest), _resolution(alpha)
    blocks: list[FloatArray] = []
    drawn = below = above = 0
    while (
        not blocks
        or not (below >= _ENOUGH or drawn >= need_det)
        or not (above >= _ENOUGH or drawn >= need_ni)
    ):
        diff = np.zeros(100_000)
        for w, (bu, tu, bc, tc) in zip(weights, groups, strict=True):
            diff += w * (
                rng.beta(JEFFREYS + bu, JEFFREYS + tu - bu, 100_000)
                - rng.beta(JEFFREYS + bc, JEFFREYS + tc - bc, 100_000)
            )
        below += int(np.count_nonzero(diff <= margin))
        above += int(np.count_nonzero(diff >= margin))
        drawn += 100_000
        blocks.append(diff)
    draws = np.concatenate(blocks)
    p_det, p_ni = (below + 1.0) / (drawn + 1.0), (above + 1.0) / (drawn + 1.0)
    lower: float | None = None
    upper: float | None = None
    if alpha > 0:
        lower, upper = float(np.quantile(draws, alpha)), float(np.quantile(draws, 1.0 - alpha))
    kind = "stratified beta-binomial" if len(groups) > 1 else "beta-binomial"
    method = f"{kind} posterior of the rate difference, Jeffreys prior Beta(1/2, 1/2), {drawn:,} draws"
    return Inference(estimate, lower, upper, p_det, p_ni, None, method)


def poisson_ratio(groups: Sequence[tuple[int, float, int, float]], margin: float, alpha: float) -> Inference:
    """Exact conditional test of the event-rate ratio against a ratio margin (Poisson counts).

    `groups` holds (events_1, exposure_1, events_2, exposure_2) per stratum, where group 1 is
    the one whose excess is a deterioration. Given a stratum's N events, group 1's share is
    Binomial(N, π) with π = ρ·E1/(ρ·E1 + E2) for rate ratio ρ; that is exact whatever the
    unknown baseline rate, and needs no events in the control (0 control faults against 10
    updated ones, equal exposure, margin 1.5: p = 0.6^10 ≈ 0.006). Across strata the
    statistic is the total of group 1's events, whose exact law is the convolution of the
    strata's binomials under a common ρ: the exact conditional analogue of Mantel-Haenszel.
    The estimate is the Mantel-Haenszel rate ratio; the interval inverts the test.
    """
    from scipy.optimize import brentq

    if not groups or any(e1 <= 0 or e2 <= 0 for _, e1, _, e2 in groups):
        raise ValueError("every stratum of a rate-ratio comparison needs exposure in both cohorts")
    x = sum(x1 for x1, _, _, _ in groups)
    n = sum(x1 + x2 for x1, _, x2, _ in groups)

    def law(rho: float) -> FloatArray:
        return _binomial_convolution([(x1 + x2, rho * e1 / (rho * e1 + e2)) for x1, e1, x2, e2 in groups])

    def at_least(rho: float) -> float:
        return float(min(1.0, law(rho)[x:].sum()))

    def at_most(rho: float) -> float:
        return float(min(1.0, law(rho)[: x + 1].sum()))

    num = sum(x1 * e2 / (e1 + e2) for x1, e1, _, e2 in groups)
    den = sum(x2 * e1 / (e1 + e2) for _, e1, x2, e2 in groups)
    estimate = num / den if den > 0 else (math.inf if num > 0 else math.nan)
    lower: float | None = 0.0
    upper: float | None = None
    if alpha > 0 and x > 0:
        lower = math.exp(brentq(lambda u: at_least(math.exp(u)) - alpha, -40.0, 40.0, xtol=1e-10))
    if alpha > 0 and x < n:
        upper = math.exp(brentq(lambda u: at_most(math.exp(u)) - alpha, -40.0, 40.0, xtol=1e-10))
    min_p = math.prod((margin * e1 / (margin * e1 + e2)) ** (x1 + x2) for x1, e1, x2, e2 in groups)
    kind = "stratified exact conditional" if len(groups) > 1 else "exact conditional"
    method = f"{kind} test of the Poisson rate ratio (binomial share of {n} events)"
    return Inference(estimate, lower, upper, at_least(margin), at_most(margin), min_p, method)


def _binomial_convolution(parts: Sequence[tuple[int, float]]) -> FloatArray:
    """The exact law of a sum of independent Binomial(N_s, π_s), as a probability vector."""
    from scipy.stats import binom

    law: FloatArray = np.ones(1)
    for events, share in parts:
        if events:
            law = np.convolve(law, binom.pmf(np.arange(events + 1), events, share))
    return law
