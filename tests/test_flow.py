"""``snnfpga run`` as a flow of typed steps: report.json from one place, Verilog generated once,
the golden model run once on the hardware frames, a mismatch failing after the report.

One small run on digits (MLP 64-16-10, 2 epochs, no sweep, no fine-tuning, 6 images on Icarus,
a board build without place and route) is shared by the tests of this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from snnfpga import flow, reference
from snnfpga import report as report_json
from snnfpga.boards.performance import Performance
from snnfpga.cli import main
from snnfpga.sim import SimulationReport
from snnfpga.testing import random_frames, random_network

DOCS = Path(__file__).resolve().parents[1] / "docs" / "report.md"
IMAGES = 6
SMALL = dict(dataset="digits", hidden=(16,), epochs=2, sweep=False, finetune_epochs=0, images=IMAGES,
             simulator="icarus", lanes=4, quiet=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The flow with spies on Verilog generation and on the integer reference."""
    from snnfpga.boards import build as board_build
    from snnfpga.convert import pipeline
    from snnfpga.rtl_gen import emit

    mp = pytest.MonkeyPatch()
    generated, ref_calls, evaluating = [], [], []
    real_generate, real_simulate, real_build = emit.generate, reference.simulate, board_build.build
    real_evaluate_int = pipeline.evaluate_int

    def evaluate_int(*a, **k):  # the reference calls made from here evaluate on the test split
        evaluating.append(True)
        try:
            return real_evaluate_int(*a, **k)
        finally:
            evaluating.pop()

    def generate(net, out_dir, **kw):
        generated.append(net.name)
        return real_generate(net, out_dir, **kw)

    def simulate(net, frames):
        ref_calls.append((net.name, np.array(frames), bool(evaluating)))
        return real_simulate(net, frames)

    mp.setattr(emit, "generate", generate)
    mp.setattr(reference, "simulate", simulate)
    mp.setattr(pipeline, "evaluate_int", evaluate_int)
    mp.setattr(board_build, "build", lambda *a, **k: real_build(*a, **{**k, "do_build": False}))  # no PnR
    out = tmp_path_factory.mktemp("flow")
    lines: list[str] = []
    try:
        rep = flow.run(flow.RunOptions(out=out, board="ulx3s-85f", **SMALL), say=lines.append)
    finally:
        mp.undo()
    return rep, json.loads((out / "report.json").read_text()), generated, ref_calls, lines


def _documented_top_level_keys() -> list[str]:
    text = DOCS.read_text()
    section = text.split("### Top-level keys", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.M)


def test_report_has_version_and_every_documented_key(small_run):
    rep, doc, *_ = small_run
    assert doc["report_version"] == report_json.REPORT_VERSION == 1
    documented = _documented_top_level_keys()
    assert documented == list(report_json.TOP_LEVEL_KEYS)  # docs/report.md and the code agree
    assert list(doc) == [k for k in documented if k != "plot"]  # no sweep: no plot; every other key, in order
    # the keys existing readers use (benchmarks/accuracy_tables.py)
    for key in ("float_ann", "float_snn", "int_ref", "rtl"):
        assert set(doc["accuracy"][key]) >= {"accuracy", "images"}
    assert doc["accuracy"]["float_ann"]["images"] == 360 and doc["accuracy"]["rtl"]["images"] == IMAGES
    assert doc["bit_exact"]["mismatching_images"] == 0 and doc["bit_exact"]["images"] == IMAGES
    assert set(doc["latency"]) == {"timesteps", "cycles_per_frame", "frame_interval_cycles", "event_bound_cycles",
                                   "ratio_to_event_bound", "lanes"}
    assert [(r["coding"], r["timesteps"]) for r in doc["runs"]] == [("sc-ttfs", 4), ("ttfs", 4), ("rate", 32)]
    assert set(doc["runs"][0]) == {"coding", "timesteps", "input_coding", "float_ann", "float_snn", "int_ref", "images",
                                   "float_spikes_per_frame", "spikes_per_frame", "finetune", "seconds", "energy_paper",
                                   "seconds_per_pass"}
    from snnfpga.convert.pipeline import PASSES

    for row in doc["runs"]:  # every pass timed, and documented
        assert list(row["seconds_per_pass"]) == list(PASSES) and all(s >= 0 for s in row["seconds_per_pass"].values())
        assert sum(row["seconds_per_pass"].values()) <= row["seconds"] + 1e-6
    assert all(f"`{p}`" in DOCS.read_text().split("`seconds_per_pass`", 1)[1].split("\n", 1)[0] for p in PASSES)
    assert "rtl_classes" not in doc["hardware"] and doc["hardware"]["images"] == IMAGES
    assert doc["board"] == "ulx3s-85f" and doc["fmax_mhz"] is None and doc["bitstream"] is None
    assert doc["fps"] == pytest.approx(doc["clock_mhz"] * 1e6 / doc["hardware"]["frame_interval_cycles"])
    assert doc["fps_per_w"] == pytest.approx(doc["fps"] / doc["power_w"])
    assert list(doc["seconds_per_step"]) == ["data", "train", "convert", "evaluate", "generate", "simulate", "build"]
    assert all(s >= 0 for s in doc["seconds_per_step"].values()) and doc["seconds"] > 0
    assert json.loads(json.dumps(report_json.to_json(rep), default=float)) == doc  # written from the results


