"""Run the UART top (``boards.uart_top.UARTTop`` around ``rtl_gen.NetworkTop``) in cocotb, with
optional injected line faults, and judge every frame against :mod:`snnfpga.reference`.

Each frame ends ``correct`` (class and every output membrane equal to the reference), ``lost``
(the host reported it lost, with the reason) or ``wrong`` (anything else: must never happen).
Used by ``tests/test_uart.py``, ``tests/test_uart_faults.py`` and
``benchmarks/bench_uart_faults.py``; the testbench is :mod:`snnfpga.sim.tb_uart`.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snnfpga import reference

from .runner import TIMESCALE, SimulationError, build, prepare_simulator

__all__ = ["UARTRun", "run_uart"]

TB_MODULE = "snnfpga.sim.tb_uart"
TOP = "uart_top"


@dataclass
class UARTRun:
    """The outcome of one UART simulation."""

    frames: int
    correct: int
    lost: int
    wrong: int
    #: injected faults: {"request"|"response": {"drop"|"duplicate"|"corrupt": n}}
    injected: dict
    #: the host's counters (requests, retries, failed attempts by reason, rejected responses, ...)
    stats: dict
    #: lost frames by reason
    lost_reasons: dict = field(default_factory=dict)
    #: the board's sticky error flag, its dropped-request counter, the LEDs
    error: int = 0
    dropped: int = 0
    leds: int = 0
    cycles: int = 0
    results: list = field(default_factory=list)
    wrong_frames: list = field(default_factory=list)

    @property
    def injected_total(self) -> int:
        return sum(n for kinds in self.injected.values() for n in kinds.values())

    def summary(self) -> str:
        inj = ", ".join(f"{where} {kind} {n}" for where, kinds in self.injected.items() for kind, n in kinds.items())
        return (f"{self.frames} frames: {self.correct} correct, {self.lost} lost, {self.wrong} wrong; "
                f"faults injected {self.injected_total} ({inj or 'none'}); {self.stats.get('requests')} requests, "
                f"{self.stats.get('retries')} resent, board dropped {self.dropped} requests, host rejected "
                f"{self.stats.get('rejected_responses')} responses; {self.cycles} cycles")


def run_uart(net, frames: np.ndarray, *, simulator: str = "verilator", divisor: int = 4, window: int = 1,
             retries: int = 2, faults: dict | None = None, garbage: bytes = b"", idle_timeout_bits: int = 40,
             host_timeout_cycles: int | None = None, build_root: str | Path | None = None,
             work_dir: str | Path | None = None, lanes: int = 1) -> UARTRun:
    """Simulate ``frames`` through the UART top of ``net`` and compare with the reference.

    ``faults``: ``{"seed", "request_rate", "response_rate"}`` (at most one damaged byte per
    request or response, drop / duplicate / corrupt at random), or None. The board's idle limit
    is ``idle_timeout_bits`` (short, to keep the simulation short); the host's timeout is longer
    than that plus a response's line time and the network's latency.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from snnfpga.boards.protocol import Protocol
    from snnfpga.rtl_gen import emit
    from snnfpga.boards.uart_top import UARTTop

    prepare_simulator(simulator)
    frames = np.asarray(frames)
    proto = Protocol.for_network(net)
    top = UARTTop(net, divisor=divisor, lanes=lanes, idle_timeout_bits=idle_timeout_bits)
    if host_timeout_cycles is None:
        host_timeout_cycles = (idle_timeout_bits + 10 * proto.response_bytes * window) * divisor + 4000
    with tempfile.TemporaryDirectory(prefix="snnfpga-uart-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        vpath = work / f"{TOP}.v"
        vpath.write_text(emit.convert(top, name=TOP))  # portable: the same bytes on any checkout
        b = build(vpath, {"top": TOP}, simulator=simulator, build_root=build_root)
        cfg = {"protocol": {"input_size": proto.input_size, "input_bits": proto.input_bits,
                            "input_signed": proto.input_signed, "n_classes": proto.n_classes,
                            "out_acc_bits": proto.out_acc_bits},
               "divisor": divisor, "frames": [[int(x) for x in f.ravel()] for f in frames], "window": window,
               "retries": retries, "garbage": list(garbage), "faults": faults,
               "host_timeout_cycles": host_timeout_cycles,
               "max_cycles": len(frames) * (retries + 1) * (host_timeout_cycles + 10 * divisor
                                                            * (proto.request_bytes + proto.response_bytes)) + 10 ** 5,
               "output": str(work / "obs.json")}
        (work / "cfg.json").write_text(json.dumps(cfg))
        results = work / "results.xml"
        log = work / "sim.log"
        try:
            get_runner(simulator).test(test_module=TB_MODULE, hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                                       build_dir=b.directory / "model", test_dir=work, results_xml=str(results),
                                       extra_env={"SNNFPGA_UART_TB_CONFIG": str(work / "cfg.json")},
                                       timescale=TIMESCALE, log_file=log)
        except SystemExit:
            pass
        n_tests, n_failed = get_results(results) if results.is_file() else (0, 1)
        if n_tests != 1 or n_failed:
            raise SimulationError(f"UART testbench failed; log {log}:\n"
                                  f"{log.read_text(errors='replace')[-4000:] if log.is_file() else '(no log)'}")
        obs = json.loads((work / "obs.json").read_text())
    ref = reference.simulate(net, frames)
    correct = lost = 0
    wrong_frames = []
    reasons: Counter = Counter()
    for r in obs["results"]:
        k = r["index"]
        if r["lost"] is not None:
            lost += 1
            reasons[r["lost"]] += 1
        elif r["cls"] == int(ref.classes[k]) and r["membranes"] == [int(x) for x in ref.output[k]]:
            correct += 1
        else:
            wrong_frames.append(k)
    return UARTRun(frames=len(frames), correct=correct, lost=lost, wrong=len(wrong_frames), injected=obs["injected"],
                   stats=obs["stats"], lost_reasons=dict(reasons), error=obs["error"], dropped=obs["dropped"],
                   leds=obs["leds"], cycles=obs["cycles"], results=obs["results"], wrong_frames=wrong_frames)
