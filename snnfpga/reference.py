"""The integer reference simulator: the golden model for DESIGN.md §3, vectorised over frames.

Stages carry the names the float neurons and the RTL use: *decode* (charge a membrane from
the incoming values), *encode* (fire: compare with the threshold LUTs) and, for IF rate
coding, *reset* by subtraction. Every value is an exact integer; matrix products run in
float64, which is exact because the IR's ``acc_bits`` (≤ 52) bounds every partial sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import BadOption
from .ir import INPUT as IR_INPUT
from .ir import Layer, Network, RateNeuron, Stage, TTFSNeuron

__all__ = ["LayerSpikes", "Result", "simulate", "decode", "encode_ttfs", "spike_values",
           "INPUT", "KIND_ENC", "KIND_CAL"]

#: key of the input encoder's spikes in :attr:`Result.spikes` (``input_coding == "spikes"``)
INPUT = Stage.INPUT
KIND_ENC, KIND_CAL = 0, 1
NO_SPIKE = -1


@dataclass
class LayerSpikes:
    """The spikes one stage emitted over a batch.

    TTFS / SC-TTFS: ``t_enc`` and ``t_cal`` of shape ``(N, n)``, ``-1`` where no spike.
    Rate: ``raster`` of shape ``(N, T, n)``.
    """

    t_enc: np.ndarray | None = None
    t_cal: np.ndarray | None = None
    raster: np.ndarray | None = None

    def count(self) -> np.ndarray:
        """Spikes per frame, shape ``(N,)``."""
        if self.raster is not None:
            return self.raster.reshape(self.raster.shape[0], -1).sum(axis=1)
        n = (self.t_enc >= 0).sum(axis=1)
        if self.t_cal is not None:
            n = n + (self.t_cal >= 0).sum(axis=1)
        return n

    def events(self, image: int) -> list[tuple[int, int, int]]:
        """Every event of one frame as ``(neuron, time, kind)``, sorted by (time, kind, neuron)."""
        out: list[tuple[int, int, int]] = []
        if self.raster is not None:
            ts, ns = np.nonzero(self.raster[image])
            out = [(int(n), int(t), KIND_ENC) for t, n in zip(ts, ns)]
        else:
            for kind, times in ((KIND_ENC, self.t_enc), (KIND_CAL, self.t_cal)):
                if times is None:
                    continue
                ns = np.nonzero(times[image] >= 0)[0]
                out += [(int(n), int(times[image, n]), kind) for n in ns]
        return sorted(out, key=lambda e: (e[1], e[2], e[0]))


@dataclass
class Result:
    """Output membranes ``(N, classes)``, classes ``(N,)`` and every stage's spikes."""

    output: np.ndarray
    classes: np.ndarray
    spikes: dict[Stage, LayerSpikes] = field(default_factory=dict)

    def spikes_per_frame(self) -> np.ndarray:
        total = np.zeros(len(self.classes), dtype=np.int64)
        for s in self.spikes.values():
            total += s.count()
        return total


# --------------------------------------------------------------------------- stages

