"""Max pooling in hardware (``rtl_gen.layer_maxpool``): bit-exact with the integer reference in TTFS.

The stage alone is checked against a model (per pooled element the earliest spike of its
window, the events fed in shuffled, not time, order; the max pixel for direct input) under
random gaps and back-pressure, with a payload-stability check. Whole networks with max pools
in every place docs/ir.md allows (after a conv layer before conv / sum pool / flatten → dense,
a pool of a pool, after the input encoder, on direct pixels) run in Amaranth's simulator and
are compared stage by stage and membrane by membrane with :mod:`snnfpga.reference`; one runs
on Verilator and Icarus through :func:`snnfpga.sim.simulate`; a small trained CNN with
``nn.MaxPool2d`` is converted in TTFS and simulated.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from snnfpga import reference, sim
from snnfpga.ir import IRError, Network, validate
from snnfpga.metrics.activity import synaptic_events_per_layer
from snnfpga.rtl_gen import describe
from snnfpga.rtl_gen.layer_maxpool import MaxPoolStage
from snnfpga.rtl_gen.pysim import run
from snnfpga.rtl_gen.top import NetworkTop
from snnfpga.testing import random_frames, random_maxpool_network

from test_hw_description import elaborated_memories
from test_rtl_network import check, mismatches


# --------------------------------------------------------------------------- networks

# (name, in_shape, spec, input_coding, head): every place docs/ir.md allows a max pool
NETWORKS = {
    # conv → max pool (overlapping, padded) → conv → flatten → dense
    "conv-pool-conv": ((2, 6, 6), (("conv2d", 3, 3, 1, 1), ("maxpool2d", 3, 2, 1), ("conv2d", 2, 2, 1, 0)),
                       "spikes", "dense"),
    # max pool of the input encoder's events, then a pool of a pool (stride 1, overlapping)
    "in-pool-pool": ((1, 7, 6), (("maxpool2d", 2, 1, 1), ("maxpool2d", 3, 1, 1), ("conv2d", 2, 3, 2, 0)),
                     "spikes", "dense"),
    # max pool → sum pool → conv; stride 3 > kernel 2 leaves inputs no window covers
    "pool-sumpool-conv": ((2, 8, 8), (("conv2d", 2, 3, 1, 1), ("maxpool2d", 2, 3, 0), ("avgpool2d", 2, 1, 0),
                                      ("conv2d", 3, 1, 1, 0)), "spikes", "dense"),
    # direct unsigned pixels max pooled into the first (conv) layer, then a pool before a conv head
    "pixels-pool": ((2, 6, 6), (("maxpool2d", 2, 2, 1), ("conv2d", 3, 2, 1, 0), ("maxpool2d", 2, 1, 0)),
                    "direct", "conv"),
}


def _net(name: str, seed: int = 0) -> Network:
    in_shape, spec, input_coding, head = NETWORKS[name]
    net = random_maxpool_network(in_shape, spec, input_coding=input_coding, head=head, seed=seed)
    validate(net)
    return net


# --------------------------------------------------------------------------- the stage alone

def pool_model(in_shape, k: int, s: int, p: int, values: np.ndarray) -> np.ndarray:
    """Per pooled element the largest value of its window (real elements only)."""
    c, h, w = in_shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((c, ho, wo), dtype=np.int64)
    x = values.reshape(in_shape)
    for ch in range(c):
        for i in range(ho):
            for j in range(wo):
                out[ch, i, j] = max(int(x[ch, y, z]) for y in range(i * s - p, i * s - p + k)
                                    for z in range(j * s - p, j * s - p + k) if 0 <= y < h and 0 <= z < w)
    return out.reshape(-1)


def run_stage(stage: MaxPoolStage, frames: list[list], *, gaps: bool, backpressure: bool, seed: int):
    """Feed ``frames`` (events ``(n, t)`` and an end marker each, or pixel lists) and collect the
    output: per frame the event list (events) or the pixel list. Also returns the cycle of each
    frame's last output beat, and asserts that a stalled beat never changes."""
    rng = random.Random(seed)
    o, i = stage.o_stream, stage.i_stream
    got: list[list] = [[]]
    done_at: list[int] = []
    n_frames = len(frames)
    cycle = [0]

    async def feeder(ctx):
        for frame in frames:
            beats = frame if stage.direct else [(n, t, 0) for n, t in frame] + [(0, 0, 1)]
            for beat in beats:
                while gaps and rng.random() < 0.3:
                    await ctx.tick()
                if stage.direct:
                    ctx.set(i.payload, beat)
                else:
                    ctx.set(i.payload.neuron, beat[0])
                    ctx.set(i.payload.time, beat[1])
                    ctx.set(i.payload.end, beat[2])
                ctx.set(i.valid, 1)
                await ctx.tick().until(i.ready)
                ctx.set(i.valid, 0)

    async def sink(ctx):
        stalled = None
        fields = (o.payload,) if stage.direct else (o.payload.neuron, o.payload.time, o.payload.kind, o.payload.end)
        while len(done_at) < n_frames:
            ctx.set(o.ready, 1 if not backpressure or rng.random() < 0.5 else 0)
            _, _, valid, ready, *pl = await ctx.tick().sample(o.valid, o.ready, *fields)
            cycle[0] += 1
            assert cycle[0] < 200_000, "no progress"
            pl = tuple(int(v) for v in pl)
            if stalled is not None:
                assert valid and pl == stalled, f"a stalled beat changed: {stalled} -> {pl if valid else None}"
            stalled = pl if valid and not ready else None
            if not (valid and ready):
                continue
            if stage.direct:
                got[-1].append(pl[0])
                if len(got[-1]) == stage.n_out:
                    got.append([])
                    done_at.append(cycle[0])
            elif pl[3]:
                got.append([])
                done_at.append(cycle[0])
            else:
                assert pl[2] == 0, "TTFS events are encoding spikes"
                got[-1].append((pl[0], pl[1]))

    sim = Simulator(stage)
    sim.add_clock(1e-8)
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run()
    return got[:-1], done_at


