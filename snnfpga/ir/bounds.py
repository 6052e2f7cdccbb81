"""Worst-case value bounds: the membrane width (``acc_bits``) that makes overflow impossible.

A weighted layer's membrane, every partial sum of it (in any accumulation order, bias added
first or last), the per-time partial sums of weights the hardware keeps, and the thresholds
it is compared with must all fit ``acc_bits`` signed bits.
"""

from __future__ import annotations

import numpy as np

from .network import INPUT, InputSpec, Layer, Network, Neuron, RateNeuron, TTFSNeuron, signed_bits_for

__all__ = ["input_range", "value_range", "output_range", "layer_value_range", "layer_acc_bits"]


def output_range(neuron: Neuron) -> tuple[int, int]:
    """Range of the value one neuron sends per frame (TTFS) or per step (rate)."""
    if isinstance(neuron, RateNeuron):
        return 0, 1
    hi = max(neuron.dec_enc)
    if neuron.calibrated:
        hi += max(neuron.dec_cal)
    return 0, int(hi)


def value_range(net: Network, index: int) -> tuple[int, int]:
    """Range of one element of the value layer ``index`` outputs (``INPUT``: the input's) per
    frame (TTFS) or per step (rate); a weighted layer without a neuron outputs no value."""
    if index == INPUT:
        return _source_range(net.input)
    layer = net.layers[index]
    if layer.weighted or layer.kind == "add":
        if layer.neuron is None:
            raise ValueError(f"layer {index} ({layer.kind}) has no neuron: it sends no value")
        return output_range(layer.neuron)
    lo, hi = value_range(net, net.sources(index)[0])
    if layer.kind == "avgpool2d":
        k2 = layer.kernel * layer.kernel
        lo, hi = min(lo * k2, 0), max(hi * k2, 0)
    # maxpool2d and flatten pass values through: the range is unchanged
    return lo, hi


def input_range(net: Network, index: int) -> tuple[int, int]:
    """Range of one element of layer ``index``'s input (per step for rate coding)."""
    return value_range(net, net.sources(index)[0])


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


def _charge_ranges(net: Network, index: int) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Per output channel of weighted layer ``index``: the least and greatest charge one frame
    (TTFS) or step (rate) adds, bias included; and the range of the raw weight partial sums the
    hardware keeps per time. None when the sums are absurd (past 2**60)."""
    layer: Layer = net.layers[index]
    lo_in, hi_in = input_range(net, index)
    w = np.asarray(layer.weight, dtype=np.int64)
    # guard against int64 overflow for absurd files: estimate in float first
    est = float(np.abs(w.astype(np.float64)).sum(axis=tuple(range(1, w.ndim))).max(initial=0.0))
    est = est * max(abs(lo_in), abs(hi_in)) * max(net.timesteps, 1) + float(np.abs(layer.bias).max(initial=0))
    if est >= 2.0 ** 60:
        return None
    neg, pos = _weight_sums(w, lo_in, hi_in)
    b = np.asarray(layer.bias, dtype=np.int64)
    wneg, wpos = _weight_sums(w, 0, 1)
    wneg2, wpos2 = _weight_sums(w, -1, 0)
    raw_lo = int(min(wneg.min(), wneg2.min(), 0))
    raw_hi = int(max(wpos.max(), wpos2.max(), 0))
    return np.minimum(b, 0) + neg, np.maximum(b, 0) + pos, raw_lo, raw_hi


def layer_value_range(net: Network, index: int) -> tuple[int, int]:
    """The least and greatest integer any membrane register of layer ``index`` can hold.

    An ``add`` layer's membrane takes both branches' charges (their sums add per channel); a
    branch (a weighted layer an add reads) shares its add's membrane, hence its range.
    """
    layer: Layer = net.layers[index]
    if layer.weighted and net.branch_of(index) is not None:
        return layer_value_range(net, net.branch_of(index))
    parts = [_charge_ranges(net, b) for b in (net.sources(index) if layer.kind == "add" else (index,))]
    if any(part is None for part in parts):
        return -(1 << 62), 1 << 62
    step_lo = sum(part[0] for part in parts)
    step_hi = sum(part[1] for part in parts)
    lo = int(min(step_lo.min(), min(part[2] for part in parts), 0))
    hi = int(max(step_hi.max(), max(part[3] for part in parts), 0))
    neuron = layer.neuron
    if net.coding == "rate":
        v0 = neuron.v0 if isinstance(neuron, RateNeuron) else 0
        theta = neuron.theta if isinstance(neuron, RateNeuron) else None
        a_lo = np.full_like(step_lo, v0)
        a_hi = np.full_like(step_hi, v0)
        lo, hi = min(lo, v0), max(hi, v0)
        k = getattr(neuron, "leak_shift", None)
        for t in range(net.timesteps):
            if t and k:  # LIF leak v − (v >> k) (issue 12): monotone, so it maps bounds to bounds
                a_lo, a_hi = a_lo - (a_lo >> k), a_hi - (a_hi >> k)
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
