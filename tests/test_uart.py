"""The UART top around the real rtl_gen.NetworkTop, simulated with cocotb (Icarus).

Frames go in as UART bytes and the responses must be bit-exact with snnfpga.reference
(classes and every output membrane); the host side is boards.protocol, as on a board.
"""

import json

import pytest

from snnfpga.boards.protocol import Protocol
from snnfpga.boards.uart_top import UARTTop
from snnfpga import reference
from snnfpga.testing import random_frames, random_network

DIVISOR = 4  # clock/4: the fastest the UART allows, keeps the simulation short
# Icarus: no model compile (Verilator's costs ~20 s), and 4-state, so an X reaching the UART
# fails the test. sim.runner.build applies its Icarus fix for Yosys' constant `always @*`.
SIMULATOR = "icarus"


def _run_uart_tb(net, frames, tmp_path, *, window, garbage):
    from amaranth.back import verilog
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from snnfpga.sim.runner import TIMESCALE, build

    top = UARTTop(net, divisor=DIVISOR)
    text = verilog.convert(top, name="uart_top")
    vpath = tmp_path / "uart_top.v"
    vpath.write_text(text)
    b = build(vpath, {"top": "uart_top"}, simulator=SIMULATOR,
              build_root=tmp_path / "build")
    ref = reference.simulate(net, frames)
    expected = [{"cls": int(c), "membranes": [int(x) for x in m]} for c, m in zip(ref.classes, ref.output)]
    proto = Protocol.for_network(net)
    cfg = {"protocol": {"input_size": proto.input_size, "input_bits": proto.input_bits,
                        "input_signed": proto.input_signed, "n_classes": proto.n_classes,
                        "out_acc_bits": proto.out_acc_bits},
           "divisor": DIVISOR, "frames": [[int(x) for x in f.ravel()] for f in frames],
           "expected": expected, "window": window, "garbage": garbage,
           "output": str(tmp_path / "obs.json")}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    results = tmp_path / "results.xml"
    runner = get_runner(SIMULATOR)
    try:
        runner.test(test_module="snnfpga.sim.tb_uart", hdl_toplevel="uart_top", hdl_toplevel_lang="verilog",
                    build_dir=b.directory / "model", test_dir=tmp_path, results_xml=str(results),
                    extra_env={"SNNFPGA_UART_TB_CONFIG": str(tmp_path / "cfg.json")},
                    timescale=TIMESCALE, log_file=tmp_path / "sim.log")
    except SystemExit:
        pass
    n_tests, n_failed = get_results(results)
    log = (tmp_path / "sim.log").read_text(errors="replace")
    assert n_tests == 1 and n_failed == 0, log[-4000:]
    return json.loads((tmp_path / "obs.json").read_text()), expected, top


@pytest.mark.parametrize("coding,input_coding,window", [("sc-ttfs", "direct", 1), ("rate", "spikes", 2)])
def test_uart_top_bit_exact_with_reference(tmp_path, coding, input_coding, window):
    net = random_network(coding=coding, input_coding=input_coding, sizes=(10, 8, 4), seed=5)
    frames = random_frames(net, 4, seed=7)
    obs, expected, top = _run_uart_tb(net, frames, tmp_path, window=window, garbage=[0x00, 0x5A, 0xFF])
    assert obs["responses"] == expected
    assert obs["error"] == 0
    cls_bits = max(1, (net.n_classes - 1).bit_length())
    assert obs["leds"] & ((1 << cls_bits) - 1) == expected[-1]["cls"]
