"""Fuzzing the IR loader (issue 13): structure-aware mutations of valid saved IRs, chains and
graphs, and byte-level damage to their JSON and npz.

Every input must end in one of two ways: a :class:`snnfpga.errors.UserError` whose message
names the file, or a network that, saved again, gives back what was written (byte for byte,
up to the documented normal form: a missing hash is added, a missing null neuron written as
null, an integer scale written as a float). Never another exception, never more memory than
``MEMORY_BUDGET``.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga import ir
from snnfpga.errors import UserError
from snnfpga.testing import random_conv_network, random_network, random_residual_network

#: peak Python/numpy allocation of one load (and its re-save), traced by tracemalloc
MEMORY_BUDGET = 64 << 20
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

#: outcomes per mutation class: ``TRIED[(class, "error" | "loaded")]``; printed at the end (pytest -s)
TRIED: Counter = Counter()


@functools.cache
def _bases() -> tuple[tuple[str, dict, bytes], ...]:
    """(name, JSON document, npz bytes) of each valid IR the mutations start from."""
    graph = random_residual_network("sc-ttfs", seed=1)
    ir.validate(graph)
    nets = {"chain-sc-ttfs-spikes": random_network("sc-ttfs", (10, 6, 4), 4, input_coding="spikes", seed=1),
            "chain-rate": random_network("rate", (8, 5, 3), 6, seed=2),
            "conv-ttfs": random_conv_network("ttfs", seed=3),
            "graph-sc-ttfs": graph}
    out = []
    with tempfile.TemporaryDirectory() as d:
        for name, net in nets.items():
            j, n = ir.save(net, Path(d) / "m.snn.json")
            out.append((name, json.loads(j.read_text()), n.read_bytes()))
    return tuple(out)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    for (cls, outcome), n in sorted(TRIED.items()):
        print(f"fuzz {cls:22s} {outcome:7s} {n}")


def _paths(doc) -> list[tuple]:
    """Every path to a value in the document (not the root)."""
    out, stack = [], [((), doc)]
    while stack:
        path, value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            out.append(path + (k,))
            stack.append((path + (k,), v))
    return sorted(out, key=repr)


def _deep(n: int):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


EXTREMES = [0, -1, 1, 2, 2**31, 2**63, 2**70, -(2**70), 10**30, 1e308, -1e308, math.inf, -math.inf, math.nan, 1e-320,
            0.5, True, False, None, "", "x", "layer0.weight", "../m.snn.npz", [], [0], [1, 2, 3], [-1] * 4, {},
            {"type": "if"}, _deep(40), _deep(5)]


#: a value for a field: an extreme, or any integer, float or short string
VALUES = st.one_of(st.sampled_from(EXTREMES), st.integers(), st.floats(), st.text(max_size=4))


def _set(doc, path, value=None, delete=False):
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def _write(d: Path, doc_text: str | bytes, npz: bytes) -> Path:
    j = d / "m.snn.json"
    (j.write_bytes if isinstance(doc_text, bytes) else j.write_text)(doc_text)
    (d / "m.snn.npz").write_bytes(npz)
    return j


def _canonical(doc) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _normal_form(doc: dict, hash_: str) -> dict:
    """What a re-save writes for a document that loaded (docs/ir.md)."""
    doc = copy.deepcopy(doc)
    renamed = False
    for i, layer in enumerate(doc["layers"]):  # save names arrays by layer index (a deleted
        for key in ("weight", "bias"):          # identity-shaped layer shifts the indices)
            if key in layer and layer[key] != f"layer{i}.{key}":
                layer[key], renamed = f"layer{i}.{key}", True
    if renamed:
        doc["arrays_sha256"] = hash_  # the hash covers the names
    doc.setdefault("arrays_sha256", hash_)
    doc["input"].setdefault("neuron", None)
    doc["input"]["scale"] = float(doc["input"]["scale"])
    for layer in doc["layers"]:
        if layer["kind"] in ("dense", "conv2d", "add"):
            layer.setdefault("neuron", None)
            layer["scale"], layer["out_scale"] = float(layer["scale"]), float(layer["out_scale"])
    return doc


def _check(cls: str, j: Path, expect_doc: dict | None, expect_npz: bytes | None) -> None:
    """Load ``j``: a UserError naming the file, or a network whose re-save is what was written."""
    tracemalloc.start()
    try:
        try:
            net = ir.load(j)
        except UserError as e:
            assert str(j) in str(e), str(e)
            assert isinstance(e, ir.IRError) and e.field_name, str(e)
            TRIED[(cls, "error")] += 1
            return
        with tempfile.TemporaryDirectory() as d:
            j2, n2 = ir.save(net, Path(d) / "m.snn.json")
            text, npz = j2.read_text(), n2.read_bytes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET, peak
    TRIED[(cls, "loaded")] += 1
    written = json.loads(j.read_text())
    assert text == _canonical(_normal_form(written, json.loads(text)["arrays_sha256"]))
    if expect_doc is not None:
        assert json.loads(text)["arrays_sha256"] == expect_doc["arrays_sha256"]
    if expect_npz is not None and _renamed(written) is None:
        assert npz == expect_npz
    elif expect_npz is not None:  # a deleted layer shifted the names: the same arrays under new names
        before, after = _arrays(expect_npz), _arrays(npz)
        assert {new: before[old].tolist() for old, new in _renamed(written).items()} == \
            {k: v.tolist() for k, v in after.items()}


def _renamed(doc: dict) -> dict[str, str] | None:
    """Old array name -> the name a re-save gives it, or None when no name changes."""
    names = {layer[key]: f"layer{i}.{key}" for i, layer in enumerate(doc["layers"])
             for key in ("weight", "bias") if key in layer}
    return names if any(k != v for k, v in names.items()) else None


def _arrays(npz: bytes) -> dict:
    with np.load(io.BytesIO(npz), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@st.composite
def _json_mutation(draw):
    """A base IR's document with 1-3 fields deleted or set to an extreme or wrong-typed value."""
    b = draw(st.integers(0, len(_bases()) - 1))
    name, doc, npz = _bases()[b]
    doc = copy.deepcopy(doc)
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        if draw(st.booleans()):
            _set(doc, path, delete=True)
            ops.append("delete")
        else:
            _set(doc, path, copy.deepcopy(draw(VALUES)))
            ops.append("value")
    return name, doc, npz, "json-delete" if set(ops) == {"delete"} else "json-value"


