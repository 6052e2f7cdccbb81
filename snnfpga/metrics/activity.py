"""Activity counting: synaptic events per frame and the event lower bound on cycles.

A synaptic event is one (incoming event, outgoing connection) pair a layer core must process
(sim and boards report it; it needs only the IR and the integer reference):
for each weighted layer, every event of the stage feeding it (for a first layer fed direct
pixels: every nonzero pixel) times that input's fan-out (dense: ``n_out``; conv2d: the output
channels times the output positions whose window covers it; through sum pooling and flatten
the fan-outs of the pooled positions add up). Rate coding counts the events of every step;
direct pixels count once per frame (their current is the same at every step).

Through a max pool (``maxpool2d``, TTFS only) an event reaches the next layer only if it is its
window's maximum: each window forwards its earliest spike (whose value is the window's largest
decoded value), so a pooled element sends one event when any element of its window sends one
and none otherwise; over direct (unsigned) pixels, a pooled pixel is non-zero exactly when a
pixel of its window is. Either way the pooled element's count is the largest count in its
window, and the pooled elements' events, times their fan-outs, are the next layer's synaptic
events: exactly the events that carry what the reference decodes, so the event bound stays a
lower bound.

Every count of synaptic events in the project comes from here: :func:`event_counts` says how
many events each input element and each neuron emits (from the reference, or assumed where no
reference run is at hand), :func:`synaptic_events_from_counts` turns those into synaptic
events per weighted layer through the exact fan-outs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import reference
from ..ir import INPUT, Layer, Network

__all__ = ["fanout", "synaptic_events", "synaptic_events_per_layer", "event_bound_cycles",
           "neuron_event_counts", "pooled_counts", "event_counts", "synaptic_events_from_counts"]


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


def pooled_counts(layer: Layer, counts: np.ndarray) -> np.ndarray:
    """Events per frame of each ``maxpool2d`` output ``(N, n_out)`` from its input's ``(N, n_in)``:
    the largest count in the window (padding excluded: it sends nothing)."""
    c = np.asarray(counts, dtype=np.int64).reshape((-1,) + tuple(layer.in_shape))
    p, k, s = layer.padding, layer.kernel, layer.stride
    if p:
        c = np.pad(c, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(c, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(-1, -2)).reshape(c.shape[0], -1)


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
    return synaptic_events_from_counts(net, *event_counts(net, frames, ref))


def event_counts(net: Network, frames: np.ndarray | None = None, ref: reference.Result | None = None,
                 *, per_neuron: int = 1) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Events per frame of each input element and of each hidden weighted layer's neurons.

    Returns ``(inputs (N, input.size), {layer index: (N, n_out)})``. With ``ref`` the counts
    are the reference's spikes (rate: summed over the steps) and a direct pixel counts once
    when it is non-zero (the hardware skips zero pixels; needs ``frames``). What no run gives
    is assumed, ``N = 1`` without ``ref``: every direct pixel non-zero (an upper bound), every
    spiking input element and neuron ``per_neuron`` events per frame.
    """
    n = 1 if ref is None else len(ref.classes)
    hidden = [i for i in range(len(net.layers)) if net.spiking(i)]
    if net.input.input_coding == "spikes":
        src = (neuron_event_counts(ref.spikes[reference.INPUT]) if ref is not None
               else np.full((1, net.input.size), per_neuron, dtype=np.int64))
    elif frames is not None:
        src = (np.asarray(frames).reshape(n, -1) != 0).astype(np.int64)
    else:
        src = np.ones((n, net.input.size), dtype=np.int64)
    stage = {i: (neuron_event_counts(ref.spikes[i]) if ref is not None
                 else np.full((1, net.layers[i].n_out), per_neuron, dtype=np.int64)) for i in hidden}
    return src, stage


def synaptic_events_from_counts(net: Network, inputs: np.ndarray,
                                stage: Mapping[int, np.ndarray]) -> np.ndarray:
    """Synaptic events ``(N, weighted layers)`` from per-element event counts (:func:`event_counts`):
    each weighted layer (a residual branch too) gets the events of the value it reads times
    their fan-outs, traced back through sum pools and flattens to the stage, max pool or input
    that sent them."""
    counts: dict[int, np.ndarray] = {INPUT: np.asarray(inputs, dtype=np.int64)}
    per: list[np.ndarray] = []
    for i, layer in enumerate(net.layers):
        if layer.kind == "maxpool2d":  # reads events or pixels directly (validated): events in, events out
            counts[i] = pooled_counts(layer, counts[net.sources(i)[0]])
        elif i in stage:
            counts[i] = np.asarray(stage[i], dtype=np.int64)
        if not layer.weighted:
            continue
        f = fanout(layer)
        src = net.sources(i)[0]
        while src != INPUT and net.layers[src].kind in ("flatten", "avgpool2d"):
            f = _adjoint(net.layers[src], f)
            src = net.sources(src)[0]
        per.append(counts[src] @ f)
    return np.stack(per, axis=1).astype(np.int64)


def event_bound_cycles(synaptic: np.ndarray, lanes: int) -> np.ndarray:
    """``ceil(synaptic events / lanes)``, elementwise."""
    a = np.asarray(synaptic, dtype=np.int64)
    return -(-a // int(lanes))
