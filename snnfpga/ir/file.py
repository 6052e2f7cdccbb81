"""The IR file format: ``<name>.snn.json`` (structure, LUTs, scales, provenance) beside
``<name>.snn.npz`` (weight and bias arrays). Loading validates every field and never unpickles.

Integrity (docs/ir.md, "Limits and integrity"): the JSON records ``arrays_sha256``, the hash of
the arrays it names, and loading checks it; the npz members' ``.npy`` headers (dtype, shape) are
checked against the JSON and the limits before any data is decompressed, and only the members
the JSON names are read.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .network import (ARRAY_DTYPES, CHAIN_FORMAT_VERSION, FORMAT_VERSION, GRAPH_KINDS, LAYER_KINDS, MAX_ARRAY_NAME,
                      MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_LAYERS, MAX_NPZ_MEMBERS, MAX_WEIGHTS, POOL_KINDS,
                      WEIGHTED_KINDS, InputSpec, IRError, Layer, Network, Neuron, RateNeuron, TTFSNeuron)
from .validate import Reader, brief, validate

__all__ = ["save", "load", "arrays_sha256"]

#: the JSON field holding :func:`arrays_sha256` of the arrays the file names
HASH_FIELD = "arrays_sha256"
#: the longest integer literal the JSON may hold (2**63 has 19 digits); longer ones are refused
#: with the field that holds them instead of Python's own digit limit error
MAX_INT_DIGITS = 40


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
        out_if: dict[str, Any] = {"type": "if", "theta": int(neuron.theta), "v0": int(neuron.v0)}
        if neuron.leak_shift is not None:  # LIF leak (issue 12): written only when set
            out_if["leak_shift"] = int(neuron.leak_shift)
        return out_if
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
        HASH_FIELD: arrays_sha256(arrays),
        "provenance": net.provenance,
    }
    json_path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _write_npz_deterministic(npz_path, arrays)
    return json_path, npz_path


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """The sha256 of arrays' canonical bytes: per array, sorted by name, a length-prefixed JSON
    header ``[name, "<i8", shape]`` and the length-prefixed values as little-endian int64 in C
    order. It depends on the values only, not on the dtype they are stored with."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name], dtype="<i8")
        head = json.dumps([name, "<i8", list(a.shape)]).encode()
        for part in (head, a.tobytes()):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()


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


#: the fields each object of the JSON may hold; any other is refused (a reader that ignored it
#: would load something other than what was written)
TOP_FIELDS = frozenset({"format_version", "name", "coding", "timesteps", "input", "layers", "arrays", HASH_FIELD,
                        "provenance"})
INPUT_FIELDS = frozenset({"shape", "bits", "signed", "input_coding", "scale", "neuron"})
_LAYER_COMMON = {"kind", "in_shape", "out_shape", "inputs"}
_WINDOW = {"kernel", "stride", "padding"}
_MEMBRANE = {"acc_bits", "scale", "out_scale", "neuron"}
LAYER_FIELDS = {
    "dense": frozenset(_LAYER_COMMON | _MEMBRANE | {"weight", "bias", "weight_bits"}),
    "conv2d": frozenset(_LAYER_COMMON | _MEMBRANE | _WINDOW | {"weight", "bias", "weight_bits"}),
    "avgpool2d": frozenset(_LAYER_COMMON | _WINDOW),
    "maxpool2d": frozenset(_LAYER_COMMON | _WINDOW),
    "flatten": frozenset(_LAYER_COMMON),
    "add": frozenset(_LAYER_COMMON | _MEMBRANE),
}
NEURON_FIELDS = {"if": frozenset({"type", "theta", "v0", "leak_shift"}), "ttfs": frozenset({"type", "enc", "dec_enc"}),
                 "sc-ttfs": frozenset({"type", "enc", "dec_enc", "cal", "dec_cal"})}


