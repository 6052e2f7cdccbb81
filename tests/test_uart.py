"""The UART top around the real rtl_gen.NetworkTop, simulated with cocotb (Icarus).

Frames go in as framed UART requests from the board host's own session logic
(boards.host.HostSession) and the responses must be bit-exact with snnfpga.reference (classes
and every output membrane); tests/test_uart_faults.py adds line faults.
"""

import pytest

from snnfpga.sim.uart_sim import run_uart
from snnfpga.testing import random_frames, random_network

# Icarus: no model compile (Verilator's costs ~20 s), and 4-state, so an X reaching the UART
# fails the test. sim.runner.build applies its Icarus fix for Yosys' constant `always @*`.
SIMULATOR = "icarus"


@pytest.mark.parametrize("coding,input_coding,window", [("sc-ttfs", "direct", 1), ("rate", "spikes", 2)])
def test_uart_top_bit_exact_with_reference(tmp_path, coding, input_coding, window):
    net = random_network(coding=coding, input_coding=input_coding, sizes=(10, 8, 4), seed=5)
    frames = random_frames(net, 4, seed=7)
    run = run_uart(net, frames, simulator=SIMULATOR, window=window, garbage=b"\x00\x5a\xa5\xff",
                   build_root=tmp_path / "build", work_dir=tmp_path / "run")
    assert (run.correct, run.lost, run.wrong) == (4, 0, 0), run.summary()
    assert run.stats["requests"] == 4 and run.stats["rejected_responses"] == 0
    assert run.error == 0 and run.dropped == 0
    cls_bits = max(1, (net.n_classes - 1).bit_length())
    assert run.leds & ((1 << cls_bits) - 1) == run.results[-1]["cls"]
