"""Quantization, the last pass: a float SNN becomes an integer Network IR.

Units are chained layer by layer. A layer's integer input ``x`` stands for ``x·s_in``; its
weights ``W_int = round(W/s_w)`` with a per-layer symmetric ``s_w``; its membrane unit is
``s_v = s_w·s_in``, in which the bias and the encode LUTs (``enc``, ``cal``) are rounded.
The decode LUTs (``dec_enc``, ``dec_cal``) are in the next layer's input unit, chosen so the
largest decoded value uses ``act_bits`` bits. Rate coding sends 1-spikes worth ``λ``, which
becomes the next layer's input unit. Sum pooling's ``1/k²`` is folded into the next weights;
max pooling passes through unchanged (it commutes with a positive unit and with rounding).
Nothing saturates: a value that does not fit is an error.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..ir import INPUT as IR_INPUT
from ..ir import MAX_ACC_BITS, InputSpec, Layer, Network, RateNeuron, Stage, TTFSNeuron
from ..ir.bounds import layer_acc_bits
from ..ir.frames import QuantizationError, quantize_frames
from .graph import sources
from .snn import INPUT_STAGE, FloatSNN

__all__ = ["quantize", "quantize_frames", "QuantizationError"]


def _lut(values: torch.Tensor, unit: float, floor: int, name: str) -> tuple[int, ...]:
    q = [max(floor, int(round(float(v) / unit))) for v in values]
    for a, b in zip(q, q[1:]):
        if a < b:
            raise QuantizationError(f"LUT {name} is not non-increasing after rounding: {q}")
    return tuple(q)


def _ttfs_neuron(snn: FloatSNN, stage: Stage, s_v: float, act_bits: int) -> tuple[TTFSNeuron, float]:
    th = snn.threshold(stage)
    T = snn.T
    enc, cal = th.enc(T).detach(), th.cal(T).detach()
    calibrated = snn.coding == "sc-ttfs"
    top = float(enc[0] + (cal[0] if calibrated else 0.0))
    s_out = top / ((1 << act_bits) - 1)
    if snn.pow2:  # θ_e(0) ↦ 2^(act_bits-1): every decode entry is an exact power of two
        s_out = float(enc[0]) / (1 << (act_bits - 1))
    neuron = TTFSNeuron(enc=_lut(enc, s_v, 1, f"{stage}.enc"), dec_enc=_lut(enc, s_out, 0, f"{stage}.dec_enc"))
    if calibrated:
        neuron = TTFSNeuron(enc=neuron.enc, dec_enc=neuron.dec_enc, cal=_lut(cal, s_v, 1, f"{stage}.cal"),
                            dec_cal=_lut(cal, s_out, 0, f"{stage}.dec_cal"))
    return neuron, s_out


def _rate_neuron(snn: FloatSNN, stage: Stage, s_v: float) -> tuple[RateNeuron, float]:
    lam = snn.rate_lambda(stage)
    theta = max(1, int(round(lam / s_v)))
    return RateNeuron(theta=theta, v0=theta // 2), lam


def quantize(snn: FloatSNN, *, name: str, weight_bits: int = 8, input_bits: int = 8, act_bits: int = 8,
             provenance: dict[str, Any] | None = None) -> Network:
    """Build the integer IR of a float SNN (inputs are assumed to lie in [0, 1])."""
    if not 2 <= weight_bits <= 16:
        raise QuantizationError(f"weight_bits must be in 2..16, not {weight_bits!r}")
    if not 2 <= act_bits <= 16:
        raise QuantizationError(f"act_bits must be in 2..16, not {act_bits!r}")
    layers_f = list(snn.layers)
    in_shape = tuple(layers_f[0].in_shape)
    if layers_f[0].kind == "flatten":  # pixels stream flattened anyway
        in_shape = tuple(layers_f[0].out_shape)
        layers_f = layers_f[1:]
        offset = 1
    else:
        offset = 0
    s_pix = 1.0 / ((1 << input_bits) - 1)
    inp = InputSpec(shape=in_shape, bits=input_bits, input_coding=snn.input_coding, scale=s_pix)
    s_in = s_pix
    if snn.input_coding == "spikes":
        if snn.coding == "rate":
            neuron, s_in = _rate_neuron(snn, INPUT_STAGE, s_pix)
        else:
            neuron, s_in = _ttfs_neuron(snn, INPUT_STAGE, s_pix, act_bits)
        inp = InputSpec(shape=in_shape, bits=input_bits, input_coding="spikes", scale=s_pix, neuron=neuron)
    qmax = (1 << (weight_bits - 1)) - 1
    graph = any(fl.inputs for fl in snn.layers)

    def ir_index(k: int) -> int:  # snn layer index -> IR layer index (a leading flatten is dropped)
        return k - offset if k >= offset else IR_INPUT

    #: each value's float unit and the sum-pool factor it carries since the layer that sent it
    units: dict[int, tuple[float, float]] = {IR_INPUT: (s_in, 1.0)}
    layers: list[Layer | None] = []
    branch_parts: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    last_weighted = snn.weighted[-1]
    for j, fl in enumerate(layers_f):
        i = j + offset
        srcs = tuple(ir_index(k) for k in sources(snn.layers, i))
        inputs = srcs if graph else ()
        if fl.kind == "add":
            s_v = max((float(np.abs(branch_parts[b][0]).max()) / qmax or 1.0) * branch_parts[b][2] for b in srcs)
            for b in srcs:
                w, bias, s_b = branch_parts.pop(b)
                layers[b] = replace(layers[b], weight=np.rint(w / (s_v / s_b)).astype(np.int64),
                                    bias=np.rint(bias / s_v).astype(np.int64), scale=s_v, out_scale=s_v)
            if snn.coding == "rate":
                neuron, s_out = _rate_neuron(snn, Stage(i), s_v)
            else:
                neuron, s_out = _ttfs_neuron(snn, Stage(i), s_v, act_bits)
            layers.append(Layer(kind="add", in_shape=tuple(fl.in_shape), out_shape=tuple(fl.out_shape),
                                neuron=neuron, scale=s_v, out_scale=s_out, inputs=inputs))
            units[j] = (s_out, 1.0)
            continue
        s_src, pool = units[srcs[0]]
        if not fl.weighted:
            if fl.kind == "avgpool2d":
                pool /= fl.kernel * fl.kernel
            layers.append(Layer(kind=fl.kind, in_shape=tuple(fl.in_shape), out_shape=tuple(fl.out_shape),
                                kernel=fl.kernel, stride=fl.stride, padding=fl.padding, inputs=inputs))
            units[j] = (s_src, pool)
            continue
        w, b = snn.effective(i)
        w = w.detach().double().numpy() * pool
        b = b.detach().double().numpy()
        shape = dict(kind=fl.kind, in_shape=tuple(fl.in_shape), out_shape=tuple(fl.out_shape),
                     weight_bits=weight_bits, kernel=fl.kernel, stride=fl.stride, padding=fl.padding, inputs=inputs)
        if i in snn.branch_of:  # quantized with its add, in the membrane unit both branches share
            branch_parts[j] = (w, b, s_src)
            layers.append(Layer(**shape))
            continue
        wmax = float(np.abs(w).max())
        s_w = wmax / qmax if wmax > 0 else 1.0
        w_int = np.rint(w / s_w).astype(np.int64)
        s_v = s_w * s_src
        b_int = np.rint(b / s_v).astype(np.int64)
        neuron, s_out = None, s_v
        if i != last_weighted:
            if snn.coding == "rate":
                neuron, s_out = _rate_neuron(snn, Stage(i), s_v)
            else:
                neuron, s_out = _ttfs_neuron(snn, Stage(i), s_v, act_bits)
        layers.append(Layer(**shape, weight=w_int, bias=b_int, neuron=neuron, scale=s_v, out_scale=s_out))
        units[j] = (s_out, 1.0)
    net = Network(name=name, coding=snn.coding, timesteps=snn.T, input=inp, layers=layers,
                  provenance=dict(provenance or {}, act_bits=act_bits))
    for k, layer in enumerate(net.layers):
        if layer.weighted or layer.kind == "add":
            layer.acc_bits = layer_acc_bits(net, k)
            if layer.acc_bits > MAX_ACC_BITS:
                raise QuantizationError(f"layer {k} ({layer.kind}) needs a {layer.acc_bits}-bit membrane, "
                                        f"more than the supported {MAX_ACC_BITS}: lower --weight-bits or --act-bits")
            if not math.isfinite(layer.scale) or layer.scale <= 0:
                raise QuantizationError(f"layer {k} has a degenerate scale {layer.scale!r} (all weights zero?)")
    return net
