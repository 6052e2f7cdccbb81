"""Conversion: tracing and BN folding, rejected layers, quantization, end to end on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from snnfpga import ir, reference
from snnfpga.convert.data import load_dataset
from snnfpga.convert.graph import UnsupportedModel, forward_float, trace
from snnfpga.convert.models import cnn, mlp
from snnfpga.convert.pipeline import ConvertOptions, convert
from snnfpga.convert.quantize import quantize_frames
from snnfpga.convert.snn import FloatSNN
from snnfpga.convert.train import train_ann


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize("make, shape", [(lambda: mlp((1, 8, 8), (20, 12)), (1, 8, 8)),
                                         (lambda: cnn((1, 8, 8), (4, 6)), (1, 8, 8))])
def test_bn_folding_is_equivalent(make, shape):
    torch.manual_seed(0)
    model = make().eval()
    _randomise_bn(model)
    x = torch.rand(16, *shape)
    layers = trace(model, shape)
    assert not any(isinstance(layer, nn.Module) for layer in layers)
    assert torch.allclose(forward_float(layers, x), model(x).double(), atol=1e-5)


@pytest.mark.parametrize("bad, fragment", [
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Sigmoid(), nn.Linear(8, 2)), "layer 2 (Sigmoid)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, dilation=2), nn.Flatten(), nn.Linear(18, 2)), "layer 2 (MaxPool2d)"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Linear(8, 2)), "has no ReLU"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 2), nn.ReLU()), "output layer"),
    (nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(64, 2)), "layer 1 (ReLU)"),
    (nn.Sequential(nn.Flatten(), nn.Linear(60, 2)), "expects 60 inputs"),
    (nn.Linear(64, 2), "Linear does not run on inputs of shape (1, 8, 8) (RuntimeError: mat1 and mat2"),  # torch.fx
])
def test_unsupported_models_name_the_layer(bad, fragment):
    with pytest.raises(UnsupportedModel, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        trace(bad, (1, 8, 8))


def test_cnn_converts_and_integer_matches_float_closely():
    """The software path handles conv + avgpool (hardware for conv is a later issue)."""
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = cnn(data.shape, (8, 8))
    train_ann(model, data, epochs=4, progress=False)
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, finetune_epochs=0), progress=False)
    assert any(layer.kind == "conv2d" for layer in c.net.layers)
    assert any(layer.kind == "avgpool2d" for layer in c.net.layers)
    assert abs(c.metrics["int_ref"] - c.metrics["float_snn"]) <= 0.02
    assert c.metrics["int_ref"] >= c.metrics["float_ann"] - 0.05


@pytest.fixture(scope="module")
def digits_mlp():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = mlp(data.shape, (128,))
    acc = train_ann(model, data, epochs=30, progress=False)
    return data, model, acc


def test_sc_ttfs_T4_is_lossless_on_digits(digits_mlp, tmp_path):
    """The issue's margin: integer SC-TTFS at T=4 within 0.5 percentage points of the float ANN."""
    data, model, acc = digits_mlp
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4), progress=False)
    m = c.metrics
    assert m["float_ann"] == pytest.approx(acc["test"])
    assert m["int_ref"] >= m["float_ann"] - 0.005, m
    # every hidden neuron sends at most two spikes
    frames = quantize_frames(c.net, data.test_x)
    res = reference.simulate(c.net, frames)
    hidden = sum(layer.n_out for layer in c.net.layers[:-1] if layer.weighted)
    assert res.spikes_per_frame().max() <= 2 * hidden
    # what is written is what was evaluated
    j, _ = ir.save(c.net, tmp_path / "m.snn.json")
    assert (reference.simulate(ir.load(j), frames).classes == res.classes).all()


@pytest.mark.parametrize("coding, T", [("ttfs", 4), ("rate", 32)])
def test_other_codings_convert(digits_mlp, coding, T):
    data, model, _ = digits_mlp
    c = convert(model, data, ConvertOptions(coding=coding, timesteps=T, finetune_epochs=1), progress=False)
    assert c.net.coding == coding
    assert c.metrics["int_ref"] >= c.metrics["float_ann"] - 0.03, c.metrics


