"""``snnfpga sweep`` on a real local Ray (started here, shut down after): the rows, the Pareto
fronts, a point equal to the same point run alone with ``snnfpga run``, a killed worker, an
interrupted and resumed sweep, and bad input refused before anything is written.

Small on purpose (2 cores): digits, an MLP 64-16-10 trained 2 epochs, 1 fine-tuning epoch.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray  # requirements.txt pins ray[tune]

from snnfpga import sweep
from snnfpga.cli import main
from snnfpga.errors import BadFile, BadOption

SMALL = dict(dataset="digits", hidden=[16], epochs=2, finetune_epochs=1, seed=0)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 CPUs, no dashboard); sweeps join it."""
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def _spec(name: str, **kw) -> sweep.SweepSpec:
    return sweep.SweepSpec.from_mapping({**SMALL, "name": name, **kw}, "test")


def _attempts(root: Path) -> dict[str, int]:
    return {d.name: int((d / "attempts").read_text()) for d in (root / "points").iterdir() if (d / "attempts").is_file()}


@pytest.mark.slow
def test_sweep_rows_front_and_point_alone(local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a 64-192-10 MLP: its 8-bit weights need more block RAM than the iCE40UP5K has, its 4-bit ones fit
    spec = _spec("main", hidden=[192], coding=["sc-ttfs"], timesteps=[2], weight_bits=[4, 8], lanes=[4],
                 board=["icebreaker", "ulx3s-85f"])
    lines: list[str] = []
    res = sweep.run_sweep(spec, runs="runs", progress=False, say=lines.append)
    root = tmp_path / "runs" / "main"
    ids = [p.id for p in spec.points()]
    assert len(ids) == 4

    # one CSV row per point, in sweep order, and the JSONL beside it says the same
    with open(root / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ids
    jsonl = [json.loads(x) for x in (root / "sweep.jsonl").read_text().splitlines()]
    assert [r["id"] for r in jsonl] == ids
    by_id = {r.id: r for r in res.rows}

    # the point that does not fit is failed with its reason, and the sweep went on
    bad = by_id["sc-ttfs-T2-w8-a8-direct-lin-L4-icebreaker"]
    assert bad.status == "failed" and "block RAM" in bad.reason and "iCE40UP5K" in bad.reason, bad.reason
    assert bad.int_ref is None and rows[ids.index(bad.id)]["status"] == "failed"
    ok = [r for r in res.rows if r.ok]
    assert len(ok) == 3
    for r in ok:
        assert 0.3 < r.int_ref <= 1 and r.test_images == 360
        assert r.bram_blocks is not None and r.bram_blocks <= r.bram_available
        assert r.fps > 0 and r.frames_per_j > 0 and r.power_w > 0
        assert r.attempts == 1 and r.ir and Path(r.ir).is_file()
    # points differing only in board share one conversion, so the same accuracy
    assert by_id["sc-ttfs-T2-w4-a8-direct-lin-L4-icebreaker"].int_ref == \
        by_id["sc-ttfs-T2-w4-a8-direct-lin-L4-ulx3s-85f"].int_ref
    # the iCE40 runs at 12 MHz, the ECP5 at 25: the same interval in cycles, fewer frames per second
    ice, ulx = by_id["sc-ttfs-T2-w4-a8-direct-lin-L4-icebreaker"], by_id["sc-ttfs-T2-w4-a8-direct-lin-L4-ulx3s-85f"]
    assert ice.frame_interval_cycles == ulx.frame_interval_cycles and ice.fps < ulx.fps

    # the Pareto fronts: no point of a board beats a front point on both axes, every other is beaten
    for board, fronts in res.fronts.items():
        mine = [r for r in ok if r.board == board]
        for cost, minimize in (("frames_per_j", False), (sweep.resource_axis(ok), True)):
            front = fronts[cost]
            assert front, (board, cost)
            sign = -1 if minimize else 1
            for p in mine:
                beaten = any(q.int_ref >= p.int_ref and sign * getattr(q, cost) >= sign * getattr(p, cost)
                             and (q.int_ref > p.int_ref or sign * getattr(q, cost) > sign * getattr(p, cost))
                             for q in mine)
                assert (p in front) == (not beaten), (board, cost, p.id)
    text = "\n".join(lines)
    assert "Pareto front on icebreaker" in text and "Pareto front on ulx3s-85f" in text
    assert res.plot is not None and res.plot.stat().st_size > 10_000

    # the best point per board, named with the command that computes it alone: same figures
    assert set(res.best) == {"icebreaker", "ulx3s-85f"}
    best = res.best["ulx3s-85f"]
    cmd = res.commands["ulx3s-85f"]
    assert cmd in text and "--no-hardware" in cmd
    argv = shlex.split(cmd)
    assert argv[:2] == ["snnfpga", "run"]
    assert main(argv[1:] + ["--quiet"]) == 0
    report = json.loads((root / "best-ulx3s-85f" / "report.json").read_text())
    alone = next(r for r in report["runs"] if r["coding"] == best.coding and r["timesteps"] == best.timesteps)
    assert alone["int_ref"] == best.int_ref
    assert alone["float_snn"] == best.float_snn
    assert alone["spikes_per_frame"] == best.spikes_per_frame


@pytest.mark.slow
def test_killed_worker_retries_the_point(local_ray, tmp_path, monkeypatch):
    """SIGKILL the Ray worker computing a point (its pid from the point's marker file): Tune runs
    the point again and every point is in the results once."""
    monkeypatch.chdir(tmp_path)
    spec = _spec("fault", coding=["sc-ttfs"], timesteps=[2], lanes=[4, 8], board=["ulx3s-85f"], hold_s=3,
                 max_failures=2)
    root = tmp_path / "runs" / "fault"
    victim = spec.points()[0].id
    killed: list[int] = []

    def killer():
        marker = root / "points" / victim / "worker.pid"
        deadline = time.time() + 240
        while time.time() < deadline and not marker.is_file():
            time.sleep(0.05)
        time.sleep(0.3)
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    lines: list[str] = []
    res = sweep.run_sweep(spec, runs="runs", progress=False, say=lines.append)
    t.join(5)
    print(f"killed worker {killed}", *lines, sep="\n")  # the run's output, shown with pytest -s
    assert killed, "the worker was never seen"
    assert [r.id for r in res.rows] == [p.id for p in spec.points()] and not res.unfinished
    assert all(r.ok for r in res.rows)
    assert _attempts(root)[victim] == 2  # started, killed, started again
    v = next(r for r in res.rows if r.id == victim)
    assert v.attempts == 2 and int(v.worker.rsplit(":", 1)[1]) != killed[0]
    assert len((root / "sweep.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_interrupted_sweep_resumes_unfinished_points_only(local_ray, tmp_path):
    """Ctrl-C a sweep driver (a subprocess, its own local Ray) after its first point, resume it
    here: no finished point is computed again, every point is in the results once."""
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('name = "resume"\ndataset = "digits"\nhidden = [16]\nepochs = 2\nfinetune-epochs = 1\n'
                   'coding = ["sc-ttfs"]\ntimesteps = [2]\nlanes = [4, 8, 16]\nboard = ["ulx3s-85f"]\n'
                   'hold_s = 1\n')
    root = tmp_path / "runs" / "resume"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "snnfpga", "sweep", "--config", str(cfg), "--workers", "1",
                             "--quiet"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if len(sweep.read_rows(root)) >= 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_first = set(sweep.read_rows(root))
    ids = [p.id for p in sweep.SweepSpec.from_json(json.loads((root / "sweep.json").read_text())).points()]
    assert 1 <= len(done_first) < len(ids), out
    assert proc.returncode != 0, out  # unfinished points: not a success
    before = _attempts(root)

    lines: list[str] = []
    res = sweep.run_sweep(resume=root, progress=False, say=lines.append)
    print("first run (Ctrl-C after a point):", out, "resumed:", *lines, f"attempts before {before}, after "
          f"{_attempts(root)}", sep="\n")  # shown with pytest -s
    assert [r.id for r in res.rows] == ids and not res.unfinished
    after = _attempts(root)
    for pid in done_first:
        assert after[pid] == before[pid] == 1, pid  # finished before: not run again
    assert all(r.ok for r in res.rows)
    assert set(after) == set(ids)
    assert res.ran == len(ids) - len(done_first)
    assert len((root / "sweep.jsonl").read_text().splitlines()) == len(ids)


@pytest.mark.parametrize("argv, needle", [
    (["--name", "x", "--address", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["--name", "x", "--address", "ray://127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["--name", "x", "--timesteps", "0"], "timesteps: must be in 1.."),
    (["--name", "x", "--board", "nosuchboard"], "unknown board 'nosuchboard'"),
    (["--name", "x", "--coding", "rate", "--pow2", "yes"], "no point"),
])
def test_bad_options_write_nothing(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, needle", [
    ('coding = ["sc-ttfs"]\nweight_bitz = [4]\n', "unknown parameter 'weight_bitz'"),
    ('coding = ["sc-ttfs"]\ntimesteps = []\n', "timesteps is an empty range"),
    ('coding = "sc-ttfs"\nlanes = [4, "many"]\n', "lanes: must be an integer, not 'many'"),
    ('coding = [\n', "is not valid"),
])
def test_bad_sweep_file_names_file_and_key(tmp_path, monkeypatch, capsys, text, needle):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["sweep", "--config", str(cfg), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "bad.toml" in err
    assert not (tmp_path / "runs").exists()


def test_spec_checks_and_points():
    with pytest.raises(BadOption, match="unknown parameter 'colour'"):
        sweep.SweepSpec.from_mapping({"colour": ["red"]}, "x.toml")
    with pytest.raises(BadOption, match="board is an empty range"):
        sweep.SweepSpec.from_mapping({"board": []}, "x.toml")
    s = sweep.SweepSpec.from_mapping({"coding": ["sc-ttfs", "rate"], "pow2": ["no", "yes"], "lanes": [1, 4],
                                      "board": ["icebreaker"]})
    pts = s.points()
    # rate has no power-of-two series; (sc-)ttfs default T 4, rate 32
    assert [(p.coding, p.timesteps, p.pow2, p.lanes) for p in pts] == [
        ("sc-ttfs", 4, False, 1), ("sc-ttfs", 4, False, 4), ("sc-ttfs", 4, True, 1), ("sc-ttfs", 4, True, 4),
        ("rate", 32, False, 1), ("rate", 32, False, 4)]
    assert len({p.id for p in pts}) == len(pts)
    assert sweep.SweepSpec.from_json(s.to_json()) == s
    with pytest.raises(BadFile, match="does not exist"):
        sweep.load_config("/nonexistent/sweep.toml")


def test_resume_of_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert main(["sweep", "--resume", str(tmp_path)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
