"""The health gate: does a running wave's updated cohort fare worse than its control?

For each running wave the controller gathers, per vehicle, the KPIs fleet telemetry reports
and calls `judge(config, observations, look=k)`. Vehicles that run the new release form the
UPDATED cohort; vehicles in scope that do not run it yet (same depots, same calendar window)
form the CONTROL cohort. The gate answers PROCEED, HOLD or ROLLBACK, with the evidence.

Pure: no I/O, no clock, no randomness but numpy Generators seeded from the KPI and stratum
names, so the same input gives the same verdict (replayable from the audit log, whose entry
may keep `Verdict.input_digest`). It does not fetch telemetry, decide what a "look" is, or
act on the verdict: the controller does, and a HOLD that lasts goes to a person.

Interface (what the controller is written against):

    judge(config: GateConfig, observations: Sequence[Observation], *, look: int) -> Verdict
    default_gate(*, alpha: float = 0.05, max_looks: int = 10) -> GateConfig
    GateConfig(kpis, alpha=0.05, max_looks=10, min_vehicles_per_cohort=5, spending_gamma=-4.0)
        .to_dict() / GateConfig.from_dict(data)   (InputError if malformed), .alpha_at(look)
    KpiSpec(name, kind, margin, *, higher_is_worse=True, hard_limit=None, min_vehicles=None,
            min_trials=0.0)
    Observation(vin, cohort, stratum, values, baseline={})   (ValueError if vin/stratum empty)
        cohort: Cohort.UPDATED / Cohort.CONTROL (or "updated" / "control")
        values[kpi]: a float (CONTINUOUS); (successes, trials) (RATE); (events, exposure) (COUNT)
        baseline[kpi]: the vehicle's pre-update value of a CONTINUOUS KPI (optional)
    Verdict(outcome: Outcome, reasons, kpis: tuple[KpiEvidence, ...], breaches: tuple[Breach,
            ...], strata: tuple[StratumCount, ...], notes, look, max_looks, alpha, tests,
            input_digest, method_version).to_dict()   (JSON-safe: no NaN or inf, None instead)
    KpiEvidence(kpi, kind, stratum (None: the strata combined), decision: Decision, n_updated,
            n_control, summary, margin, alpha, holds, estimate, interval, p_deterioration,
            p_adjusted, p_noninferiority, min_p, method, notes)

Baselines (CUPED-style): when every vehicle with a usable value of a CONTINUOUS KPI also has
a finite baseline, the comparison is of each vehicle's change (value − baseline), which takes
out how vehicles differ from one another (an old pack against a new one) and keeps the
permutation test exact; a fitted CUPED coefficient would be estimated from the very labels
being permuted. Otherwise the values are compared as they are, with a note. Hard limits
always apply to the value itself.

The look counts the gate's evaluations over the whole campaign (all waves) from 1; the
controller must count every evaluation whose verdict it could act on. `look > max_looks`
is allowed and gets no error budget (HOLD, except for hard limits).

Margins (the tolerated deterioration; always oriented so that "worse" is positive):
CONTINUOUS: absolute, in the KPI's unit (mean updated − mean control, negated when higher is
better); RATE: absolute difference of the bad-outcome rate (failures/trials when higher is
better: `charge_success` margin 0.05 tolerates 5 points fewer completed sessions); COUNT: the
rate ratio of events per exposure (1.5: up to 50 % more fault codes per vehicle-day).

Verdict rule, in this order:
1. ROLLBACK if any updated vehicle crossed a KPI's hard limit (a rule, not a statistic: one
   vehicle at 61 °C is enough), or any deterioration test rejects "deterioration ≤ margin"
   after Holm's correction over every test of this look, at this look's alpha.
2. PROCEED only if, for every KPI, its summary comparison (the strata combined, or its only
   stratum) has at least min_vehicles per cohort (and min_trials of trials or exposure) and
   shows non-inferiority (rejects "deterioration ≥ margin" at this look's alpha); no stratum
   has updated vehicles without controls; no stratum large enough for a verdict of its own
   is trending worse (its estimate beyond the margin, significant or not); and no vehicle was
   observed twice. A stratum that is merely inconclusive does not hold the wave: the combined
   test covers its vehicles, and asking each stratum for non-inferiority would hold small
   strata by arithmetic alone at the early looks (5 vs 5: smallest p 0.004 > alpha 0.0005).
3. HOLD otherwise, with a reason per KPI ("not enough data: 2 updated / 3 control vehicles,
   need 5 per cohort"; "inconclusive: +0.4, interval -0.3…+1.2 spans the margin 1").
   `KpiEvidence.holds` marks the comparisons that keep the wave from proceeding.
Missing data is never PROCEED; non-finite or malformed values are dropped and named in
`Verdict.notes`, and a KPI left with no usable data holds.

Small-n arithmetic, why `min_vehicles` exists: a permutation test of n_u against n_c vehicles
has C(n_u + n_c, n_u) label arrangements, and its smallest one-sided p is one over that:
2 vs 2 → 1/6, 3 vs 2 → 1/10, 3 vs 3 → 1/20, 5 vs 5 → 1/252, 8 vs 8 → 1/12,870. So 2 vs 2
can never reject at 5 %, and after Holm over 24 tests at the last look's alpha (0.017 with
the defaults: first threshold 0.0007) a stratum needs 7 vs 7 to be able to roll back alone.
Counts: with N events in all and equal exposure, the smallest p against a ratio margin of 1.5
is 0.6^N, so fewer than 6 fault codes can never roll back at 5 %. Rates: zero failures in n
sessions still leaves an upper bound near 3/n (exact) or 1.9/n (Jeffreys) on the failure
rate; 60 sessions bound it near 5 %, which is why `charge_success` needs 60 per cohort.
Each row of evidence carries `min_p` and a note when its n cannot reach the level.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from evota.errors import InputError

__all__ = [
    "METHOD_VERSION",
    "Breach",
    "Cohort",
    "Decision",
    "GateConfig",
    "KpiEvidence",
    "KpiKind",
    "KpiSpec",
    "Observation",
    "Outcome",
    "StratumCount",
    "Verdict",
    "default_gate",
    "judge",
    "spent_alpha",
]

METHOD_VERSION = "evota.health/1"
FORMAT = "evota.health-gate"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class Outcome(enum.StrEnum):
    PROCEED = "proceed"
    HOLD = "hold"
    ROLLBACK = "rollback"


class KpiKind(enum.StrEnum):
    CONTINUOUS = "continuous"  # one value per vehicle: mean |SoC error| %, max temperature °C
    RATE = "rate"  # (successes, trials) per vehicle: charge sessions completed / started
    COUNT = "count"  # (events, exposure) per vehicle: fault codes over vehicle-days (Poisson)


class Cohort(enum.StrEnum):
    UPDATED = "updated"
    CONTROL = "control"


class Decision(enum.StrEnum):
    """What one comparison (a KPI in a stratum, or across strata) concluded."""

    DETERIORATED = "deteriorated"  # worse beyond the margin, after Holm: roll back
    NON_INFERIOR = "non-inferior"  # shown within the margin
    TRENDING_WORSE = "trending worse"  # estimate beyond the margin, not significant: hold
    INCONCLUSIVE = "inconclusive"  # the interval spans the margin: hold (the KPI's summary row)
    NOT_ENOUGH_DATA = "not enough data"  # below min_vehicles / min_trials: hold
    COMBINED_ONLY = "combined only"  # a stratum too small for its own verdict; judged combined
    NO_CONTROL = "no control"  # updated vehicles without controls: cannot be judged, hold


@dataclasses.dataclass(frozen=True)
class KpiSpec:
    """One KPI the gate judges. `min_trials` counts trials (RATE) or exposure units (COUNT)."""

    name: str
    kind: KpiKind
    margin: float
    _: dataclasses.KW_ONLY
    higher_is_worse: bool = True
    hard_limit: float | None = None  # a per-vehicle value beyond this rolls back at once
    min_vehicles: int | None = None  # per cohort; None: the config's min_vehicles_per_cohort
    min_trials: float = 0.0  # per cohort
    # True: the wave proceeds only once this KPI is shown non-inferior. False: harm only, for
    # rare events a canary wave cannot bound (zero failures in 20 sessions still allows 14 %):
    # it rolls back on a significant deterioration or a hard limit and holds on a suggestive
    # trend beyond its margin (p ≤ 0.2 before Holm), but its lack of evidence does not hold.
    blocking: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InputError(f"KPI name {self.name!r}: use 1-64 lower-case letters, digits and '_'")
        try:
            object.__setattr__(self, "kind", KpiKind(self.kind))
        except ValueError:
            raise InputError(f"{self.name}: unknown KPI kind {self.kind!r}") from None
        _check_number(self.margin, f"{self.name}.margin")
        if self.kind is KpiKind.COUNT and self.margin < 1:
            raise InputError(f"{self.name}: a COUNT margin is a rate ratio ≥ 1, not {self.margin}")
        if self.kind is KpiKind.RATE and not 0 <= self.margin < 1:
            raise InputError(f"{self.name}: a RATE margin is a rate difference in [0, 1), not {self.margin}")
        if self.margin < 0:
            raise InputError(f"{self.name}: a margin cannot be negative")
        if not isinstance(self.higher_is_worse, bool):
            raise InputError(f"{self.name}.higher_is_worse must be true or false")
        if self.hard_limit is not None:
            _check_number(self.hard_limit, f"{self.name}.hard_limit")
        if self.min_vehicles is not None:
            _check_count(self.min_vehicles, f"{self.name}.min_vehicles", 2)
        _check_number(self.min_trials, f"{self.name}.min_trials")
        if not isinstance(self.blocking, bool):
            raise InputError(f"{self.name}.blocking must be true or false")
        if self.min_trials < 0 or (self.kind is KpiKind.CONTINUOUS and self.min_trials != 0):
            raise InputError(f"{self.name}: min_trials is ≥ 0, and only for RATE and COUNT KPIs")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "margin": self.margin,
            "higher_is_worse": self.higher_is_worse,
            "hard_limit": self.hard_limit,
            "min_vehicles": self.min_vehicles,
            "min_trials": self.min_trials,
            "blocking": self.blocking,
        }

    @classmethod
    def from_dict(cls, data: Any) -> KpiSpec:
        d = _fields(
            data,
            "KPI",
            {"name", "kind", "margin"},
            {"higher_is_worse", "hard_limit", "min_vehicles", "min_trials", "blocking"},
        )
        return cls(
            d["name"],
            d["kind"],
            d["margin"],
            higher_is_worse=d.get("higher_is_worse", True),
            hard_limit=d.get("hard_limit"),
            min_vehicles=d.get("min_vehicles"),
            min_trials=d.get("min_trials", 0.0),
            blocking=d.get("blocking", True),
        )


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """The gate of one campaign, stored with it; `alpha` is the budget for the whole campaign.

    `spending_gamma` shapes how that budget is spread over `max_looks` looks (Hwang-Shih-DeCani;
    see `spent_alpha`). The default −4 is O'Brien-Fleming-like: the first looks, on the
    smallest cohorts, get a small share (0.0005 of 0.05 at look 1 of 10) and the last ones
    most of it (0.017 at look 10). So the canary waves roll back on hard limits or
    overwhelming evidence only, and most of the budget waits for the looks with the most data.
    """

    kpis: tuple[KpiSpec, ...]
    alpha: float = 0.05
    max_looks: int = 10
    min_vehicles_per_cohort: int = 5
    spending_gamma: float = -4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kpis", tuple(self.kpis))
        if not self.kpis or not all(isinstance(k, KpiSpec) for k in self.kpis):
            raise InputError("a health gate needs at least one KPI (with none, nothing could hold it)")
        names = [k.name for k in self.kpis]
        if len(set(names)) != len(names):
            raise InputError(f"KPI names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        _check_number(self.alpha, "alpha")
        if not 0 < self.alpha <= 0.5:
            raise InputError(f"alpha must be in (0, 0.5], not {self.alpha}")
        _check_count(self.max_looks, "max_looks", 1, 1000)
        _check_count(self.min_vehicles_per_cohort, "min_vehicles_per_cohort", 2)
        _check_number(self.spending_gamma, "spending_gamma")
        if not -20 <= self.spending_gamma <= 20:
            raise InputError(f"spending_gamma must be in [-20, 20], not {self.spending_gamma}")

    def min_vehicles(self, kpi: KpiSpec) -> int:
        return self.min_vehicles_per_cohort if kpi.min_vehicles is None else kpi.min_vehicles

    def alpha_at(self, look: int) -> float:
        """The error budget of this look (0 past max_looks). ValueError if look < 1."""
        return spent_alpha(self.alpha, look, self.max_looks, self.spending_gamma)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": 1,
            "alpha": self.alpha,
            "max_looks": self.max_looks,
            "min_vehicles_per_cohort": self.min_vehicles_per_cohort,
            "spending_gamma": self.spending_gamma,
            "kpis": [k.to_dict() for k in self.kpis],
        }

    @classmethod
    def from_dict(cls, data: Any) -> GateConfig:
        """Parse a stored gate; unknown keys are refused (a typo must not drop a hard limit)."""
        opt = {"alpha", "max_looks", "min_vehicles_per_cohort", "spending_gamma"}
        d = _fields(data, "health gate", {"format", "version", "kpis"}, opt)
        if d["format"] != FORMAT or d["version"] != 1:
            raise InputError(f"not a {FORMAT} version 1 document: {d['format']!r} {d['version']!r}")
        if not isinstance(d["kpis"], list):
            raise InputError("health gate: kpis must be a list")
        kpis = tuple(KpiSpec.from_dict(k) for k in d["kpis"])
        return cls(kpis, **{k: d[k] for k in opt if k in d})


def spent_alpha(alpha: float, look: int, max_looks: int, gamma: float) -> float:
    """This look's share of the campaign's error budget (Hwang-Shih-DeCani spending).

    The cumulative budget spent by look k of K is alpha·f(k/K) with
    f(t) = (1 − e^(−γt)) / (1 − e^(−γ)) (f(t) = t when γ = 0). Negative γ spends little early
    (γ = −4 behaves like O'Brien-Fleming), positive γ spends early (γ = 1 like Pocock).
    Each look tests at the increment alpha·(f(k/K) − f((k−1)/K)), so the increments add up to
    alpha over the campaign whatever the correlation between looks (a union bound: valid for
    permutation tests whose joint distribution across looks nobody knows). A look past K gets
    nothing: the budget is spent.
    """
    if look < 1:
        raise ValueError(f"looks count from 1, not {look}")
    if look > max_looks:
        return 0.0

    def f(t: float) -> float:
        return t if gamma == 0 else math.expm1(-gamma * t) / math.expm1(-gamma)

    return alpha * (f(look / max_looks) - f((look - 1) / max_looks))


def default_gate(*, alpha: float = 0.05, max_looks: int = 10) -> GateConfig:
    """The KPIs evota's fleet telemetry sends, with margins an energy engineer would tolerate."""
    c, r, n = KpiKind.CONTINUOUS, KpiKind.RATE, KpiKind.COUNT
    kpis = (
        KpiSpec("soc_error_pct", c, 1.0),  # mean |estimated SoC − rested-OCV SoC|, %
        KpiSpec("cell_spread_mv", c, 10.0),  # max − min cell voltage, mV
        # Hottest cell, °C: a hard limit (one van at 60 °C rolls back) and harm-only statistics,
        # because a day's maximum swings with each van's fast-charging stops.
        KpiSpec("max_temp_c", c, 3.0, hard_limit=60.0, blocking=False),
        # Rare events: harm only (a canary cannot bound them; they roll back on a significant
        # excess, and hold on a trend beyond the margin, but do not hold for lack of sessions).
        KpiSpec("charge_success", r, 0.05, higher_is_worse=False, min_trials=60, blocking=False),
        KpiSpec("fault_codes", n, 1.5, min_trials=50, blocking=False),  # per vehicle-day
        # Traction energy per km: harm only, as route and payload swing it day to day.
        KpiSpec("energy_kwh_per_km", c, 0.02, blocking=False),
    )
    return GateConfig(kpis, alpha=alpha, max_looks=max_looks)


@dataclasses.dataclass(frozen=True)
class Observation:
    """One vehicle (the unit of the gate: never one sample) over the look's window."""

    vin: str
    cohort: Cohort
    stratum: str  # the climate zone, or an ambient-temperature band, the vehicle drove in
    values: Mapping[str, float | tuple[float, float]]
    baseline: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cohort", Cohort(self.cohort))
        for field in ("vin", "stratum"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"an observation's {field} must be a non-empty string")


@dataclasses.dataclass(frozen=True)
class KpiEvidence:
    """One comparison: a KPI within one stratum, or across the strata (`stratum` None).

    `estimate` and `interval` are on the deterioration scale (positive: the updated cohort is
    worse; a ratio for COUNT); the interval is two one-sided bounds at `alpha`, None where
    unbounded (or an infinite estimate). `p_deterioration` tests "≤ margin", `p_adjusted` is
    its Holm adjustment over this look's `Verdict.tests` tests, `p_noninferiority` tests
    "≥ margin" (no Holm: PROCEED needs all of them, an intersection-union test).
    """

    kpi: str
    kind: KpiKind
    stratum: str | None
    decision: Decision
    n_updated: int
    n_control: int
    summary: Mapping[str, float]
    margin: float
    alpha: float
    holds: bool  # this comparison keeps the wave from proceeding
    estimate: float | None = None
    interval: tuple[float | None, float | None] = (None, None)
    p_deterioration: float | None = None
    p_adjusted: float | None = None
    p_noninferiority: float | None = None
    min_p: float | None = None
    method: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(
            kind=self.kind.value,
            decision=self.decision.value,
            summary=dict(self.summary),
            estimate=_finite(self.estimate),
            interval=[_finite(self.interval[0]), _finite(self.interval[1])],
            notes=list(self.notes),
        )
        return d


@dataclasses.dataclass(frozen=True)
class Breach:
    """An updated vehicle beyond a KPI's hard limit."""

    kpi: str
    vin: str
    stratum: str
    value: float
    limit: float


@dataclasses.dataclass(frozen=True)
class StratumCount:
    """Cohort sizes per stratum, as observed (any KPI): the balance an operator checks."""

    stratum: str
    n_updated: int
    n_control: int


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]  # why this outcome, one line per cause, in an operator's words
    kpis: tuple[KpiEvidence, ...]
    breaches: tuple[Breach, ...]
    strata: tuple[StratumCount, ...]
    notes: tuple[str, ...]  # data quality: dropped values, duplicates, baselines not used
    look: int
    max_looks: int
    alpha: float  # this look's share of the campaign's budget
    tests: int  # deterioration tests in the Holm family of this look
    input_digest: str  # SHA-256 of the configuration, look and observations (canonical JSON)
    method_version: str = METHOD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "reasons": list(self.reasons),
            "kpis": [k.to_dict() for k in self.kpis],
            "breaches": [dataclasses.asdict(b) for b in self.breaches],
            "strata": [dataclasses.asdict(s) for s in self.strata],
            "notes": list(self.notes),
            "look": self.look,
            "max_looks": self.max_looks,
            "alpha": self.alpha,
            "tests": self.tests,
            "input_digest": self.input_digest,
            "method_version": self.method_version,
        }


def judge(config: GateConfig, observations: Sequence[Observation], *, look: int) -> Verdict:
    """The gate's verdict at this look (1-based). ValueError if look < 1 (a caller's bug).

    NumPy and SciPy are imported here, not at module import, so that parsing a stored gate
    (the CLI, the API's validation) does not pay for them.
    """
    from evota.domain.healthjudge import evaluate

    return evaluate(config, observations, look)


def _fields(data: Any, what: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InputError(f"{what}: expected an object, not {type(data).__name__}")
    missing, unknown = required - data.keys(), data.keys() - required - optional
    if missing or unknown:
        raise InputError(f"{what}: missing {sorted(missing)}, unknown {sorted(map(str, unknown))}")
    return dict(data)


def _check_number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, not {value!r}")


def _check_count(value: Any, what: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        raise InputError(
            f"{what} must be a whole number ≥ {low}{f' and ≤ {high}' if high else ''}, not {value!r}"
        )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
