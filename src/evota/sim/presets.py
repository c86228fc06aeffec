"""Calibration presets: the factory set and the releases the demo tells its story with.

* `factory_bms()`, `factory_tms()`, `factory_vcms()`: what vans leave the line with. The
  BMS's OCV table was fitted on an early cell batch (a few mV off the cells now built),
  it applies no temperature compensation and trusts a 30-minute rest at any temperature:
  about 1 % SoC error when warm, 1.5-3 % in the cold (the rest voltage of a cold cell has
  not relaxed after 30 minutes, and its OCV sits a few mV higher).
* `good_soc_improvement()` (bms 2.5.0): the OCV table identified on current cells, the
  mean entropic compensation, and a 2-hour rest before a reset below 10 °C. More accurate
  everywhere, most in the cold; charge limits and balancing as factory.
* `bad_cold_calibration()` (bms 2.5.1-rc): a release in which the low-temperature rows
  went wrong. Its temperature compensation has the wrong sign and size below 6 °C (-25 mV
  at 4 °C, -55 mV at 0 °C, -85 mV at -10 °C, where the truth is a few mV the other
  way), so after a cold rest the BMS over-reads SoC by several points; its charge table
  has a warm row copied into the cold rows (0.6 C at 0 °C and 5 °C instead of 0.15 and
  0.22 C), so DC charging and regen pulses of a cold pack exceed the plating limit:
  plating-risk and SoC-plausibility faults, aborted and derated sessions (slower
  charging). At 10 °C and above it behaves exactly as the factory calibration, so warm
  depots see no difference.
* `balancing_threshold_too_high()` (bms 2.4.1): factory, but balancing only above 60 mV
  and 3.95 V: the spread that self-discharge differences build up is no longer removed.
* `tms_preconditioning()` (tms 1.9.0): departure pre-conditioning from the plug (the
  factory TMS only heats while charging below 0 °C): packs leave the depot at 12 °C.
* `needs_newer_vcms()`: bms 2.6.0 (faster DC charging when warm) and vcms 3.2.0 (which
  requests 150 kW instead of 100 kW). On an older VCMS the BMS calibration is harmless
  but gains nothing; the release's `requires` says so, not the simulator.

The good calibration's table comes from the simulated cell (`evota.sim.cell`): that is
what identifying the current cells would give. The truth is never read from here.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from evota.sim.calibration import (
    Balancing,
    Calibration,
    ChargeLimits,
    SocEstimator,
    ThermalConditioning,
    VehicleControl,
)
from evota.sim.cell import default_cell

__all__ = [
    "bad_cold_calibration",
    "balancing_threshold_too_high",
    "factory_bms",
    "factory_calibrations",
    "factory_tms",
    "factory_vcms",
    "good_soc_improvement",
    "needs_newer_vcms",
    "tms_preconditioning",
]

_SOC21 = tuple(5.0 * i for i in range(21))
# The early batch's OCV table (V): off the current cells by -4 to +5 mV.
# fmt: off
_FACTORY_OCV = (3.000, 3.392, 3.499, 3.551, 3.591, 3.625, 3.653, 3.678, 3.701, 3.726, 3.755,
                3.790, 3.829, 3.866, 3.903, 3.940, 3.978, 4.019, 4.063, 4.113, 4.176)
# fmt: on
_TEMPS = (-30.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 35.0, 45.0, 50.0, 55.0)
_FACTORY_C = (0.0, 0.02, 0.06, 0.10, 0.15, 0.22, 0.33, 0.50, 0.72, 1.00, 1.00, 0.80, 0.30, 0.0)
_COLD_COPY_C = (0.20, 0.40, 0.50, 0.55, 0.60, 0.60, 0.33, 0.50, 0.72, 1.00, 1.00, 0.80, 0.30, 0.0)
_FAST_DC_C = (0.0, 0.02, 0.06, 0.10, 0.15, 0.22, 0.33, 0.52, 0.80, 1.30, 1.30, 0.85, 0.30, 0.0)


def _factory_soc() -> SocEstimator:
    return SocEstimator(
        ocv_soc_pct=_SOC21,
        ocv_v=_FACTORY_OCV,
        temp_comp_c=(-30.0, 45.0),
        temp_comp_mv=(0.0, 0.0),
        capacity_ah=220.0,
        rest_min=30.0,
        cold_rest_min=30.0,
        cold_below_c=10.0,
        second_reset_min=240.0,
        reset_gain=1.0,
        full_charge_reset=True,
    )


def _factory_charge(c_rates: tuple[float, ...] = _FACTORY_C) -> ChargeLimits:
    return ChargeLimits(
        temp_c=_TEMPS,
        max_c_rate=c_rates,
        taper_above_soc_pct=80.0,
        taper_at_full=0.5,
        max_cell_v=4.15,
        fault_derate=0.5,
    )


@functools.cache
def factory_bms() -> Calibration:
    return Calibration(
        ecu_type="bms",
        name="bms-factory",
        version="2.4.0",
        soc=_factory_soc(),
        charge=_factory_charge(),
        balancing=Balancing(threshold_mv=15.0, min_cell_v=3.85),
        notes="as delivered",
    )


@functools.cache
def factory_tms() -> Calibration:
    return Calibration(
        ecu_type="tms",
        name="tms-factory",
        version="1.8.0",
        thermal=ThermalConditioning(
            precondition=False,
            precondition_below_c=5.0,
            precondition_target_c=12.0,
            lead_min=30.0,
            charge_heating=True,
            charge_heat_below_c=0.0,
            charge_heat_target_c=5.0,
            heater_kw=5.0,
            cool_above_c=35.0,
        ),
        notes="as delivered",
    )


@functools.cache
def factory_vcms() -> Calibration:
    return Calibration(
        ecu_type="vcms",
        name="vcms-factory",
        version="3.1.0",
        vehicle=VehicleControl(
            ac_target_soc_pct=90.0,
            dc_target_soc_pct=80.0,
            dc_trigger_soc_pct=50.0,
            dc_max_kw=100.0,
            dc_max_minutes=60.0,
            regen_fraction=1.0,
        ),
        notes="as delivered",
    )


@functools.cache
def tms_preconditioning() -> Calibration:
    """tms 1.9.0: heat a cold pack (below 5 °C) to 12 °C from the plug before departure."""
    base = factory_tms()
    return dataclasses.replace(
        base,
        name="tms-precondition",
        version="1.9.0",
        thermal=dataclasses.replace(base.thermal or _never_thermal(), precondition=True, lead_min=45.0),
        notes="departure pre-conditioning from the grid",
    )


def factory_calibrations() -> dict[str, Calibration]:
    return {"bms": factory_bms(), "tms": factory_tms(), "vcms": factory_vcms()}


@functools.cache
def good_soc_improvement() -> Calibration:
    cell = default_cell()
    soc = np.linspace(0.0, 1.0, 41)
    table = tuple(round(float(v), 4) for v in cell.ocv(soc, np.full_like(soc, 25.0)))
    window = np.linspace(0.2, 0.95, 31)
    mean_dudt_mv = float(np.mean(cell.entropic_v_per_k(window))) * 1e3
    temps = (-30.0, 45.0)
    comp = tuple(round(mean_dudt_mv * (t - 25.0), 3) for t in temps)
    base = factory_bms()
    return dataclasses.replace(
        base,
        name="bms-soc-accuracy",
        version="2.5.0",
        soc=dataclasses.replace(
            _factory_soc(),
            ocv_soc_pct=tuple(float(s * 100) for s in soc),
            ocv_v=table,
            temp_comp_c=temps,
            temp_comp_mv=comp,
            cold_rest_min=120.0,
        ),
        notes="OCV table from current cells, entropic compensation, longer cold rest before OCV reset",
    )


@functools.cache
def bad_cold_calibration() -> Calibration:
    base = factory_bms()
    return dataclasses.replace(
        base,
        name="bms-cold-regression",
        version="2.5.1rc1",
        soc=dataclasses.replace(
            _factory_soc(),
            temp_comp_c=(-30.0, -20.0, -10.0, 0.0, 4.0, 6.0, 45.0),
            temp_comp_mv=(-110.0, -100.0, -85.0, -55.0, -25.0, 0.0, 0.0),
        ),
        charge=_factory_charge(_COLD_COPY_C),
        notes="low-temperature rows regressed: over-compensated OCV, warm charge limits in the cold",
    )


@functools.cache
def balancing_threshold_too_high() -> Calibration:
    return dataclasses.replace(
        factory_bms(),
        name="bms-balancing-lazy",
        version="2.4.1",
        balancing=Balancing(threshold_mv=60.0, min_cell_v=3.95),
        notes="balancing threshold raised to 60 mV",
    )


@functools.cache
def needs_newer_vcms() -> tuple[Calibration, Calibration]:
    """(bms 2.6.0, vcms 3.2.0): the BMS's faster DC table is only used by the newer VCMS."""
    good = good_soc_improvement()
    bms = dataclasses.replace(
        good,
        name="bms-fast-dc",
        version="2.6.0",
        charge=_factory_charge(_FAST_DC_C),
        notes="1.5 C DC charging at 25-35 °C; needs vcms>=3.2 to request it",
    )
    vcms = Calibration(
        ecu_type="vcms",
        name="vcms-fast-dc",
        version="3.2.0",
        vehicle=dataclasses.replace(factory_vcms().vehicle or _never(), dc_max_kw=150.0),
        notes="requests up to 150 kW DC",
    )
    return bms, vcms


def _never_thermal() -> ThermalConditioning:  # pragma: no cover - the factory TMS has its section
    raise RuntimeError("factory TMS calibration has no thermal section")


def _never() -> VehicleControl:  # pragma: no cover - the factory VCMS always has its section
    raise RuntimeError("factory VCMS calibration has no vehicle section")
