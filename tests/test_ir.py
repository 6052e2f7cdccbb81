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