def test_spike_input_coding_is_multiplier_free_at_the_input(digits_mlp):
    data, model, _ = digits_mlp
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, input_coding="spikes", finetune_epochs=0),
                progress=False)
    assert c.net.input.input_coding == "spikes" and c.net.input.neuron.calibrated
    res = reference.simulate(c.net, quantize_frames(c.net, data.test_x[:20]))
    assert reference.INPUT in res.spikes
    assert c.metrics["int_ref"] >= c.metrics["float_ann"] - 0.05, c.metrics


def test_finetune_trains_thresholds_and_bn():
    data = load_dataset("digits")
    torch.manual_seed(1)
    model = mlp(data.shape, (32,))
    train_ann(model, data, epochs=3, progress=False)
    from snnfpga.convert.finetune import finetune
    from snnfpga.convert.graph import trace as tr
    from snnfpga.convert.thresholds import fit_ttfs_thresholds

    snn = FloatSNN(tr(model, data.shape), "sc-ttfs", 2)
    fit_ttfs_thresholds(snn, torch.from_numpy(data.train_x[:500]), progress=False)
    before = {k: v.detach().clone() for k, v in snn.state_dict().items()}
    out = finetune(snn, data.train_x, data.train_y, epochs=1, progress=False)
    assert out["epochs"] == 1 and "kept" in out
    if out["kept"]:
        changed = [k for k, v in snn.state_dict().items() if not torch.equal(v, before[k])]
        assert any("thresholds" in k for k in changed) and any("gain" in k for k in changed)
    else:  # rolled back exactly
        assert all(torch.equal(v, before[k]) for k, v in snn.state_dict().items())


def test_weight_that_does_not_fit_is_an_error():
    net = ir.Network  # noqa: F841 (documenting the type)
    from snnfpga.testing import random_network

    n = random_network("sc-ttfs", (4, 3, 2), 4, weight_bits=4, seed=0)
    n.layers[0].weight[0, 0] = 8  # 4-bit signed holds -8..7
    with pytest.raises(ir.IRError, match="value 8 does not fit weight_bits=4"):
        ir.validate(n)


def test_quantize_frames_rejects_out_of_range_images():
    from snnfpga.convert.quantize import QuantizationError
    from snnfpga.testing import random_network

    net = random_network("sc-ttfs", (4, 3, 2), 4)
    with pytest.raises(QuantizationError, match=r"\[0, 1\]"):
        quantize_frames(net, np.full((1, 4), 1.5))


def test_pow2_series_gives_power_of_two_decode_luts(digits_mlp):
    data, model, _ = digits_mlp
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, pow2=True, finetune_epochs=1),
                progress=False)
    for layer in c.net.layers[:-1]:
        for lut in (layer.neuron.dec_enc, layer.neuron.dec_cal):
            assert all(v == 0 or v & (v - 1) == 0 for v in lut), lut
        assert list(layer.neuron.dec_enc) == [128, 64, 32, 16]
    assert c.metrics["int_ref"] >= c.metrics["float_ann"] - 0.02, c.metrics


def _first_time_rule(v, lut, start=None):
    """min{t >= start : v >= lut[t]} by brute force, -1 if none (the integer rule, DESIGN §3)."""
    T = lut.shape[-1]
    out = torch.full(v.shape, -1, dtype=torch.long)
    for t in range(T - 1, -1, -1):
        ok = v >= lut[..., t]
        if start is not None:
            ok = ok & (start <= t) & (start >= 0)
        out[ok] = t
    return out


