"""Trace an ``nn.Sequential`` into a flat list of float layers, BatchNorm folded in.

This is the converter's front door: every later pass (threshold fitting, fine-tuning,
quantization) works on :class:`FloatLayer`s, never on torch modules.
"""

from __future__ import annotations

import contextlib
import io
import operator
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import Unsupported
from ..ir.network import MAXPOOL_CODINGS

__all__ = ["FloatLayer", "UnsupportedModel", "trace", "trace_sequential", "trace_fx", "sources", "fold_batchnorm", "forward_float", "check_coding",
           "MAXPOOL_CODINGS"]


class UnsupportedModel(Unsupported, ValueError):
    """The model holds a layer (or an order of layers) the converter cannot map to spikes."""


@dataclass
class FloatLayer:
    kind: str  # dense | conv2d | avgpool2d | maxpool2d | flatten | add
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    relu: bool = False  # a ReLU follows: this layer is a hidden spiking layer
    where: str = ""  # the module it came from, "layer <pos> (<type>)", for errors after tracing
    #: the layers it reads (-1: the input); empty: the previous one. An ``add`` reads the
    #: pre-activations of two weighted layers (its branches) and is the layer that fires.
    inputs: tuple[int, ...] = ()

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
    """The model's float layers, BN folded: an ``nn.Sequential`` layer by layer
    (:func:`trace_sequential`), any other module through ``torch.fx`` (:func:`trace_fx`: graphs
    with residual adds)."""
    if isinstance(model, nn.Sequential):
        return trace_sequential(model, in_shape)
    return trace_fx(model, in_shape)


def trace_sequential(model: nn.Module, in_shape: tuple[int, ...]) -> list[FloatLayer]:
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
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            layers.append(_weighted_layer(m, shape, where))
            shape = layers[-1].out_shape
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
            layers.append(_avgpool_layer(m, shape, where))
            shape = layers[-1].out_shape
        elif isinstance(m, nn.MaxPool2d):
            src = _maxpool_source(layers)
            if src is not None and not src.weighted:
                raise UnsupportedModel(f"{where}: a max pool must pool spikes: it may follow a Conv2d (with its "
                                       f"ReLU), the input or another MaxPool2d, not {src.kind} ({src.where})")
            layers.append(_maxpool_layer(m, shape, where))
            shape = layers[-1].out_shape
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


def _weighted_layer(m: nn.Linear | nn.Conv2d, shape: tuple[int, ...], where: str) -> FloatLayer:
    """A Linear or Conv2d on inputs of ``shape`` as a float layer (weights copied in float64)."""
    if isinstance(m, nn.Linear):
        if len(shape) != 1 or shape[0] != m.in_features:
            raise UnsupportedModel(f"{where}: expects {m.in_features} inputs but gets shape {shape} (add a Flatten?)")
        b = m.bias.detach().double() if m.bias is not None else torch.zeros(m.out_features, dtype=torch.float64)
        return FloatLayer("dense", shape, (m.out_features,), m.weight.detach().double().clone(), b.clone(),
                          where=where)
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
    return FloatLayer("conv2d", shape, (m.out_channels, h, w), m.weight.detach().double().clone(),
                      b.clone(), kernel=k, stride=s, padding=p, where=where)


def _avgpool_layer(m: nn.AvgPool2d, shape: tuple[int, ...], where: str) -> FloatLayer:
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
    return FloatLayer("avgpool2d", shape, (shape[0], h, w), kernel=k, stride=s, padding=p, where=where)


def _maxpool_layer(m: nn.MaxPool2d, shape: tuple[int, ...], where: str) -> FloatLayer:
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
    h, w = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
    return FloatLayer("maxpool2d", shape, (shape[0], h, w), kernel=k, stride=s, padding=p, where=where)


def sources(layers: list[FloatLayer], index: int) -> tuple[int, ...]:
    """The layers ``index`` reads (-1: the input)."""
    return tuple(layers[index].inputs) or (index - 1,)


def branches(layers: list[FloatLayer]) -> dict[int, int]:
    """``{weighted layer: the add whose membrane it charges}``."""
    return {j: i for i, layer in enumerate(layers) if layer.kind == "add" for j in layer.inputs}


#: torch functions and tensor methods the fx trace maps (beyond modules)
_RELU_FUNCS = (torch.relu, torch.nn.functional.relu)
_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_FLATTEN_FUNCS = (torch.flatten,)


