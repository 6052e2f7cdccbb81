"""snnfpga.pareto (benchmarks/bench_pareto.py) on synthetic rows: the Pareto front, the table, the JSON and the plot
(no board build: the real run is ``make bench``)."""

from __future__ import annotations

import json

import pytest

from snnfpga import pareto as bench
Row = bench.ParetoRow


def _row(board: str, lanes: int, luts: int | None, fps: float | None, fpj: float | None, **kw) -> Row:
    return Row(board=board, lanes=lanes, luts=luts, ffs=luts and luts // 2, bram=4, dsps=2 * lanes, fmax_mhz=60.0,
               clock_mhz=54.0, clock_source="pll", frame_interval_cycles=1000 / lanes, fps=fps,
               power_static_w=0.1, power_dynamic_w=0.001 * lanes, power_w=0.1 + 0.001 * lanes, frames_per_j=fpj,
               build_seconds=100.0, **kw)


@pytest.fixture
def rows() -> list[Row]:
    return [
        _row("ulx3s-85f", 1, 1500, 10_000.0, 50_000.0),
        _row("ulx3s-85f", 2, 2200, 20_000.0, 40_000.0),
        _row("ulx3s-85f", 4, 3000, 15_000.0, 30_000.0),   # dominated on fps by L2 (more LUTs, fewer fps)
        _row("ulx3s-85f", 8, 4600, 40_000.0, 60_000.0),   # best on both gains
        _row("ulx3s-85f", 16, 4600, 30_000.0, 60_000.0),  # same LUTs as L8, fewer fps: dominated; frames/J tie
        _row("icebreaker", 1, 1700, 3_000.0, 2e6),
        Row(board="icebreaker", lanes=2, status=bench.NO_FIT, reason="needs 32 EBR block RAMs, has 30"),
        _row("icebreaker", 4, None, None, None, status=bench.FAILED, reason="toolchain failed"),
    ]


def test_dominated_points_are_not_on_the_front(rows):
    front = bench.pareto_front(rows, "luts", "fps")
    assert [r.lanes for r in front if r.board == "ulx3s-85f"] == [1, 2, 8]
    lanes = {r.lanes for r in front}
    assert 4 not in lanes and 16 not in lanes  # more LUTs for fewer fps; equal LUTs, fewer fps


def test_front_per_board_and_per_gain(rows):
    fr = bench.fronts(rows)
    assert set(fr) == {"ulx3s-85f", "icebreaker"}
    # frames/J: L1 (fewest LUTs) and L8/L16 (tied at the highest frames/J, same LUTs: neither strictly better)
    assert [r.lanes for r in fr["ulx3s-85f"]["frames_per_j"]] == [1, 8, 16]
    assert [r.lanes for r in fr["icebreaker"]["fps"]] == [1]  # failed and unfit points are never on a front


def test_front_of_nothing_and_of_points_without_figures():
    assert bench.pareto_front([], "luts", "fps") == []
    assert bench.pareto_front([_row("b", 1, None, 5.0, 1.0), _row("b", 2, 10, None, 1.0)], "luts", "fps") == []


def test_single_point_that_is_better_on_both_takes_the_whole_front():
    a, b, c = _row("b", 1, 100, 10.0, 1.0), _row("b", 2, 200, 5.0, 1.0), _row("b", 4, 50, 20.0, 2.0)
    assert bench.pareto_front([a, b, c], "luts", "fps") == [c]