def test_steps_return_typed_results(small_run):
    rep, doc, *_ = small_run
    assert isinstance(rep, flow.Report) and rep.path is not None and rep.path.is_file()
    assert isinstance(rep.train, flow.TrainResult) and rep.train.checkpoint.is_file()
    assert isinstance(rep.convert, flow.ConvertResult) and rep.convert.main == ("sc-ttfs", 4)
    assert rep.convert.main_ir.is_file() and set(rep.convert.ir_files) == {"sc-ttfs", "ttfs", "rate"}
    assert isinstance(rep.evaluate, flow.EvaluateResult) and rep.evaluate.plot is None
    assert all(isinstance(r, flow.ConversionRow) for r in rep.evaluate.rows)
    assert rep.evaluate.main.to_json() == doc["runs"][0]
    assert isinstance(rep.generate, flow.GenerateResult) and rep.generate.verilog.name == "snn_top.v"
    assert rep.generate.summary["lanes"] == 4
    assert isinstance(rep.simulate, flow.SimulateResult)
    assert isinstance(rep.simulate.report, SimulationReport) and rep.simulate.images == IMAGES
    assert isinstance(rep.build, flow.BuildResult) and isinstance(rep.build.performance, Performance)
    assert rep.build.performance.interval_source == "measured in RTL simulation"


def test_verilog_generated_once_and_reference_run_once_on_the_hardware_frames(small_run):
    rep, doc, generated, ref_calls, _ = small_run
    assert generated == ["sc-ttfs-T4"]  # the simulation used the generated file
    test_split = 360
    evaluated = [(name, len(f)) for name, f, ev in ref_calls if ev]  # every network on the test split, in batches
    assert sum(n for _, n in evaluated) == test_split * len(rep.evaluate.rows)
    hardware = [(name, f) for name, f, ev in ref_calls if not ev]
    assert len(hardware) == 1, [(n, len(f)) for n, f in hardware]
    name, frames = hardware[0]
    assert name == "sc-ttfs-T4"
    # one run covers the simulated frames and the board's 200-frame activity estimate
    assert len(frames) == flow.BOARD_ACTIVITY_FRAMES
    sim_frames = flow.hardware_frames(rep.convert.main_net, flow.load_data(rep.options), IMAGES).frames
    assert np.array_equal(frames[:IMAGES].reshape(IMAGES, -1), sim_frames)
    direct = reference.simulate(rep.convert.main_net, sim_frames)
    assert doc["hardware"]["reference_classes"] == [int(c) for c in direct.classes]


def test_printed_summary(small_run):
    *_, lines = small_run
    text = "\n".join(lines)
    assert text.startswith("data: Dataset('digits'") and "float ANN: test accuracy" in text
    assert re.search(r"^sc-ttfs +4 +\d+\.\d\d% ", text, flags=re.M)
    assert f"RTL: {IMAGES} images, 0 mismatching" in text and "board: ulx3s-85f: fmax nan MHz" in text
    assert lines[-1].startswith("report: ") and lines[-1].endswith(" s)")