def trace_fx(model: nn.Module, in_shape: tuple[int, ...]) -> list[FloatLayer]:
    """Map any ``nn.Module`` that ``torch.fx`` can trace to float layers: the modules of
    :func:`trace_sequential` (and ``AdaptiveAvgPool2d(1)``, ``Identity``), ``relu``, ``flatten``
    and residual ``+`` of two tensors.

    A residual add joins pre-activations: each operand is a Linear/Conv2d (with its BatchNorm)
    not yet through ReLU, or an activation (an identity shortcut, which becomes a 1×1
    identity convolution so that both branches charge one membrane); the sum must go through
    ReLU, where the add fires. Every error names the fx node and its module or function.
    """
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types for untraceable control flow
        raise UnsupportedModel(f"torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {e}); "
                               "the converter needs a forward without data-dependent control flow") from None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # fx prints the failing node's traceback
            ShapeProp(gm).propagate(torch.zeros((1,) + tuple(in_shape)))
    except Exception as e:
        cause = e.__cause__ or e  # fx wraps the module's own error; its first line says what failed
        raise UnsupportedModel(f"{type(model).__name__} does not run on inputs of shape {tuple(in_shape)} "
                               f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})") from None
    finally:
        model.train(was_training)
    modules = dict(gm.named_modules())
    layers: list[FloatLayer] = []
    #: fx node -> (layer index or -1, state): "act" a value (input, spikes, wiring of them),
    #: "pre" a weighted layer's pre-activation, "sum" an add before its ReLU
    val: dict = {}

    def shape_of(node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape[1:])

    def operand(node, where: str, want: str = "act") -> tuple[int, str]:
        if node not in val:
            raise UnsupportedModel(f"{where}: reads {node.name}, which is not a tensor the converter maps")
        idx, state = val[node]
        if want == "act" and state != "act":
            what = "an add" if state == "sum" else f"{layers[idx].kind} ({layers[idx].where})"
            raise UnsupportedModel(f"{where}: reads the output of {what} before a ReLU: every Linear/Conv2d "
                                   "(with its BatchNorm) and every residual add must go through ReLU before "
                                   "another layer reads it")
        return idx, state

    def add_layer(layer: FloatLayer, src: int) -> int:
        layer.inputs = (src,)
        layers.append(layer)
        return len(layers) - 1

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if val:
                raise UnsupportedModel(f"node {node.name}: the model must take one input tensor")
            val[node] = (-1, "act")
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, torch.fx.Node) or out not in val:
                raise UnsupportedModel(f"the model must return one tensor, not {out!r}")
            idx, state = val[out]
            if state != "pre" or idx != len(layers) - 1:
                raise UnsupportedModel(f"the model must end with its output Linear/Conv2d (no ReLU after it), "
                                       f"not {'an add' if state == 'sum' else 'an activation'} ({out.name})")
            continue
        if node.op == "get_attr":
            raise UnsupportedModel(f"node {node.name}: reads parameter {node.target!r} directly; only modules, "
                                   "relu, flatten and + are supported")
        if node.op == "call_module":
            m = modules[node.target]
            where = f"node {node.name} ({type(m).__name__} {node.target!r})"
        else:
            m = None
            target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.target)
            where = f"node {node.name} ({node.op} {target})"
        tensor_args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if node.op == "call_method" and node.target in ("size", "dim"):
            continue  # shape queries feed view/reshape; the shape is read from the trace
        if "tensor_meta" not in node.meta:
            raise UnsupportedModel(f"{where}: does not produce a tensor the converter can map")
        if isinstance(m, (nn.Dropout, nn.Identity)) or (m is None and node.target in ("contiguous", "clone")):
            val[node] = val[tensor_args[0]]
            continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            src, _ = operand(tensor_args[0], where)
            val[node] = (add_layer(_weighted_layer(m, shape_of(tensor_args[0]), where), src), "pre")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            idx, state = val.get(tensor_args[0], (None, None))
            if state != "pre" or len(tensor_args[0].users) != 1:
                raise UnsupportedModel(f"{where}: BatchNorm must directly follow a Linear or Conv2d (read by "
                                       "nothing else) to be folded")
            if m.running_mean is None:
                raise UnsupportedModel(f"{where}: BatchNorm without running statistics cannot be folded")
            layers[idx] = fold_batchnorm(layers[idx], m)
            val[node] = (idx, "pre")
        elif isinstance(m, nn.ReLU) or node.target in _RELU_FUNCS or (m is None and node.target in ("relu", "relu_")):
            idx, state = val.get(tensor_args[0], (None, None))
            if state not in ("pre", "sum") or len(tensor_args[0].users) != 1:
                raise UnsupportedModel(f"{where}: ReLU must follow a Linear/Conv2d (optionally with BatchNorm) "
                                       "or a residual add, read by nothing else")
            layers[idx].relu = True
            val[node] = (idx, "act")
        elif isinstance(m, nn.AvgPool2d) or isinstance(m, nn.AdaptiveAvgPool2d):
            src, _ = operand(tensor_args[0], where)
            shape = shape_of(tensor_args[0])
            if isinstance(m, nn.AdaptiveAvgPool2d):
                size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
                if tuple(size) != (1, 1) or len(shape) != 3 or shape[1] != shape[2]:
                    raise UnsupportedModel(f"{where}: only AdaptiveAvgPool2d(1) over a square map is supported")
                m = nn.AvgPool2d(shape[1])
            val[node] = (add_layer(_avgpool_layer(m, shape, where), src), "act")
        elif isinstance(m, nn.MaxPool2d):
            src, _ = operand(tensor_args[0], where)
            if src >= 0 and not (layers[src].kind == "maxpool2d" or layers[src].relu):
                raise UnsupportedModel(f"{where}: a max pool must pool spikes: it may follow a spiking layer, the "
                                       f"input or another MaxPool2d, not {layers[src].kind} ({layers[src].where})")
            val[node] = (add_layer(_maxpool_layer(m, shape_of(tensor_args[0]), where), src), "act")
        elif (isinstance(m, nn.Flatten) or node.target in _FLATTEN_FUNCS
              or (m is None and node.target in ("flatten", "view", "reshape"))):
            src, _ = operand(tensor_args[0], where)
            shape, out = shape_of(tensor_args[0]), shape_of(node)
            if len(out) != 1:
                raise UnsupportedModel(f"{where}: only flattening to [N, features] is supported, not {list(out)}")
            if len(shape) == 1:
                val[node] = (src, "act")
            else:
                val[node] = (add_layer(FloatLayer("flatten", shape, out, where=where), src), "act")
        elif node.target in _ADD_FUNCS or (m is None and node.target in ("add", "add_")):
            if len(tensor_args) != 2 or len(node.args) != 2 or node.kwargs:
                raise UnsupportedModel(f"{where}: a residual add takes two tensors (no alpha, no constants)")
            parts = []
            for a in tensor_args:
                if a not in val:
                    raise UnsupportedModel(f"{where}: reads {a.name}, which is not a tensor the converter maps")
                idx, state = val[a]
                if state == "sum":
                    raise UnsupportedModel(f"{where}: adds the output of another add before its ReLU; chain "
                                           "adds through ReLU")
                if state == "pre" and (len(a.users) != 1 or layers[idx].relu):
                    raise UnsupportedModel(f"{where}: the pre-activation {a.name} is read by more than this add")
                if state == "act":  # identity shortcut: a 1x1 identity weight charges the membrane
                    idx = add_layer(_identity_layer(shape_of(a), f"{where} shortcut"), idx)
                parts.append(idx)
            shapes = {layers[j].out_shape for j in parts}
            if len(shapes) != 1:
                raise UnsupportedModel(f"{where}: adds tensors of different shapes {sorted(shapes)}")
            shape = layers[parts[0]].out_shape
            layers.append(FloatLayer("add", shape, shape, inputs=tuple(parts), where=where))
            val[node] = (len(layers) - 1, "sum")
        else:
            raise UnsupportedModel(f"{where} is not supported: the converter takes Linear, Conv2d, BatchNorm1d/2d, "
                                   "ReLU, AvgPool2d, AdaptiveAvgPool2d(1), MaxPool2d, Flatten, Dropout, Identity "
                                   "and the residual + of two tensors")
    _check_chain_rules(layers)
    return layers


