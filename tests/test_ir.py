"""Network IR: byte-exact round trip, a clear error for every malformed field, the width bound."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnfpga import ir, reference
from snnfpga.ir.bounds import layer_value_range
from snnfpga.testing import random_network


@pytest.mark.parametrize("coding", ["rate", "ttfs", "sc-ttfs"])
@pytest.mark.parametrize("input_coding", ["direct", "spikes"])
def test_round_trip_is_byte_exact(tmp_path, coding, input_coding):
    net = random_network(coding, (10, 6, 4), 4, input_coding=input_coding, seed=5)
    j1, n1 = ir.save(net, tmp_path / "a.snn.json")
    loaded = ir.load(j1)
    j2, n2 = ir.save(loaded, tmp_path / "b.snn.json")
    assert j1.read_text().replace("a.snn.npz", "b.snn.npz") == j2.read_text()
    assert n1.read_bytes() == n2.read_bytes()
    frames = np.random.default_rng(0).integers(0, 256, (4, 10))
    assert (reference.simulate(net, frames).output == reference.simulate(loaded, frames).output).all()


def _saved(tmp_path, coding="sc-ttfs"):
    net = random_network(coding, (6, 5, 3), 3, seed=2)
    j, _ = ir.save(net, tmp_path / "m.snn.json")
    return j, json.loads(j.read_text())


def _expect(tmp_path, doc, field, fragment):
    path = tmp_path / "m.snn.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ir.IRError) as e:
        ir.load(path)
    assert e.value.field_name == field, str(e.value)
    assert fragment in str(e.value)
    assert str(path) in str(e.value)


REQUIRED = ["format_version", "name", "coding", "timesteps", "input", "layers", "arrays", "provenance"]


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_top_level_field(tmp_path, key):
    _, doc = _saved(tmp_path)
    del doc[key]
    _expect(tmp_path, doc, key, "is missing")


@pytest.mark.parametrize("key", ["shape", "bits", "signed", "input_coding", "scale"])
def test_missing_input_field(tmp_path, key):
    _, doc = _saved(tmp_path)
    del doc["input"][key]
    _expect(tmp_path, doc, f"input.{key}", "is missing")


@pytest.mark.parametrize("key", ["kind", "in_shape", "out_shape", "weight", "bias", "weight_bits", "acc_bits",
                                 "scale", "out_scale"])
def test_missing_layer_field(tmp_path, key):
    _, doc = _saved(tmp_path)
    del doc["layers"][0][key]
    _expect(tmp_path, doc, f"layers[0].{key}", "is missing")


@pytest.mark.parametrize("key", ["enc", "cal", "dec_enc", "dec_cal", "type"])
def test_missing_lut(tmp_path, key):
    _, doc = _saved(tmp_path)
    del doc["layers"][0]["neuron"][key]
    _expect(tmp_path, doc, f"layers[0].neuron.{key}", "is missing")


@pytest.mark.parametrize("mutate, field, fragment", [
    (lambda d: d.update(format_version=99), "format_version", "must be 1 (a chain) or 2 (a graph), not 99"),
    (lambda d: d.update(coding="burst"), "coding", "'burst'"),
    (lambda d: d.update(timesteps=0), "timesteps", "not 0"),
    (lambda d: d.update(timesteps="4"), "timesteps", "must be int"),
    (lambda d: d["input"].update(bits=40), "input.bits", "not 40"),
    (lambda d: d["input"].update(input_coding="analog"), "input.input_coding", "'analog'"),
    (lambda d: d["input"].update(shape=[7]), "layers[0].in_shape", "must be [7]"),
    (lambda d: d["layers"][0].update(kind="lstm"), "layers[0].kind", "'lstm'"),
    (lambda d: d["layers"][0].update(acc_bits=3), "layers[0].acc_bits", "worst-case bound needs"),
    (lambda d: d["layers"][0].update(weight_bits=3), "layers[0].weight", "does not fit weight_bits=3"),
    (lambda d: d["layers"][0].update(scale=-1.0), "layers[0].scale", "positive"),
    (lambda d: d["layers"][0]["neuron"].update(enc=[5, 9, 1]), "layers[0].neuron.enc", "non-increasing"),
    (lambda d: d["layers"][0]["neuron"].update(enc=[5, 1]), "layers[0].neuron.enc", "timesteps=3 entries"),
    (lambda d: d["layers"][0]["neuron"].update(cal=[2, 1, 0]), "layers[0].neuron.cal", ">= 1"),
    (lambda d: d["layers"][0]["neuron"].update(type="if"), "layers[0].neuron.theta", "is missing"),
    (lambda d: d["layers"][0].update(weight="nope"), "layers[0].weight", "not in"),
    (lambda d: d["layers"][1].update(neuron={"type": "ttfs", "enc": [3, 2, 1], "dec_enc": [3, 2, 1]}),
     "layers[1].neuron", "must be null on the output layer"),
    (lambda d: d.update(arrays="missing.npz"), "arrays", "does not exist"),
])
def test_malformed_field(tmp_path, mutate, field, fragment):
    _, doc = _saved(tmp_path)
    mutate(doc)
    _expect(tmp_path, doc, field, fragment)


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "x.snn.json"
    with pytest.raises(ir.IRError, match="does not exist"):
        ir.load(p)
    p.write_text("{not json")
    with pytest.raises(ir.IRError, match="not valid JSON"):
        ir.load(p)


def test_pickled_array_is_refused(tmp_path):
    j, doc = _saved(tmp_path)
    bad = tmp_path / "m.snn.npz"
    np.savez(bad, **{"layer0.weight": np.array([object()], dtype=object)})
    with pytest.raises(ir.IRError, match="not a readable npz|not in"):
        ir.load(j)


def _worst_case_frame(net, layer_index, j, high):
    """Pixels that drive neuron j of the first layer to its extreme."""
    w = net.layers[layer_index].weight[j]
    lo, hi = net.input.value_range
    return np.where((w > 0) == high, hi, lo)[None]


@pytest.mark.parametrize("coding", ["ttfs", "sc-ttfs", "rate"])
def test_width_bound_holds_and_is_tight_on_worst_case_input(coding):
    net = random_network(coding, (24, 8, 4), 4, weight_bits=12, input_bits=8, extreme=True, seed=11)
    layer = net.layers[0]
    lo, hi = layer_value_range(net, 0)
    for j in range(layer.n_out):
        for high in (True, False):
            v = reference.decode(layer, _worst_case_frame(net, 0, j, high))[0, j]
            assert lo <= v <= hi
            assert -(1 << (layer.acc_bits - 1)) <= v < (1 << (layer.acc_bits - 1))
    # tight: the extreme membrane of the first layer needs all but at most one of the bits
    worst = max(abs(int(reference.decode(layer, _worst_case_frame(net, 0, j, h))[0, j]))
                for j in range(layer.n_out) for h in (True, False))
    assert ir.signed_bits_for(-worst, worst) >= layer.acc_bits - (2 if coding == "rate" else 1)


# --------------------------------------------------------------------------- issue 13: limits and integrity

def _write_npz(path, members: dict[str, bytes], compression=None):
    """A zip with raw members (``name -> bytes``), written as a hostile tool would."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=compression or zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(a) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _without_hash(j, doc):
    doc.pop("arrays_sha256")
    j.write_text(json.dumps(doc))


