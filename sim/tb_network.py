"""cocotb testbench of the generated network top (docs/hardware.md), run by :mod:`sim.runner`.

Not a pytest module: the simulator imports it. Parameters come from the JSON file named by
``$SNNFPGA_TB_CONFIG`` (written by :func:`sim.runner.run`): ``frames`` (.npy, ``(N, size)``
integers), ``summary`` (the generator's summary dict), ``output`` (where the observations go),
``seed``, ``gaps``, ``backpressure``, ``latency_frames``, ``clock_period_ns``, ``timeout_cycles``.

The frames are sent in three phases, each frame once, in order:

1. ``latency``: the first ``latency_frames`` frames one at a time (the next frame's first pixel
   only after the previous frame's last result beat), no gaps, no back-pressure: cycles from
   the first pixel accepted to the last result beat accepted;
2. ``stream``: frames back to back, no gaps, no back-pressure: the frame interval;
3. ``stress``: the rest back to back with random pixel gaps and random result back-pressure
   (as configured; without either, phase 2 takes every remaining frame).

Monitors observe every stage's event tap (``tap_<s>_valid/neuron/time/kind``, a frame closed by
``tap_<s>_done``) and the result stream. A cycle counts as a transfer when the handshake signals
are high in the ``ReadOnly`` phase before the clock edge (the edge commits it): this holds the
same on Verilator and Icarus. To keep Verilator fast, no coroutine wakes on every clock:
monitors sleep on a rising edge of the signal they watch and poll clock by clock only while it
is high; the clock itself runs in the simulator (GPI clock).

Observations (JSON): ``sent`` (image index of each frame, in order), ``phase`` of each frame,
``frames`` (per frame: ``membranes``, ``cls``, ``beats``, ``first_pixel``, ``last_pixel``,
``last_result`` cycles), ``stages`` (``{name: [[[neuron, time, kind], ...] per frame]}``, in
arrival order), ``done_cycles`` per stage, ``stats`` (``stat_cycles``, ``stat_events``,
``stat_frames`` at the end), ``protocol_errors``, ``error`` (None, or why the run stopped early),
``cycles`` (total).
"""

from __future__ import annotations

import json
import os
import random

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (ClockCycles, Event, First, ReadOnly, RisingEdge, SimTimeoutError, Timer,
                             with_timeout)
from cocotb.utils import get_sim_time

CONFIG_ENV = "SNNFPGA_TB_CONFIG"


def _reader(handle):
    """A fast reader of a signal's unsigned value (raises ValueError on X/Z)."""
    raw = getattr(handle, "_handle", None)
    if raw is not None and hasattr(raw, "get_signal_val_binstr"):
        get = raw.get_signal_val_binstr
        return lambda: int(get(), 2)
    return lambda: int(handle.value)


class Tap:
    """Monitor of one stage's event tap: events per frame, in arrival order."""

    def __init__(self, tb: "TB", name: str):
        dut = tb.dut
        self.tb, self.name = tb, name
        self.valid_h = getattr(dut, f"{name}_valid")
        self.done_h = getattr(dut, f"{name}_done")
        self.valid = _reader(self.valid_h)
        self.done = _reader(self.done_h)
        self.neuron = _reader(getattr(dut, f"{name}_neuron"))
        self.time = _reader(getattr(dut, f"{name}_time"))
        self.kind = _reader(getattr(dut, f"{name}_kind"))
        self.frames: list[list[list[int]]] = []
        self.done_cycles: list[int] = []
        self.current: list[list[int]] = []
        self.events = 0
        self.frame_closed = Event()

    async def run(self) -> None:
        tb = self.tb
        clk = tb.dut.clk
        while True:
            await ReadOnly()
            v, d = self.valid(), self.done()
            if v:
                try:
                    self.current.append([self.neuron(), self.time(), self.kind()])
                except ValueError:  # X/Z bits: -1 in the fields that hold them
                    ev = []
                    for f in (self.neuron, self.time, self.kind):
                        try:
                            ev.append(f())
                        except ValueError:
                            ev.append(-1)
                    tb.protocol_errors.append(f"{self.name}: event {ev} with X/Z bits (-1) in frame "
                                              f"{len(self.frames)}")
                    self.current.append(ev)
                self.events += 1
            if d:  # the events of the done cycle belong to the frame it closes
                self.frames.append(self.current)
                self.done_cycles.append(tb.cycle())
                self.current = []
                self.frame_closed.set()
            if not v and not d:
                await First(RisingEdge(self.valid_h), RisingEdge(self.done_h))
            else:
                await RisingEdge(clk)


