"""Every invariant the reference and the RTL rely on, checked with errors naming the field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .bounds import layer_acc_bits
from .network import (CODINGS, INPUT, INPUT_CODINGS, MAX_ACC_BITS, MAX_INPUT_BITS, MAX_LAYERS, MAX_NEURONS,
                      MAX_SCALE, MAX_TIMESTEPS, max_timesteps, MAX_WEIGHT_BITS, MAX_WEIGHTS, MAXPOOL_CODINGS, MIN_SCALE, POOL_KINDS,
                      WEIGHTED_KINDS, IRError, Layer, Network, Neuron, RateNeuron, TTFSNeuron)

__all__ = ["validate", "Reader"]

#: largest LIF ``leak_shift`` k (β = 1 − 2^-k; docs/ir.md, "Leaky rate neurons"; issue 12)
MAX_LEAK_SHIFT = 32


class Reader:
    """Typed access to a JSON document that fails with the file, the field and the value."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field_name: str, problem: str) -> IRError:
        return IRError(self.where, field_name, problem)

    def get(self, d: Any, key: str, path: str, types: type | tuple[type, ...]) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise self.fail(path, "is missing")
        value = d[key]
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, types) or isinstance(value, bool) and bool not in allowed:
            raise self.fail(path, f"must be {_type_name(types)}, not {brief(value)}")
        return value

    def int_list(self, d: Any, key: str, path: str) -> tuple[int, ...]:
        value = self.get(d, key, path, list)
        if not all(_is_int(x) for x in value):
            raise self.fail(path, f"must be a list of integers, not {brief(value)}")
        return tuple(value)


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a hostile file's values can be huge)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _type_name(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


# --------------------------------------------------------------------------- validation

