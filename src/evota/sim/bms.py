"""Calibrations compiled for a fleet, and the BMS's SoC estimator batched over vehicles.

A fleet runs a handful of distinct calibrations per ECU type. Each distinct one becomes
a row of arrays on common grids (temperature every 1 °C from -40 to 60 °C, cell voltage
every 1 mV), and each vehicle holds a row index per ECU type; a step then gathers every
vehicle's limits with fancy indexing, without a Python loop over vehicles or over
calibrations. Changing a vehicle's firmware is changing one index.

The estimator is what a production BMS does, with what it believes (never the truth):

* Coulomb counting with its believed capacity (the calibration's, times its own SoH
  estimate), through a current sensor with a per-vehicle gain error (sigma 0.5 %) and
  offset (sigma 0.15 A), counting only while awake (HV on).
* An OCV reset when a rest has lasted the calibration's rest time (a longer one below
  its cold threshold), and a second one if the rest reaches its second-reset time: it
  reads the mean cell voltage (1 mV noise and a per-vehicle bias of sigma 1.5 mV),
  subtracts its temperature compensation, inverts its OCV table, and moves its SoC by
  `reset_gain` of the difference. A jump of more than 5 points raises the
  SoC-plausibility fault.
* A reset to 100 % when a charge ends at the voltage limit (if the calibration says so).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from evota.sim.calibration import Calibration

__all__ = ["T_GRID", "V_GRID", "CalibrationRows", "SocCounter"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

T_GRID = np.arange(-40.0, 61.0, 1.0)
V_GRID = np.linspace(2.5, 4.5, 2001)


def _on_grid(table: FloatArray, grid: FloatArray, rows: IntArray, x: FloatArray) -> FloatArray:
    """Each vehicle's row of `table`, linearly interpolated at x (held past the grid)."""
    step = grid[1] - grid[0]
    pos = np.minimum(np.maximum((np.asarray(x) - grid[0]) / step, 0.0), grid.size - 1.000001)
    i = pos.astype(np.intp)
    flat = table.ravel()
    at = rows * table.shape[1] + i  # flat indices: cheaper than indexing two axes
    lo = flat[at]
    return np.asarray(lo + (pos - i) * (flat[at + 1] - lo))


