"""The fleet story `evota demo` tells: a logistics operator's vans through three releases.

1. `soc-2027.1`, BMS 2.4.0: a better SoC estimator. It goes through every wave to 100 %.
2. `cold-2027.2`, BMS 2.5.0: a calibration that is wrong in the cold (temperature
   compensation and low-temperature charge limits). Its first wave reaches cold and warm
   depots alike; the health gate compares each climate zone's updated vans with its control
   vans, sees the cold ones drift, and rolls the campaign back: every exposed van is sent
   back to BMS 2.4.0 and no other van ever gets 2.5.0.
3. `energy-2027.3`, VCMS 3.1.0 + BMS 2.6.0 (which requires VCMS ≥ 3.1): one bundle, in
   order. Vans with the older VCMS hardware (no 3.1 is built for it) are held as
   incompatible, the others update.

Everything runs through the production code: the operator's campaigns go through the
campaign services (created by one person, approved by another), the controller ticks, each
van runs the real agent. The report is built from the database afterwards, as
`evota campaign report` would build it, plus the figures only a simulation knows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import simpy
from sqlalchemy import func, select

from evota.deployment import Deployment
from evota.domain.campaign import TERMINAL, CampaignEvent, CampaignState
from evota.domain.gates import MaintenanceWindow, Preconditions, Rule
from evota.domain.health import default_gate
from evota.domain.planner import RolloutPolicy
from evota.domain.policy import InstallPolicy
from evota.server.services import campaigns
from evota.server.store.models import (
    CampaignRow,
    CampaignVehicleRow,
    EcuRow,
    HealthVerdictRow,
    TelemetryRow,
)
from evota.sim import presets
from evota.sim.calibration import Calibration
from evota.sim.fleet import FACTORY, HARDWARE, FleetConfig, FleetSim

__all__ = [
    "DEMO_RELEASES",
    "DemoResult",
    "build_report",
    "demo_start",
    "run_demo",
    "waves_for",
    "write_report",
]

WAVES = (5.0, 20.0, 50.0, 100.0)
# The health gate needs about twenty updated vans, several of them in cold depots and some
# fast-charging at lunch, to judge a canary on two days of driving: a fleet under 400 vans
# opens with twenty (200 vans: 10 %, 100 vans: 20 %), the later waves stay the same.
FIRST_WAVE_VANS = 20


def waves_for(vehicles: int) -> tuple[float, ...]:
    first = max(WAVES[0], min(50.0, 100.0 * FIRST_WAVE_VANS / vehicles))
    return (round(first, 1), *(w for w in WAVES[1:] if w > first))


OPERATOR, APPROVER = "ops.maria", "ops.jonas"


@dataclasses.dataclass(frozen=True)
class DemoRelease:
    name: str
    images: tuple[tuple[str, str, tuple[str, ...], Callable[[], Calibration]], ...]
    # (ecu type, version, requires, calibration)
    story: str


DEMO_RELEASES = (
    DemoRelease(
        "soc-2027.1",
        (("bms", "2.4.0", (), presets.good_soc_improvement),),
        "a better SoC estimator (OCV table and temperature compensation)",
    ),
    DemoRelease(
        "cold-2027.2",
        (("bms", "2.5.0", (), presets.bad_cold_calibration),),
        "a calibration that is wrong below freezing",
    ),
    DemoRelease(
        "energy-2027.3",
        (
            ("vcms", "3.1.0", (), presets.factory_vcms),
            ("bms", "2.6.0", ("vcms>=3.1",), presets.good_soc_improvement),
        ),
        # What the BMS needs of the VCMS is a declared requirement (its CAN interface); the
        # models run the improved estimator on both versions.
        "a BMS that needs the newer VCMS, as one bundle",
    ),
)


def install_policy() -> InstallPolicy:
    """What each van checks itself before it switches (signed into every demo release)."""
    return InstallPolicy(
        Preconditions(
            min_soc_pct=40.0,
            park_required=True,
            plugged_in=Rule.ANY,
            charging=Rule.FORBIDDEN,
            ambient_min_c=-40.0,
            ambient_max_c=55.0,
        ),
        rollback_window=dt.timedelta(hours=96),
    )


def rollout_policy() -> RolloutPolicy:
    """The server side: one wave a night, in the depot's night window, vans parked and charged."""
    return RolloutPolicy(
        # The dwell is also driving on the release (the planner waits for a look whose telemetry
        # covers it): one day's KPI batch for a wave, two for the canary, as cold symptoms
        # build up over the nights' charges and the mornings' drives.
        dwell=dt.timedelta(hours=14),
        first_dwell=dt.timedelta(hours=36),
        max_concurrent=500,
        # A van may miss a night's install poll (no coverage): not a failure, unless it
        # misses the next night's too.
        install_timeout=dt.timedelta(hours=30),
        error_threshold_pct=20.0,
        min_executed=5,
        success_threshold_pct=75.0,
        preconditions=Preconditions(
            min_soc_pct=40.0,
            park_required=True,
            plugged_in=Rule.ANY,
            charging=Rule.FORBIDDEN,
            ambient_min_c=-40.0,
            ambient_max_c=55.0,
            max_state_age=dt.timedelta(hours=3),
        ),
        windows=(MaintenanceWindow(dt.time(0, 0), dt.time(5, 0), frozenset(range(7))),),
    )


