"""Anomalies: cells that differ from their peers, and internal-short precursors in a string.

Three detectors, each a pure function of arrays:

1. **Peer SPC** (`peer_z`, `cusum_alarm`). A cell's feature (capacity, resistance growth,
   self-discharge) against peers of similar age: a robust z-score, (x - median) /
   (1.4826 MAD), over the other cells whose age is within a window, with a floor on the
   scale so a very uniform fleet does not turn noise into alarms. A one-sided CUSUM over a
   cell's sequence of z-scores catches a slow drift that no single check-up shows.
2. **Isolation Forest** (`isoforest`) on the feature vectors standardised by their robust
   spread: a second opinion that needs no direction or threshold per feature.
3. **Internal-short precursors in a series string at rest** (`isc_screen`). Every cell of a
   series string carries the same current, so at rest each cell's voltage minus the median
   of the others cancels what they share (relaxation after a drive, temperature, the pack's
   SoC). What is left is static (sensor offsets, SoC imbalance) plus what a leak adds: a
   deviation that keeps growing. Its slope over the rest, through the OCV slope at the
   string's SoC, is a leak current, I = -(dDeviation/dt) 3600 Q / (dOCV/dSoC), and V / I is an
   equivalent short resistance. A cell is flagged when that leak is above `leak_limit_a`
   with a t-statistic above `t_min`, or when its deviation has moved by more than `level_mv`
   (the issue's 1-5 mV) since the rest began. The slope ignores static offsets, so a badly
   calibrated channel does not raise an alarm; the level test catches a fast leak sooner.

None of them reads a clock or a file. Misuse (wrong shapes) raises `ValueError`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from evota.analytics.isoforest import IsolationForest

__all__ = [
    "FleetScreen",
    "IscScreen",
    "cusum_alarm",
    "fleet_screen",
    "isc_screen",
    "isoforest_scores",
    "ocv_slope",
    "peer_z",
    "rest_deviation",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
MAD_TO_STD = 1.4826


def peer_z(
    values: FloatArray, ages: FloatArray, *, age_window: float, min_scale: float, min_peers: int = 8
) -> FloatArray:
    """Robust z of each cell against the other cells within `age_window` of its age.

    NaN where fewer than `min_peers` peers are in the window (the question cannot be asked).
    """
    values = np.asarray(values, dtype=float)
    ages = np.asarray(ages, dtype=float)
    if values.shape != ages.shape or values.ndim != 1:
        raise ValueError("values and ages must be one-dimensional and of one length")
    z = np.full(values.size, np.nan)
    for c in range(values.size):
        peers = np.abs(ages - ages[c]) <= age_window
        peers[c] = False
        if int(peers.sum()) < min_peers:
            continue
        ref = values[peers]
        med = float(np.median(ref))
        scale = max(MAD_TO_STD * float(np.median(np.abs(ref - med))), min_scale)
        z[c] = (values[c] - med) / scale
    return z


def cusum_alarm(z: FloatArray, *, k: float = 0.5, h: float = 5.0) -> int | None:
    """First index at which the upper CUSUM of z (allowance k, limit h) exceeds h, or None."""
    s = 0.0
    for i, value in enumerate(np.asarray(z, dtype=float)):
        if not np.isfinite(value):
            continue
        s = max(0.0, s + value - k)
        if s > h:
            return i
    return None


def isoforest_scores(features: FloatArray, rng: np.random.Generator, *, n_trees: int = 200) -> FloatArray:
    """Isolation-forest anomaly score per row, on features scaled by median and MAD."""
    x = np.asarray(features, dtype=float)
    med = np.median(x, axis=0)
    mad = MAD_TO_STD * np.median(np.abs(x - med), axis=0)
    scale = np.where(mad > 0, mad, np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0))
    xs = (x - med) / scale
    return IsolationForest(xs, rng, n_trees=n_trees).score(xs)


def rest_deviation(voltage_v: FloatArray) -> FloatArray:
    """Each cell's voltage minus the median of the other cells, per sample (volts)."""
    v = np.asarray(voltage_v, dtype=float)
    if v.ndim != 2 or v.shape[1] < 3:
        raise ValueError("voltage must be (n_samples, n_cells) with at least three cells")
    out = np.empty_like(v)
    for c in range(v.shape[1]):
        out[:, c] = v[:, c] - np.median(np.delete(v, c, axis=1), axis=1)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class IscScreen:
    """Per cell: the leak estimate, its std, the deviation moved since the rest began, flags."""

    leak_a: FloatArray
    leak_std_a: FloatArray
    moved_mv: FloatArray
    flagged: BoolArray
    by_slope: BoolArray
    by_level: BoolArray
    rest_s: float

    def resistance_ohm(self, voltage_v: float) -> FloatArray:
        """Equivalent short resistance V / I (inf where no leak is estimated)."""
        with np.errstate(divide="ignore"):
            return np.where(self.leak_a > 0, voltage_v / np.maximum(self.leak_a, 1e-30), np.inf)


