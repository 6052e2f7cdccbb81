"""cocotb testbench of the generated top inside :class:`sim.harness.Harness`, run by :mod:`sim.runner`.

Not a pytest module: the simulator imports it. The same config file as :mod:`sim.tb_network`
(``frames``, ``summary``, ``output``, ``seed``, ``gaps``, ``backpressure``, ``latency_frames``,
``clock_period_ns``, ``timeout_cycles``); the same three phases; the same observations, so
:func:`sim.report` reads either. The difference is where the per-cycle work happens: here the
harness drives the pixels, sinks the results and prints every transfer (``$write``), and Python
only loads the harness' ring of frames, a word a cycle while it has room, then waits for
``finished``. The printed lines are read back from the simulator's log when it exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

import numpy as np

import cocotb
from cocotb.triggers import ClockCycles, Edge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from .tb_network import CONFIG_ENV, Progress, _timeout_cycles, phases
from .trace import BEGIN


def ring_words(frames: np.ndarray, bits: int, word_pixels: int) -> list[list[int]]:
    """Each frame as the ring's words: ``word_pixels`` pixels a word, pixel 0 in the low bits.

    A frame's pixels are packed into one little-endian integer with numpy (bytes as they are
    for 8 or 16 bits, else bit planes) and cut into words: a Python loop over every pixel took
    half a second of the start-up on 2,000 MNIST frames."""
    px = np.asarray(frames, dtype=np.int64).reshape(len(frames), -1) & ((1 << bits) - 1)
    px = np.pad(px, ((0, 0), (0, -px.shape[1] % word_pixels)))
    if bits in (8, 16):
        data = px.astype(f"<u{bits // 8}")
    else:
        planes = ((px[..., None] >> np.arange(bits)) & 1).astype(np.uint8)  # (frame, pixel, bit)
        data = np.packbits(planes.reshape(len(px), -1), axis=-1, bitorder="little")
    width, count = word_pixels * bits, px.shape[1] // word_pixels
    mask = (1 << width) - 1
    out = []
    for row in data:
        packed = int.from_bytes(row.tobytes(), "little")
        out.append([(packed >> (k * width)) & mask for k in range(count)])
    return out


def _flush_c_stdio() -> None:
    """Push what ``$write`` left in the simulator's C stdio buffer into the log now, so no line
    of it is split by a Python log line written later."""
    sys.stdout.flush()
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@cocotb.test()
async def network(dut):
    """Load the ring, start the harness, wait until every result and tap is out."""
    with open(os.environ[CONFIG_ENV]) as f:
        config = json.load(f)
    frames = np.load(config["frames"], allow_pickle=False)
    s = config["summary"]
    n = len(frames)
    k_lat, n_stream, _ = phases(config, n)
    stressed = bool(config.get("gaps")) or bool(config.get("backpressure"))
    timeout = int(config.get("timeout_cycles") or _timeout_cycles(s, n) * (4 if stressed else 1))
    ring, word_pixels = int(config["ring_frames"]), int(config["word_pixels"])
    words = ring_words(frames, int(s["input"]["bits"]), word_pixels)

    dut.start.value = 0
    dut.load_valid.value = 0
    dut.load_data.value = 0
    dut.n_frames.value = n
    # frames 0..k_lat wait for every earlier result (phase 1, and the first of phase 2)
    dut.wait_upto.value = k_lat if n else 0
    dut.stress_from.value = k_lat + n_stream if k_lat + n_stream < n else (1 << 32) - 1
    dut.gaps.value = int(bool(config.get("gaps")))
    dut.backpressure.value = int(bool(config.get("backpressure")))
    dut.seed.value = (int(config.get("seed", 0)) * 2654435761 + 1) & 0xFFFFFFFF
    period = int(config.get("clock_period_ns", 10))
    _flush_c_stdio()
    print(BEGIN, flush=True)
    clk = dut.clk  # runs in the simulator (sim.harness.CLOCK)
    dut.rst.value = 1
    await ClockCycles(clk, 4)
    t0 = get_sim_time("ns")
    dut.rst.value = 0
    await RisingEdge(clk)

    async def load(i: int) -> None:
        for word in words[i]:
            dut.load_data.value = word
            dut.load_valid.value = 1
            await RisingEdge(clk)
        dut.load_valid.value = 0

    for i in range(min(ring, n)):
        await load(i)
    dut.start.value = 1
    wall0, cpu0, cyc0 = time.perf_counter(), time.process_time(), get_sim_time("ns")

    progress = Progress(config.get("progress"))

    async def feed() -> None:
        taken = dut.taken
        for i in range(ring, n):
            progress.step()
            while True:
                await ReadOnly()
                if int(dut.consumed.value) > i - ring:
                    break
                await Edge(taken)
            await RisingEdge(clk)
            await load(i)

    cocotb.start_soon(feed())
    error = None
    if n:
        await ReadOnly()
        if not int(dut.finished.value):
            deadline = Timer(timeout * period, "ns")
            got = await First(RisingEdge(dut.finished), deadline)
            if got is deadline:
                error = (f"timeout after {timeout} cycles: {int(dut.consumed.value)} of {n} frames taken, "
                         f"{int(dut.loaded.value)} loaded")
    run = {"seconds": time.perf_counter() - wall0, "cpu_seconds": time.process_time() - cpu0,
           "cycles": int((get_sim_time("ns") - cyc0) // period)}
    await RisingEdge(clk)
    await ClockCycles(clk, 2)
    await ReadOnly()
    values = {name: int(getattr(dut, name).value) for name in
              ("stat_cycles", "stat_events", "stat_frames", "gap_count", "gap_cycles", "gap_longest", "refused")}
    cycles = int((get_sim_time("ns") - t0) // period)
    _flush_c_stdio()
    with open(config["output"] + ".meta", "w") as fh:
        json.dump({"error": error, "values": values, "cycles": cycles, "run": run, "k_lat": k_lat, "n_stream": n_stream}, fh)
