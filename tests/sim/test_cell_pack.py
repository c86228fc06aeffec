"""The simulated cell and pack: OCV, resistance, relaxation, charge, energy, heat, balancing."""

from __future__ import annotations

import numpy as np
import pytest

from evota.sim.ageing import AgeingLaw, AgeingState, initial_ageing
from evota.sim.cell import arrhenius, default_cell
from evota.sim.pack import PackSpec, PackState
from evota.sim.thermal import ThermalSpec, thermal_step

CELL = default_cell()


@pytest.mark.parametrize("temperature_c", [-20.0, 0.0, 25.0, 45.0])
def test_ocv_rises_strictly_with_soc_and_inverts(temperature_c: float) -> None:
    soc = np.linspace(0.0, 1.0, 2001)
    ocv = CELL.ocv(soc, np.full_like(soc, temperature_c))
    assert np.all(np.diff(ocv) > 0)
    assert 2.9 < ocv[0] < 3.1 and 4.1 < ocv[-1] < 4.25
    back = CELL.soc_from_ocv(ocv[100:-100], temperature_c)
    np.testing.assert_allclose(back, soc[100:-100], atol=2e-4)


def test_cold_cells_read_a_few_mv_high_at_rest() -> None:
    soc = np.linspace(0.2, 0.9, 15)
    shift = CELL.ocv(soc, np.full_like(soc, -10.0)) - CELL.ocv(soc, np.full_like(soc, 25.0))
    assert np.all(shift > 0) and np.all(shift < 0.02)


def test_resistance_and_relaxation_grow_in_the_cold_by_arrhenius() -> None:
    r0, r1, _tau1, r2, tau2 = CELL.resistances(np.array([0.5, 0.5, 0.5]), np.array([25.0, 0.0, -10.0]))
    assert r0[1] / r0[0] == pytest.approx(2.1, rel=0.05)  # 20 kJ/mol, as the analytics anchor derives
    assert r0[2] / r0[0] == pytest.approx(2.9, rel=0.05)
    assert np.all(np.diff(r1) > 0) and np.all(np.diff(r2) > 0) and np.all(np.diff(tau2) > 0)
    assert tau2[2] > 1500.0  # the slow pair needs more than half an hour at -10 °C
    assert float(arrhenius(20_000.0, 25.0)) == pytest.approx(1.0)


def test_plating_limit_falls_with_cold_and_with_charge() -> None:
    c = CELL.plating_c_rate(np.array([0.5, 0.5, 0.5, 0.9]), np.array([25.0, 0.0, -10.0, 25.0]))
    assert c[0] == pytest.approx(1.8)
    assert 0.2 < c[1] < 0.35 and 0.08 < c[2] < 0.15
    assert c[3] < c[0]


def _pack(n: int = 3, soc: float = 0.8, **spec: float) -> PackState:
    return PackState(PackSpec(**spec), n, np.random.default_rng(1), soc=np.full(n, soc), age_days=np.zeros(n))  # type: ignore[arg-type]


def test_coulomb_count_moves_soc_by_charge_over_capacity() -> None:
    pack = _pack()
    capacity = pack.capacity_ah.copy()
    for _ in range(60):  # 60 min at capacity/2 A: half the charge out
        pack.pass_charge(capacity / 2.0, 60.0)
    np.testing.assert_allclose(pack.soc_mean, 0.3, atol=1e-9)
    before = pack.element_socs()
    pack.pass_charge(capacity * 0.1, 3600.0)
    pack.sync(
        0.0,
        slope=CELL.ocv_slope(pack.soc_mean),
        eta_v=np.zeros(3),
        balance_enabled=np.zeros(3, bool),
        threshold_v=np.ones(3),
    )
    # Each element moves by the charge over its own capacity.
    expected = before - (capacity * 0.1)[:, None] * pack.inv_cap0.astype(float)
    np.testing.assert_allclose(pack.element_socs(), expected, atol=2e-6)


