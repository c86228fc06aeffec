"""A test bench: one BMS calibration charging packs in a climate chamber.

It uses the fleet's own pieces (the pack, the cell's evaluation, the BMS's compiled
limits, `charging.allowed_current`, the thermal step), so what it shows is what a van in
the fleet would do at that temperature, without duty, weather or TMS: the chamber holds
its temperature, the pack starts soaked at it and nothing heats it but its own losses.
That isolates one question, e.g. how much slower DC charging is in the cold without
pre-conditioning, or whether a charge table stays below the plating limit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evota.sim.bms import CalibrationRows
from evota.sim.calibration import Calibration
from evota.sim.charging import allowed_current
from evota.sim.pack import PackSpec, PackState
from evota.sim.thermal import ThermalSpec, thermal_step

__all__ = ["BenchResult", "dc_charge"]


@dataclasses.dataclass(frozen=True)
class BenchResult:
    minutes: float
    energy_kwh: float  # into the pack terminals, mean over the packs
    start_soc: float
    end_soc: float
    max_temp_c: float
    plated_ah: float  # charge passed above the plating limit, mean over the packs

    @property
    def mean_kw(self) -> float:
        return self.energy_kwh / (self.minutes / 60.0)


def dc_charge(
    calibration: Calibration,
    *,
    temperature_c: float,
    soc: float = 0.2,
    minutes: float = 30.0,
    charger_kw: float = 100.0,
    packs: int = 4,
    seed: int = 0,
    step_s: float = 60.0,
    pack_spec: PackSpec | None = None,
    thermal: ThermalSpec | None = None,
) -> BenchResult:
    """Charge `packs` new packs at `charger_kw` for `minutes` in a chamber at `temperature_c`."""
    spec, th = pack_spec or PackSpec(), thermal or ThermalSpec()
    rng = np.random.default_rng(seed)
    pack = PackState(spec, packs, rng, soc=np.full(packs, soc), age_days=np.zeros(packs))
    rows = CalibrationRows("bms")
    idx = np.full(packs, rows.row(calibration), dtype=np.intp)
    bms = rows.per_vehicle(idx)
    temp = np.full(packs, temperature_c)
    chamber = np.full(packs, temperature_c)
    energy = np.zeros(packs)
    plated = np.zeros(packs)
    hottest = temp.copy()
    for _ in range(round(minutes * 60.0 / step_s)):
        ev = spec.cell.evaluate(pack.soc_mean, temp)
        resp = pack.step_response(ev, step_s)
        command, _ = allowed_current(
            pack,
            ev,
            resp,
            bms,
            c_rate=rows.c_rate(idx, temp),
            soc_bms=pack.soc_mean,
            derate=np.ones(packs),
            supply_w=np.full(packs, charger_kw * 1e3),
        )
        current = -command
        safe = spec.cell.plating_c_rate(pack.soc_mean + pack.dev_hi, temp)
        plated += np.maximum(command / pack.capacity_ah - safe, 0.0) * pack.capacity_ah * step_s / 3600.0
        pack.rc_step(ev, resp, current)
        eta = pack.overpotential(ev, current)
        energy += command * spec.n_series * (ev.ocv - eta) * step_s / 3.6e6
        heat = spec.n_series * pack.r_age * ((ev.r0 + ev.r1) * current**2 + pack.v2**2 / ev.r2)
        pack.pass_charge(current, step_s)
        temp = thermal_step(th, temp, chamber, heat, np.full(packs, th.ha_charging_w_k), step_s)
        hottest = np.maximum(hottest, temp + th.hotspot_k_per_w * heat)
    return BenchResult(
        minutes=minutes,
        energy_kwh=float(energy.mean()),
        start_soc=soc,
        end_soc=float(pack.soc_mean.mean()),
        max_temp_c=float(hottest.max()),
        plated_ah=float(plated.mean()),
    )
