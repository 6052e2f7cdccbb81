"""cocotb testbench of the generated network top (docs/hardware.md), run by :mod:`sim.runner`.

Not a pytest module: the simulator imports it. Parameters come from the JSON file named by
``$SNNFPGA_TB_CONFIG`` (written by :func:`sim.runner.run`): ``frames`` (.npy, ``(N, size)``
integers), ``summary`` (the generator's summary dict), ``output`` (where the observations go),
``seed``, ``gaps``, ``backpressure``, ``latency_frames``, ``clock_period_ns``, ``timeout_cycles``,
and the optional stress options below (all off by default).

The frames are sent in three phases, each frame once, in order:

1. ``latency``: the first ``latency_frames`` frames one at a time (the next frame's first pixel
   only after the previous frame's last result beat), no gaps, no back-pressure: cycles from
   the first pixel accepted to the last result beat accepted;
2. ``stream``: frames back to back, no gaps, no back-pressure: the frame interval;
3. ``stress``: the rest back to back with random pixel gaps and random result back-pressure
   (as configured; without either, phase 2 takes every remaining frame).

Stress options (they act in phase 3, and on the thrown-away frame of a reset):

- ``long_gaps``: besides the short pixel gaps, now and then a long one (20–200 cycles), also
  between frames;
- ``stalls``: the probability (``true``: 0.35) that the sink, when a new result beat is
  offered, holds ``ready`` low for a long stall (8–``stall_max`` cycles, default 300);
- ``resets``: frame indices ``i`` (in phase 3): once every earlier frame is out, a random
  frame is sent and ``rst`` is asserted for two cycles at a random cycle of it (0 to 1.25×
  the latency measured in phase 1), whatever stage it has reached (recorded as ``hit``:
  ``pixels`` still going in, ``stage <s>`` the earliest stage not done with it, ``output``
  its result not out, or ``done``); frame ``i`` follows. What
  the thrown-away frame produced is discarded; the stat counters are read before each reset
  and summed.

Whatever the options, the result stream must be steady: a beat offered while ``ready`` is low
must still be offered, with the same payload, the next cycle (a ``protocol_errors`` entry
otherwise). The monitor samples every cycle while ``valid`` is high, so this check is complete.

Monitors observe every stage's event tap (``tap_<s>_valid/neuron/time/kind``, a frame closed by
``tap_<s>_done``) and the result stream. A cycle counts as a transfer when the handshake signals
are high in the ``ReadOnly`` phase before the clock edge (the edge commits it): this holds the
same on Verilator and Icarus. To keep Verilator fast, no coroutine wakes on every clock:
monitors sleep on a rising edge of the signal they watch and poll clock by clock only while it
is high; the clock itself runs in the simulator (GPI clock).

Several networks in one model (:mod:`sim.batch`): the config then holds ``networks``, a list
of per-network configs (each with the keys above, plus ``prefix``, the port name prefix, and
``rst``, the port of that network's own reset); they run concurrently on one clock, each
writing its own observations. This lets one simulator build serve many random networks.

Observations (JSON): ``sent`` (image index of each frame, in order), ``phase`` of each frame,
``frames`` (per frame: ``membranes``, ``cls``, ``beats``, ``first_pixel``, ``last_pixel``,
``last_result`` cycles), ``stages`` (``{name: [[[neuron, time, kind], ...] per frame]}``, in
arrival order), ``done_cycles`` per stage, ``stats`` (``stat_cycles``, ``stat_events``,
``stat_frames`` at the end, summed over resets), ``protocol_errors``, ``error`` (None, or why
the run stopped early), ``cycles`` (total), ``stress`` (``gaps``, ``long_gaps``, ``stalls``:
count, cycles and longest of each; ``resets``: per reset the frame it preceded, its delay, the
stage it hit, pixels and result beats of the thrown-away frame that got through).
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
#: a long pixel gap or output stall: at least this many cycles
LONG = 8


def _reader(handle):
    """A fast reader of a signal's unsigned value (raises ValueError on X/Z)."""
    raw = getattr(handle, "_handle", None)
    if raw is not None and hasattr(raw, "get_signal_val_binstr"):
        get = raw.get_signal_val_binstr
        return lambda: int(get(), 2)
    return lambda: int(handle.value)


def _raw_reader(handle):
    """A fast reader of a signal's bits as a string (X/Z included), to compare values."""
    raw = getattr(handle, "_handle", None)
    if raw is not None and hasattr(raw, "get_signal_val_binstr"):
        return raw.get_signal_val_binstr
    return lambda: str(handle.value)


