"""``snnfpga estimate``: exact block RAM / DSP counts, the calibration fit, cycles, power split, CLI."""

import json
import math
import time

import numpy as np
import pytest

from snnfpga.boards import estimate as est
from snnfpga.boards import power
from snnfpga.boards.estimate_calibration import CALIBRATION
from snnfpga.boards.fit import MemoryNeed, check_fit, dsp_blocks, in_block_ram
from snnfpga.boards.performance import busiest_layer_events
from snnfpga.boards.registry import get_board
from snnfpga.rtl_gen import describe
from snnfpga.testing import random_frames, random_network


@pytest.fixture(scope="module")
def digits_net():
    return random_network(coding="sc-ttfs", sizes=(64, 32, 10), seed=1, name="digits_like")


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f", "arty-a7-35"])
def test_counts_come_from_the_description(digits_net, board):
    e = est.estimate(digits_net, board, lanes=2)
    assert e.bram == check_fit(digits_net, get_board(board), lanes=2)["bram_blocks"]
    assert e.dsp == describe(digits_net, lanes=2).multipliers
    family = get_board(board).family
    assert (e.luts is None) == (family not in CALIBRATION)
    if e.luts is not None:
        model = CALIBRATION[family]["lut"]
        assert e.luts == round(sum(c * e.features[k] for k, c in model.items()))
    assert json.loads(json.dumps(e.to_json(), default=str))["board"] == board


def test_cycles_and_fps(digits_net):
    frames = random_frames(digits_net, 6, seed=2)
    e = est.estimate(digits_net, "icebreaker", lanes=4, frames=frames)
    from snnfpga.reference import simulate

    bound = math.ceil(busiest_layer_events(digits_net, frames, simulate(digits_net, frames)) / 4)
    assert e.frame_interval_cycles == bound
    assert e.cycles_per_frame >= e.frame_interval_cycles + digits_net.input.size
    assert math.isclose(e.fps, 12e6 / bound)
    fast = est.estimate(digits_net, "icebreaker", lanes=4, frames=frames, clock_mhz=30.0)
    assert fast.clock_source == "pll" and fast.clock_mhz == 30.0 and math.isclose(fast.fps, 30e6 / bound)
    assert fast.power["total_w"] > e.power["total_w"]


def test_fast_enough(digits_net):
    est.estimate(digits_net, "ulx3s-85f", lanes=1)  # imports done
    t0 = time.process_time()
    est.estimate(digits_net, "ulx3s-85f", lanes=1)
    assert time.process_time() - t0 < 1.0


def test_fit_recovers_a_linear_model():
    """Builds whose counts follow the model exactly give back its coefficients."""
    true = {"const": 300.0, "lane_acc_bits": 9.0, "logic_ram_bits": 0.5, "multipliers": 4.0}
    true_ff = {"const": 150.0, "lane_acc_bits": 4.0, "logic_ram_bits": 1.0}
    samples = []
    names = []
    for i, (sizes, lanes, coding) in enumerate([((16, 12, 4), 1, "sc-ttfs"), ((24, 16, 4), 2, "rate"),
                                                ((20, 8, 6), 4, "ttfs"), ((32, 12, 3), 1, "sc-ttfs"),
                                                ((16, 16, 16, 4), 2, "sc-ttfs")]):
        net = random_network(coding=coding, sizes=sizes, seed=i, name=f"s{i}")
        f = est.features(net, "icebreaker", lanes=lanes)
        samples.append(est.Sample(net=net, board="icebreaker", lanes=lanes, decode="auto",
                                  luts=round(sum(c * f[k] for k, c in true.items())),
                                  ffs=round(sum(c * f[k] for k, c in true_ff.items()))))
        names.append(f"s{i}-icebreaker")
    table = est.fit_calibration(samples, fitted_on=names,
                                model={"ice40": {"lut": tuple(true), "ff": tuple(true_ff)}})
    fam = table["ice40"]
    assert fam["fitted_on"] == sorted(names)
    assert fam["max_fit_error"]["lut"] < 0.01 and fam["max_fit_error"]["ff"] < 0.01
    assert math.isclose(fam["lut"]["lane_acc_bits"], 9.0, rel_tol=0.05)


def test_write_calibration_round_trips(tmp_path):
    table = {"ice40": {"lut": {"const": 1.0}, "ff": {"const": 2.0}, "fitted_on": ["n1-icebreaker"],
                       "method": "test", "max_fit_error": {"lut": 0.0, "ff": 0.0}}}
    path = est.write_calibration(table, tmp_path / "cal.py")
    ns: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), ns)  # our own generated file
    assert ns["CALIBRATION"] == table


