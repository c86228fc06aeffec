"""The dense lookup reproduces the model's tables where they are defined, and extrapolates
the way the model says (Arrhenius for resistance, held for the rest)."""

from __future__ import annotations

import numpy as np
import pytest

from evota.analytics.cellmodel import CellModel, arrhenius_factor
from evota.analytics.grid import CH_OCV, CH_R0, CH_TAU2, ParameterGrid


def at(grid: ParameterGrid, soc: float, temp: float) -> np.ndarray:
    values, _ = grid.lookup(np.array([soc]), grid.temperature_row(np.array([temp])))
    return values[:, 0]


def test_grid_matches_model_tables_at_their_own_points(cell_model: CellModel, grid: ParameterGrid) -> None:
    for k, temp in enumerate(cell_model.temperature_c):
        for j in (10, 100, 190):
            z = float(cell_model.ocv_soc[j])
            assert at(grid, z, temp)[CH_OCV] == pytest.approx(cell_model.ocv_v[k, j], abs=1e-9)
        for j, z in enumerate(cell_model.rc.soc):
            z_grid = round(float(z) / 0.005) * 0.005  # R tables are linear in SoC between their points
            expected = np.interp(z_grid, cell_model.rc.soc, cell_model.rc.r0_ohm[k])
            assert at(grid, z_grid, temp)[CH_R0] == pytest.approx(expected, rel=1e-9), (temp, j)


def test_resistance_between_tables_is_log_linear_in_inverse_temperature(
    cell_model: CellModel, grid: ParameterGrid
) -> None:
    z = 0.5  # a grid point: between grid points SoC is linear, and a table knot's corner is cut
    r10 = np.interp(z, cell_model.rc.soc, cell_model.rc.r0_ohm[1])
    r25 = np.interp(z, cell_model.rc.soc, cell_model.rc.r0_ohm[2])
    ea = np.log(r10 / r25) / (1 / 283.15 - 1 / 298.15) * 8.314462618
    expected = r25 * arrhenius_factor(ea, np.array([17.0]), 25.0)[0]
    assert at(grid, z, 17.0)[CH_R0] == pytest.approx(expected, rel=1e-6)


def test_below_the_coldest_table_resistance_follows_the_fitted_activation_energy(
    cell_model: CellModel, grid: ParameterGrid
) -> None:
    z = 0.5
    factor = arrhenius_factor(cell_model.activation_energy_j_mol["r0"], np.array([-10.0]), 0.0)[0]
    r0_cold = np.interp(z, cell_model.rc.soc, cell_model.rc.r0_ohm[0])
    assert at(grid, z, -10.0)[CH_R0] == pytest.approx(r0_cold * factor, rel=1e-6)
    assert at(grid, z, -10.0)[CH_TAU2] == pytest.approx(at(grid, z, 0.0)[CH_TAU2])
    assert at(grid, z, -10.0)[CH_OCV] == pytest.approx(at(grid, z, 0.0)[CH_OCV])


def test_ocv_inverts_and_stays_monotone_past_the_tested_range(grid: ParameterGrid) -> None:
    rows = grid.temperature_row(np.full(5, 25.0))
    socs = np.array([-0.04, 0.03, 0.5, 0.97, 1.04])
    values, slope = grid.lookup(socs, rows)
    assert np.all(slope > 0)
    assert grid.ocv_to_soc(values[CH_OCV], rows) == pytest.approx(socs, abs=1e-9)
