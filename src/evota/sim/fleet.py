"""The virtual fleet: real agents against the real server services, on one simulated clock.

A discrete-event simulation (SimPy) of a logistics operator's delivery vans:

- **the world** is a real evota home (image repository, director, SQLite or PostgreSQL fleet
  registry), a published factory release, and every van provisioned as `evota vehicle
  provision` does it (keys per ECU, simulated ECUs with A/B slots, both trusted roots);
- **each van** is a SimPy process that wakes at its depot's local times, with jitter, unless
  it has no coverage (`offline_share` of wakes are lost): in the evening, back from its
  shift, it uploads the day's KPIs (`Agent.upload_telemetry()`); twice in the night window
  it runs the real `Agent.cycle()` through the in-process port (`server/inprocess.py`):
  check-in with a signed manifest, full Uptane verification, install with the journal;
- **the battery models** (`sim/physics.py`) advance every van's pack in one NumPy batch each
  `physics_step`, with the calibration each van's BMS, VCMS and TMS actually boot (read from
  the active slot after every install or rollback), and yield the KPIs the agents send;
- **the controller** ticks every `tick` as `evota serve` does: health-gate looks, planner
  decisions, director signatures, fleet rollbacks;
- **the operator** is a script (`sim/demo.py`) that creates, approves and starts campaigns
  through the same services the API calls.

SimPy owns time; before every event the shared `SimClock` is moved to the event's instant, so
the server, the agents and the models all read the same "now" and days pass in seconds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import zoneinfo
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import simpy

from evota.agent.agent import Agent, CycleResult
from evota.agent.provision import provision_vehicle
from evota.agent.secondary import Partition
from evota.agent.simulated import SimulatedEcu
from evota.agent.state import StateDir
from evota.agent.telemetry import sample
from evota.clock import SimClock
from evota.deployment import Deployment, init_home
from evota.domain.gates import EnergyState
from evota.domain.registry import parse_vehicle_csv
from evota.fsutil import set_durable
from evota.server.inprocess import InProcessServer
from evota.server.services.controller import TickReport, tick
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import Database, open_database
from evota.sim.calibration import Calibration
from evota.sim.physics import FleetPhysics, VehicleSetup

__all__ = ["DEPOTS", "Depot", "FleetConfig", "FleetSim", "SimVehicle"]

Event = Generator[simpy.Event, Any, None]


@dataclasses.dataclass(frozen=True)
class Depot:
    name: str
    climate_zone: str  # the registry's zone (domain/registry.py CLIMATE_ZONES)
    time_zone: str
    region: str
    physics_zone: str  # the climate model's zone (sim/climate.py)


# Ordered so that any prefix of four or more holds cold and warm depots alike.
DEPOTS = (
    Depot("oulu", "polar", "Europe/Helsinki", "eu-north", "nordic"),
    Depot("lyon", "temperate", "Europe/Paris", "eu-west", "temperate"),
    Depot("warsaw", "cold", "Europe/Warsaw", "eu-central", "continental"),
    Depot("seville", "hot-dry", "Europe/Madrid", "eu-south", "hot-arid"),
    Depot("oslo", "cold", "Europe/Oslo", "eu-north", "nordic"),
    Depot("amsterdam", "temperate", "Europe/Amsterdam", "eu-west", "temperate"),
    Depot("naples", "warm", "Europe/Rome", "eu-south", "mediterranean"),
    Depot("munich", "cold", "Europe/Berlin", "eu-central", "continental"),
)
ROUTES = ("urban", "mixed", "highway")
FACTORY = {"bms": "2.3.0", "vcms": "3.0.0", "tms": "1.0.0"}
HARDWARE = {"gateway": "gw-tcu4", "bms": "bms-gen2", "vcms": "vcms-gen3", "tms": "tms-gen1"}
OLD_VCMS_HARDWARE = "vcms-gen2"  # a share of the vans: no VCMS 3.1 is built for it


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    vehicles: int = 200
    depots: int = 8
    seed: int = 1
    start: dt.datetime = dt.datetime(2027, 1, 11, 12, 0, tzinfo=dt.UTC)  # a Monday in winter
    physics_step: dt.timedelta = dt.timedelta(minutes=15)
    tick: dt.timedelta = dt.timedelta(minutes=30)
    # KPI batches close once a day, the first 6 h after the start (18:00 UTC for a noon
    # start: after the shift in Europe, before the evening upload delivers the day).
    kpi_period: dt.timedelta = dt.timedelta(hours=24)
    kpi_first: dt.timedelta = dt.timedelta(hours=6)
    # Local times a van sends its telemetry from the depot's Wi-Fi, back from its shift
    # (an upload, no update check).
    uploads: tuple[dt.time, ...] = (dt.time(20, 30),)
    # Local times a van polls for updates, twice in the night window: the first reports its
    # state (the server offers only on a fresh one), the second installs what was offered.
    polls: tuple[dt.time, ...] = (dt.time(1, 0), dt.time(4, 0))
    jitter_min: float = 20.0
    offline_share: float = 0.05
    old_vcms_share: float = 0.1
    database_url: str | None = None  # None: SQLite in the home

    def __post_init__(self) -> None:
        if self.vehicles < 1 or not 1 <= self.depots <= len(DEPOTS):
            raise ValueError(f"a fleet needs vehicles and 1…{len(DEPOTS)} depots")


@dataclasses.dataclass
class SimVehicle:
    index: int
    vin: str
    depot: Depot
    state: StateDir
    agent: Agent
    telemetry: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    running: dict[str, str] = dataclasses.field(default_factory=dict)  # ecu type -> sha256 booted
    last: CycleResult | None = None
    cycles: int = 0
    uploads: int = 0


class _Signals:
    """The van's buses as the agent reads them: its pack's state in the battery models."""

    def __init__(self, physics: FleetPhysics, index: int, clock: SimClock) -> None:
        self.physics, self.index, self.clock = physics, index, clock

    def read(self) -> EnergyState:
        reading = self.physics.energy_state(self.index).to_energy_state()
        return dataclasses.replace(reading, reported_at=self.clock.now())


class _Spool:
    """The van's KPI samples not yet taken by its agent."""

    def __init__(self, vehicle: SimVehicle) -> None:
        self.vehicle = vehicle

    def take(self) -> list[dict[str, Any]]:
        out, self.vehicle.telemetry = self.vehicle.telemetry, []
        return out


