"""The committed PyBaMM ageing set is what docs/analytics.md says it is: SEI growth only,
capacity fading monotonically to about 75-80 %, one partial charge and one pulse per check-up."""

from __future__ import annotations

import numpy as np

from evota.analytics.timeseries import Segment

from .conftest import FIXTURES, ageing_truth

CELLS = ("A", "B", "C", "D", "E", "F")


def test_fixtures_stay_small() -> None:
    new = ("ageing.csv.gz", "ageing_truth.csv", "isc_rest.csv.gz")
    assert sum((FIXTURES / f).stat().st_size for f in new) < 1.5 * 2**20


def test_capacity_fades_monotonically_by_lithium_loss_only() -> None:
    t = ageing_truth()
    for cell in CELLS:
        rows = t["cell"] == cell
        cycles, soh, lli = t["cycle"][rows], t["soh"][rows], t["lli_pct"][rows]
        assert cycles[0] == 0 and soh[0] == 1.0
        assert np.all(np.diff(cycles) == 10)
        assert np.all(np.diff(soh) < 0) and np.all(np.diff(lli) > 0)
        assert soh[-1] < 0.81  # every cell reaches (or nearly reaches) end of life
        assert np.all(np.abs(t["lam_ne_pct"][rows]) < 1e-6) and np.all(np.abs(t["lam_pe_pct"][rows]) < 1e-6)
    fresh = t["capacity_ah"][t["cycle"] == 0]
    assert 0.01 < (fresh.max() - fresh.min()) / fresh.mean() < 0.06  # the cells differ when new


def test_every_checkup_has_a_partial_charge_and_a_pulse(
    ageing: tuple[dict[tuple[str, int], dict[str, Segment]], dict[tuple[str, int], float]],
) -> None:
    checkups, labels = ageing
    assert set(checkups) == set(labels)
    for (cell, cycle), tests in checkups.items():
        charge, pulse = tests["charge"], tests["pulse"]
        assert np.allclose(charge.current_a, -5.0 / 3, rtol=1e-3), (cell, cycle)  # C/3 CC
        charged = -np.trapezoid(charge.current_a, charge.time_s) / 3600
        # Kept from 15 % SoC to the CC end (at most 90 %): over half the capacity.
        assert 0.5 * labels[(cell, cycle)] < charged < 0.76 * labels[(cell, cycle)]
        assert pulse.current_a.max() == 5.0 and pulse.time_s[-1] < 70
