"""Trace an ``nn.Sequential`` into a flat list of float layers, BatchNorm folded in.

This is the converter's front door: every later pass (threshold fitting, fine-tuning,
quantization) works on :class:`FloatLayer`s, never on torch modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import Unsupported
from ..ir.network import MAXPOOL_CODINGS

__all__ = ["FloatLayer", "UnsupportedModel", "trace", "fold_batchnorm", "forward_float", "check_coding",
           "MAXPOOL_CODINGS"]


class UnsupportedModel(Unsupported, ValueError):
    """The model holds a layer (or an order of layers) the converter cannot map to spikes."""


@dataclass
class FloatLayer:
    kind: str  # dense | conv2d | avgpool2d | maxpool2d | flatten
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    relu: bool = False  # a ReLU follows: this layer is a hidden spiking layer
    where: str = ""  # the module it came from, "layer <pos> (<type>)", for errors after tracing

    @property
    def weighted(self) -> bool:
        return self.kind in ("dense", "conv2d")


def _pair(v, what: str, where: str) -> int:
    if isinstance(v, tuple):
        if len(set(v)) != 1:
            raise UnsupportedModel(f"{where}: {what} must be square, not {v}")
        v = v[0]
    return int(v)


def fold_batchnorm(layer: FloatLayer, bn: nn.modules.batchnorm._BatchNorm) -> FloatLayer:
    """``W ← W·γ/σ``, ``b ← β + (b − μ)·γ/σ`` with ``σ = sqrt(var + eps)``."""
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros(bn.num_features, dtype=torch.float64)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    w = layer.weight * scale.view(-1, *([1] * (layer.weight.dim() - 1)))
    b = beta + (layer.bias - bn.running_mean.double()) * scale
    return replace(layer, weight=w, bias=b)


def _modules(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        out = []
        for m in model:
            out += _modules(m)
        return out
    return [model]


def trace(model: nn.Module, in_shape: tuple[int, ...]) -> list[FloatLayer]:
    """Map an ``nn.Sequential`` of Linear, Conv2d, BatchNorm, ReLU, AvgPool2d, MaxPool2d, Flatten (and
    Dropout, an identity at inference) to float layers; anything else raises :class:`UnsupportedModel`.

    A MaxPool2d must pool a hidden layer's activations (after or before its ReLU: they commute),
    the input, or another MaxPool2d's output; whether the coding allows it is
    :func:`check_coding`'s question (TTFS only)."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModel(f"the converter takes an nn.Sequential, not {type(model).__name__}")
    layers: list[FloatLayer] = []
    shape = tuple(in_shape)
    for pos, m in enumerate(_modules(model)):
        where = f"layer {pos} ({type(m).__name__})"
        last = layers[-1] if layers else None
        if isinstance(m, nn.Dropout):
            continue
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1:
                raise UnsupportedModel(f"{where}: only Flatten(start_dim=1) is supported")
            flat = 1
            for s in shape:
                flat *= s
            layers.append(FloatLayer("flatten", shape, (flat,)))
            shape = (flat,)
        elif isinstance(m, nn.Linear):
            if len(shape) != 1 or shape[0] != m.in_features:
                raise UnsupportedModel(f"{where}: expects {m.in_features} inputs but gets shape {shape} (add a Flatten?)")
            b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_features, dtype=torch.float64)
            layers.append(FloatLayer("dense", shape, (m.out_features,), m.weight.detach().double().clone(), b.clone()))
            shape = (m.out_features,)
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or _pair(m.dilation, "dilation", where) != 1 or m.padding_mode != "zeros":
                raise UnsupportedModel(f"{where}: only groups=1, dilation=1, zero padding are supported")
            if isinstance(m.padding, str):
                raise UnsupportedModel(f"{where}: padding must be an integer, not {m.padding!r}")
            k, s, p = (_pair(m.kernel_size, "kernel", where), _pair(m.stride, "stride", where),
                       _pair(m.padding, "padding", where))
            if len(shape) != 3 or shape[0] != m.in_channels:
                raise UnsupportedModel(f"{where}: expects {m.in_channels} input channels but gets shape {shape}")
            h, w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
            b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_channels, dtype=torch.float64)
            layers.append(FloatLayer("conv2d", shape, (m.out_channels, h, w), m.weight.detach().double().clone(),
                                     b.clone(), kernel=k, stride=s, padding=p))
            shape = (m.out_channels, h, w)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if last is None or not last.weighted or last.relu:
                raise UnsupportedModel(f"{where}: BatchNorm must directly follow a Linear or Conv2d to be folded")
            if m.running_mean is None:
                raise UnsupportedModel(f"{where}: BatchNorm without running statistics cannot be folded")
            layers[-1] = fold_batchnorm(last, m)
        elif isinstance(m, nn.ReLU):
            if last is not None and last.kind == "maxpool2d":  # max and ReLU commute: ReLU the layer pooled
                src = _maxpool_source(layers)
                if src is not None and src.weighted and not src.relu:
                    last = src
            if last is None or not last.weighted or last.relu:
                raise UnsupportedModel(f"{where}: ReLU must follow a Linear or Conv2d (optionally with BatchNorm)")
            last.relu = True
        elif isinstance(m, nn.AvgPool2d):
            k = _pair(m.kernel_size, "kernel", where)
            s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", where)
            p = _pair(m.padding, "padding", where)
            if p and m.count_include_pad is False:
                raise UnsupportedModel(f"{where}: count_include_pad=False is not supported")
            if m.ceil_mode:
                raise UnsupportedModel(f"{where}: ceil_mode=True is not supported")
            if len(shape) != 3:
                raise UnsupportedModel(f"{where}: expects [C, H, W] input, gets {shape}")
            h, w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
            layers.append(FloatLayer("avgpool2d", shape, (shape[0], h, w), kernel=k, stride=s, padding=p))
            shape = (shape[0], h, w)
        elif isinstance(m, nn.MaxPool2d):
            k = _pair(m.kernel_size, "kernel", where)
            s = _pair(m.stride if m.stride is not None else m.kernel_size, "stride", where)
            p = _pair(m.padding, "padding", where)
            if _pair(m.dilation, "dilation", where) != 1:
                raise UnsupportedModel(f"{where}: dilation={m.dilation} is not supported (only 1)")
            if m.ceil_mode:
                raise UnsupportedModel(f"{where}: ceil_mode=True is not supported")
            if m.return_indices:
                raise UnsupportedModel(f"{where}: return_indices=True is not supported")
            if 2 * p > k:
                raise UnsupportedModel(f"{where}: padding {p} must be at most half the kernel {k}")
            if len(shape) != 3:
                raise UnsupportedModel(f"{where}: expects [C, H, W] input, gets {shape}")
            src = _maxpool_source(layers)
            if src is not None and not src.weighted:
                raise UnsupportedModel(f"{where}: a max pool must pool spikes: it may follow a Conv2d (with its "
                                       f"ReLU), the input or another MaxPool2d, not {src.kind} ({src.where})")
            h, w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
            layers.append(FloatLayer("maxpool2d", shape, (shape[0], h, w), kernel=k, stride=s, padding=p,
                                     where=where))
            shape = (shape[0], h, w)
        else:
            raise UnsupportedModel(f"{where} is not supported: the converter takes Linear, Conv2d, "
                                   "BatchNorm1d/2d, ReLU, AvgPool2d, MaxPool2d, Flatten and Dropout")
        if layers and not layers[-1].where:
            layers[-1].where = where
    weighted = [layer for layer in layers if layer.weighted]
    if not weighted:
        raise UnsupportedModel("the model has no Linear or Conv2d layer")
    for layer in weighted[:-1]:
        if not layer.relu:
            raise UnsupportedModel(f"a hidden {layer.kind} layer ({layer.in_shape} → {layer.out_shape}) has no ReLU: "
                                   "every weighted layer but the last must be followed by ReLU")
    if weighted[-1].relu:
        raise UnsupportedModel("the output layer must not be followed by ReLU (its membrane is the logit)")
    if layers[-1] is not weighted[-1]:
        raise UnsupportedModel(f"the model must end with its output Linear/Conv2d, not {layers[-1].kind}")
    return layers