def _identity_layer(shape: tuple[int, ...], where: str) -> FloatLayer:
    """The identity as a weighted layer (1×1 convolution or dense), so a shortcut charges a membrane."""
    c = shape[0]
    eye = torch.eye(c, dtype=torch.float64)
    if len(shape) == 1:
        return FloatLayer("dense", shape, shape, eye, torch.zeros(c, dtype=torch.float64), where=where)
    return FloatLayer("conv2d", shape, shape, eye[:, :, None, None].clone(), torch.zeros(c, dtype=torch.float64),
                      kernel=1, stride=1, padding=0, where=where)


def _check_chain_rules(layers: list[FloatLayer]) -> None:
    """Every weighted layer but the last fires (ReLU) or charges an add; the last does neither."""
    weighted = [i for i, layer in enumerate(layers) if layer.weighted]
    if not weighted:
        raise UnsupportedModel("the model has no Linear or Conv2d layer")
    charged = branches(layers)
    for i in weighted[:-1]:
        layer = layers[i]
        if not layer.relu and i not in charged:
            raise UnsupportedModel(f"a hidden {layer.kind} layer ({layer.where}: {layer.in_shape} → "
                                   f"{layer.out_shape}) has no ReLU: every weighted layer but the last must be "
                                   "followed by ReLU or a residual add")
    for layer in layers:
        if layer.kind == "add" and not layer.relu:
            raise UnsupportedModel(f"the residual add at {layer.where} must be followed by ReLU (it fires)")
    last = layers[weighted[-1]]
    if last.relu or weighted[-1] in charged:
        raise UnsupportedModel("the output layer must not be followed by ReLU or an add (its membrane is the logit)")
    if layers[-1] is not last:
        raise UnsupportedModel(f"the model must end with its output Linear/Conv2d, not {layers[-1].kind}")


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
    vals = {-1: x.double()}
    for i, layer in enumerate(layers):
        src = sources(layers, i)
        if layer.kind == "add":
            x = vals[src[0]].reshape(x.shape[0], -1) + vals[src[1]].reshape(x.shape[0], -1)
            x = x.reshape((x.shape[0],) + tuple(layer.out_shape))
        else:
            x = apply_layer(layer, vals[src[0]])
        if layer.relu:
            x = torch.relu(x)
        vals[i] = x
    return x