def validate(net: Network, where: str = "<in memory>") -> None:
    """Check every invariant the reference and the RTL rely on; raise :class:`IRError`."""
    r = Reader(where)
    if not isinstance(net.coding, str) or net.coding not in CODINGS:
        raise r.fail("coding", f"must be one of {', '.join(CODINGS)}, not {brief(net.coding)}")
    _check_int(r, net.timesteps, "timesteps", 1, MAX_TIMESTEPS)
    if net.timesteps > max_timesteps(net.coding):
        raise r.fail("timesteps", f"a {net.coding} network takes T in 1..{max_timesteps(net.coding)} "
                                  f"(docs/ir.md, limits), not {net.timesteps}")
    T = net.timesteps
    inp = net.input
    _check_shape(r, inp.shape, "input.shape")
    _check_int(r, inp.bits, "input.bits", 1, MAX_INPUT_BITS)
    if not isinstance(inp.signed, (bool, np.bool_)):
        raise r.fail("input.signed", f"must be true or false, not {brief(inp.signed)}")
    if not isinstance(inp.input_coding, str) or inp.input_coding not in INPUT_CODINGS:
        raise r.fail("input.input_coding", f"must be 'direct' or 'spikes', not {brief(inp.input_coding)}")
    _check_scale(r, inp.scale, "input.scale")
    if not isinstance(net.provenance, dict):
        raise r.fail("provenance", f"must be an object, not {brief(net.provenance)}")
    if not isinstance(net.layers, list) or len(net.layers) > MAX_LAYERS:
        raise r.fail("layers", f"must hold at most {MAX_LAYERS} layers, not {len(net.layers)}")
    for i, layer in enumerate(net.layers):  # types and sizes first: every later check computes with them
        _check_layer_fields(r, layer, f"layers[{i}]")
    if inp.input_coding == "spikes":
        _check_neuron(r, inp.neuron, net.coding, T, "input.neuron", required=True)
    elif inp.neuron is not None:
        raise r.fail("input.neuron", "must be absent when input_coding is 'direct'")
    if not net.layers:
        raise r.fail("layers", "must hold at least one layer")
    wl = [i for i, layer in enumerate(net.layers) if layer.weighted]
    if not wl:
        raise r.fail("layers", "must hold at least one dense or conv2d layer")
    for i in range(len(net.layers)):  # the graph's structure first: later checks rely on it
        _check_sources(r, net, i, f"layers[{i}]")
    shapes: dict[int, tuple[int, ...]] = {INPUT: tuple(inp.shape)}
    for i, layer in enumerate(net.layers):
        p = f"layers[{i}]"
        srcs = net.sources(i)
        if layer.kind == "add":
            _check_add(r, net, i, p, shapes, T)
            shapes[i] = tuple(layer.out_shape)
            continue
        shape = shapes[srcs[0]]
        if tuple(layer.in_shape) != shape:
            what = "the input's shape" if srcs[0] == INPUT else f"layer {srcs[0]}'s output"
            raise r.fail(f"{p}.in_shape", f"must be {list(shape)} ({what}), not {list(layer.in_shape)!r}")
        expect_out = _out_shape(r, layer, p)
        if tuple(layer.out_shape) != expect_out:
            raise r.fail(f"{p}.out_shape", f"must be {list(expect_out)}, not {list(layer.out_shape)!r}")
        shapes[i] = expect_out
        if layer.kind == "maxpool2d":
            _check_maxpool(r, net, i, p)
        if not layer.weighted:
            continue
        w, b = layer.weight, layer.bias
        if layer.kind == "dense":
            want_w = (layer.out_shape[0], layer.n_in)
        else:
            want_w = (layer.out_shape[0], layer.in_shape[0], layer.kernel, layer.kernel)
        if w is None or tuple(w.shape) != want_w:
            raise r.fail(f"{p}.weight", f"must have shape {list(want_w)}, not {None if w is None else list(w.shape)!r}")
        if b is None or tuple(b.shape) != (layer.out_shape[0],):
            raise r.fail(f"{p}.bias", f"must have shape {[layer.out_shape[0]]}, not {None if b is None else list(b.shape)!r}")
        _check_int(r, layer.weight_bits, f"{p}.weight_bits", 2, MAX_WEIGHT_BITS)
        lim = 1 << (layer.weight_bits - 1)
        w_lo, w_hi = (int(w.min()), int(w.max())) if w.size else (0, 0)  # exact, whatever the dtype
        if w_lo < -lim or w_hi > lim - 1:
            bad = w_lo if w_lo < -lim else w_hi
            raise r.fail(f"{p}.weight", f"value {bad} does not fit weight_bits={layer.weight_bits} "
                                        f"(range {-lim}..{lim - 1})")
        blim = 1 << (MAX_ACC_BITS - 1)
        b_lo, b_hi = (int(b.min()), int(b.max())) if b.size else (0, 0)
        if b_lo < -blim or b_hi > blim - 1:
            bad = b_lo if b_lo < -blim else b_hi
            raise r.fail(f"{p}.bias", f"value {bad} does not fit the widest membrane ({MAX_ACC_BITS} bits)")
        is_last = i == wl[-1]
        branch = net.branch_of(i)
        if is_last and layer.neuron is not None:
            raise r.fail(f"{p}.neuron", "must be null on the output layer (it only accumulates)")
        if branch is not None and layer.neuron is not None:
            raise r.fail(f"{p}.neuron", f"must be null: the layer charges add layer {branch}'s membrane, "
                                        "which fires")
        if not is_last and branch is None:
            _check_neuron(r, layer.neuron, net.coding, T, f"{p}.neuron", required=True)
        _check_acc_bits(r, net, i, p)
    if net.is_graph:
        _check_graph(r, net, wl[-1])
    if not isinstance(net.name, str) or not net.name:
        raise r.fail("name", f"must be a non-empty string, not {net.name!r}")


def _check_int(r: Reader, value: Any, path: str, lo: int, hi: int | None = None) -> None:
    """An integer (not a bool) in ``lo..hi``."""
    if not _is_int(value):
        raise r.fail(path, f"must be an integer, not {brief(value)}")
    if value < lo or hi is not None and value > hi:
        raise r.fail(path, f"must be in {lo}..{hi}, not {brief(value)}" if hi is not None
                     else f"must be >= {lo}, not {brief(value)}")


def _check_acc_bits(r: Reader, net: Network, i: int, p: str) -> None:
    """A membrane's width: in range and at least the worst-case bound (:mod:`.bounds`)."""
    acc_bits = net.layers[i].acc_bits
    if not 1 <= acc_bits <= MAX_ACC_BITS:
        raise r.fail(f"{p}.acc_bits", f"must be in 1..{MAX_ACC_BITS}, not {acc_bits!r}")
    need = layer_acc_bits(net, i)
    if acc_bits < need:
        raise r.fail(f"{p}.acc_bits", f"is {acc_bits} but the worst-case bound needs {need}")