def _load_error(j) -> ir.IRError:
    with pytest.raises(ir.IRError) as e:
        ir.load(j)
    assert str(j) in str(e.value)
    return e.value


def _store_arrays(j, **arrays):
    """Replace the named arrays of m.snn.npz (keeping the others) with these values/dtypes."""
    npz = j.with_name("m.snn.npz")
    with np.load(npz) as z:
        members = {k: z[k] for k in z.files}
    members.update(arrays)
    _write_npz(npz, {k + ".npy": _npy(v) for k, v in members.items()})


def test_uint64_weight_does_not_wrap_and_its_dtype_is_refused(tmp_path):
    j, doc = _saved(tmp_path)
    w = np.asarray(ir.load(j).layers[0].weight).astype(np.uint64)
    w[0, 0] = np.uint64(2**64 - 1)  # as int64 this is -1, which fits 8 bits
    _store_arrays(j, **{"layer0.weight": w})
    e = _load_error(j)
    assert e.field_name == "layers[0].weight"
    assert "uint64" in str(e) and "m.snn.npz" in str(e) and "int8, int16, int32, int64, uint8, uint16, uint32" in str(e)
    # in memory, validation compares exact integers whatever the dtype
    net = random_network("sc-ttfs", (6, 5, 3), 3, seed=2)
    with pytest.raises(ir.IRError, match=r"layers\[0\].weight': value 18446744073709551615 does not fit"):
        ir.validate(net.with_layer(0, weight=w))


