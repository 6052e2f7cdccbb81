"""Max pooling (``maxpool2d``): exact in TTFS (a window's maximum is its earliest spike), refused
in SC-TTFS and rate coding; IR, reference, event counting, conversion and the RTL's refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from snnfpga import ir, reference
from snnfpga.convert.graph import UnsupportedModel, forward_float, trace
from snnfpga.convert.snn import FloatSNN
from snnfpga.errors import Unsupported
from snnfpga.ir import InputSpec, Layer, Network
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.metrics import activity
from snnfpga.testing import random_frames, random_neuron


# --------------------------------------------------------------------------- test networks

def maxpool_network(coding: str = "ttfs", *, k: int = 2, s: int = 2, p: int = 0, hw: int = 6, T: int = 4,
                    input_coding: str = "direct", pool_input: bool = False, two_pools: bool = False,
                    seed: int = 0) -> Network:
    """``[maxpool] → conv3x3(1→3, pad 1) → maxpool(k, s, p) [→ maxpool 3/1/1] → flatten → dense(→4)``,
    random integer parameters, ``acc_bits`` from the bound (like :func:`snnfpga.testing.random_network`)."""
    rng = np.random.default_rng(seed)
    inp = InputSpec(shape=(1, hw, hw), bits=8, input_coding=input_coding, scale=1 / 255,
                    neuron=random_neuron(rng, coding, T, 255) if input_coding == "spikes" else None)
    layers: list[Layer] = []
    c, h = 1, hw
    if pool_input:
        h2 = (h - 2) // 1 + 1
        layers.append(Layer("maxpool2d", (c, h, h), (c, h2, h2), kernel=2, stride=1))
        h = h2
    w = rng.integers(-127, 128, size=(3, c, 3, 3))
    layers.append(Layer("conv2d", (c, h, h), (3, h, h), weight=w, bias=rng.integers(-300, 300, size=3),
                        weight_bits=8, neuron=random_neuron(rng, coding, T, 9 * 127 * 128 // 2),
                        kernel=3, stride=1, padding=1))
    c = 3
    ho = (h + 2 * p - k) // s + 1
    layers.append(Layer("maxpool2d", (c, h, h), (c, ho, ho), kernel=k, stride=s, padding=p))
    h = ho
    if two_pools:
        layers.append(Layer("maxpool2d", (c, h, h), (c, h, h), kernel=3, stride=1, padding=1))
    n = c * h * h
    layers.append(Layer("flatten", (c, h, h), (n,)))
    layers.append(Layer("dense", (n,), (4,), weight=rng.integers(-127, 128, size=(4, n)),
                        bias=rng.integers(-1000, 1000, size=4), weight_bits=8))
    net = Network(name="maxpool", coding=coding, timesteps=T, input=inp, layers=layers)
    for i, layer in enumerate(net.layers):
        if layer.weighted:
            layer.acc_bits = layer_acc_bits(net, i)
    return net


def np_maxpool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """Loops over one ``(C, H, W)`` array: the largest real element of each window."""
    c, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((c, ho, wo), dtype=np.int64)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                vals = [int(x[ch, y, z]) for y in range(i * s - p, i * s - p + k)
                        for z in range(j * s - p, j * s - p + k) if 0 <= y < h and 0 <= z < w]
                out[ch, i, j] = max(vals)
    return out


def earliest_spike_value(t_e: np.ndarray, dec_enc, k: int, s: int, p: int) -> np.ndarray:
    """The issue's reading: each window's value is that of its earliest spike (0: no spike)."""
    c, h, w = t_e.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((c, ho, wo), dtype=np.int64)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                ts = [int(t_e[ch, y, z]) for y in range(i * s - p, i * s - p + k)
                      for z in range(j * s - p, j * s - p + k) if 0 <= y < h and 0 <= z < w and t_e[ch, y, z] >= 0]
                out[ch, i, j] = dec_enc[min(ts)] if ts else 0
    return out


GEOMETRIES = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0)]


# --------------------------------------------------------------------------- IR

@pytest.mark.parametrize("input_coding", ["direct", "spikes"])
def test_round_trip_is_byte_exact(tmp_path, input_coding):
    net = maxpool_network(k=3, s=2, p=1, input_coding=input_coding, two_pools=True, pool_input=True, seed=3)
    j1, n1 = ir.save(net, tmp_path / "a.snn.json")
    doc = json.loads(j1.read_text())
    assert [d["kind"] for d in doc["layers"]] == ["maxpool2d", "conv2d", "maxpool2d", "maxpool2d", "flatten", "dense"]
    assert {k: doc["layers"][2][k] for k in ("kernel", "stride", "padding")} == {"kernel": 3, "stride": 2, "padding": 1}
    assert "weight" not in doc["layers"][2] and "neuron" not in doc["layers"][2]
    assert doc["format_version"] == 1  # additive: older files read unchanged
    loaded = ir.load(j1)
    j2, n2 = ir.save(loaded, tmp_path / "b.snn.json")
    assert j1.read_text().replace("a.snn.npz", "b.snn.npz") == j2.read_text()
    assert n1.read_bytes() == n2.read_bytes()
    frames = random_frames(net, 5, seed=1)
    assert (reference.simulate(net, frames).output == reference.simulate(loaded, frames).output).all()


@pytest.mark.parametrize("key", ["kernel", "stride", "padding"])
def test_missing_window_field(tmp_path, key):
    j, _ = ir.save(maxpool_network(), tmp_path / "m.snn.json")
    doc = json.loads(j.read_text())
    del doc["layers"][1][key]
    j.write_text(json.dumps(doc))
    with pytest.raises(ir.IRError) as e:
        ir.load(j)
    assert e.value.field_name == f"layers[1].{key}" and "is missing" in str(e.value)


def test_a_reader_without_maxpool2d_names_the_kind(tmp_path, monkeypatch):
    """What a reader from before this kind says about a file that holds one."""
    import snnfpga.ir.file as file_mod

    j, _ = ir.save(maxpool_network(), tmp_path / "m.snn.json")
    monkeypatch.setattr(file_mod, "LAYER_KINDS", ("dense", "conv2d", "avgpool2d", "flatten"))
    with pytest.raises(ir.IRError) as e:
        ir.load(j)
    assert e.value.field_name == "layers[1].kind"
    assert "must be one of dense, conv2d, avgpool2d, flatten, not 'maxpool2d'" in str(e.value)


@pytest.mark.parametrize("coding", ["rate", "sc-ttfs"])
def test_refused_outside_ttfs_naming_layer_and_coding(tmp_path, coding):
    net = maxpool_network(coding)
    with pytest.raises(ir.IRError) as e:
        ir.validate(net)
    assert e.value.field_name == "layers[1].kind"
    assert "maxpool2d (layer 1)" in str(e.value) and f"not {coding!r}" in str(e.value)
    # a file that says so is refused on load, with its name
    j, _ = ir.save(maxpool_network("ttfs"), tmp_path / "m.snn.json")
    doc = json.loads(j.read_text())
    doc["coding"] = coding
    if coding == "rate":
        doc["layers"][0]["neuron"] = {"type": "if", "theta": 100, "v0": 50}
    else:
        doc["layers"][0]["neuron"].update(type="sc-ttfs", cal=[1] * 4, dec_cal=[0] * 4)
    for d in doc["layers"]:
        if "acc_bits" in d:
            d["acc_bits"] = 48  # wide enough for any coding: the width is not what is refused
    j.write_text(json.dumps(doc))
    with pytest.raises(ir.IRError, match=rf"{j}: field 'layers\[1\].kind': maxpool2d \(layer 1\).*not '{coding}'"):
        ir.load(j)


def test_refused_where_not_event_shaped():
    net = maxpool_network()
    # after a sum pool: a max of sums is no spike
    bad = Network(name="x", coding="ttfs", timesteps=4, input=net.input, layers=[
        net.layers[0], Layer("avgpool2d", (3, 6, 6), (3, 3, 3), kernel=2, stride=2),
        Layer("maxpool2d", (3, 3, 3), (3, 2, 2), kernel=2, stride=1), Layer("flatten", (3, 2, 2), (12,)),
        Layer("dense", (12,), (4,), weight=np.ones((4, 12), np.int64), bias=np.zeros(4, np.int64), weight_bits=8)])
    for i in (0, 4):
        bad.layers[i].acc_bits = layer_acc_bits(bad, i)
    with pytest.raises(ir.IRError, match=r"maxpool2d \(layer 2\) must pool spikes or pixels.*layer 1 \(avgpool2d\)"):
        ir.validate(bad)
    # after the output layer, which sends nothing
    tail = maxpool_network()
    tail.layers = tail.layers[:1] + [Layer("conv2d", (3, 6, 6), (2, 6, 6), weight=np.ones((2, 3, 1, 1), np.int64),
                                           bias=np.zeros(2, np.int64), weight_bits=8, kernel=1),
                                     Layer("maxpool2d", (2, 6, 6), (2, 3, 3), kernel=2, stride=2)]
    for i in (0, 1):
        tail.layers[i].acc_bits = layer_acc_bits(tail, i)
    with pytest.raises(ir.IRError, match=r"maxpool2d \(layer 2\) follows the output layer 1"):
        ir.validate(tail)
    # padding beyond half the kernel: a window could hold padding only
    with pytest.raises(ir.IRError, match="padding must be at most half the kernel"):
        ir.validate(maxpool_network(k=2, s=2, p=2))
    # signed direct pixels: a pooled 0 would hide negative pixels' events
    signed = maxpool_network(pool_input=True)
    signed.input = InputSpec(shape=signed.input.shape, bits=8, signed=True, scale=1 / 127)
    for i, layer in enumerate(signed.layers):
        if layer.weighted:
            layer.acc_bits = layer_acc_bits(signed, i)
    with pytest.raises(ir.IRError, match=r"maxpool2d \(layer 0\) on direct pixels needs unsigned input"):
        ir.validate(signed)


def test_maxpool_keeps_the_value_range():
    """Max pooling passes values through: the next layer's bound is as without it."""
    from snnfpga.ir.bounds import input_range, output_range

    net = maxpool_network(k=3, s=1, p=1, two_pools=True)
    assert input_range(net, 4) == output_range(net.layers[0].neuron)  # the output dense layer's input
    assert input_range(net, 2) == input_range(net, 1)


