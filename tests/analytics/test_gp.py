"""The NumPy Gaussian process: recovery of a known function, calibrated noise, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evota.analytics.gp import GaussianProcess


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n, 2))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1] + rng.normal(0, 0.05, n)
    return x, y


def test_gp_recovers_a_smooth_function_with_calibrated_intervals() -> None:
    x, y = data(80, 1)
    gp = GaussianProcess.fit(x, y)
    assert gp.noise_std == pytest.approx(0.05, rel=0.5)
    xt, yt = data(400, 2)
    mean, std = gp.predict(xt)
    inside = np.abs(xt) < 2.7  # away from the edges of the training cloud
    rows = inside.all(axis=1)
    assert np.sqrt(np.mean((mean[rows] - yt[rows]) ** 2)) < 0.08
    coverage = np.mean(np.abs(mean[rows] - yt[rows]) <= 1.96 * std[rows])
    assert 0.88 <= coverage <= 0.99


def test_the_linear_term_extrapolates_along_the_trend() -> None:
    x = np.linspace(0, 1, 20)[:, None]
    gp = GaussianProcess.fit(x, 2.0 * x[:, 0] + 1.0)
    mean, std = gp.predict(np.array([[1.3]]))
    assert mean[0] == pytest.approx(3.6, abs=0.05)
    assert std[0] < 0.1


def test_gp_round_trips_through_json() -> None:
    x, y = data(30, 3)
    gp = GaussianProcess.fit(x, y)
    again = GaussianProcess.from_dict(json.loads(json.dumps(gp.to_dict())))
    xt, _ = data(10, 4)
    assert again.predict(xt)[0] == pytest.approx(gp.predict(xt)[0], rel=1e-12)
    broken = gp.to_dict() | {"log_theta": [0.0]}
    with pytest.raises(ValueError, match="shapes"):
        GaussianProcess.from_dict(broken)


def test_gp_refuses_misuse() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        GaussianProcess.fit(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        GaussianProcess.fit(np.full((6, 1), np.nan), np.zeros(6))


def test_the_analytic_gradient_matches_finite_differences() -> None:
    from evota.analytics.gp import _neg_log_likelihood

    x, y = data(25, 5)
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    ys = (y - y.mean()) / y.std()
    theta = np.array([0.1, 0.3, -0.2, -1.0, -2.0])
    _, grad = _neg_log_likelihood(xs, ys, theta)
    step = 1e-6
    numeric = [
        (_neg_log_likelihood(xs, ys, theta + step * e)[0] - _neg_log_likelihood(xs, ys, theta - step * e)[0])
        / (2 * step)
        for e in np.eye(theta.size)
    ]
    assert grad == pytest.approx(np.array(numeric), rel=1e-5, abs=1e-7)