def _check_scale(r: Reader, value: Any, path: str) -> None:
    """A float unit: a real number (not a bool), finite, in ``MIN_SCALE..MAX_SCALE``."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        raise r.fail(path, f"must be a number, not {brief(value)}")
    try:
        f = float(value)
    except OverflowError:  # an integer past the float range
        f = math.inf
    if not (math.isfinite(f) and MIN_SCALE <= f <= MAX_SCALE):
        raise r.fail(path, f"must be a positive finite number in {MIN_SCALE:g}..{MAX_SCALE:g}, not {brief(value)}")


def _check_shape(r: Reader, shape: Any, path: str) -> None:
    """A non-empty tuple of positive integers holding at most ``MAX_NEURONS`` values."""
    if not isinstance(shape, (tuple, list)) or not shape or not all(_is_int(s) and s >= 1 for s in shape):
        raise r.fail(path, f"must be a non-empty list of positive sizes, not {brief(shape)}")
    if len(shape) > 3 or math.prod(int(s) for s in shape) > MAX_NEURONS:
        raise r.fail(path, f"must have at most 3 dimensions and {MAX_NEURONS} values, not {brief(list(shape))}")


def _check_layer_fields(r: Reader, layer: Any, p: str) -> None:
    """A layer's field types and sizes: every later check computes with them."""
    if not isinstance(layer, Layer):
        raise r.fail(p, f"must be a Layer, not {brief(layer)}")
    _check_shape(r, layer.in_shape, f"{p}.in_shape")
    _check_shape(r, layer.out_shape, f"{p}.out_shape")
    if not isinstance(layer.inputs, (tuple, list)) or not all(_is_int(j) for j in layer.inputs):
        raise r.fail(f"{p}.inputs", f"must be a list of layer indices, not {brief(layer.inputs)}")
    if layer.kind == "conv2d" or layer.kind in POOL_KINDS:
        _check_int(r, layer.kernel, f"{p}.kernel", 1, MAX_NEURONS)
        _check_int(r, layer.stride, f"{p}.stride", 1, MAX_NEURONS)
        _check_int(r, layer.padding, f"{p}.padding", 0, MAX_NEURONS)
    if layer.kind in WEIGHTED_KINDS or layer.kind == "add":
        _check_int(r, layer.acc_bits, f"{p}.acc_bits", 1, MAX_ACC_BITS)
        _check_scale(r, layer.scale, f"{p}.scale")
        _check_scale(r, layer.out_scale, f"{p}.out_scale")
    if layer.kind in WEIGHTED_KINDS:
        for key in ("weight", "bias"):
            a = getattr(layer, key)
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "iu":
                what = type(a).__name__ if not isinstance(a, np.ndarray) else f"an array of {a.dtype}"
                raise r.fail(f"{p}.{key}", f"must be an integer array, not {what}")
            if a.size > MAX_WEIGHTS:
                raise r.fail(f"{p}.{key}", f"must hold at most {MAX_WEIGHTS} values, not {a.size}")


def _check_sources(r: Reader, net: Network, i: int, p: str) -> tuple[int, ...]:
    """``inputs``: earlier layers (or ``INPUT``), one per layer, two for ``add``; no membrane
    (a weighted layer without a neuron) is read except by an add."""
    layer = net.layers[i]
    srcs = net.sources(i)
    want = 2 if layer.kind == "add" else 1
    if len(srcs) != want or len(set(srcs)) != want:
        raise r.fail(f"{p}.inputs", f"a {layer.kind} layer reads {want} distinct layer(s), not {list(srcs)!r}")
    for j in srcs:
        if not isinstance(j, int) or isinstance(j, bool) or not INPUT <= j < i:
            raise r.fail(f"{p}.inputs", f"must name earlier layers (0..{i - 1}) or {INPUT} (the input), "
                                        f"not {list(srcs)!r}")
        src = net.layers[j] if j != INPUT else None
        if layer.kind != "add" and src is not None and src.weighted and src.neuron is None:
            if net.branch_of(j) is None:
                raise r.fail(f"{p}.inputs" if net.is_graph else f"{p}.kind",
                             f"{layer.kind} (layer {i}) follows the output layer {j}, which does not fire")
            raise r.fail(f"{p}.inputs", f"layer {j} ({src.kind}) has no neuron and sends nothing; only an "
                                        "add reads a membrane")
        if layer.kind == "add":
            if src is None or not src.weighted or src.neuron is not None:
                what = "the input" if src is None else src.kind + (" with a neuron" if src.neuron is not None else "")
                raise r.fail(f"{p}.inputs", f"an add sums the membranes of two dense/conv2d layers without a "
                                            f"neuron; input {j} is {what}")
            if net.consumers(j) != [i]:
                raise r.fail(f"{p}.inputs", f"layer {j} charges add {i} and must be read by nothing else, "
                                            f"not by layers {net.consumers(j)}")
    return srcs


