"""sim.compare and sim.activity on hand-made observations (no simulator needed)."""

import copy

import numpy as np
import pytest

from snnfpga.sim import report
from snnfpga.metrics.activity import event_bound_cycles, fanout, synaptic_events, synaptic_events_per_layer
from snnfpga.sim.compare import compare, observations_from_reference, sort_events
from snnfpga import reference
from snnfpga.ir import Layer
from snnfpga.testing import random_frames, random_network


@pytest.fixture(scope="module")
def case():
    net = random_network("sc-ttfs", sizes=(16, 12, 4), seed=3)
    frames = random_frames(net, 6, seed=1)
    ref = reference.simulate(net, frames)
    assert all(len(ref.spikes[0].events(i)) > 0 for i in range(6)), "test needs events in every frame"
    return net, frames, ref


def test_perfect_observations_match(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    # the hardware may emit a frame's events in any order
    for per in obs["stages"].values():
        for evs in per:
            evs.reverse()
    c = compare(net, frames, obs, ref=ref)
    assert c.ok and c.images == 6 and c.first_mismatch is None
    assert c.rtl_classes == [int(x) for x in ref.classes]


def test_wrong_event_names_image_stage_and_event(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    ev = obs["stages"]["0"][2][0]
    ev[0] = (ev[0] + 1) % 12
    c = compare(net, frames, obs, ref=ref)
    assert c.mismatching_images == 1
    assert c.first_mismatch.startswith("image 2, stage 0 (layer 0): first differing event")
    assert "RTL" in c.first_mismatch and "reference" in c.first_mismatch


def test_missing_event_and_extra_kind(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    dropped = obs["stages"]["0"][1].pop()
    obs["stages"]["0"][4].append([0, 0, 1] if [0, 0, 1] not in obs["stages"]["0"][4] else [1, 0, 1])
    c = compare(net, frames, obs, ref=ref)
    assert c.mismatching_images == 2
    assert c.per_frame[1].startswith("image 1, stage 0")
    assert f"first missing (neuron {dropped[0]}, t {dropped[1]}" in c.per_frame[1]
    assert "first extra" in c.per_frame[4]
    assert c.per_frame[0] is None


def test_wrong_membrane_and_class(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    obs["frames"][3]["membranes"][2] += 1
    obs["frames"][5]["cls"] = (obs["frames"][5]["cls"] + 1) % 4
    obs["frames"][0]["membranes"][1] = None  # X/Z bits
    c = compare(net, frames, obs, ref=ref)
    assert c.mismatching_images == 3
    want = int(ref.output[3][2])
    assert c.per_frame[3] == f"image 3: output membrane 2: RTL {want + 1} vs reference {want} (1 of 4 differ)"
    assert c.per_frame[5].startswith("image 5: class: RTL")
    assert "RTL X" in c.per_frame[0]
    assert c.first_mismatch == c.per_frame[0]


def test_hang_and_missing_tap(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    obs["stages"]["0"] = obs["stages"]["0"][:4]
    del obs["frames"][4:]
    obs["error"] = "timeout after 100 cycles"
    c = compare(net, frames, obs, ref=ref)
    assert c.mismatching_images == 2
    assert "no done pulse" in c.per_frame[4] and "timeout" in c.per_frame[4]
    obs2 = observations_from_reference(net, frames, ref)
    obs2["stages"] = {}
    c2 = compare(net, frames, obs2, ref=ref)
    assert c2.mismatching_images == 6 and "taps differ" in c2.first_mismatch


def test_sort_events_order():
    assert sort_events([[3, 1, 0], [1, 1, 1], [2, 0, 1], [0, 1, 0]]) == [(2, 0, 1), (0, 1, 0), (3, 1, 0), (1, 1, 1)]


def test_input_stage_and_rate():
    for coding in ("rate", "ttfs", "sc-ttfs"):
        net = random_network(coding, sizes=(10, 8, 3), input_coding="spikes", seed=5)
        frames = random_frames(net, 3, seed=2)
        obs = observations_from_reference(net, frames)
        assert set(obs["stages"]) == {"in", "0"}
        assert compare(net, frames, obs).ok
        assert obs["stages"]["in"][1], "test needs input events in frame 1"
        obs["stages"]["in"][1] = obs["stages"]["in"][1][1:]  # drop one input event
        c = compare(net, frames, obs)
        assert c.first_mismatch.startswith("image 1, stage in (input encoder)")


def test_synaptic_events_dense(case):
    net, frames, ref = case
    per = synaptic_events_per_layer(net, frames, ref)
    nz = (frames != 0).sum(axis=1)
    n0 = reference.LayerSpikes.count(ref.spikes[0])
    assert per[:, 0].tolist() == (nz * 12).tolist()
    assert per[:, 1].tolist() == (n0 * 4).tolist()
    assert synaptic_events(net, frames, ref).tolist() == per.sum(axis=1).tolist()
    assert event_bound_cycles(np.array([7, 8, 0]), 4).tolist() == [2, 2, 0]


def test_fanout_conv_and_pool():
    conv = Layer(kind="conv2d", in_shape=(2, 4, 4), out_shape=(3, 4, 4), kernel=3, stride=1, padding=1,
                 weight=np.zeros((3, 2, 3, 3), dtype=np.int64), bias=np.zeros(3, dtype=np.int64))
    f = fanout(conv).reshape(2, 4, 4)
    # corner pixel: covered by 4 output positions, middle pixel by 9; times 3 output channels
    assert f[0, 0, 0] == 12 and f[1, 1, 1] == 27 and f[0, 0, 1] == 18
    # brute force: count (output position, channel) pairs whose window holds each input
    brute = np.zeros((4, 4), dtype=int)
    for oh in range(4):
        for ow in range(4):
            for dh in range(3):
                for dw in range(3):
                    h, w = oh - 1 + dh, ow - 1 + dw
                    if 0 <= h < 4 and 0 <= w < 4:
                        brute[h, w] += 3
    assert (f[0] == brute).all() and (f[1] == brute).all()


def test_report_fields(case):
    net, frames, ref = case
    obs = observations_from_reference(net, frames, ref)
    for j, rec in enumerate(obs["frames"]):
        rec.update(phase="latency" if j < 2 else "stream", first_pixel=100 * j, last_result=100 * j + 50)
    obs["sim_seconds"] = 2.0
    obs["stats"] = {"stat_frames": 6, "stat_events": 0, "stat_cycles": 600}
    obs["tap_events"] = sum(len(e) for per in obs["stages"].values() for e in per)
    r = report(net, frames, copy.deepcopy(obs), simulator="verilator", lanes=2)
    for key in ("simulator", "images", "mismatching_images", "first_mismatch", "rtl_classes",
                "cycles_per_frame", "frame_interval_cycles", "events_per_frame",
                "synaptic_events_per_frame", "event_bound_cycles", "sim_seconds", "images_per_second"):
        assert key in r
    assert r["images"] == 6 and r["mismatching_images"] == 0
    assert r["cycles_per_frame"] == {"mean": 51.0, "min": 51, "max": 51}
    assert r["frame_interval_cycles"] == 100.0
    assert r["images_per_second"] == 3.0
    syn = synaptic_events(net, frames, ref)
    assert r["event_bound_cycles"] == pytest.approx(float(np.mean(-(-syn // 2))))
    assert r["stat_errors"] and "stat_events" in r["stat_errors"][0]