def gate() -> dict[str, Any]:
    """The default KPIs, looked at twice a day, with Pocock-like spending (γ = 1): a fleet
    rollout wants its power early, to catch a bad release in its first wave."""
    config = dataclasses.replace(default_gate(max_looks=24), spending_gamma=1.0)
    return {**config.to_dict(), "interval_s": 6 * 3600}


def publish_factory(dep: Deployment) -> None:
    """The images every van leaves the factory with (so a rollback can name them)."""
    factory = presets.factory_calibrations()
    folder = dep.home.path / "firmware"
    folder.mkdir(exist_ok=True)
    for ecu_type, version in FACTORY.items():
        path = folder / f"{ecu_type}-{version}.json"
        path.write_bytes(dataclasses.replace(factory[ecu_type], version=version).to_image_bytes())
        dep.images.add_image(path, ecu_type=ecu_type, hardware_ids=_hardware(ecu_type), version=version)


def publish_release(dep: Deployment, release: DemoRelease) -> None:
    folder = dep.home.path / "firmware"
    paths = []
    for ecu_type, version, requires, preset in release.images:
        path = folder / f"{ecu_type}-{version}.json"
        path.write_bytes(dataclasses.replace(preset(), version=version).to_image_bytes())
        hardware = [HARDWARE[ecu_type]]  # VCMS 3.1 is built for the gen3 hardware only
        image = dep.images.add_image(
            path, ecu_type=ecu_type, hardware_ids=hardware, version=version, requires=list(requires)
        )
        paths.append(image.path)
    dep.images.add_bundle(release.name, paths, policy=install_policy())


def _hardware(ecu_type: str) -> list[str]:
    from evota.sim.fleet import OLD_VCMS_HARDWARE

    return [HARDWARE[ecu_type], OLD_VCMS_HARDWARE] if ecu_type == "vcms" else [HARDWARE[ecu_type]]


@dataclasses.dataclass
class DemoResult:
    report: dict[str, Any]
    sim: FleetSim


def run_demo(
    home: Path,
    *,
    vehicles: int = 200,
    depots: int = 8,
    seed: int = 1,
    start: dt.datetime | None = None,
    max_days: float = 24.0,
    database_url: str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> DemoResult:
    """Build the fleet, run the three campaigns one after the other, return the report."""
    wall = time.perf_counter()
    config = FleetConfig(vehicles=vehicles, depots=depots, seed=seed, database_url=database_url)
    if start is not None:
        config = dataclasses.replace(config, start=start)
    sim = FleetSim(home, config, progress=progress)
    sim.build(publish_factory)
    sim.start()
    done = sim.env.event()
    names: list[str] = []
    sim.env.process(_operator(sim, names, done))
    end = config.start + dt.timedelta(days=max_days)
    report_progress = progress or (lambda _w, _f: None)
    while not done.triggered and sim.clock.now() < end:
        step_to = min(sim.clock.now() + dt.timedelta(hours=6), end)
        sim.run_until(step_to)
        report_progress("simulating", (sim.clock.now() - config.start) / (end - config.start))
    report = build_report(sim, names)
    report["wall_time_s"] = round(time.perf_counter() - wall, 1)
    return DemoResult(report, sim)


def _operator(sim: FleetSim, names: list[str], done: simpy.Event) -> Generator[simpy.Event, Any, None]:
    """Campaign after campaign, each started at 18:00 UTC once the last one ended; the first
    after a day of driving, so the health gate has a baseline of every van."""
    yield sim.env.timeout(sim.at(_next_evening(sim.now() + dt.timedelta(days=1))) - sim.env.now)
    for number, release in enumerate(DEMO_RELEASES, 1):
        yield sim.env.timeout(max(sim.at(_next_evening(sim.now())) - sim.env.now, 0))
        now = sim.now()
        publish_release(sim.dep, release)
        name = f"c{number}-{release.name}"
        campaigns.create_campaign(
            sim.db,
            name=name,
            release=release.name,
            selector=campaigns.Selector(),
            waves=waves_for(len(sim.vehicles)),
            policy=rollout_policy(),
            created_by=OPERATOR,
            now=now,
            gate=gate(),
        )
        campaigns.move_campaign(sim.db, name, CampaignEvent.APPROVE, actor=APPROVER, now=now)
        campaigns.move_campaign(sim.db, name, CampaignEvent.START, actor=OPERATOR, now=now)
        names.append(name)
        while CampaignState(campaigns.campaign_summary(sim.db, name).state) not in TERMINAL:
            yield sim.env.timeout(3600)
        # A rolled-back campaign: let the exposed vans get back before the next one starts.
        deadline = sim.env.now + 36 * 3600
        while sim.env.now < deadline and _rollbacks_pending(sim, name):
            yield sim.env.timeout(3600)
    done.succeed()


def _rollbacks_pending(sim: FleetSim, name: str) -> int:
    cv = CampaignVehicleRow
    with sim.db.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(cv)
                .join(CampaignRow, CampaignRow.id == cv.campaign_id)
                .where(
                    CampaignRow.name == name, cv.rollback_ordered_at.is_not(None), cv.rolled_back_at.is_(None)
                )
            )
            or 0
        )


