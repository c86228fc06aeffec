"""State of charge for many cells at once: coulomb counting, an EKF and an unscented variant.

All three keep the state of every cell in arrays of shape (n_cells, n_states) and advance the
whole batch with one set of NumPy calls per time step, so the cost per cell-step is a few
dozen floating-point operations rather than a Python call. The time loop stays in Python; the
cell loop never appears.

Model (2RC equivalent circuit, `ParameterGrid` for its tables), state x = [z, v1, v2]:

    z_k   = z_{k-1} - eta * i * dt / (3600 Q(T))          (i > 0 discharges; eta on charge)
    v_j,k = a_j v_j,{k-1} + R_j (1 - a_j) i,   a_j = exp(-dt / tau_j)      (exact for held i)
    y_k   = OCV(z_k, T) - R0(z_k, T) i_k - v1_k - v2_k

where i over a step is the mean of the samples at its ends (exact for PyBaMM's piecewise
linear drive currents, and the trapezoid rule for logged data).

Filter hygiene (each a failure seen in practice; see docs/analytics.md):
- the covariance is kept as its six unique entries and updated as P - (PH)(PH)^T / S, which
  is symmetric by construction; its diagonal has a floor, so it cannot lose definiteness;
- an innovation with r^2 > gate * S is not used (a sensor glitch must not jump the SoC);
- z is clamped to [-0.05, 1.05], where the OCV table is still defined and monotone;
- the unscented variant factors P in closed form (3x3 Cholesky with floors), so it cannot
  raise on one bad cell and stop the batch. Its prediction is the linear one above, which the
  unscented transform would reproduce exactly; sigma points are used where the model is
  nonlinear, the measurement (OCV and R0 depend on z).

`SingleCellEkf` is the same EKF written the textbook way, one cell, 3x3 matrices, Joseph
form. The benchmark times it as the per-cell loop, and the tests check that the batch agrees
with it, so the elementwise algebra of the batch is proven against the matrix form.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from evota.analytics.grid import CH_OCV, CH_R0, CH_R1, CH_R2, CH_TAU1, CH_TAU2, ParameterGrid

__all__ = [
    "BatchCoulombCounter",
    "BatchEkf",
    "BatchUkf",
    "FilterConfig",
    "Method",
    "SingleCellEkf",
    "SocResult",
    "estimate_soc",
    "initial_soc_from_voltage",
]

FloatArray = NDArray[np.float64]
Method = Literal["ekf", "ukf", "coulomb"]
SOC_CLAMP = (-0.05, 1.05)
_VAR_FLOOR = 1e-12


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Noise model and guards, held for every temperature.

    `voltage_noise_v` and `soc_drift_per_sqrt_h` were chosen on the characterization pulse
    tests (all four temperatures, with and without a 25 mA current offset), not on the drive
    cycles the benchmark scores; docs/analytics.md has the grid.

    voltage_noise_v: 1-sigma of the voltage sensor plus the circuit model's own error, which
        dominates (an ECM follows a DFN to ~5-15 mV under load).
    soc_drift_per_sqrt_h: random walk of SoC, standing for current and capacity errors.
    rc_drift_v_per_sqrt_s: random walk of each RC voltage, standing for parameter error.
    current_noise_a: 1-sigma of the current sensor per sample (coulomb counting's variance).
    current_bias_a: a bound on the current sensor's offset (coulomb counting's variance grows
        with it linearly in time: the error no filter removes without a voltage model).
    ocv_error_v: a floor on the model's voltage error. The model's error is correlated in
        time, so the Kalman covariance, which assumes white noise, cannot see it; the reported
        soc_std adds (e / dOCV/dSoC)^2 with e = max(ocv_error_v, the model's pulse-fit RMSE
        at that SoC and temperature). It is large where the curve is flat, where voltage
        cannot pin SoC down, and where the circuit followed the cell worst (below 15 % SoC).
    rc_init_std_v: 1-sigma of each RC voltage at start. A filter may start under load, when
        the polarization is of the order of R_j x 1C (10-20 mOhm x 5 A here). A prior near
        zero makes the filter read that polarization as SoC error on the flat part of the
        OCV curve (from a mid-drive restart at 65 % SoC, a 1 mV prior took 8-16 min to
        converge, 20 mV takes 2-5 min).
    """

    voltage_noise_v: float = 0.025
    soc_drift_per_sqrt_h: float = 0.005
    rc_drift_v_per_sqrt_s: float = 2e-4
    soc_init_std: float = 0.2
    current_noise_a: float = 0.05
    current_bias_a: float = 0.02
    gate: float = 100.0
    coulombic_efficiency: float = 1.0
    ocv_error_v: float = 0.005
    rc_init_std_v: float = 0.02


