"""Small array helpers shared by the simulator's hot loop."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["some"]


def some(mask: NDArray[np.bool_]) -> bool:
    """`mask.any()`, about four times cheaper on small arrays (it runs every step, often)."""
    return bool(np.count_nonzero(mask))