# --------------------------------------------------------------------------- reference

@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), seed=st.integers(0, 2**31 - 1))
def test_max_pool_equals_loops(c, h, w, k, s, p, seed):
    if 2 * p > k or h + 2 * p < k or w + 2 * p < k:
        return
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    layer = Layer("maxpool2d", (c, h, w), (c, ho, wo), kernel=k, stride=s, padding=p)
    x = np.random.default_rng(seed).integers(0, 300, size=(2, c, h, w))
    out = reference.apply_wiring(layer, x)
    assert out.shape == (2, c, ho, wo)
    for n in range(2):
        assert (out[n] == np_maxpool(x[n], k, s, p)).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geom=st.sampled_from(GEOMETRIES), input_coding=st.sampled_from(["direct", "spikes"]),
       T=st.integers(1, 6), pool_input=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_reference_pools_decoded_values_and_that_is_the_earliest_spike(geom, input_coding, T, pool_input, seed):
    k, s, p = geom
    net = maxpool_network(k=k, s=s, p=p, T=T, input_coding=input_coding, pool_input=pool_input, seed=seed)
    ir.validate(net)
    frames = random_frames(net, 4, seed)
    res = reference.simulate(net, frames)
    ci = 1 if pool_input else 0  # the conv layer
    conv, dense = net.layers[ci], net.layers[-1]
    spikes = res.spikes[ir.Stage(ci)]
    for n in range(len(frames)):
        # the layers before the conv, by hand
        if input_coding == "spikes":
            enc = reference.encode_ttfs(frames[n].reshape(1, -1), net.input.neuron)
            x = reference.spike_values(net.input.neuron, *enc)
        else:
            x = frames[n].reshape(1, -1)
        x = x.reshape(net.input.shape)
        if pool_input:
            x = np_maxpool(x, 2, 1, 0)
        t_e, _ = reference.encode_ttfs(reference.decode(conv, x[None]), conv.neuron)
        assert (t_e == spikes.t_enc[n:n + 1]).all()
        vals = reference.spike_values(conv.neuron, t_e, None).reshape(conv.out_shape)
        pooled = np_maxpool(vals, k, s, p)
        assert (pooled == earliest_spike_value(t_e.reshape(conv.out_shape), conv.neuron.dec_enc, k, s, p)).all()
        out = reference.decode(dense, pooled.reshape(1, -1))[0]
        assert out.tolist() == res.output[n].tolist()