def isc_screen(
    time_s: FloatArray,
    voltage_v: FloatArray,
    current_a: FloatArray,
    *,
    ocv_slope_v: float,
    capacity_ah: float,
    rest_current_a: float = 0.05,
    settle_s: float = 1800.0,
    leak_limit_a: float = 1.5e-3,
    t_min: float = 5.0,
    level_mv: float = 3.0,
    baseline_s: float = 900.0,
) -> IscScreen:
    """Screen a series string's rest for internal-short precursors (see the module docstring).

    `time_s` (n,), `voltage_v` (n, n_cells), `current_a` (n,) the string current. Only the
    samples of the last unbroken rest (|I| < `rest_current_a`) are used, less its first
    `settle_s` (the part of relaxation that differs most between cells). `ocv_slope_v` is
    dOCV/dSoC at the string's SoC, in volts per unit SoC (from the cell model's OCV table).
    """
    if voltage_v.ndim != 2 or voltage_v.shape[0] != time_s.size or current_a.shape != time_s.shape:
        raise ValueError("time (n,), voltage (n, cells) and current (n,) must agree")
    if not ocv_slope_v > 0 or not capacity_ah > 0:
        raise ValueError("the OCV slope and the capacity must be positive")
    n_cells = voltage_v.shape[1]
    rest = np.abs(current_a) < rest_current_a
    moving = np.flatnonzero(~rest)
    start = int(moving[-1]) + 1 if moving.size else 0
    t = time_s[start:]
    dev = rest_deviation(voltage_v[start:])
    rest_s = float(t[-1] - t[0]) if t.size else 0.0
    zeros = np.zeros(n_cells)
    no = np.zeros(n_cells, dtype=bool)
    use = t >= t[0] + settle_s if t.size else np.zeros(0, dtype=bool)
    if int(use.sum()) < 6:
        return IscScreen(zeros, np.full(n_cells, np.inf), zeros, no, no, no, rest_s)
    tu, du = t[use] - t[use].mean(), dev[use]
    sxx = float(np.sum(tu**2))
    slope = (tu @ (du - du.mean(axis=0))) / sxx  # V/s, per cell
    resid = du - du.mean(axis=0) - np.outer(tu, slope)
    dof = max(int(use.sum()) - 2, 1)
    # The noise of each cell's deviation, with a floor at the quantisation of a 1 mV sensor.
    sigma = np.maximum(np.sqrt(np.sum(resid**2, axis=0) / dof), 1e-3 / np.sqrt(12))
    slope_std = sigma / np.sqrt(sxx)
    to_amps = 3600.0 * capacity_ah / ocv_slope_v
    leak, leak_std = -slope * to_amps, slope_std * to_amps
    by_slope = (leak > leak_limit_a) & (leak / leak_std > t_min)
    # mV fallen since the settled start: the mean over `baseline_s` at each end (noise, quantisation)
    first = use & (t <= t[use][0] + baseline_s)
    last = use & (t >= t[-1] - baseline_s)
    moved = 1000.0 * (np.mean(dev[first], axis=0) - np.mean(dev[last], axis=0))
    by_level = moved > level_mv
    return IscScreen(leak, leak_std, moved, by_slope | by_level, by_slope, by_level, rest_s)


def ocv_slope(ocv_soc: FloatArray, ocv_v: FloatArray, voltage_v: float, *, half_width: float = 0.02) -> float:
    """dOCV/dSoC (V per unit SoC) at the SoC where the OCV table reads `voltage_v`, as a
    difference over +-`half_width` of SoC (the table's own steps are too fine to differentiate)."""
    z = float(np.interp(voltage_v, ocv_v, ocv_soc))
    lo, hi = np.interp([z - half_width, z + half_width], ocv_soc, ocv_v)
    return float(hi - lo) / (2 * half_width)


@dataclasses.dataclass(frozen=True, eq=False)
class FleetScreen:
    z: FloatArray  # (n_cells, 3): robust z of SoH, resistance growth, leak against peers
    spc: BoolArray  # flagged by peer SPC
    isoforest_score: FloatArray
    isoforest: BoolArray  # in the top `if_share` of isolation scores


def fleet_screen(
    features: FloatArray,
    ages: FloatArray,
    rng: np.random.Generator,
    *,
    age_window: float = 20.0,
    z_limit: float = 3.5,
    if_share: float = 0.05,
    min_scales: tuple[float, float, float] = (0.003, 0.01, 0.2),
) -> FleetScreen:
    """Peer SPC and the isolation forest over [SoH, resistance growth, leak mA] per cell.

    SPC flags low SoH, high resistance growth or a high leak (|z| > `z_limit` one-sided)
    against cells within `age_window` cycles; the leak has no age trend, so its peers are all
    cells. The forest scores the three z-scores (age removed), and flags its top `if_share`.
    """
    if features.ndim != 2 or features.shape[1] != 3 or ages.shape != (features.shape[0],):
        raise ValueError("features must be (n_cells, 3) and ages (n_cells,)")
    z = np.column_stack(
        [
            peer_z(features[:, 0], ages, age_window=age_window, min_scale=min_scales[0]),
            peer_z(features[:, 1], ages, age_window=age_window, min_scale=min_scales[1]),
            peer_z(features[:, 2], np.zeros(ages.size), age_window=1.0, min_scale=min_scales[2]),
        ]
    )
    spc = (z[:, 0] < -z_limit) | (z[:, 1] > z_limit) | (z[:, 2] > z_limit)
    score = isoforest_scores(np.nan_to_num(z), rng)
    return FleetScreen(z, spc, score, score > np.quantile(score, 1 - if_share))
