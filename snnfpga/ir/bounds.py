"""Worst-case value bounds: the membrane width (``acc_bits``) that makes overflow impossible.

A weighted layer's membrane, every partial sum of it (in any accumulation order, bias added
first or last), the per-time partial sums of weights the hardware keeps, and the thresholds
it is compared with must all fit ``acc_bits`` signed bits.
"""

from __future__ import annotations

import numpy as np

from .network import InputSpec, Layer, Network, Neuron, RateNeuron, TTFSNeuron, signed_bits_for

__all__ = ["input_range", "output_range", "layer_value_range", "layer_acc_bits"]


def output_range(neuron: Neuron) -> tuple[int, int]:
    """Range of the value one neuron sends per frame (TTFS) or per step (rate)."""
    if isinstance(neuron, RateNeuron):
        return 0, 1
    hi = max(neuron.dec_enc)
    if neuron.calibrated:
        hi += max(neuron.dec_cal)
    return 0, int(hi)


def input_range(net: Network, index: int) -> tuple[int, int]:
    """Range of one element of layer ``index``'s input (per step for rate coding)."""
    lo, hi = _source_range(net.input)
    for layer in net.layers[:index]:
        if layer.weighted:
            lo, hi = output_range(layer.neuron) if layer.neuron is not None else (lo, hi)
        elif layer.kind == "avgpool2d":
            k2 = layer.kernel * layer.kernel
            lo, hi = min(lo * k2, 0), max(hi * k2, 0)
        # maxpool2d and flatten pass values through: the range is unchanged
    return lo, hi


def _source_range(inp: InputSpec) -> tuple[int, int]:
    if inp.input_coding == "spikes" and inp.neuron is not None:
        return output_range(inp.neuron)
    return inp.value_range


def _weight_sums(w: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel: the least and greatest ``Σ_i W_ij·x_i`` over any subset of inputs."""
    w2 = w.reshape(w.shape[0], -1)
    a, b = w2 * lo, w2 * hi  # exact in int64 for any width the IR admits (checked below)
    neg = np.minimum(np.minimum(a, b), 0).sum(axis=1)
    pos = np.maximum(np.maximum(a, b), 0).sum(axis=1)
    return neg, pos


def layer_value_range(net: Network, index: int) -> tuple[int, int]:
    """The least and greatest integer any membrane register of layer ``index`` can hold."""
    layer: Layer = net.layers[index]
    lo_in, hi_in = input_range(net, index)
    w = np.asarray(layer.weight, dtype=np.int64)
    # guard against int64 overflow for absurd files: estimate in float first
    est = float(np.abs(w.astype(np.float64)).sum(axis=tuple(range(1, w.ndim))).max(initial=0.0))
    est = est * max(abs(lo_in), abs(hi_in)) * max(net.timesteps, 1) + float(np.abs(layer.bias).max(initial=0))
    if est >= 2.0 ** 60:
        return -(1 << 62), 1 << 62
    neg, pos = _weight_sums(w, lo_in, hi_in)
    b = np.asarray(layer.bias, dtype=np.int64)
    step_lo = np.minimum(b, 0) + neg
    step_hi = np.maximum(b, 0) + pos
    # raw weight partial sums (hardware per-time accumulators)
    wneg, wpos = _weight_sums(w, 0, 1)
    wneg2, wpos2 = _weight_sums(w, -1, 0)
    lo = int(min(step_lo.min(), wneg.min(), wneg2.min(), 0))
    hi = int(max(step_hi.max(), wpos.max(), wpos2.max(), 0))
    neuron = layer.neuron
    if net.coding == "rate":
        v0 = neuron.v0 if isinstance(neuron, RateNeuron) else 0
        theta = neuron.theta if isinstance(neuron, RateNeuron) else None
        a_lo = np.full_like(step_lo, v0)
        a_hi = np.full_like(step_hi, v0)
        lo, hi = min(lo, v0), max(hi, v0)
        for _ in range(net.timesteps):
            c_lo, c_hi = a_lo + step_lo, a_hi + step_hi
            lo, hi = min(lo, int(c_lo.min())), max(hi, int(c_hi.max()))
            if theta is None:
                a_lo, a_hi = c_lo, c_hi
            else:
                a_hi = np.where(c_hi >= theta, np.minimum(c_hi, np.maximum(theta - 1, c_hi - theta)), c_hi)
                a_lo = np.where(c_lo >= theta, c_lo - theta, c_lo)
        if theta is not None:
            hi = max(hi, theta)
    elif isinstance(neuron, TTFSNeuron):
        hi = max(hi, max(neuron.enc))
        if neuron.calibrated:
            hi = max(hi, max(neuron.cal))
    return lo, hi


def layer_acc_bits(net: Network, index: int) -> int:
    """Signed membrane width proven sufficient for layer ``index`` (see module docstring)."""
    lo, hi = layer_value_range(net, index)
    return signed_bits_for(lo, hi)
