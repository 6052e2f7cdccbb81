"""Residual networks in software: the torch.fx trace, the graph IR (format_version 2), its
validation, the reference's add and the conversion of a trained ResNet."""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

from snnfpga import ir, reference
from snnfpga.convert.graph import UnsupportedModel, forward_float, trace
from snnfpga.convert.models import resnet
from snnfpga.convert.quantize import quantize
from snnfpga.convert.snn import FloatSNN
from snnfpga.convert.thresholds import fit_rate_thresholds, fit_ttfs_thresholds
from snnfpga.ir.bounds import layer_value_range

SHAPE = (1, 8, 8)


def _model(seed: int = 0, channels=(4, 4, 8)) -> nn.Module:
    torch.manual_seed(seed)
    m = resnet(SHAPE, channels).eval()
    for mod in m.modules():  # non-trivial BN statistics, so folding is exercised
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.1, 0.1)
    return m


@functools.lru_cache(maxsize=None)  # converted once per parameters; tests only read them
def _net(coding: str, seed: int = 0, input_coding: str = "direct") -> tuple[ir.Network, FloatSNN, torch.Tensor]:
    layers = trace(_model(seed), SHAPE)
    x = torch.rand(48, *SHAPE, generator=torch.Generator().manual_seed(seed))
    snn = FloatSNN(layers, coding, 4, input_coding)
    if coding == "rate":
        fit_rate_thresholds(snn, x, torch.randint(0, 10, (48,)))
    else:
        fit_ttfs_thresholds(snn, x, progress=False)
    return quantize(snn, name="resnet"), snn, x


# --------------------------------------------------------------------------- trace

