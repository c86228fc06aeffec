"""The health gate's shell: a running wave's telemetry in, the pure gate's verdict stored.

For a campaign with a gate, each look (at most once per `interval_s` of the gate) gathers,
per vehicle, the KPIs it sent:

- the *updated* cohort: every vehicle of the campaign that runs the release, from the moment
  it did (`campaign_vehicles.updated_since`), so nothing it sent on the old firmware counts;
- the *control* cohort: the campaign's vehicles not offered yet (later waves, same depots and
  climate zones by the stratified wave assignment), over the same calendar window: from the
  first update of the campaign until now;
- each vehicle's stratum: its climate zone, so a fault that shows only in the cold is
  compared cold against cold (see `domain/health.py`);
- each vehicle's baseline: the same KPI over the `BASELINE` before the campaign's first update
  (one calendar window for both cohorts, all on the old firmware), so the gate compares each
  van's change rather than vans on different routes (CUPED-style; a van without a baseline
  leaves the KPI unadjusted, and the verdict says so).

A vehicle's value for a continuous KPI is its mean over the window (the maximum for a
temperature, which a hard limit judges); rates and counts are summed (charge sessions
completed of started; fault codes over vehicle-days of exposure). The verdict, with every
number it rests on, is stored as a row of `health_verdicts` and shown in the campaign report;
the planner reads the latest one on the current wave.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from evota.domain import health as gate
from evota.domain.planner import Health
from evota.server.store.models import (
    CampaignRow,
    CampaignVehicleRow,
    HealthVerdictRow,
    TelemetryRow,
    VehicleRow,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "Look",
    "VehicleKpis",
    "gather",
    "judge_campaign",
    "latest_health",
    "store_verdict",
]

DEFAULT_INTERVAL = dt.timedelta(hours=6)
BASELINE = dt.timedelta(days=3)
# The KPIs whose per-vehicle value is the maximum over the window, not the mean.
_MAXIMA = frozenset({"max_temp_c"})
_SUMMED = frozenset({"charge_started", "charge_completed", "fault_codes", "distance_km"})


@dataclasses.dataclass(frozen=True)
class VehicleKpis:
    """One vehicle's telemetry over its window, aggregated per KPI."""

    vin: str
    cohort: str  # "updated" or "control"
    stratum: str
    days: float  # the window's length: exposure for counts
    values: Mapping[str, float]  # mean (or max / sum, see above) per KPI
    samples: int
    baseline: Mapping[str, float] = dataclasses.field(default_factory=dict)  # continuous KPIs


@dataclasses.dataclass(frozen=True)
class Look:
    """One look of the gate: its verdict, its number, and how long the current wave's median
    updated vehicle had run the release as far as the telemetry seen reaches (the planner
    lets a wave advance only once that covers its dwell)."""

    verdict: gate.Verdict
    number: int
    exposure: dt.timedelta

    @property
    def health(self) -> Health:
        return Health(self.verdict.outcome.value, "; ".join(self.verdict.reasons)[:500], self.exposure)


def gate_config(campaign: CampaignRow) -> tuple[gate.GateConfig, dt.timedelta] | None:
    """The campaign's gate and how often it looks (None: the campaign has no gate)."""
    if not campaign.gate:
        return None
    body = dict(campaign.gate)
    interval = dt.timedelta(seconds=float(str(body.pop("interval_s", DEFAULT_INTERVAL.total_seconds()))))
    return gate.GateConfig.from_dict(body), interval