def _only_known(r: Reader, d: dict[str, Any], known: frozenset[str], path: str, what: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        key = unknown[0] if len(unknown[0]) <= 64 else unknown[0][:60] + " ..."
        where = f"{path}.{key}" if path else key
        raise r.fail(where, f"is not a field of {what} (its fields: {', '.join(sorted(known))})")


def _neuron_from_json(r: Reader, d: Any, path: str) -> Neuron | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise r.fail(path, f"must be an object or null, not {brief(d)}")
    kind = r.get(d, "type", f"{path}.type", str)
    n: Neuron
    if kind == "if":
        n = RateNeuron(theta=r.get(d, "theta", f"{path}.theta", int), v0=r.get(d, "v0", f"{path}.v0", int),
                       leak_shift=(r.get(d, "leak_shift", f"{path}.leak_shift", int) if "leak_shift" in d else None))
    elif kind in ("ttfs", "sc-ttfs"):
        n = TTFSNeuron(enc=r.int_list(d, "enc", f"{path}.enc"),
                       dec_enc=r.int_list(d, "dec_enc", f"{path}.dec_enc"))
        if kind == "sc-ttfs":
            n = replace(n, cal=r.int_list(d, "cal", f"{path}.cal"),
                        dec_cal=r.int_list(d, "dec_cal", f"{path}.dec_cal"))
    if kind in NEURON_FIELDS:
        _only_known(r, d, NEURON_FIELDS[kind], path, f"an {kind!r} neuron")
        return n
    raise r.fail(f"{path}.type", f"must be 'if', 'ttfs' or 'sc-ttfs', not {brief(kind)}")


# --------------------------------------------------------------------------- reading the JSON

class _LongInt(str):
    """An integer literal longer than ``MAX_INT_DIGITS``: kept as text, so the typed reads refuse
    it naming its field (Python's ``int()`` would refuse it past 4300 digits, naming nothing)."""

    def __repr__(self) -> str:
        return f"an integer of {len(self.lstrip('-'))} digits"


def _parse_int(text: str) -> int | _LongInt:
    return int(text) if len(text) <= MAX_INT_DIGITS else _LongInt(text)


def _read_json(r: Reader, json_path: Path) -> dict[str, Any]:
    """The document, or an :class:`IRError`: no file, too large, not UTF-8 JSON, nested too deep,
    an integer too long (naming its field)."""
    if not json_path.is_file():
        raise r.fail("<file>", "does not exist")
    size = json_path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise r.fail("<file>", f"is {size} bytes; an IR's JSON holds at most {MAX_JSON_BYTES}")
    try:
        doc = json.loads(json_path.read_bytes().decode("utf-8"), parse_int=_parse_int)
    except RecursionError:
        raise r.fail("<file>", f"is not valid JSON (nested far deeper than {MAX_JSON_DEPTH} levels)") from None
    except (UnicodeDecodeError, ValueError, OSError) as e:
        raise r.fail("<file>", f"is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise r.fail("<file>", f"must hold a JSON object, not {type(doc).__name__}")
    _check_json_tree(r, doc)
    return doc


def _check_json_tree(r: Reader, doc: dict[str, Any]) -> None:
    """Every value, walked without recursion: nesting at most ``MAX_JSON_DEPTH``, no too-long integer."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, _LongInt):
            raise r.fail(path, f"must be an integer of at most {MAX_INT_DIGITS} digits, not {value!r}")
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise r.fail(path, f"is nested deeper than {MAX_JSON_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                sub = (f"{path}.{k}" if path else str(k)) if isinstance(value, dict) else f"{path}[{k}]"
                stack.append((v, sub, depth + 1))


def _array_name(r: Reader, d: Any, key: str, path: str) -> str:
    name = r.get(d, key, path, str)
    if not 1 <= len(name) <= MAX_ARRAY_NAME or "\0" in name:
        raise r.fail(path, f"must be an array name of 1..{MAX_ARRAY_NAME} characters, not {brief(name)}")
    return name


def _arrays_path(r: Reader, doc: dict[str, Any], json_path: Path) -> Path:
    """The npz beside the JSON: ``arrays`` is a plain file name, never a path."""
    name = _array_name(r, doc, "arrays", "arrays")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise r.fail("arrays", f"must be a file name in the JSON's folder (no path separators), not {brief(name)}")
    path = json_path.with_name(name)
    if not path.is_file():
        raise r.fail("arrays", f"names {str(path)!r}, which does not exist")
    return path


def _weight_shape(ld: dict[str, Any], kind: str) -> tuple[int, ...] | None:
    """The weight shape the layer's JSON declares, None where its fields cannot say (validation
    then names the field)."""
    def ints(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                       for v in x)

    ins, outs, k = ld.get("in_shape"), ld.get("out_shape"), ld.get("kernel")
    if not (ints(ins) and ints(outs)):
        return None
    if kind == "dense":
        return (outs[0], math.prod(ins))
    if isinstance(k, int) and not isinstance(k, bool) and k > 0:
        return (outs[0], ins[0], k, k)
    return None


# --------------------------------------------------------------------------- reading the npz

#: what a damaged zip or .npy member can raise while it is read
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, KeyError,
               NotImplementedError, RuntimeError, struct.error, OverflowError, TypeError, SyntaxError,
               UnicodeError, MemoryError)


class _Wanted:
    """An array the JSON names: the field that names it and the shape the JSON declares for it."""

    def __init__(self, field_name: str, shape: tuple[int, ...] | None):
        self.field_name, self.shape = field_name, shape


def _check_zip_directory(r: Reader, path: Path) -> None:
    """Refuse a zip whose directory lists more than ``MAX_NPZ_MEMBERS`` members before
    :mod:`zipfile` reads it all into memory (the end-of-central-directory record says)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - (1 << 16) - 22))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return  # not a zip: zipfile says so
    entries, cd_size = struct.unpack("<HI", tail[at + 10: at + 16])
    if entries > MAX_NPZ_MEMBERS or cd_size > MAX_NPZ_MEMBERS * (46 + 2 * MAX_ARRAY_NAME):
        raise r.fail("arrays", f"{str(path)!r} lists {entries} members in a {cd_size}-byte directory; an IR's "
                               f"npz holds at most {MAX_NPZ_MEMBERS}")


