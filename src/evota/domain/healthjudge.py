"""How `evota.domain.health.judge` reaches its verdict: data, comparisons, Holm, the rule.

The steps, each a function below: take each KPI's usable values per vehicle (dropping and
naming what is not finite or malformed), check hard limits, lay out the comparisons (every
stratum with both cohorts, and the strata combined), run the tests the data is large enough
for, correct the deterioration tests with Holm over the whole look, then apply the verdict
rule of `evota.domain.health`. Import it through `health.judge`; nothing else is public.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zlib
from collections.abc import Sequence
from typing import Any, TypeGuard

import numpy as np

from evota.domain import healthstats as hs
from evota.domain.health import (
    Breach,
    Cohort,
    Decision,
    GateConfig,
    KpiEvidence,
    KpiKind,
    KpiSpec,
    Observation,
    Outcome,
    StratumCount,
    Verdict,
)

_SEED = 0x6576_6F74  # "evot": with the KPI and stratum names, the seed of every resampling
_U, _C = Cohort.UPDATED, Cohort.CONTROL
_AMOUNT = {KpiKind.RATE: "trials", KpiKind.COUNT: "exposure"}

# A harm-only KPI's trend beyond its margin holds the wave only if it is at least suggestive
# (unadjusted one-sided p at most this): one fault code among the updated vans against none
# among the controls is an infinite rate ratio with p ≈ 0.4, and must not hold a wave for days.
TREND_P = 0.2

# A vehicle's usable values for one KPI: (vin, a, b) with CONTINUOUS (value, baseline or nan),
# RATE (successes, trials), COUNT (events, exposure).
Unit = tuple[str, float, float]
Cells = dict[str, dict[Cohort, list[Unit]]]


@dataclasses.dataclass
class _Row:
    kpi: KpiSpec
    stratum: str | None  # None: the strata combined
    cells: list[str]
    n_u: int
    n_c: int
    min_vehicles: int
    amount_u: float = 0.0  # trials (RATE) or exposure (COUNT)
    amount_c: float = 0.0
    summary: dict[str, float] = dataclasses.field(default_factory=dict)
    summary_row: bool = False  # the KPI's verdict: the strata combined, or its one stratum
    decision: Decision | None = None  # None until tested
    result: hs.Inference | None = None
    p_adjusted: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    # Below the minimums: tested for deterioration only (an exact test is valid at any n, and
    # a clear harm in four cold vans must not wait for a fifth), never shown non-inferior.
    small: bool = False


def evaluate(config: GateConfig, observations: Sequence[Observation], look: int) -> Verdict:
    if look < 1:
        raise ValueError(f"looks count from 1, not {look}")
    alpha = config.alpha_at(look)
    obs, notes, inconsistent = _dedupe(observations)
    breaches: list[Breach] = []
    rows: list[_Row] = []
    data: dict[str, tuple[Cells, bool]] = {}
    for kpi in config.kpis:
        cells, adjusted, kpi_notes, kpi_breaches = _extract(kpi, obs)
        notes += kpi_notes
        breaches += kpi_breaches
        data[kpi.name] = (cells, adjusted)
        rows += _lay_out(kpi, cells, config.min_vehicles(kpi))
    tested = [r for r in rows if r.decision is None]
    strictest = alpha / max(1, len(tested))
    for row in tested:
        cells, adjusted = data[row.kpi.name]
        row.result = _test(row, cells, adjusted, alpha, strictest)
    for row, p in zip(tested, hs.holm([r.result.p_deterioration for r in tested if r.result]), strict=True):
        row.p_adjusted = p
        row.decision = _decide(row, p, alpha, strictest)
    evidence = tuple(_evidence(r, alpha) for r in rows)
    outcome, reasons = _rule(config, rows, breaches, inconsistent, look, alpha, len(tested))
    return Verdict(
        outcome=outcome,
        reasons=tuple(reasons),
        kpis=evidence,
        breaches=tuple(breaches),
        strata=_balance(obs),
        notes=tuple(notes),
        look=look,
        max_looks=config.max_looks,
        alpha=alpha,
        tests=len(tested),
        input_digest=_digest(config, observations, look),
    )


def _dedupe(observations: Sequence[Observation]) -> tuple[list[Observation], list[str], list[str]]:
    """A VIN observed twice is a broken aggregation upstream: use neither, and never proceed."""
    seen: dict[str, int] = {}
    for o in observations:
        seen[o.vin] = seen.get(o.vin, 0) + 1
    twice = sorted(v for v, n in seen.items() if n > 1)
    notes = [f"vehicles observed more than once, left out: {_vins(twice)}"] if twice else []
    return sorted((o for o in observations if seen[o.vin] == 1), key=lambda o: o.vin), notes, twice


def _extract(kpi: KpiSpec, obs: list[Observation]) -> tuple[Cells, bool, list[str], list[Breach]]:
    cells: Cells = {}
    dropped: dict[str, list[str]] = {}
    breaches: list[Breach] = []
    control_beyond: list[str] = []
    for o in obs:
        if kpi.name not in o.values:
            continue  # no data from this vehicle (no charge session, say): it simply is not counted
        a, b, problem = _parse(kpi.kind, o.values[kpi.name])
        if problem:
            dropped.setdefault(problem, []).append(o.vin)
            continue
        if a is None or b is None:
            continue
        if kpi.kind is KpiKind.CONTINUOUS:
            base: object = o.baseline.get(kpi.name)
            b = float(base) if _is_number(base) and math.isfinite(base) else math.nan
        cells.setdefault(o.stratum, {_U: [], _C: []})[o.cohort].append((o.vin, a, b))
        value = a if kpi.kind is KpiKind.CONTINUOUS else a / b
        limit = kpi.hard_limit
        if limit is not None and (value > limit if kpi.higher_is_worse else value < limit):
            if o.cohort is _U:
                breaches.append(Breach(kpi.name, o.vin, o.stratum, value, limit))
            else:
                control_beyond.append(o.vin)
    notes = [
        f"{kpi.name}: dropped {p} from {_count(v, 'vehicle')} ({_vins(v)})"
        for p, v in sorted(dropped.items())
    ]
    if control_beyond:
        notes.append(
            f"{kpi.name}: {_count(control_beyond, 'control vehicle')} beyond the hard limit too "
            f"({_vins(control_beyond)}): a fleet problem the release did not cause"
        )
    adjusted = False
    if kpi.kind is KpiKind.CONTINUOUS:
        units = [u for by in cells.values() for us in by.values() for u in us]
        missing = sum(1 for u in units if math.isnan(u[2]))
        adjusted = bool(units) and missing == 0
        if units and 0 < missing < len(units):
            notes.append(
                f"{kpi.name}: no usable baseline from {missing} of {len(units)} vehicles: not adjusted"
            )
    return cells, adjusted, notes, breaches


def _parse(kind: KpiKind, raw: object) -> tuple[float | None, float | None, str | None]:
    """(a, b, problem); (None, None, None) for a vehicle with nothing to count (0 trials)."""
    if kind is KpiKind.CONTINUOUS:
        if not _is_number(raw):
            return None, None, "malformed values (not a number)"
        v = float(raw)
        return (v, 0.0, None) if math.isfinite(v) else (None, None, "non-finite values")
    if not isinstance(raw, tuple | list) or len(raw) != 2 or not all(_is_number(x) for x in raw):
        return None, None, "malformed values (not a pair of numbers)"
    a, b = float(raw[0]), float(raw[1])
    if not (math.isfinite(a) and math.isfinite(b)):
        return None, None, "non-finite values"
    if a < 0 or b < 0 or (kind is KpiKind.RATE and (a > b or not (a.is_integer() and b.is_integer()))):
        return None, None, "impossible counts (negative, fractional, or more successes than trials)"
    if kind is KpiKind.COUNT and not a.is_integer():
        return None, None, "impossible counts (fractional events)"
    if b == 0:
        return (None, None, "events without exposure") if a > 0 else (None, None, None)
    return a, b, None


def _is_number(x: object) -> TypeGuard[float | np.floating[Any] | np.integer[Any]]:
    """Python or NumPy numbers; not booleans, which are a caller's mistake, not a 0 or 1."""
    return isinstance(x, int | float | np.floating | np.integer) and not isinstance(x, bool)