class FleetSim:
    """Build the world once (`build`), then run processes on `env` (`run_until`)."""

    def __init__(
        self,
        home: Path,
        config: FleetConfig,
        *,
        progress: Callable[[str, float], None] | None = None,
    ) -> None:
        self.home = home
        self.config = config
        self.clock = SimClock(config.start)
        self.env = simpy.Environment()
        self.rng = random.Random(config.seed)
        self.progress = progress or (lambda _what, _fraction: None)
        self.vehicles: list[SimVehicle] = []
        self.ticks: list[tuple[dt.datetime, TickReport]] = []
        self.dep: Deployment
        self.db: Database
        self.physics: FleetPhysics

    @property
    def depots(self) -> tuple[Depot, ...]:
        return DEPOTS[: self.config.depots]

    # ---- time ------------------------------------------------------------------------------------
    def at(self, when: dt.datetime) -> float:
        """SimPy time (seconds from the start) of an instant."""
        return (when - self.config.start).total_seconds()

    def now(self) -> dt.datetime:
        """Move the shared clock to SimPy's present and return it."""
        target = self.config.start + dt.timedelta(seconds=self.env.now)
        if target > self.clock.now():
            self.clock.advance(target - self.clock.now())
        return self.clock.now()

    # ---- the world -------------------------------------------------------------------------------
    def build(self, publish: Callable[[Deployment], None]) -> None:
        """The home, the factory images (`publish`), the registry and every van provisioned."""
        set_durable(False)  # a throw-away home and simulated vans: see fsutil.set_durable
        self.dep = init_home(self.home, self.clock)
        url = self.config.database_url or self.dep.home.database_url()
        self.db = open_database(url, durable=False)
        publish(self.dep)
        depots = self.depots
        rows, setups = self._registry(depots)
        import_vehicles(self.db, parse_vehicle_csv(rows), self.clock.now(), actor="sim")
        self.physics = FleetPhysics(setups, seed=self.config.seed, start=self.config.start)
        folder = self.home / "fleet"
        for index, setup in enumerate(setups):
            depot = next(d for d in depots if d.name == setup.depot)
            state = StateDir(folder / setup.vin)
            provision_vehicle(
                self.dep,
                self.db,
                vin=setup.vin,
                state_dir=state.path,
                server_url="inproc://",
                now=self.clock.now(),
            )
            vehicle = SimVehicle(index, setup.vin, depot, state, None)  # type: ignore[arg-type]
            vehicle.agent = Agent(
                state,
                InProcessServer(self.dep, self.db, vin=setup.vin, token=state.token()),
                clock=self.clock,
                signals=_Signals(self.physics, index, self.clock),
                telemetry=_Spool(vehicle),
            )
            self.vehicles.append(vehicle)
            self._boot(vehicle)
            if index % 10 == 0:
                self.progress("provisioning", (index + 1) / len(setups))
        self.progress("provisioning", 1.0)

    def _registry(self, depots: Sequence[Depot]) -> tuple[str, list[VehicleSetup]]:
        lines = ["vin,model,depot,region,climate_zone,time_zone,tags,ecus"]
        setups = []
        for i in range(self.config.vehicles):
            depot = depots[i % len(depots)]
            vin = _vin(self.config.seed, i)
            route = ROUTES[self.rng.randrange(len(ROUTES))]
            vcms_hw = (
                OLD_VCMS_HARDWARE if self.rng.random() < self.config.old_vcms_share else HARDWARE["vcms"]
            )
            ecus = "|".join(
                [
                    f"gateway:GW-{i}:{HARDWARE['gateway']}:1.0.0",
                    f"bms:BMS-{i}:{HARDWARE['bms']}:{FACTORY['bms']}",
                    f"vcms:VCMS-{i}:{vcms_hw}:{FACTORY['vcms']}",
                    f"tms:TMS-{i}:{HARDWARE['tms']}:{FACTORY['tms']}",
                ]
            )
            lines.append(
                f"{vin},eVan-3,{depot.name},{depot.region},{depot.climate_zone},{depot.time_zone},{route},{ecus}"
            )
            setups.append(
                VehicleSetup(
                    vin=vin,
                    depot=depot.name,
                    climate_zone=depot.physics_zone,
                    time_zone=depot.time_zone,
                    route=route,
                    age_days=self.rng.uniform(60, 900),
                )
            )
        return "\n".join(lines) + "\n", setups

    def _boot(self, vehicle: SimVehicle) -> None:
        """Give the battery models the calibration each ECU boots (after an install or rollback)."""
        for ecu in vehicle.agent.secondaries.values():
            if not isinstance(ecu, SimulatedEcu):
                continue
            data = ecu.running_bytes(Partition.FIRMWARE)
            if data is None:
                continue
            key = _digest(data)
            if vehicle.running.get(ecu.ecu_type) == key:
                continue
            vehicle.running[ecu.ecu_type] = key
            calibration = Calibration.from_image_bytes(data)
            self.physics.set_calibration(vehicle.index, ecu.ecu_type, calibration)

    # ---- processes -------------------------------------------------------------------------------
    def start(self) -> None:
        self.env.process(self._physics_process())
        self.env.process(self._controller_process())
        for vehicle in self.vehicles:
            self.env.process(self._vehicle_process(vehicle))

    def run_until(self, when: dt.datetime) -> None:
        self.env.run(until=self.at(when))
        self.now()

    def _physics_process(self) -> Event:
        step = self.config.physics_step.total_seconds()
        next_kpis = self.config.start + self.config.kpi_first
        while True:
            yield self.env.timeout(step)
            now = self.now()
            self.physics.advance(now)
            if now >= next_kpis:
                batch = self.physics.take_kpis()
                for v in self.vehicles:
                    v.telemetry.append(sample(now, batch.to_samples(v.index)))
                next_kpis += self.config.kpi_period

    def _controller_process(self) -> Event:
        step = self.config.tick.total_seconds()
        while True:
            yield self.env.timeout(step)
            now = self.now()
            report = tick(self.db, self.dep.director, now)
            if report.offered or report.advanced or report.halted or report.completed or report.rolled_back:
                self.ticks.append((now, report))

    def _vehicle_process(self, vehicle: SimVehicle) -> Event:
        rng = random.Random(f"{self.config.seed}/{vehicle.vin}")
        zone = zoneinfo.ZoneInfo(vehicle.depot.time_zone)
        uploads = frozenset(self.config.uploads)
        while True:
            wake, local = _next_poll(self.now(), zone, (*self.config.polls, *self.config.uploads))
            wake += dt.timedelta(minutes=rng.uniform(0, self.config.jitter_min))
            yield self.env.timeout(max(self.at(wake) - self.env.now, 1.0))
            self.now()
            if rng.random() < self.config.offline_share:
                continue  # no coverage at this poll
            if local in uploads:
                vehicle.agent.upload_telemetry()
                vehicle.uploads += 1
                continue
            vehicle.last = vehicle.agent.cycle()
            vehicle.cycles += 1
            if vehicle.last.outcome in ("installed", "rolled_back", "failed"):
                self._boot(vehicle)

    def close(self) -> None:
        for v in self.vehicles:
            v.agent.close()
        self.db.dispose()
        set_durable(True)


def _next_poll(
    now: dt.datetime, zone: zoneinfo.ZoneInfo, times: Sequence[dt.time]
) -> tuple[dt.datetime, dt.time]:
    """The next of the local `times` after `now`: when (in UTC), and which."""
    local = now.astimezone(zone)
    candidates = []
    for days in (0, 1):
        day = local.date() + dt.timedelta(days=days)
        for t in times:
            at = dt.datetime.combine(day, t, tzinfo=zone).astimezone(dt.UTC)
            if at > now:
                candidates.append((at, t))
    return min(candidates)


def _vin(seed: int, index: int) -> str:
    """A well-formed VIN per (seed, index): WMI `WVW`, then digits (no I, O or Q)."""
    return f"WVWZZZ{seed % 100:02d}{index:09d}"


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