def _exact_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` for integer arrays, exact while |partial sums| < 2**53 (IR guarantees it)."""
    return np.rint(x.astype(np.float64) @ w.astype(np.float64).T).astype(np.int64)


def _conv2d(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    out = _exact_matmul(cols, w.reshape(w.shape[0], -1))
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def _sum_pool(x: np.ndarray, layer: Layer) -> np.ndarray:
    p, k, s = layer.padding, layer.kernel, layer.stride
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.sum(axis=(-1, -2))


def _max_pool(x: np.ndarray, layer: Layer) -> np.ndarray:
    """The largest value in each window; padded positions are no element (they never win).

    Every window holds a real element (validation: ``2·padding <= kernel``), so the pad value
    never reaches the output. For the non-negative decoded values of a TTFS layer this is the
    value of the window's earliest spike (``dec_enc`` is non-increasing, no spike is 0).
    """
    p, k, s = layer.padding, layer.kernel, layer.stride
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=np.iinfo(np.int64).min)
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(-1, -2))


def apply_wiring(layer: Layer, x: np.ndarray) -> np.ndarray:
    """A weightless layer (flatten, sum pool, max pool) on a batch of integer values."""
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    x = x.reshape((x.shape[0],) + tuple(layer.in_shape))
    if layer.kind == "maxpool2d":
        return _max_pool(x, layer)
    return _sum_pool(x, layer)


def decode(layer: Layer, x: np.ndarray, with_bias: bool = True) -> np.ndarray:
    """Charge: ``b_j + Σ_i W_ij·x_i`` for a batch ``x`` of the layer's input values."""
    x = x.reshape((x.shape[0],) + tuple(layer.in_shape))
    if layer.kind == "dense":
        v = _exact_matmul(x.reshape(x.shape[0], -1), layer.weight)
        b = layer.bias
    else:
        v = _conv2d(x, layer.weight, layer.stride, layer.padding)
        b = layer.bias[:, None, None]
    if with_bias:
        v = v + b
    return v.reshape(v.shape[0], -1)


#: elements of one ``(values, T)`` comparison table in :func:`encode_ttfs` (a few are alive at
#: once, one byte each): the encode runs over the values in chunks of ``ENCODE_CHUNK // T``, so
#: its memory stays ~100 MB whatever the batch, the layer width and T (issue 13)
ENCODE_CHUNK = 1 << 24


def encode_ttfs(v: np.ndarray, neuron: TTFSNeuron) -> tuple[np.ndarray, np.ndarray | None]:
    """Fire: ``t_e = min{t : v ≥ enc[t]}``, then ``t_c = min{t ≥ t_e : v − enc[t_e] ≥ cal[t]}``."""
    v = np.asarray(v)
    enc = np.asarray(neuron.enc, dtype=np.int64)
    cal = np.asarray(neuron.cal, dtype=np.int64) if neuron.calibrated else None
    flat = v.reshape(-1)
    t_enc = np.empty(flat.shape, dtype=np.int64)
    t_cal = np.empty(flat.shape, dtype=np.int64) if cal is not None else None
    step = max(1, ENCODE_CHUNK // len(enc))
    for a in range(0, flat.size, step):
        part = slice(a, a + step)
        t_enc[part], tc = _encode_chunk(flat[part], enc, cal)
        if t_cal is not None:
            t_cal[part] = tc
    return t_enc.reshape(v.shape), None if t_cal is None else t_cal.reshape(v.shape)


def _encode_chunk(v: np.ndarray, enc: np.ndarray, cal: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`encode_ttfs` on a 1-d array of membranes."""
    T = len(enc)
    ge = v[..., None] >= enc
    fired = ge.any(axis=-1)
    t_enc = np.where(fired, ge.argmax(axis=-1), NO_SPIKE)
    if cal is None:
        return t_enc, None
    del ge
    r = v - enc[np.maximum(t_enc, 0)]
    ok = (r[..., None] >= cal) & (np.arange(T) >= t_enc[..., None]) & fired[..., None]
    t_cal = np.where(ok.any(axis=-1), ok.argmax(axis=-1), NO_SPIKE)
    return t_enc, t_cal


def spike_values(neuron: TTFSNeuron, t_enc: np.ndarray, t_cal: np.ndarray | None) -> np.ndarray:
    """Decode: ``dec_enc[t_e] + dec_cal[t_c]``, a missing spike contributing 0."""
    dec_enc = np.asarray(neuron.dec_enc, dtype=np.int64)
    x = np.where(t_enc >= 0, dec_enc[np.maximum(t_enc, 0)], 0)
    if t_cal is not None:
        dec_cal = np.asarray(neuron.dec_cal, dtype=np.int64)
        x = x + np.where(t_cal >= 0, dec_cal[np.maximum(t_cal, 0)], 0)
    return x


# --------------------------------------------------------------------------- networks

def simulate(net: Network, frames: np.ndarray) -> Result:
    """Run a batch of integer frames ``(N, *input.shape)`` through the network."""
    frames = np.asarray(frames)
    if frames.ndim == len(net.input.shape):
        frames = frames[None]
    if tuple(frames.shape[1:]) != tuple(net.input.shape) and frames.reshape(len(frames), -1).shape[1] != net.input.size:
        raise BadOption(f"frames must have shape (N, {', '.join(map(str, net.input.shape))}), not {frames.shape}")
    x = frames.reshape((len(frames),) + tuple(net.input.shape)).astype(np.int64)
    lo, hi = net.input.value_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise BadOption(f"frame values must lie in {lo}..{hi} (input.bits={net.input.bits}), "
                         f"found {int(x.min())}..{int(x.max())}")
    if net.coding == "rate":
        return _simulate_rate(net, x)
    return _simulate_ttfs(net, x)


def _simulate_ttfs(net: Network, x: np.ndarray) -> Result:
    spikes: dict[Stage, LayerSpikes] = {}
    n = len(x)
    if net.input.input_coding == "spikes":
        t_e, t_c = encode_ttfs(x.reshape(n, -1), net.input.neuron)
        spikes[INPUT] = LayerSpikes(t_e, t_c)
        x = spike_values(net.input.neuron, t_e, t_c)
    vals: dict[int, np.ndarray] = {IR_INPUT: x}  # each layer's output: values, or a branch's membranes
    out = None
    for i, layer in enumerate(net.layers):
        src = [vals[j] for j in net.sources(i)]
        if layer.kind == "add":  # the branches' membranes, biases included, charge one membrane
            v = src[0] + src[1]
        elif not layer.weighted:
            vals[i] = apply_wiring(layer, src[0])
            continue
        else:
            v = decode(layer, src[0])
            if layer.neuron is None and net.branch_of(i) is not None:
                vals[i] = v
                continue
        if layer.neuron is None:  # output layer: decode only
            out = v
            break
        t_e, t_c = encode_ttfs(v, layer.neuron)
        spikes[Stage(i)] = LayerSpikes(t_e, t_c)
        vals[i] = spike_values(layer.neuron, t_e, t_c)
    return Result(output=out, classes=out.argmax(axis=1), spikes=spikes)


def _fire_rate(v: np.ndarray, neuron: RateNeuron) -> tuple[np.ndarray, np.ndarray]:
    s = v >= neuron.theta
    return s, v - s * neuron.theta


def _constant(net: Network) -> set[int]:
    """Layers whose output is the same at every step: wiring of direct pixels (rate coding)."""
    const = {IR_INPUT} if net.input.input_coding == "direct" else set()
    for i, layer in enumerate(net.layers):
        if not layer.weighted and layer.kind != "add" and net.sources(i)[0] in const:
            const.add(i)
    return const


def _simulate_rate(net: Network, x: np.ndarray) -> Result:
    n, T = len(x), net.timesteps
    flat_x = x.reshape(n, -1)
    stages = [i for i in range(len(net.layers)) if net.spiking(i)]
    out_i = next(i for i in reversed(range(len(net.layers))) if net.layers[i].weighted)
    v = {}
    for i in stages + [out_i]:
        neuron = net.layers[i].neuron
        v0 = neuron.v0 if isinstance(neuron, RateNeuron) else 0
        v[i] = np.full((n, net.layers[i].n_out), v0, dtype=np.int64)
    rasters: dict[Stage, np.ndarray] = {}
    if net.input.input_coding == "spikes":
        v_in = np.full(flat_x.shape, net.input.neuron.v0, dtype=np.int64)
        rasters[INPUT] = np.zeros((n, T, flat_x.shape[1]), dtype=bool)
    for i in stages:
        rasters[Stage(i)] = np.zeros((n, T, net.layers[i].n_out), dtype=bool)
    # a layer fed direct pixels (through wiring) sees the same current every step: compute it once
    const = _constant(net)
    cached: dict[int, np.ndarray] = {}
    # --- LIF leak (issue 12): the stages whose membranes leak, v ← v − (v >> k) from step 1 on
    leaky = [(i, net.layers[i].neuron.leak_shift) for i in stages
             if getattr(net.layers[i].neuron, "leak_shift", None) is not None]
    for t in range(T):
        for i, k in leaky if t else ():
            v[i] -= v[i] >> k  # numpy's >> on int64 is the arithmetic shift: floor(v / 2**k)
        if net.input.input_coding == "spikes":
            v_in += flat_x
            s, v_in = _fire_rate(v_in, net.input.neuron)
            rasters[INPUT][:, t] = s
            vals = {IR_INPUT: s.astype(np.int64)}
        else:
            vals = {IR_INPUT: flat_x}
        for i, layer in enumerate(net.layers):
            srcs = net.sources(i)
            if layer.kind == "add":
                v[i] += vals[srcs[0]] + vals[srcs[1]]
            elif not layer.weighted:
                if i not in cached:
                    vals[i] = apply_wiring(layer, vals[srcs[0]])
                    if i in const:
                        cached[i] = vals[i]
                vals[i] = cached.get(i, vals.get(i))
                continue
            else:
                if srcs[0] in const:
                    if i not in cached:
                        cached[i] = decode(layer, vals[srcs[0]])
                    inc = cached[i]
                else:
                    inc = decode(layer, vals[srcs[0]])
                if net.branch_of(i) is not None:  # charges its add's membrane
                    vals[i] = inc
                    continue
                v[i] += inc
            if layer.neuron is None:
                break
            s, v[i] = _fire_rate(v[i], layer.neuron)
            rasters[Stage(i)][:, t] = s
            vals[i] = s.astype(np.int64)
    out = v[out_i]
    return Result(output=out, classes=out.argmax(axis=1),
                  spikes={k: LayerSpikes(raster=r) for k, r in rasters.items()})
