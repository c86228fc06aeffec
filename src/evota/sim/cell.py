"""The simulated cell's truth: OCV, resistances, relaxation and the lithium-plating limit.

Every fleet KPI the simulator produces is measured against this module, so it must not
borrow from what it is used to judge: it takes nothing from `evota.analytics` (whose
estimators are the things under test) and nothing from a calibration (which is what a
BMS *believes* about the cell). Its numbers are a plausible large-format NMC/graphite
element, not one identified cell:

* OCV(SoC) at 25 °C: 21 points shaped after published NMC811/graphite full-cell curves
  (e.g. the LG M50 pseudo-OCV of Chen et al. 2020, doi 10.1149/1945-7111/ab9050), made
  smooth with a monotone PCHIP and strictly rising, as the BMS's OCV inversion requires.
* The entropic coefficient dU/dT(SoC), -0.4 to 0 mV/K, in the range reported for
  NMC/graphite cells (e.g. Viswanathan et al. 2010, doi 10.1016/j.jpowsour.2009.10.105):
  a cold cell at rest reads a few mV above its 25 °C OCV.
* R0 and two RC pairs at 25 °C with an SoC shape (higher at low SoC), scaled with
  temperature by Arrhenius: 20 kJ/mol for R0 (x2.1 at 0 °C, as the battery-analytics
  anchor derives), 45 kJ/mol for the charge-transfer pair R1 and 30 kJ/mol for the
  diffusion pair R2. The capacitances stay fixed, so the time constants lengthen in the
  cold as R grows: at -10 °C the slow pair relaxes over about half an hour. That is why a
  BMS that trusts a 30-minute rest in the cold reads a voltage that is not yet the OCV.
* A plating limit: the charge C-rate above which the anode potential would fall below
  0 V vs Li, 1.8 C at 25 °C and mid SoC, falling with SoC (less anode headroom when
  full) and with temperature by Arrhenius at 50 kJ/mol (0.28 C at 0 °C, 0.12 C at
  -10 °C). This is a proxy for an electrochemical model, with the shape reported by
  plating studies (safe fast-charge currents collapse below about 10 °C).

One "cell" here is one series element of the pack: parallel cells lumped together
(220 Ah). All functions take NumPy arrays of any shape and broadcast; temperatures are
in °C and SoC is a fraction (0..1).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator

__all__ = [
    "GAS_CONSTANT",
    "CellEval",
    "CellParams",
    "arrhenius",
    "default_cell",
]

FloatArray = NDArray[np.float64]
GAS_CONSTANT = 8.314462618  # J/(mol K)
_GRID = 2001  # points of the dense, uniform SoC tables used for fast lookup

_SOC_POINTS = tuple(i / 20 for i in range(21))
# fmt: off
_OCV_V = (3.000, 3.390, 3.495, 3.547, 3.588, 3.623, 3.650, 3.674, 3.697, 3.722, 3.752,
          3.788, 3.828, 3.868, 3.906, 3.943, 3.980, 4.021, 4.066, 4.117, 4.180)
_DUDT_MV_K = (-0.40, -0.35, -0.30, -0.22, -0.15, -0.10, -0.06, -0.04, -0.05, -0.08, -0.12,
              -0.15, -0.16, -0.14, -0.10, -0.07, -0.05, -0.04, -0.03, -0.02, 0.00)
_R_SHAPE = (2.00, 1.60, 1.35, 1.20, 1.10, 1.06, 1.03, 1.01, 1.00, 1.00, 1.00,
            1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.01, 1.03, 1.05, 1.08)
# fmt: on


def arrhenius(ea_j_mol: float, temperature_c: FloatArray | float, reference_c: float = 25.0) -> FloatArray:
    """R(T)/R(T_ref) for a thermally activated process: exp(Ea/R (1/T - 1/T_ref))."""
    t_k = np.asarray(temperature_c, dtype=float) + 273.15
    return np.asarray(np.exp(ea_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / (reference_c + 273.15))))


def _dense(values: tuple[float, ...]) -> FloatArray:
    grid = np.linspace(0.0, 1.0, _GRID)
    return np.asarray(PchipInterpolator(np.asarray(_SOC_POINTS), np.asarray(values))(grid), dtype=float)


@dataclasses.dataclass(frozen=True, eq=False)
class CellEval:
    """A cell's state-dependent values at one (SoC, T) per vehicle: (n,) arrays."""

    ocv: FloatArray  # V, entropic term included
    slope: FloatArray  # dOCV/dSoC, V per unit SoC
    r0: FloatArray
    r1: FloatArray
    tau1: FloatArray
    r2: FloatArray
    tau2: FloatArray