def gather(session: Session, campaign: CampaignRow, now: dt.datetime) -> list[VehicleKpis]:
    """Each cohort's per-vehicle KPI aggregates as of `now`.

    Membership is by time, not by today's status, so a past look can be replayed exactly
    (after a rollback, say): updated are the vehicles that ran the release at `now` (updated
    before it, not yet sent back), controls those not offered it by then.
    """
    cv, t, v = CampaignVehicleRow, TelemetryRow, VehicleRow
    start = session.scalar(
        select(func.min(cv.updated_since)).where(cv.campaign_id == campaign.id, cv.updated_since <= now)
    )
    if start is None:
        return []  # nobody runs the release yet
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def collect(rows: Sequence[Any], cohort: str) -> None:
        for vin, stratum, since, kpi, mean, peak, total, n in rows:
            entry = out.setdefault(
                (vin, cohort),
                {"stratum": stratum, "since": since or start, "values": {}, "samples": 0},
            )
            entry["values"][kpi] = peak if kpi in _MAXIMA else total if kpi in _SUMMED else mean
            entry["samples"] = max(entry["samples"], n)

    aggregates = (func.avg(t.value), func.max(t.value), func.sum(t.value), func.count())
    updated = session.execute(
        select(v.vin, v.climate_zone, cv.updated_since, t.kpi, *aggregates)
        .join(cv, cv.vehicle_id == v.id)
        .join(t, t.vehicle_id == v.id)
        .where(
            cv.campaign_id == campaign.id,
            cv.updated_since <= now,
            or_(cv.rolled_back_at.is_(None), cv.rolled_back_at > now),
            t.at >= cv.updated_since,
            t.at <= now,
        )
        .group_by(v.vin, v.climate_zone, cv.updated_since, t.kpi)
    ).all()
    collect(updated, "updated")
    control = session.execute(
        select(v.vin, v.climate_zone, cv.updated_since, t.kpi, *aggregates)
        .join(cv, cv.vehicle_id == v.id)
        .join(t, t.vehicle_id == v.id)
        .where(
            cv.campaign_id == campaign.id,
            or_(cv.offered_at.is_(None), cv.offered_at > now),
            t.at >= start,
            t.at <= now,
        )
        .group_by(v.vin, v.climate_zone, cv.updated_since, t.kpi)
    ).all()
    collect(control, "control")
    before: dict[str, dict[str, float]] = {}
    for vin, kpi, mean, peak in session.execute(
        select(v.vin, t.kpi, func.avg(t.value), func.max(t.value))
        .join(cv, cv.vehicle_id == v.id)
        .join(t, t.vehicle_id == v.id)
        .where(
            cv.campaign_id == campaign.id,
            t.at >= start - BASELINE,
            t.at < start,
            t.kpi.not_in(sorted(_SUMMED)),
        )
        .group_by(v.vin, t.kpi)
    ):
        before.setdefault(vin, {})[kpi] = peak if kpi in _MAXIMA else mean
    return [
        VehicleKpis(
            vin,
            cohort,
            str(e["stratum"]),
            max((now - e["since"]).total_seconds() / 86400, 1 / 24),
            e["values"],
            int(e["samples"]),
            before.get(vin, {}),
        )
        for (vin, cohort), e in sorted(out.items())
    ]


def observations(config: gate.GateConfig, vehicles: Sequence[VehicleKpis]) -> list[gate.Observation]:
    """The pure gate's input: continuous KPIs as values, `charge_success` as (completed,
    started) sessions, counts as (events, vehicle-days of exposure)."""
    out = []
    for k in vehicles:
        values: dict[str, float | tuple[float, float]] = {}
        for spec in config.kpis:
            if spec.kind is gate.KpiKind.RATE and spec.name == "charge_success":
                started = k.values.get("charge_started")
                if started:
                    # A session begun before the window and ended in it counts as completed
                    # without having started: capped, for both cohorts alike.
                    completed = min(float(k.values.get("charge_completed", 0.0)), float(started))
                    values[spec.name] = (completed, float(started))
            elif spec.name not in k.values:
                continue
            elif spec.kind is gate.KpiKind.COUNT:
                values[spec.name] = (float(k.values[spec.name]), k.days)
            else:
                values[spec.name] = float(k.values[spec.name])
        baseline = {
            s.name: float(k.baseline[s.name])
            for s in config.kpis
            if s.kind is gate.KpiKind.CONTINUOUS and s.name in k.baseline
        }
        out.append(gate.Observation(k.vin, gate.Cohort(k.cohort), k.stratum, values, baseline))
    return out


