"""Convolution in hardware: rtl_gen's conv2d / avgpool2d / flatten bit-exact with snnfpga.reference.

Random small CNNs (no training; snnfpga.testing.random_conv_network) for every coding and both
input codings, lanes 1..3, run in Amaranth's simulator with random input gaps and result
back-pressure, compared event by event (every stage) and membrane by membrane with the
integer reference. Kernels 1..3, strides 1..2, paddings 0..1 exercise borders and strides;
sum pooling sits right after the input, between convolutions and before the dense layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from snnfpga.errors import Unsupported
from snnfpga.ir import Layer, Stage, validate
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.metrics.activity import synaptic_events_per_layer
from snnfpga.reference import simulate
from snnfpga.rtl_gen import describe
from snnfpga.rtl_gen.pysim import run
from snnfpga.rtl_gen.top import NetworkTop
from snnfpga.testing import random_conv_network, random_frames

from test_rtl_network import check, mismatches

# (in_shape, spec): borders, stride, padding, pooling in every place it can sit
SPECS = [
    ((2, 5, 5), (("conv2d", 3, 3, 1, 1), ("avgpool2d", 2, 2, 0))),
    ((1, 6, 5), (("conv2d", 2, 3, 2, 1), ("conv2d", 3, 2, 1, 0))),
    ((2, 5, 4), (("avgpool2d", 2, 1, 0), ("conv2d", 2, 1, 2, 1), ("conv2d", 4, 3, 1, 1))),
]


@pytest.mark.parametrize("input_coding", ["direct", "spikes"])
@pytest.mark.parametrize("coding", ["sc-ttfs", "ttfs", "rate"])
def test_bit_exact_conv(coding, input_coding):
    for k, (in_shape, spec) in enumerate(SPECS):
        net = random_conv_network(coding, in_shape, spec=spec, input_coding=input_coding, seed=20 + k)
        validate(net)
        frames = random_frames(net, 2, seed=k)
        hw, ref = check(net, frames, lanes=1 + k, gaps=True, backpressure=True, seed=k)
        assert sorted(hw.events) == sorted(ref.spikes)


@pytest.mark.parametrize("seed", range(6))
def test_bit_exact_random_conv(seed):
    """Random shapes: kernel 1..3, stride 1..2, padding 0..1, channels 1..4, optional pooling."""
    coding = ("sc-ttfs", "ttfs", "rate")[seed % 3]
    input_coding = ("direct", "spikes")[seed // 3]
    rng = np.random.default_rng(seed)
    in_shape = (int(rng.integers(1, 3)), int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    net = random_conv_network(coding, in_shape, timesteps=int(rng.integers(1, 4)), input_coding=input_coding,
                              n_classes=int(rng.integers(1, 4)), seed=100 + seed)
    validate(net)
    check(net, random_frames(net, 2, seed=seed), lanes=1 + seed % 3, gaps=True, backpressure=True, seed=seed)


def test_networks_are_active():
    """The fixed networks above spike in every hidden stage (so the comparison proves something)."""
    for coding in ("sc-ttfs", "rate"):
        for k, (in_shape, spec) in enumerate(SPECS):
            net = random_conv_network(coding, in_shape, spec=spec, input_coding="spikes", seed=20 + k)
            ref = simulate(net, random_frames(net, 2, seed=k))
            assert all(s.count().sum() > 0 for s in ref.spikes.values()), (coding, k)


def test_corrupted_conv_weight_is_caught():
    in_shape, spec = SPECS[0]
    net = random_conv_network("sc-ttfs", in_shape, spec=spec, input_coding="spikes", seed=20)
    frames = random_frames(net, 2, seed=0)
    ref = simulate(net, frames)
    w = net.layers[0].weight
    for idx in zip(*np.nonzero(w)):
        bad_w = w.copy()
        bad_w[idx] = -bad_w[idx] if bad_w[idx] != -(1 << (net.layers[0].weight_bits - 1)) else 0
        bad = net.with_layer(0, weight=bad_w)
        bad = bad.with_layer(0, acc_bits=max(net.layers[0].acc_bits, layer_acc_bits(bad, 0)))
        r = simulate(bad, frames)
        if any(r.spikes[Stage(0)].events(f) != ref.spikes[Stage(0)].events(f) for f in range(len(frames))):
            break
    else:  # pragma: no cover - the seed is fixed
        pytest.fail("no single conv weight flip changes the reference")
    hw = run(bad, frames, lanes=2)
    assert any(m.startswith("stage 0 ") for m in mismatches(net, frames, hw))   # the check can fail ...
    assert mismatches(bad, frames, hw) == []                                     # ... and the RTL followed its own weights


def test_conv_cycles_follow_the_events():
    """Latency sits above the busiest layer's event bound and drops with more lanes."""
    in_shape, spec = SPECS[0]
    net = random_conv_network("sc-ttfs", in_shape, spec=spec, input_coding="spikes", seed=20)
    frames = random_frames(net, 1, seed=0)
    syn = synaptic_events_per_layer(net, frames)[0]
    lat = {}
    for lanes in (1, 3):
        hw = run(net, frames, lanes=lanes)
        assert mismatches(net, frames, hw) == []
        lat[lanes] = hw.latencies[0]
        assert lat[lanes] >= int(-(-syn.max() // lanes))
    assert lat[3] < lat[1]


def _conv(in_shape, out_ch, k, **kw):
    c, h, w = in_shape
    s, p = kw.get("stride", 1), kw.get("padding", 0)
    return Layer(kind="conv2d", in_shape=in_shape, out_shape=(out_ch, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1),
                 weight=np.ones((out_ch, c, k, k), np.int64), bias=np.zeros(out_ch, np.int64), weight_bits=4,
                 kernel=k, stride=s, padding=p, neuron=kw.get("neuron"))


def test_unsupported_names_what_is_missing():
    from dataclasses import replace

    base = random_conv_network("ttfs", (1, 4, 4), spec=(("conv2d", 2, 3, 1, 0),), seed=1)
    # a conv2d output layer of several positions
    net = replace(base, layers=[base.layers[0], _conv((2, 2, 2), 2, 1)])
    net.layers[1].acc_bits = layer_acc_bits(net, 1)
    with pytest.raises(Unsupported, match=r"layer 1 \(the output layer\) is .conv2d. with output shape \[2, 2, 2\]"):
        NetworkTop(net)
    # two sum pools in a row
    p1 = Layer(kind="avgpool2d", in_shape=(1, 4, 4), out_shape=(1, 3, 3), kernel=2)
    p2 = Layer(kind="avgpool2d", in_shape=(1, 3, 3), out_shape=(1, 2, 2), kernel=2)
    net = replace(base, layers=[p1, p2, replace(base.layers[0], in_shape=(1, 2, 2), out_shape=(2, 2, 2), kernel=1,
                                                weight=base.layers[0].weight[:, :, :1, :1])] + base.layers[1:])
    net.layers[-1] = replace(net.layers[-1], in_shape=(8,), weight=net.layers[-1].weight[:, :8])
    net.layers[-2] = Layer(kind="flatten", in_shape=(2, 2, 2), out_shape=(8,))
    with pytest.raises(Unsupported, match=r"one avgpool2d between weighted layers; layer 1"):
        NetworkTop(net)


def test_description_of_a_conv_layer():
    in_shape, spec = SPECS[0]   # (2,5,5) -conv 3x3 s1 p1-> (3,5,5) -pool 2-> (3,2,2) -> dense 3
    net = random_conv_network("sc-ttfs", in_shape, spec=spec, input_coding="spikes", seed=20)
    d = describe(net, lanes=2, decode="slots")
    conv, dense = d.layers
    assert (conv.kind, conv.n_in, conv.n_out, conv.groups, conv.slots) == ("conv2d", 50, 75, 2, 6)
    assert conv.weight_words == 2 * 3 * 3 * 2                 # (ci, ky, kx) × groups
    assert conv.membrane_words == 2 * 6 * 25 * 2               # 2 banks × slots × positions × groups
    assert (dense.n_in, dense.weight_words) == (12, 12 * 2)
    assert d.multipliers == 2 * 2                              # dec scaling, one per lane and layer


@pytest.mark.parametrize("coding,input_coding", [("sc-ttfs", "direct"), ("rate", "spikes")])
def test_conv_reset_mid_frame(coding, input_coding):
    """A reset in the middle of a frame leaves no stale state in the conv cores."""
    in_shape, spec = SPECS[0]
    net = random_conv_network(coding, in_shape, spec=spec, input_coding=input_coding, seed=20)
    check(net, random_frames(net, 2, seed=6), lanes=2, reset_after=23, backpressure=True, seed=3)


def test_conv_power_of_two_decode_and_signed_pixels():
    """Shift decode (no multipliers) in the conv layers, signed pixels into a direct conv."""
    from dataclasses import replace

    in_shape, spec = SPECS[1]

    def pow2(n):
        return replace(n, dec_enc=(64, 32, 16), dec_cal=(4, 2, 0))

    net = random_conv_network("sc-ttfs", in_shape, spec=spec, input_coding="direct", seed=21)
    net = replace(net, input=replace(net.input, signed=True))
    net = net.with_layer(0, neuron=pow2(net.layers[0].neuron)).with_layer(1, neuron=pow2(net.layers[1].neuron))
    for i, layer in enumerate(net.layers):
        if layer.weighted:
            net = net.with_layer(i, acc_bits=layer_acc_bits(net, i))
    validate(net)
    assert [layer.multipliers for layer in describe(net, lanes=2).layers] == [2, 0, 0]
    frames = random_frames(net, 2, seed=9)
    assert frames.min() < 0
    check(net, frames, lanes=2, gaps=True, backpressure=True)


@pytest.mark.parametrize("coding", ["sc-ttfs", "rate"])
def test_conv_output_layer_of_one_position(coding):
    """An all-conv network: the output conv's kernel covers the last feature map."""
    net = random_conv_network(coding, (2, 5, 5), spec=(("conv2d", 3, 3, 2, 1),), head="conv", n_classes=4,
                              input_coding="spikes", seed=5)
    validate(net)
    assert [layer.kind for layer in net.layers] == ["conv2d", "conv2d"]
    check(net, random_frames(net, 2, seed=5), lanes=3, gaps=True, backpressure=True)
