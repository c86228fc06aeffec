"""Drive cycles and the road-load model that turns speed into battery power.

Cycles (1 Hz speed traces):

* `wltc3`: WLTC class 3b itself (`evota.sim.wltc`, UN GTR No. 15), 23.27 km in 30 min:
  the "mixed" route.
* `urban`: a parcel round built from WLTC phases: Low, a 3-minute drop, Low, a drop,
  Medium, a drop (HV on during drops, as a van that idles at the kerb), 10.9 km in 39
  min, about 17 km/h: urban delivery speeds.
* `highway`: High, Extra High, Extra High, High with the speed limited to 110 km/h (a
  common fleet limiter for vans), about 64 km/h on average.

Road load (per second): F = m k a + m g c_rr + 0.5 rho CdA v^2 with k the rotating-mass
factor; traction draws F v / eta_drive from the battery (capped at the motor's power),
braking returns -F v eta_regen up to the regen power limit and above a minimum speed.
The defaults are a 3.5 t class e-van (2.6 t kerb, CdA 1.65 m², c_rr 0.009, 88 % battery
to wheel, 75 % wheel to battery), so a half-loaded van on WLTC uses about 0.25 kWh/km at
the battery, in the range of published WLTP figures for e-vans (which include charging
losses and so read a little higher).

For the fleet, `cycle_table` averages each cycle over windows of one simulation step
(traction and regen energy, the mean square of power for the I²R heat, the strongest
regen second, which is the charge pulse the BMS must accept, and distance) for a grid of
vehicle masses, so that a step of 10,000 driving vans is a table lookup.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from numpy.typing import NDArray

from evota.sim.wltc import PHASES, SPEED_DECI_KMH

__all__ = [
    "CYCLES",
    "CycleTable",
    "DriveCycle",
    "VanSpec",
    "battery_power_w",
    "cycle",
    "cycle_table",
    "energy_per_km",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
GRAVITY = 9.81


@dataclasses.dataclass(frozen=True)
class VanSpec:
    kerb_mass_kg: float = 2600.0
    rotating_mass_factor: float = 1.05
    cda_m2: float = 1.65
    crr: float = 0.009
    air_density_kg_m3: float = 1.2
    drivetrain_efficiency: float = 0.88  # battery to wheel
    regen_efficiency: float = 0.75  # wheel to battery
    regen_max_kw: float = 60.0
    regen_min_speed_kmh: float = 5.0
    motor_max_kw: float = 150.0
    aux_base_kw: float = 0.4  # 12 V loads, pumps, controllers with HV on


@dataclasses.dataclass(frozen=True, eq=False)
class DriveCycle:
    name: str
    speed_kmh: FloatArray  # 1 Hz

    @property
    def duration_s(self) -> int:
        return int(self.speed_kmh.size)

    @property
    def distance_km(self) -> float:
        return float(self.speed_kmh.sum() / 3600.0)

    @property
    def mean_speed_kmh(self) -> float:
        return self.distance_km / (self.duration_s / 3600.0)


def _wltc_phase(name: str) -> FloatArray:
    first, last = PHASES[name]
    return np.asarray(SPEED_DECI_KMH[first : last + 1], dtype=float) / 10.0


@functools.cache
def _cycles() -> dict[str, DriveCycle]:
    trace = np.asarray(SPEED_DECI_KMH[:1800], dtype=float) / 10.0  # 1800 s; the last sample is 0
    low, medium, high, extra = (_wltc_phase(p) for p in ("low", "medium", "high", "extra_high"))
    drop = np.zeros(180)
    urban = np.concatenate([low, drop, low, drop, medium, drop])
    urban = np.concatenate([urban, np.zeros(-urban.size % 60)])
    motorway = np.minimum(np.concatenate([high, extra, extra, high]), 110.0)
    motorway = np.concatenate([motorway, np.zeros(-motorway.size % 60)])
    return {
        "urban": DriveCycle("urban", urban),
        "wltc3": DriveCycle("wltc3", trace),
        "highway": DriveCycle("highway", motorway),
    }


CYCLES: tuple[str, ...] = ("urban", "wltc3", "highway")  # the order of the table's first axis


def cycle(name: str) -> DriveCycle:
    return _cycles()[name]


def battery_power_w(spec: VanSpec, drive: DriveCycle, mass_kg: float) -> tuple[FloatArray, FloatArray]:
    """(traction, regen) battery power per second in W, both >= 0, without auxiliaries."""
    v = drive.speed_kmh / 3.6
    a = np.gradient(v)
    force = mass_kg * (spec.rotating_mass_factor * a + GRAVITY * spec.crr * (v > 0)) + 0.5 * (
        spec.air_density_kg_m3 * spec.cda_m2 * v * v
    )
    wheel = force * v
    traction = np.minimum(np.maximum(wheel, 0.0) / spec.drivetrain_efficiency, spec.motor_max_kw * 1e3)
    regen = np.minimum(np.maximum(-wheel, 0.0) * spec.regen_efficiency, spec.regen_max_kw * 1e3)
    regen = np.where(drive.speed_kmh >= spec.regen_min_speed_kmh, regen, 0.0)
    return traction, regen


def energy_per_km(
    spec: VanSpec,
    drive: DriveCycle,
    mass_kg: float,
    *,
    aux_kw: float | None = None,
    regen_fraction: float = 1.0,
) -> float:
    """Battery energy per km (kWh/km) over a cycle, auxiliaries included."""
    traction, regen = battery_power_w(spec, drive, mass_kg)
    aux = spec.aux_base_kw if aux_kw is None else aux_kw
    energy_j = traction.sum() - regen_fraction * regen.sum() + aux * 1e3 * drive.duration_s
    return float(energy_j / 3.6e6 / drive.distance_km)


@dataclasses.dataclass(frozen=True, eq=False)
class CycleTable:
    """Per-window means of every cycle, for a grid of masses: arrays (cycle, window, mass)."""

    window_s: float
    masses_kg: FloatArray
    traction_w: FloatArray
    regen_w: FloatArray
    power_ms_w2: FloatArray  # mean square of (traction - regen) over the window
    regen_peak_w: FloatArray  # the strongest braking second of the window
    distance_km: FloatArray  # (cycle, window)
    n_windows: IntArray  # (cycle,)

    @functools.cached_property
    def _flat(self) -> FloatArray:
        """(cycle * window * mass, 3): traction, regen and mean square, one row per cell."""
        stacked = [self.traction_w, self.regen_w, self.power_ms_w2, self.regen_peak_w]
        return np.stack(stacked, axis=-1).reshape(-1, len(stacked))

    def mass_weights(self, mass_kg: FloatArray) -> tuple[IntArray, FloatArray]:
        """Where each vehicle's mass sits on the table's mass grid: (lower index, weight)."""
        m = np.minimum(np.maximum(mass_kg, self.masses_kg[0]), self.masses_kg[-1])
        j = np.minimum(np.maximum(np.searchsorted(self.masses_kg, m) - 1, 0), self.masses_kg.size - 2)
        return j.astype(np.intp), np.asarray(
            (m - self.masses_kg[j]) / (self.masses_kg[j + 1] - self.masses_kg[j])
        )

    def lookup(
        self, cycle_idx: IntArray, window: IntArray, mass: tuple[IntArray, FloatArray]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """(traction W, regen W, mean-square W², peak regen W, km) per vehicle, at its window and mass."""
        j, weight = mass
        n_w, n_m = self.traction_w.shape[1:]
        flat = (cycle_idx * n_w + window) * n_m + j
        lo = self._flat[flat]
        both = lo + weight[:, None] * (self._flat[flat + 1] - lo)
        return both[:, 0], both[:, 1], both[:, 2], both[:, 3], self.distance_km[cycle_idx, window]


@functools.lru_cache(maxsize=8)
def cycle_table(spec: VanSpec, window_s: float) -> CycleTable:
    """Window every cycle at `window_s` (whole seconds; a cycle's tail is padded with idle)."""
    w = int(window_s)
    if w != window_s or w <= 0:
        raise ValueError("the window must be a whole, positive number of seconds")
    masses = np.array([2600.0, 3000.0, 3500.0, 4250.0])
    drives = [cycle(name) for name in CYCLES]
    n_windows = np.array([-(-d.duration_s // w) for d in drives], dtype=np.intp)
    shape = (len(drives), int(n_windows.max()), masses.size)
    traction, regen, power_ms, peak = (np.zeros(shape) for _ in range(4))
    distance = np.zeros(shape[:2])
    for c, d in enumerate(drives):
        pad = int(n_windows[c]) * w - d.duration_s
        speed = np.concatenate([d.speed_kmh, np.zeros(pad)])
        distance[c, : n_windows[c]] = speed.reshape(-1, w).sum(axis=1) / 3600.0
        for k, m in enumerate(masses):
            tr, rg = battery_power_w(spec, d, float(m))
            tr, rg = np.concatenate([tr, np.zeros(pad)]), np.concatenate([rg, np.zeros(pad)])
            traction[c, : n_windows[c], k] = tr.reshape(-1, w).mean(axis=1)
            regen[c, : n_windows[c], k] = rg.reshape(-1, w).mean(axis=1)
            power_ms[c, : n_windows[c], k] = ((tr - rg) ** 2).reshape(-1, w).mean(axis=1)
            peak[c, : n_windows[c], k] = rg.reshape(-1, w).max(axis=1)
    return CycleTable(float(w), masses, traction, regen, power_ms, peak, distance, n_windows)