def test_hardware_frames_head_is_the_reference_of_the_head():
    net = random_network("rate", sizes=(12, 8, 3), seed=5)

    class Data:
        test_x = random_frames(net, 9, seed=2) / 255.0
        test_y = np.arange(9) % 3

    hw = flow.hardware_frames(net, Data, 9)
    head, direct = hw.head(4), reference.simulate(net, hw.frames[:4])
    assert np.array_equal(head.frames, hw.frames[:4]) and list(head.labels) == [0, 1, 2, 0]
    assert np.array_equal(head.ref.output, direct.output) and np.array_equal(head.ref.classes, direct.classes)
    assert head.ref.spikes.keys() == direct.spikes.keys()
    for k in direct.spikes:
        assert np.array_equal(head.ref.spikes[k].raster, direct.spikes[k].raster)


def test_mismatch_fails_after_the_report_is_written(tmp_path, monkeypatch, capsys):
    """The hardware disagrees with the reference: report.json is written, then exit status 1."""
    from snnfpga import sim

    def lying_simulate(net, frames, *, ref, **kw):
        n = len(frames)
        classes = [int(c) for c in ref.classes]
        return SimulationReport(
            simulator="icarus", images=n, mismatching_images=1, first_mismatch="image 0, stage 0 (layer 0): test",
            rtl_classes=[(classes[0] + 1) % 10] + classes[1:], cycles_per_frame={"mean": 10.0, "min": 10, "max": 10},
            frame_interval_cycles=8.0, events_per_frame=1.0, synaptic_events_per_frame=1.0, event_bound_cycles=1.0,
            bound_ratio=10.0, interval_bound_cycles=1.0, interval_bound_ratio=8.0, synaptic_events_per_layer=[1.0],
            sim_seconds=0.0, images_per_second=None, lanes=4, reference_classes=classes, stats={}, stat_errors=[],
            protocol_errors=[], sim_cycles=0, build_dir=None, run_dir=None)

    monkeypatch.setattr(sim, "simulate", lying_simulate)
    out = tmp_path / "run"
    code = main(["run", "--quiet", "--epochs", "1", "--hidden", "16", "--no-sweep", "--finetune-epochs", "0",
                 "--simulator", "icarus", "--images", "3", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"snnfpga: error: 1 of 3 images differ from the integer reference (report: {out / 'report.json'})" in err
    doc = json.loads((out / "report.json").read_text())
    assert doc["bit_exact"]["mismatching_images"] == 1 and doc["accuracy"]["rtl"]["images"] == 3


@pytest.mark.parametrize("policy", ["warm", "none"])
def test_sweep_points_fine_tuning_policy(tmp_path, policy):
    """Sweep points of (SC-)TTFS start from their coding's fine-tuned BN (warm) or from the ANN's
    (none), without fine-tuning of their own; the first three networks are fine-tuned; recorded."""
    opts = flow.RunOptions(dataset="digits", hidden=(16,), epochs=2, finetune_epochs=1, finetune_sweep=policy,
                           hardware=False, quiet=True, out=tmp_path)
    assert opts.sweep_finetune("ttfs") == policy
    assert [flow.RunOptions(model=m).sweep_finetune(c) for m in ("mlp", "cnn") for c in ("sc-ttfs", "ttfs")] == \
        ["all", "all", "warm", "all"]
    with pytest.raises(Exception, match="finetune_sweep"):
        flow.RunOptions(finetune_sweep="some").sweep_finetune("ttfs")
    data = flow.load_data(opts)
    trained = flow.train(opts, data)
    conv = flow.convert(opts, data, trained, tmp_path)
    jobs = opts.jobs()
    for k, (coding, T) in enumerate(jobs):
        ft = conv.converted[(coding, T)].finetune
        if coding == "rate":
            assert ft == {"epochs": 0}
        elif k < 3:
            assert ft["epochs"] == 1 and "sweep" not in ft
        else:
            assert ft["epochs"] == 0 and ft["sweep"] == policy
            assert ("warm_start" in ft) == (policy == "warm")
            if policy == "warm":
                assert ft["warm_start"] == f"{coding}-T4"
                src = conv.converted[(coding, 4)].snn
                dst = conv.converted[(coding, T)].snn
                assert all(torch.equal(src.gain[k2], dst.gain[k2]) for k2 in src.gain)