def _lay_out(kpi: KpiSpec, cells: Cells, min_vehicles: int) -> list[_Row]:
    """The comparisons of one KPI, with what the data allows each of them to decide.

    Every stratum with both cohorts gets its own row, and the strata combined get one more (a
    single stratum is its own summary). Strata too small for a verdict of their own still
    count in the combined row; the summary row too small is "not enough data".
    """
    rows: list[_Row] = []
    both = sorted(s for s, by in cells.items() if by[_U] and by[_C])
    for s in sorted(s for s, by in cells.items() if by[_U] and not by[_C]):
        rows.append(_Row(kpi, s, [], len(cells[s][_U]), 0, min_vehicles, decision=Decision.NO_CONTROL))
    scopes: list[tuple[str | None, list[str]]] = [(s, [s]) for s in both] if len(both) > 1 else []
    scopes.append((both[0] if len(both) == 1 else None, both))
    for i, (stratum, members) in enumerate(scopes):
        units = {c: [u for s in members for u in cells[s][c]] for c in (_U, _C)}
        row = _Row(kpi, stratum, members, len(units[_U]), len(units[_C]), min_vehicles)
        row.summary_row = i == len(scopes) - 1
        row.summary = _summary(kpi.kind, units[_U], units[_C])
        if kpi.kind is not KpiKind.CONTINUOUS:
            row.amount_u, row.amount_c = (sum(u[2] for u in units[c]) for c in (_U, _C))
        enough = min(row.n_u, row.n_c) >= min_vehicles and min(row.amount_u, row.amount_c) >= kpi.min_trials
        if not members or (kpi.kind is not KpiKind.CONTINUOUS and min(row.amount_u, row.amount_c) <= 0):
            row.decision = (
                Decision.NOT_ENOUGH_DATA if row.summary_row or not members else Decision.COMBINED_ONLY
            )
        elif not enough:
            row.small = True
        rows.append(row)
    return rows


