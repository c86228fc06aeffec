"""State of health: capacity from a partial charge curve, resistance growth from a pulse, dQ/dV.

Capacity. A constant-current charge that crosses part of the voltage range is enough: the
charge (Ah) taken between fixed voltage levels shrinks as the cell loses lithium and active
material, and it does not depend on where the charge started. The curve is first corrected
for the ohmic drop, V + I R with R the 1 s pulse resistance of the same check-up: SEI growth
raises the resistance too, and without the correction the levels would measure the rising
drop as much as the lost charge (leave-one-cell-out MAE 1.05 % uncorrected, 0.21 %
corrected, on the fixtures). `charge_features` returns the increments between the levels and
the incremental-capacity peak. The levels are chosen at training, evenly over the voltage
range that every training charge covers (coverage only, never the labels), and kept in the
model. A Gaussian process (`gp`) maps the features to the C/20 capacity, trained on labelled
check-ups (the PyBaMM ageing set), and reports a standard deviation with each estimate.

Cell-to-cell differences make a new cell's error systematic, which the GP's white noise
(fitted within the training cells) understates. When the training cells are named
(`groups`), `train` refits leaving each cell out in turn and scales the std so the
held-out errors are one std on average (`std_scale`, never below 1).

The features are only comparable at the charge rate and temperature the model was trained
at (voltage under current moves with both), so `estimate_capacity` refuses a charge whose
rate is more than `RATE_TOLERANCE` off, or whose temperature is more than `TEMP_TOLERANCE_C`
off, instead of answering wrongly.

Incremental capacity. dQ/dV on a uniform voltage grid, after resampling the curve on a
uniform charge grid and smoothing it with a Savitzky-Golay filter (fixed window and order):
differentiation amplifies noise, so the smoothing and the grid are fixed, not tuned per file.

Resistance. `pulse_resistance` finds the first step from rest into a discharge and returns
dV/dI at 1 s and at 10 s, with the rest voltage averaged over the seconds before the step. A
growth ratio is of R_1s (the nearest to R0 at 1 s sampling) against the fresh cell's at the
reference temperature; `temperature_factor` applies the Arrhenius correction with the cell
model's R0 activation energy. On the fresh ORegan2022 cell this refers R_1s at 0, 10 and 40 °C
to within -8, -3 and +3 % of its 25 °C value; R_10s, which holds diffusion with a lower
activation energy, is over-corrected by up to 19 %, so growth is not computed on it.

No I/O here: the CLI reads files and hands over arrays.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import savgol_filter

from evota.analytics.cellmodel import GAS_CONSTANT
from evota.analytics.gp import GaussianProcess
from evota.errors import InputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CapacityEstimate",
    "CapacityModel",
    "ChargeCurve",
    "PulseResistance",
    "charge_features",
    "covered_levels",
    "incremental_capacity",
    "pulse_resistance",
    "temperature_factor",
]

FloatArray = NDArray[np.float64]
FORMAT = "evota.soh-model"
FORMAT_VERSION = 1
N_LEVELS = 5
LEVEL_MARGIN_V = 0.01
RATE_TOLERANCE = 0.15
TEMP_TOLERANCE_C = 3.0
DQ_GRID_AH = 0.005  # resampling step of the charge axis
SAVGOL_WINDOW, SAVGOL_ORDER = 41, 3  # on the DQ_GRID_AH grid: +-0.1 Ah
IC_GRID_V = 0.002
IC_SMOOTH_V = 0.010  # Gaussian smoothing of dQ/dV (1 sigma, volts)


@dataclasses.dataclass(frozen=True, eq=False)
class ChargeCurve:
    """One constant-current charge segment (current < 0: evota counts discharge positive), and
    the cell's ohmic resistance near it (the 1 s pulse resistance), for the IR correction."""

    time_s: FloatArray
    current_a: FloatArray
    voltage_v: FloatArray
    resistance_ohm: float
    temperature_c: float = 25.0

    def corrected_voltage(self) -> FloatArray:
        """V + I R: the curve with the ohmic drop of the charge current removed."""
        out: FloatArray = self.voltage_v + self.current_a * self.resistance_ohm
        return out

    def charged_ah(self) -> FloatArray:
        inc = -0.5 * (self.current_a[1:] + self.current_a[:-1]) * np.diff(self.time_s)
        return np.concatenate([[0.0], np.cumsum(inc)]) / 3600.0

    def c_rate(self, capacity_ah: float) -> float:
        return float(-np.median(self.current_a)) / capacity_ah


