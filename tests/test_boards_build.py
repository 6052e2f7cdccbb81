"""Real builds: a tiny random network through the open toolchain (yowasp) on iCEBreaker, the
ULX3S files without place and route, and the Arty's Verilog + XDC + Vivado TCL."""

import json
import math
from pathlib import Path

import pytest

from snnfpga.boards.build import build
from snnfpga.boards.registry import BoardError
from snnfpga.testing import random_network


@pytest.fixture(scope="module")
def tiny_net():
    return random_network(coding="sc-ttfs", sizes=(16, 12, 4), seed=0, name="tiny")


def test_icebreaker_bitstream_end_to_end(tiny_net, tmp_path):
    r = build(tiny_net, "icebreaker", tmp_path)
    bit = Path(r["bitstream"])
    assert bit.is_file() and bit.stat().st_size > 100_000  # an UP5K image is ~104 KB
    assert 5.0 < r["fmax_mhz"] < 300.0
    res = r["resources"]
    for kind in ("LUT", "FF", "BRAM", "SPRAM", "DSP"):
        assert 0 <= res[kind]["used"] <= res[kind]["available"]
        assert math.isclose(res[kind]["percent"], 100 * res[kind]["used"] / res[kind]["available"], abs_tol=0.01)
    assert 100 < res["LUT"]["used"] < 5280 and 50 < res["FF"]["used"] < 5280
    # the pre-build estimate is what place and route used
    assert res["BRAM"]["used"] == r["memory_estimate"]["bram_blocks"]
    assert Path(r["files"]["verilog"]).is_file() and Path(r["files"]["constraints"]).is_file()
    assert json.loads((tmp_path / "snn_board.summary.json").read_text())["fmax_mhz"] == r["fmax_mhz"]


def test_ulx3s_files_without_place_and_route(tiny_net, tmp_path):
    r = build(tiny_net, "ulx3s-85f", tmp_path, do_build=False)
    assert r["bitstream"] is None and r["fmax_mhz"] is None
    lpf = Path(r["files"]["constraints"]).read_text()
    assert 'LOCATE COMP "uart_0__rx__io" SITE "M1"' in lpf  # FTDI UART pins
    assert "--timing-allow-fail" in Path(r["files"]["script"]).read_text()


def test_arty_writes_verilog_xdc_tcl(tiny_net, tmp_path):
    r = build(tiny_net, "arty-a7-35", tmp_path)
    for key in ("verilog", "constraints", "tcl", "script"):
        assert Path(r["files"][key]).is_file(), key
    assert "module snn_board" in Path(r["files"]["verilog"]).read_text()
    assert "set_property LOC A9" in Path(r["files"]["constraints"]).read_text()  # FTDI UART rx
    assert r["bitstream"] is None and any("Vivado is needed" in n for n in r["notes"])


def test_build_refuses_what_cannot_fit(tmp_path):
    net = random_network(sizes=(784, 256, 10), seed=0)
    with pytest.raises(BoardError, match=r"iCE40UP5K on icebreaker has 30"):
        build(net, "icebreaker", tmp_path)
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written