# --------------------------------------------------------------------------- event counting

@pytest.mark.parametrize("geom", GEOMETRIES)
@pytest.mark.parametrize("pool_input", [False, True])
def test_synaptic_events_count_the_surviving_events(geom, pool_input):
    k, s, p = geom
    net = maxpool_network(k=k, s=s, p=p, pool_input=pool_input, seed=7)
    frames = random_frames(net, 6, seed=2)
    frames[0] = 0  # an all-dark frame: nothing survives the input pool
    res = reference.simulate(net, frames)
    per = activity.synaptic_events_per_layer(net, frames, res)
    ci = 1 if pool_input else 0
    conv, dense = net.layers[ci], net.layers[-1]
    t_e = res.spikes[ir.Stage(ci)].t_enc.reshape((-1,) + tuple(conv.out_shape))
    for n in range(len(frames)):
        # one event per window holding a spike (its earliest); the value it carries is the max
        fired = np_maxpool((t_e[n] >= 0).astype(np.int64), k, s, p)
        vals = reference.spike_values(conv.neuron, t_e[n], None)
        pooled = np_maxpool(vals, k, s, p)
        assert ((pooled > 0) <= (fired > 0)).all()  # every non-zero value the reference decodes has its event
        assert per[n, 1] == int(fired.sum()) * dense.n_out
        pix = frames[n].reshape(net.input.shape)
        nz = np_maxpool((pix != 0).astype(np.int64), 2, 1, 0) if pool_input else (pix != 0).astype(np.int64)
        assert (nz == ((np_maxpool(pix, 2, 1, 0) if pool_input else pix) != 0)).all()
        assert per[n, 0] == int(nz.reshape(-1) @ activity.fanout(conv))
    assert per[0, 0] == 0