def _read_arrays(r: Reader, path: Path, wanted: dict[str, _Wanted]) -> dict[str, np.ndarray]:
    """The named arrays as int64, each member's header checked before its data is read."""
    def damaged(problem: str) -> IRError:
        return r.fail("arrays", f"{str(path)!r} is not a readable npz file ({problem})")

    _check_zip_directory(r, path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename: info for info in zf.infolist()}
            for name in sorted(wanted):
                w = wanted[name]
                info = members.get(name + ".npy")
                if info is None:
                    raise r.fail(w.field_name, f"names array {name!r}, not in {path.name}")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise damaged(f"member {info.filename!r} uses compression method {info.compress_type}; "
                                  "an npz is stored or deflated")
                with zf.open(info) as fp:
                    out[name] = _read_member(r, fp, name, w, path, damaged)
    except IRError:
        raise
    except _ZIP_ERRORS as e:
        raise damaged(f"{type(e).__name__}: {e}") from None
    return out


def _read_member(r: Reader, fp: Any, name: str, w: _Wanted, path: Path, damaged: Any) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(fp)
    else:
        raise damaged(f"member {name + '.npy'!r} has .npy format version {version}, not 1.0 or 2.0")
    member = f"member {name + '.npy'!r}"
    if dtype.hasobject:
        raise damaged(f"{member} holds Python objects ({dtype}): pickled data is never loaded")
    if dtype.name not in ARRAY_DTYPES:
        raise r.fail(w.field_name, f"array {name!r} in {str(path)!r} has dtype {dtype}; the IR allows "
                                   f"{', '.join(ARRAY_DTYPES)}")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise damaged(f"{member} declares the shape {brief(shape)}")
    count = math.prod(shape)
    if count > MAX_WEIGHTS:
        raise r.fail(w.field_name, f"array {name!r} in {str(path)!r} declares {count} values (shape "
                                   f"{list(shape)}); an IR array holds at most {MAX_WEIGHTS}")
    if w.shape is not None and tuple(shape) != tuple(w.shape):
        raise r.fail(w.field_name, f"must have shape {list(w.shape)}, not {list(shape)} (array {name!r} "
                                   f"in {str(path)!r})")
    nbytes = count * dtype.itemsize
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise damaged(f"{member} is truncated: {len(data)} of {nbytes} data bytes")
    if fp.read(1):
        raise damaged(f"{member} holds more bytes than its header declares")
    a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(a, dtype=np.int64)  # exact: every allowed dtype fits int64


# --------------------------------------------------------------------------- load

def _scale(r: Reader, d: Any, key: str, path: str) -> float:
    value = r.get(d, key, path, (int, float))
    try:
        return float(value)
    except OverflowError:
        raise r.fail(path, f"must be a positive finite number, not {brief(value)}") from None