def demo_start(today: dt.date) -> dt.datetime:
    """Noon UTC on the second Monday of the last January that is over (the story needs winter,
    and a start in the past, so `evota serve` afterwards sees a fleet whose days have passed)."""
    year = today.year if today >= dt.date(today.year, 2, 15) else today.year - 1
    first = dt.date(year, 1, 1)
    monday = first + dt.timedelta(days=(7 - first.weekday()) % 7 + 7)
    return dt.datetime(monday.year, monday.month, monday.day, 12, 0, tzinfo=dt.UTC)


def _next_evening(now: dt.datetime) -> dt.datetime:
    evening = now.replace(hour=18, minute=0, second=0, microsecond=0)
    return evening if evening >= now else evening + dt.timedelta(days=1)


def build_report(sim: FleetSim, names: list[str]) -> dict[str, Any]:
    """What `demo-report.json` holds: per campaign, and the fleet's final versions."""
    out: list[dict[str, Any]] = []
    with sim.db.sessions() as session:
        for name in names:
            c = session.scalars(select(CampaignRow).where(CampaignRow.name == name)).one()
            cv = CampaignVehicleRow
            counts = Counter(
                dict(
                    session.execute(
                        select(cv.status, func.count()).where(cv.campaign_id == c.id).group_by(cv.status)
                    ).all()
                )
            )
            exposed = session.scalar(
                select(func.count()).where(cv.campaign_id == c.id, cv.updated_since.is_not(None))
            )
            rolled = session.scalar(
                select(func.count()).where(cv.campaign_id == c.id, cv.rolled_back_at.is_not(None))
            )
            halted_at = session.scalar(
                select(func.min(HealthVerdictRow.at)).where(
                    HealthVerdictRow.campaign_id == c.id, HealthVerdictRow.outcome == "rollback"
                )
            )
            first_bad = session.scalar(
                select(func.min(TelemetryRow.at))
                .join(cv, cv.vehicle_id == TelemetryRow.vehicle_id)
                .where(
                    cv.campaign_id == c.id, cv.updated_since.is_not(None), TelemetryRow.at >= cv.updated_since
                )
            )
            verdicts = session.execute(
                select(
                    HealthVerdictRow.at,
                    HealthVerdictRow.wave,
                    HealthVerdictRow.outcome,
                    HealthVerdictRow.evidence,
                )
                .where(HealthVerdictRow.campaign_id == c.id)
                .order_by(HealthVerdictRow.id)
            ).all()
            state = CampaignState(c.state)
            out.append(
                {
                    "campaign": name,
                    "release": c.release,
                    "final_state": state.value,
                    "waves": list(c.waves),
                    "waves_reached": len(c.waves) if state is CampaignState.COMPLETED else c.current_wave + 1,
                    "vehicles_in_scope": sum(counts.values()),
                    "vehicles_exposed": int(exposed or 0),
                    "vehicles_rolled_back": int(rolled or 0),
                    "vehicles_held": int(counts.get("held", 0)),
                    "status_counts": dict(sorted(counts.items())),
                    "minutes_from_first_bad_telemetry_to_halt": (
                        round((halted_at - first_bad).total_seconds() / 60)
                        if halted_at is not None and first_bad is not None
                        else None
                    ),
                    "health_verdicts": [
                        {
                            "at": at.isoformat(),
                            "wave": wave + 1,
                            "outcome": outcome,
                            "reasons": [str(r) for r in evidence.get("reasons", [])][:6],  # type: ignore[attr-defined]
                        }
                        for at, wave, outcome, evidence in verdicts
                    ],
                }
            )
        versions: dict[str, Counter[str]] = {}
        for ecu_type, version, n in session.execute(
            select(EcuRow.ecu_type, EcuRow.installed_version, func.count()).group_by(
                EcuRow.ecu_type, EcuRow.installed_version
            )
        ):
            versions.setdefault(ecu_type, Counter())[version or "unknown"] += n
    days = (sim.clock.now() - sim.config.start).total_seconds() / 86400
    return {
        "vehicles": sim.config.vehicles,
        "depots": [d.name for d in sim.depots],
        "seed": sim.config.seed,
        "simulated_days": round(days, 2),
        "agent_cycles": sum(v.cycles for v in sim.vehicles),
        "telemetry_uploads": sum(v.uploads for v in sim.vehicles),
        "campaigns": out,
        "final_versions": {t: dict(sorted(c.items())) for t, c in sorted(versions.items())},
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