# --------------------------------------------------------------------------- conversion

def _cnn(pool=nn.MaxPool2d, relu_first=True):
    def block(ci, co):
        conv = [nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co)]
        return conv + ([nn.ReLU(), pool(2)] if relu_first else [pool(2), nn.ReLU()])
    return nn.Sequential(*block(1, 8), *block(8, 16), nn.Flatten(), nn.Linear(64, 10))


def test_trace_maps_maxpool_and_commutes_it_with_relu():
    torch.manual_seed(0)
    for relu_first in (True, False):
        model = _cnn(relu_first=relu_first).eval()
        layers = trace(model, (1, 8, 8))
        assert [lay.kind for lay in layers] == ["conv2d", "maxpool2d", "conv2d", "maxpool2d", "flatten", "dense"]
        assert layers[0].relu and layers[2].relu
        assert layers[1].where == ("layer 3 (MaxPool2d)" if relu_first else "layer 2 (MaxPool2d)")
        x = torch.rand(5, 1, 8, 8)
        assert torch.allclose(forward_float(layers, x), model(x).double(), atol=1e-5)


@pytest.mark.parametrize("pool, fragment", [
    (nn.MaxPool2d(2, dilation=2), r"layer 2 \(MaxPool2d\): dilation"),
    (nn.MaxPool2d(2, ceil_mode=True), r"layer 2 \(MaxPool2d\): ceil_mode"),
    (nn.MaxPool2d(2, return_indices=True), r"layer 2 \(MaxPool2d\): return_indices"),
])
def test_trace_refuses_what_it_cannot_map(pool, fragment):
    bad = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), pool, nn.Flatten(), nn.Linear(32, 2))
    with pytest.raises(UnsupportedModel, match=fragment):
        trace(bad, (1, 8, 8))
    after_avg = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UnsupportedModel, match=r"layer 3 \(MaxPool2d\): a max pool must pool spikes.*avgpool2d"):
        trace(after_avg, (1, 8, 8))


