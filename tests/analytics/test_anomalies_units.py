"""Anomaly building blocks on cases with known answers: robust peer z, CUSUM, the isolation
forest, the leave-one-out string deviation and the short screen's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from evota.analytics.anomalies import cusum_alarm, isc_screen, isoforest_scores, peer_z, rest_deviation
from evota.analytics.isoforest import IsolationForest, average_path_length


def test_peer_z_compares_with_cells_of_similar_age_only() -> None:
    rng = np.random.default_rng(0)
    ages = np.concatenate([rng.uniform(0, 50, 40), rng.uniform(250, 300, 40)])
    soh = np.where(ages < 100, 0.97, 0.85) + rng.normal(0, 0.003, 80)
    soh[5] -= 0.03  # young and 3 points low: 10 sigma against young peers
    z = peer_z(soh, ages, age_window=60, min_scale=0.002)
    assert z[5] < -6
    others = np.delete(z, 5)
    assert np.max(np.abs(others)) < 4  # old cells are not outliers among old cells
    lonely = peer_z(np.array([1.0, 2.0]), np.array([0.0, 500.0]), age_window=10, min_scale=0.1)
    assert np.all(np.isnan(lonely))


def test_peer_z_scale_floor_keeps_a_uniform_fleet_quiet() -> None:
    values = np.full(30, 0.9)
    values[0] = 0.9005
    z = peer_z(values, np.zeros(30), age_window=1, min_scale=0.002)
    assert z[0] == pytest.approx(0.25)


def test_cusum_catches_a_drift_no_single_point_shows() -> None:
    z = np.concatenate([np.zeros(20), np.full(20, 1.5)])
    assert cusum_alarm(z) == 25  # 1 per step above k=0.5 accumulates past h=5 on the 6th
    assert cusum_alarm(np.full(100, 0.4)) is None


def test_average_path_length_known_values() -> None:
    assert float(average_path_length(2.0)) == 1.0
    assert float(average_path_length(1.0)) == 0.0
    # c(256) = 2 (ln 255 + gamma) - 2 * 255/256
    assert float(average_path_length(256.0)) == pytest.approx(
        2 * (np.log(255) + 0.5772156649) - 2 * 255 / 256
    )


def test_isolation_forest_ranks_planted_outliers_first() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (500, 3))
    x[:5] += 6.0
    scores = isoforest_scores(x, np.random.default_rng(2))
    assert set(np.argsort(scores)[-5:].tolist()) == {0, 1, 2, 3, 4}
    assert 0.4 < float(np.median(scores)) < 0.55
    forest = IsolationForest(x, np.random.default_rng(3), n_trees=50)
    assert forest.score(x[:1])[0] > 0.6


def test_rest_deviation_cancels_what_the_string_shares() -> None:
    t = np.arange(100.0)
    common = 3.7 + 0.01 * np.exp(-t / 30)
    v = np.column_stack([common + 0.001 * k for k in range(5)])
    dev = rest_deviation(v)
    assert dev[:, 2] == pytest.approx(np.zeros(100), abs=1e-12)
    assert dev[:, 0] == pytest.approx(np.full(100, -0.0025), abs=1e-12)


def test_isc_screen_converts_a_voltage_drift_into_the_leak_current() -> None:
    """A drift of dOCV/dSoC x I / (3600 Q) per second in one cell reads back as I."""
    t = np.arange(0, 12 * 3600, 300.0)
    slope_ocv, q, leak = 0.5, 5.0, 0.0037  # V per unit SoC, Ah, A
    v = np.full((t.size, 8), 3.7)
    v[:, 3] -= slope_ocv * leak * t / (3600 * q)
    rng = np.random.default_rng(4)
    v += rng.normal(0, 5e-4, v.shape)
    res = isc_screen(t, v, np.zeros(t.size), ocv_slope_v=slope_ocv, capacity_ah=q)
    assert res.leak_a[3] == pytest.approx(leak, rel=0.1)
    assert res.flagged.tolist() == [False, False, False, True, False, False, False, False]
    assert res.resistance_ohm(3.7)[3] == pytest.approx(1000, rel=0.1)


def test_isc_screen_uses_only_the_last_rest() -> None:
    t = np.arange(0, 6 * 3600, 60.0)
    current = np.where(t < 3600, 5.0, 0.0)
    v = np.full((t.size, 4), 3.7)
    v[t < 3600, 1] -= 0.05  # a different voltage under load is not a short
    res = isc_screen(t, v, current, ocv_slope_v=0.5, capacity_ah=5.0)
    assert res.rest_s == pytest.approx(5 * 3600 - 60)
    assert not res.flagged.any()
