"""The Network IR: the one object that crosses from ``snnfpga`` to ``rtl_gen``, ``sim`` and ``boards``.

An IR is an integer spiking network: integer weights, integer biases and integer threshold
lookup tables, with the float scales that map them back to the trained model. It is stored as
``<name>.snn.json`` (structure, LUTs, scales, provenance) beside ``<name>.snn.npz`` (weight and
bias arrays). Loading validates every field and never unpickles.

Integer semantics are DESIGN.md §3; :mod:`snnfpga.reference` implements them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import numpy as np

__all__ = [
    "FORMAT_VERSION", "CODINGS", "IRError", "InputSpec", "RateNeuron", "TTFSNeuron", "Layer",
    "Network", "save", "load", "signed_bits_for", "weighted_layers",
]

FORMAT_VERSION = 1
CODINGS = ("rate", "ttfs", "sc-ttfs")
LAYER_KINDS = ("dense", "conv2d", "avgpool2d", "flatten")
WEIGHTED_KINDS = ("dense", "conv2d")
INPUT_CODINGS = ("direct", "spikes")
#: The widest accumulator the reference and the RTL support (the reference uses exact float64).
MAX_ACC_BITS = 52


class IRError(ValueError):
    """A Network IR that is malformed; the message names the file, the field and the value."""

    def __init__(self, where: str, field_name: str, problem: str):
        self.where, self.field_name, self.problem = where, field_name, problem
        super().__init__(f"{where}: field '{field_name}': {problem}")


@dataclass(frozen=True)
class RateNeuron:
    """IF neuron, reset by subtraction: fires when ``v >= theta``; membranes start at ``v0``."""

    theta: int
    v0: int


@dataclass(frozen=True)
class TTFSNeuron:
    """(SC-)TTFS neuron: encode LUT in membrane units, decode LUT in the next layer's input units.

    ``cal``/``dec_cal`` are ``None`` for single-spike TTFS.
    """

    enc: tuple[int, ...]
    dec_enc: tuple[int, ...]
    cal: tuple[int, ...] | None = None
    dec_cal: tuple[int, ...] | None = None

    @property
    def calibrated(self) -> bool:
        return self.cal is not None


Neuron = Union[RateNeuron, TTFSNeuron]


@dataclass(frozen=True)
class InputSpec:
    """The frame: ``shape`` integers of ``bits`` bits; ``scale`` is the float value of one unit.

    With ``input_coding == "spikes"`` the pixels are encoded by ``neuron`` (pixel units in,
    first layer's input units out) exactly like a hidden layer's membranes.
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool = False
    input_coding: str = "direct"
    scale: float = 1.0
    neuron: Neuron | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def value_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


@dataclass(eq=False)
class Layer:
    """One layer. Weighted layers (dense, conv2d) carry weights and, except the last, a neuron.

    ``avgpool2d`` is integer *sum* pooling (the 1/k² lives in the next weights) and ``flatten``
    a reshape; neither has a neuron, both act on the decoded input values.
    Dense weights are ``(out, in)``; conv2d weights ``(out_ch, in_ch, kh, kw)``. Shapes are
    ``(features,)`` or ``(channels, height, width)``.
    """

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    weight_bits: int = 0
    acc_bits: int = 0
    neuron: Neuron | None = None
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    #: float value of one membrane unit (weighted layers) so ``v_int * scale`` is the float membrane
    scale: float = 1.0
    #: float value of one unit of this layer's output (= next layer's input unit)
    out_scale: float = 1.0

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))


@dataclass(eq=False)
class Network:
    name: str
    coding: str
    timesteps: int
    input: InputSpec
    layers: list[Layer]
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def output_layer(self) -> Layer:
        return weighted_layers(self)[-1]

    @property
    def n_classes(self) -> int:
        return self.output_layer.n_out

    def with_layer(self, index: int, **changes: Any) -> "Network":
        """A copy with one layer changed (used to build corrupted networks in tests)."""
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return replace(self, layers=layers)


def weighted_layers(net: Network) -> list[Layer]:
    return [layer for layer in net.layers if layer.weighted]


