"""cocotb testbench of the UART top (boards.uart_top.UARTTop around rtl_gen.NetworkTop).

A host model bit-bangs requests into ``rx`` and decodes ``tx``, using the very protocol code
the board host uses (:mod:`boards.protocol`). Parameters come from the JSON file named by
``$SNNFPGA_UART_TB_CONFIG``::

    {"protocol": {Protocol fields}, "divisor": 4, "frames": [[…], …],
     "expected": [{"cls": c, "membranes": […]}, …], "window": 2, "garbage": [0, 19],
     "output": "observations.json"}

Observations written to ``output``: ``{"responses": [{"cls", "membranes"}], "error": 0|1,
"leds": n}``. The test fails on any mismatch with ``expected``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from snnfpga.boards.protocol import Protocol

CONFIG_ENV = "SNNFPGA_UART_TB_CONFIG"
CLOCK_PERIOD_NS = 10


class UARTHost:
    """The host end of the serial line: 8N1 at ``divisor`` clock cycles per bit."""

    def __init__(self, dut, divisor: int):
        self.dut, self.divisor = dut, divisor

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, self.divisor)

    async def recv(self, n: int, out: bytearray) -> bytes:
        """Receive ``n`` bytes into ``out`` (visible to other coroutines as they arrive)."""
        while len(out) < n:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, self.divisor // 2)
            assert int(self.dut.tx.value) == 0, "start bit glitch on tx"
            byte = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, self.divisor)
                byte |= int(self.dut.tx.value) << i
            await ClockCycles(self.dut.clk, self.divisor)
            assert int(self.dut.tx.value) == 1, f"stop bit of byte {len(out)} is 0"
            out.append(byte)
        return bytes(out)


@cocotb.test()
async def uart_frames(dut):
    """Frames sent as UART bytes come back as the reference's classes and membranes."""
    cfg = json.loads(open(os.environ[CONFIG_ENV]).read())
    proto = Protocol(**cfg["protocol"])
    frames = cfg["frames"]
    window = int(cfg.get("window", 1))
    divisor = int(cfg["divisor"])
    host = UARTHost(dut, divisor)

    cocotb.start_soon(Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    n_bytes = proto.response_bytes * len(frames)
    # generous: line time of everything plus 20k cycles of network time per frame
    budget_ns = CLOCK_PERIOD_NS * len(frames) * (10 * divisor * (proto.request_bytes + proto.response_bytes) + 20000)
    received = bytearray()
    receiver = cocotb.start_soon(host.recv(n_bytes, received))
    await host.send(bytes(cfg.get("garbage", [])))
    for i, frame in enumerate(frames):
        # at most `window` requests outstanding: wait for the response to request i - window
        waited = 0
        while len(received) < (i - window + 1) * proto.response_bytes:
            await ClockCycles(dut.clk, divisor)
            waited += divisor * CLOCK_PERIOD_NS
            assert waited < budget_ns, (f"no response to request {i - window} after {waited} ns "
                                        f"(got {len(received)} bytes, error={dut.error.value}, leds={dut.leds.value})")
        await host.send(proto.encode_frame(frame))
    data = await with_timeout(receiver, budget_ns, "ns")
    responses = proto.split_responses(data)
    obs = {"responses": [{"cls": r.cls, "membranes": list(r.membranes)} for r in responses],
           "error": int(dut.error.value), "leds": int(dut.leds.value)}
    with open(cfg["output"], "w") as f:
        json.dump(obs, f)
    for k, (got, want) in enumerate(zip(obs["responses"], cfg["expected"])):
        assert got == want, f"frame {k}: device sent {got}, reference says {want}"
    assert obs["error"] == 0, "the UART top flagged a lost or malformed byte"

