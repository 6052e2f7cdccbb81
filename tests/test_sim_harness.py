"""The HDL harness (sim.harness) observes exactly what the cocotb monitors (sim.tb_network) observe.

Both testbenches run on the same compiled network; without stress they must see the same
spike events, the same output membranes and the same cycles, frame by frame. More frames than
the harness' ring holds, so the ring is refilled while the network runs.
"""

import numpy as np
import pytest

from snnfpga import reference, sim
from snnfpga.sim import runner
from snnfpga.sim.trace import BEGIN, KIND_BITS, RING_FRAMES, TIME_BITS, observations
from snnfpga.testing import random_frames, random_network

OPT = "-O0"
N = RING_FRAMES * 2 + 5


@pytest.fixture(scope="module", params=[("rate", 2), ("sc-ttfs", 3)], ids=["rate-l2", "sc-ttfs-l3"])
def case(request):
    coding, lanes = request.param
    net = random_network(coding, sizes=(20, 16, 12, 5), timesteps=4, seed=21)
    frames = random_frames(net, N, seed=3)
    ref = reference.simulate(net, frames)
    assert ref.spikes_per_frame().sum() > 0
    builds = {h: sim.prepare(net, lanes=lanes, opt=OPT, harness=h) for h in (True, False)}
    return net, frames, ref, builds


def test_harness_sees_what_the_cocotb_monitors_see(case):
    net, frames, ref, builds = case
    obs = {h: runner.run(b, frames, gaps=False, backpressure=False, progress=False) for h, b in builds.items()}
    fast, slow = obs[True], obs[False]
    assert fast["stages"] == slow["stages"]
    assert [f["membranes"] for f in fast["frames"]] == [f["membranes"] for f in slow["frames"]]

    # Cycles from frame 1 on, relative to its first pixel: the two testbenches start counting
    # elsewhere, and frame 0 starts at another distance from the reset (the harness first loads
    # its ring), while the banks are still being cleared after it.
    def cycles(o):
        t0 = o["frames"][1]["first_pixel"]
        return [(f["first_pixel"] - t0, f["last_pixel"] - t0, f["last_result"] - t0) for f in o["frames"][1:]]

    assert cycles(fast) == cycles(slow)
    for s in fast["done_cycles"]:
        d0, s0 = fast["frames"][1]["first_pixel"], slow["frames"][1]["first_pixel"]
        assert [c - d0 for c in fast["done_cycles"][s][1:]] == [c - s0 for c in slow["done_cycles"][s][1:]]
    for k in ("stat_events", "stat_frames"):  # stat_cycles counts from reset: loading the ring precedes the run
        assert fast["stats"][k] == slow["stats"][k]
    assert fast["protocol_errors"] == [] and fast["error"] is None
    r = sim.report(net, frames, fast, simulator="verilator", ref=ref)
    assert r.mismatching_images == 0 and r.images == N


def test_harness_under_stress_is_bit_exact(case):
    net, frames, ref, builds = case
    r = sim.simulate(net, frames, build=builds[True], ref=ref, gaps=True, backpressure=True, seed=5)
    assert r.mismatching_images == 0 and r.images == N, r.first_mismatch
    assert r.protocol_errors == [] and r.stat_errors == []
    obs = runner.run(builds[True], frames, gaps=True, backpressure=True, seed=5, progress=False)
    assert obs["stress"]["gaps"]["count"] > 0  # the stress phase did pause the pixels
    assert obs["stress"]["refused_cycles"] > 0  # and did hold result beats back


def test_a_broken_trace_is_reported_not_guessed():
    summary = {"out_acc_bits": 8, "cls_bits": 2, "n_classes": 2, "taps": [{"stage": 0}]}
    meta = {"values": {}, "cycles": 10}
    with pytest.raises(ValueError, match="no trace"):
        observations("@E 0 30\n", summary, meta, 1, ["latency"])
    event = 3 << (TIME_BITS + KIND_BITS) | 1 << KIND_BITS | 1  # neuron 3, time 1, kind 1
    log = "\n".join([BEGIN, f"@E 0 {event:x}", f"@D 0 5 1 {event:x}", "@R 6 1", "@R 7 1026", "@D 0 7 1 banana",
                     "@X 9 result_not_steady"])
    obs = observations(log, summary, meta, 1, ["latency"])
    assert obs["stages"]["0"] == [[[3, 1, 1], [3, 1, 1]]] and obs["done_cycles"]["0"] == [5]
    assert obs["frames"][0]["membranes"] == [1, 2] and obs["frames"][0]["cls"] == 0
    assert any("did not parse" in e for e in obs["protocol_errors"])
    assert any("result_not_steady" in e for e in obs["protocol_errors"])


def test_icarus_runs_the_harness_too():
    net = random_network("ttfs", sizes=(12, 10, 4), timesteps=4, seed=22)
    frames = random_frames(net, RING_FRAMES + 3, seed=4)
    r = sim.simulate(net, frames, simulator="icarus", lanes=2)
    assert r.mismatching_images == 0 and r.images == len(frames)
    assert np.isfinite(r.frame_interval_cycles)


@pytest.mark.parametrize("bits,size,signed", [(8, 784, False), (1, 64, False), (4, 100, True), (9, 37, True),
                                              (16, 100, True)])
def test_ring_words_pack_pixel_0_in_the_low_bits(bits, size, signed):
    """The numpy packing of the ring's words equals the plain definition, pixel by pixel."""
    from snnfpga.sim.tb_harness import ring_words
    from snnfpga.sim.trace import MAX_WORD_BITS

    rng = np.random.default_rng(bits)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    frames = rng.integers(lo, hi, size=(5, size))
    per_word = max(1, min(size, MAX_WORD_BITS // bits))
    want = [[sum((int(v) & ((1 << bits) - 1)) << (j * bits) for j, v in enumerate(frame[k:k + per_word]))
             for k in range(0, size, per_word)] for frame in frames]
    assert ring_words(frames, bits, per_word) == want