def _summary(kind: KpiKind, updated: list[Unit], control: list[Unit]) -> dict[str, float]:
    """What an operator compares first: raw means (CONTINUOUS) or the cohorts' totals."""
    out: dict[str, float] = {}
    for cohort, units in (("updated", updated), ("control", control)):
        if kind is KpiKind.CONTINUOUS:
            if units:
                out[f"mean_{cohort}"] = math.fsum(u[1] for u in units) / len(units)
        else:
            first, second = ("successes", "trials") if kind is KpiKind.RATE else ("events", "exposure")
            out[f"{first}_{cohort}"] = math.fsum(u[1] for u in units)
            out[f"{second}_{cohort}"] = math.fsum(u[2] for u in units)
    return out


def _test(row: _Row, cells: Cells, adjusted: bool, alpha: float, strictest: float) -> hs.Inference:
    kpi = row.kpi
    scope = "*" if row.stratum is None else row.stratum
    rng = np.random.default_rng([_SEED, zlib.crc32(kpi.name.encode()), zlib.crc32(scope.encode())])
    sign = 1.0 if kpi.higher_is_worse else -1.0
    by = [cells[s] for s in row.cells]
    if kpi.kind is KpiKind.CONTINUOUS:
        # CUPED-style: the change from the vehicle's own baseline (θ = 1), so that the
        # permutation stays exact (a fitted θ would use the labels it is permuting).
        def z(units: list[Unit]) -> hs.FloatArray:
            return np.array([sign * (a - b if adjusted else a) for _, a, b in units], dtype=np.float64)

        groups = [(z(c[_U]), z(c[_C])) for c in by]
        result = hs.permutation(groups, kpi.margin, alpha, rng, strictest=strictest)
        if adjusted:
            result = dataclasses.replace(
                result, method=result.method + ", change from each vehicle's baseline"
            )
        return result
    sums = [(*_totals(c[_U]), *_totals(c[_C])) for c in by]
    if kpi.kind is KpiKind.RATE:  # the bad outcome: failures when higher is better
        bad = [
            (int(su if sign > 0 else tu - su), int(tu), int(sc if sign > 0 else tc - sc), int(tc))
            for su, tu, sc, tc in sums
        ]
        return hs.rate_posterior(bad, kpi.margin, alpha, rng, strictest=strictest)
    worse_first = [
        (int(xu), eu, int(xc), ec) if sign > 0 else (int(xc), ec, int(xu), eu) for xu, eu, xc, ec in sums
    ]
    return hs.poisson_ratio(worse_first, kpi.margin, alpha)