def judge_campaign(session: Session, campaign: CampaignRow, now: dt.datetime) -> Look | None:
    """A new look if one is due (None otherwise)."""
    configured = gate_config(campaign)
    if configured is None:
        return None
    config, interval = configured
    last = session.execute(
        select(HealthVerdictRow.at, HealthVerdictRow.look, HealthVerdictRow.wave, HealthVerdictRow.evidence)
        .where(HealthVerdictRow.campaign_id == campaign.id)
        .order_by(HealthVerdictRow.id.desc())
        .limit(1)
    ).one_or_none()
    if last is not None and last.wave == campaign.current_wave and now - last.at < interval:
        return None
    # A look spends error budget: none on the same data twice, nor before anyone is updated.
    newest = session.scalar(select(func.max(TelemetryRow.id))) or 0
    if last is not None and last.wave == campaign.current_wave and newest <= _seen(last.evidence):
        return None
    vehicles = gather(session, campaign, now)
    if not any(k.cohort == "updated" for k in vehicles):
        return None
    look = (last.look + 1) if last is not None else 1
    verdict = gate.judge(config, observations(config, vehicles), look=look)
    verdict = dataclasses.replace(verdict, notes=(*verdict.notes, f"{_SEEN}{newest}"))
    return Look(verdict, look, wave_exposure(session, campaign, now))


def wave_exposure(session: Session, campaign: CampaignRow, now: dt.datetime) -> dt.timedelta:
    """The median, over the current wave's vehicles that run the release at `now`, of the time
    from their update to the newest KPI sample they sent (zero for one that sent none yet)."""
    cv, t = CampaignVehicleRow, TelemetryRow
    running = (
        cv.campaign_id == campaign.id,
        cv.wave == campaign.current_wave,
        cv.updated_since <= now,
        or_(cv.rolled_back_at.is_(None), cv.rolled_back_at > now),
    )
    vehicles = int(session.scalar(select(func.count()).select_from(cv).where(*running)) or 0)
    spans = [
        (newest - since).total_seconds()
        for since, newest in session.execute(  # both set: the join and the filter say so
            select(cv.updated_since, func.max(t.at))
            .join(t, t.vehicle_id == cv.vehicle_id)
            .where(*running, t.at >= cv.updated_since, t.at <= now)
            .group_by(cv.vehicle_id, cv.updated_since)
        )
        if since is not None and newest is not None
    ]
    spans = [0.0] * (vehicles - len(spans)) + spans
    return dt.timedelta(seconds=statistics.median(spans)) if spans else dt.timedelta(0)


_SEEN = "telemetry through row "


def _seen(evidence: Any) -> int:
    """The newest telemetry row a stored look had seen (0 if it does not say)."""
    for note in evidence.get("notes", []) if isinstance(evidence, dict) else []:
        if isinstance(note, str) and note.startswith(_SEEN):
            return int(note.removeprefix(_SEEN))
    return 0


def store_verdict(session: Session, campaign: CampaignRow, look: Look, now: dt.datetime) -> None:
    session.add(
        HealthVerdictRow(
            campaign_id=campaign.id,
            wave=campaign.current_wave,
            look=look.number,
            at=now,
            outcome=look.verdict.outcome.value,
            evidence={**look.verdict.to_dict(), _EXPOSURE: look.exposure.total_seconds()},
        )
    )


_EXPOSURE = "wave_exposure_s"


def latest_health(session: Session, campaign: CampaignRow) -> Health | None:
    """The latest verdict on the campaign's current wave, as the planner takes it."""
    row = session.execute(
        select(HealthVerdictRow.outcome, HealthVerdictRow.evidence)
        .where(HealthVerdictRow.campaign_id == campaign.id, HealthVerdictRow.wave == campaign.current_wave)
        .order_by(HealthVerdictRow.id.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    evidence = row.evidence if isinstance(row.evidence, dict) else {}
    reasons = evidence.get("reasons", [])
    exposure = evidence.get(_EXPOSURE)
    return Health(
        row.outcome,
        "; ".join(str(r) for r in reasons)[:500],
        dt.timedelta(seconds=float(exposure)) if isinstance(exposure, int | float) else None,
    )