class _BatchBase:
    """Shared state handling: x (n_cells, 3) [soc, v1, v2], P as six unique entries."""

    def __init__(
        self, grid: ParameterGrid, soc0: FloatArray, config: FilterConfig, soc0_std: FloatArray | float
    ) -> None:
        soc0 = np.atleast_1d(np.asarray(soc0, dtype=float))
        n = soc0.size
        self.grid, self.config, self.n_cells = grid, config, n
        self.x = np.zeros((n, 3), order="F")  # columns contiguous: x[:, 0] is one array
        self.x[:, 0] = soc0
        self._p = np.zeros((6, n))  # p00 p01 p02 p11 p12 p22
        self._p[0] = np.broadcast_to(np.asarray(soc0_std, dtype=float) ** 2, (n,))
        self._p[3] = self._p[5] = config.rc_init_std_v**2
        self._i_prev: FloatArray | None = None
        self._vals: FloatArray | None = None
        self._slope: FloatArray | None = None
        self._t_row: NDArray[np.intp] | None = None

    def step(self, dt: float, current: FloatArray, voltage: FloatArray, temperature: FloatArray) -> None:
        """Advance every cell by `dt` seconds to a sample of current, voltage and temperature."""
        raise NotImplementedError

    @property
    def soc(self) -> FloatArray:
        return self.x[:, 0].copy()

    @property
    def soc_std(self) -> FloatArray:
        """The filter's SoC std, widened by the model's voltage error (FilterConfig.ocv_error_v)."""
        var = self._p[0]
        if self._slope is not None and self._t_row is not None:
            err = np.maximum(self.config.ocv_error_v, self.grid.model_error(self.x[:, 0], self._t_row))
            var = var + (err / np.maximum(self._slope, 1e-3)) ** 2
        out: FloatArray = np.sqrt(var)
        return out

    @property
    def p(self) -> FloatArray:
        """The covariance as (n_cells, 3, 3)."""
        p00, p01, p02, p11, p12, p22 = self._p
        return np.stack([np.stack([p00, p01, p02], -1), np.stack([p01, p11, p12], -1),
                         np.stack([p02, p12, p22], -1)], -2)  # fmt: skip

    def _predict(self, dt: float, current: FloatArray, t_row: NDArray[np.intp]) -> None:
        cfg, x, p = self.config, self.x, self._p
        i_bar = current if self._i_prev is None else 0.5 * (self._i_prev + current)
        self._i_prev, self._t_row = current, t_row
        vals = self._vals if self._vals is not None else self.grid.lookup(x[:, 0], t_row)[0]
        a1 = np.exp(-dt / vals[CH_TAU1])
        a2 = np.exp(-dt / vals[CH_TAU2])
        cap = self.grid.capacity_ah[t_row]
        charge = (
            i_bar
            if cfg.coulombic_efficiency == 1.0
            else np.where(i_bar < 0, cfg.coulombic_efficiency, 1.0) * i_bar
        )
        x[:, 0] -= charge * (dt / 3600.0) / cap
        x[:, 1] = a1 * x[:, 1] + vals[CH_R1] * (1 - a1) * i_bar
        x[:, 2] = a2 * x[:, 2] + vals[CH_R2] * (1 - a2) * i_bar
        p[0] += cfg.soc_drift_per_sqrt_h**2 * dt / 3600.0
        p[1] *= a1
        p[2] *= a2
        p[3] = a1 * a1 * p[3] + cfg.rc_drift_v_per_sqrt_s**2 * dt
        p[4] *= a1 * a2
        p[5] = a2 * a2 * p[5] + cfg.rc_drift_v_per_sqrt_s**2 * dt

    def _correct(self, r: FloatArray, g0: FloatArray, g1: FloatArray, g2: FloatArray, s: FloatArray) -> None:
        """x += K r and P -= g g^T / S, where g = P H^T (EKF) or P_xy (UKF)."""
        x, p = self.x, self._p
        use = (r * r <= self.config.gate * s) / s
        k0, k1, k2 = g0 * use, g1 * use, g2 * use
        x[:, 0] += k0 * r
        x[:, 1] += k1 * r
        x[:, 2] += k2 * r
        p[0] -= k0 * g0
        p[1] -= k0 * g1
        p[2] -= k0 * g2
        p[3] -= k1 * g1
        p[4] -= k1 * g2
        p[5] -= k2 * g2
        np.maximum(p[0], _VAR_FLOOR, out=p[0])
        np.maximum(p[3], _VAR_FLOOR, out=p[3])
        np.maximum(p[5], _VAR_FLOOR, out=p[5])
        np.clip(x[:, 0], SOC_CLAMP[0], SOC_CLAMP[1], out=x[:, 0])


