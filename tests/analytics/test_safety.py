"""State of safety: the reactions against closed forms and an independent ODE solver, the SoS
formula by table, and the fast checks on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from evota.analytics.cellmodel import GAS_CONSTANT
from evota.analytics.safety import (
    REACTIONS,
    T_ONSET_C,
    T_TR_C,
    WEIGHTS,
    SafetyState,
    dtdt_alarm,
    reaction_progress,
    state_of_safety,
    voltage_collapse,
)


def k(name: str, temperature_c: float) -> float:
    r = next(r for r in REACTIONS if r.name == name)
    return r.a_per_s * math.exp(-r.ea_j_mol / (GAS_CONSTANT * (temperature_c + 273.15)))


def isothermal(temp_c: float, seconds: float, n: int = 61) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, seconds, n)
    return t, np.full(n, temp_c)


def test_the_tabulated_kinetics_are_kim_2007() -> None:
    table = {r.name: (r.a_per_s, r.ea_j_mol / 1000, r.heat_j_g) for r in REACTIONS}
    assert table == {
        "sei": (1.667e15, pytest.approx(135.08), 257.0),
        "anode": (2.5e13, pytest.approx(135.08), 1714.0),
        "cathode": (6.667e13, pytest.approx(139.6), 314.0),
        "electrolyte": (5.14e25, pytest.approx(274.0), 155.0),
    }
    assert sum(WEIGHTS) == pytest.approx(1.0)


def test_first_order_reactions_match_their_closed_form() -> None:
    t, temp = isothermal(130.0, 1800.0)
    alpha, _ = reaction_progress(t, temp)
    assert alpha[:, 0] == pytest.approx(1 - np.exp(-k("sei", 130.0) * t), abs=1e-12)
    t, temp = isothermal(210.0, 120.0)
    alpha, _ = reaction_progress(t, temp)
    assert alpha[:, 3] == pytest.approx(1 - np.exp(-k("electrolyte", 210.0) * t), abs=1e-12)


def test_cathode_reaction_matches_the_logistic_closed_form() -> None:
    t, temp = isothermal(190.0, 3600.0)
    alpha, _ = reaction_progress(t, temp)
    a = 1 / (1 + (1 - 0.04) / 0.04 * np.exp(-k("cathode", 190.0) * t))
    assert alpha[:, 2] == pytest.approx((a - 0.04) / 0.96, abs=1e-10)


def test_anode_reaction_matches_an_independent_ode_solver() -> None:
    """The self-limiting anode reaction is sub-stepped; scipy's RK45 at tight tolerance is the
    reference, on a ramp through its fast range."""
    t = np.linspace(0.0, 1800.0, 1801)
    temp = 100.0 + 60.0 * t / 1800.0

    def rhs(time: float, y: np.ndarray) -> list[float]:
        tc = 100.0 + 60.0 * time / 1800.0
        rate = k("anode", tc) * math.exp(-y[1] / 0.033) * y[0]
        return [-rate, rate]

    ref = solve_ivp(rhs, (0, 1800), [0.75, 0.033], t_eval=t, rtol=1e-10, atol=1e-12)
    alpha, _ = reaction_progress(t, temp)
    assert alpha[-1, 1] > 0.05  # the ramp does reach the reaction's range
    # T is held over each 1 s interval at its mean; RK45 follows the ramp exactly.
    assert alpha[:, 1] == pytest.approx(1 - ref.y[0] / 0.75, abs=2e-5)


# (temperature, bound on any alpha after a day, bound on 1 - SoS): Hatchard's SEI term is
# the only one that moves below 60 °C, by 3e-4 a day at 25 °C and 1 % at 45 °C.
OPERATING = {"25 °C": (25.0, 1e-3, 1e-4), "45 °C": (45.0, 0.012, 2e-3)}


@pytest.mark.parametrize("case", list(OPERATING), ids=list(OPERATING))
def test_a_day_at_operating_temperature_barely_moves_safety(case: str) -> None:
    temp_c, alpha_bound, sos_bound = OPERATING[case]
    t, temp = isothermal(temp_c, 86400.0, 25)
    alpha, _ = reaction_progress(t, temp)
    assert np.all(alpha[-1] < alpha_bound)
    assert np.all(alpha[-1, 1:] < 1e-4)
    assert 1 - state_of_safety(alpha, temp)[-1] < sos_bound


def test_state_carries_between_calls() -> None:
    t, temp = isothermal(140.0, 1200.0)
    whole, _ = reaction_progress(t, temp)
    _, mid = reaction_progress(t[:31], temp[:31])
    rest, _ = reaction_progress(t[30:], temp[30:], mid)
    assert rest[-1] == pytest.approx(whole[-1], rel=1e-9)


SOS_TABLE = {
    "cold and fresh": (25.0, (0, 0, 0, 0), 1.0),
    "at the onset": (T_ONSET_C, (0, 0, 0, 0), 1.0),
    "half way to the trigger": (0.5 * (T_ONSET_C + T_TR_C), (0, 0, 0, 0), 0.5),
    "at the trigger": (T_TR_C, (0, 0, 0, 0), 0.0),
    "past the trigger (clamped)": (300.0, (0, 0, 0, 0), 0.0),
    "SEI gone": (25.0, (1, 0, 0, 0), 1 - WEIGHTS[0]),
    "all reactions done": (25.0, (1, 1, 1, 1), 0.0),
}


@pytest.mark.parametrize("case", list(SOS_TABLE), ids=list(SOS_TABLE))
def test_sos_formula_by_table(case: str) -> None:
    temp, alphas, expected = SOS_TABLE[case]
    sos = state_of_safety(np.array([alphas], dtype=float), np.array([temp]))
    assert sos[0] == pytest.approx(expected, abs=1e-12)


def test_dtdt_alarm() -> None:
    t = np.arange(0.0, 60.0, 1.0)
    slow = 30 + 0.5 * t
    assert dtdt_alarm(t, slow) is None
    spike = np.full(t.size, 30.0)
    spike[20] = 35.0  # one bad sample: up 5 °C/s, then down
    assert dtdt_alarm(t, spike) is None
    fast = np.where(t < 40, 30.0, 30.0 + 2.0 * (t - 40))
    assert dtdt_alarm(t, fast) == 43.0


def test_voltage_collapse_versus_a_load_step() -> None:
    t = np.arange(0.0, 30.0, 0.5)
    current = np.where(t >= 10, 5.0, 0.0)
    load = 3.8 - 0.04 * current  # 200 mV from a 5 A step through 40 mOhm: explained
    assert voltage_collapse(t, load, current) is None
    collapse = np.where(t >= 20, 3.0, 3.8)  # 0.8 V gone with no current change
    assert voltage_collapse(t, collapse, np.zeros(t.size)) == 20.0


def test_misuse_raises_value_error() -> None:
    with pytest.raises(ValueError, match="increase"):
        reaction_progress(np.array([0.0, 0.0]), np.array([25.0, 25.0]))
    with pytest.raises(ValueError, match="T_tr"):
        state_of_safety(np.zeros((1, 4)), np.array([25.0]), t_onset_c=200, t_tr_c=100)
    assert SafetyState().alphas() == pytest.approx(np.zeros(4), abs=1e-15)
