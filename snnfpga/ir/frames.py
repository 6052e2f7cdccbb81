"""Float images to the IR's integer pixels. Torch-free, so ``sim`` and ``boards`` use it too."""

from __future__ import annotations

import numpy as np

from ..errors import BadOption
from .network import Network

__all__ = ["QuantizationError", "quantize_frames"]


class QuantizationError(BadOption):
    """A value that does not fit its declared width."""


def quantize_frames(net: Network, x: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (any shape with the right size) → integer pixels: ``rint(x / input.scale)``."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), *net.input.shape)
    lo, hi = net.input.value_range
    q = np.rint(x / net.input.scale)
    if q.size and (q.min() < lo or q.max() > hi):
        raise QuantizationError(f"frames hold values outside the input range {lo}..{hi} "
                                f"(min {q.min()}, max {q.max()}): images must lie in [0, 1]")
    return q.astype(np.int64)
