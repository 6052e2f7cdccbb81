"""Generated conv Verilog (conv2d, avgpool2d, flatten) is bit-exact with the integer reference,
on Verilator and on Icarus, through ``snnfpga.sim.simulate`` (random pixel gaps and result
back-pressure). One small CNN per coding and simulator; builds are cached like in
``tests/test_sim_network.py``. A conv network with a corrupted conv weight must mismatch.
"""

import numpy as np
import pytest

from snnfpga import reference, sim
from snnfpga.ir import Stage, validate
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.testing import random_conv_network, random_frames

OPT = "-O0"
FRAMES = 6

# (coding, input_coding, lanes, in_shape, spec, seed)
NETWORKS = {
    "sc-ttfs": ("sc-ttfs", "direct", 2, (2, 5, 5), (("conv2d", 3, 3, 1, 1), ("avgpool2d", 2, 2, 0)), 20),
    "ttfs": ("ttfs", "spikes", 1, (1, 6, 5), (("conv2d", 2, 3, 2, 1), ("conv2d", 3, 2, 1, 0)), 21),
    "rate": ("rate", "spikes", 3, (2, 5, 4), (("avgpool2d", 2, 1, 0), ("conv2d", 2, 1, 2, 1),
                                               ("conv2d", 4, 3, 1, 1)), 22),
}
CASES = [(s, n) for s in ("verilator", "icarus") for n in NETWORKS]


def _net(name):
    coding, input_coding, lanes, in_shape, spec, seed = NETWORKS[name]
    net = random_conv_network(coding, in_shape, spec=spec, input_coding=input_coding, seed=seed)
    validate(net)
    return net, lanes


@pytest.mark.parametrize("simulator,name", CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_conv_bit_exact(simulator, name):
    net, lanes = _net(name)
    frames = random_frames(net, FRAMES, seed=7)
    ref = reference.simulate(net, frames)
    assert all(s.count().sum() > 0 for s in ref.spikes.values()), "a silent stage would prove little"
    b = sim.prepare(net, simulator=simulator, lanes=lanes, opt=OPT)
    r = sim.simulate(net, frames, build=b, seed=3, gaps=True, backpressure=True)
    assert r["first_mismatch"] is None, r["first_mismatch"]
    assert r["mismatching_images"] == 0 and r["images"] == FRAMES
    assert r["rtl_classes"] == [int(c) for c in ref.classes]
    assert r["protocol_errors"] == [] and r["stat_errors"] == []
    assert r["events_per_frame"] == pytest.approx(float(ref.spikes_per_frame().mean()))
    assert r["lanes"] == lanes
    assert r["cycles_per_frame"]["mean"] >= r["event_bound_cycles"] * 0.9


def test_corrupted_conv_weight_is_caught():
    net, lanes = _net("sc-ttfs")
    frames = random_frames(net, FRAMES, seed=7)
    ref = reference.simulate(net, frames)
    w = net.layers[0].weight
    for idx in zip(*np.nonzero(w)):
        bad_w = w.copy()
        bad_w[idx] = -bad_w[idx] if bad_w[idx] != -(1 << (net.layers[0].weight_bits - 1)) else 0
        bad = net.with_layer(0, weight=bad_w)
        bad = bad.with_layer(0, acc_bits=max(net.layers[0].acc_bits, layer_acc_bits(bad, 0)))
        r_bad = reference.simulate(bad, frames)
        differ = [i for i in range(FRAMES) if r_bad.spikes[Stage(0)].events(i) != ref.spikes[Stage(0)].events(i)]
        if differ:
            break
    else:  # pragma: no cover - the seed is fixed
        pytest.fail("no single conv weight flip changes a layer-0 spike")
    validate(bad)
    b = sim.prepare(bad, simulator="icarus", lanes=lanes)
    r = sim.simulate(net, frames, build=b, seed=1)
    assert r["mismatching_images"] >= len(differ)
    assert r["first_mismatch"].startswith(f"image {differ[0]}, stage 0 (layer 0): first differing event")