def load(path: str | Path) -> Network:
    """Read and validate an IR file pair. Any problem raises :class:`IRError`."""
    json_path, _ = _paths(path)
    where = str(json_path)
    r = Reader(where)
    doc = _read_json(r, json_path)
    version = r.get(doc, "format_version", "format_version", int)
    if version not in (CHAIN_FORMAT_VERSION, FORMAT_VERSION):
        raise r.fail("format_version", f"must be {CHAIN_FORMAT_VERSION} (a chain) or {FORMAT_VERSION} (a graph), "
                                       f"not {brief(version)}")
    arrays_path = _arrays_path(r, doc, json_path)
    declared_hash = doc.get(HASH_FIELD)
    if HASH_FIELD in doc and not (isinstance(declared_hash, str) and len(declared_hash) == 64
                                  and all(c in "0123456789abcdef" for c in declared_hash)):
        raise r.fail(HASH_FIELD, f"must be 64 lowercase hex digits (a sha256), not {brief(declared_hash)}")

    inp = r.get(doc, "input", "input", dict)
    input_spec = InputSpec(
        shape=tuple(r.int_list(inp, "shape", "input.shape")),
        bits=r.get(inp, "bits", "input.bits", int),
        signed=r.get(inp, "signed", "input.signed", bool),
        input_coding=r.get(inp, "input_coding", "input.input_coding", str),
        scale=_scale(r, inp, "scale", "input.scale"),
        neuron=_neuron_from_json(r, inp.get("neuron"), "input.neuron"),
    )
    _only_known(r, inp, INPUT_FIELDS, "input", "the input")
    layers = []
    wanted: dict[str, _Wanted] = {}
    layers_doc = r.get(doc, "layers", "layers", list)
    if len(layers_doc) > MAX_LAYERS:
        raise r.fail("layers", f"must hold at most {MAX_LAYERS} layers, not {len(layers_doc)}")
    for i, ld in enumerate(layers_doc):
        p = f"layers[{i}]"
        if not isinstance(ld, dict):
            raise r.fail(p, f"must be an object, not {brief(ld)}")
        kind = r.get(ld, "kind", f"{p}.kind", str)
        if kind not in LAYER_KINDS:
            raise r.fail(f"{p}.kind", f"must be one of {', '.join(LAYER_KINDS)}, not {brief(kind)}")
        layer = Layer(kind=kind, in_shape=r.int_list(ld, "in_shape", f"{p}.in_shape"),
                      out_shape=r.int_list(ld, "out_shape", f"{p}.out_shape"))
        if version == CHAIN_FORMAT_VERSION:
            if "inputs" in ld or kind in GRAPH_KINDS:
                raise r.fail(f"{p}.{'inputs' if 'inputs' in ld else 'kind'}",
                             f"needs format_version {FORMAT_VERSION} (a graph), the file says {version}")
        else:
            layer = replace(layer, inputs=r.int_list(ld, "inputs", f"{p}.inputs"))
            if not layer.inputs:
                raise r.fail(f"{p}.inputs", "must name the layer's sources (-1 for the network input), not []")
        if kind == "add":
            layer = replace(layer, acc_bits=r.get(ld, "acc_bits", f"{p}.acc_bits", int),
                            scale=_scale(r, ld, "scale", f"{p}.scale"),
                            out_scale=_scale(r, ld, "out_scale", f"{p}.out_scale"),
                            neuron=_neuron_from_json(r, ld.get("neuron"), f"{p}.neuron"))
        if kind in WEIGHTED_KINDS:
            names = {}
            for key in ("weight", "bias"):
                names[key] = _array_name(r, ld, key, f"{p}.{key}")
            shape = _weight_shape(ld, kind)
            for key, want in (("weight", shape), ("bias", shape[:1] if shape else None)):
                wanted.setdefault(names[key], _Wanted(f"{p}.{key}", want))
            layer = replace(layer, weight=names["weight"], bias=names["bias"],
                            weight_bits=r.get(ld, "weight_bits", f"{p}.weight_bits", int),
                            acc_bits=r.get(ld, "acc_bits", f"{p}.acc_bits", int),
                            scale=_scale(r, ld, "scale", f"{p}.scale"),
                            out_scale=_scale(r, ld, "out_scale", f"{p}.out_scale"),
                            neuron=_neuron_from_json(r, ld.get("neuron"), f"{p}.neuron"))
        if kind == "conv2d" or kind in POOL_KINDS:
            layer = replace(layer, kernel=r.get(ld, "kernel", f"{p}.kernel", int),
                            stride=r.get(ld, "stride", f"{p}.stride", int),
                            padding=r.get(ld, "padding", f"{p}.padding", int))
        _only_known(r, ld, LAYER_FIELDS[kind], p, f"a {kind} layer")
        layers.append(layer)
    net = Network(name=r.get(doc, "name", "name", str), coding=r.get(doc, "coding", "coding", str),
                  timesteps=r.get(doc, "timesteps", "timesteps", int), input=input_spec,
                  layers=layers, provenance=r.get(doc, "provenance", "provenance", dict),
                  format_version=version)
    _only_known(r, doc, TOP_FIELDS, "", "an IR")
    arrays = _read_arrays(r, arrays_path, wanted)
    if declared_hash is not None and arrays_sha256(arrays) != declared_hash:
        raise r.fail(HASH_FIELD, f"does not match the arrays the file names in {str(arrays_path)!r} (their "
                                 f"sha256 is {arrays_sha256(arrays)}): the JSON and the npz are not one pair")
    for layer in layers:
        if layer.weighted:
            layer.weight, layer.bias = arrays[layer.weight], arrays[layer.bias]
    validate(net, where=where)
    return net
