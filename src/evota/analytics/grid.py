"""A dense lookup table of a cell model, built once, read at every filter step for every cell.

Why a dense grid: the filters evaluate OCV, its slope and five circuit parameters for each
cell at each step. Interpolating the model's own (irregular, coarse) tables there would cost a
search per cell per step. Resampled once onto uniform axes, a lookup is index arithmetic and
two row gathers, whatever the number of cells: that is what lets one NumPy call serve a fleet.

Axes: SoC from -0.05 to 1.05 in steps of 0.005 (linear in SoC, so OCV is piecewise linear and
its slope piecewise constant, exactly the derivative of what is evaluated); temperature from
-30 to 70 °C in steps of 0.25 °C, read at the nearest row (at most 0.125 °C away, under 0.6 %
in resistance). Between the model's temperatures, resistances and time constants are
interpolated linearly in log(value) against 1/T, which is exact for an Arrhenius law; OCV and
capacity linearly in T (the entropic term is linear in T). Past the model's temperatures the
resistances follow its activation energies, and OCV, capacity and time constants are held.
Past the OCV test's SoC range, OCV is extended along its end slopes, so the inversion stays
monotone where a filter's state may wander (it is clamped to [-0.05, 1.05]).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from evota.analytics.cellmodel import CellModel, arrhenius_factor

__all__ = ["CH_OCV", "CH_R0", "CH_R1", "CH_R2", "CH_TAU1", "CH_TAU2", "ParameterGrid"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

SOC_MIN, SOC_MAX, SOC_STEP = -0.05, 1.05, 0.005
T_MIN, T_MAX, T_STEP = -30.0, 70.0, 0.25
CH_OCV, CH_R0, CH_R1, CH_TAU1, CH_R2, CH_TAU2 = range(6)
_RESISTIVE = ((CH_R0, "r0_ohm", "r0"), (CH_R1, "r1_ohm", "r1"), (CH_R2, "r2_ohm", "r2"))
_TIME_CONSTANTS = ((CH_TAU1, "tau1_s"), (CH_TAU2, "tau2_s"))


def _interp_temperature(
    temps: FloatArray, rows: FloatArray, grid_t: FloatArray, *, log_arrhenius: bool
) -> FloatArray:
    """Rows given at `temps` -> rows at `grid_t` (clamped at the ends; callers extrapolate)."""
    t = np.clip(grid_t, temps[0], temps[-1])
    if log_arrhenius:
        x_in, x_out, y = -1.0 / (temps + 273.15), -1.0 / (t + 273.15), np.log(rows)
    else:
        x_in, x_out, y = temps, t, rows
    out = np.empty((grid_t.size, rows.shape[1]))
    for j in range(rows.shape[1]):
        out[:, j] = np.interp(x_out, x_in, y[:, j])
    return np.exp(out) if log_arrhenius else out


def _interp_soc(soc: FloatArray, rows: FloatArray, grid_z: FloatArray, *, extend: bool) -> FloatArray:
    out = np.empty((rows.shape[0], grid_z.size))
    for i, row in enumerate(rows):
        out[i] = np.interp(grid_z, soc, row)
        if extend:  # continue along the end slopes, keeping the curve strictly monotone
            lo_slope = (row[1] - row[0]) / (soc[1] - soc[0])
            hi_slope = (row[-1] - row[-2]) / (soc[-1] - soc[-2])
            below, above = grid_z < soc[0], grid_z > soc[-1]
            out[i, below] = row[0] + lo_slope * (grid_z[below] - soc[0])
            out[i, above] = row[-1] + hi_slope * (grid_z[above] - soc[-1])
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class ParameterGrid:
    """Flat table plus capacity per temperature row.

    `table` has shape (12, n_temperatures * n_soc): rows 0-5 are the six channels at each
    grid point, rows 6-11 their increment to the next SoC point. One gather of 12 rows per
    lookup then gives value and slope, each channel a contiguous array over the cells.
    """

    table: FloatArray
    capacity_ah: FloatArray
    n_soc: int
    model_error_v: FloatArray  # (n_temperatures * n_soc,): the pulse-fit RMSE, read on output only

    @classmethod
    def from_model(cls, model: CellModel) -> ParameterGrid:
        grid_z = np.round(np.arange(SOC_MIN, SOC_MAX + SOC_STEP / 2, SOC_STEP), 10)
        grid_t = np.arange(T_MIN, T_MAX + T_STEP / 2, T_STEP)
        temps = model.temperature_c
        table = np.empty((grid_t.size, grid_z.size, 6))
        ocv = _interp_soc(model.ocv_soc, model.ocv_v, grid_z, extend=True)
        table[:, :, CH_OCV] = _interp_temperature(temps, ocv, grid_t, log_arrhenius=False)
        for ch, field, key in _RESISTIVE:
            rows = _interp_soc(model.rc.soc, getattr(model.rc, field), grid_z, extend=False)
            at_t = _interp_temperature(temps, rows, grid_t, log_arrhenius=True)
            ea = model.activation_energy_j_mol[key]
            cold, hot = grid_t < temps[0], grid_t > temps[-1]
            at_t[cold] *= arrhenius_factor(ea, grid_t[cold], float(temps[0]))[:, None]
            at_t[hot] *= arrhenius_factor(ea, grid_t[hot], float(temps[-1]))[:, None]
            table[:, :, ch] = at_t
        for ch, field in _TIME_CONSTANTS:
            rows = _interp_soc(model.rc.soc, getattr(model.rc, field), grid_z, extend=False)
            table[:, :, ch] = _interp_temperature(temps, rows, grid_t, log_arrhenius=True)
        capacity = np.interp(grid_t, temps, model.capacity_ah)
        err_rows = _interp_soc(model.rc.soc, model.rc.fit_rmse_v, grid_z, extend=False)
        model_error = _interp_temperature(temps, err_rows, grid_t, log_arrhenius=False).reshape(-1)
        delta = np.zeros_like(table)
        delta[:, :-1] = table[:, 1:] - table[:, :-1]
        flat = np.concatenate([table, delta], axis=2).reshape(-1, 12)
        return cls(
            table=np.ascontiguousarray(flat.T),
            capacity_ah=capacity,
            n_soc=grid_z.size,
            model_error_v=model_error,
        )

    def temperature_row(self, temperature_c: FloatArray) -> IntArray:
        """Nearest temperature row for each cell (clamped to the grid)."""
        pos = (np.asarray(temperature_c, dtype=float) - (T_MIN - T_STEP / 2)) * (1.0 / T_STEP)
        np.clip(pos, 0, self.capacity_ah.size - 1, out=pos)
        return pos.astype(np.intp)

    def lookup(self, soc: FloatArray, t_row: IntArray) -> tuple[FloatArray, FloatArray]:
        """All six channels at (soc, temperature row) per cell, and dOCV/dSoC per cell.

        Returns values of shape (6, n_cells) (one contiguous row per channel) and the OCV
        slope of shape (n_cells,).
        """
        pos = (np.clip(soc, SOC_MIN, SOC_MAX) - SOC_MIN) * (1.0 / SOC_STEP)
        i = pos.astype(np.intp)
        np.minimum(i, self.n_soc - 2, out=i)
        w = pos - i
        i += t_row * self.n_soc
        rows = np.take(self.table, i, axis=1)
        values = rows[:6]
        values += w * rows[6:]
        return values, rows[6 + CH_OCV] * (1.0 / SOC_STEP)

    def model_error(self, soc: FloatArray, t_row: IntArray) -> FloatArray:
        """The model's pulse-fit voltage RMSE at each cell's SoC point and temperature row."""
        pos = (np.clip(soc, SOC_MIN, SOC_MAX) - SOC_MIN) * (1.0 / SOC_STEP)
        out: FloatArray = self.model_error_v[np.rint(pos).astype(np.intp) + t_row * self.n_soc]
        return out

    def ocv_to_soc(self, ocv_v: FloatArray, t_row: IntArray) -> FloatArray:
        """Invert OCV at each cell's temperature (the curve is strictly monotone by construction)."""
        ocv_v = np.asarray(ocv_v, dtype=float)
        out = np.empty(ocv_v.shape)
        grid_z = SOC_MIN + SOC_STEP * np.arange(self.n_soc)
        for row in np.unique(t_row):
            sel = t_row == row
            curve = self.table[CH_OCV, row * self.n_soc : (row + 1) * self.n_soc]
            out[sel] = np.interp(ocv_v[sel], curve, grid_z)
        return out