@pytest.mark.parametrize("monotone", [True, False])
@pytest.mark.parametrize("T", [1, 2, 3, 5])
def test_ttfs_encode_is_the_integer_rule(monotone, T):
    """The fast encode (binary search on non-increasing LUTs, a loop otherwise) is the rule, ties included."""
    from snnfpga.convert.snn import ttfs_decode, ttfs_encode

    g = torch.Generator().manual_seed(T)

    def lut(*shape):
        x = torch.rand(*shape, T, dtype=torch.float64, generator=g)
        return torch.sort(x, descending=True).values if monotone else x

    enc, cal = lut(), lut() * 0.3
    v = torch.cat([torch.randn(400, dtype=torch.float64, generator=g), enc, enc + cal])
    v = v[:len(v) // 4 * 4].reshape(-1, 4)
    t_e, t_c = ttfs_encode(v, enc, cal)
    assert torch.equal(t_e, _first_time_rule(v, enc))
    r = v - enc[t_e.clamp(min=0)]
    assert torch.equal(t_c, _first_time_rule(r, cal, start=t_e))
    assert torch.equal(ttfs_encode(v, enc, None)[0], t_e)
    dec = ttfs_decode(t_e, t_c, enc, cal)
    want = torch.where(t_e >= 0, enc[t_e.clamp(min=0)], 0.0) + torch.where(t_c >= 0, cal[t_c.clamp(min=0)], 0.0)
    assert torch.equal(dec, want)
    # a batch of candidate LUTs (the threshold grid search): each row its own LUT
    E, C = lut(6, 1), lut(6, 1) * 0.3
    vv = v.flatten()[None]
    t_e, t_c = ttfs_encode(vv, E, C)
    for k in range(6):
        assert torch.equal(t_e[k], _first_time_rule(vv[0], E[k, 0]))
        assert torch.equal(t_c[k], _first_time_rule(vv[0] - E[k, 0][t_e[k].clamp(min=0)], C[k, 0], start=t_e[k]))


def test_rate_steps_are_the_shorter_runs(digits_mlp):
    data, model, _ = digits_mlp
    snn = FloatSNN(trace(model, data.shape), "rate", 12)
    snn.rate_theta.fill_(0.8)
    x = torch.from_numpy(data.test_x[:50])
    steps = snn.run_rate_steps(x, (3, 12, 7))
    assert sorted(steps) == [3, 7, 12]
    for t, (out, spikes) in steps.items():
        snn.T = t
        o, s, _ = snn.run(x)
        assert torch.equal(out, o) and torch.equal(spikes, s)


def test_shared_sweep_work_changes_nothing(digits_mlp):
    """A sweep's shared work (trace, λ search over every rate T, one float rate run for all T)
    gives exactly the networks and metrics of separate conversions."""
    from snnfpga.convert.pipeline import PASSES, Shared, convert_network, evaluate, evaluate_all

    data, model, _ = digits_mlp
    jobs = [("rate", 8), ("ttfs", 2), ("rate", 16)]
    shared = Shared(model, data, rate_timesteps=(8, 16))
    together = [convert_network(model, data, ConvertOptions(coding=c, timesteps=T, finetune_epochs=1),
                                progress=False, shared=shared) for c, T in jobs]
    m_together = evaluate_all(together, data, progress=False)
    for (c, T), conv, m in zip(jobs, together, m_together):
        alone = convert_network(model, data, ConvertOptions(coding=c, timesteps=T, finetune_epochs=1), progress=False)
        m_alone = evaluate(alone, data, progress=False)
        assert len(conv.net.layers) == len(alone.net.layers)
        for a, b in zip(conv.net.layers, alone.net.layers):
            assert a.neuron == b.neuron and a.scale == b.scale
            assert (a.weight is None and b.weight is None) or (np.array_equal(a.weight, b.weight)
                                                               and np.array_equal(a.bias, b.bias))
        for k in ("float_snn", "int_ref", "float_spikes_per_frame", "spikes_per_frame", "finetune"):
            assert m[k] == m_alone[k], (c, T, k)
        assert list(m["seconds_per_pass"]) == list(PASSES) and all(s >= 0 for s in m["seconds_per_pass"].values())
