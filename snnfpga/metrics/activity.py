"""Activity counting: synaptic events per frame and the event lower bound on cycles.

A synaptic event is one (incoming event, outgoing connection) pair a layer core must process
(sim and boards report it; it needs only the IR and the integer reference):
for each weighted layer, every event of the stage feeding it (for a first layer fed direct
pixels: every nonzero pixel) times that input's fan-out (dense: ``n_out``; conv2d: the output
channels times the output positions whose window covers it; through sum pooling and flatten
the fan-outs of the pooled positions add up). Rate coding counts the events of every step;
direct pixels count once per frame (their current is the same at every step).
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ..ir import Layer, Network

__all__ = ["fanout", "synaptic_events", "synaptic_events_per_layer", "event_bound_cycles",
           "neuron_event_counts"]


def _cover(in_shape: tuple[int, ...], k: int, s: int, p: int, f_out: np.ndarray) -> np.ndarray:
    """Adjoint of a k×k window sum with stride s, padding p: ``(C, Ho, Wo)`` -> ``(C, H, W)``."""
    c, h, w = in_shape
    ho, wo = f_out.shape[-2:]
    acc = np.zeros((f_out.shape[0], h + 2 * p, w + 2 * p), dtype=np.int64)
    for dh in range(k):
        for dw in range(k):
            acc[:, dh:dh + s * (ho - 1) + 1:s, dw:dw + s * (wo - 1) + 1:s] += f_out
    return acc[:, p:p + h, p:p + w]


def fanout(layer: Layer) -> np.ndarray:
    """Connections of each input element of a weighted layer, flattened ``(n_in,)``."""
    if layer.kind == "dense":
        return np.full(layer.n_in, layer.n_out, dtype=np.int64)
    co, ho, wo = layer.out_shape
    ci = layer.in_shape[0]
    f = _cover(tuple(layer.in_shape), layer.kernel, layer.stride, layer.padding,
               np.full((1, ho, wo), co, dtype=np.int64))
    return np.broadcast_to(f, (ci,) + f.shape[1:]).reshape(-1).copy()


def _adjoint(layer: Layer, f_out: np.ndarray) -> np.ndarray:
    if layer.kind == "flatten":
        return f_out.reshape(-1)
    f = f_out.reshape(tuple(layer.out_shape))
    return _cover(tuple(layer.in_shape), layer.kernel, layer.stride, layer.padding, f).reshape(-1)


def neuron_event_counts(spikes: reference.LayerSpikes) -> np.ndarray:
    """Events per neuron per frame ``(N, n)`` (rate: summed over steps)."""
    if spikes.raster is not None:
        return spikes.raster.sum(axis=1).astype(np.int64)
    n = (spikes.t_enc >= 0).astype(np.int64)
    if spikes.t_cal is not None:
        n += spikes.t_cal >= 0
    return n


def synaptic_events(net: Network, frames: np.ndarray, ref: reference.Result | None = None) -> np.ndarray:
    """Synaptic events of each frame, ``(N,)`` (see the module docstring)."""
    return synaptic_events_per_layer(net, frames, ref).sum(axis=1)


def synaptic_events_per_layer(net: Network, frames: np.ndarray,
                              ref: reference.Result | None = None) -> np.ndarray:
    """Synaptic events of each frame and weighted layer, ``(N, weighted layers)``."""
    frames = np.asarray(frames)
    if ref is None:
        ref = reference.simulate(net, frames)
    n = len(ref.classes)
    if net.input.input_coding == "spikes":
        src = neuron_event_counts(ref.spikes[reference.INPUT])
    else:
        src = (frames.reshape(n, -1) != 0).astype(np.int64)
    per: list[np.ndarray] = []
    pending: list[Layer] = []
    for i, layer in enumerate(net.layers):
        if not layer.weighted:
            pending.append(layer)
            continue
        f = fanout(layer)
        for w in reversed(pending):
            f = _adjoint(w, f)
        pending = []
        per.append(src @ f)
        if layer.neuron is None:
            break
        src = neuron_event_counts(ref.spikes[i])
    return np.stack(per, axis=1).astype(np.int64)


def event_bound_cycles(synaptic: np.ndarray, lanes: int) -> np.ndarray:
    """``ceil(synaptic events / lanes)``, elementwise."""
    a = np.asarray(synaptic, dtype=np.int64)
    return -(-a // int(lanes))