def test_fx_trace_of_a_resnet():
    m = _model()
    layers = trace(m, SHAPE)
    kinds = [(layer.kind, layer.inputs, layer.relu) for layer in layers]
    assert kinds == [
        ("conv2d", (-1,), True),  # stem
        ("conv2d", (0,), True), ("conv2d", (1,), False),  # block 1: conv1, conv2 (branch)
        ("conv2d", (0,), False),  # its identity shortcut, a 1x1 identity conv (branch)
        ("add", (2, 3), True),
        ("conv2d", (4,), True), ("conv2d", (5,), False),  # block 2 (stride 2)
        ("conv2d", (4,), False),  # 1x1 stride-2 shortcut with its BN folded
        ("add", (6, 7), True),
        ("avgpool2d", (8,), False), ("flatten", (9,), False), ("dense", (10,), False)]
    shortcut = layers[3]
    assert shortcut.kernel == 1 and torch.equal(shortcut.weight[:, :, 0, 0], torch.eye(4, dtype=torch.float64))
    assert layers[7].kernel == 1 and layers[7].stride == 2
    x = torch.rand(32, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(forward_float(layers, x), m(x).double(), atol=1e-5)


class _Block(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 8 * 8, 3)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


@pytest.mark.parametrize("forward, fragment", [
    (lambda s, x: s.fc(torch.flatten(s.a(x) + s.b(x), 1)), "must go through ReLU before another layer reads it"),
    (lambda s, x: s.fc(torch.flatten(torch.relu(s.a(x)) * 2, 1)), "node mul (call_function mul) is not supported"),
    (lambda s, x: s.fc(torch.flatten(torch.sigmoid(s.a(x)), 1)), "node sigmoid"),
    (lambda s, x: (y := s.a(x), s.fc(torch.flatten(torch.relu(y + s.b(x)) + torch.relu(y), 1)))[1],
     "read by more than this add"),
    (lambda s, x: torch.relu(s.fc(torch.flatten(torch.relu(s.a(x)), 1))), "must end with its output Linear/Conv2d"),
    (lambda s, x: s.fc(torch.flatten(torch.relu(s.bn(torch.relu(s.a(x)))), 1)), "BatchNorm must directly follow"),
    (lambda s, x: s.fc(torch.flatten(torch.relu(s.a(x)) if x.sum() > 0 else x, 1)), "torch.fx cannot trace"),
])
def test_fx_trace_refuses_with_the_node(forward, fragment):
    with pytest.raises(UnsupportedModel) as e:
        trace(_Block(forward).eval(), SHAPE)
    assert fragment in str(e.value)


def test_fx_trace_accepts_the_add_of_two_activations_through_identity_convs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, padding=1)
            self.b = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 8 * 8, 3)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(torch.relu(self.a(x)) + torch.relu(self.b(x))), 1))

    m = Two().eval()
    layers = trace(m, SHAPE)
    assert [layer.kind for layer in layers] == ["conv2d", "conv2d", "conv2d", "conv2d", "add", "flatten", "dense"]
    x = torch.rand(8, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(forward_float(layers, x), m(x).double(), atol=1e-5)


# --------------------------------------------------------------------------- IR file and validation

@pytest.mark.parametrize("coding", ["sc-ttfs", "ttfs", "rate"])
def test_graph_round_trip_is_byte_exact_and_format_2(tmp_path, coding):
    net, _, x = _net(coding)
    j1, n1 = ir.save(net, tmp_path / "a.snn.json")
    doc = json.loads(j1.read_text())
    assert doc["format_version"] == ir.FORMAT_VERSION == 2
    assert all("inputs" in layer for layer in doc["layers"])
    assert doc["layers"][4] ["kind"] == "add" and doc["layers"][4]["inputs"] == [2, 3]
    loaded = ir.load(j1)
    j2, n2 = ir.save(loaded, tmp_path / "b.snn.json")
    assert j1.read_text().replace("a.snn.npz", "b.snn.npz") == j2.read_text()
    assert n1.read_bytes() == n2.read_bytes()
    frames = ir.quantize_frames(net, x.numpy())
    assert (reference.simulate(net, frames).output == reference.simulate(loaded, frames).output).all()


def test_a_chain_keeps_format_1(tmp_path):
    from snnfpga.testing import random_network

    j, _ = ir.save(random_network("sc-ttfs", (6, 5, 3), 3), tmp_path / "c.snn.json")
    doc = json.loads(j.read_text())
    assert doc["format_version"] == ir.CHAIN_FORMAT_VERSION == 1
    assert not any("inputs" in layer for layer in doc["layers"])


def _graph_doc(tmp_path):
    net, _, _ = _net("sc-ttfs")
    j, _ = ir.save(net, tmp_path / "g.snn.json")
    return j, json.loads(j.read_text())


def _expect(path, doc, field, fragment):
    path.write_text(json.dumps(doc))
    with pytest.raises(ir.IRError) as e:
        ir.load(path)
    assert e.value.field_name == field, str(e.value)
    assert fragment in str(e.value), str(e.value)


@pytest.mark.parametrize("change, field, fragment", [
    (lambda d: d.update(format_version=1), "layers[0].inputs", "needs format_version 2"),
    (lambda d: d["layers"][0].pop("inputs"), "layers[0].inputs", "is missing"),
    (lambda d: d["layers"][1].update(inputs=[]), "layers[1].inputs", "must name the layer's sources"),
    (lambda d: d["layers"][1].update(inputs=[5]), "layers[1].inputs", "must name earlier layers"),
    (lambda d: d["layers"][4].update(inputs=[2]), "layers[4].inputs", "reads 2 distinct layer(s)"),
    (lambda d: d["layers"][4].update(inputs=[2, 2]), "layers[4].inputs", "reads 2 distinct layer(s)"),
    (lambda d: d["layers"][4].update(inputs=[1, 3]), "layers[4].inputs", "input 1 is conv2d with a neuron"),
    (lambda d: d["layers"][5].update(inputs=[2]), "layers[4].inputs", "must be read by nothing else, not by layers [4, 5]"),
    (lambda d: d["layers"][3].update(acc_bits=d["layers"][3]["acc_bits"] + 1), "layers[3].acc_bits",
     "must equal add layer 4's acc_bits"),
    (lambda d: d["layers"][3].update(scale=d["layers"][3]["scale"] * 2), "layers[3].scale",
     "must equal add layer 4's scale"),
    (lambda d: d["layers"][4].update(neuron=None), "layers[4].neuron", "is missing"),
    (lambda d: d["layers"][4].update(acc_bits=2), "layers[4].acc_bits", "worst-case bound needs"),
    (lambda d: d["layers"][2].update(inputs=[0]), "layers[1]", "conv2d layer 1 is read by no layer"),
    (lambda d: [d["layers"][k].update(inputs=[0]) for k in (5, 7)], "layers[4].kind", "add layer 4 is read by no layer"),
])
def test_graph_field_errors(tmp_path, change, field, fragment):
    j, doc = _graph_doc(tmp_path)
    change(doc)
    _expect(j, doc, field, fragment)


# --------------------------------------------------------------------------- semantics

@pytest.mark.parametrize("coding", ["sc-ttfs", "ttfs", "rate"])
@pytest.mark.parametrize("input_coding", ["direct", "spikes"])
def test_float_and_integer_snn_agree_on_a_resnet(coding, input_coding):
    net, snn, x = _net(coding, seed=1, input_coding=input_coding)
    ir.validate(net)
    frames = ir.quantize_frames(net, x.numpy())
    r = reference.simulate(net, frames)
    with torch.no_grad():
        out = snn.run(x)[0]
    agree = float((out.argmax(1).numpy() == r.classes).mean())
    assert agree >= 0.9, agree
    assert set(r.spikes) >= {ir.Stage(4), ir.Stage(8)}  # the adds fire; branches have no stage
    assert not {ir.Stage(2), ir.Stage(3), ir.Stage(6), ir.Stage(7)} & set(r.spikes)


def test_reference_add_is_the_sum_of_both_branch_membranes():
    """Layer 4's spikes equal encoding (conv2 of block 1's input) + (shortcut of the stem)."""
    net, _, x = _net("sc-ttfs", seed=2)
    frames = ir.quantize_frames(net, x.numpy())
    r = reference.simulate(net, frames)
    stem = net.layers[0]
    h0 = reference.spike_values(stem.neuron, r.spikes[ir.Stage(0)].t_enc, r.spikes[ir.Stage(0)].t_cal)
    h1 = reference.spike_values(net.layers[1].neuron, r.spikes[ir.Stage(1)].t_enc, r.spikes[ir.Stage(1)].t_cal)
    v = reference.decode(net.layers[2], h1) + reference.decode(net.layers[3], h0)
    t_e, t_c = reference.encode_ttfs(v, net.layers[4].neuron)
    assert (t_e == r.spikes[ir.Stage(4)].t_enc).all() and (t_c == r.spikes[ir.Stage(4)].t_cal).all()
    assert (t_e >= 0).any()


def test_add_width_bound_covers_both_branches():
    net, _, _ = _net("ttfs", seed=3)
    big = copy.copy(net)
    w = np.full_like(net.layers[3].weight, 127)
    big = net.with_layer(3, weight=w)
    lo, hi = layer_value_range(big, 4)
    lo_a, hi_a = layer_value_range(net.with_layer(3, weight=np.zeros_like(w)), 4)
    assert hi > hi_a and lo <= lo_a
    assert layer_value_range(big, 3) == layer_value_range(big, 2) == (lo, hi)  # one membrane


def test_convert_a_trained_resnet_on_digits():
    """The pipeline from a (briefly) trained nn.Module with residual blocks to a validated graph IR."""
    from snnfpga.convert.data import load_dataset
    from snnfpga.convert.pipeline import ConvertOptions, convert
    from snnfpga.convert.train import train_ann

    data = load_dataset("digits")
    model = resnet(data.shape, (4, 4, 8))
    train_ann(model, data, epochs=3, seed=0, progress=False)
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, finetune_epochs=1, calib_samples=500),
                progress=False)
    assert c.net.is_graph and [layer.kind for layer in c.net.layers].count("add") == 2
    m = c.metrics
    assert m["float_ann"] > 0.5
    assert abs(m["int_ref"] - m["float_snn"]) <= 0.03, m
