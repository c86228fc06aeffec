"""Identification: exact recovery on synthetic circuits (pure parts, by table), and sanity
against the physics-model fixtures (capacities, OCV shape, resistance rising in the cold)."""

from __future__ import annotations

import numpy as np
import pytest

from evota.analytics.cellmodel import CellModel
from evota.analytics.identify import OCV_GRID, CharRecord, fit_ocv, fit_pulse_segment, rest_runs
from evota.errors import InputError

from .conftest import TEMPERATURES


def simulate_2rc(
    time_s: np.ndarray, current: np.ndarray, r0: float, r1: float, tau1: float, r2: float, tau2: float
) -> np.ndarray:
    """Overpotential of a 2RC circuit, written plainly (a loop) as an independent reference."""
    v1 = v2 = 0.0
    out = np.empty(time_s.size)
    for k in range(time_s.size):
        if k:
            dt = time_s[k] - time_s[k - 1]
            a1, a2 = np.exp(-dt / tau1), np.exp(-dt / tau2)
            v1 = a1 * v1 + r1 * (1 - a1) * current[k]
            v2 = a2 * v2 + r2 * (1 - a2) * current[k]
        out[k] = r0 * current[k] + v1 + v2
    return out


def pulse_profile() -> tuple[np.ndarray, np.ndarray]:
    """60 s rest, 30 s 5 A, 120 s rest, 30 s -3.75 A, 120 s rest, 720 s 2.5 A, 3600 s rest."""
    pieces = [(60, 0.0), (30, 5.0), (120, 0.0), (30, -3.75), (120, 0.0), (720, 2.5), (3600, 0.0)]
    current = np.concatenate([np.full(n, i) for n, i in pieces])
    return np.arange(current.size, dtype=float), current


CIRCUITS = {
    "warm, fast": (0.012, 0.006, 8.0, 0.010, 250.0),
    "cold, slow": (0.035, 0.020, 30.0, 0.040, 900.0),
    "small slow pair": (0.015, 0.010, 15.0, 0.002, 120.0),
}


@pytest.mark.parametrize("name", list(CIRCUITS), ids=list(CIRCUITS))
def test_pulse_fit_recovers_a_known_circuit(name: str) -> None:
    params = CIRCUITS[name]
    t, i = pulse_profile()
    ocv = np.full(t.size, 3.7)
    v = ocv - simulate_2rc(t, i, *params)
    fitted, rmse = fit_pulse_segment(t, i, v, ocv)
    assert rmse < 1e-4
    assert fitted == pytest.approx(np.array(params), rel=0.03)


def test_ocv_from_slow_tests_cancels_a_symmetric_overpotential() -> None:
    """A C/20 discharge and charge 10 mV either side of a known curve average back to it."""
    q, i = 5.0, 0.25
    n = int(q / i * 3600 / 60)
    t_d = np.arange(n + 1) * 60.0
    true_ocv = lambda z: 3.0 + 1.2 * z + 0.1 * np.sin(3 * z)  # noqa: E731
    z_d = 1 - t_d * i / 3600 / q
    t_r = t_d[-1] + 60 * np.arange(1, 31)
    t_c = t_r[-1] + np.arange(1, n + 1) * 60.0
    z_c = (t_c - t_r[-1]) * i / 3600 / q
    time = np.concatenate([t_d, t_r, t_c])
    current = np.concatenate([np.full(t_d.size, i), np.zeros(t_r.size), np.full(t_c.size, -i)])
    voltage = np.concatenate([true_ocv(z_d) - 0.01, np.full(t_r.size, true_ocv(0.0)), true_ocv(z_c) + 0.01])
    ocv, capacity = fit_ocv(CharRecord(time, current, voltage))
    # The trapezoid rule ramps the current down over the first rest interval: 30 s more at i.
    assert capacity == pytest.approx(q + i * 30 / 3600, rel=1e-9)
    inside = (OCV_GRID > 0.02) & (OCV_GRID < 0.98)
    z_true = 1 - (1 - OCV_GRID[inside]) * capacity / q
    assert np.max(np.abs(ocv[inside] - true_ocv(z_true))) < 2e-3
    assert np.all(np.diff(ocv) > 0)


def test_ocv_test_without_a_charge_is_refused() -> None:
    t = np.arange(100) * 60.0
    with pytest.raises(InputError, match="no slow charge"):
        fit_ocv(CharRecord(t, np.full(100, 0.25), np.linspace(4.2, 3.0, 100)))


def test_rest_runs_finds_long_rests_only() -> None:
    t = np.arange(0, 5000, 10.0)
    i = np.where((t >= 1000) & (t < 1500), 2.5, 0.0)
    i[(t >= 3000) & (t < 3050)] = 1.0
    runs = rest_runs(CharRecord(t, i, np.full(t.size, 3.7)), 5.0, 1200.0)
    assert [(t[a], t[b]) for a, b in runs] == [(1500.0, 2990.0), (3050.0, 4990.0)]


def test_fitted_capacity_matches_the_drive_cycles_truth(
    cell_model: CellModel, drives: dict[int, dict[str, np.ndarray]]
) -> None:
    """Q_T from the OCV test equals the Q_T that defines the drives' SoC truth (their Ah per
    unit of SoC), at every temperature: one SoC definition for fit and truth."""
    for k, temp in enumerate(TEMPERATURES):
        d = drives[temp]
        ah = np.trapezoid(d["current_a"], d["time_s"]) / 3600.0
        q_truth = ah / (d["soc_true"][0] - d["soc_true"][-1])
        assert cell_model.capacity_ah[k] == pytest.approx(q_truth, rel=5e-4)


def test_fitted_model_is_physically_sane(cell_model: CellModel) -> None:
    assert np.all(np.diff(cell_model.ocv_v, axis=1) > 0)
    # Resistance rises as the cell cools, at every SoC, and follows a plausible activation energy.
    assert np.all(np.diff(cell_model.rc.r0_ohm, axis=0) < 0)
    assert 10_000 < cell_model.activation_energy_j_mol["r0"] < 60_000
    # R0 of an LG M50-class cell at 25 °C and mid SoC: around 10-30 mOhm.
    mid = np.argmin(np.abs(cell_model.rc.soc - 0.5))
    assert 0.008 < cell_model.rc.r0_ohm[2, mid] < 0.03
    for temp, rmse_mv in cell_model.fit_report["pulse_rmse_mv"].items():
        assert rmse_mv < 15.0, temp
