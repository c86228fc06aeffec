"""The pack: 96 series elements per vehicle, their spread, and passive balancing.

State is batched over vehicles: (n,) for what the whole string shares and (n, 96) for
what differs from element to element. All elements of a series string carry the same
current, so two exact simplifications keep 10,000 packs cheap:

* Element j's resistances are the reference element's times a factor k_j (same time
  constants). An RC pair is linear, so its voltage is then exactly k_j times the
  reference pair's: one (n,) RC state stands for all 96 (`v1`, `v2`).
* Element SoC is kept as the pack mean (float64, (n,)) plus each element's deviation
  from it (float32, (n, 96)). The mean moves every step; the deviations only move by the
  difference in capacities, self-discharge and balancing, so they are brought up to date
  lazily at each `sync` (every few minutes) with the charge that passed since: exact,
  because charge adds linearly.

At a sync the element voltages are evaluated around the mean with the local OCV slope
(deviations are a few % SoC, so the curvature term is below 0.2 mV), which gives the
cell spread, the highest and lowest elements (kept as the ones the charge and discharge
limits watch until the next sync) and the balancing decision. Balancing is passive:
a bleed resistor (0.15 A) on every element more than the threshold above the lowest,
while the BMS is awake (charging, or at rest) and the pack is above a minimum voltage.

Spread drawn per vehicle at construction (seeded): capacity (normal, 1 %), resistance
(lognormal, 4 %), self-discharge (lognormal around 0.04 %/day, sigma 0.5: a few elements
leak several times faster than their neighbours, which is what balancing must keep up
with) and an initial SoC imbalance that grows with the vehicle's age.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from evota.sim.arrays import some
from evota.sim.cell import CellEval, CellParams, default_cell

__all__ = ["CurrentSolution", "PackSpec", "PackState", "StepResponse"]

FloatArray = NDArray[np.float64]
F32Array = NDArray[np.float32]
BoolArray = NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class PackSpec:
    n_series: int = 96
    cell: CellParams = dataclasses.field(default_factory=default_cell)
    capacity_spread: float = 0.010  # relative sigma between elements
    resistance_spread: float = 0.04  # lognormal sigma of k_j
    self_discharge_per_day: float = 4.0e-4  # mean SoC fraction lost per day at rest
    self_discharge_spread: float = 0.5  # lognormal sigma
    imbalance_new: float = 0.0012  # SoC sigma of a new pack's elements
    imbalance_per_year: float = 0.0004  # and its growth with age (balancing never quite catches up)
    balance_current_a: float = 0.15

    @property
    def nominal_energy_kwh(self) -> float:
        return self.n_series * 3.65 * self.cell.capacity_ah / 1000.0


@dataclasses.dataclass(frozen=True, eq=False)
class StepResponse:
    """The reference element over one step: the drop at its end is memory + resistance * I."""

    a1: FloatArray
    a2: FloatArray
    memory: FloatArray
    resistance: FloatArray


@dataclasses.dataclass(frozen=True, eq=False)
class CurrentSolution:
    current_a: FloatArray  # positive: discharge
    terminal_v: FloatArray  # pack terminal voltage at the end of the step
    limited: BoolArray  # the requested power was more than the pack can give


class PackState:
    """Every vehicle's pack (see the module docstring for the representation)."""

    def __init__(
        self, spec: PackSpec, n: int, rng: np.random.Generator, *, soc: FloatArray, age_days: FloatArray
    ) -> None:
        s = spec.n_series
        self.spec = spec
        self.n = n
        qrel = 1.0 + spec.capacity_spread * rng.standard_normal((n, s))
        self.inv_cap0: F32Array = (1.0 / (spec.cell.capacity_ah * qrel)).astype(np.float32)
        self.inv_cap0_mean: FloatArray = self.inv_cap0.mean(axis=1, dtype=np.float64)
        self.dinv_cap: F32Array = (self.inv_cap0 - self.inv_cap0_mean[:, None]).astype(np.float32)
        k = rng.lognormal(0.0, spec.resistance_spread, (n, s))
        k /= k.mean(axis=1, keepdims=True)
        self.k: F32Array = k.astype(np.float32)
        sd = spec.self_discharge_per_day / 86400.0 * rng.lognormal(0.0, spec.self_discharge_spread, (n, s))
        sd /= np.exp(spec.self_discharge_spread**2 / 2)  # keep the mean at the nominal rate
        self.sd_mean: FloatArray = sd.mean(axis=1)
        self.sd_dev: F32Array = (sd - self.sd_mean[:, None]).astype(np.float32)
        sigma = spec.imbalance_new + spec.imbalance_per_year * np.asarray(age_days) / 365.0
        sigma = sigma * rng.uniform(0.5, 1.5, n)
        dev = sigma[:, None] * rng.standard_normal((n, s))
        self.dev: F32Array = (dev - dev.mean(axis=1, keepdims=True)).astype(np.float32)
        self.soc_mean: FloatArray = np.asarray(soc, dtype=float).copy()
        self.v1 = np.zeros(n)
        self.v2 = np.zeros(n)
        self.fade = np.zeros(n)  # capacity fade fraction (set by ageing)
        self.r_age = np.ones(n)  # resistance growth factor (set by ageing)
        self.bleed: BoolArray = np.zeros((n, s), dtype=bool)
        self.ah_pending = np.zeros(n)  # Ah drawn since the last sync
        self.bled_ah_total = np.zeros(n)
        # The elements the charge/discharge limits watch (refreshed at each sync).
        self.dev_hi = np.zeros(n)
        self.k_hi = np.ones(n)
        self.dev_lo = np.zeros(n)
        self.k_lo = np.ones(n)
        self.spread_v = np.zeros(n)
        self.sync(
            0.0,
            slope=spec.cell.ocv_slope(self.soc_mean),
            eta_v=np.zeros(n),
            balance_enabled=np.zeros(n, dtype=bool),
            threshold_v=np.ones(n),
        )

    # --- the whole string, every step -------------------------------------------------
    @property
    def capacity_ah(self) -> FloatArray:
        """Each pack's capacity now (Ah): the charge that moves its mean SoC from 0 to 1."""
        return np.asarray((1.0 - self.fade) / self.inv_cap0_mean)

    def step_response(self, ev: CellEval, dt_s: float) -> StepResponse:
        """How the reference element responds over a step of constant current (exact ZOH)."""
        a1 = np.exp(-dt_s / ev.tau1)
        a2 = np.exp(-dt_s / ev.tau2)
        memory = self.r_age * (self.v1 * a1 + self.v2 * a2)
        resistance = self.r_age * (ev.r0 + ev.r1 * (1.0 - a1) + ev.r2 * (1.0 - a2))
        return StepResponse(a1, a2, np.asarray(memory), np.asarray(resistance))

    def rc_step(self, ev: CellEval, resp: StepResponse, current_a: FloatArray) -> None:
        """Advance the reference element's RC pairs over the step."""
        self.v1 = self.v1 * resp.a1 + ev.r1 * (1.0 - resp.a1) * current_a
        self.v2 = self.v2 * resp.a2 + ev.r2 * (1.0 - resp.a2) * current_a

    def solve_current(self, ev: CellEval, resp: StepResponse, power_w: FloatArray) -> CurrentSolution:
        """The current that delivers `power_w` at the terminals (negative power: charging).

        The terminal voltage is taken at the end of the step (the RC pairs updated with the
        same current), which makes the power balance implicit and stable at any step:
        P = N (E - R I) I with E the OCV less the RC memory.
        """
        emf = ev.ocv - resp.memory
        p_cell = power_w / self.spec.n_series
        disc = emf * emf - 4.0 * resp.resistance * p_cell
        limited = disc < 0.0
        current = (emf - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * resp.resistance)
        terminal = self.spec.n_series * (emf - resp.resistance * current)
        return CurrentSolution(current_a=current, terminal_v=terminal, limited=limited)

    def overpotential(self, ev: CellEval, current_a: FloatArray) -> FloatArray:
        """The reference element's voltage drop (V) after the RC step: R0 I + v1 + v2, aged."""
        return np.asarray(self.r_age * (ev.r0 * current_a + self.v1 + self.v2))

    def pass_charge(self, current_a: FloatArray, dt_s: float) -> None:
        ah = current_a * dt_s / 3600.0
        self.soc_mean = self.soc_mean - ah * self.inv_cap0_mean / (1.0 - self.fade)
        self.ah_pending = self.ah_pending + ah

    def element_voltage(self, which: str, ev: CellEval, eta_v: FloatArray) -> FloatArray:
        """Terminal voltage (V) of the highest ("hi") or lowest ("lo") element, linearised
        around the mean with the OCV slope (its deviation is a few % SoC at most)."""
        dev, k = (self.dev_hi, self.k_hi) if which == "hi" else (self.dev_lo, self.k_lo)
        return np.asarray(ev.ocv + ev.slope * dev - k * eta_v)

    def soc_hi(self) -> FloatArray:
        return np.asarray(self.soc_mean + self.dev_hi)

    # --- element by element, every sync -----------------------------------------------
    def sync(
        self,
        elapsed_s: float,
        *,
        slope: FloatArray,
        eta_v: FloatArray,
        balance_enabled: BoolArray,
        threshold_v: FloatArray,
    ) -> None:
        """Bring element deviations up to date and re-decide balancing.

        `elapsed_s` is the time since the last sync, over which the bleed resistors chosen
        then were on; `slope` is dOCV/dSoC at the mean SoC and `eta_v` the reference
        element's present overpotential. Work is on (n, 96) float32 arrays, in place.
        """
        scale = 1.0 / (1.0 - self.fade)
        coef = (self.ah_pending * scale).astype(np.float32)
        tmp = np.multiply(coef[:, None], self.dinv_cap)
        if elapsed_s > 0.0:
            tmp += self.sd_dev * np.float32(elapsed_s)
            self.soc_mean = self.soc_mean - self.sd_mean * elapsed_s
        self.dev -= tmp
        self.ah_pending[:] = 0.0
        if elapsed_s > 0.0 and some(self.bleed):
            bled_ah = self.spec.balance_current_a * elapsed_s / 3600.0
            np.multiply(self.inv_cap0, (bled_ah * scale).astype(np.float32)[:, None], out=tmp)
            tmp *= self.bleed
            mean_dz = tmp.mean(axis=1, dtype=np.float64)
            self.soc_mean = self.soc_mean - mean_dz
            tmp -= mean_dz.astype(np.float32)[:, None]
            self.dev -= tmp
            self.bled_ah_total += bled_ah * self.bleed.sum(axis=1)
        rel_v = tmp
        np.multiply(slope.astype(np.float32)[:, None], self.dev, out=rel_v)
        moving = np.abs(eta_v) > 1e-5
        if some(moving):
            rel_v -= (self.r_age * eta_v).astype(np.float32)[:, None] * self.k
        i_hi = np.argmax(rel_v, axis=1)[:, None]
        i_lo = np.argmin(rel_v, axis=1)[:, None]
        v_lo = np.take_along_axis(rel_v, i_lo, axis=1)
        self.spread_v = (np.take_along_axis(rel_v, i_hi, axis=1) - v_lo)[:, 0].astype(np.float64)
        self.dev_hi = np.take_along_axis(self.dev, i_hi, axis=1)[:, 0].astype(np.float64)
        self.k_hi = np.take_along_axis(self.k, i_hi, axis=1)[:, 0].astype(np.float64)
        self.dev_lo = np.take_along_axis(self.dev, i_lo, axis=1)[:, 0].astype(np.float64)
        self.k_lo = np.take_along_axis(self.k, i_lo, axis=1)[:, 0].astype(np.float64)
        if some(balance_enabled):
            rel_v -= v_lo + threshold_v.astype(np.float32)[:, None]
            self.bleed = rel_v > 0.0
            self.bleed &= balance_enabled[:, None]
        elif some(self.bleed):
            self.bleed[:] = False

    def recentre(self) -> None:
        """Remove float32 round-off drift from the deviations (their mean is zero by definition)."""
        drift = self.dev.mean(axis=1, dtype=np.float64)
        self.soc_mean = self.soc_mean + drift
        self.dev -= drift.astype(np.float32)[:, None]

    def element_socs(self) -> FloatArray:
        """Each element's true SoC, (n, 96), exact at any time (for tests and diagnostics)."""
        pending = (self.ah_pending / (1.0 - self.fade))[:, None] * self.dinv_cap.astype(np.float64)
        return np.asarray(self.soc_mean[:, None] + self.dev.astype(np.float64) - pending)

    def element_ocvs(self, temperature_c: FloatArray) -> FloatArray:
        """Each element's rested voltage, (n, 96), with the full nonlinear OCV."""
        return self.spec.cell.ocv(self.element_socs(), np.asarray(temperature_c)[:, None])
