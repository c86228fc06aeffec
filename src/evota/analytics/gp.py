"""A small Gaussian-process regressor in NumPy: the capacity model's regression with uncertainty.

Kernel, on inputs standardised by the training set's mean and spread:

    k(x, x') = s_f^2 exp(-1/2 sum_d ((x_d - x'_d) / l_d)^2)  +  s_l^2 x.x'  +  s_n^2 [x = x']

an ARD squared-exponential for the curved part, a linear term so that the mean leans along
the trend past the training data instead of falling back to the average, and white noise for
what the features cannot explain (cell-to-cell scatter). The hyperparameters maximise the log
marginal likelihood (L-BFGS-B over their logarithms, from a few fixed starts, so a fit is
deterministic). Predictions return the mean and the standard deviation of a new observation,
noise included: a new cell scatters about the trend as the training cells did.

Why not scikit-learn: this is 150 lines, it keeps the runtime dependencies at NumPy and SciPy,
and its state round-trips through JSON (`to_dict`/`from_dict`) with no pickle.

The class does no I/O. Misuse (wrong shapes, too few points) raises `ValueError`: the callers
check operator data at the edge and raise `InputError` there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize

__all__ = ["GaussianProcess"]

FloatArray = NDArray[np.float64]
_LOG_BOUNDS = {"sf": (-4.0, 3.0), "ell": (-2.5, 4.6), "sl": (-9.0, 2.5), "sn": (-9.0, 0.5)}
_STARTS = ((0.0, 0.0, -1.0, -2.0), (0.0, 1.0, -2.0, -3.0), (-1.0, -0.5, 0.0, -4.0))


def _kernel(a: FloatArray, b: FloatArray, log_theta: FloatArray) -> FloatArray:
    d = a.shape[1]
    sf2 = math.exp(2 * log_theta[0])
    ell = np.exp(log_theta[1 : 1 + d])
    sl2 = math.exp(2 * log_theta[1 + d])
    sa, sb = a / ell, b / ell
    sq = np.sum(sa**2, axis=1)[:, None] + np.sum(sb**2, axis=1)[None, :] - 2.0 * sa @ sb.T
    out: FloatArray = sf2 * np.exp(-0.5 * np.maximum(sq, 0.0)) + sl2 * (a @ b.T)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianProcess:
    """A fitted GP. Build with `fit`; `predict` gives the mean and std in the target's units."""

    x_mean: FloatArray
    x_std: FloatArray
    y_mean: float
    y_std: float
    x_train: FloatArray  # standardised
    y_train: FloatArray  # standardised
    log_theta: FloatArray  # [log s_f, log l_1..l_d, log s_l, log s_n]

    @classmethod
    def fit(cls, x: FloatArray, y: FloatArray) -> GaussianProcess:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError("x must be (n, d) and y (n,)")
        if x.shape[0] < 5:
            raise ValueError("a GP needs at least 5 training points")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("training data must be finite")
        x_mean, x_std = x.mean(axis=0), x.std(axis=0)
        x_std = np.where(x_std > 0, x_std, 1.0)
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        xs, ys = (x - x_mean) / x_std, (y - y_mean) / y_std
        d = x.shape[1]
        bounds = [_LOG_BOUNDS["sf"], *([_LOG_BOUNDS["ell"]] * d), _LOG_BOUNDS["sl"], _LOG_BOUNDS["sn"]]

        def nll(theta: FloatArray) -> tuple[float, FloatArray]:
            return _neg_log_likelihood(xs, ys, theta)

        best: tuple[float, FloatArray] | None = None
        for sf, ell, sl, sn in _STARTS:
            x0 = np.array([sf, *([ell] * d), sl, sn])
            res = minimize(nll, x0, method="L-BFGS-B", jac=True, bounds=bounds)
            if best is None or float(res.fun) < best[0]:
                best = (float(res.fun), np.asarray(res.x, dtype=float))
        assert best is not None
        return cls(x_mean, x_std, y_mean, y_std, xs, ys, best[1])

    @property
    def noise_std(self) -> float:
        """The white-noise std in the target's units."""
        return math.exp(float(self.log_theta[-1])) * self.y_std

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Mean and std of a new observation at each row of x (noise included)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.shape[1] != self.x_train.shape[1]:
            raise ValueError(f"expected {self.x_train.shape[1]} features, got {x.shape[1]}")
        xs = (x - self.x_mean) / self.x_std
        chol = cho_factor(self._k_train(), lower=True)
        alpha = cho_solve(chol, self.y_train)
        k_star = _kernel(xs, self.x_train, self.log_theta)
        mean = k_star @ alpha
        v = cho_solve(chol, k_star.T)
        prior = np.diag(_kernel(xs, xs, self.log_theta)) + math.exp(2 * float(self.log_theta[-1]))
        var = np.maximum(prior - np.sum(k_star * v.T, axis=1), 1e-12)
        return mean * self.y_std + self.y_mean, np.sqrt(var) * self.y_std

    def _k_train(self) -> FloatArray:
        n = self.x_train.shape[0]
        k = _kernel(self.x_train, self.x_train, self.log_theta)
        return k + (math.exp(2 * float(self.log_theta[-1])) + 1e-10) * np.eye(n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "x_train": self.x_train.tolist(),
            "y_train": self.y_train.tolist(),
            "log_theta": self.log_theta.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GaussianProcess:
        """Rebuild; raises `ValueError`/`KeyError`/`TypeError` on a malformed dict (the caller
        maps them to its own error)."""
        x_train = np.asarray(d["x_train"], dtype=float)
        y_train = np.asarray(d["y_train"], dtype=float)
        log_theta = np.asarray(d["log_theta"], dtype=float)
        x_mean = np.asarray(d["x_mean"], dtype=float)
        x_std = np.asarray(d["x_std"], dtype=float)
        n, dim = x_train.shape
        if y_train.shape != (n,) or log_theta.shape != (dim + 3,) or x_mean.shape != (dim,):
            raise ValueError("GP arrays have inconsistent shapes")
        if x_std.shape != (dim,) or np.any(x_std <= 0):
            raise ValueError("GP x_std must be positive, one per feature")
        arrays = (x_train, y_train, log_theta, x_mean, x_std)
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("GP arrays must be finite")
        return cls(x_mean, x_std, float(d["y_mean"]), float(d["y_std"]), x_train, y_train, log_theta)


def _neg_log_likelihood(xs: FloatArray, ys: FloatArray, theta: FloatArray) -> tuple[float, FloatArray]:
    """-log p(y | x, theta) and its gradient in the log-parameters."""
    n, d = xs.shape
    sf2 = math.exp(2 * float(theta[0]))
    ell = np.exp(theta[1 : 1 + d])
    sl2 = math.exp(2 * float(theta[1 + d]))
    sn2 = math.exp(2 * float(theta[-1]))
    diff2 = ((xs[:, None, :] - xs[None, :, :]) / ell) ** 2  # (n, n, d)
    k_se = sf2 * np.exp(-0.5 * diff2.sum(axis=2))
    k_lin = sl2 * (xs @ xs.T)
    k = k_se + k_lin + (sn2 + 1e-10) * np.eye(n)
    try:
        chol = cho_factor(k, lower=True)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros(theta.size)
    alpha = cho_solve(chol, ys)
    nll = float(0.5 * ys @ alpha + np.sum(np.log(np.diag(chol[0]))) + 0.5 * n * math.log(2 * math.pi))
    w = cho_solve(chol, np.eye(n)) - np.outer(alpha, alpha)  # dNLL/dK = W / 2
    grad = np.empty(theta.size)
    grad[0] = np.sum(w * k_se)  # 0.5 * tr(W dK), dK/dlog s_f = 2 K_se
    grad[1 : 1 + d] = 0.5 * np.einsum("ij,ijd->d", w * k_se, diff2)
    grad[1 + d] = np.sum(w * k_lin)
    grad[-1] = sn2 * np.trace(w)
    return nll, grad
