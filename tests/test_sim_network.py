"""The generated Verilog is bit-exact with the integer reference, on Verilator and on Icarus.

Each network is generated and compiled once per simulator (module-scoped builds, cached by a
hash of the Verilog under ``$SNNFPGA_SIM_BUILD`` or ``~/.cache/snnfpga/sim``); every run uses
random pixel gaps and random result back-pressure. A missing simulator is a failure, not a skip.
Corrupted networks prove the comparison can fail and names the stage.
"""

from dataclasses import replace

import numpy as np
import pytest

from snnfpga import sim
from snnfpga import reference
from snnfpga.ir import validate
from snnfpga.testing import random_frames, random_network

# C++ optimisation of the Verilator models built here: -O0 builds about twice as fast, and
# these runs are short
OPT = "-O0"
FRAMES = 20

NETWORKS = {
    "sc-ttfs-direct": dict(coding="sc-ttfs", sizes=(20, 16, 12, 5), seed=11),
    "ttfs-spikes": dict(coding="ttfs", sizes=(20, 16, 5), input_coding="spikes", seed=12),
    "rate-direct": dict(coding="rate", sizes=(20, 16, 12, 5), seed=13),
    "sc-ttfs-spikes": dict(coding="sc-ttfs", sizes=(12, 10, 4), input_coding="spikes", seed=14),
    "rate-spikes": dict(coding="rate", sizes=(12, 10, 4), input_coding="spikes", seed=15),
}
# Verilator builds cost 10-25 s each: three networks on Verilator, all of them on Icarus,
# and two with several weight lanes
CASES = ([("verilator", n, 1) for n in ("sc-ttfs-direct", "ttfs-spikes", "rate-direct")]
         + [("icarus", n, 1) for n in NETWORKS]
         + [("icarus", "sc-ttfs-direct", 3), ("icarus", "rate-spikes", 2)])

_builds: dict = {}


def _net(name):
    kw = dict(NETWORKS[name])
    return random_network(kw.pop("coding"), timesteps=4, **kw)


@pytest.fixture(scope="module")
def build_of():
    """``build_of(simulator, name, net, lanes)``: a compiled model, built once per module."""
    def get(simulator, name, net, lanes=1):
        key = (simulator, name, lanes)
        if key not in _builds:
            _builds[key] = sim.prepare(net, simulator=simulator, lanes=lanes, opt=OPT)
        return _builds[key]
    return get


def _check_activity(net, frames):
    ref = reference.simulate(net, frames)
    counts = ref.spikes_per_frame()
    assert counts.sum() > 0, "random network emits no spikes: the test would prove little"
    return ref


@pytest.mark.parametrize("simulator,name,lanes", CASES, ids=[f"{s}-{n}-lanes{k}" for s, n, k in CASES])
def test_bit_exact(simulator, name, lanes, build_of):
    net = _net(name)
    frames = random_frames(net, FRAMES, seed=7)
    ref = _check_activity(net, frames)
    b = build_of(simulator, name, net, lanes)
    assert b.summary["lanes"] == lanes
    r = sim.simulate(net, frames, build=b, seed=3, gaps=True, backpressure=True)
    assert r["first_mismatch"] is None, r["first_mismatch"]
    assert r["mismatching_images"] == 0 and r["images"] == FRAMES
    assert r["rtl_classes"] == [int(c) for c in ref.classes]
    assert r["protocol_errors"] == [] and r["stat_errors"] == []
    assert r["cycles_per_frame"]["min"] > 0 and r["frame_interval_cycles"] > 0
    assert r["events_per_frame"] == pytest.approx(float(ref.spikes_per_frame().mean()))
    assert r["stats"]["stat_frames"] == FRAMES
    assert r["lanes"] == lanes
    # the latency cannot beat the work: every synaptic event takes a lane for a cycle
    assert r["cycles_per_frame"]["mean"] >= r["event_bound_cycles"] * 0.9
    # nor the frame interval the busiest layer's events (a true lower bound: docs/hardware.md)
    assert r["frame_interval_cycles"] >= r["interval_bound_cycles"] > 0


def _swap_weights(net, index):
    """Swap two different weights of one row: same worst-case bound, different network."""
    layer = net.layers[index]
    w = layer.weight.copy()
    for j in range(w.shape[0]):
        row = w[j]
        a = int(np.argmax(row))
        b = int(np.argmin(row))
        if row[a] != row[b]:
            w[j, a], w[j, b] = row[b], row[a]
    return net.with_layer(index, weight=w)


def _corrupt_lut(net, index):
    """Move one encode threshold of layer ``index`` inside its neighbours (LUT stays monotone)."""
    neuron = net.layers[index].neuron
    enc = list(neuron.enc)
    for t in range(len(enc) - 1, 0, -1):
        lo = enc[t + 1] if t + 1 < len(enc) else 1
        hi = enc[t - 1]
        if hi - lo >= 2:
            enc[t] = lo + (hi - lo) // 2 if enc[t] != lo + (hi - lo) // 2 else lo + 1
            break
    else:
        raise AssertionError("no LUT entry can move")
    assert all(a >= b for a, b in zip(enc, enc[1:]))
    return net.with_layer(index, neuron=replace(neuron, enc=tuple(enc)))


@pytest.mark.parametrize("corruption", ["weight", "lut"])
def test_corrupted_network_is_caught(corruption, build_of):
    net = _net("sc-ttfs-direct")
    frames = random_frames(net, 12, seed=7)
    bad = _swap_weights(net, 0) if corruption == "weight" else _corrupt_lut(net, 0)
    validate(bad)
    r_ok, r_bad = reference.simulate(net, frames), reference.simulate(bad, frames)
    differ = [i for i in range(len(frames)) if r_ok.spikes[0].events(i) != r_bad.spikes[0].events(i)]
    assert differ, "the corruption changes no layer-0 spike: pick another"
    b = sim.prepare(bad, simulator="icarus")
    r = sim.simulate(net, frames, build=b, seed=1)
    assert r["mismatching_images"] >= len(differ)
    assert r["first_mismatch"].startswith(f"image {differ[0]}, stage 0 (layer 0): first differing event")
