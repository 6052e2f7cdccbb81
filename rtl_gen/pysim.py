"""Run :class:`NetworkTop` in Amaranth's own simulator (no Verilog toolchain needed).

Used by the tests (bit-exact checks against :mod:`snnfpga.reference`) and for quick cycle
counts. The feeder may insert random gaps between pixels and the sink random back-pressure, so
every stream handshake is exercised. The cocotb testbench in ``sim/`` is the Verilog-level
counterpart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from snnfpga.ir import Network, Stage

from .top import NetworkTop

__all__ = ["SimRun", "run"]


@dataclass
class SimRun:
    """What the hardware did: per frame, outputs, classes and every stage's events."""

    output: np.ndarray
    classes: np.ndarray
    #: :class:`~snnfpga.ir.Stage` -> list (per frame) of events sorted by (time, kind, neuron)
    events: dict[Stage, list[list[tuple[int, int, int]]]] = field(default_factory=dict)
    #: cycle of each frame's first accepted pixel and of its last accepted result beat
    first_pixel: list[int] = field(default_factory=list)
    last_beat: list[int] = field(default_factory=list)
    cls_beats: list[int] = field(default_factory=list)
    stat_events: int = 0
    stat_frames: int = 0

    @property
    def latencies(self) -> list[int]:
        return [b - a + 1 for a, b in zip(self.first_pixel, self.last_beat)]

    @property
    def intervals(self) -> list[int]:
        return [b - a for a, b in zip(self.last_beat, self.last_beat[1:])]


def run(net: Network, frames: np.ndarray, *, lanes: int = 1, decode: str = "auto", gaps: bool = False,
        backpressure: bool = False, one_at_a_time: bool = False, seed: int = 0,
        reset_after: int | None = None, max_cycles: int = 2_000_000,
        top: NetworkTop | None = None) -> SimRun:
    """Stream ``frames`` (``(N, *input.shape)``) through the top and collect everything.

    With ``reset_after``, that many random pixels of a throwaway frame go in first, then reset
    is pulsed in the middle of it; everything observed before the reset is discarded.
    """
    dut = top if top is not None else NetworkTop(net, lanes=lanes, decode=decode)
    frames = np.asarray(frames).reshape(len(frames), -1)
    n_frames, n_cls = len(frames), net.n_classes
    rng = random.Random(seed)
    out = SimRun(output=np.zeros((n_frames, n_cls), dtype=np.int64),
                 classes=np.zeros(n_frames, dtype=np.int64))
    cycle = [0]
    beats: list[tuple[int, int, int]] = []

    async def clock_count(ctx):
        async for _, rst in ctx.tick():
            cycle[0] = 0 if rst else cycle[0] + 1

    async def feeder(ctx):
        if reset_after is not None:
            lo, hi = net.input.value_range
            for _ in range(reset_after):
                ctx.set(dut.pixels.payload, rng.randint(lo, hi))
                ctx.set(dut.pixels.valid, 1)
                await ctx.tick().until(dut.pixels.ready)
            ctx.set(dut.pixels.valid, 0)
            await ctx.tick().repeat(rng.randint(1, 40))
            ctx.set(cd.rst, 1)
            for _ in range(2):
                await ctx.posedge(cd.clk)  # tick() refuses to wait through a reset
            ctx.set(cd.rst, 0)
        for f, frame in enumerate(frames):
            if one_at_a_time:
                while len(out.last_beat) < f:
                    await ctx.tick()
            for k, x in enumerate(frame):
                while gaps and rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(dut.pixels.payload, int(x))
                ctx.set(dut.pixels.valid, 1)
                await ctx.tick().until(dut.pixels.ready)
                if k == 0:
                    out.first_pixel.append(cycle[0] - 1)
                ctx.set(dut.pixels.valid, 0)

    async def sink(ctx):
        r = dut.result
        while len(beats) < n_frames * n_cls:
            ctx.set(r.ready, 1 if not backpressure or rng.random() < 0.6 else 0)
            _, _, valid, ready, mem, cls, last = await ctx.tick().sample(
                r.valid, r.ready, r.payload.membrane, r.payload.cls, r.payload.last)
            if cycle[0] > max_cycles:
                raise TimeoutError(f"no progress after {max_cycles} cycles: {len(beats)} result beats of "
                                   f"{n_frames * n_cls}")
            if valid and ready:
                beats.append((mem, cls, last))
                if last:
                    out.last_beat.append(cycle[0] - 1)
        ctx.set(r.ready, 0)
        await ctx.tick().repeat(4)
        out.stat_events = ctx.get(dut.stat_events)
        out.stat_frames = ctx.get(dut.stat_frames)

    def monitor(stage):
        sigs = [getattr(dut, f"tap_{stage.name}_{s}") for s in ("valid", "neuron", "time", "kind", "done")]
        frames_ev: list[list[tuple[int, int, int]]] = [[]]
        out.events[stage] = frames_ev

        async def proc(ctx):
            async for _, rst, valid, neuron, time, kind, done in ctx.tick().sample(*sigs):
                if rst:
                    frames_ev[:] = [[]]
                    continue
                if valid:
                    frames_ev[-1].append((neuron, time, kind))
                if done:
                    frames_ev[-1].sort(key=lambda e: (e[1], e[2], e[0]))
                    frames_ev.append([])
        return proc

    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.top = dut
    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    sim.add_process(clock_count)
    for stage, _ in dut.stages:
        sim.add_process(monitor(stage))
    sim.add_testbench(feeder)
    sim.add_testbench(sink)
    sim.run()
    for evs in out.events.values():
        if evs and not evs[-1]:
            evs.pop()  # the empty list opened after the last done
    for f in range(n_frames):
        fb = beats[f * n_cls:(f + 1) * n_cls]
        out.output[f] = [b[0] for b in fb]
        out.classes[f] = fb[-1][1]
        out.cls_beats.append(sum(b[2] for b in fb))
    return out