def _check_add(r: Reader, net: Network, i: int, p: str, shapes: dict[int, tuple[int, ...]], T: int) -> None:
    """An add's two branches: weighted layers without a neuron, read by this add alone, of its
    shape and membrane (``acc_bits``, ``scale``); the add fires (it carries the neuron)."""
    layer = net.layers[i]
    if not net.consumers(i):
        raise r.fail(f"{p}.kind", f"add layer {i} is read by no layer (the output layer must be dense or conv2d)")
    _check_neuron(r, layer.neuron, net.coding, T, f"{p}.neuron", required=True)
    _check_acc_bits(r, net, i, p)
    for j in net.sources(i):
        src = net.layers[j]
        if tuple(shapes[j]) != tuple(layer.out_shape) or tuple(layer.in_shape) != tuple(layer.out_shape):
            raise r.fail(f"{p}.out_shape", f"must equal in_shape and layer {j}'s output {list(shapes[j])}, "
                                           f"not {list(layer.out_shape)!r}")
        if src.acc_bits != layer.acc_bits:
            raise r.fail(f"layers[{j}].acc_bits", f"must equal add layer {i}'s acc_bits {layer.acc_bits} "
                                                  f"(one membrane), not {src.acc_bits!r}")
        if not math.isclose(src.scale, layer.scale, rel_tol=1e-9):
            raise r.fail(f"layers[{j}].scale", f"must equal add layer {i}'s scale {layer.scale!r} "
                                               f"(one membrane unit), not {src.scale!r}")


def _check_graph(r: Reader, net: Network, output: int) -> None:
    """A graph ends with its output layer, and every other layer's output is read."""
    last = len(net.layers) - 1
    if output != last:
        raise r.fail(f"layers[{last}].kind", f"a graph must end with its output layer (layer {output}), "
                                             f"not a {net.layers[last].kind}")
    for i in range(last):
        if not net.consumers(i):
            raise r.fail(f"layers[{i}]", f"{net.layers[i].kind} layer {i} is read by no layer")


def _out_shape(r: Reader, layer: Layer, p: str) -> tuple[int, ...]:
    ins = tuple(layer.in_shape)
    if layer.kind == "flatten":
        return (int(np.prod(ins)),)
    if layer.kind == "dense":
        if len(ins) != 1:
            raise r.fail(f"{p}.in_shape", f"dense input must be flat, not {list(ins)!r}")
        if len(layer.out_shape) != 1 or layer.out_shape[0] <= 0:
            raise r.fail(f"{p}.out_shape", f"must be [features], not {list(layer.out_shape)!r}")
        return tuple(layer.out_shape)
    if len(ins) != 3:
        raise r.fail(f"{p}.in_shape", f"{layer.kind} input must be [C, H, W], not {list(ins)!r}")
    if layer.kernel <= 0 or layer.stride <= 0 or layer.padding < 0:
        raise r.fail(f"{p}.kernel", f"kernel/stride must be positive and padding >= 0, not "
                                    f"{layer.kernel}/{layer.stride}/{layer.padding}")
    c, h, w = ins
    ho = (h + 2 * layer.padding - layer.kernel) // layer.stride + 1
    wo = (w + 2 * layer.padding - layer.kernel) // layer.stride + 1
    if ho <= 0 or wo <= 0:
        raise r.fail(f"{p}.kernel", f"kernel {layer.kernel} does not fit input {list(ins)}")
    co = c if layer.kind in POOL_KINDS else (layer.out_shape[0] if layer.out_shape else 0)
    return (co, ho, wo)


