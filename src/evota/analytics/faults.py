"""Injected faults for the anomaly tests and benchmark, built on the physics fixtures.

The voltage of a shorted cell comes from PyBaMM itself (`isc_rest.csv.gz`: the DFN cell
parked while a short of known resistance drains it), not from evota's circuit model, so the
detectors are not scored against their own assumptions. What is added here is what a real
string adds around that physics: cell-to-cell SoC imbalance (through the OCV slope),
per-channel sensor offsets, sensor noise and a 1 mV quantisation.

`fleet_features` builds check-up features for a fleet of cells of one type at many ages from
the ageing fixture's truth (PyBaMM SEI growth), with manufacturing and estimation scatter,
and injects three faults: a cell that fades like a faster-ageing physics cell, a contact
resistance, and a short's self-discharge. Everything is drawn from the caller's seeded
generator. No I/O: the callers load the fixtures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

__all__ = ["FleetSample", "StringNoise", "faulted_string", "fleet_features"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class StringNoise:
    soc_spread: float = 0.003  # 1-sigma SoC imbalance between cells
    offset_mv: float = 1.0  # per-channel sensor offset, uniform +-
    noise_mv: float = 0.5  # 1-sigma per sample
    quantum_mv: float = 1.0  # the AFE's resolution


def faulted_string(
    traces: Mapping[float, FloatArray],
    *,
    n_cells: int,
    shorts: Mapping[int, float],
    ocv_slope_v: float,
    rng: np.random.Generator,
    noise: StringNoise = StringNoise(),
) -> FloatArray:
    """Voltages (n_samples, n_cells) of a series string at rest.

    `traces` maps a short's resistance (inf for none) to the physics cell's rest voltage
    over time; `shorts` maps a cell index to its short's resistance (a key of `traces`).
    """
    healthy = np.asarray(traces[float("inf")], dtype=float)
    out = np.empty((healthy.size, n_cells))
    for c in range(n_cells):
        base = np.asarray(traces[shorts[c]], dtype=float) if c in shorts else healthy
        shift = ocv_slope_v * rng.normal(0.0, noise.soc_spread)
        offset = 1e-3 * rng.uniform(-noise.offset_mv, noise.offset_mv)
        v = base + shift + offset + 1e-3 * rng.normal(0.0, noise.noise_mv, healthy.size)
        out[:, c] = np.round(v / (1e-3 * noise.quantum_mv)) * (1e-3 * noise.quantum_mv)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class FleetSample:
    """Features per cell: [SoH, resistance growth, leak current (mA)], ages, fault labels."""

    features: FloatArray
    ages: FloatArray
    fault: tuple[str, ...]  # "" for a healthy cell


def fleet_features(
    cycles: FloatArray,
    soh: FloatArray,
    r_growth: FloatArray,
    fast_soh: FloatArray,
    *,
    n_cells: int,
    fault_share: float,
    rng: np.random.Generator,
    soh_scatter: float = 0.004,
    soh_estimate_std: float = 0.006,
    r_scatter: float = 0.02,
    leak_std_ma: float = 0.3,
    contact_growth: float = 1.25,
    short_leak_ma: float = 3.7,
) -> FleetSample:
    """A fleet of one cell type at ages uniform over the fixture's cycles.

    `soh`, `r_growth` are the type's truth per check-up cycle; `fast_soh` is a faster-ageing
    physics cell's SoH at the same cycles (the "fades like a bad batch" fault). Faults are
    split evenly between "fade", "resistance" and "short" (a 1 kOhm short's 3.7 mA).
    """
    ages = rng.uniform(cycles[1], cycles[-1], n_cells)
    s = np.interp(ages, cycles, soh) * (1 + rng.normal(0, soh_scatter, n_cells))
    g = np.interp(ages, cycles, r_growth) * (1 + rng.normal(0, r_scatter, n_cells))
    leak = np.zeros(n_cells)
    kinds = np.array([""] * n_cells, dtype=object)
    n_faults = round(fault_share * n_cells)
    faulty = rng.choice(n_cells, n_faults, replace=False)
    for j, c in enumerate(faulty):
        kind = ("fade", "resistance", "short")[j % 3]
        kinds[c] = kind
        if kind == "fade":
            s[c] = float(np.interp(ages[c], cycles, fast_soh)) * (1 + rng.normal(0, soh_scatter))
        elif kind == "resistance":
            g[c] *= contact_growth
        else:
            leak[c] = short_leak_ma
    s = s + rng.normal(0, soh_estimate_std, n_cells)  # the SoH estimator's own error
    leak = leak + rng.normal(0, leak_std_ma, n_cells)
    return FleetSample(np.column_stack([s, g, leak]), ages, tuple(str(k) for k in kinds))