def signed_bits_for(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


# --------------------------------------------------------------------------- file format

def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    name = p.name
    for suffix in (".snn.json", ".snn.npz", ".json", ".npz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".snn.json"), p.with_name(name + ".snn.npz")


def _neuron_to_json(neuron: Neuron | None) -> dict[str, Any] | None:
    if neuron is None:
        return None
    if isinstance(neuron, RateNeuron):
        return {"type": "if", "theta": int(neuron.theta), "v0": int(neuron.v0)}
    out: dict[str, Any] = {"type": "sc-ttfs" if neuron.calibrated else "ttfs",
                           "enc": [int(x) for x in neuron.enc],
                           "dec_enc": [int(x) for x in neuron.dec_enc]}
    if neuron.calibrated:
        out["cal"] = [int(x) for x in neuron.cal]
        out["dec_cal"] = [int(x) for x in neuron.dec_cal]
    return out


def save(net: Network, path: str | Path) -> tuple[Path, Path]:
    """Write ``<name>.snn.json`` and ``<name>.snn.npz``; returns both paths.

    The output is deterministic (sorted keys, fixed float repr, no npz timestamps), so a
    network round-trips byte for byte.
    """
    validate(net, where="<in memory>")
    json_path, npz_path = _paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    layers_json = []
    for i, layer in enumerate(net.layers):
        d: dict[str, Any] = {"kind": layer.kind, "in_shape": list(layer.in_shape),
                             "out_shape": list(layer.out_shape)}
        if layer.weighted:
            arrays[f"layer{i}.weight"] = np.asarray(layer.weight, dtype=np.int64)
            arrays[f"layer{i}.bias"] = np.asarray(layer.bias, dtype=np.int64)
            d.update(weight=f"layer{i}.weight", bias=f"layer{i}.bias",
                     weight_bits=int(layer.weight_bits), acc_bits=int(layer.acc_bits),
                     scale=float(layer.scale), out_scale=float(layer.out_scale),
                     neuron=_neuron_to_json(layer.neuron))
        if layer.kind in ("conv2d", "avgpool2d"):
            d.update(kernel=int(layer.kernel), stride=int(layer.stride), padding=int(layer.padding))
        layers_json.append(d)
    doc = {
        "format_version": net.format_version,
        "name": net.name,
        "coding": net.coding,
        "timesteps": int(net.timesteps),
        "input": {"shape": list(net.input.shape), "bits": int(net.input.bits),
                  "signed": bool(net.input.signed), "input_coding": net.input.input_coding,
                  "scale": float(net.input.scale), "neuron": _neuron_to_json(net.input.neuron)},
        "layers": layers_json,
        "arrays": npz_path.name,
        "provenance": net.provenance,
    }
    json_path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _write_npz_deterministic(npz_path, arrays)
    return json_path, npz_path


def _write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


class _Reader:
    """Typed access to a JSON document that fails with the file, the field and the value."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field_name: str, problem: str) -> IRError:
        return IRError(self.where, field_name, problem)

    def get(self, d: Any, key: str, path: str, types: type | tuple[type, ...]) -> Any:
        if not isinstance(d, dict) or key not in d:
            raise self.fail(path, "is missing")
        value = d[key]
        if types is int and isinstance(value, bool) or not isinstance(value, types):
            raise self.fail(path, f"must be {_type_name(types)}, not {value!r}")
        return value

    def int_list(self, d: Any, key: str, path: str) -> tuple[int, ...]:
        value = self.get(d, key, path, list)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise self.fail(path, f"must be a list of integers, not {value!r}")
        return tuple(value)


def _type_name(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _neuron_from_json(r: _Reader, d: Any, path: str) -> Neuron | None:
    if d is None:
        return None
    kind = r.get(d, "type", f"{path}.type", str)
    if kind == "if":
        return RateNeuron(theta=r.get(d, "theta", f"{path}.theta", int),
                          v0=r.get(d, "v0", f"{path}.v0", int))
    if kind in ("ttfs", "sc-ttfs"):
        n = TTFSNeuron(enc=r.int_list(d, "enc", f"{path}.enc"),
                       dec_enc=r.int_list(d, "dec_enc", f"{path}.dec_enc"))
        if kind == "sc-ttfs":
            n = replace(n, cal=r.int_list(d, "cal", f"{path}.cal"),
                        dec_cal=r.int_list(d, "dec_cal", f"{path}.dec_cal"))
        return n
    raise r.fail(f"{path}.type", f"must be 'if', 'ttfs' or 'sc-ttfs', not {kind!r}")


def load(path: str | Path) -> Network:
    """Read and validate an IR file pair. Any problem raises :class:`IRError`."""
    json_path, npz_path = _paths(path)
    where = str(json_path)
    r = _Reader(where)
    if not json_path.is_file():
        raise IRError(where, "<file>", "does not exist")
    try:
        doc = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IRError(where, "<file>", f"is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise IRError(where, "<file>", f"must hold a JSON object, not {type(doc).__name__}")
    version = r.get(doc, "format_version", "format_version", int)
    if version != FORMAT_VERSION:
        raise r.fail("format_version", f"must be {FORMAT_VERSION}, not {version!r}")
    arrays_name = r.get(doc, "arrays", "arrays", str)
    arrays_path = json_path.with_name(Path(arrays_name).name)
    if not arrays_path.is_file():
        raise r.fail("arrays", f"names {str(arrays_path)!r}, which does not exist")
    try:
        with np.load(arrays_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise r.fail("arrays", f"{str(arrays_path)!r} is not a readable npz file ({e})") from None

    inp = r.get(doc, "input", "input", dict)
    input_spec = InputSpec(
        shape=tuple(r.int_list(inp, "shape", "input.shape")),
        bits=r.get(inp, "bits", "input.bits", int),
        signed=r.get(inp, "signed", "input.signed", bool),
        input_coding=r.get(inp, "input_coding", "input.input_coding", str),
        scale=float(r.get(inp, "scale", "input.scale", (int, float))),
        neuron=_neuron_from_json(r, inp.get("neuron"), "input.neuron"),
    )
    layers = []
    layers_doc = r.get(doc, "layers", "layers", list)
    for i, ld in enumerate(layers_doc):
        p = f"layers[{i}]"
        kind = r.get(ld, "kind", f"{p}.kind", str)
        if kind not in LAYER_KINDS:
            raise r.fail(f"{p}.kind", f"must be one of {', '.join(LAYER_KINDS)}, not {kind!r}")
        layer = Layer(kind=kind, in_shape=r.int_list(ld, "in_shape", f"{p}.in_shape"),
                      out_shape=r.int_list(ld, "out_shape", f"{p}.out_shape"))
        if kind in WEIGHTED_KINDS:
            arrs = {}
            for key in ("weight", "bias"):
                name = r.get(ld, key, f"{p}.{key}", str)
                if name not in arrays:
                    raise r.fail(f"{p}.{key}", f"names array {name!r}, not in {arrays_path.name}")
                a = arrays[name]
                if a.dtype.kind not in "iu":
                    raise r.fail(f"{p}.{key}", f"array {name!r} must be integer, not {a.dtype}")
                arrs[key] = a.astype(np.int64)
            layer = replace(layer, weight=arrs["weight"], bias=arrs["bias"],
                            weight_bits=r.get(ld, "weight_bits", f"{p}.weight_bits", int),
                            acc_bits=r.get(ld, "acc_bits", f"{p}.acc_bits", int),
                            scale=float(r.get(ld, "scale", f"{p}.scale", (int, float))),
                            out_scale=float(r.get(ld, "out_scale", f"{p}.out_scale", (int, float))),
                            neuron=_neuron_from_json(r, ld.get("neuron"), f"{p}.neuron"))
        if kind in ("conv2d", "avgpool2d"):
            layer = replace(layer, kernel=r.get(ld, "kernel", f"{p}.kernel", int),
                            stride=r.get(ld, "stride", f"{p}.stride", int),
                            padding=r.get(ld, "padding", f"{p}.padding", int))
        layers.append(layer)
    net = Network(name=r.get(doc, "name", "name", str), coding=r.get(doc, "coding", "coding", str),
                  timesteps=r.get(doc, "timesteps", "timesteps", int), input=input_spec,
                  layers=layers, provenance=r.get(doc, "provenance", "provenance", dict),
                  format_version=version)
    validate(net, where=where)
    return net


# --------------------------------------------------------------------------- validation

def validate(net: Network, where: str = "<in memory>") -> None:
    """Check every invariant the reference and the RTL rely on; raise :class:`IRError`."""
    from .bounds import layer_acc_bits  # local: bounds imports this module

    r = _Reader(where)
    if net.coding not in CODINGS:
        raise r.fail("coding", f"must be one of {', '.join(CODINGS)}, not {net.coding!r}")
    if not 1 <= net.timesteps <= 4096:
        raise r.fail("timesteps", f"must be in 1..4096, not {net.timesteps!r}")
    T = net.timesteps
    inp = net.input
    if not inp.shape or any(s <= 0 for s in inp.shape):
        raise r.fail("input.shape", f"must be a non-empty list of positive sizes, not {list(inp.shape)!r}")
    if not 1 <= inp.bits <= 16:
        raise r.fail("input.bits", f"must be in 1..16, not {inp.bits!r}")
    if inp.input_coding not in INPUT_CODINGS:
        raise r.fail("input.input_coding", f"must be 'direct' or 'spikes', not {inp.input_coding!r}")
    if inp.input_coding == "spikes":
        _check_neuron(r, inp.neuron, net.coding, T, "input.neuron", required=True)
    elif inp.neuron is not None:
        raise r.fail("input.neuron", "must be absent when input_coding is 'direct'")
    if not net.layers:
        raise r.fail("layers", "must hold at least one layer")
    wl = [i for i, layer in enumerate(net.layers) if layer.weighted]
    if not wl:
        raise r.fail("layers", "must hold at least one dense or conv2d layer")
    shape = tuple(inp.shape)
    for i, layer in enumerate(net.layers):
        p = f"layers[{i}]"
        if tuple(layer.in_shape) != shape:
            raise r.fail(f"{p}.in_shape", f"must be {list(shape)} (the previous output), not {list(layer.in_shape)!r}")
        expect_out = _out_shape(r, layer, p)
        if tuple(layer.out_shape) != expect_out:
            raise r.fail(f"{p}.out_shape", f"must be {list(expect_out)}, not {list(layer.out_shape)!r}")
        shape = expect_out
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
        if not 2 <= layer.weight_bits <= 32:
            raise r.fail(f"{p}.weight_bits", f"must be in 2..32, not {layer.weight_bits!r}")
        lim = 1 << (layer.weight_bits - 1)
        if w.size and (w.min() < -lim or w.max() > lim - 1):
            bad = int(w.min()) if w.min() < -lim else int(w.max())
            raise r.fail(f"{p}.weight", f"value {bad} does not fit weight_bits={layer.weight_bits} "
                                        f"(range {-lim}..{lim - 1})")
        is_last = i == wl[-1]
        if is_last and layer.neuron is not None:
            raise r.fail(f"{p}.neuron", "must be null on the output layer (it only accumulates)")
        if not is_last:
            _check_neuron(r, layer.neuron, net.coding, T, f"{p}.neuron", required=True)
        if not 1 <= layer.acc_bits <= MAX_ACC_BITS:
            raise r.fail(f"{p}.acc_bits", f"must be in 1..{MAX_ACC_BITS}, not {layer.acc_bits!r}")
        need = layer_acc_bits(net, i)
        if layer.acc_bits < need:
            raise r.fail(f"{p}.acc_bits", f"is {layer.acc_bits} but the worst-case bound needs {need}")
        if not (math.isfinite(layer.scale) and layer.scale > 0):
            raise r.fail(f"{p}.scale", f"must be a positive finite number, not {layer.scale!r}")
    if not isinstance(net.name, str) or not net.name:
        raise r.fail("name", f"must be a non-empty string, not {net.name!r}")


def _out_shape(r: _Reader, layer: Layer, p: str) -> tuple[int, ...]:
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
    co = c if layer.kind == "avgpool2d" else (layer.out_shape[0] if layer.out_shape else 0)
    return (co, ho, wo)


def _check_neuron(r: _Reader, neuron: Neuron | None, coding: str, T: int, p: str, required: bool) -> None:
    if neuron is None:
        if required:
            raise r.fail(p, f"is missing (a {coding} layer that feeds another needs one)")
        return
    if coding == "rate":
        if not isinstance(neuron, RateNeuron):
            raise r.fail(f"{p}.type", "must be 'if' in a rate-coded network")
        if neuron.theta <= 0:
            raise r.fail(f"{p}.theta", f"must be positive, not {neuron.theta!r}")
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
        if len(lut) != T:
            raise r.fail(f"{p}.{name}", f"must have timesteps={T} entries, not {len(lut)}")
        floor = 1 if name in ("enc", "cal") else 0
        if any(x < floor for x in lut):
            raise r.fail(f"{p}.{name}", f"entries must be >= {floor}, not {list(lut)!r}")
        if any(a < b for a, b in zip(lut, lut[1:])):
            raise r.fail(f"{p}.{name}", f"must be non-increasing in t, not {list(lut)!r}")