@dataclasses.dataclass(frozen=True, eq=False)
class CellParams:
    """One series element (a lumped parallel group) of the simulated pack.

    Resistances are in ohm at 25 °C and mid SoC; `*_ea` are activation energies in J/mol.
    `plating_c_rate_25c` is the plating-limit C-rate at 25 °C and 50 % SoC.
    """

    capacity_ah: float = 220.0
    r0_ohm: float = 0.50e-3
    r1_ohm: float = 0.20e-3
    tau1_s: float = 15.0
    r2_ohm: float = 0.30e-3
    tau2_s: float = 400.0
    r0_ea: float = 20_000.0
    r1_ea: float = 45_000.0
    r2_ea: float = 30_000.0
    voltage_min_v: float = 2.90
    voltage_max_v: float = 4.20
    plating_c_rate_25c: float = 1.8
    plating_ea: float = 50_000.0

    @functools.cached_property
    def _tables(self) -> FloatArray:
        """(grid, 4): OCV at 25 °C, dU/dT, dOCV/dSoC and the resistance shape, on one grid."""
        ocv = _dense(_OCV_V)
        if np.any(np.diff(ocv) <= 0):  # pragma: no cover - a property of the constants above
            raise RuntimeError("the cell's OCV table must rise strictly")
        slope = np.gradient(ocv, 1.0 / (_GRID - 1))
        return np.stack([ocv, _dense(_DUDT_MV_K) * 1e-3, slope, _dense(_R_SHAPE)], axis=1)

    @functools.cached_property
    def _ea(self) -> FloatArray:
        return np.array([self.r0_ea, self.r1_ea, self.r2_ea]) / GAS_CONSTANT

    @functools.cached_property
    def _interleaved(self) -> FloatArray:
        """(grid, 8): each grid point's four values and the steps to the next point."""
        step = np.diff(self._tables, axis=0, append=self._tables[-1:])
        return np.concatenate([self._tables, step], axis=1)

    def _rows(self, soc: FloatArray) -> FloatArray:
        """The four tables at each SoC, linearly interpolated: shape soc.shape + (4,)."""
        pos = np.minimum(np.maximum(soc, 0.0), 1.0) * (_GRID - 1)
        i = np.minimum(pos.astype(np.intp), _GRID - 2)
        both = self._interleaved[i]  # one gather for the point and its step
        return np.asarray(both[..., :4] + (pos - i)[..., None] * both[..., 4:])

    def ocv(self, soc: FloatArray, temperature_c: FloatArray | float) -> FloatArray:
        """Open-circuit voltage (V) at SoC and temperature; linear past 0 and 1 SoC."""
        soc = np.asarray(soc, dtype=float)
        rows = self._rows(soc)
        ocv = rows[..., 0] + rows[..., 1] * (np.asarray(temperature_c) - 25.0)
        # Past the ends, continue with the end slopes, so an over-charged cell reads high.
        beyond = np.maximum(soc - 1.0, 0.0) * self._tables[-1, 2] + np.minimum(soc, 0.0) * self._tables[0, 2]
        return np.asarray(ocv + beyond)

    def ocv_slope(self, soc: FloatArray) -> FloatArray:
        """dOCV/dSoC (V per unit SoC) at 25 °C, for linearising small cell-to-cell differences."""
        return np.asarray(self._rows(np.asarray(soc, dtype=float))[..., 2])

    def entropic_v_per_k(self, soc: FloatArray) -> FloatArray:
        return np.asarray(self._rows(np.asarray(soc, dtype=float))[..., 1])

    def soc_from_ocv(self, voltage_v: FloatArray, temperature_c: FloatArray | float) -> FloatArray:
        """The true SoC of a fully rested cell reading `voltage_v` (inverse of `ocv`)."""
        v = np.asarray(voltage_v, dtype=float)
        grid = np.linspace(0.0, 1.0, _GRID)
        soc = np.interp(v, self._tables[:, 0], grid)
        for _ in range(3):  # the entropic term depends on SoC: a few fixed-point passes
            soc = np.interp(
                v - self.entropic_v_per_k(soc) * (np.asarray(temperature_c) - 25.0), self._tables[:, 0], grid
            )
        return np.asarray(soc)

    def evaluate(self, soc: FloatArray, temperature_c: FloatArray) -> CellEval:
        """Everything a step needs at (SoC, T), from one table lookup and one exponential."""
        rows = self._rows(np.asarray(soc, dtype=float))
        t = np.asarray(temperature_c, dtype=float)
        factor = np.exp(self._ea * (1.0 / (t + 273.15) - 1.0 / 298.15)[:, None])
        shape = rows[:, 3]
        f0, f1, f2 = factor[:, 0] * shape, factor[:, 1] * shape, factor[:, 2] * shape
        return CellEval(
            ocv=rows[:, 0] + rows[:, 1] * (t - 25.0),
            slope=rows[:, 2],
            r0=self.r0_ohm * f0,
            r1=self.r1_ohm * f1,
            tau1=self.tau1_s * f1,
            r2=self.r2_ohm * f2,
            tau2=self.tau2_s * f2,
        )

    def resistances(
        self, soc: FloatArray, temperature_c: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """(R0, R1, tau1, R2, tau2) in ohm and seconds at SoC and temperature (1-D arrays)."""
        ev = self.evaluate(np.atleast_1d(soc), np.atleast_1d(temperature_c))
        return ev.r0, ev.r1, ev.tau1, ev.r2, ev.tau2

    def plating_c_rate(self, soc: FloatArray, temperature_c: FloatArray) -> FloatArray:
        """Charge C-rate above which lithium plates (a physical limit, not a BMS setting)."""
        headroom = np.minimum(np.maximum(1.25 - 0.6 * np.asarray(soc, dtype=float), 0.5), 1.3) / 0.95
        return np.asarray(self.plating_c_rate_25c * headroom / arrhenius(self.plating_ea, temperature_c))


@functools.cache
def default_cell() -> CellParams:
    """The element of the simulated 3.5 t e-van pack (96s, 220 Ah, about 77 kWh)."""
    return CellParams()