@pytest.mark.parametrize("dtype", ["float64", "bool", "complex64", "<U3"])
def test_array_dtypes_outside_the_contract_are_refused(tmp_path, dtype):
    j, _ = _saved(tmp_path)
    _store_arrays(j, **{"layer0.bias": np.zeros(5, dtype=dtype)})
    e = _load_error(j)
    assert e.field_name == "layers[0].bias" and "has dtype" in str(e)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", ">i8", "uint8", "uint16", "uint32"])
def test_allowed_dtypes_load_the_same_network(tmp_path, dtype):
    from snnfpga.ir.bounds import layer_acc_bits

    net = random_network("sc-ttfs", (6, 5, 3), 3, seed=2, weight_bits=7)
    if dtype.startswith("uint"):  # only non-negative values fit an unsigned dtype
        for i, layer in enumerate(net.layers):
            layer.weight, layer.bias = np.abs(layer.weight), np.abs(layer.bias)
            layer.acc_bits = layer_acc_bits(net, i)
    j, n = ir.save(net, tmp_path / "m.snn.json")
    before = n.read_bytes()
    with np.load(n) as z:
        arrays = {k: z[k] for k in z.files}
    narrow = {k: v.astype(dtype) for k, v in arrays.items() if (v.astype(dtype).astype(np.int64) == v).all()}
    assert "layer0.weight" in narrow  # (a bias may need more bits than its dtype: it keeps int64)
    _store_arrays(j, **narrow)
    with np.load(n) as z:
        assert z["layer0.weight"].dtype == np.dtype(dtype)
    loaded = ir.load(j)
    assert all(layer.weight.dtype == np.int64 for layer in loaded.layers if layer.weighted)
    _, n2 = ir.save(loaded, tmp_path / "again.snn.json")
    assert n2.read_bytes() == before


def test_out_of_range_value_in_a_narrow_dtype_is_exact(tmp_path):
    j, doc = _saved(tmp_path)
    _without_hash(j, doc)  # a file written before the hash existed: still range-checked
    w = np.abs(np.asarray(ir.load(j).layers[0].weight)).astype(np.uint32)
    w[1, 1] = 2**32 - 1
    _store_arrays(j, **{"layer0.weight": w})
    e = _load_error(j)
    assert e.field_name == "layers[0].weight" and "value 4294967295 does not fit weight_bits=8" in str(e)


def test_json_records_the_arrays_hash_and_load_checks_it(tmp_path):
    j, doc = _saved(tmp_path)
    assert len(doc["arrays_sha256"]) == 64
    other = random_network("sc-ttfs", (6, 5, 3), 3, seed=3)  # same shapes, other weights
    ir.save(other, tmp_path / "other.snn.json")
    doc["arrays"] = "other.snn.npz"
    j.write_text(json.dumps(doc))
    e = _load_error(j)
    assert e.field_name == "arrays_sha256" and "not one pair" in str(e) and "other.snn.npz" in str(e)
    for bad in ("abc", 5, None, "G" * 64):
        doc["arrays_sha256"] = bad
        j.write_text(json.dumps(doc))
        assert _load_error(j).field_name == "arrays_sha256"