@SETTINGS
@given(_json_mutation())
def test_mutated_fields(case):
    name, doc, npz, cls = case
    with tempfile.TemporaryDirectory() as d:
        j = _write(Path(d), _canonical(doc) if not _has_nan(doc) else json.dumps(doc), npz)
        _check(cls, j, None, npz)


def _has_nan(doc) -> bool:
    return "NaN" in json.dumps(doc)


@SETTINGS
@given(st.data())
def test_damaged_json_text(data):
    """Truncated, bit-flipped or spliced JSON text."""
    name, doc, npz = data.draw(st.sampled_from(_bases()))
    text = bytearray(_canonical(doc).encode())
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    if how == "truncate":
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(text) - 1))
            text[i] = data.draw(st.sampled_from(b'{}[]",:0123456789-+.eE aAtfn\\\x00\xff'))
    else:
        i = data.draw(st.integers(0, len(text)))
        text[i:i] = data.draw(st.sampled_from([b"[" * 5000, b"9" * 5000, b"1e999", b"-", b'"', b"NaN", b"\xc3"]))
    with tempfile.TemporaryDirectory() as d:
        j = _write(Path(d), bytes(text), npz)
        _check(f"json-text-{how}", j, None, npz)


@SETTINGS
@given(st.data())
def test_damaged_npz(data):
    """Truncated, bit-flipped, overwritten or re-packed npz files (the JSON intact)."""
    name, doc, npz = data.draw(st.sampled_from(_bases()))
    raw = bytearray(npz)
    how = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "empty", "repack"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 5))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "overwrite":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i:i + 16] = data.draw(st.binary(min_size=16, max_size=16))
    elif how == "empty":
        raw = bytearray()
    else:
        raw = bytearray(_repack(npz, data))
    with tempfile.TemporaryDirectory() as d:
        j = _write(Path(d), _canonical(doc), bytes(raw))
        _check(f"npz-{how}", j, doc, npz if how != "repack" else None)


def _repack(npz: bytes, data) -> bytes:
    """The same members re-written by another tool: a member dropped, renamed, retyped, reshaped,
    replaced by a pickle or by text, or an extra member; or numpy's own savez."""
    import zipfile

    with np.load(io.BytesIO(npz)) as z:
        arrays = {k: z[k] for k in z.files}
    key = data.draw(st.sampled_from(sorted(arrays)))
    how = data.draw(st.sampled_from(["drop", "rename", "dtype", "reshape", "pickle", "text", "extra", "savez"]))
    members: dict[str, bytes] = {}
    for k, a in arrays.items():
        buf = io.BytesIO()
        if k == key and how == "dtype":
            a = a.astype(data.draw(st.sampled_from(["uint64", "float32", "int8", "bool", "int32"])))
        if k == key and how == "reshape":
            a = a.reshape(-1)
        if k == key and how == "pickle":
            np.lib.format.write_array(buf, np.array([None], dtype=object), allow_pickle=True)
        else:
            np.lib.format.write_array(buf, a, allow_pickle=False)
        members[k + ".npy"] = buf.getvalue()
    if how == "drop":
        del members[key + ".npy"]
    elif how == "rename":
        members[key] = members.pop(key + ".npy")
    elif how == "text":
        members[key + ".npy"] = b"not an array\n"
    elif how == "extra":
        members["zz.npy"] = b"\x93NUMPY garbage"
    out = io.BytesIO()
    if how == "savez":
        np.savez_compressed(out, **arrays)
        return out.getvalue()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return out.getvalue()


def test_the_bases_round_trip():
    """The starting points themselves load and re-save byte for byte (so the fuzz can pass only
    through the loader's own checks)."""
    for _name, doc, npz in _bases():
        with tempfile.TemporaryDirectory() as d:
            j = _write(Path(d), _canonical(doc), npz)
            _check("unchanged", j, doc, npz)