def _check_charge(curve: ChargeCurve) -> None:
    n = curve.time_s.size
    if n < 20 or curve.current_a.shape != (n,) or curve.voltage_v.shape != (n,):
        raise InputError("charge curve: need at least 20 samples of time, current and voltage")
    for name, arr in (
        ("time_s", curve.time_s),
        ("current_a", curve.current_a),
        ("voltage_v", curve.voltage_v),
    ):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"charge curve: {name} has NaN or inf")
    if np.any(np.diff(curve.time_s) <= 0):
        raise InputError("charge curve: time_s must increase strictly")
    med = float(np.median(curve.current_a))
    if med > 0:
        raise InputError(
            "charge curve: the current is positive, which evota reads as discharge; "
            "a charge is negative (pass --current-sign charge-positive if the log counts charge as positive)"
        )
    spread = float(np.max(np.abs(curve.current_a - med))) / abs(med) if med else math.inf
    if spread > 0.05:
        raise InputError(
            f"charge curve: the current varies by {spread:.0%} of its median; "
            "capacity features need a constant-current charge segment"
        )
    if float(np.median(curve.voltage_v)) > 100:
        raise InputError("charge curve: voltage_v looks like millivolts; evota reads volts per cell")
    if not (math.isfinite(curve.resistance_ohm) and 0 <= curve.resistance_ohm < 1.0):
        raise InputError(f"charge curve: resistance {curve.resistance_ohm!r} ohm is not a cell's (0..1 ohm)")


def _voltage_of_charge(curve: ChargeCurve) -> tuple[FloatArray, FloatArray]:
    """(q, V) on a uniform charge grid, smoothed and made non-decreasing."""
    q = curve.charged_ah()
    grid = np.arange(0.0, q[-1], DQ_GRID_AH)
    v = np.interp(grid, q, curve.corrected_voltage())
    if grid.size > SAVGOL_WINDOW:
        v = savgol_filter(v, SAVGOL_WINDOW, SAVGOL_ORDER, mode="interp")
    return grid, np.maximum.accumulate(v)


def _charge_at(levels: Sequence[float], q: FloatArray, v: FloatArray) -> FloatArray:
    """Charge (Ah from the segment's start) where the smoothed voltage first reaches each level."""
    out = np.empty(len(levels))
    for k, level in enumerate(levels):
        j = int(np.searchsorted(v, level))
        if j == 0 or j >= v.size:
            raise InputError(
                f"charge curve covers {v[0]:.3f}-{v[-1]:.3f} V; the capacity model needs "
                f"{levels[0]:.3f}-{levels[-1]:.3f} V (a charge across about 30-80 % SoC)"
            )
        v0, v1 = v[j - 1], v[j]
        frac = 0.0 if v1 == v0 else (level - v0) / (v1 - v0)
        out[k] = q[j - 1] + frac * (q[j] - q[j - 1])
    return out


def incremental_capacity(curve: ChargeCurve) -> tuple[FloatArray, FloatArray]:
    """dQ/dV (Ah/V) on a uniform voltage grid over the curve's range."""
    _check_charge(curve)
    q, v = _voltage_of_charge(curve)
    vg = np.arange(math.ceil(v[0] / IC_GRID_V) * IC_GRID_V, v[-1], IC_GRID_V)
    strict = v + np.arange(v.size) * 1e-9  # break ties of the non-decreasing curve
    qv = np.interp(vg, strict, q)
    dqdv = np.gradient(qv, IC_GRID_V)
    half = round(3 * IC_SMOOTH_V / IC_GRID_V)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * IC_GRID_V / IC_SMOOTH_V) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(dqdv, half, mode="edge")
    return vg, np.convolve(padded, kernel, mode="valid")


def covered_levels(curves: Sequence[ChargeCurve], n: int = N_LEVELS) -> tuple[float, ...]:
    """n levels evenly over the corrected-voltage range that every curve covers."""
    ranges = []
    for c in curves:
        _check_charge(c)
        _, v = _voltage_of_charge(c)
        ranges.append((float(v[0]), float(v[-1])))
    lo = max(r[0] for r in ranges) + LEVEL_MARGIN_V
    hi = min(r[1] for r in ranges) - LEVEL_MARGIN_V
    if hi - lo < 0.1:
        raise InputError(
            f"the training charges share only {lo:.3f}-{hi:.3f} V: too little for capacity features"
        )
    return tuple(round(float(x), 4) for x in np.linspace(lo, hi, n))


def charge_features(curve: ChargeCurve, levels: Sequence[float]) -> FloatArray:
    """[Ah between consecutive levels..., IC peak voltage, IC peak height] of one charge."""
    _check_charge(curve)
    q, v = _voltage_of_charge(curve)
    increments = np.diff(_charge_at(levels, q, v))
    vg, ic = incremental_capacity(curve)
    inside = (vg >= levels[0]) & (vg <= levels[-1])
    k = int(np.argmax(np.where(inside, ic, -np.inf)))
    return np.concatenate([increments, [vg[k], ic[k]]])


@dataclasses.dataclass(frozen=True)
class CapacityEstimate:
    capacity_ah: float
    std_ah: float
    soh: float
    soh_std: float