def test_table_marks_the_fronts_and_gives_the_reasons(rows):
    text = bench.format_table(rows)
    lines = [ln for ln in text.splitlines() if ln.startswith("| ulx3s-85f") or ln.startswith("| icebreaker")]
    assert len(lines) == len(rows)
    cells = {(c[1].strip(), int(c[2])): [x.strip() for x in c] for c in (ln.split("|") for ln in lines)}
    front_col = 1 + bench.COLUMNS.index("front")
    assert cells[("ulx3s-85f", 8)][front_col] == "FE"
    assert cells[("ulx3s-85f", 4)][front_col] == ""
    assert cells[("ulx3s-85f", 2)][front_col] == "F"
    assert cells[("icebreaker", 2)][1 + bench.COLUMNS.index("status")] == "does not fit"
    assert cells[("icebreaker", 2)][1 + bench.COLUMNS.index("LUT")] == "-"
    assert "- icebreaker lanes=2: does not fit: needs 32 EBR block RAMs, has 30" in text
    assert "- icebreaker lanes=4: failed: toolchain failed" in text


def test_outputs_round_trip_and_plot(rows, tmp_path):
    meta = {"network": "sc-ttfs-T4", "ir": "x.snn.json", "clock": "auto"}
    files = bench.write_outputs(rows, tmp_path, meta)
    assert [p.name for p in files] == ["pareto.md", "pareto.json", "pareto.png"]
    doc = json.loads((tmp_path / "pareto.json").read_text())
    assert doc["meta"] == meta
    back = [Row.from_json(d) for d in doc["rows"]]
    assert back == rows
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "pareto.md").read_text()
    assert md.startswith("# Hardware Pareto benchmark: sc-ttfs-T4 (x.snn.json)") and "| ulx3s-85f | 16 |" in md


def test_no_plot_without_an_ok_point(tmp_path):
    only = [Row(board="icebreaker", lanes=16, status=bench.NO_FIT, reason="too big")]
    files = bench.write_outputs(only, tmp_path, {"network": "n"})
    assert [p.name for p in files] == ["pareto.md", "pareto.json"]
    assert not (tmp_path / "pareto.png").exists()


def test_single_bank_and_name_options_parse():
    """``--single-bank`` is the generator's option (as ``snnfpga build``); ``--name`` renames the
    outputs, default pareto (no build: only the parser)."""
    args = bench.parser().parse_args(["--boards", "icebreaker", "--single-bank", "1", "0", "--name",
                                      "pareto-icebreaker"])
    assert list(args.single_bank) == [1, 0] and args.name == "pareto-icebreaker" and args.boards == ["icebreaker"]
    default = bench.parser().parse_args([])
    assert tuple(default.single_bank) == () and default.name == bench.DEFAULT_NAME == "pareto"
    assert default.lanes == list(bench.DEFAULT_LANES)
    for bad in (["--single-bank", "-1"], ["--single-bank", "x"], ["--single-bank"], ["--name", "a/b"],
                ["--name", "pareto.json"], ["--name", ""]):
        with pytest.raises(SystemExit):
            bench.parser().parse_args(bad)


def test_outputs_under_another_name_keep_the_default_files(rows, tmp_path):
    bench.write_outputs(rows, tmp_path, {"network": "a"})
    files = bench.write_outputs(rows[-3:], tmp_path, {"network": "b"}, name="pareto-icebreaker")
    assert [p.name for p in files] == ["pareto-icebreaker.md", "pareto-icebreaker.json", "pareto-icebreaker.png"]
    assert json.loads((tmp_path / "pareto.json").read_text())["meta"]["network"] == "a"
    assert len(json.loads((tmp_path / "pareto-icebreaker.json").read_text())["rows"]) == 3


def test_failure_reason_keeps_the_tools_error_line():
    e = RuntimeError("toolchain failed for icebreaker (exit 125) in build/osc:\nInfo: Device utilisation:\n"
                     "Info: ICESTORM_DSP: 16/ 8 200%\nERROR: Unable to place cell 'x', no BELs remaining to "
                     "implement cell type 'ICESTORM_DSP'\n0 warnings, 1 error")
    assert bench.failure_reason(e) == ("toolchain failed for icebreaker (exit 125) in build/osc: ERROR: Unable to "
                                       "place cell 'x', no BELs remaining to implement cell type 'ICESTORM_DSP'")
    assert bench.failure_reason(RuntimeError("yosys crashed")) == "yosys crashed"