class _Counter:
    """Count, total and longest of the gaps or stalls inserted."""

    def __init__(self):
        self.count = self.cycles = self.longest = 0

    def add(self, n: int) -> None:
        self.count += 1
        self.cycles += n
        self.longest = max(self.longest, n)

    def json(self) -> dict:
        return {"count": self.count, "cycles": self.cycles, "longest": self.longest}


class Progress:
    """Frames done by all networks of the model, written now and then for the host's progress bar."""

    def __init__(self, path: str | None):
        self.path, self.n = path, 0

    def step(self) -> None:
        self.n += 1
        if self.path and self.n % 16 == 0:
            with open(self.path, "w") as f:
                f.write(str(self.n))


class Tap:
    """Monitor of one stage's event tap: events per frame, in arrival order."""

    def __init__(self, tb: "TB", name: str):
        self.tb, self.name = tb, name
        self.valid_h = tb.port(f"{name}_valid")
        self.done_h = tb.port(f"{name}_done")
        self.valid = _reader(self.valid_h)
        self.done = _reader(self.done_h)
        self.neuron = _reader(tb.port(f"{name}_neuron"))
        self.time = _reader(tb.port(f"{name}_time"))
        self.kind = _reader(tb.port(f"{name}_kind"))
        self.frames: list[list[list[int]]] = []
        self.done_cycles: list[int] = []
        self.current: list[list[int]] = []
        self.events = 0
        self.frame_closed = Event()

    def truncate(self, n_frames: int, events: int) -> None:
        """Forget everything after the first ``n_frames`` frames (``events`` events): a reset."""
        del self.frames[n_frames:]
        del self.done_cycles[n_frames:]
        self.current = []
        self.events = events

    async def run(self) -> None:
        tb = self.tb
        clk = tb.clk
        while True:
            await ReadOnly()
            v, d = self.valid(), self.done()
            if tb.in_reset:  # the reset edge commits no transfer
                pass
            else:
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
    """Pixel driver, result monitor and tap monitors of one ``NetworkTop`` (ports ``prefix…``)."""

    def __init__(self, dut, config: dict, *, prefix: str = "", rst: str = "rst",
                 progress: Progress | None = None):
        self.dut = dut
        self.prefix = prefix
        self.clk = dut.clk
        self.rst = getattr(dut, rst)
        self.config = config
        s = config["summary"]
        self.summary = s
        self.period = int(config.get("clock_period_ns", 10))
        self.rng = random.Random(int(config.get("seed", 0)))
        self.n_classes = int(s["n_classes"])
        self.acc_bits = int(s["out_acc_bits"])
        self.cls_bits = int(s["cls_bits"])
        self.pixel_bits = int(s["input"]["bits"])
        self.pixel_signed = bool(s["input"].get("signed", False))
        self.input_size = int(s["input"]["size"])
        self.gaps = False
        self.long_gaps = False
        self.t0 = 0.0
        self.backpressure = False
        self.stall_p = 0.0
        stalls = config.get("stalls") or 0
        self.stall_cfg = 0.35 if stalls is True else float(stalls)
        self.stall_max = max(LONG, int(config.get("stall_max", 300)))
        self.in_reset = False
        self.pixels_valid = self.port("pixels__valid")
        self.pixels_payload = self.port("pixels__payload")
        self.pixels_ready = self.port("pixels__ready")
        self.result_valid = self.port("result__valid")
        self.result_ready = self.port("result__ready")
        self.result_payload = self.port("result__payload")
        self.taps = [Tap(self, t["name"]) for t in s["taps"]]
        self.tap_stage = {t["name"]: str(t["stage"]) for t in s["taps"]}
        self.results: list[dict] = []
        self.beats: list[int | None] = []
        self.result_event = Event()
        self.protocol_errors: list[str] = []
        self.progress = progress if progress is not None else Progress(config.get("progress"))
        self.p_ready = _reader(self.pixels_ready)
        self.r_valid = _reader(self.result_valid)
        self.r_payload = _reader(self.result_payload)
        self.r_raw = _raw_reader(self.result_payload)
        self.gap_stats, self.long_gap_stats, self.stall_stats = _Counter(), _Counter(), _Counter()
        self.resets: list[dict] = []
        #: stat counters read before each reset (the reset clears them)
        self.stats_before: dict[str, int] = {}

    def port(self, name: str):
        return getattr(self.dut, self.prefix + name)

    # ---------------------------------------------------------------- time
    def cycle(self) -> int:
        """Index of the clock edge that commits what is seen now (rising edges at k·period)."""
        return int(get_sim_time("ns") - self.t0) // self.period + 1

    # ---------------------------------------------------------------- setup
    def idle(self) -> None:
        """Inputs at rest: no pixel offered, no result accepted."""
        self.pixels_valid.value = 0
        self.pixels_payload.value = 0
        self.result_ready.value = 0

    async def reset(self) -> None:
        """Start the clock with reset held for 4 cycles (the only network of the model)."""
        self.idle()
        self.t0 = await start_clock(self.dut, self.period, [self.rst])

    # ---------------------------------------------------------------- pixels
    async def gap(self, p_long: float) -> None:
        """Maybe a pause with ``valid`` low: short (gaps), now and then long (long_gaps)."""
        rng, clk = self.rng, self.clk
        if self.long_gaps and rng.random() < p_long:
            n = rng.randint(20, 200)
            self.long_gap_stats.add(n)
            self.pixels_valid.value = 0
            await ClockCycles(clk, n)
        elif self.gaps and rng.random() < 0.25:
            n = rng.randint(1, 3)
            self.gap_stats.add(n)
            self.pixels_valid.value = 0
            await ClockCycles(clk, n)

    async def send_frame(self, pixels: list[int], record: dict) -> None:
        """Drive one frame; record the cycles of its first and last accepted pixel and the
        number of pixels accepted (``accepted``)."""
        clk, valid, payload, ready_h = self.clk, self.pixels_valid, self.pixels_payload, self.pixels_ready
        ready = self.p_ready
        mask = (1 << self.pixel_bits) - 1
        last = len(pixels) - 1
        record["accepted"] = 0
        if self.long_gaps:
            await self.gap(0.3)  # between frames
        for i, p in enumerate(pixels):
            await self.gap(0.02)
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
            record["accepted"] = i + 1
            await RisingEdge(clk)
        valid.value = 0

    # ---------------------------------------------------------------- results
    async def result_monitor(self) -> None:
        clk, ready_h, valid_h = self.clk, self.result_ready, self.result_valid
        valid, payload, raw = self.r_valid, self.r_payload, self.r_raw
        acc_mask = (1 << self.acc_bits) - 1
        sign = 1 << (self.acc_bits - 1)
        cls_mask = (1 << self.cls_bits) - 1
        rng = self.rng
        held: str | None = None  # the payload offered and refused at the previous cycle
        stall = 0
        while True:
            if stall > 0:
                ready = False
                stall -= 1
            elif held is None and self.stall_p and rng.random() < self.stall_p:
                # a new beat may be offered this cycle: stall it (if it is) for a long time
                stall = rng.randint(LONG, self.stall_max)
                self.stall_stats.add(stall)
                ready = False
                stall -= 1
            else:
                ready = (rng.random() < 0.6) if self.backpressure else True
            ready_h.value = int(ready)
            await ReadOnly()
            v = valid()
            if self.in_reset:
                held = None
                stall = 0
            else:
                if held is not None:
                    now = raw() if v else None
                    if now != held:
                        self.protocol_errors.append(
                            f"frame {len(self.results)} beat {len(self.beats)}: result "
                            + ("valid dropped" if not v else f"payload changed from {held} to {now}")
                            + f" while ready was low (cycle {self.cycle()})")
                held = None
                if v and not ready:
                    held = raw()
                if v and ready:
                    self._take(payload, acc_mask, sign, cls_mask)
            if not v and stall == 0:
                await RisingEdge(valid_h)
            else:
                await RisingEdge(clk)

    def _take(self, payload, acc_mask: int, sign: int, cls_mask: int) -> None:
        """Record the result beat transferred at this cycle."""
        try:
            word = payload()
        except ValueError:  # X/Z bits: keep the bits we can read, the membrane is unknown
            raw = self.result_payload.value
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
            self.progress.step()
        elif len(self.beats) >= self.n_classes:
            self.protocol_errors.append(f"frame {len(self.results)}: beat {len(self.beats) - 1} "
                                        f"without last (n_classes = {self.n_classes})")

    async def wait_results(self, n: int) -> None:
        while len(self.results) < n:
            self.result_event.clear()
            await self.result_event.wait()
        await RisingEdge(self.clk)  # out of the ReadOnly phase the monitor woke us in

    async def wait_taps(self, n: int) -> None:
        for tap in self.taps:
            while len(tap.frames) < n:
                tap.frame_closed.clear()
                await tap.frame_closed.wait()

    # ---------------------------------------------------------------- phases
    async def stream(self, frames: np.ndarray, images: list[int], records: list[dict]) -> None:
        for img, rec in zip(images, records):
            await self.send_frame(frames[img].tolist(), rec)

    def stress(self, on: bool) -> None:
        """Turn the configured stress options on (phase 3) or off."""
        c = self.config
        self.gaps = on and bool(c.get("gaps"))
        self.long_gaps = on and bool(c.get("long_gaps"))
        self.backpressure = on and bool(c.get("backpressure"))
        self.stall_p = self.stall_cfg if on else 0.0

    def random_pixels(self) -> list[int]:
        b = self.pixel_bits
        lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if self.pixel_signed else (0, (1 << b) - 1)
        return [self.rng.randint(lo, hi) for _ in range(self.input_size)]

    async def read_stats(self) -> dict:
        """The stat counters, settled (two cycles after the last transfer)."""
        await ClockCycles(self.clk, 2)
        await ReadOnly()
        out = _stats(self.dut, self.prefix)
        await RisingEdge(self.clk)
        return out

    async def mid_frame_reset(self, before: int, latency: int) -> None:
        """With every earlier frame out: send a random frame and reset at a random cycle of it."""
        await RisingEdge(self.clk)
        for k, v in (await self.read_stats()).items():
            self.stats_before[k] = self.stats_before.get(k, 0) + (v or 0)
        n_res = len(self.results)
        snap = [(len(t.frames), t.events) for t in self.taps]
        rec: dict = {}
        delay = self.rng.randint(0, max(1, latency * 5 // 4))
        task = cocotb.start_soon(self.send_frame(self.random_pixels(), rec))
        if delay:
            await ClockCycles(self.clk, delay)
        # where the thrown-away frame is: its earliest stage not finished
        hit = "done"
        if rec.get("accepted", 0) < self.input_size:
            hit = "pixels"
        else:
            for t, (n0, _) in zip(self.taps, snap):
                if len(t.frames) <= n0:
                    hit = f"stage {self.tap_stage[t.name]}"
                    break
            else:
                if len(self.results) <= n_res:
                    hit = "output"
        info = {"before": before, "delay": delay, "hit": hit, "pixels": rec.get("accepted", 0),
                "result_beats": len(self.beats) + self.n_classes * (len(self.results) - n_res)}
        task.cancel()
        self.in_reset = True
        self.pixels_valid.value = 0
        self.rst.value = 1
        await ClockCycles(self.clk, 2)
        self.rst.value = 0
        self.in_reset = False
        del self.results[n_res:]
        self.beats = []
        for t, (n0, ev) in zip(self.taps, snap):
            t.truncate(n0, ev)
        self.resets.append(info)


async def start_clock(dut, period: int, resets: list) -> float:
    """Drive ``resets`` high, start the clock, release them after 4 cycles; return time zero."""
    for r in resets:
        r.value = 1
    dut.clk.value = 0
    await Timer(1, "ns")  # inputs defined before the first clock edge (no X on any edge)
    t0 = get_sim_time("ns")
    Clock(dut.clk, period, unit="ns", impl="gpi").start(start_high=True)
    await ClockCycles(dut.clk, 4)
    for r in resets:
        r.value = 0
    await RisingEdge(dut.clk)
    return t0


def _timeout_cycles(summary: dict, n_frames: int) -> int:
    """A generous bound on the cycles ``n_frames`` frames may take (only to catch hangs)."""
    T = int(summary.get("timesteps", 1))
    lanes = max(1, int(summary.get("lanes", 1)))
    per = 4 * int(summary["input"]["size"]) + 1000
    for layer in summary.get("layers", []):
        n_in, n_out = int(layer.get("n_in", 1)), int(layer.get("n_out", 1))
        per += 4 * (n_in * n_out * max(T, 2) // lanes + n_out * T * 4 + n_in * T)
    return 20 * per * (n_frames + 2) + 10000


def _stats(dut, prefix: str = "") -> dict:
    out = {}
    for name in ("stat_cycles", "stat_events", "stat_frames"):
        h = getattr(dut, prefix + name, None)
        try:
            out[name] = int(h.value) if h is not None else None
        except ValueError:
            out[name] = None
    return out


def phases(config: dict, n: int) -> tuple[int, int, list[str]]:
    """(latency frames, streamed frames, phase of each frame)."""
    k_lat = min(max(int(config.get("latency_frames", 2)), 0), n)
    rest = n - k_lat
    stress = bool(config.get("gaps")) or bool(config.get("backpressure"))
    # at least two streamed frames (one interval) when there are two; the stress phase gets the
    # other half, and at least one frame when there are three or more
    n_stream = max(min(2, rest), (rest + 1) // 2) if stress else rest
    if stress and rest >= 3 and n_stream == rest:
        n_stream = rest - 1
    return k_lat, n_stream, ["latency"] * k_lat + ["stream"] * n_stream + ["stress"] * (rest - n_stream)


async def run_network(tb: TB, frames: np.ndarray) -> dict:
    """Send every frame through ``tb``'s network (clock running), observe, return observations."""
    config = tb.config
    n = len(frames)
    k_lat, n_stream, phase = phases(config, n)
    records = [{"image": i, "phase": ph} for i, ph in enumerate(phase)]
    b = k_lat + n_stream
    resets = sorted({int(i) for i in config.get("resets") or []})
    error = None
    if resets and n <= b:
        error = f"resets {resets} asked for, but no stress-phase frame follows (frames {n}, stress from {b})"
        resets = []
    resets = sorted({min(max(i, b), n - 1) for i in resets})
    stressed = any(config.get(k) for k in ("gaps", "backpressure", "long_gaps", "stalls"))
    timeout = int(config.get("timeout_cycles") or
                  _timeout_cycles(tb.summary, n + 2 * len(resets)) * (4 if stressed else 1))

    cocotb.start_soon(tb.result_monitor())
    for tap in tb.taps:
        cocotb.start_soon(tap.run())

    async def body():
        for i in range(k_lat):
            await tb.send_frame(frames[i].tolist(), records[i])
            await tb.wait_results(i + 1)
        if b > k_lat:
            cocotb.start_soon(tb.stream(frames, list(range(k_lat, b)), records[k_lat:b]))
            await tb.wait_results(b)
        if n > b:
            # phase 1's latency sets the range of a reset's delay
            lat = [res["last_result"] - rec["first_pixel"] + 1
                   for rec, res in zip(records[:k_lat], tb.results) if "first_pixel" in rec]
            latency = max(lat) if lat else max(64, _timeout_cycles(tb.summary, 0) // 200)
            tb.stress(True)
            bounds = [b] + resets + [n]
            for lo, hi in zip(bounds, bounds[1:]):
                if lo == hi:
                    continue
                if lo in resets:
                    await tb.wait_taps(lo)
                    await tb.mid_frame_reset(lo, latency)
                    records[lo]["after_reset"] = True
                cocotb.start_soon(tb.stream(frames, list(range(lo, hi)), records[lo:hi]))
                await tb.wait_results(hi)
        tb.stress(False)
        await tb.wait_taps(n)

    t0 = get_sim_time("ns")
    try:
        await with_timeout(body(), timeout * tb.period, "ns")
    except SimTimeoutError:
        taps = ", ".join(f"{t.name}: {len(t.frames)} done" for t in tb.taps)
        error = (f"timeout after {timeout} cycles: {len(tb.results)} of {n} frames' results "
                 f"received ({taps})")
    # let a few cycles pass so stat counters settle, then read them
    await RisingEdge(tb.clk)
    await ClockCycles(tb.clk, 2)
    await ReadOnly()
    stats = _stats(tb.dut, tb.prefix)
    for k, v in tb.stats_before.items():
        if stats.get(k) is not None:
            stats[k] += v
    for i, res in enumerate(tb.results[:n]):
        records[i].update(res)
    for rec in records:
        rec.pop("accepted", None)
    return {
        "sent": list(range(n)),
        "phase": phase,
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
        "stress": {"gaps": tb.gap_stats.json(), "long_gaps": tb.long_gap_stats.json(),
                   "stalls": tb.stall_stats.json(), "resets": tb.resets},
    }


@cocotb.test()
async def network(dut):
    """Send every frame, observe every event and result, dump the observations."""
    with open(os.environ[CONFIG_ENV]) as f:
        config = json.load(f)
    if "networks" not in config:
        frames = np.load(config["frames"], allow_pickle=False)
        tb = TB(dut, config)
        await tb.reset()
        obs = await run_network(tb, frames)
        with open(config["output"], "w") as f:
            json.dump(obs, f)
        return
    # several networks in one model, each with its own ports and reset, on one clock
    period = int(config.get("clock_period_ns", 10))
    progress = Progress(config.get("progress"))
    tbs = []
    for spec in config["networks"]:
        spec = {"clock_period_ns": period, **spec}
        tbs.append(TB(dut, spec, prefix=spec["prefix"], rst=spec["rst"], progress=progress))
    for tb in tbs:
        tb.idle()
    t0 = await start_clock(dut, period, [dut.rst] + [tb.rst for tb in tbs])
    for tb in tbs:
        tb.t0 = t0

    async def one(tb):
        obs = await run_network(tb, np.load(tb.config["frames"], allow_pickle=False))
        with open(tb.config["output"], "w") as f:
            json.dump(obs, f)

    tasks = [cocotb.start_soon(one(tb)) for tb in tbs]
    for t in tasks:
        await t