@pytest.mark.parametrize("coding", ["rate", "sc-ttfs"])
def test_conversion_refuses_maxpool_outside_ttfs(coding):
    from snnfpga.convert.data import load_dataset
    from snnfpga.convert.pipeline import ConvertOptions, convert_network

    layers = trace(_cnn().eval(), (1, 8, 8))
    with pytest.raises(UnsupportedModel, match=rf"layer 3 \(MaxPool2d\): max pooling is exact only in ttfs "
                                               rf"coding, not '{coding}'"):
        FloatSNN(layers, coding, 8)
    with pytest.raises(Unsupported, match=rf"layer 3 \(MaxPool2d\).*'{coding}'"):
        convert_network(_cnn(), load_dataset("digits"), ConvertOptions(coding=coding, timesteps=8), progress=False)


def test_digits_cnn_with_maxpool_converts_in_ttfs(tmp_path):
    """float ANN / float SNN / integer reference on digits, TTFS T=16 (the accuracy the report quotes)."""
    from snnfpga.convert.data import load_dataset
    from snnfpga.convert.pipeline import ConvertOptions, convert
    from snnfpga.convert.quantize import quantize_frames
    from snnfpga.convert.train import train_ann

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = _cnn()
    train_ann(model, data, epochs=15, progress=False)
    c = convert(model, data, ConvertOptions(coding="ttfs", timesteps=16, finetune_epochs=1), progress=False)
    m = c.metrics
    print("digits maxpool CNN, TTFS T=16:", {k: m[k] for k in ("float_ann", "float_snn", "int_ref")})
    assert [layer.kind for layer in c.net.layers].count("maxpool2d") == 2
    assert m["int_ref"] >= m["float_ann"] - 0.02, m
    assert abs(m["int_ref"] - m["float_snn"]) <= 0.02, m
    # what is written is what was evaluated
    frames = quantize_frames(c.net, data.test_x)
    j, _ = ir.save(c.net, tmp_path / "m.snn.json")
    assert (reference.simulate(ir.load(j), frames).classes == reference.simulate(c.net, frames).classes).all()


# --------------------------------------------------------------------------- hardware

def test_rtl_gen_builds_ttfs_maxpool_and_the_ir_refuses_the_others():
    """TTFS max pools generate (bit-exact: tests/test_rtl_maxpool.py); SC-TTFS and rate ones never
    reach rtl_gen, the IR refuses them."""
    from snnfpga.rtl_gen.pysim import run

    # pixels pooled straight into a dense layer
    dense = Network(name="pool-dense", coding="ttfs", timesteps=4, input=InputSpec((1, 4, 4), 8, scale=1 / 255),
                    layers=[Layer("maxpool2d", (1, 4, 4), (1, 2, 2), kernel=2, stride=2),
                            Layer("flatten", (1, 2, 2), (4,)),
                            Layer("dense", (4,), (3,), weight=np.eye(3, 4, dtype=np.int64),
                                  bias=np.zeros(3, np.int64), weight_bits=8)])
    dense.layers[2].acc_bits = layer_acc_bits(dense, 2)
    ir.validate(dense)
    frames = random_frames(dense, 3, seed=0)
    hw = run(dense, frames, backpressure=True)
    assert (hw.output == reference.simulate(dense, frames).output).all()
    assert (hw.output == frames.reshape(3, 2, 2, 2, 2).max(axis=(2, 4)).reshape(3, 4)[:, :3]).all()
    net = maxpool_network(input_coding="spikes", pool_input=True, two_pools=True)
    frames = random_frames(net, 2, seed=1)
    hw = run(net, frames, lanes=2)
    ref = reference.simulate(net, frames)
    assert (hw.output == ref.output).all()
    assert all(hw.events[s] == [ref.spikes[s].events(f) for f in range(2)] for s in ref.spikes)
    for coding in ("sc-ttfs", "rate"):
        other = maxpool_network(coding)
        with pytest.raises(ir.IRError, match=rf"maxpool2d \(layer \d\) is exact only in ttfs.*'{coding}'"):
            ir.validate(other)      # NetworkTop validates first, so rtl_gen never sees it