class TB:
    """Clock, reset, pixel driver, result monitor and tap monitors of ``NetworkTop``."""

    def __init__(self, dut, config: dict):
        self.dut = dut
        self.config = config
        s = config["summary"]
        self.summary = s
        self.period = int(config.get("clock_period_ns", 10))
        self.rng = random.Random(int(config.get("seed", 0)))
        self.n_classes = int(s["n_classes"])
        self.acc_bits = int(s["out_acc_bits"])
        self.cls_bits = int(s["cls_bits"])
        self.pixel_bits = int(s["input"]["bits"])
        self.gaps = False
        self.t0 = 0.0
        self.backpressure = False
        self.taps = [Tap(self, t["name"]) for t in s["taps"]]
        self.tap_stage = {t["name"]: str(t["stage"]) for t in s["taps"]}
        self.results: list[dict] = []
        self.beats: list[int] = []
        self.result_event = Event()
        self.protocol_errors: list[str] = []
        #: frames done are written here now and then, for the host's progress bar
        self.progress = config.get("progress")
        self.p_ready = _reader(dut.pixels__ready)
        self.r_valid = _reader(dut.result__valid)
        self.r_payload = _reader(dut.result__payload)

    # ---------------------------------------------------------------- time
    def cycle(self) -> int:
        """Index of the clock edge that commits what is seen now (rising edges at k·period)."""
        return int(get_sim_time("ns") - self.t0) // self.period + 1

    # ---------------------------------------------------------------- setup
    async def reset(self) -> None:
        dut = self.dut
        dut.pixels__valid.value = 0
        dut.pixels__payload.value = 0
        dut.result__ready.value = 0
        dut.rst.value = 1
        dut.clk.value = 0
        await Timer(1, "ns")  # inputs defined before the first clock edge (no X on any edge)
        self.t0 = get_sim_time("ns")
        Clock(dut.clk, self.period, unit="ns", impl="gpi").start(start_high=True)
        await ClockCycles(dut.clk, 4)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    # ---------------------------------------------------------------- pixels
    async def send_frame(self, pixels: list[int], record: dict) -> None:
        """Drive one frame; record the cycles of its first and last accepted pixel."""
        dut = self.dut
        clk, valid, payload, ready_h = dut.clk, dut.pixels__valid, dut.pixels__payload, dut.pixels__ready
        ready = self.p_ready
        mask = (1 << self.pixel_bits) - 1
        rng = self.rng
        last = len(pixels) - 1
        for i, p in enumerate(pixels):
            if self.gaps and rng.random() < 0.25:
                valid.value = 0
                await ClockCycles(clk, rng.randint(1, 3))
            payload.value = int(p) & mask
            valid.value = 1
            while True:
                await ReadOnly()
                if ready():
                    break
                await RisingEdge(ready_h)
            if i == 0:
                record["first_pixel"] = self.cycle()
            if i == last:
                record["last_pixel"] = self.cycle()
            await RisingEdge(clk)
        valid.value = 0

    # ---------------------------------------------------------------- results
    async def result_monitor(self) -> None:
        dut = self.dut
        clk, ready_h, valid_h = dut.clk, dut.result__ready, dut.result__valid
        valid, payload = self.r_valid, self.r_payload
        acc_mask = (1 << self.acc_bits) - 1
        sign = 1 << (self.acc_bits - 1)
        cls_mask = (1 << self.cls_bits) - 1
        rng = self.rng
        while True:
            ready = (rng.random() < 0.6) if self.backpressure else True
            ready_h.value = int(ready)
            await ReadOnly()
            v = valid()
            if v and ready:
                try:
                    word = payload()
                except ValueError:  # X/Z bits: keep the bits we can read, the membrane is unknown
                    raw = dut.result__payload.value
                    self.protocol_errors.append(f"frame {len(self.results)} beat {len(self.beats)}: "
                                                f"result payload has X/Z bits: {raw}")
                    word = int(str(raw).replace("x", "0").replace("X", "0").replace("z", "0").replace("Z", "0"), 2)
                    word &= ~acc_mask
                    self.beats.append(None)
                else:
                    m = word & acc_mask
                    self.beats.append(m - (1 << self.acc_bits) if m & sign else m)
                last = (word >> (self.acc_bits + self.cls_bits)) & 1
                if last:
                    self.results.append({"membranes": self.beats,
                                         "cls": (word >> self.acc_bits) & cls_mask,
                                         "beats": len(self.beats), "last_result": self.cycle()})
                    if len(self.beats) != self.n_classes:
                        self.protocol_errors.append(
                            f"frame {len(self.results) - 1}: {len(self.beats)} result beats, "
                            f"expected {self.n_classes}")
                    self.beats = []
                    self.result_event.set()
                    if self.progress and len(self.results) % 16 == 0:
                        with open(self.progress, "w") as f:
                            f.write(str(len(self.results)))
                elif len(self.beats) >= self.n_classes:
                    self.protocol_errors.append(f"frame {len(self.results)}: beat {len(self.beats) - 1} "
                                                f"without last (n_classes = {self.n_classes})")
            if not v:
                await RisingEdge(valid_h)
            else:
                await RisingEdge(clk)

    async def wait_results(self, n: int) -> None:
        while len(self.results) < n:
            self.result_event.clear()
            await self.result_event.wait()
        await RisingEdge(self.dut.clk)  # out of the ReadOnly phase the monitor woke us in

    async def wait_taps(self, n: int) -> None:
        for tap in self.taps:
            while len(tap.frames) < n:
                tap.frame_closed.clear()
                await tap.frame_closed.wait()

    # ---------------------------------------------------------------- phases
    async def stream(self, frames: np.ndarray, images: list[int], records: list[dict]) -> None:
        for img, rec in zip(images, records):
            await self.send_frame(frames[img].tolist(), rec)