class CalibrationRows:
    """The distinct calibrations of one ECU type, compiled; `row(cal)` adds one if new."""

    def __init__(self, ecu_type: str) -> None:
        self.ecu_type = ecu_type
        self.calibrations: list[Calibration] = []
        self._index: dict[Calibration, int] = {}
        self.scalar: dict[str, FloatArray] = {}
        self.table: dict[str, FloatArray] = {}

    def row(self, cal: Calibration) -> int:
        if cal.ecu_type != self.ecu_type:
            raise ValueError(f"a {cal.ecu_type} calibration cannot go on the {self.ecu_type}")
        if cal not in self._index:
            self._index[cal] = len(self.calibrations)
            self.calibrations.append(cal)
            self._append(self._compile(cal))
        return self._index[cal]

    def _append(self, compiled: tuple[dict[str, float], dict[str, FloatArray]]) -> None:
        scalars, tables = compiled
        for k, v in scalars.items():
            self.scalar[k] = np.append(self.scalar.get(k, np.empty(0)), v)
        for k, t in tables.items():
            old = self.table.get(k)
            self.table[k] = t[None, :] if old is None else np.vstack([old, t[None, :]])

    @staticmethod
    def _compile(cal: Calibration) -> tuple[dict[str, float], dict[str, FloatArray]]:
        if cal.soc is not None and cal.charge is not None and cal.balancing is not None:
            soc, ch, bal = cal.soc, cal.charge, cal.balancing
            believed = np.interp(V_GRID, np.asarray(soc.ocv_v), np.asarray(soc.ocv_soc_pct) / 100.0)
            return (
                {
                    "capacity_ah": soc.capacity_ah,
                    "rest_s": soc.rest_min * 60.0,
                    "cold_rest_s": soc.cold_rest_min * 60.0,
                    "cold_below_c": soc.cold_below_c,
                    "second_reset_s": soc.second_reset_min * 60.0,
                    "reset_gain": soc.reset_gain,
                    "full_reset": float(soc.full_charge_reset),
                    "taper_above": ch.taper_above_soc_pct / 100.0,
                    "taper_full": ch.taper_at_full,
                    "max_cell_v": ch.max_cell_v,
                    "fault_derate": ch.fault_derate,
                    "balance_v": bal.threshold_mv / 1000.0,
                    "balance_min_v": bal.min_cell_v,
                },
                {
                    "soc_of_v": np.clip(believed, 0.0, 1.0),
                    "comp_v": np.interp(T_GRID, soc.temp_comp_c, soc.temp_comp_mv) / 1000.0,
                    "c_rate": np.interp(T_GRID, ch.temp_c, ch.max_c_rate),
                },
            )
        if cal.thermal is not None:
            th = cal.thermal
            return (
                {
                    "precondition": float(th.precondition),
                    "pre_below_c": th.precondition_below_c,
                    "pre_target_c": th.precondition_target_c,
                    "lead_s": th.lead_min * 60.0,
                    "charge_heating": float(th.charge_heating),
                    "heat_below_c": th.charge_heat_below_c,
                    "heat_target_c": th.charge_heat_target_c,
                    "heater_w": th.heater_kw * 1000.0,
                    "cool_above_c": th.cool_above_c,
                },
                {},
            )
        if cal.vehicle is not None:
            ve = cal.vehicle
            return (
                {
                    "ac_target": ve.ac_target_soc_pct / 100.0,
                    "dc_target": ve.dc_target_soc_pct / 100.0,
                    "dc_trigger": ve.dc_trigger_soc_pct / 100.0,
                    "dc_max_w": ve.dc_max_kw * 1000.0,
                    "dc_max_s": ve.dc_max_minutes * 60.0,
                    "regen_fraction": ve.regen_fraction,
                },
                {},
            )
        raise ValueError(f"calibration {cal.name!r} has no section this simulator reads")  # pragma: no cover

    def per_vehicle(self, rows: IntArray) -> dict[str, FloatArray]:
        """Every scalar setting gathered per vehicle: name -> (n,)."""
        return {k: v[rows] for k, v in self.scalar.items()}

    def c_rate(self, rows: IntArray, temperature_c: FloatArray) -> FloatArray:
        return _on_grid(self.table["c_rate"], T_GRID, rows, temperature_c)

    def believed_soc(self, rows: IntArray, voltage_v: FloatArray, temperature_c: FloatArray) -> FloatArray:
        corrected = voltage_v - _on_grid(self.table["comp_v"], T_GRID, rows, temperature_c)
        return _on_grid(self.table["soc_of_v"], V_GRID, rows, corrected)


class SocCounter:
    """The BMS's state per vehicle: its SoC and SoH estimates and its sensors' errors."""

    def __init__(self, rng: np.random.Generator, soc: FloatArray, soh: FloatArray) -> None:
        n = soc.shape[0]
        self.soc = soc.copy()
        self.soh = soh.copy()
        self.gain_error = 0.005 * rng.standard_normal(n)
        self.offset_a = 0.15 * rng.standard_normal(n)
        self.voltage_bias_v = 0.0015 * rng.standard_normal(n)
        self.rest_s = np.zeros(n)
        self.resets_in_rest = np.zeros(n, dtype=np.int8)  # OCV resets in the current rest

    def count(self, current_a: FloatArray, awake: BoolArray, capacity_ah: FloatArray, dt_s: float) -> None:
        measured = current_a * (1.0 + self.gain_error) + self.offset_a
        self.soc = self.soc - np.where(awake, measured, 0.0) * dt_s / 3600.0 / (capacity_ah * self.soh)

    def reset(self, due: BoolArray, estimate: FloatArray, gain: FloatArray) -> FloatArray:
        """Apply an OCV reset where due; returns the jump (0 elsewhere)."""
        jump = np.where(due, gain * (estimate - self.soc), 0.0)
        self.soc = self.soc + jump
        self.resets_in_rest += due
        return np.asarray(jump)
