"""Decode scaling on arrival (``decode="arrival"``) against per-(kind, t) slots (``"slots"``).

With scaling on arrival each event's weights are multiplied (shifted, for power-of-two LUTs)
by the source's ``dec_enc[t]`` / ``dec_cal[t]`` as they are added, into one partial sum per
neuron; the encode side reads one word per neuron. Random small dense and conv networks for
TTFS and SC-TTFS, both input codings, run in Amaranth's simulator with random input gaps and
result back-pressure and are compared event by event and membrane by membrane with the integer
reference (snnfpga.reference, unchanged). The description (slots, multipliers), the RTLIL
multipliers and the block RAM fit follow the choice; one Verilator run checks the Verilog.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from snnfpga import testing
import pytest

from snnfpga.errors import BadOption
from snnfpga.ir import validate
from snnfpga.ir.bounds import input_range, layer_acc_bits
from snnfpga.reference import simulate
from snnfpga.rtl_gen import describe
from snnfpga.rtl_gen.pysim import run
from snnfpga.rtl_gen.top import NetworkTop
from snnfpga.testing import random_conv_network, random_frames, random_network

from test_hw_description import rtlil_multipliers
from test_rtl_network import check

CODINGS = ["sc-ttfs", "ttfs"]
INPUTS = ["direct", "spikes"]
# (in_shape, spec): a pool after the input, a strided padded conv, a pool between convs
CONV_SPECS = [
    ((2, 5, 5), (("conv2d", 3, 3, 1, 1), ("avgpool2d", 2, 2, 0))),
    ((1, 6, 5), (("conv2d", 2, 3, 2, 1), ("conv2d", 3, 2, 1, 0))),
    ((2, 5, 4), (("avgpool2d", 2, 1, 0), ("conv2d", 2, 1, 2, 1), ("conv2d", 4, 3, 1, 1))),
]


pow2_decode = testing.pow2_decode  # shared: snnfpga.testing


def _active(ref) -> None:
    assert all(s.count().sum() > 0 for s in ref.spikes.values()), "a silent stage would prove little"


@pytest.mark.parametrize("input_coding", INPUTS)
@pytest.mark.parametrize("coding", CODINGS)
def test_bit_exact_dense(coding, input_coding):
    for lanes, seed in ((1, 7), (3, 8)):
        net = random_network(coding, (12, 10, 6, 4), timesteps=4, input_coding=input_coding, seed=seed)
        hw, ref = check(net, random_frames(net, 3, seed=seed), lanes=lanes, decode="arrival", gaps=True,
                        backpressure=True, seed=lanes)
        _active(ref)


@pytest.mark.parametrize("input_coding", INPUTS)
@pytest.mark.parametrize("coding", CODINGS)
def test_bit_exact_conv(coding, input_coding):
    for k, (in_shape, spec) in enumerate(CONV_SPECS):
        net = random_conv_network(coding, in_shape, spec=spec, input_coding=input_coding, seed=20 + k)
        validate(net)
        check(net, random_frames(net, 2, seed=k), lanes=1 + k, decode="arrival", gaps=True,
              backpressure=True, seed=k)


@pytest.mark.parametrize("seed", range(4))
def test_bit_exact_extreme_and_odd(seed):
    """Extreme weights (the width bound is reached), T = 1 and 5, lanes not dividing the layer."""
    coding = CODINGS[seed % 2]
    net = random_network(coding, [(5, 7, 3), (9, 13, 5, 2)][seed % 2], timesteps=(1, 5)[seed % 2],
                         weight_bits=(3, 8)[seed // 2], input_coding=INPUTS[seed // 2], extreme=True, seed=seed)
    check(net, random_frames(net, 3, seed=seed), lanes=(2, 5)[seed % 2], decode="arrival", gaps=True,
          backpressure=True, seed=seed)


@pytest.mark.parametrize("input_coding", INPUTS)
def test_power_of_two_lut_shifts(input_coding):
    """LUTs of powers of two and 0: shifts, no multiplier (only a direct layer's W·x); events of
    dec 0 add nothing and are skipped."""
    net = pow2_decode(random_network("sc-ttfs", (10, 8, 6, 3), timesteps=4, input_coding=input_coding, seed=4))
    assert 0 in net.layers[0].neuron.dec_cal
    top = NetworkTop(net, lanes=4, decode="arrival")
    d = top.description()
    assert [layer.multipliers for layer in d.layers] == [0 if input_coding == "spikes" else 4, 0, 0]
    assert rtlil_multipliers(top) == d.multipliers
    check(net, random_frames(net, 3, seed=5), lanes=4, decode="arrival", gaps=True, backpressure=True)
    conv = pow2_decode(random_conv_network("sc-ttfs", *CONV_SPECS[1], input_coding=input_coding, seed=21))
    check(conv, random_frames(conv, 2, seed=6), lanes=2, decode="arrival", gaps=True, backpressure=True)


@pytest.mark.parametrize("decode", ["arrival", "slots"])
def test_reset_mid_frame(decode):
    net = random_conv_network("sc-ttfs", *CONV_SPECS[0], input_coding="spikes", seed=20)
    check(net, random_frames(net, 2, seed=6), lanes=2, decode=decode, reset_after=23, backpressure=True, seed=3)


def test_arrival_is_not_slower():
    """Same decode work per event, one partial-sum read per neuron instead of one per slot."""
    net = random_network("sc-ttfs", (16, 16, 8, 4), timesteps=4, input_coding="spikes", seed=2)
    frames = random_frames(net, 2, seed=4)
    lat = {}
    for decode in ("slots", "arrival"):
        hw, _ = check(net, frames, lanes=2, decode=decode, one_at_a_time=True)
        lat[decode] = sum(hw.latencies)
    assert lat["arrival"] < lat["slots"]


def test_description_follows_the_choice():
    """slots: T or 2T partial sums per neuron, the encode side scales; arrival: 1, the decode side
    scales with as many multipliers; auto is arrival; layers without a LUT are unaffected."""
    in_shape, spec = CONV_SPECS[0]   # (2,5,5) -conv 3x3 p1-> (3,5,5) -pool 2-> (3,2,2) -> dense 3
    net = random_conv_network("sc-ttfs", in_shape, spec=spec, input_coding="spikes", seed=20)
    slots, arrival, auto = (describe(net, lanes=2, decode=d) for d in ("slots", "arrival", "auto"))
    assert [(layer.decode, layer.slots) for layer in slots.layers] == [("slots", 6), ("slots", 6)]
    assert [(layer.decode, layer.slots) for layer in arrival.layers] == [("arrival", 1), ("arrival", 1)]
    assert auto.layers == arrival.layers and (auto.decode, arrival.decode) == ("auto", "arrival")
    conv_s, conv_a = slots.layers[0], arrival.layers[0]
    assert conv_s.membrane_words == 2 * 6 * 25 * 2 and conv_a.membrane_words == 2 * 1 * 25 * 2
    assert [m.bits for m in slots.memories if m.initialised] == [m.bits for m in arrival.memories if m.initialised]
    assert [layer.multipliers for layer in slots.layers] == [layer.multipliers for layer in arrival.layers] == [2, 2]
    assert rtlil_multipliers(NetworkTop(net, lanes=2, decode="arrival")) == 4    # slots: test_hw_description
    # direct pixels: the first layer has no LUT; rate coding: no layer has one
    direct = describe(random_conv_network("ttfs", in_shape, spec=spec, input_coding="direct", seed=20),
                      decode="slots")
    assert [(layer.decode, layer.slots) for layer in direct.layers] == [("none", 1), ("slots", 3)]
    rate = random_conv_network("rate", in_shape, spec=spec, input_coding="spikes", seed=20)
    assert describe(rate, decode="slots").layers == describe(rate, decode="arrival").layers
    assert {layer.decode for layer in describe(rate).layers} == {"none"}


def test_summary_and_fit_follow_the_choice():
    from snnfpga.boards.fit import check_fit, memory_needs
    from snnfpga.boards.registry import DoesNotFitBoard, get_board
    from snnfpga.rtl_gen import summary

    net = random_conv_network("sc-ttfs", (1, 8, 8), spec=(("conv2d", 4, 3, 1, 1), ("avgpool2d", 2, 2, 0),
                                                           ("conv2d", 8, 3, 1, 1)), n_classes=10, timesteps=4,
                              weight_bits=8, input_bits=8, input_coding="spikes", seed=3)   # docs/hardware.md
    s, a = summary(net, decode="slots"), summary(net, decode="arrival")
    assert [x["membrane_words"] for x in s["layers"]] == [8 * x["membrane_words"] for x in a["layers"]]
    psum = {d: sum(m.bits for m in memory_needs(net, decode=d) if "partial" in m.name) for d in ("slots", "arrival")}
    assert psum["slots"] == 8 * psum["arrival"]
    ice = get_board("icebreaker")
    with pytest.raises(DoesNotFitBoard, match="decode=slots"):
        check_fit(net, ice, decode="slots")
    fit = check_fit(net, ice, decode="arrival")
    assert 0 < fit["bram_blocks"] <= fit["bram_available"]
    assert check_fit(net, ice, decode="arrival") == fit


def test_partial_sums_fit_acc_bits():
    """Why scaling on arrival needs no wider accumulator: every partial sum is Σ W·x over a
    subset of each input's events, x in {0, dec_enc[t], dec_cal[t'], their sum} ⊂ the input
    range bounds.py uses, so it lies within the proven membrane range (bias 0 included)."""
    for k, (in_shape, spec) in enumerate(CONV_SPECS):
        for coding in CODINGS:
            net = random_conv_network(coding, in_shape, spec=spec, input_coding="spikes", seed=20 + k)
            for i, layer in enumerate(net.layers):
                if not layer.weighted:
                    continue
                lo_in, hi_in = input_range(net, i)
                w = np.asarray(layer.weight, np.int64).reshape(layer.weight.shape[0], -1)
                lo = np.minimum(w * hi_in, 0).sum(axis=1).min()
                hi = np.maximum(w * hi_in, 0).sum(axis=1).max()
                assert lo_in == 0 and -(1 << (layer.acc_bits - 1)) <= lo and hi < 1 << (layer.acc_bits - 1)
                assert layer.acc_bits == layer_acc_bits(net, i)


def test_bad_option():
    net = random_network("ttfs", (4, 3, 2), seed=0)
    with pytest.raises(BadOption, match=r"decode must be one of auto, slots, arrival, not 'shift'"):
        NetworkTop(net, decode="shift")
    with pytest.raises(BadOption, match="decode must be"):
        describe(net, decode=None)


def test_cli_options(tmp_path):
    """``--decode`` reaches the generator from ``snnfpga generate`` and is parsed by the others."""
    import json

    from snnfpga.cli import build_parser, main
    from snnfpga.ir import save

    parser = build_parser()
    for argv in (["simulate", "m.snn.json"], ["build", "m.snn.json", "--board", "icebreaker"],
                 ["run"], ["generate", "m.snn.json", "-o", "x"]):
        assert parser.parse_args(argv).decode == "auto"
        assert parser.parse_args([*argv, "--decode", "slots"]).decode == "slots"
    net = random_network("sc-ttfs", (6, 5, 3), input_coding="spikes", seed=1)
    save(net, tmp_path / "m.snn.json")
    for decode, slots in (("slots", 8), ("arrival", 1)):
        out = tmp_path / decode
        assert main(["generate", str(tmp_path / "m.snn.json"), "-o", str(out), "--decode", decode]) == 0
        info = json.loads((out / "snn_top.json").read_text())
        assert info["layers"][0]["membrane_words"] == 2 * slots * 5


def test_corrupted_dec_is_caught():
    """A decode LUT entry changed in the hardware only shows as a mismatch (the check can fail)."""
    from test_rtl_network import mismatches

    net = random_network("sc-ttfs", (12, 10, 6, 4), timesteps=4, input_coding="spikes", seed=7)
    frames = random_frames(net, 3, seed=7)
    n = net.layers[1].neuron                       # its spikes feed the output layer
    bad = net.with_layer(1, neuron=dataclasses.replace(n, dec_enc=tuple(max(v - 1, 0) for v in n.dec_enc)))
    validate(bad)                                  # a smaller LUT: the widths still hold
    hw = run(bad, frames, lanes=2, decode="arrival")
    assert mismatches(bad, frames, hw) == []
    assert mismatches(net, frames, hw) != []
    assert not np.array_equal(simulate(bad, frames).output, simulate(net, frames).output)


def test_verilator_bit_exact():
    from snnfpga import reference, sim

    net = random_conv_network("sc-ttfs", *CONV_SPECS[1], input_coding="spikes", seed=21)
    frames = random_frames(net, 4, seed=7)
    ref = reference.simulate(net, frames)
    _active(ref)
    b = sim.prepare(net, simulator="verilator", lanes=2, decode="arrival", opt="-O0")
    assert b.summary["layers"][0]["membrane_words"] == 2 * 1 * 3 * 3   # one slot: banks × positions × groups
    r = sim.simulate(net, frames, build=b, seed=3, gaps=True, backpressure=True)
    assert r["first_mismatch"] is None, r["first_mismatch"]
    assert r["mismatching_images"] == 0 and r["images"] == 4
    assert r["protocol_errors"] == [] and r["stat_errors"] == []
