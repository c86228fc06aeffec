"""State of safety: Arrhenius progress of the four decomposition reactions, and the fast checks.

    SoS = 1 - sum_i w_i alpha_i(t) - lambda max(0, T - T_onset) / (T_tr - T_onset),

clamped to [0, 1]. alpha_i in [0, 1] is the progress of reaction i integrated over the
temperature history given (Kim et al. 2007, the Hatchard et al. 2001 lumped form):

    SEI decomposition     dc_sei/dt = -A exp(-Ea/RT) c_sei                  c_sei(0) = 0.15
    anode-electrolyte     dc_ne/dt  = -A exp(-Ea/RT) exp(-z/z_ref) c_ne      c_ne(0) = 0.75
                          dz/dt     = -dc_ne/dt                              z(0) = 0.033
    cathode-electrolyte   da/dt     =  A exp(-Ea/RT) a (1 - a)               a(0) = 0.04
    electrolyte           dc_e/dt   = -A exp(-Ea/RT) c_e                     c_e(0) = 1

alpha is the share consumed (1 - c/c(0)) or, for the cathode, (a - a(0)) / (1 - a(0)). With
the temperature held over a step the first-order and logistic forms are solved exactly; the
anode reaction, whose rate falls as its own SEI thickens, is sub-stepped (midpoint rule in z)
so no sub-step uses more than 2 % of what is left.

`REACTIONS` holds A and Ea as tabulated by Kim 2007 (doi 10.1016/j.jpowsour.2007.04.018)
after Hatchard 2001 (doi 10.1149/1.1377592). Those were measured on graphite and LiCoO2;
they are used here for the NMC/graphite cell as the published set the issue names, and the
cathode row is the one to replace when NMC-specific kinetics are adopted. The onset
temperatures follow the characteristic temperatures of Feng et al.'s review (2018, doi
10.1016/j.ensm.2017.05.013) for NMC/graphite cells, where the self-heating onset T1 lies
around 80-100 °C and the runaway trigger T3 around 200-250 °C depending on the cell: this
module takes 90 °C (`T_ONSET_C`) and 220 °C (`T_TR_C`), representative values rather than
one cell's measurement. Each reaction's own onset is listed for reference in
`Reaction.onset_c`. The weights are the reactions' shares of the total heat
release of Kim 2007 per gram (257, 1714, 314 and 155 J/g): a judgement, not a fit.

The integration is over the history the caller passes (the last hours of a pack's thermal
log), not over the cell's life. These kinetics were fitted above 80 °C: extrapolated down,
the SEI term moves alpha_sei by 3e-4 a day at 25 °C and 1 % a day at 45 °C (SoS by 0.01 % and
0.15 %; the tests pin both), and the other three by under 1e-4. Over years that would
"decompose" an SEI that in reality re-forms, so a life-long integral would mean nothing.

The reactive layer's checks are separate and faster than any integral: a temperature rise
faster than `DTDT_ALARM_C_PER_S` for `DTDT_HOLD_S`, and a voltage collapse that the current
cannot explain. No I/O here; callers pass arrays.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray

from evota.analytics.cellmodel import GAS_CONSTANT

__all__ = [
    "DTDT_ALARM_C_PER_S",
    "REACTIONS",
    "T_ONSET_C",
    "T_TR_C",
    "Reaction",
    "SafetyState",
    "dtdt_alarm",
    "reaction_progress",
    "state_of_safety",
    "voltage_collapse",
]

FloatArray = NDArray[np.float64]
T_ONSET_C = 90.0
T_TR_C = 220.0
DTDT_ALARM_C_PER_S = 1.0
DTDT_HOLD_S = 3.0
_MAX_SUBSTEP_FRACTION = 0.02


@dataclasses.dataclass(frozen=True)
class Reaction:
    name: str
    a_per_s: float
    ea_j_mol: float
    heat_j_g: float
    onset_c: float  # the reaction's own onset, for reference


REACTIONS: tuple[Reaction, ...] = (
    Reaction("sei", 1.667e15, 1.3508e5, 257.0, 90.0),
    Reaction("anode", 2.5e13, 1.3508e5, 1714.0, 120.0),
    Reaction("cathode", 6.667e13, 1.396e5, 314.0, 160.0),
    Reaction("electrolyte", 5.14e25, 2.74e5, 155.0, 200.0),
)
_TOTAL_HEAT = sum(r.heat_j_g for r in REACTIONS)
WEIGHTS = tuple(r.heat_j_g / _TOTAL_HEAT for r in REACTIONS)
C_SEI0, C_NE0, Z0, Z_REF, A_PE0, C_E0 = 0.15, 0.75, 0.033, 0.033, 0.04, 1.0


@dataclasses.dataclass(frozen=True)
class SafetyState:
    """Reaction state carried between calls (start fresh with `SafetyState()`)."""

    c_sei: float = C_SEI0
    c_ne: float = C_NE0
    z: float = Z0
    a_pe: float = A_PE0
    c_e: float = C_E0

    def alphas(self) -> FloatArray:
        return np.array(
            [
                1 - self.c_sei / C_SEI0,
                1 - self.c_ne / C_NE0,
                (self.a_pe - A_PE0) / (1 - A_PE0),
                1 - self.c_e / C_E0,
            ]
        )


def _rate(r: Reaction, temperature_c: float) -> float:
    return r.a_per_s * math.exp(-r.ea_j_mol / (GAS_CONSTANT * (temperature_c + 273.15)))


def _advance(s: SafetyState, dt: float, temperature_c: float) -> SafetyState:
    k_sei, k_ne, k_pe, k_e = (_rate(r, temperature_c) for r in REACTIONS)
    c_ne, z = s.c_ne, s.z
    left = dt
    while left > 0 and c_ne > 1e-12:
        k_eff = k_ne * math.exp(-z / Z_REF)
        h = left if k_eff * left <= _MAX_SUBSTEP_FRACTION else _MAX_SUBSTEP_FRACTION / k_eff
        # Midpoint rule in z: the rate at the SEI thickness half way through the sub-step.
        z_mid = z + 0.5 * c_ne * (1 - math.exp(-k_eff * h))
        consumed = c_ne * (1 - math.exp(-k_ne * math.exp(-z_mid / Z_REF) * h))
        c_ne, z, left = c_ne - consumed, z + consumed, left - h
    odds = (1 - s.a_pe) / s.a_pe if s.a_pe < 1 else 0.0
    return SafetyState(
        c_sei=s.c_sei * math.exp(-k_sei * dt),
        c_ne=c_ne,
        z=z,
        a_pe=1.0 / (1.0 + odds * math.exp(-k_pe * dt)),
        c_e=s.c_e * math.exp(-k_e * dt),
    )


def reaction_progress(
    time_s: FloatArray, temperature_c: FloatArray, start: SafetyState | None = None
) -> tuple[FloatArray, SafetyState]:
    """alpha (n_samples, 4) along a temperature history, and the state at its end.

    The temperature over each interval is the mean of its two ends.
    """
    if time_s.shape != temperature_c.shape or time_s.ndim != 1:
        raise ValueError("time and temperature must be one-dimensional and of one length")
    if np.any(np.diff(time_s) <= 0):
        raise ValueError("time must increase strictly")
    state = start or SafetyState()
    out = np.empty((time_s.size, len(REACTIONS)))
    out[0] = state.alphas()
    for k in range(1, time_s.size):
        state = _advance(
            state, float(time_s[k] - time_s[k - 1]), 0.5 * float(temperature_c[k] + temperature_c[k - 1])
        )
        out[k] = state.alphas()
    return out, state


def state_of_safety(
    alphas: FloatArray,
    temperature_c: FloatArray,
    *,
    weights: tuple[float, ...] = WEIGHTS,
    thermal_weight: float = 1.0,
    t_onset_c: float = T_ONSET_C,
    t_tr_c: float = T_TR_C,
) -> FloatArray:
    """The SoS formula of the module docstring, per sample, clamped to [0, 1]."""
    if alphas.shape != (temperature_c.size, len(weights)):
        raise ValueError("alphas must be (n_samples, n_reactions) with one weight per reaction")
    if not t_tr_c > t_onset_c:
        raise ValueError("T_tr must be above T_onset")
    thermal = thermal_weight * np.maximum(0.0, temperature_c - t_onset_c) / (t_tr_c - t_onset_c)
    sos = 1.0 - alphas @ np.asarray(weights) - thermal
    out: FloatArray = np.clip(sos, 0.0, 1.0)
    return out


def dtdt_alarm(
    time_s: FloatArray,
    temperature_c: FloatArray,
    *,
    rate_c_per_s: float = DTDT_ALARM_C_PER_S,
    hold_s: float = DTDT_HOLD_S,
) -> float | None:
    """The first time at which the temperature has risen faster than `rate_c_per_s` over
    every interval of the last `hold_s` seconds (a single noisy sample cannot trip it)."""
    rate = np.diff(temperature_c) / np.diff(time_s)
    fast = rate > rate_c_per_s
    run_start: float | None = None
    for k in range(rate.size):
        if fast[k]:
            run_start = float(time_s[k]) if run_start is None else run_start
            if float(time_s[k + 1]) - run_start >= hold_s - 1e-9:
                return float(time_s[k + 1])
        else:
            run_start = None
    return None


def voltage_collapse(
    time_s: FloatArray,
    voltage_v: FloatArray,
    current_a: FloatArray,
    *,
    drop_v: float = 0.3,
    window_s: float = 2.0,
    max_resistance_ohm: float = 0.1,
) -> float | None:
    """The first time the voltage falls by more than `drop_v` within `window_s` beyond what a
    current step through `max_resistance_ohm` explains (an internal short or a separator failure
    collapses the voltage with no load step to blame)."""
    j = 0
    for k in range(1, time_s.size):
        while time_s[k] - time_s[j] > window_s:
            j += 1
        seg = slice(j, k + 1)
        v_max = float(np.max(voltage_v[seg]))
        i_min = float(np.min(current_a[seg]))
        unexplained = (v_max - float(voltage_v[k])) - max_resistance_ohm * max(
            0.0, float(current_a[k]) - i_min
        )
        if unexplained > drop_v:
            return float(time_s[k])
    return None
