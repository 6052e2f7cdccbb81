"""Float images to the IR's integer pixels. Torch-free, so ``sim`` and ``boards`` use it too."""

from __future__ import annotations

import numpy as np

from ..errors import BadOption
from .network import Network

__all__ = ["QuantizationError", "quantize_frames", "degenerate_frames"]


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


def degenerate_frames(net: Network, frames: np.ndarray, source: np.ndarray | None = None) -> str | None:
    """A warning when every integer pixel of ``frames`` is 0 (the network sees no input, so a
    bit-exact match or an accuracy says nothing); None otherwise. ``source``: the float images
    the frames were quantized from, to say when ``input.scale`` is what zeroed them."""
    frames = np.asarray(frames)
    if frames.size == 0 or np.any(frames):
        return None
    what = f"every pixel of the {len(frames)} frame(s) is 0"
    if source is None:
        what += f" (all-zero images, or input.scale={net.input.scale!r} maps every pixel to 0)"
    elif np.any(np.asarray(source, dtype=np.float64)):
        what += f": input.scale={net.input.scale!r} maps every pixel of these images to 0"
    return what + "; the network sees no input, so these results say nothing about it"