def _totals(units: list[Unit]) -> tuple[float, float]:
    return math.fsum(u[1] for u in units), math.fsum(u[2] for u in units)


def _decide(row: _Row, p_adjusted: float, alpha: float, strictest: float) -> Decision:
    result = row.result
    assert result is not None
    if result.min_p is not None and result.min_p > strictest:
        row.notes.append(
            f"the smallest p this n can give is {result.min_p:.2g}, above the strictest level "
            f"{strictest:.2g} of this look: more vehicles are needed to show a deterioration alone"
        )
    if row.kpi.kind is KpiKind.COUNT and math.isnan(result.estimate):
        row.notes.append("no events in either cohort: a rate ratio cannot be judged yet")
    if alpha > 0 and p_adjusted <= alpha:
        return Decision.DETERIORATED
    if row.small:
        return Decision.NOT_ENOUGH_DATA if row.summary_row else Decision.COMBINED_ONLY
    if alpha > 0 and result.p_noninferiority <= alpha:
        return Decision.NON_INFERIOR
    if result.estimate > row.kpi.margin:  # False for NaN
        return Decision.TRENDING_WORSE
    return Decision.INCONCLUSIVE


def _holds(row: _Row) -> bool:
    """Does this comparison keep the wave from proceeding (see the verdict rule)?"""
    if row.decision in (Decision.NON_INFERIOR, Decision.COMBINED_ONLY):
        return False
    if not row.kpi.blocking:  # harm only: a suggestive trend beyond the margin holds, missing evidence not
        return (
            row.decision is Decision.TRENDING_WORSE
            and row.result is not None
            and row.result.p_deterioration <= TREND_P
        )
    return row.decision is not Decision.INCONCLUSIVE or row.summary_row


def _rule(
    config: GateConfig,
    rows: list[_Row],
    breaches: list[Breach],
    inconsistent: list[str],
    look: int,
    alpha: float,
    tests: int,
) -> tuple[Outcome, list[str]]:
    worse = [r for r in rows if r.decision is Decision.DETERIORATED]
    if breaches or worse:
        lines = [
            f"{b.kpi}: vehicle {b.vin} ({b.stratum}) reached {b.value:.4g}, beyond the hard limit {b.limit:g}"
            for b in breaches
        ]
        return Outcome.ROLLBACK, lines + [_describe(r, alpha, tests) for r in worse]
    holding = [r for r in rows if _holds(r)]
    if not holding and not inconsistent and alpha > 0:
        return Outcome.PROCEED, [_describe(r, alpha, tests) for r in rows if r.summary_row]
    lines = []
    if alpha == 0:
        spent = f"look {look} is past the campaign's {config.max_looks} looks"
        lines.append(f"{spent}: its error budget is spent, a person decides")
    if inconsistent:
        lines.append(
            f"the same vehicle was observed more than once ({_vins(inconsistent)}): the data is inconsistent"
        )
    return Outcome.HOLD, lines + [_describe(r, alpha, tests) for r in holding]