def _timeout_cycles(summary: dict, n_frames: int) -> int:
    """A generous bound on the cycles ``n_frames`` frames may take (only to catch hangs)."""
    T = int(summary.get("timesteps", 1))
    lanes = max(1, int(summary.get("lanes", 1)))
    per = 4 * int(summary["input"]["size"]) + 1000
    for layer in summary.get("layers", []):
        n_in, n_out = int(layer.get("n_in", 1)), int(layer.get("n_out", 1))
        per += 4 * (n_in * n_out * max(T, 2) // lanes + n_out * T * 4 + n_in * T)
    return 20 * per * (n_frames + 2) + 10000


def _stats(dut) -> dict:
    out = {}
    for name in ("stat_cycles", "stat_events", "stat_frames"):
        h = getattr(dut, name, None)
        try:
            out[name] = int(h.value) if h is not None else None
        except ValueError:
            out[name] = None
    return out


@cocotb.test()
async def network(dut):
    """Send every frame, observe every event and result, dump the observations."""
    with open(os.environ[CONFIG_ENV]) as f:
        config = json.load(f)
    frames = np.load(config["frames"], allow_pickle=False)
    n = len(frames)
    tb = TB(dut, config)
    k_lat = min(max(int(config.get("latency_frames", 2)), 0), n)
    rest = n - k_lat
    stress = bool(config.get("gaps")) or bool(config.get("backpressure"))
    # at least two streamed frames (one interval) when there are two; the stress phase gets the
    # other half, and at least one frame when there are three or more
    n_stream = max(min(2, rest), (rest + 1) // 2) if stress else rest
    if stress and rest >= 3 and n_stream == rest:
        n_stream = rest - 1
    phases = ["latency"] * k_lat + ["stream"] * n_stream + ["stress"] * (rest - n_stream)
    records = [{"image": i, "phase": ph} for i, ph in enumerate(phases)]
    timeout = int(config.get("timeout_cycles") or _timeout_cycles(config["summary"], n))
    error = None

    await tb.reset()
    cocotb.start_soon(tb.result_monitor())
    for tap in tb.taps:
        cocotb.start_soon(tap.run())

    async def body():
        for i in range(k_lat):
            await tb.send_frame(frames[i].tolist(), records[i])
            await tb.wait_results(i + 1)
        a, b = k_lat, k_lat + n_stream
        if b > a:
            cocotb.start_soon(tb.stream(frames, list(range(a, b)), records[a:b]))
            await tb.wait_results(b)
        if n > b:
            tb.gaps = bool(config.get("gaps"))
            tb.backpressure = bool(config.get("backpressure"))
            cocotb.start_soon(tb.stream(frames, list(range(b, n)), records[b:n]))
            await tb.wait_results(n)
        tb.gaps = tb.backpressure = False
        await tb.wait_taps(n)

    t0 = get_sim_time("ns")
    try:
        await with_timeout(body(), timeout * tb.period, "ns")
    except SimTimeoutError:
        taps = ", ".join(f"{t.name}: {len(t.frames)} done" for t in tb.taps)
        error = (f"timeout after {timeout} cycles: {len(tb.results)} of {n} frames' results "
                 f"received ({taps})")
    # let a few cycles pass so stat counters settle, then read them
    await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, 2)
    await ReadOnly()
    stats = _stats(dut)
    for i, res in enumerate(tb.results[:n]):
        records[i].update(res)
    obs = {
        "sent": list(range(n)),
        "phase": phases,
        "frames": records,
        "stages": {tb.tap_stage[t.name]: t.frames for t in tb.taps},
        "pending_events": {tb.tap_stage[t.name]: t.current for t in tb.taps if t.current},
        "done_cycles": {tb.tap_stage[t.name]: t.done_cycles for t in tb.taps},
        "tap_events": sum(t.events for t in tb.taps),
        "extra_results": len(tb.results) - n if len(tb.results) > n else 0,
        "stats": stats,
        "protocol_errors": tb.protocol_errors,
        "error": error,
        "cycles": int((get_sim_time("ns") - t0) // tb.period),
    }
    with open(config["output"], "w") as f:
        json.dump(obs, f)