def test_energy_is_conserved_between_chemistry_terminals_and_heat() -> None:
    pack, dt = _pack(soc=0.9), 60.0
    temp = np.full(3, 10.0)
    chem = term = heat = 0.0
    ocv_sum = 0.0
    for _ in range(60):  # one hour at 40 kW
        ev = CELL.evaluate(pack.soc_mean, temp)
        resp = pack.step_response(ev, dt)
        current = pack.solve_current(ev, resp, np.full(3, 40e3)).current_a
        v1, v2 = pack.v1.copy(), pack.v2.copy()
        pack.rc_step(ev, resp, current)
        eta = pack.overpotential(ev, current)
        chem += float(np.sum(96 * ev.ocv * current)) * dt
        ocv_sum += float(ev.ocv.mean())
        term += float(np.sum(96 * (ev.ocv - eta) * current)) * dt
        # Heat in R0 and in the two RC resistors (their mean voltage over the step).
        v1m, v2m = (v1 + pack.v1) / 2.0, (v2 + pack.v2) / 2.0
        heat += float(np.sum(96 * pack.r_age * (ev.r0 * current**2 + v1m**2 / ev.r1 + v2m**2 / ev.r2))) * dt
        pack.pass_charge(current, dt)
    assert term == pytest.approx(40e3 * 3 * 60 * dt, rel=1e-6)
    assert chem == pytest.approx(term + heat, rel=0.01)
    assert 0.0 < heat / chem < 0.05
    # The chemical energy is the charge taken at the mean OCV.
    charge_ah = float(np.sum((0.9 - pack.soc_mean) * pack.capacity_ah))
    assert chem / 3600.0 == pytest.approx(charge_ah * 96 * ocv_sum / 60, rel=0.005)


def test_thermal_step_is_exact_and_bounded() -> None:
    spec = ThermalSpec()
    t, amb, heat, ha = (
        np.array([20.0]),
        np.array([20.0]),
        np.array([3000.0]),
        np.array([spec.ha_charging_w_k]),
    )
    one = thermal_step(spec, t, amb, heat, ha, 3600.0)
    sixty = t
    for _ in range(60):
        sixty = thermal_step(spec, sixty, amb, heat, ha, 60.0)
    np.testing.assert_allclose(one, sixty)
    rise_per_hour = 3000.0 * 3600.0 / spec.heat_capacity_j_k
    assert 0.0 < float(one[0]) - 20.0 < rise_per_hour  # convection takes some away
    forever = thermal_step(spec, t, amb, heat, ha, 1e9)
    assert float(forever[0]) == pytest.approx(20.0 + 3000.0 / spec.ha_charging_w_k)


def _rest_with_balancing(pack: PackState, threshold_mv: float, days: int) -> list[float]:
    spreads = []
    for _ in range(days * 24):
        slope = CELL.ocv_slope(pack.soc_mean)
        on = np.full(pack.n, True)
        pack.sync(
            3600.0,
            slope=slope,
            eta_v=np.zeros(pack.n),
            balance_enabled=on,
            threshold_v=np.full(pack.n, threshold_mv / 1e3),
        )
        pack.soc_mean = np.full(pack.n, 0.9)  # held at the top by a charger, as every night
        spreads.append(float(pack.spread_v.mean()) * 1e3)
    return spreads


def test_balancing_keeps_spread_near_its_threshold_and_a_high_threshold_lets_it_grow() -> None:
    spec = {"imbalance_new": 0.006, "self_discharge_spread": 0.8}
    good = _rest_with_balancing(_pack(4, 0.9, **spec), 10.0, 20)
    lazy = _rest_with_balancing(_pack(4, 0.9, **spec), 80.0, 20)
    assert good[0] == pytest.approx(lazy[0])
    assert good[-1] < 15.0 < good[0]
    assert lazy[-1] > lazy[0] + 5.0


def test_ageing_follows_its_laws_and_resistance_grows_with_fade() -> None:
    law = AgeingLaw()
    rng = np.random.default_rng(0)
    fresh = initial_ageing(law, np.zeros(3), np.full(3, 20.0), rng)
    assert np.all(fresh.capacity_fade == 0.0)
    old = initial_ageing(law, np.full(500, 3 * 365.0), np.full(500, 15.0), rng)
    assert 0.03 < float(np.median(old.capacity_fade)) < 0.12
    assert np.all(old.resistance_factor(law) > 1.0)
    # Equivalent time: ageing one year in one step or in twelve gives the same loss.
    one, twelve = (AgeingState(np.full(1, 0.02), np.full(1, 0.01), np.zeros(1)) for _ in range(2))
    kwargs = {"temperature_c": np.full(1, 25.0), "soc": np.full(1, 0.5), "plated_ah": np.zeros(1)}
    one.advance(law, days=365.0, full_cycles=np.full(1, 200.0), **kwargs)
    for _ in range(12):
        twelve.advance(law, days=365.0 / 12, full_cycles=np.full(1, 200.0 / 12), **kwargs)
    np.testing.assert_allclose(one.capacity_fade, twelve.capacity_fade, rtol=1e-9)
    hot = AgeingState(np.full(1, 0.02), np.full(1, 0.01), np.zeros(1))
    hot.advance(
        law, days=365.0, full_cycles=np.full(1, 200.0), **(kwargs | {"temperature_c": np.full(1, 40.0)})
    )
    assert hot.capacity_fade[0] > one.capacity_fade[0]
