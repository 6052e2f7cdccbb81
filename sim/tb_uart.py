"""cocotb testbench of the UART top (boards.uart_top.UARTTop around rtl_gen.NetworkTop).

A host model bit-bangs requests into ``rx`` and decodes ``tx``; the protocol logic is the
board host's own (:class:`snnfpga.boards.host.HostSession`: framing, CRC, frame numbers,
timeouts, resends), so what is proven here is what ``snnfpga infer`` does. Between the two, a
seeded fault injector may drop, duplicate or corrupt one byte of a request on its way to the
board or of a response on its way back. Parameters come from the JSON file named by
``$SNNFPGA_UART_TB_CONFIG``::

    {"protocol": {Protocol fields}, "divisor": 4, "frames": [[…], …], "window": 1, "retries": 2,
     "garbage": [0, 19], "host_timeout_cycles": 3000, "max_cycles": 10**6,
     "faults": null | {"seed": 1, "request_rate": 0.3, "response_rate": 0.3},
     "output": "observations.json"}

Observations written to ``output``: ``{"results": [{"index", "cls", "membranes", "attempts",
"lost"}], "injected": {"request": {kind: n}, "response": {kind: n}}, "stats": {…},
"error": 0|1, "dropped": n, "leds": n, "cycles": n}``. Whether each result is right is the
caller's to judge (against :mod:`snnfpga.reference`); the test fails here only if the host
did not finish within ``max_cycles``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from snnfpga.boards.host import HostSession
from snnfpga.boards.protocol import Protocol

CONFIG_ENV = "SNNFPGA_UART_TB_CONFIG"
CLOCK_PERIOD_NS = 10
FAULT_KINDS = ("drop", "duplicate", "corrupt")


def cycles(n: float) -> Timer:
    """``n`` clock periods as one timer (cheaper than ``ClockCycles``, which wakes Python at
    every edge)."""
    return Timer(n * CLOCK_PERIOD_NS, unit="ns")


class UARTHost:
    """The host end of the serial line: 8N1 at ``divisor`` clock cycles per bit. Call
    :meth:`send` half a clock period off the clock edges (rx is synchronised inside anyway)."""

    def __init__(self, dut, divisor: int):
        self.dut, self.divisor = dut, divisor

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await cycles(self.divisor)

    async def recv_forever(self, on_byte) -> None:
        """Call ``on_byte(b)`` for every byte the device sends (sampled mid-bit, between edges)."""
        while True:
            await FallingEdge(self.dut.tx)
            await cycles(self.divisor // 2 + 0.5)
            assert int(self.dut.tx.value) == 0, "start bit glitch on tx"
            byte = 0
            for i in range(8):
                await cycles(self.divisor)
                byte |= int(self.dut.tx.value) << i
            await cycles(self.divisor)
            assert int(self.dut.tx.value) == 1, "stop bit is 0"
            on_byte(byte)


class FaultInjector:
    """Damages at most one byte per request or response, at a seeded random place."""

    def __init__(self, seed: int, request_rate: float, response_rate: float):
        self.rng = random.Random(seed)
        self.rates = {"request": request_rate, "response": response_rate}
        self.injected = {where: {k: 0 for k in FAULT_KINDS} for where in self.rates}

    def damage(self, where: str, data: bytes) -> bytes:
        if self.rng.random() >= self.rates[where]:
            return data
        kind = self.rng.choice(FAULT_KINDS)
        i = self.rng.randrange(len(data))
        self.injected[where][kind] += 1
        if kind == "drop":
            return data[:i] + data[i + 1:]
        if kind == "duplicate":
            return data[:i + 1] + data[i:]
        return data[:i] + bytes([data[i] ^ self.rng.randrange(1, 256)]) + data[i + 1:]


@cocotb.test()
async def uart_frames(dut):
    """Frames go through the host session and the UART top; every result is recorded."""
    cfg = json.loads(open(os.environ[CONFIG_ENV]).read())
    proto = Protocol(**cfg["protocol"])
    divisor = int(cfg["divisor"])
    host = UARTHost(dut, divisor)
    faults = FaultInjector(**cfg["faults"]) if cfg.get("faults") else None
    session = HostSession(proto, cfg["frames"], window=int(cfg.get("window", 1)),
                          retries=int(cfg.get("retries", 2)))
    timeout = int(cfg["host_timeout_cycles"])
    max_cycles = int(cfg.get("max_cycles", 10 ** 7))

    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    await cycles(0.5)  # from here on the host acts between clock edges

    # the device's responses, cut at their (known, fixed) length, each possibly damaged
    wire, delivered = bytearray(), bytearray()
    arrived = [0]  # bytes on the line so far: the host's timeout runs from the last one

    def on_byte(b: int) -> None:
        arrived[0] += 1
        wire.append(b)
        if len(wire) == proto.response_bytes:
            delivered.extend(faults.damage("response", bytes(wire)) if faults else wire)
            wire.clear()

    cocotb.start_soon(host.recv_forever(on_byte))
    await host.send(bytes(cfg.get("garbage", [])))
    poll = 10 * divisor  # one byte time
    elapsed = quiet = fed = seen = 0
    while not session.done:
        for req in session.requests():
            await host.send(faults.damage("request", req) if faults else req)
            elapsed += 10 * divisor * len(req)
            quiet = 0
        if len(delivered) > fed:
            session.receive(bytes(delivered[fed:]))
            fed = len(delivered)
        if arrived[0] != seen:
            seen, quiet = arrived[0], 0
        elif session.outstanding and quiet >= timeout:
            session.timeout()  # silent for longer than the board's idle limit: it has resynchronised
            quiet = 0
        if session.done:
            break
        assert elapsed < max_cycles, (f"the host did not finish in {max_cycles} cycles "
                                     f"(error={dut.error.value}, dropped={dut.dropped.value})")
        await cycles(poll)
        elapsed += poll
        quiet += poll
    r = session.result()
    obs = {"results": [{"index": x.index, "cls": x.cls, "membranes": list(x.membranes) if x.ok else None,
                        "attempts": x.attempts, "lost": x.lost} for x in r.results],
           "injected": faults.injected if faults else {},
           "stats": {"requests": r.requests, "retries": r.retries, "failed_attempts": r.failed_attempts,
                     "rejected_responses": r.rejected_responses, "stale_responses": r.stale_responses,
                     "discarded_bytes": r.discarded_bytes},
           "error": int(dut.error.value), "dropped": int(dut.dropped.value), "leds": int(dut.leds.value),
           "cycles": elapsed}
    with open(cfg["output"], "w") as f:
        json.dump(obs, f)
