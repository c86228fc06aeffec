"""FleetPhysics: every van's battery, duty and BMS, stepped together with NumPy.

The fleet simulator drives it through four calls (all times aware UTC datetimes)::

    physics = FleetPhysics(setups, seed=7, start=t0)       # factory calibrations everywhere
    physics.set_calibration(i, "bms", Calibration.from_image_bytes(image))  # install/rollback
    physics.advance(t1)                # step every vehicle to t1 (whole steps, see below)
    reading = physics.energy_state(i)  # what vehicle i's signals say now (EnergyReading)
    readings = physics.energy_states() # the same for many (all by default), in one pass
    batch = physics.take_kpis()        # per-vehicle KPIs since the previous take (KpiBatch)
    batch.to_samples(i)                # {"soc_error_pct": ..., ...} for the health gate

* `VehicleSetup(vin, depot, climate_zone, time_zone, route, age_days)`: zones nordic,
  continental, temperate, mediterranean, hot-arid; routes urban, mixed, highway; a depot
  has one zone and one IANA zone. Bad setups are `InputError`s; a naive datetime, an
  unknown ECU type or a calibration for another ECU are `ValueError`s (the caller's bug),
  an index out of range an `IndexError`.
* `calibrations={"bms": ..., "tms": ..., "vcms": ...}` at construction sets every van's
  starting calibration (default: `presets.factory_calibrations()`);
  `physics.calibration(i, ecu_type)` reads one back. A change takes effect at the next
  step; the BMS keeps its SoC estimate across it (NVM).
* `EnergyReading(at, soc_pct, soh_pct, charging, plugged_in, gear, ambient_c, hv_on,
  pack_temp_c, mode)`: the BMS's estimates, not the truth; `gear` is
  `evota.domain.gates.Gear` (DRIVE while driving, else PARK); `hv_on` while driving,
  charging, or heating/cooling from the plug; `to_energy_state()` gives the
  `EnergyState` the agent's preconditions take. `true_soc()` gives the truth, for tests.
* `KpiBatch` (see `kpis` for each KPI's exact meaning): arrays (n,) of soc_error_pct,
  cell_spread_mv, max_temp_c, charge_started, charge_completed, fault_codes, energy_kwh,
  distance_km, vehicle_days, and faults_by_code; `to_samples(i)` has exactly the keys
  `kpis.SAMPLE_NAMES`.

Time advances in steps of `PhysicsSpec.step_s` (120 s by default); while no van of the
fleet is on shift (nights), in steps of `quiet_step_s` (600 s, on a 600 s grid), never
past the next departure or local midnight: parked and charging packs are solved exactly
over any step (RC and thermal responses are exponentials, the charge limits implicit,
the drive cycles averaged per step). Fleet KPIs at 60 s and at 120 s agree within their
noise (docs/simulator.md), and 120 s halves the cost. `advance(until)` runs every whole
step that ends at or before `until`, so the physics' clock (`now`) may trail `until` by
less than one step (two minutes by day, ten at night); the steps taken do not depend on
how time was cut into `advance` calls. Cell-level
work (balancing, spread, the highest and lowest elements) runs every `sync_s` (10
simulated minutes), ageing hourly.

One step, for all vehicles at once: local time per depot time zone and the day's duty
(`duty`); ambient per depot (`climate`); departures unplug, returns plug in; DC stops at
lunch or on low SoC; depot AC charging (smart tariff at 22:00); the TMS heats or cools
(`calibration.ThermalConditioning`); drive power from the cycle tables (`drive`) or
charge current from the BMS limits (`charging`); the pack's RC step, charge and heat
(`pack`, `thermal`); the BMS's Coulomb count, rest tracking and OCV resets with its own
calibration (`bms`); faults (plating, over/under-voltage, over-temperature, SoC jumps);
KPIs (`kpis`). Random numbers come from three streams spawned from the seed: the fleet's
construction, the daily plans (drawn for every van at each local midnight) and sensor
noise (drawn per hour of simulated time). So the same seed gives the same fleet, and two
runs that differ only in calibrations see the same vans, weather, plans and noise: the
KPI differences are the calibration's (and what it changes downstream: a BMS that
over-reads SoC sends its van to a charger later).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from evota.domain.gates import EnergyState, Gear
from evota.errors import InputError
from evota.sim.ageing import AgeingLaw, initial_ageing
from evota.sim.arrays import some
from evota.sim.bms import CalibrationRows, SocCounter
from evota.sim.calibration import ECU_TYPES, Calibration
from evota.sim.charging import ChargerSpec, Sessions
from evota.sim.climate import DepotClimate, hemisphere_of, zone
from evota.sim.drive import VanSpec, cycle_table
from evota.sim.duty import DutyRoster, DutySpec, LocalClock, Mode
from evota.sim.kpis import KpiAccumulator, KpiBatch
from evota.sim.pack import PackSpec, PackState
from evota.sim.presets import factory_calibrations
from evota.sim.step import step
from evota.sim.thermal import ThermalSpec

__all__ = ["EnergyReading", "FleetPhysics", "PhysicsSpec", "VehicleSetup"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class VehicleSetup:
    vin: str
    depot: str
    climate_zone: str  # nordic, continental, temperate, mediterranean, hot-arid
    time_zone: str  # IANA, the depot's
    route: str  # urban, mixed, highway
    age_days: float = 365.0


@dataclasses.dataclass(frozen=True)
class PhysicsSpec:
    pack: PackSpec = dataclasses.field(default_factory=PackSpec)
    van: VanSpec = dataclasses.field(default_factory=VanSpec)
    thermal: ThermalSpec = dataclasses.field(default_factory=ThermalSpec)
    ageing: AgeingLaw = dataclasses.field(default_factory=AgeingLaw)
    duty: DutySpec = dataclasses.field(default_factory=DutySpec)
    charger: ChargerSpec = dataclasses.field(default_factory=ChargerSpec)
    step_s: float = 120.0
    quiet_step_s: float = 600.0  # while no van is on shift (a multiple of step_s)
    sync_s: float = 600.0
    ageing_every_s: float = 3600.0
    reference_rest_s: float = 7200.0  # a rest this long gives a KPI reference at its end
    balance_rest_s: float = 600.0  # the BMS balances after this much rest (or while charging)
    rest_current_a: float = 0.5
    hw_max_cell_v: float = 4.25
    max_cell_temp_c: float = 55.0
    soc_jump_fault: float = 0.05
    low_soc_dc: float = 0.15  # below this (BMS SoC) a driving van heads for a DC charger
    lunch_dc_soc: float = 0.25  # any van tops up at lunch below this (DC users: the VCMS trigger)
    limp_home_soc: float = 0.07  # below this a van ends its shift
    spread_min_soc: float = 0.5  # cell spread is sampled at rest above this SoC (BMS)
    plating_spread: float = 0.08  # lognormal sigma of each pack's plating limit
    plating_pulse_factor: float = 3.5  # a regen pulse (seconds) may exceed the continuous limit by this
    hotspot_spread: float = 0.15
    garaged_share: float = 0.2  # vans parked in a depot hall, warmer than outside in winter
    garage_warmth: float = 0.6  # hall = outside + this * (12 °C - outside), when outside is colder
    cabin_heat_kw_per_k: float = 0.12  # below 16 °C, at most 4 kW
    cabin_cool_kw_per_k: float = 0.08  # above 24 °C

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.step_s != int(self.step_s) or self.sync_s < self.step_s:
            raise ValueError("step_s must be a whole positive number of seconds, sync_s at least one step")
        if self.quiet_step_s < self.step_s or self.quiet_step_s % self.step_s:
            raise ValueError("quiet_step_s must be a multiple of step_s")


@dataclasses.dataclass(frozen=True)
class EnergyReading:
    """What one vehicle's signals say: the BMS's estimates, not the truth."""

    at: dt.datetime
    soc_pct: float
    soh_pct: float
    charging: bool
    plugged_in: bool
    gear: Gear
    ambient_c: float
    hv_on: bool
    pack_temp_c: float
    mode: Mode

    def to_energy_state(self) -> EnergyState:
        return EnergyState(
            soc_pct=self.soc_pct,
            charging=self.charging,
            plugged_in=self.plugged_in,
            gear=self.gear,
            ambient_c=self.ambient_c,
            reported_at=self.at,
            soh_pct=self.soh_pct,
            hv_on=self.hv_on,
        )


def _epoch(when: dt.datetime, what: str) -> float:
    if when.tzinfo is None:
        raise ValueError(f"{what} must be an aware datetime")
    return when.timestamp()


class FleetPhysics:
    def __init__(
        self,
        setups: Sequence[VehicleSetup],
        *,
        seed: int,
        start: dt.datetime,
        spec: PhysicsSpec | None = None,
        calibrations: Mapping[str, Calibration] | None = None,
    ) -> None:
        if not setups:
            raise InputError("a fleet needs at least one vehicle")
        self.spec = sp = spec or PhysicsSpec()
        self.n = n = len(setups)
        self.setups = tuple(setups)
        self.t = _epoch(start, "start")
        init_seq, duty_seq, self._noise_seq = np.random.SeedSequence(seed).spawn(3)
        init_rng, duty_rng = np.random.default_rng(init_seq), np.random.default_rng(duty_seq)
        self._place(setups, seed)
        self.roster = DutyRoster([s.route for s in setups], duty_rng, sp.duty)
        self.table = cycle_table(sp.van, sp.step_s)
        self.mass_weights = self.table.mass_weights(self.roster.mass_kg)
        self.cyc_pos = init_rng.integers(0, 1 << 20, n)
        age = np.array([s.age_days for s in setups], dtype=float)
        if np.any(~np.isfinite(age)) or np.any(age < 0):
            raise InputError("vehicle age_days must be a non-negative number")
        mean_t = np.array([zone(s.climate_zone).annual_mean_c for s in setups])
        self.ageing = initial_ageing(sp.ageing, age, mean_t, init_rng)
        soc0 = init_rng.uniform(0.45, 0.9, n)
        self.pack = PackState(sp.pack, n, init_rng, soc=soc0, age_days=age)
        self.pack.fade = self.ageing.capacity_fade
        self.pack.r_age = self.ageing.resistance_factor(sp.ageing)
        self.plating_factor = init_rng.lognormal(0.0, sp.plating_spread, n)
        self.hotspot = init_rng.lognormal(0.0, sp.hotspot_spread, n)
        self.garaged = init_rng.random(n) < sp.garaged_share
        soh = 1.0 - self.ageing.capacity_fade
        self._soh_error = 0.01 * init_rng.standard_normal(n)
        self.counter = SocCounter(
            init_rng, soc0 + 0.01 * init_rng.standard_normal(n), soh * (1 + self._soh_error)
        )
        self.sessions = Sessions(n, sp.charger)
        self._rows = {ecu: CalibrationRows(ecu) for ecu in ECU_TYPES}
        self._row_idx = {ecu: np.zeros(n, dtype=np.intp) for ecu in ECU_TYPES}
        chosen = factory_calibrations() | dict(calibrations or {})
        for ecu in ECU_TYPES:
            self._row_idx[ecu][:] = self._rows[ecu].row(chosen[ecu])
        self._params = {ecu: self._rows[ecu].per_vehicle(self._row_idx[ecu]) for ecu in ECU_TYPES}
        self._weather_bucket = -1
        self._outside = np.zeros(n)
        self._noise_block: tuple[int, FloatArray] = (-1, np.zeros((0, n)))
        self.kpi = KpiAccumulator(n)
        self._kpi_since = self.t
        self._init_state()

    def _place(self, setups: Sequence[VehicleSetup], seed: int) -> None:
        depots: dict[str, tuple[str, str]] = {}
        for s in setups:
            zone(s.climate_zone)
            if depots.setdefault(s.depot, (s.climate_zone, s.time_zone)) != (s.climate_zone, s.time_zone):
                raise InputError(f"depot {s.depot!r} is given two climate zones or time zones")
        names = list(depots)
        zones = sorted({tz for _, tz in depots.values()})
        self.clock = LocalClock(zones)
        self.depot_idx = np.array([names.index(s.depot) for s in setups], dtype=np.intp)
        self.depot_tz = np.array([zones.index(depots[d][1]) for d in names], dtype=np.intp)
        self.tz_idx = self.depot_tz[self.depot_idx]
        self.climate = DepotClimate(
            [depots[d][0] for d in names],
            names,
            [hemisphere_of(depots[d][1]) == "south" for d in names],
            seed,
        )

    def _local(self) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
        """(local second of day, local day number, outside temperature) per vehicle."""
        offsets = self.clock.offsets_s(self.t)
        local = self.t + offsets[self.tz_idx]
        day = np.floor(local / 86400.0).astype(np.int64)
        # The weather moves slowly: evaluate it once per 5-minute bucket (at its start).
        bucket = int(self.t // 300)
        if bucket != self._weather_bucket:
            at = bucket * 300.0
            self._outside = self.climate.ambient_c(at, at + offsets[self.depot_tz])[self.depot_idx]
            self._weather_bucket = bucket
        return local - day * 86400.0, day, self._outside

    def surroundings_c(self, outside: FloatArray, on_shift: BoolArray) -> FloatArray:
        """The air around each van: outside, or the depot hall for garaged vans at the depot."""
        hall = outside + self.spec.garage_warmth * np.maximum(12.0 - outside, 0.0)
        return np.where(self.garaged & ~on_shift, hall, outside)

    def _init_state(self) -> None:
        n = self.n
        sod, day, outside = self._local()
        self.roster.plan(day)
        duty = self.roster.now(sod)
        self.ambient = self.surroundings_c(outside, duty.on_shift)
        self.prev_on_shift = duty.on_shift.copy()
        self.plugged = ~duty.on_shift & self.roster.plugs
        self.ac_allowed_at = np.full(n, self.t)
        self.dc_lunch_day = np.full(n, -1, dtype=np.int64)
        self.temp = self.ambient + 2.0
        self.heating = np.zeros(n, dtype=bool)
        self.heat_target = np.zeros(n)
        self.was_resting = np.zeros(n, dtype=bool)
        self.mode = np.full(n, int(Mode.PARKED), dtype=np.int8)
        self.hv_on = np.zeros(n, dtype=bool)
        self._steps = 0
        self._since_sync = 0.0
        self._since_ageing = 0.0
        self._throughput_ah = np.zeros(n)
        self._plated_ah = np.zeros(n)
        self._eta = np.zeros(n)

    # --- the interface ------------------------------------------------------------------
    @property
    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    def calibration(self, index: int, ecu_type: str) -> Calibration:
        return self._rows[ecu_type].calibrations[int(self._row_idx[ecu_type][index])]

    def set_calibration(self, index: int, ecu_type: str, calibration: Calibration) -> None:
        """Vehicle `index` now runs `calibration` on its `ecu_type` (an install or a rollback)."""
        if ecu_type not in self._rows:
            raise ValueError(f"unknown ECU type {ecu_type!r} (known: {', '.join(ECU_TYPES)})")
        if not 0 <= index < self.n:
            raise IndexError(f"vehicle index {index} out of range for a fleet of {self.n}")
        row = self._rows[ecu_type].row(calibration)
        self._row_idx[ecu_type][index] = row
        for name, values in self._rows[ecu_type].scalar.items():
            arr = self._params[ecu_type].get(name)
            if arr is None:  # pragma: no cover - every row of a type has the same settings
                raise RuntimeError(f"setting {name} missing")
            arr[index] = values[row]

    def advance(self, until: dt.datetime) -> None:
        """Step every vehicle up to `until` (whole steps; see the module docstring).

        Which step comes next depends only on the state, never on `until`: a step that
        would end after `until` waits for a later call. So advancing in pieces gives
        exactly what advancing at once gives.
        """
        end = _epoch(until, "until")
        while True:
            length = self._next_step_length()
            if self.t + length > end + 1e-6:
                return
            self._step(length)

    def _next_step_length(self) -> float:
        base, quiet = self.spec.step_s, self.spec.quiet_step_s
        if quiet <= base or self.t % quiet > 1e-6 or some(self.prev_on_shift):
            return base
        sod, _, _ = self._local()
        roster = self.roster
        wait = np.where(roster.works & (sod < roster.depart_s), roster.depart_s - sod, 86400.0 - sod)
        return quiet if float(wait.min()) >= quiet else base

    def energy_state(self, index: int) -> EnergyReading:
        """What vehicle `index`'s signals say now (the BMS's estimates, not the truth)."""
        return self.energy_states([index])[0]

    def energy_states(self, indices: Sequence[int] | None = None) -> list[EnergyReading]:
        """`energy_state` for many vehicles at once (all by default), one array pass."""
        idx = np.arange(self.n) if indices is None else np.asarray(indices, dtype=np.intp)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"vehicle index out of range for a fleet of {self.n}")
        at = self.now
        soc = np.clip(self.counter.soc[idx] * 100.0, 0.0, 100.0).tolist()
        soh = np.clip(self.counter.soh[idx] * 100.0, 0.0, 100.0).tolist()
        charging = (self.sessions.kind[idx] != 0).tolist()
        plugged = self.plugged[idx].tolist()
        hv_on = self.hv_on[idx].tolist()
        ambient = np.round(self.ambient[idx], 2).tolist()
        pack_temp = np.round(self.temp[idx], 2).tolist()
        modes = [Mode(m) for m in self.mode[idx].tolist()]
        return [
            EnergyReading(
                at=at,
                soc_pct=soc[k],
                soh_pct=soh[k],
                charging=charging[k],
                plugged_in=plugged[k],
                gear=Gear.DRIVE if modes[k] is Mode.DRIVING else Gear.PARK,
                ambient_c=ambient[k],
                hv_on=hv_on[k],
                pack_temp_c=pack_temp[k],
                mode=modes[k],
            )
            for k in range(idx.size)
        ]

    def take_kpis(self) -> KpiBatch:
        """Every vehicle's KPIs since the previous call (or construction); starts a new window."""
        batch = self.kpi.take((self.t - self._kpi_since) / 86400.0, self.sessions.take_counts())
        self._kpi_since = self.t
        return batch

    def true_soc(self) -> FloatArray:
        """The simulator's truth (mean element SoC, 0..1), for tests and diagnostics."""
        return self.pack.soc_mean.copy()

    # --- one step -----------------------------------------------------------------------
    def _step(self, dt_s: float) -> None:
        step(self, dt_s)
        self._steps += 1
        self.t += dt_s

    def noise(self) -> FloatArray:
        """Standard normal measurement noise per vehicle for this step: a function of the
        seed and the step's time only (drawn an hour at a time), so runs that differ in
        calibrations, or in how time was walked, share it."""
        hour, block = self._noise_block
        if hour != int(self.t // 3600):
            hour = int(self.t // 3600)
            seq = self._noise_seq
            rng = np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, hour)))
            block = rng.standard_normal((int(3600 // self.spec.step_s), self.n))
            self._noise_block = (hour, block)
        return np.asarray(block[int((self.t % 3600) // self.spec.step_s)])