GEOMS = [(k, s, p) for k in (2, 3) for s in (1, 2, 3) for p in range(k // 2 + 1)]


@pytest.mark.parametrize("k,s,p", GEOMS)
def test_stage_forwards_each_windows_earliest_spike(k, s, p):
    """Shuffled events (not in time order, some elements twice) under gaps and back-pressure:
    one event per non-silent pooled element at its window's earliest time, in C order."""
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    in_shape = (int(rng.integers(1, 4)), int(rng.integers(k, 7)), int(rng.integers(k, 7)))
    T = int(rng.integers(1, 6))
    stage = MaxPoolStage(in_shape=in_shape, kernel=k, stride=s, padding=p, timesteps=T)
    n_in = int(np.prod(in_shape))
    frames, want = [], []
    for f in range(4):
        density = (0.0, 0.05, 0.4, 1.0)[f]   # an empty frame, sparse, dense, every element
        t = np.where(rng.random(n_in) < density, rng.integers(0, T, n_in), -1)
        events = [(n, int(t[n])) for n in range(n_in) if t[n] >= 0]
        events += [(n, int(rng.integers(t[n], T))) for n, _ in events[:3]]   # later duplicates
        rng.shuffle(events)
        frames.append(events)
        best = pool_model(in_shape, k, s, p, np.where(t >= 0, T - t, 0))   # T - t: earlier is larger
        want.append([(j, T - int(v)) for j, v in enumerate(best) if v])
    got, _ = run_stage(stage, frames, gaps=True, backpressure=True, seed=k + s + p)
    assert got == want
    assert sum(map(len, want)) > 0


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 1), (2, 3, 1)])
def test_stage_pools_direct_pixels(k, s, p):
    rng = np.random.default_rng(k + s + p)
    in_shape = (2, 5, 6)
    stage = MaxPoolStage(in_shape=in_shape, kernel=k, stride=s, padding=p, timesteps=3, pixel_shape=unsigned(4))
    frames = [rng.integers(0, 16, int(np.prod(in_shape))) * (rng.random(int(np.prod(in_shape))) < 0.5)
              for _ in range(3)] + [np.zeros(int(np.prod(in_shape)), np.int64)]
    got, _ = run_stage(stage, [[int(v) for v in fr] for fr in frames], gaps=True, backpressure=True, seed=1)
    assert got == [pool_model(in_shape, k, s, p, fr).tolist() for fr in frames]


