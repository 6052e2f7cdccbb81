"""PLL settings (ecppll / icepll arithmetic), the PLL clock domain on a board, ``--clock`` parsing."""

import math

import pytest

from snnfpga.boards import clock
from snnfpga.boards.registry import get_board
from snnfpga.errors import BadOption
from snnfpga.testing import random_network


@pytest.mark.parametrize("target,expect", [
    (50.0, {"CLKI_DIV": 1, "CLKFB_DIV": 2, "CLKOP_DIV": 12}),    # ecppll -i 25 -o 50
    (100.0, {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 6}),    # ecppll -i 25 -o 100
])
def test_ecp5_known_settings(target, expect):
    s = clock.ecp5_pll(25.0, target)
    assert {k: s.params[k] for k in expect} == expect
    assert s.f_out_mhz == target and s.f_vco_mhz == 600.0
    assert s.params["CLKOP_CPHASE"] == s.params["CLKOP_DIV"] - 1


def test_ice40_matches_icepll():
    # icepll -i 12 -o 30: DIVR 0, DIVF 79, DIVQ 5, FILTER_RANGE 1 (F_PLLOUT 30.000 MHz)
    s = clock.ice40_pll(12.0, 30.0)
    assert s.params == {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1}
    assert s.f_out_mhz == 30.0 and s.f_vco_mhz == 960.0


@pytest.mark.parametrize("family,f_in", [("ecp5", 25.0), ("ice40", 12.0)])
@pytest.mark.parametrize("target", [17.3, 27.9, 46.8, 61.2, 99.9])
def test_highest_setting_at_or_below_target(family, f_in, target):
    s = clock.pll_settings(family, f_in, target)
    s.check()  # recomputes the output from the dividers, checks VCO/PFD/output ranges
    assert s.f_out_mhz <= target
    # no setting of the family lies strictly between the chosen one and the target
    lim = clock.ECP5_LIMITS if family == "ecp5" else clock.ICE40_LIMITS
    if family == "ecp5":
        outs = [f_in / r * f for r in range(1, lim["refdiv"] + 1) if lim["pfd"][0] <= f_in / r
                for f in range(1, lim["fbdiv"] + 1)
                if any(lim["vco"][0] <= f_in / r * f * d <= lim["vco"][1] for d in range(1, 129))]
    else:
        outs = [f_in / (r + 1) * (f + 1) / 2 ** q for r in range(16) if lim["pfd"][0] <= f_in / (r + 1)
                for f in range(128) if lim["vco"][0] <= f_in / (r + 1) * (f + 1) <= lim["vco"][1]
                for q in range(1, 7)]
    better = [o for o in outs if s.f_out_mhz < o <= target and lim["out"][0] <= o <= lim["out"][1]]
    assert not better


def test_bad_requests():
    with pytest.raises(BadOption, match="no iCE40 PLL setting"):
        clock.ice40_pll(12.0, 10.0)           # below the iCE40 PLL's 16 MHz output floor
    with pytest.raises(BadOption, match="PLL input"):
        clock.ecp5_pll(5.0, 50.0)
    with pytest.raises(BadOption, match="no PLL support"):
        clock.pll_settings("xilinx7", 100.0, 150.0)
    assert clock.parse_clock("auto") == "auto" and clock.parse_clock(" OSC ") == "osc"
    assert clock.parse_clock("46.5") == 46.5 and clock.parse_clock("30MHz") == 30.0
    for bad in ("fast", "-3", "0", "nan", ""):
        with pytest.raises(BadOption, match="--clock must be auto, osc or a frequency"):
            clock.parse_clock(bad)


def test_plan_clock():
    osc = clock.plan_clock("icebreaker")
    assert osc.source == "osc" and osc.mhz == 12.0 and osc.pll is None
    p = clock.plan_clock(get_board("ulx3s-85f"), 46.8)
    assert p.source == "pll" and p.mhz <= 46.8 and p.pll.family == "ecp5"
    assert math.isclose(p.hz, p.mhz * 1e6)
    with pytest.raises(ValueError, match="needs a PLL plan"):
        clock.ClockGenerator(osc)


@pytest.mark.parametrize("board,primitive", [("ulx3s-85f", "EHXPLLL"), ("icebreaker", "SB_PLL40_PAD")])
def test_board_top_runs_on_the_pll_and_the_uart_follows(board, primitive, tmp_path):
    """The PLL primitive is in the netlist with the computed dividers, the sync domain is its
    output, and the UART divisor is the PLL frequency's (no toolchain run)."""
    from snnfpga.boards.uart import divisor_for
    from snnfpga.boards.uart_top import BoardTop

    net = random_network(coding="sc-ttfs", sizes=(16, 12, 4), seed=0, name="tiny")
    b = get_board(board)
    plan = clock.plan_clock(b, 30.0 if board == "icebreaker" else 46.8)
    top = BoardTop(net, baud=115200, clock=clock.ClockGenerator(plan))
    plan_files = b.platform().prepare(top, name="pll_top")
    text = plan_files.files["pll_top.il"]
    assert primitive in text
    for key, value in plan.pll.params.items():
        assert f"{key}" in text and str(value) in text
    assert top.uart_top._divisor == divisor_for(plan.hz, 115200)
    assert top.uart_top._divisor != divisor_for(b.clock_hz, 115200)


def test_build_records_the_clock(tmp_path):
    from snnfpga.boards.build import build

    net = random_network(coding="sc-ttfs", sizes=(16, 12, 4), seed=0, name="tiny")
    plan = clock.plan_clock("ulx3s-85f", 40.0)
    r = build(net, "ulx3s-85f", tmp_path, do_build=False, clock=plan)
    assert r["clock_mhz"] == plan.mhz
    assert "EHXPLLL" in (tmp_path / "snn_board.il").read_text()
    r = clock.build_at_clock(net, "ulx3s-85f", tmp_path / "auto", clock="auto", do_build=False)
    assert r["clock"]["source"] == "osc" and any("clock auto" in n for n in r["notes"])