def _check_maxpool(r: Reader, net: Network, i: int, p: str) -> None:
    """``maxpool2d`` only where it is exact and event-shaped (docs/ir.md, "maxpool2d").

    TTFS only: a spike's value falls with its time, so the window's maximum is its earliest
    spike. Its input must be events or pixels, not sums: only other max-pools may stand between
    it and the spiking layer, the input encoder or the direct pixels it pools. Padding stays
    below half the kernel (as in torch), so every window holds at least one real element.
    """
    layer = net.layers[i]
    if net.coding not in MAXPOOL_CODINGS:
        why = ("an SC-TTFS window's largest value is not its earliest spike pair once the decode LUTs are "
               "rounded, and event hardware pools by time" if net.coding == "sc-ttfs"
               else "the per-step maximum of spike trains overstates the largest rate (two neurons firing on "
               "alternate steps pool to one firing every step)")
        raise r.fail(f"{p}.kind", f"maxpool2d (layer {i}) is exact only in {', '.join(MAXPOOL_CODINGS)} "
                                  f"coding, not {net.coding!r}: {why}; use avgpool2d")
    if 2 * layer.padding > layer.kernel:
        raise r.fail(f"{p}.padding", f"maxpool2d padding must be at most half the kernel ({layer.kernel // 2}), "
                                     f"not {layer.padding}")
    j = net.sources(i)[0]
    while j != INPUT:
        prev = net.layers[j]
        if prev.weighted or prev.kind == "add":
            if prev.neuron is None:
                raise r.fail(f"{p}.kind", f"maxpool2d (layer {i}) follows the output layer {j}, which does not fire")
            break
        if prev.kind != "maxpool2d":
            raise r.fail(f"{p}.kind", f"maxpool2d (layer {i}) must pool spikes or pixels: it may follow a "
                                      f"spiking layer, the input or another maxpool2d, not layer {j} ({prev.kind})")
        j = net.sources(j)[0]
    else:
        if net.input.input_coding == "direct" and net.input.signed:
            raise r.fail(f"{p}.kind", f"maxpool2d (layer {i}) on direct pixels needs unsigned input "
                                      "(a zero pooled pixel sends no event only when no pixel is negative)")


def _check_neuron(r: Reader, neuron: Neuron | None, coding: str, T: int, p: str, required: bool) -> None:
    if neuron is None:
        if required:
            raise r.fail(p, f"is missing (a {coding} layer that feeds another needs one)")
        return
    lim = 1 << (MAX_ACC_BITS - 1)  # a threshold or a decoded value must fit the widest membrane
    if coding == "rate":
        if not isinstance(neuron, RateNeuron):
            raise r.fail(f"{p}.type", "must be 'if' in a rate-coded network")
        _check_int(r, neuron.theta, f"{p}.theta", -lim, lim - 1)
        _check_int(r, neuron.v0, f"{p}.v0", -lim, lim - 1)
        if neuron.theta <= 0:
            raise r.fail(f"{p}.theta", f"must be positive, not {neuron.theta!r}")
        # --- LIF leak (issue 12): v ← v − (v >> k), k in 1..MAX_LEAK_SHIFT; none on the input encoder
        if getattr(neuron, "leak_shift", None) is not None:
            if p == "input.neuron":
                raise r.fail(f"{p}.leak_shift", "must be absent: the input encoder is a plain IF neuron")
            _check_int(r, neuron.leak_shift, f"{p}.leak_shift", 1, MAX_LEAK_SHIFT)
        return
    if not isinstance(neuron, TTFSNeuron):
        raise r.fail(f"{p}.type", f"must be '{coding}' in a {coding} network")
    if coding == "sc-ttfs" and not neuron.calibrated:
        raise r.fail(f"{p}.cal", "is missing (sc-ttfs needs cal and dec_cal)")
    if coding == "ttfs" and neuron.calibrated:
        raise r.fail(f"{p}.cal", "must be absent in a single-spike ttfs network")
    luts = {"enc": neuron.enc, "dec_enc": neuron.dec_enc}
    if neuron.calibrated:
        luts.update(cal=neuron.cal, dec_cal=neuron.dec_cal)
    for name, lut in luts.items():
        if not isinstance(lut, (tuple, list)) or not all(_is_int(x) for x in lut):
            raise r.fail(f"{p}.{name}", f"must be a list of integers, not {brief(lut)}")
        if len(lut) != T:
            raise r.fail(f"{p}.{name}", f"must have timesteps={T} entries, not {len(lut)}")
        floor = 1 if name in ("enc", "cal") else 0
        if any(x < floor for x in lut):
            raise r.fail(f"{p}.{name}", f"entries must be >= {floor}, not {brief(list(lut))}")
        if any(a < b for a, b in zip(lut, lut[1:])):
            raise r.fail(f"{p}.{name}", f"must be non-increasing in t, not {brief(list(lut))}")
        if lut and lut[0] > lim - 1:
            raise r.fail(f"{p}.{name}", f"entries must fit the widest membrane ({MAX_ACC_BITS} bits), "
                                        f"not {brief(lut[0])}")
