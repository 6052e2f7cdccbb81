"""Real builds: a tiny random network through the open toolchain (yowasp) on iCEBreaker (one
build, shared by the tests that read it: the bitstream, and the fit check's block RAMs memory by
memory against yosys), the ULX3S files without place and route, and the Arty's Verilog + XDC +
Vivado TCL."""

import json
import math
from pathlib import Path

import pytest

from snnfpga.boards.build import BUILD_NAME, build, yosys_block_rams
from snnfpga.boards.registry import BoardError
from snnfpga.boards.uart_top import UART_TOP_NAME
from snnfpga.testing import random_network


@pytest.fixture(scope="module")
def tiny_net():
    return random_network(coding="sc-ttfs", sizes=(16, 12, 4), seed=0, name="tiny")


@pytest.fixture(scope="module")
def icebreaker_build(tiny_net, tmp_path_factory):
    """The one real place-and-route of this suite: ``(build result, its directory)``."""
    out = tmp_path_factory.mktemp("icebreaker")
    return build(tiny_net, "icebreaker", out), out


def test_icebreaker_bitstream_end_to_end(icebreaker_build):
    r, tmp_path = icebreaker_build
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
    assert res["DSP"]["used"] == r["memory_estimate"]["dsp_blocks"] > 0
    assert Path(r["files"]["verilog"]).is_file() and Path(r["files"]["constraints"]).is_file()
    assert json.loads((tmp_path / "snn_board.summary.json").read_text())["fmax_mhz"] == r["fmax_mhz"]


def test_fit_block_rams_match_yosys(icebreaker_build):
    """The fit check's EBR count is yosys' (its stat and its netlist) and nextpnr's, memory by memory."""
    r, out = icebreaker_build
    fit = r["memory_estimate"]
    stat = json.loads((out / f"{BUILD_NAME}.stat.json").read_text())
    yosys_total = int(stat["design"]["num_cells_by_type"].get("SB_RAM40_4K", 0))
    per_memory = yosys_block_rams(json.loads((out / f"{BUILD_NAME}.json").read_text()), "ice40")
    rows, seen = [], set()
    print(f"\n{'memory':24s} {'count x depth x width':>22s} {'fit':>4s} {'yosys':>5s}  paths")
    for m in fit["memories"]:
        paths = [f"{UART_TOP_NAME}.{p}" for p in m["paths"]]
        got = sum(per_memory.get(p, 0) for p in paths)
        seen.update(paths)
        rows.append((m["name"], m["blocks"], got))
        print(f"{m['name']:24s} {m['count']:>6d} x {m['depth']:>5d} x {m['width']:>4d} {m['blocks']:>4d} {got:>5d}  "
              f"{', '.join(paths)}")
    print(f"{'total':24s} {'':>22s} {fit['bram_blocks']:>4d} {yosys_total:>5d}  (nextpnr: "
          f"{r['resources']['BRAM']['used']})")
    assert yosys_total > 0 and sum(per_memory.values()) == yosys_total
    assert not set(per_memory) - seen, f"yosys put memories in EBR that the fit check does not know: {per_memory}"
    assert [(name, blocks) for name, blocks, _ in rows] == [(name, got) for name, _, got in rows]
    assert fit["bram_blocks"] == yosys_total == r["resources"]["BRAM"]["used"]


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


def test_build_refuses_too_many_dsp(tmp_path):
    """yosys would map all 16 W·x and W·dec products to SB_MAC16 and nextpnr fail: refused first."""
    net = random_network(coding="sc-ttfs", sizes=(64, 32, 10), seed=0, weight_bits=4)
    with pytest.raises(BoardError, match=r"needs 16 DSP blocks .* iCE40UP5K on icebreaker has 8"):
        build(net, "icebreaker", tmp_path, lanes=8)
    assert not any(tmp_path.iterdir())