def _describe(row: _Row, alpha: float, tests: int) -> str:
    kpi = row.kpi
    where = kpi.name + (f" in {row.stratum}" if row.stratum else ", strata combined" if row.cells else "")
    m = f"{kpi.margin:g}"
    if row.decision is Decision.NO_CONTROL:
        return f"{where}: {row.n_u} updated vehicles and no control with data: they cannot be judged"
    if row.decision is Decision.NOT_ENOUGH_DATA:
        if not row.cells:
            return f"{kpi.name}: not enough data: no stratum has both updated and control vehicles with data"
        if min(row.n_u, row.n_c) < row.min_vehicles:
            have = f"{row.n_u} updated / {row.n_c} control vehicles"
            return f"{where}: not enough data: {have}, need {row.min_vehicles} per cohort"
        have = f"{row.amount_u:g} updated / {row.amount_c:g} control {_AMOUNT[kpi.kind]}"
        return f"{where}: not enough data: {have}, need {kpi.min_trials:g} per cohort"
    r = row.result
    assert r is not None
    est, span = _num(r.estimate, kpi.kind), f"{_num(r.lower, kpi.kind, low=True)}…{_num(r.upper, kpi.kind)}"
    p = f"p {r.p_deterioration:.2g}, Holm-adjusted {row.p_adjusted:.2g}"
    if row.decision is Decision.DETERIORATED:
        return f"{where}: worse beyond the margin {m}: {est} (interval {span}), {p} ≤ α {alpha:.2g}"
    if row.decision is Decision.NON_INFERIOR:
        return f"{where}: within the margin {m}: {est} (interval {span})"
    if row.decision is Decision.TRENDING_WORSE:
        return (
            f"{where}: worse than the margin {m} but not significantly yet: {est} (interval {span}), "
            f"{p} > α {alpha:.2g} over {tests} tests"
        )
    return f"{where}: inconclusive: {est}, interval {span} spans the margin {m}"


def _evidence(row: _Row, alpha: float) -> KpiEvidence:
    assert row.decision is not None
    kind = row.kpi.kind
    base = KpiEvidence(
        kpi=row.kpi.name,
        kind=kind,
        stratum=row.stratum,
        decision=row.decision,
        n_updated=row.n_u,
        n_control=row.n_c,
        summary=row.summary,
        margin=row.kpi.margin,
        alpha=alpha,
        holds=_holds(row),
        notes=tuple(row.notes),
    )
    r = row.result
    if r is None:
        return base
    return dataclasses.replace(
        base,
        estimate=r.estimate,
        interval=(r.lower, r.upper),
        p_deterioration=r.p_deterioration,
        p_adjusted=row.p_adjusted,
        p_noninferiority=r.p_noninferiority,
        min_p=r.min_p,
        method=r.method,
    )


def _balance(obs: list[Observation]) -> tuple[StratumCount, ...]:
    counts: dict[str, list[int]] = {}
    for o in obs:
        counts.setdefault(o.stratum, [0, 0])[0 if o.cohort is _U else 1] += 1
    return tuple(StratumCount(s, u, c) for s, (u, c) in sorted(counts.items()))


def _digest(config: GateConfig, observations: Sequence[Observation], look: int) -> str:
    def canon(v: object) -> object:  # numbers by value, whatever their Python or NumPy type
        if isinstance(v, tuple | list):
            return [canon(x) for x in v]
        return repr(float(v)) if _is_number(v) else repr(v)

    rows = sorted(
        json.dumps(
            [
                o.vin,
                o.cohort.value,
                o.stratum,
                {k: canon(v) for k, v in o.values.items()},
                {k: canon(v) for k, v in o.baseline.items()},
            ],
            sort_keys=True,
        )
        for o in observations
    )
    payload = json.dumps(
        {"config": config.to_dict(), "look": look, "observations": rows},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _num(value: float | None, kind: KpiKind, *, low: bool = False) -> str:
    if value is None or math.isinf(value):
        if kind is KpiKind.COUNT:
            return "∞"
        return "-∞" if low or (value is not None and value < 0) else "+∞"
    if math.isnan(value):
        return "undefined"
    return f"{value:.3g}" if kind is KpiKind.COUNT else f"{value:+.3g}"


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _vins(vins: Sequence[str]) -> str:
    return ", ".join(vins[:5]) + (f" and {len(vins) - 5} more" if len(vins) > 5 else "")
