"""RUL on the PyBaMM ageing set: the power-law particle filter's 90 % interval of cycles to
80 % SoH holds the truth once half the life is seen, and narrows as history grows."""

from __future__ import annotations

import numpy as np
import pytest

from evota.analytics.rul import RulFilter

from .conftest import ageing_truth

SOH_STD = 0.006  # the SoH estimator's error on unseen cells (docs/analytics.md)


def history(cell: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    t = ageing_truth()
    rows = t["cell"] == cell
    n, soh = t["cycle"][rows], t["soh"][rows]
    eol = float(np.interp(0.8, soh[::-1], n[::-1])) if soh[-1] < 0.8 else None
    return n, soh, eol


@pytest.mark.parametrize("cell", ["B", "C", "D", "E", "F"])
def test_truth_end_of_life_is_inside_the_interval_once_half_the_life_is_seen(cell: str) -> None:
    n, soh, eol = history(cell)
    assert eol is not None
    y = soh + np.random.default_rng(3).normal(0, SOH_STD, soh.size)
    widths = []
    for share in (0.3, 0.5, 0.7):
        seen = n <= share * eol
        est = RulFilter("power", np.random.default_rng(1)).fit_history(
            n[seen], y[seen], np.full(seen.sum(), SOH_STD)
        )
        if share >= 0.5:
            assert est.eol_p05 <= eol <= est.eol_p95, (share, est)
        widths.append(est.width)
    assert widths[0] > widths[1] > widths[2]


def test_a_cell_that_has_not_reached_end_of_life_is_not_called_dead() -> None:
    n, soh, eol = history("A")  # SoH 0.804 at cycle 400, the last check-up
    assert eol is None
    y = soh + np.random.default_rng(3).normal(0, SOH_STD, soh.size)
    est = RulFilter("power", np.random.default_rng(1)).fit_history(n, y, np.full(n.size, SOH_STD))
    assert est.eol_p05 > 400 - 40 and est.eol_p50 > 400