@dataclasses.dataclass(frozen=True, eq=False)
class CapacityModel:
    """A trained capacity estimator: features of a C-rate/temperature-matched charge -> Ah.

    `reference_capacity_ah` is what SoH = 1 means (the fresh cell's C/20 capacity);
    `reference_r_1s_ohm` the fresh cell's 1 s pulse resistance at `temperature_c`, which
    resistance growth is a ratio against (None if the training had no pulses).
    """

    gp: GaussianProcess
    levels: tuple[float, ...]
    c_rate: float
    temperature_c: float
    reference_capacity_ah: float
    reference_r_1s_ohm: float | None = None
    std_scale: float = 1.0

    @classmethod
    def train(
        cls,
        curves: Sequence[ChargeCurve],
        capacities_ah: Sequence[float],
        *,
        reference_capacity_ah: float,
        reference_r_1s_ohm: float | None = None,
        levels: Sequence[float] | None = None,
        groups: Sequence[str] | None = None,
    ) -> CapacityModel:
        """Fit the GP; with `groups` (a cell name per curve, 3 cells or more) calibrate its std
        by leaving each cell out (see the module docstring)."""
        if len(curves) != len(capacities_ah) or len(curves) < 5:
            raise InputError("capacity model: need at least 5 labelled charge curves, one capacity each")
        lv = tuple(float(v) for v in levels) if levels is not None else covered_levels(curves)
        x = np.stack([charge_features(c, lv) for c in curves])
        y = np.asarray(capacities_ah, dtype=float)
        rate = float(np.median([c.c_rate(reference_capacity_ah) for c in curves]))
        temp = float(np.median([c.temperature_c for c in curves]))
        scale = 1.0
        if groups is not None:
            if len(groups) != len(curves):
                raise ValueError("one group name per curve")
            g = np.asarray(groups)
            names = sorted(set(g.tolist()))
            if len(names) >= 3:
                z2: list[float] = []
                for name in names:
                    out = g == name
                    mean, std = GaussianProcess.fit(x[~out], y[~out]).predict(x[out])
                    z2.extend((((mean - y[out]) / std) ** 2).tolist())
                scale = max(1.0, math.sqrt(float(np.mean(z2))))
        gp = GaussianProcess.fit(x, y)
        return cls(gp, lv, rate, temp, reference_capacity_ah, reference_r_1s_ohm, scale)

    def estimate(self, curve: ChargeCurve) -> CapacityEstimate:
        """Capacity and SoH with their std; refuses a charge unlike the training charges."""
        _check_charge(curve)
        rate = curve.c_rate(self.reference_capacity_ah)
        if abs(rate / self.c_rate - 1.0) > RATE_TOLERANCE:
            raise InputError(
                f"charge at C/{1 / rate:.1f}: this capacity model was trained at C/{1 / self.c_rate:.1f} "
                f"(+-{RATE_TOLERANCE:.0%}); features at another rate are not comparable"
            )
        if abs(curve.temperature_c - self.temperature_c) > TEMP_TOLERANCE_C:
            raise InputError(
                f"charge at {curve.temperature_c:g} °C: this capacity model was trained at "
                f"{self.temperature_c:g} °C (+-{TEMP_TOLERANCE_C:g} °C)"
            )
        mean, std = self.gp.predict(charge_features(curve, self.levels)[None, :])
        q, s = float(mean[0]), float(std[0]) * self.std_scale
        return CapacityEstimate(q, s, q / self.reference_capacity_ah, s / self.reference_capacity_ah)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "levels_v": list(self.levels),
            "c_rate": self.c_rate,
            "temperature_c": self.temperature_c,
            "reference_capacity_ah": self.reference_capacity_ah,
            "reference_r_1s_ohm": self.reference_r_1s_ohm,
            "std_scale": self.std_scale,
            "gp": self.gp.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CapacityModel:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else None
            raise InputError(f"not an evota SoH model (format is {got!r}, expected {FORMAT!r})")
        if d.get("version") != FORMAT_VERSION:
            raise InputError(f"SoH model version {d.get('version')!r} is not supported")
        try:
            levels = tuple(float(v) for v in d["levels_v"])
            model = cls(
                GaussianProcess.from_dict(d["gp"]),
                levels,
                float(d["c_rate"]),
                float(d["temperature_c"]),
                float(d["reference_capacity_ah"]),
                None if d.get("reference_r_1s_ohm") is None else float(d["reference_r_1s_ohm"]),
                float(d.get("std_scale", 1.0)),
            )
        except KeyError as e:
            raise InputError(f"SoH model: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise InputError(f"SoH model: malformed field ({e})") from None
        if not 1.0 <= model.std_scale < 100:
            raise InputError("SoH model: std_scale must be in [1, 100)")
        if model.gp.x_train.shape[1] != len(levels) + 1 or not model.c_rate > 0:
            raise InputError("SoH model: the GP's features do not match its voltage levels")
        if np.any(np.diff(levels) <= 0) or not model.reference_capacity_ah > 0:
            raise InputError("SoH model: levels_v must increase and reference_capacity_ah be positive")
        if model.reference_r_1s_ohm is not None and not 0 < model.reference_r_1s_ohm < 10:
            raise InputError("SoH model: reference_r_1s_ohm must be a resistance in ohm (0..10)")
        return model

    def resistance_growth(
        self, pulse: PulseResistance, temperature_c: float, *, ea_j_mol: float | None = None
    ) -> float:
        """R_1s (nearest to R0 at 1 s sampling) over the fresh reference, at the model's temperature.

        Without an activation energy, a pulse more than TEMP_TOLERANCE_C away is refused:
        resistance moves by several % per °C, so an uncorrected ratio would be wrong.
        """
        if self.reference_r_1s_ohm is None:
            raise InputError("this SoH model has no reference pulse resistance (trained without pulses)")
        factor = 1.0
        if abs(temperature_c - self.temperature_c) > TEMP_TOLERANCE_C:
            if ea_j_mol is None:
                raise InputError(
                    f"pulse at {temperature_c:g} °C, reference at {self.temperature_c:g} °C: "
                    "pass the cell model (--cell) for its activation energy"
                )
            factor = temperature_factor(ea_j_mol, temperature_c, self.temperature_c)
        elif ea_j_mol is not None:
            factor = temperature_factor(ea_j_mol, temperature_c, self.temperature_c)
        return pulse.r_1s_ohm * factor / self.reference_r_1s_ohm


@dataclasses.dataclass(frozen=True)
class PulseResistance:
    """dV/dI of a discharge pulse from rest, 1 s and 10 s after the step (ohm)."""

    r_1s_ohm: float
    r_10s_ohm: float
    step_a: float
    rest_voltage_v: float


def pulse_resistance(
    time_s: FloatArray, current_a: FloatArray, voltage_v: FloatArray, *, capacity_ah: float
) -> PulseResistance:
    """The first step from rest (|I| < C/50 for 5 s) to a discharge above C/5 lasting 10 s."""
    for name, arr in (("time_s", time_s), ("current_a", current_a), ("voltage_v", voltage_v)):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"pulse: {name} has NaN or inf")
    if np.any(np.diff(time_s) <= 0):
        raise InputError("pulse: time_s must increase strictly")
    rest = np.abs(current_a) < capacity_ah / 50
    on = current_a > capacity_ah / 5
    if np.any(current_a < -capacity_ah / 5) and not np.any(on):
        raise InputError("pulse: only charge pulses found; is the current sign flipped?")
    for k in np.flatnonzero(rest[:-1] & on[1:]):
        t_step = float(time_s[k])
        before = (time_s <= t_step) & (time_s >= t_step - 5.0) & rest
        off = np.flatnonzero(~on[k + 1 :])
        end = float(time_s[k + 1 + off[0]]) if off.size else float(time_s[-1])
        if time_s[k] - time_s[0] < 5.0 or end - t_step < 10.0 - 0.05:
            continue
        held = (time_s > t_step) & (time_s <= min(end, t_step + 10.0) + 1e-6) & on
        i_on = float(np.median(current_a[held]))
        v_rest = float(np.mean(voltage_v[before]))
        times = time_s[held] - t_step
        v_on = voltage_v[held]
        v1 = float(np.interp(1.0, times, v_on))
        # 10 s: a line through the last 5 s of the pulse, read at 10 s (averages the noise)
        late = times >= 5.0
        if int(late.sum()) >= 3:
            slope, icpt = np.polyfit(times[late], v_on[late], 1)
            v10 = float(slope * 10.0 + icpt)
        else:
            v10 = float(np.interp(10.0, times, v_on))
        return PulseResistance((v_rest - v1) / i_on, (v_rest - v10) / i_on, i_on, v_rest)
    raise InputError("pulse: no step from rest (5 s) into a discharge above C/5 held for 10 s was found")


def temperature_factor(ea_j_mol: float, temperature_c: float, reference_c: float) -> float:
    """R(reference) / R(T): multiply a resistance measured at T by this to refer it to the reference."""
    return math.exp(-ea_j_mol / GAS_CONSTANT * (1 / (temperature_c + 273.15) - 1 / (reference_c + 273.15)))


def checkup_curve(
    time_s: FloatArray,
    current_a: FloatArray,
    voltage_v: FloatArray,
    pulse: PulseResistance,
    temperature_c: float = 25.0,
) -> ChargeCurve:
    """A charge segment with the 1 s resistance of the pulse taken with it."""
    return ChargeCurve(time_s, current_a, voltage_v, pulse.r_1s_ohm, temperature_c)