class BatchEkf(_BatchBase):
    """Extended Kalman filter over a batch of cells (see the module docstring)."""

    def step(self, dt: float, current: FloatArray, voltage: FloatArray, temperature: FloatArray) -> None:
        t_row = self.grid.temperature_row(temperature)
        self._predict(dt, current, t_row)
        x, p = self.x, self._p
        vals, h0 = self.grid.lookup(x[:, 0], t_row)
        self._vals, self._slope = vals, h0
        r = voltage - (vals[CH_OCV] - vals[CH_R0] * current - x[:, 1] - x[:, 2])
        g0 = p[0] * h0 - p[1] - p[2]
        g1 = p[1] * h0 - p[3] - p[4]
        g2 = p[2] * h0 - p[4] - p[5]
        s = h0 * g0 - g1 - g2 + self.config.voltage_noise_v**2
        self._correct(r, g0, g1, g2, s)


class BatchUkf(_BatchBase):
    """Unscented variant: symmetric sigma points (kappa = 0, weights 1/6) for the measurement."""

    def step(self, dt: float, current: FloatArray, voltage: FloatArray, temperature: FloatArray) -> None:
        t_row = self.grid.temperature_row(temperature)
        self._predict(dt, current, t_row)
        x, p = self.x, self._p
        c = math.sqrt(3.0)
        l00 = np.sqrt(np.maximum(p[0], _VAR_FLOOR))
        l10, l20 = p[1] / l00, p[2] / l00
        l11 = np.sqrt(np.maximum(p[3] - l10 * l10, _VAR_FLOOR))
        l21 = (p[4] - l20 * l10) / l11
        l22 = np.sqrt(np.maximum(p[5] - l20 * l20 - l21 * l21, _VAR_FLOOR))
        vals, self._slope = self.grid.lookup(x[:, 0], t_row)
        self._vals = vals
        up, _ = self.grid.lookup(x[:, 0] + c * l00, t_row)
        dn, _ = self.grid.lookup(x[:, 0] - c * l00, t_row)
        f0 = vals[CH_OCV] - vals[CH_R0] * current
        fu = up[CH_OCV] - up[CH_R0] * current
        fd = dn[CH_OCV] - dn[CH_R0] * current
        # Deviations of the six sigma-point outputs from their mean (the +- RC terms cancel in it).
        mean_f = (fu + fd + 4.0 * f0) / 6.0
        du = fu - mean_f - c * (l10 + l20)
        dd = fd - mean_f + c * (l10 + l20)
        d0 = f0 - mean_f
        e1, e2 = c * (l11 + l21), c * l22
        s = (du**2 + dd**2 + (d0 - e1) ** 2 + (d0 + e1) ** 2 + (d0 - e2) ** 2 + (d0 + e2) ** 2) / 6.0
        s += self.config.voltage_noise_v**2
        g0 = c * l00 * (du - dd) / 6.0
        g1 = c * (l10 * (du - dd) + l11 * (-2.0 * e1)) / 6.0
        g2 = c * (l20 * (du - dd) + l21 * (-2.0 * e1) + l22 * (-2.0 * e2)) / 6.0
        r = voltage - (mean_f - x[:, 1] - x[:, 2])
        self._correct(r, g0, g1, g2, s)


