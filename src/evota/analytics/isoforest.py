"""Isolation Forest (Liu, Ting and Zhou 2008) in NumPy: the anomaly detector's second opinion.

A tree splits a random sub-sample on a random feature at a uniform random value between that
feature's minimum and maximum, until each point is alone or the depth limit
ceil(log2(sample size)) is reached. Anomalies are isolated in few splits. The score of a point
is 2^(-E[h(x)] / c(psi)), with h the path length (plus c(size) for an unfinished leaf) and
c(n) = 2 H(n-1) - 2 (n-1)/n the mean path length of an unsuccessful search in a binary tree:
about 0.5 for ordinary points, towards 1 for anomalies.

Trees are stored as flat arrays (feature, threshold, left, right, size per node), so scoring
walks every point down a tree together, with no Python recursion per point. The forest is
seeded by the caller's generator. No I/O.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["IsolationForest", "average_path_length"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
EULER_GAMMA = 0.5772156649015329


def average_path_length(n: FloatArray | float) -> FloatArray:
    """c(n): the expected path length of an unsuccessful search among n points."""
    n_arr = np.asarray(n, dtype=float)
    safe = np.maximum(n_arr, 2.0)
    c = 2.0 * (np.log(safe - 1.0) + EULER_GAMMA) - 2.0 * (safe - 1.0) / safe
    return np.asarray(np.where(n_arr > 2, c, np.where(n_arr == 2, 1.0, 0.0)))


@dataclasses.dataclass(frozen=True, eq=False)
class _Tree:
    feature: IntArray  # -1 at a leaf
    threshold: FloatArray
    left: IntArray
    right: IntArray
    size: FloatArray


def _grow(x: FloatArray, rng: np.random.Generator, max_depth: int) -> _Tree:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    size: list[float] = []
    stack: list[tuple[IntArray, int, int]] = []  # (rows, depth, node id)

    def new_node(rows: IntArray) -> int:
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        size.append(float(rows.size))
        return len(feature) - 1

    root_rows = np.arange(x.shape[0])
    stack.append((root_rows, 0, new_node(root_rows)))
    while stack:
        rows, depth, node = stack.pop()
        if depth >= max_depth or rows.size <= 1:
            continue
        sub = x[rows]
        lo, hi = sub.min(axis=0), sub.max(axis=0)
        splittable = np.flatnonzero(hi > lo)
        if splittable.size == 0:
            continue
        f = int(rng.choice(splittable))
        t = float(rng.uniform(lo[f], hi[f]))
        go_left = sub[:, f] < t
        feature[node], threshold[node] = f, t
        lrows, rrows = rows[go_left], rows[~go_left]
        left[node] = new_node(lrows)
        right[node] = new_node(rrows)
        stack.append((lrows, depth + 1, left[node]))
        stack.append((rrows, depth + 1, right[node]))
    return _Tree(
        np.asarray(feature, dtype=np.int64),
        np.asarray(threshold),
        np.asarray(left, dtype=np.int64),
        np.asarray(right, dtype=np.int64),
        np.asarray(size),
    )


def _path_lengths(tree: _Tree, x: FloatArray) -> FloatArray:
    node = np.zeros(x.shape[0], dtype=np.int64)
    depth = np.zeros(x.shape[0])
    active = tree.feature[node] >= 0
    rows = np.arange(x.shape[0])
    while np.any(active):
        idx = rows[active]
        n = node[idx]
        go_left = x[idx, tree.feature[n]] < tree.threshold[n]
        node[idx] = np.where(go_left, tree.left[n], tree.right[n])
        depth[idx] += 1.0
        active = tree.feature[node] >= 0
    return depth + average_path_length(tree.size[node])


class IsolationForest:
    """Fit on feature vectors (n_samples, n_features); `score` gives values in (0, 1]."""

    def __init__(
        self, x: FloatArray, rng: np.random.Generator, *, n_trees: int = 200, sample_size: int = 256
    ) -> None:
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isfinite(x)):
            raise ValueError("an isolation forest needs a finite (n >= 2, d) array")
        psi = min(sample_size, x.shape[0])
        self.sample_size = psi
        depth = math.ceil(math.log2(psi)) if psi > 1 else 1
        self.trees = [
            _grow(x[rng.choice(x.shape[0], psi, replace=False)], rng, depth) for _ in range(n_trees)
        ]

    def score(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=float)
        mean_h = np.mean([_path_lengths(t, x) for t in self.trees], axis=0)
        out: FloatArray = 2.0 ** (-mean_h / float(average_path_length(float(self.sample_size))))
        return out
