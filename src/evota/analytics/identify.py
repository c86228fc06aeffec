"""Identify a 2RC cell model from characterization tests: OCV, then pulses, per temperature.

Input is one record per (test, temperature): "ocv" is a slow (about C/20) discharge from full,
a rest, and a slow charge back; "hppc" starts full and rested, and alternates pulse groups with
SoC steps followed by long rests. Both must start fully charged and rested, because SoC is
defined from there: SoC = 1 - (Ah discharged) / Q_T, with Q_T the capacity the slow discharge
delivers at that temperature. The same definition is used by the fixtures' truth, so the
model and the truth cannot disagree about what 50 % means (the trap of PyBaMM issue #2866).

OCV: the mean of the slow discharge and charge curves on a common SoC grid, which cancels
the symmetric (ohmic and kinetic) part of the overpotential. Where only one curve reaches (a
cold charge stops early at the voltage limit), that curve is shifted by half the gap at the
nearest SoC where both exist. The result is forced strictly increasing.

Pulses: each segment from the end of one long rest to the end of the next is fitted alone,
with constant R0, R1, tau1, R2, tau2 and a free initial slow-RC voltage (a 1 h rest does not
relax the slowest diffusion), by `scipy.optimize.least_squares` on log-parameters. The RC
states are simulated on a uniform 1 s grid with `scipy.signal.lfilter`, which is exact for a
current held between grid points. Parameters are assigned to the segment's mid SoC.
Temperature dependence: the tables are per temperature, and an Arrhenius activation energy
is fitted to each resistance across temperatures for extrapolation (see `cellmodel`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import least_squares
from scipy.signal import lfilter

from evota.analytics.cellmodel import CellModel, RcTable, fit_activation_energy
from evota.errors import InputError

__all__ = ["CharRecord", "fit_cell_model", "fit_ocv", "fit_pulse_segment", "rest_runs"]

FloatArray = NDArray[np.float64]

OCV_GRID = np.round(np.linspace(0.0, 1.0, 201), 6)
LONG_REST_S = 1200.0  # a rest this long separates pulse segments
REST_CURRENT_C = 0.002  # |I| below this C-rate counts as rest
LEAD_IN_S = 30.0  # seconds of the preceding rest kept at the start of a segment


@dataclasses.dataclass(frozen=True, eq=False)
class CharRecord:
    """One characterization test at one temperature (current > 0 discharges)."""

    time_s: FloatArray
    current_a: FloatArray
    voltage_v: FloatArray

    def discharged_ah(self) -> FloatArray:
        """Cumulative Ah by the trapezoid rule (exact for currents linear between samples)."""
        inc = 0.5 * (self.current_a[1:] + self.current_a[:-1]) * np.diff(self.time_s)
        return np.concatenate([[0.0], np.cumsum(inc)]) / 3600.0


def _monotone(v: FloatArray, min_step: float = 1e-5) -> FloatArray:
    """Strictly increasing: each point at least `min_step` above the one before (plateaus)."""
    out = v.copy()
    for k in range(1, out.size):
        out[k] = max(out[k], out[k - 1] + min_step)
    return out


def fit_ocv(test: CharRecord) -> tuple[FloatArray, float]:
    """OCV on OCV_GRID from a slow discharge/charge test; returns (ocv_v, capacity_ah)."""
    ah = test.discharged_ah()
    end = int(np.argmax(ah))
    q = float(ah[end])
    if q <= 0 or end == 0:
        raise InputError("ocv test: no discharge found (it must start full and discharge first)")
    i_dis = np.median(test.current_a[:end][test.current_a[:end] > 0])
    dis = np.flatnonzero(test.current_a[: end + 1] > 0.5 * i_dis)
    chg = end + np.flatnonzero(test.current_a[end:] < -0.5 * i_dis)
    if chg.size < 10:
        raise InputError(
            "ocv test: no slow charge after the discharge; both are needed to cancel overpotential"
        )
    soc = 1.0 - ah / q
    # np.interp needs increasing x: discharge SoC falls with time, charge SoC rises.
    z_d, v_d = soc[dis][::-1], test.voltage_v[dis][::-1]
    z_c, v_c = soc[chg], test.voltage_v[chg]
    both = (max(z_d[0], z_c[0]) <= OCV_GRID) & (min(z_d[-1], z_c[-1]) >= OCV_GRID)
    if both.sum() < 20:
        raise InputError("ocv test: the discharge and charge curves overlap on too little SoC")
    dis_v = np.interp(OCV_GRID, z_d, v_d)
    chg_v = np.interp(OCV_GRID, z_c, v_c)
    gap = np.where(both, chg_v - dis_v, np.nan)
    lo, hi = np.flatnonzero(both)[[0, -1]]
    gap[:lo], gap[hi + 1 :] = gap[lo], gap[hi]
    inside_d = (z_d[0] <= OCV_GRID) & (z_d[-1] >= OCV_GRID)
    ocv = np.where(both, 0.5 * (dis_v + chg_v), np.where(inside_d, dis_v + 0.5 * gap, chg_v - 0.5 * gap))
    return _monotone(ocv), q


def rest_runs(test: CharRecord, capacity_ah: float, min_s: float) -> list[tuple[int, int]]:
    """(first, last) sample indices of rests lasting at least `min_s` seconds."""
    rest = np.abs(test.current_a) < REST_CURRENT_C * capacity_ah
    edges = np.flatnonzero(np.diff(np.concatenate([[0], rest.astype(np.int8), [0]])))
    runs = []
    for a, b in zip(edges[::2], edges[1::2] - 1, strict=True):
        if test.time_s[b] - test.time_s[a] >= min_s:
            runs.append((int(a), int(b)))
    return runs


def _rc_response(current: FloatArray, r: float, tau: float, dt: float, v0: float) -> FloatArray:
    a = np.exp(-dt / tau)
    out: FloatArray = lfilter([r * (1.0 - a)], [1.0, -a], current, zi=[a * v0])[0]
    return out


def fit_pulse_segment(
    time_s: FloatArray, current_a: FloatArray, voltage_v: FloatArray, ocv_v: FloatArray
) -> tuple[FloatArray, float]:
    """Fit [R0, R1, tau1, R2, tau2] to one segment; returns them and the voltage RMSE (V).

    `ocv_v` is the OCV at each sample's SoC (from the OCV test and coulomb counting).
    """
    t = time_s - time_s[0]
    grid = np.arange(0.0, t[-1] + 1.0, 1.0)
    # Current over each 1 s interval, held (the tester's samples are the step ends).
    i_grid = np.interp(grid, t, current_a)
    overpotential = ocv_v - voltage_v  # = R0 i + v1 + v2

    def model(theta: FloatArray) -> FloatArray:
        r0, r1, tau1, r2, tau2 = np.exp(theta[:5])
        v_rc = _rc_response(i_grid, r1, tau1, 1.0, 0.0) + _rc_response(i_grid, r2, tau2, 1.0, theta[5])
        out: FloatArray = r0 * current_a + np.interp(t, grid, v_rc)
        return out

    step = np.flatnonzero(np.abs(np.diff(current_a)) > 0.1 * np.abs(current_a).max())
    k = int(step[0]) if step.size else 0
    di = current_a[k + 1] - current_a[k] if step.size else 1.0
    r0_guess = max(1e-4, float((overpotential[k + 1] - overpotential[k]) / di)) if step.size else 0.01
    x0 = np.array([np.log(r0_guess), np.log(r0_guess / 2), np.log(5.0), np.log(r0_guess), np.log(300.0), 0.0])
    lower = np.array([np.log(1e-5), np.log(1e-6), np.log(0.5), np.log(1e-6), np.log(30.0), -0.2])
    upper = np.array([np.log(1.0), np.log(1.0), np.log(60.0), np.log(1.0), np.log(5000.0), 0.2])

    def residual(theta: FloatArray) -> FloatArray:
        return model(theta) - overpotential

    fit = least_squares(residual, x0, bounds=(lower, upper), x_scale="jac")
    rmse = float(np.sqrt(np.mean(fit.fun**2)))
    return np.exp(fit.x[:5]), rmse


def _fit_temperature(
    ocv_test: CharRecord, hppc: CharRecord
) -> tuple[FloatArray, float, dict[str, FloatArray]]:
    ocv, q = fit_ocv(ocv_test)
    soc = 1.0 - hppc.discharged_ah() / q
    rests = rest_runs(hppc, q, LONG_REST_S)
    if len(rests) < 3:
        raise InputError("hppc test: fewer than two pulse segments between long rests were found")
    mids, params, errors = [], [], []
    for (_, prev_end), (_, end) in itertools.pairwise(rests):
        start = int(np.searchsorted(hppc.time_s, hppc.time_s[prev_end] - LEAD_IN_S))
        sl = slice(start, end + 1)
        z = soc[sl]
        theta, rmse = fit_pulse_segment(
            hppc.time_s[sl], hppc.current_a[sl], hppc.voltage_v[sl], np.interp(z, OCV_GRID, ocv)
        )
        mids.append(0.5 * (z.max() + z.min()))
        params.append(theta)
        errors.append(rmse)
    order = np.argsort(mids)
    # Evidence for the OCV table's own error: the voltage at the end of each long rest against
    # the table, over 10-100 % SoC (below 10 % a 1 h rest is far from relaxed).
    ends = np.array([b for _, b in rests])
    ends = ends[soc[ends] >= 0.1]
    rest_err = hppc.voltage_v[ends] - np.interp(soc[ends], OCV_GRID, ocv)
    return (
        ocv,
        q,
        {
            "soc": np.asarray(mids)[order],
            "params": np.asarray(params)[order],
            "rmse_v": np.asarray(errors)[order],
            "rest_rmse_v": np.array([np.sqrt(np.mean(rest_err**2))]),
        },
    )


def fit_cell_model(
    tests: Mapping[tuple[str, float], CharRecord],
    *,
    name: str,
    voltage_limits_v: tuple[float, float],
) -> CellModel:
    """Fit the model from {("ocv"|"hppc", temperature_c): record}; both tests at each temperature."""
    temps = sorted({t for _, t in tests})
    missing = [f"{kind} at {t:g} °C" for t in temps for kind in ("ocv", "hppc") if (kind, t) not in tests]
    if missing:
        raise InputError("characterization incomplete: missing " + ", ".join(missing))
    if not temps:
        raise InputError("characterization has no tests")
    fits = [_fit_temperature(tests[("ocv", t)], tests[("hppc", t)]) for t in temps]
    # One SoC axis for the pulse tables: the mean of each temperature's segment mid points
    # (they differ by the capacity's small change with temperature).
    n_seg = min(f[2]["soc"].size for f in fits)
    rc_soc = np.mean([f[2]["soc"][-n_seg:] for f in fits], axis=0)
    tables = np.stack([f[2]["params"][-n_seg:] for f in fits])  # (n_t, n_seg, 5)
    rc = RcTable(
        soc=rc_soc,
        r0_ohm=tables[:, :, 0],
        r1_ohm=tables[:, :, 1],
        tau1_s=tables[:, :, 2],
        r2_ohm=tables[:, :, 3],
        tau2_s=tables[:, :, 4],
        fit_rmse_v=np.stack([f[2]["rmse_v"][-n_seg:] for f in fits]),
    )
    t_arr = np.asarray(temps, dtype=float)
    return CellModel(
        name=name,
        temperature_c=t_arr,
        capacity_ah=np.asarray([f[1] for f in fits]),
        ocv_soc=OCV_GRID.copy(),
        ocv_v=np.stack([f[0] for f in fits]),
        rc=rc,
        activation_energy_j_mol={
            "r0": fit_activation_energy(t_arr, rc.r0_ohm),
            "r1": fit_activation_energy(t_arr, rc.r1_ohm),
            "r2": fit_activation_energy(t_arr, rc.r2_ohm),
        },
        voltage_min_v=voltage_limits_v[0],
        voltage_max_v=voltage_limits_v[1],
        fit_report={
            "pulse_rmse_mv": {
                f"{t:g}": round(float(f[2]["rmse_v"].mean()) * 1000, 3)
                for t, f in zip(temps, fits, strict=True)
            },
            "ocv_rest_rmse_mv": {
                f"{t:g}": round(float(f[2]["rest_rmse_v"][0]) * 1000, 3)
                for t, f in zip(temps, fits, strict=True)
            },
            "segments_per_temperature": int(n_seg),
        },
    )