class BatchCoulombCounter(_BatchBase):
    """Integrates current only. Its std grows with sensor noise (as a random walk) and the
    bias bound (linearly): it never shrinks, because nothing is measured that could shrink it."""

    def __init__(
        self, grid: ParameterGrid, soc0: FloatArray, config: FilterConfig, soc0_std: FloatArray | float
    ) -> None:
        super().__init__(grid, soc0, config, soc0_std)
        self._noise_var = np.zeros(self.n_cells)
        self._bias_std = np.zeros(self.n_cells)
        self._std0 = np.sqrt(self._p[0])

    def step(self, dt: float, current: FloatArray, voltage: FloatArray, temperature: FloatArray) -> None:
        t_row = self.grid.temperature_row(temperature)
        cap = self.grid.capacity_ah[t_row]
        i_bar = current if self._i_prev is None else 0.5 * (self._i_prev + current)
        self._i_prev = current
        eta = np.where(i_bar < 0, self.config.coulombic_efficiency, 1.0)
        self.x[:, 0] -= eta * i_bar * (dt / 3600.0) / cap
        self._noise_var += (self.config.current_noise_a * dt / 3600.0 / cap) ** 2
        self._bias_std += self.config.current_bias_a * dt / 3600.0 / cap
        self._p[0] = self._std0**2 + self._noise_var + self._bias_std**2


class SingleCellEkf:
    """The EKF for one cell with explicit 3x3 matrices: the per-cell loop baseline."""

    def __init__(self, grid: ParameterGrid, soc0: float, config: FilterConfig, soc0_std: float) -> None:
        self.grid, self.config = grid, config
        self.x = np.array([soc0, 0.0, 0.0])
        self.p = np.diag([soc0_std**2, config.rc_init_std_v**2, config.rc_init_std_v**2])
        self._i_prev: float | None = None
        self._vals: FloatArray | None = None

    def step(self, dt: float, current: float, voltage: float, temperature: float) -> None:
        cfg, grid = self.config, self.grid
        t_row = grid.temperature_row(np.array([temperature]))
        i_bar = current if self._i_prev is None else 0.5 * (self._i_prev + current)
        self._i_prev = current
        vals = self._vals if self._vals is not None else grid.lookup(self.x[:1], t_row)[0]
        v = vals[:, 0]
        a = np.array([1.0, math.exp(-dt / v[CH_TAU1]), math.exp(-dt / v[CH_TAU2])])
        eta = cfg.coulombic_efficiency if i_bar < 0 else 1.0
        b = np.array(
            [-eta * dt / 3600.0 / grid.capacity_ah[t_row[0]], v[CH_R1] * (1 - a[1]), v[CH_R2] * (1 - a[2])]
        )
        f = np.diag(a)
        q = np.diag([cfg.soc_drift_per_sqrt_h**2 * dt / 3600.0] + [cfg.rc_drift_v_per_sqrt_s**2 * dt] * 2)
        self.x = a * self.x + b * i_bar
        self.p = f @ self.p @ f.T + q
        vals, slope = grid.lookup(self.x[:1], t_row)
        self._vals = vals
        v = vals[:, 0]
        h = np.array([slope[0], -1.0, -1.0])
        r = voltage - (v[CH_OCV] - v[CH_R0] * current - self.x[1] - self.x[2])
        s = float(h @ self.p @ h) + cfg.voltage_noise_v**2
        if r * r <= cfg.gate * s:
            k = self.p @ h / s
            self.x = self.x + k * r
            ikh = np.eye(3) - np.outer(k, h)
            self.p = ikh @ self.p @ ikh.T + np.outer(k, k) * cfg.voltage_noise_v**2
        for j in range(3):
            self.p[j, j] = max(self.p[j, j], _VAR_FLOOR)
        self.x[0] = min(max(self.x[0], SOC_CLAMP[0]), SOC_CLAMP[1])