def test_stage_cycles():
    """Back to back without back-pressure, a frame costs ``max(pairs + events, sweep)`` cycles
    at most (pairs: (event, covering window) updates; sweep: one per pooled element plus the end
    marker), plus a few cycles of hand-over."""
    in_shape, (k, s, p), T = (4, 8, 8), (3, 2, 1), 4
    stage = MaxPoolStage(in_shape=in_shape, kernel=k, stride=s, padding=p, timesteps=T)
    rng = np.random.default_rng(0)
    n_in = int(np.prod(in_shape))
    frames = [[(n, int(rng.integers(0, T))) for n in range(n_in) if rng.random() < d] for d in (0.3, 0.3, 1.0, 0.05)]
    got, done_at = run_stage(stage, frames, gaps=False, backpressure=False, seed=0)
    cover = [len([i for i in range(8) if i * s - p <= a < i * s - p + k and i < stage.out_shape[1]]) for a in range(8)]
    pairs = [sum(cover[(n // 8) % 8] * cover[n % 8] for n, _ in fr) for fr in frames]
    intervals = np.diff(done_at)
    print("pairs", pairs, "sweep", stage.n_out + 1, "intervals", intervals.tolist())
    for f in (1, 2):
        assert intervals[f - 1] <= max(pairs[f], stage.n_out + 1) + 4, (f, intervals, pairs)


def test_stage_refuses_bad_parameters():
    with pytest.raises(ValueError, match=r"padding must be at most half the kernel \(1\), not 2"):
        MaxPoolStage(in_shape=(1, 4, 4), kernel=3, stride=1, padding=2, timesteps=2)
    with pytest.raises(ValueError, match="unsigned pixels"):
        MaxPoolStage(in_shape=(1, 4, 4), kernel=2, stride=2, padding=0, timesteps=2,
                     pixel_shape=signed(4))


# --------------------------------------------------------------------------- networks in hardware

@pytest.mark.parametrize("name", list(NETWORKS))
def test_bit_exact_networks(name):
    net = _net(name)
    frames = random_frames(net, 3, seed=1)
    hw, ref = check(net, frames, lanes=2, gaps=True, backpressure=True, seed=2)
    assert sorted(hw.events) == sorted(ref.spikes)            # max pools have no tap
    assert all(s.count().sum() > 0 for s in ref.spikes.values()), "a silent stage would prove little"


@pytest.mark.parametrize("seed", range(8))
def test_bit_exact_random_maxpool(seed):
    """Random geometry: kernel 2..3, stride 1..3, padding ≤ k/2, channels 1..3; the pool after the
    input encoder (or direct pixels) or after a conv layer, sometimes a pool of a pool, then a
    conv or flatten → dense; lanes 1..3, T 2..4."""
    rng = np.random.default_rng(1000 + seed)
    in_shape = (int(rng.integers(1, 4)), int(rng.integers(4, 9)), int(rng.integers(4, 9)))
    _, h, w = in_shape
    spec: list[tuple] = []
    if seed % 2:
        spec.append(("conv2d", int(rng.integers(1, 4)), 3, 1, 1))
    for _ in range(1 + (seed % 4 == 3)):
        k = int(rng.integers(2, 4))
        s, p = int(rng.integers(1, 4)), int(rng.integers(0, k // 2 + 1))
        if min(h, w) + 2 * p < k:
            continue
        spec.append(("maxpool2d", k, s, p))
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if seed % 3 == 0:
        spec.append(("conv2d", int(rng.integers(1, 4)), min(2, h, w), 1, 0))
    assert any(item[0] == "maxpool2d" for item in spec)
    input_coding = "direct" if seed in (2, 6) else "spikes"
    net = random_maxpool_network(in_shape, tuple(spec), input_coding=input_coding, timesteps=int(rng.integers(2, 5)),
                                 n_classes=int(rng.integers(1, 4)), seed=seed)
    validate(net)
    check(net, random_frames(net, 2, seed=seed), lanes=1 + seed % 3, gaps=True, backpressure=True, seed=seed)


def test_reset_mid_frame_clears_the_pool_banks():
    """A reset in the middle of a frame leaves no stale maxima (the banks are swept after reset)."""
    for name in ("conv-pool-conv", "pixels-pool"):
        net = _net(name)
        check(net, random_frames(net, 2, seed=6), lanes=1, reset_after=int(net.input.size * 0.7), backpressure=True,
              seed=3)


def test_description_lists_the_pool_banks():
    """Each max pool's two banks are in the description (the fit check reads it), exactly as elaborated."""
    net = _net("in-pool-pool")            # pools at layers 0 and 1: (1,7,6) -> (1,8,7) -> (1,8,7)
    top = NetworkTop(net, lanes=2)
    d = top.description()
    pools = [m for m in d.memories if m.role == "pool_maxima"]
    assert [(m.path, m.stage, m.depth, m.width, m.initialised) for m in pools] == [
        (f"pool{i}.banks.bank{b}", str(i), 56, 3, False) for i in (0, 1) for b in (0, 1)]   # T=4: bits_for(4)
    assert {(m.path, m.depth, m.width, m.initialised) for m in d.memories} == elaborated_memories(top)
    assert [m["role"] for m in d.summary()["memories"]].count("pool_maxima") == 4
    assert [s.name for s, _ in d.stages] == ["in", "2"]           # no tap for a max pool
    assert d.layers[0].n_in == 56                                # the conv decodes pooled indices
    direct = describe(_net("pixels-pool"))
    assert [(m.path, m.depth, m.width) for m in direct.memories if m.role == "pool_maxima"][:2] == [
        ("pool0.banks.bank0", 32, 4), ("pool0.banks.bank1", 32, 4)]    # 4-bit pixels, (2,4,4) pooled


def test_only_ttfs_max_pools_reach_the_generator():
    """SC-TTFS and rate max pools are refused by the IR (docs/ir.md), before rtl_gen sees them."""
    in_shape, spec, input_coding, head = NETWORKS["conv-pool-conv"]
    for coding in ("sc-ttfs", "rate"):
        with pytest.raises(IRError, match=r"maxpool2d \(layer 1\) is exact only in ttfs"):
            validate(random_maxpool_network(in_shape, spec, coding=coding, input_coding=input_coding, head=head))
    assert [m.role for m in describe(_net("conv-pool-conv")).memories].count("pool_maxima") == 2


# --------------------------------------------------------------------------- Verilog, trained model

@pytest.mark.parametrize("simulator,name", [("verilator", "conv-pool-conv"), ("icarus", "conv-pool-conv"),
                                            ("verilator", "pixels-pool")])
def test_verilog_bit_exact(simulator, name):
    """The generated Verilog through cocotb (gaps, back-pressure): every spiking stage and every
    output membrane as the reference; the event bound counts the events that survive the pool."""
    net = _net(name)
    frames = random_frames(net, 5, seed=7)
    ref = reference.simulate(net, frames)
    b = sim.prepare(net, simulator=simulator, lanes=2, opt="-O0")
    r = sim.simulate(net, frames, build=b, seed=3, gaps=True, backpressure=True, ref=ref)
    assert r["first_mismatch"] is None, r["first_mismatch"]
    assert r["mismatching_images"] == 0 and r["images"] == len(frames)
    assert r["rtl_classes"] == [int(c) for c in ref.classes]
    assert r["protocol_errors"] == [] and r["stat_errors"] == []
    assert r["events_per_frame"] == pytest.approx(float(ref.spikes_per_frame().mean()))
    syn = synaptic_events_per_layer(net, frames)
    assert r["synaptic_events_per_frame"] == pytest.approx(float(syn.sum(axis=1).mean()))
    assert r["cycles_per_frame"]["mean"] >= r["event_bound_cycles"]


def test_trained_cnn_with_maxpool():
    """A CNN with ``nn.MaxPool2d`` trained on digits, converted in TTFS (T = 4), bit-exact in hardware."""
    import torch
    from torch import nn

    from snnfpga.convert.data import load_dataset
    from snnfpga.convert.pipeline import ConvertOptions, convert
    from snnfpga.convert.quantize import quantize_frames
    from snnfpga.convert.train import train_ann

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=2, padding=1),
                          nn.Flatten(), nn.Linear(8 * 3 * 3, 10))
    train_ann(model, data, epochs=3, progress=False)
    c = convert(model, data, ConvertOptions(coding="ttfs", timesteps=4, finetune_epochs=0, calib_samples=500),
                progress=False)
    assert [layer.kind for layer in c.net.layers] == ["conv2d", "maxpool2d", "conv2d", "maxpool2d", "flatten", "dense"]
    frames = quantize_frames(c.net, data.test_x[:6])
    hw = run(c.net, frames, lanes=2, gaps=True, backpressure=True)
    assert mismatches(c.net, frames, hw) == []
    assert all(sum(map(len, hw.events[s])) > 0 for s in hw.events), "a silent stage would prove little"
