"""``snnfpga run --clock``: parsed as ``snnfpga build --clock`` is (boards.clock.parse_clock), passed
through the flow's options to the board build, and shown in the build step's summary.

The board build itself is replaced by a stub (no toolchain): what is checked is the plumbing.
"""

from __future__ import annotations

import pytest

from snnfpga import flow, reference
from snnfpga.boards import build as board_build
from snnfpga.cli import build_parser, main
from snnfpga.errors import BadOption
from snnfpga.testing import random_frames, random_network


def _run_args(*extra: str):
    return build_parser().parse_args(["run", "--board", "ulx3s-85f", *extra])


@pytest.mark.parametrize("given, expect", [((), "osc"), (("--clock", "auto"), "auto"), (("--clock", "OSC"), "osc"),
                                           (("--clock", "46.5"), 46.5), (("--clock", "30MHz"), 30.0)])
def test_clock_option_parses_into_the_run_options(given, expect):
    opts = flow.RunOptions.from_args(_run_args(*given))
    assert opts.clock == expect
    assert opts.board == "ulx3s-85f"


@pytest.mark.parametrize("bad", ["fast", "0", "-25", "nan", ""])
def test_bad_clock_fails_at_parse_time_naming_option_and_value(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--board", "ulx3s-85f", "--clock", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --clock:" in err and f"not {bad!r}" in err, err


def test_clock_without_a_board_is_refused(tmp_path, capsys):
    assert main(["run", "--clock", "auto", "--no-hardware", "--out", str(tmp_path / "r")]) == 2
    assert "--clock auto: the clock is the board build's; give --board NAME" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_frequency_the_pll_cannot_make_fails_before_training(tmp_path, capsys, monkeypatch):
    def no_data(opts):  # reaching the data step means preflight let it through: fail fast, not after a run
        raise AssertionError("preflight accepted --clock 5 on icebreaker")

    monkeypatch.setattr(flow, "load_data", no_data)
    # the iCE40 PLL's output ranges 16..275 MHz: nothing at or below 5 MHz (above, the highest setting is taken)
    assert main(["run", "--board", "icebreaker", "--clock", "5", "--simulator", "icarus",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--clock 5 on icebreaker: no iCE40 PLL setting" in err, err
    assert not (tmp_path / "r").exists()


def test_cli_hands_the_clock_to_the_flow(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(flow, "run", lambda opts, *a, **k: seen.append(opts))
    assert main(["run", "--board", "icebreaker", "--clock", "auto", "--out", str(tmp_path)]) == 0
    assert [o.clock for o in seen] == ["auto"]


class _StubBuild:
    """Records the board builds asked for; answers like :func:`snnfpga.boards.build.build` with a
    made-up fmax (``fmax`` per call, in order)."""

    def __init__(self, fmax: list[float]):
        self.fmax, self.calls = list(fmax), []

    def __call__(self, net, board, out_dir, **kw):
        plan = kw.get("clock")
        self.calls.append({"out": str(out_dir), **kw})
        return {"board": board.name, "device": board.device, "family": board.family, "toolchain": board.toolchain,
                "out_dir": str(out_dir), "lanes": kw.get("lanes", 1), "decode": kw.get("decode", "auto"),
                "clock_mhz": plan.mhz if plan is not None else board.clock_hz / 1e6, "baud": 115200,
                "bitstream": None, "fmax_mhz": self.fmax[len(self.calls) - 1], "fmax_constraint_mhz": None,
                "resources": {"LUT": {"used": 1000, "available": 83640, "percent": 1.2}},
                "memory_estimate": {}, "build_seconds": 0.0, "notes": []}


@pytest.fixture
def net_and_frames():
    net = random_network("sc-ttfs", sizes=(16, 12, 4), timesteps=4)
    frames = random_frames(net, 4)
    return net, flow.HardwareFrames(frames=frames, labels=None, ref=reference.simulate(net, frames))


def test_numeric_clock_reaches_the_board_build_and_the_summary(monkeypatch, tmp_path, net_and_frames):
    net, hw = net_and_frames
    stub = _StubBuild([80.0])
    monkeypatch.setattr(board_build, "build", stub)
    lines: list[str] = []
    opts = flow.RunOptions(board="ulx3s-85f", clock=46.8, lanes=2, quiet=True)
    b = flow.build(opts, net, tmp_path, hw, None, say=lines.append)
    assert len(stub.calls) == 1
    plan = stub.calls[0]["clock"]
    assert plan.source == "pll" and 40 < plan.mhz <= 46.8 and stub.calls[0]["lanes"] == 2
    assert b.clock["source"] == "pll" and b.clock["mhz"] == plan.mhz
    assert b.performance.clock_mhz == pytest.approx(plan.mhz)
    summary = lines[-1]
    assert f"clock {b.performance.clock_mhz} MHz: pll, --clock 46.8" in summary, lines


def test_auto_builds_at_the_oscillator_then_the_pll(monkeypatch, tmp_path, net_and_frames):
    net, hw = net_and_frames
    stub = _StubBuild([80.0, 79.0])  # the oscillator build's fmax, then the PLL build's
    monkeypatch.setattr(board_build, "build", stub)
    lines: list[str] = []
    b = flow.build(flow.RunOptions(board="ulx3s-85f", clock="auto"), net, tmp_path, hw, None, say=lines.append)
    assert [c.get("clock") is None for c in stub.calls] == [True, False]
    assert stub.calls[0]["out"].endswith("board/osc") and stub.calls[1]["out"].endswith("board/pll")
    assert b.clock["source"] == "pll" and b.clock["mhz"] <= 0.9 * 80.0
    assert any("clock auto: PLL at" in s for s in lines), lines
    assert ": pll, --clock auto" in lines[-1]


def test_default_stays_the_oscillator(monkeypatch, tmp_path, net_and_frames):
    net, hw = net_and_frames
    stub = _StubBuild([80.0])
    monkeypatch.setattr(board_build, "build", stub)
    b = flow.build(flow.RunOptions(board="ulx3s-85f"), net, tmp_path, hw, None, say=lambda s: None)
    assert len(stub.calls) == 1 and stub.calls[0].get("clock") is None
    assert b.clock == {"source": "osc", "osc_mhz": 25.0, "mhz": 25.0, "pll": None}


def test_preflight_names_the_option(tmp_path):
    with pytest.raises(BadOption, match=r"--clock 5 on ulx3s-85f"):
        flow.preflight(flow.RunOptions(board="ulx3s-85f", clock=5.0, simulator="icarus", out=tmp_path))