@dataclasses.dataclass(frozen=True, eq=False)
class SocResult:
    """SoC and its 1-sigma per sample and cell, shape (n_samples, n_cells)."""

    soc: FloatArray
    soc_std: FloatArray


def initial_soc_from_voltage(
    grid: ParameterGrid, voltage: FloatArray, current: FloatArray, temperature: FloatArray
) -> FloatArray:
    """SoC whose OCV matches the first sample, corrected for the ohmic drop only.

    Good to a few percent after a rest; under load the RC voltages are unknown, which is why a
    filter started this way also gets a wide initial variance.
    """
    t_row = grid.temperature_row(temperature)
    guess = grid.ocv_to_soc(voltage, t_row)
    r0 = grid.lookup(guess, t_row)[0][CH_R0]
    return np.clip(grid.ocv_to_soc(voltage + r0 * current, t_row), 0.0, 1.0)


def estimate_soc(
    grid: ParameterGrid,
    time_s: FloatArray,
    current_a: FloatArray,
    voltage_v: FloatArray,
    temperature_c: FloatArray,
    *,
    method: Method = "ekf",
    soc_init: FloatArray | None = None,
    config: FilterConfig | None = None,
) -> SocResult:
    """Run one estimator over a time series for a batch of cells.

    Args:
        time_s: shape (n_samples,), shared by all cells, strictly increasing.
        current_a, voltage_v, temperature_c: shape (n_samples, n_cells) or (n_samples,).
        soc_init: shape (n_cells,); without it, from the first voltage (initial_soc_from_voltage).
    """
    config = config or FilterConfig()
    cur, volt, temp = (np.asarray(a, dtype=float) for a in (current_a, voltage_v, temperature_c))
    if cur.ndim == 1:
        cur, volt, temp = cur[:, None], volt[:, None], temp[:, None]
    n_samples, n_cells = cur.shape
    z0 = (
        initial_soc_from_voltage(grid, volt[0], cur[0], temp[0])
        if soc_init is None
        else np.broadcast_to(np.asarray(soc_init, dtype=float), (n_cells,)).copy()
    )
    kinds: dict[str, type[_BatchBase]] = {"ekf": BatchEkf, "ukf": BatchUkf, "coulomb": BatchCoulombCounter}
    if method not in kinds:
        raise ValueError(f"unknown method {method!r}")
    filt = kinds[method](grid, z0, config, config.soc_init_std)
    step = filt.step
    soc = np.empty((n_samples, n_cells))
    std = np.empty((n_samples, n_cells))
    dts = np.diff(time_s, prepend=time_s[0])
    for k in range(n_samples):
        step(float(dts[k]), cur[k], volt[k], temp[k])
        soc[k] = filt.x[:, 0]
        std[k] = filt.soc_std
    return SocResult(soc=soc, soc_std=std)
