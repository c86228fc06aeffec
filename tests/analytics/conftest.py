"""Fixtures for the analytics tests: the committed PyBaMM data, and the model fitted on it.

The model is fitted once per session (about a second): every accuracy test then scores that
model, so a regression in identification shows up as a failed SoC bound as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evota.analytics.cellmodel import CellModel
from evota.analytics.grid import ParameterGrid
from evota.analytics.identify import fit_cell_model
from evota.analytics.timeseries import (
    Segment,
    parse_capacity_labels,
    parse_characterization,
    parse_checkups,
    read_csv,
)

FIXTURES = Path(__file__).parent / "fixtures"
TEMPERATURES = (0, 10, 25, 40)


def load_drive(temp: int) -> dict[str, np.ndarray]:
    cols = read_csv(FIXTURES / f"drive_{temp}C.csv.gz")
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


@pytest.fixture(scope="session")
def cell_model() -> CellModel:
    tests = parse_characterization(read_csv(FIXTURES / "characterization.csv.gz"))
    return fit_cell_model(tests, name="LG M50T (PyBaMM DFN, ORegan2022)", voltage_limits_v=(2.5, 4.4))


@pytest.fixture(scope="session")
def grid(cell_model: CellModel) -> ParameterGrid:
    return ParameterGrid.from_model(cell_model)


@pytest.fixture(scope="session")
def drives() -> dict[int, dict[str, np.ndarray]]:
    return {t: load_drive(t) for t in TEMPERATURES}


@pytest.fixture(scope="session")
def ageing() -> tuple[dict[tuple[str, int], dict[str, Segment]], dict[tuple[str, int], float]]:
    """The PyBaMM ageing set: check-ups by (cell, cycle) and their C/20 capacities."""
    checkups = parse_checkups(read_csv(FIXTURES / "ageing.csv.gz"))
    labels = parse_capacity_labels(read_csv(FIXTURES / "ageing_truth.csv"))
    return checkups, labels


def ageing_truth() -> dict[str, np.ndarray]:
    cols = read_csv(FIXTURES / "ageing_truth.csv")
    out: dict[str, np.ndarray] = {k: np.asarray(v, dtype=float) for k, v in cols.items() if k != "cell"}
    out["cell"] = np.asarray(cols["cell"])
    return out


def isc_traces() -> tuple[np.ndarray, dict[float, dict[float, np.ndarray]]]:
    """The PyBaMM short fixture: time (s) and {start SoC: {R_isc: rest voltage}}, each cut to
    the shortest trace at that SoC (a 100 ohm short empties the cell at 30 % before 72 h)."""
    cols = read_csv(FIXTURES / "isc_rest.csv.gz")
    soc0 = np.asarray(cols["soc_start"], dtype=float)
    ohm = np.asarray([float(r) for r in cols["r_isc_ohm"]])
    t, v = np.asarray(cols["time_s"], dtype=float), np.asarray(cols["voltage_v"], dtype=float)
    out: dict[float, dict[float, np.ndarray]] = {}
    for s in np.unique(soc0):
        traces = {float(r): v[(soc0 == s) & (ohm == r)] for r in np.unique(ohm[soc0 == s])}
        n = min(tr.size for tr in traces.values())
        out[float(s)] = {r: tr[:n] for r, tr in traces.items()}
    times = t[(soc0 == soc0[0]) & np.isinf(ohm)]
    return times, out