@pytest.mark.parametrize("depth,width,transparent,family,expect", [
    (5, 40, True, "ice40", False),    # 3 EBR = 192 + 2*(1+3) = 200, ties with 200 bits of logic: yosys takes logic
    (5, 28, False, "ice40", False),   # rate membranes, old data on a collision: 128 + 14 > 140 (yosys: FFs)
    (12, 32, False, "ice40", True),   # 128 + 14 < 384
    (16, 42, True, "ice40", True),
    (63, 8, False, "ice40", True),    # the request FIFO
    # ECP5: a 64x22 transparent RAM: DP16KD 128 + 8 beats distributed RAM 131 + 8 (yosys: 1 EBR)
    (64, 22, True, "ecp5", True),
    (128, 8, False, "ecp5", False),   # distributed RAM 96 + 2 beats 128 + 2
])
def test_block_ram_rule_counts_yosys_emulation(depth, width, transparent, family, expect):
    board = get_board("icebreaker" if family == "ice40" else "ulx3s-85f")
    assert in_block_ram(MemoryNeed("m", depth, width, transparent=transparent), board) is expect


def test_partial_sums_are_described_transparent(digits_net):
    mems = describe(digits_net, lanes=2).memories
    assert all(m.transparent == (m.role == "partial_sums") for m in mems)


def test_energy_split():
    act = {"memory_reads": 5000, "memory_writes": 2000, "accumulator_updates": 2500, "events": 300,
           "multiplies": 1024, "uart_bits": 800}
    r = power.estimate("icebreaker", {"LUT": {"used": 1500}}, act, 12.0, 1000.0)
    assert math.isclose(sum(r["power_terms_w"].values()), r["total_w"], rel_tol=1e-12)
    assert math.isclose(r["dynamic_w"], r["total_w"] - r["static_w"], rel_tol=1e-12)
    assert math.isclose(r["fps_per_w_static"], 1000.0 / r["static_w"])
    assert math.isclose(r["fps_per_w_dynamic"], 1000.0 / r["dynamic_w"])
    assert math.isclose(1 / r["fps_per_w"], 1 / r["fps_per_w_static"] + 1 / r["fps_per_w_dynamic"], rel_tol=1e-9)
    assert math.isclose(r["dynamic_energy_per_frame_nj"], 1e9 * r["dynamic_w"] / 1000.0)
    terms = r["power_terms_w"]
    dom = r["dominant"]
    assert terms[dom["dynamic_energy_per_frame_nj"]] == max(v for k, v in terms.items() if k != dom["fps_per_w_static"])
    assert dom["fps_per_w_static"].startswith("_ICE40_STATIC")
    assert terms[dom["fps_per_w"]] == max(terms.values())


def test_cli(digits_net, tmp_path, capsys):
    from snnfpga.cli import main
    from snnfpga.ir import save

    ir = tmp_path / "net.snn.json"
    save(digits_net, ir)
    frames = tmp_path / "frames.npy"
    np.save(frames, random_frames(digits_net, 4, seed=0))
    out = tmp_path / "est.json"
    assert main(["estimate", str(ir), "--board", "icebreaker", "--lanes", "2", "--frames", str(frames),
                 "--clock", "24", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "BRAM" in text and "frames/J" in text and "nJ/frame" in text and "24.000 MHz" in text
    got = json.loads(out.read_text())
    assert got["lanes"] == 2 and got["clock_mhz"] == 24.0
    assert main(["estimate", str(ir), "--board", "nope"]) == 2
    with pytest.raises(SystemExit):
        main(["estimate", str(ir), "--board", "icebreaker", "--clock", "auto"])


def test_dsp_blocks_split_wide_products():
    """A slots layer's encode-side ``dec · P`` is acc_bits wide: two blocks when wider than one
    (n9 of benchmarks/bench_estimate.py: 3 DSP built on both boards for 2 multipliers)."""
    net = random_network(coding="sc-ttfs", sizes=(64, 64, 10), seed=9, name="n9")
    hw = describe(net, lanes=1, decode="slots")
    slots = [layer for layer in hw.layers if layer.decode == "slots"]
    assert slots and all(layer.acc_bits > 18 for layer in slots)
    assert dsp_blocks(hw, "ecp5") == hw.multipliers + len(slots)
    assert dsp_blocks(hw, "ice40") == hw.multipliers + len(slots)
    assert dsp_blocks(describe(net, lanes=2), "ecp5") == describe(net, lanes=2).multipliers
    assert est.estimate(net, "icebreaker", decode="slots").dsp == hw.multipliers + len(slots)
