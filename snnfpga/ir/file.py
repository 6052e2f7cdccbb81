"""The IR file format: ``<name>.snn.json`` (structure, LUTs, scales, provenance) beside
``<name>.snn.npz`` (weight and bias arrays). Loading validates every field and never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .network import (CHAIN_FORMAT_VERSION, FORMAT_VERSION, GRAPH_KINDS, LAYER_KINDS, POOL_KINDS, WEIGHTED_KINDS,
                      InputSpec, IRError, Layer, Network, Neuron, RateNeuron, TTFSNeuron)
from .validate import Reader, validate

__all__ = ["save", "load"]


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
    graph = net.is_graph  # a chain keeps format 1, which readers before graphs still read
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
        if layer.kind == "add":
            d.update(acc_bits=int(layer.acc_bits), scale=float(layer.scale), out_scale=float(layer.out_scale),
                     neuron=_neuron_to_json(layer.neuron))
        if layer.kind == "conv2d" or layer.kind in POOL_KINDS:
            d.update(kernel=int(layer.kernel), stride=int(layer.stride), padding=int(layer.padding))
        if graph:
            d["inputs"] = [int(j) for j in net.sources(i)]
        layers_json.append(d)
    doc = {
        "format_version": FORMAT_VERSION if graph else CHAIN_FORMAT_VERSION,
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


def _neuron_from_json(r: Reader, d: Any, path: str) -> Neuron | None:
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
    r = Reader(where)
    if not json_path.is_file():
        raise IRError(where, "<file>", "does not exist")
    try:
        doc = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IRError(where, "<file>", f"is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise IRError(where, "<file>", f"must hold a JSON object, not {type(doc).__name__}")
    version = r.get(doc, "format_version", "format_version", int)
    if version not in (CHAIN_FORMAT_VERSION, FORMAT_VERSION):
        raise r.fail("format_version", f"must be {CHAIN_FORMAT_VERSION} (a chain) or {FORMAT_VERSION} (a graph), "
                                       f"not {version!r}")
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
        if version == CHAIN_FORMAT_VERSION:
            if "inputs" in ld or kind in GRAPH_KINDS:
                raise r.fail(f"{p}.{'inputs' if 'inputs' in ld else 'kind'}",
                             f"needs format_version {FORMAT_VERSION} (a graph), the file says {version}")
        else:
            layer = replace(layer, inputs=r.int_list(ld, "inputs", f"{p}.inputs"))
        if kind == "add":
            layer = replace(layer, acc_bits=r.get(ld, "acc_bits", f"{p}.acc_bits", int),
                            scale=float(r.get(ld, "scale", f"{p}.scale", (int, float))),
                            out_scale=float(r.get(ld, "out_scale", f"{p}.out_scale", (int, float))),
                            neuron=_neuron_from_json(r, ld.get("neuron"), f"{p}.neuron"))
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
        if kind == "conv2d" or kind in POOL_KINDS:
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


