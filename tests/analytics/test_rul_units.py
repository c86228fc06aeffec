"""The RUL particle filter on fade curves with known end of life."""

from __future__ import annotations

import numpy as np
import pytest

from evota.analytics.rul import RulFilter, cycles_to_threshold


def test_closed_form_end_of_life() -> None:
    theta = np.array([[np.log(0.01), 0.5]])
    assert cycles_to_threshold("power", theta)[0] == pytest.approx(400.0)  # 0.2 = 0.01 sqrt(n)
    assert cycles_to_threshold("exponential", np.array([[np.log(1e-3)]]))[0] == pytest.approx(
        -np.log(0.8) / 1e-3
    )


def synthetic(a: float, b: float, n_max: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = np.arange(0, n_max + 1, 10.0)
    return n, 1 - a * n**b + rng.normal(0, 0.004, n.size)


@pytest.mark.parametrize("b", [0.5, 0.8, 1.1])
def test_interval_covers_the_truth_and_narrows_with_history(b: float) -> None:
    a = 0.2 / 500.0**b  # end of life at cycle 500 for every b
    widths = []
    for n_max in (100, 250, 400):
        n, y = synthetic(a, b, n_max, seed=11)
        est = RulFilter("power", np.random.default_rng(5)).fit_history(n, y, np.full(n.size, 0.004))
        assert est.eol_p05 <= 500.0 <= est.eol_p95, (n_max, est)
        widths.append(est.width)
    assert widths[0] > widths[1] > widths[2]
    assert widths[-1] < 0.3 * 500


def test_a_linear_fade_is_what_the_exponential_law_fits() -> None:
    n = np.arange(0, 301, 10.0)
    y = np.exp(-np.log(1 / 0.8) / 600 * n)  # end of life at 600
    est = RulFilter("exponential", np.random.default_rng(6)).fit_history(n, y, np.full(n.size, 0.003))
    assert est.eol_p50 == pytest.approx(600, rel=0.05)
    assert est.rul_p50 == pytest.approx(300, rel=0.1)


def test_filter_is_reproducible_and_refuses_bad_order() -> None:
    n, y = synthetic(0.01, 0.5, 200, seed=1)
    one = RulFilter("power", np.random.default_rng(9)).fit_history(n, y, np.full(n.size, 0.004))
    two = RulFilter("power", np.random.default_rng(9)).fit_history(n, y, np.full(n.size, 0.004))
    assert one == two
    f = RulFilter("power", np.random.default_rng(9))
    f.update(100, 0.9, 0.01)
    with pytest.raises(ValueError, match="order"):
        f.update(50, 0.95, 0.01)
    with pytest.raises(ValueError, match="finite"):
        f.update(200, float("nan"), 0.01)