@pytest.mark.parametrize("graph", [False, True])
def test_a_file_without_a_hash_still_loads(tmp_path, graph):
    from snnfpga.testing import random_residual_network

    net = random_residual_network("ttfs") if graph else random_network("rate", (6, 5, 3), 3)
    if graph:
        ir.validate(net)
    j, n = ir.save(net, tmp_path / "m.snn.json")
    doc = json.loads(j.read_text())
    assert doc["format_version"] == (2 if graph else 1)
    _without_hash(j, doc)
    j2, _ = ir.save(ir.load(j), tmp_path / "m2.snn.json")
    assert "arrays_sha256" in json.loads(j2.read_text())  # written again on save


BAD_FLOATS = [float("inf"), float("nan"), 1e308, -1.0, 0.0, 1e-320, True, "1", None, [], {}]


@pytest.mark.parametrize("value", BAD_FLOATS, ids=repr)
@pytest.mark.parametrize("where", ["input.scale", "layers[0].scale", "layers[0].out_scale", "layers[1].out_scale"])
def test_every_float_field_is_checked(tmp_path, value, where):
    _, doc = _saved(tmp_path)
    if where == "input.scale":
        doc["input"]["scale"] = value
    else:
        i, key = int(where[7]), where.split(".")[1]
        doc["layers"][i][key] = value
    _expect(tmp_path, doc, where, "not")


@pytest.mark.parametrize("path", [("timesteps",), ("input", "bits"), ("layers", 0, "weight_bits"),
                                  ("layers", 0, "acc_bits"), ("format_version",), ("input", "shape", 0)])
def test_booleans_are_not_integers(tmp_path, path):
    _, doc = _saved(tmp_path)
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = True
    field = ".".join(str(k) for k in path if not isinstance(k, int) or k != 0 or path[0] != "layers")
    field = {"layers.weight_bits": "layers[0].weight_bits", "layers.acc_bits": "layers[0].acc_bits",
             "input.shape.0": "input.shape"}.get(field, field)
    _expect(tmp_path, doc, field, "True")


def test_theta_of_2_to_the_70_is_an_error_not_an_overflow(tmp_path):
    j, _ = ir.save(random_network("rate", (6, 5, 3), 3), tmp_path / "m.snn.json")
    doc = json.loads(j.read_text())
    doc["layers"][0]["neuron"]["theta"] = 2**70
    _expect(tmp_path, doc, "layers[0].neuron.theta", "not 1180591620717411303424")
    doc["layers"][0]["neuron"]["theta"] = 5
    doc["layers"][0]["neuron"]["v0"] = -(2**70)
    _expect(tmp_path, doc, "layers[0].neuron.v0", "must be in")


def test_lut_entries_past_the_widest_membrane_are_refused(tmp_path):
    _, doc = _saved(tmp_path)
    doc["layers"][0]["neuron"]["enc"] = [2**70, 2**69, 1]
    _expect(tmp_path, doc, "layers[0].neuron.enc", "widest membrane")


def test_deep_nesting_and_huge_integers_name_the_field(tmp_path):
    j, doc = _saved(tmp_path)
    text = j.read_text()
    j.write_text(text.replace('"provenance": {', '"provenance": {"deep": ' + "[" * 100_000 + "]" * 100_000 + ", ", 1))
    e = _load_error(j)
    assert e.field_name == "<file>" and "nested" in str(e)
    j.write_text(text.replace('"provenance": {', '"provenance": {"deep": ' + "[" * 40 + "]" * 40 + ", ", 1))
    e = _load_error(j)
    assert e.field_name.startswith("provenance.deep") and "nested deeper than 32" in str(e)
    j.write_text(text.replace('"timesteps": 3', '"timesteps": ' + "9" * 5000))
    e = _load_error(j)
    assert e.field_name == "timesteps" and "an integer of 5000 digits" in str(e)