def _maxpool_source(layers: list[FloatLayer]) -> FloatLayer | None:
    """The layer a (new) max pool would pool: the last layer that is not a max pool (None: the input)."""
    for layer in reversed(layers):
        if layer.kind != "maxpool2d":
            return layer
    return None


def check_coding(layers: list[FloatLayer], coding: str) -> None:
    """Refuse layers the coding cannot convert exactly: a MaxPool2d outside TTFS (docs/ir.md).

    TTFS: a spike's value falls with its time, so a window's maximum is its earliest spike.
    SC-TTFS: the earliest spike pair is the largest value in the float model but not always
    after the decode LUTs are rounded, and event hardware pools by time. Rate: the per-step
    maximum of spike trains overstates the largest rate.
    """
    for layer in layers:
        if layer.kind == "maxpool2d" and coding not in MAXPOOL_CODINGS:
            raise UnsupportedModel(f"{layer.where or 'MaxPool2d'}: max pooling is exact only in "
                                   f"{', '.join(MAXPOOL_CODINGS)} coding, not {coding!r}; use --coding ttfs "
                                   "or AvgPool2d")


def apply_layer(layer: FloatLayer, x: torch.Tensor, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """The pre-activation (weighted) or wiring output of one float layer on a batch."""
    w = layer.weight if weight is None else weight
    b = layer.bias if bias is None else bias
    x = x.reshape((x.shape[0],) + tuple(layer.in_shape))
    if layer.kind == "dense":
        return x @ w.t() + b
    if layer.kind == "conv2d":
        return torch.nn.functional.conv2d(x, w, b, stride=layer.stride, padding=layer.padding)
    if layer.kind == "avgpool2d":
        return torch.nn.functional.avg_pool2d(x, layer.kernel, layer.stride, layer.padding)
    if layer.kind == "maxpool2d":  # in the SNN: the max of the decoded spike values
        return torch.nn.functional.max_pool2d(x, layer.kernel, layer.stride, layer.padding)
    return x.reshape(x.shape[0], -1)


@torch.no_grad()
def forward_float(layers: list[FloatLayer], x: torch.Tensor) -> torch.Tensor:
    """The folded ANN (checks the trace and the folding against the original model)."""
    x = x.double()
    for layer in layers:
        x = apply_layer(layer, x)
        if layer.relu:
            x = torch.relu(x)
    return x