@pytest.mark.parametrize("name, fragment", [("", "1..255 characters"), ("../m.snn.npz", "no path separators"),
                                            ("sub/m.snn.npz", "no path separators"), ("..", "no path separators"),
                                            ("a\\m.snn.npz", "no path separators")])
def test_arrays_name_is_a_plain_file_name(tmp_path, name, fragment):
    _, doc = _saved(tmp_path)
    doc["arrays"] = name
    _expect(tmp_path, doc, "arrays", fragment)


def test_empty_weight_array_name(tmp_path):
    _, doc = _saved(tmp_path)
    doc["layers"][0]["weight"] = ""
    _expect(tmp_path, doc, "layers[0].weight", "1..255 characters")


def _damage(kind, npz, good: bytes):
    import bz2
    import zipfile

    if kind == "truncated":
        npz.write_bytes(good[: len(good) // 2])
    elif kind == "truncated member":  # a member cut short, the zip directory intact
        with np.load(npz) as z:
            w = z["layer0.weight"]
        _write_npz(npz, {"layer0.weight.npy": _npy(w)[:-7], "layer0.bias.npy": _npy(np.zeros(5, np.int64))})
    elif kind == "empty":
        npz.write_bytes(b"")
    elif kind == "not a zip":
        npz.write_bytes(b"hello, world\n" * 50)
    elif kind == "plain npy":
        npz.write_bytes(_npy(np.zeros((5, 6), np.int64)))
    elif kind == "member not npy":
        _write_npz(npz, {"layer0.weight.npy": b"this is no array", "layer0.bias.npy": _npy(np.zeros(5, np.int64))})
    elif kind == "pickled":
        np.savez(npz, **{"layer0.weight": np.array([object()], dtype=object), "layer0.bias": np.zeros(5, np.int64)})
    elif kind == "bad crc":
        data = bytearray(good)
        i = data.index(b"layer0.weight.npy") + 200  # inside the first member's compressed data
        data[i] ^= 0xFF
        npz.write_bytes(bytes(data))
    elif kind == "bzip2":
        with np.load(npz) as z:
            members = {k + ".npy": _npy(z[k]) for k in z.files}
        _write_npz(npz, members, compression=zipfile.ZIP_BZIP2)
        assert bz2  # the compression zipfile would otherwise decompress without a size bound
    elif kind == "bad header":
        _write_npz(npz, {"layer0.weight.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 12}     \n", "layer0.bias.npy": _npy(np.zeros(5, np.int64))})
    elif kind == "negative shape":
        hdr = b"{'descr': '<i8', 'fortran_order': False, 'shape': (-5, 6), }"
        hdr += b" " * (63 - len(hdr)) + b"\n"
        _write_npz(npz, {"layer0.weight.npy": b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr, "layer0.bias.npy": _npy(np.zeros(5, np.int64))})


DAMAGE = ["truncated", "truncated member", "empty", "not a zip", "plain npy", "member not npy", "pickled", "bad crc",
          "bzip2", "bad header", "negative shape"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_npz_is_an_ir_error_naming_the_file_and_arrays(tmp_path, kind):
    j, _ = _saved(tmp_path)
    npz = j.with_name("m.snn.npz")
    _damage(kind, npz, npz.read_bytes())
    e = _load_error(j)
    assert e.field_name == "arrays", str(e)
    assert str(npz) in str(e) and "not a readable npz file" in str(e)


def test_zip_bomb_fails_fast_in_little_memory(tmp_path):
    """A member whose header declares 8 GB (and whose data inflates to 400 MB) is refused on its
    header, before any data is decompressed; a member holding more than its header declares
    is refused after its declared bytes."""
    import time
    import tracemalloc
    import zipfile

    j, _ = _saved(tmp_path)
    npz = j.with_name("m.snn.npz")
    hdr = b"{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000,), }"
    hdr += b" " * (127 - len(hdr)) + b"\n"
    head = b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("layer0.weight.npy", "w", force_zip64=True) as f:
            f.write(head)
            chunk = bytes(1 << 20)
            for _ in range(400):
                f.write(chunk)
        zf.writestr("layer0.bias.npy", _npy(np.zeros(5, np.int64)))
    assert npz.stat().st_size < 2_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        e = _load_error(j)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.field_name == "layers[0].weight" and "declares 1000000000 values" in str(e)
    assert time.perf_counter() - t0 < 5 and peak < 200 << 20

    # the same flood behind an honest small header: only the declared bytes are read
    with np.load(j.with_name("m.snn.npz")) as z:  # (the bias is all we can keep from it)
        bias = z["layer0.bias"]
    w = np.zeros((5, 6), np.int64)
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("layer0.weight.npy", "w", force_zip64=True) as f:
            f.write(_npy(w))
            for _ in range(400):
                f.write(chunk)
        zf.writestr("layer0.bias.npy", _npy(bias))
    tracemalloc.start()
    try:
        e = _load_error(j)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.field_name == "arrays" and "more bytes than its header declares" in str(e)
    assert peak < 200 << 20


def test_only_the_named_members_are_read(tmp_path):
    j, _ = _saved(tmp_path)
    npz = j.with_name("m.snn.npz")
    with np.load(npz) as z:
        members = {k + ".npy": _npy(z[k]) for k in z.files}
    members["junk.npy"] = b"not an array at all"  # never opened
    _write_npz(npz, members)
    assert ir.load(j).layers[0].weight.shape == (5, 6)


def test_declared_shape_is_checked_before_the_data(tmp_path):
    j, _ = _saved(tmp_path)
    _store_arrays(j, **{"layer0.weight": np.zeros((5, 7), np.int64)})
    e = _load_error(j)
    assert e.field_name == "layers[0].weight" and "must have shape [5, 6], not [5, 7]" in str(e)


@pytest.mark.parametrize("mutate, field, fragment", [
    (lambda d: d["input"].update(shape=[1 << 21]), "input.shape", f"and {1 << 20} values, not [2097152]"),
    (lambda d: d["input"].update(shape=[2**40, 2**40]), "input.shape", "at most 3 dimensions"),
    (lambda d: d.update(layers=d["layers"] * 200), "layers", "at most 256 layers"),
    (lambda d: d["layers"][0].update(in_shape=[0]), "layers[0].in_shape", "positive sizes"),
    (lambda d: d.update(timesteps=5000), "timesteps", "must be in 1..4096, not 5000"),
    (lambda d: d.update(provenance=[]), "provenance", "must be dict"),
])
def test_documented_limits(tmp_path, mutate, field, fragment):
    _, doc = _saved(tmp_path)
    mutate(doc)
    _expect(tmp_path, doc, field, fragment)


def test_degenerate_frames_are_reported():
    from snnfpga.ir.frames import degenerate_frames

    net = random_network("ttfs", (6, 5, 3), 3)
    assert degenerate_frames(net, np.ones((2, 6), np.int64)) is None
    assert "every pixel of the 2 frame(s) is 0" in degenerate_frames(net, np.zeros((2, 6), np.int64))
    huge = type(net)(**{**net.__dict__, "input": type(net.input)(**{**net.input.__dict__, "scale": 1e20})})
    images = np.full((2, 6), 0.7)
    msg = degenerate_frames(huge, ir.quantize_frames(huge, images), source=images)
    assert "input.scale=1e+20 maps every pixel of these images to 0" in msg


def test_unknown_fields_are_refused(tmp_path):
    from snnfpga.ir.file import LAYER_FIELDS

    assert set(LAYER_FIELDS) == set(ir.LAYER_KINDS)  # a new kind must say which fields it has
    for where, d in (("colour", None), ("input.colour", "input"), ("layers[0].colour", 0),
                     ("layers[0].neuron.colour", "neuron")):
        _, doc = _saved(tmp_path)
        target = {None: doc, "input": doc["input"], 0: doc["layers"][0], "neuron": doc["layers"][0]["neuron"]}[d]
        target["colour"] = "red"
        _expect(tmp_path, doc, where, "is not a field of")
