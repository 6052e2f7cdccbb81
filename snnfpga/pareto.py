"""Hardware Pareto benchmark (issue 10): a lanes sweep of one network on real board builds.

For each (board, lanes) point the UART top is placed and routed with the open toolchain at the
clock it closes at (``--clock auto``: :func:`snnfpga.boards.clock.build_at_clock`, through
:func:`snnfpga.flow.build`, the step ``snnfpga run --board`` uses), and LUT, FF, block RAM, DSP,
fmax, clock, frame interval, fps, power (static / dynamic, estimate) and frames/J are recorded.
A point the pre-synthesis fit check refuses (:func:`snnfpga.boards.fit.check_fit`) is reported
"does not fit" with its reason, without a build. More lanes buy a shorter frame interval with
wider adders and more memory ports: the Pareto fronts (fps vs LUT, frames/J vs LUT, per board)
show which lane counts are worth their logic.

    .venv/bin/python benchmarks/bench_pareto.py [--ir runs/digits/sc-ttfs.snn.json] [--lanes 1 2 4 8 16]
        [--boards ulx3s-85f icebreaker] [--clock auto] [--single-bank 0 1] [--activity sim.json ...] [--no-pnr]
        [--name pareto] [--out runs/bench]

Writes ``<out>/<name>.md``, ``<out>/<name>.json`` (one row per point, rewritten after each point)
and ``<out>/<name>.png`` (``--name``, default ``pareto``: a second sweep, e.g. ``--name
pareto-icebreaker``, keeps the first one's files); the builds go under
``<out>/<name>-builds/<board>-L<lanes>``. ``--single-bank``: layers with one bank of partial
sums, as ``snnfpga build --single-bank`` (fit check, estimate and build alike). Not part
of the test suite (a build takes minutes); tests/test_bench_pareto.py checks the front and the
writers on synthetic rows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

#: the digits SC-TTFS network, where ``snnfpga run --dataset digits`` (and ``make demo``) leave it
DEFAULT_IRS = (Path("runs/digits/sc-ttfs.snn.json"), Path("runs/demo/sc-ttfs.snn.json"))  # under the working directory
DEFAULT_LANES = (1, 2, 4, 8, 16)
DEFAULT_BOARDS = ("ulx3s-85f", "icebreaker")
OK, NO_FIT, FAILED = "ok", "does not fit", "failed"
DEFAULT_NAME = "pareto"  #: the output files' stem: <out>/pareto.{md,json,png}, <out>/pareto-builds/


@dataclass
class ParetoRow:
    """One (board, lanes) point. Power and frames/J are estimates (boards/power.py) at fps
    compute-bound (frames back to back, no UART); ``status`` is ok, does not fit, or failed."""

    board: str
    lanes: int
    status: str = OK
    reason: str = ""  #: why it does not fit / failed ("" when ok)
    luts: int | None = None
    ffs: int | None = None
    bram: int | None = None  #: block RAMs used (place and route), or the fit check's count
    dsps: int | None = None
    resource_source: str | None = None  #: "place and route" or "estimate before synthesis"
    fmax_mhz: float | None = None  #: of the build kept (None without place and route)
    clock_mhz: float | None = None  #: the clock fps is computed at (the plan's, or fmax if lower)
    clock_source: str | None = None  #: "osc" or "pll"
    first_fmax_mhz: float | None = None  #: --clock auto: fmax of the oscillator build
    frame_interval_cycles: float | None = None
    interval_source: str | None = None
    fps: float | None = None
    power_static_w: float | None = None
    power_dynamic_w: float | None = None
    power_w: float | None = None
    frames_per_j: float | None = None
    build_seconds: float | None = None  #: wall time of the point (both builds under --clock auto)
    out_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParetoRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# --------------------------------------------------------------------------- the front
def pareto_front(rows: Iterable[ParetoRow], cost: str = "luts", gain: str = "fps") -> list[ParetoRow]:
    """The ok points no other point beats on both ``cost`` (lower is better) and ``gain``
    (higher is better): at least as good on both and strictly better on one. Sorted by cost.

    (:func:`snnfpga.sweep.pareto_front` fixes accuracy as one axis; here accuracy is the same
    at every point, the trade-off is throughput or efficiency against logic.)"""
    pts = [r for r in rows if r.ok and getattr(r, cost) is not None and getattr(r, gain) is not None]

    def dominates(a: ParetoRow, b: ParetoRow) -> bool:
        ca, cb, ga, gb = getattr(a, cost), getattr(b, cost), getattr(a, gain), getattr(b, gain)
        return ca <= cb and ga >= gb and (ca < cb or ga > gb)

    front = [p for p in pts if not any(dominates(q, p) for q in pts if q is not p)]
    return sorted(front, key=lambda r: (getattr(r, cost), -getattr(r, gain), r.lanes))


def fronts(rows: Sequence[ParetoRow]) -> dict[str, dict[str, list[ParetoRow]]]:
    """Per board: the fps-vs-LUT and frames/J-vs-LUT fronts."""
    return {b: {g: pareto_front([r for r in rows if r.board == b], "luts", g) for g in ("fps", "frames_per_j")}
            for b in dict.fromkeys(r.board for r in rows)}


# --------------------------------------------------------------------------- table, JSON, plot
def _f(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


COLUMNS = ("board", "lanes", "status", "LUT", "FF", "BRAM", "DSP", "fmax MHz", "clock MHz", "interval cyc",
           "fps", "static mW", "dynamic mW", "frames/J", "front", "build s")


def format_table(rows: Sequence[ParetoRow]) -> str:
    """A Markdown table, one line per point; ``front`` marks the points on the fps (``F``) and
    frames/J (``E``) fronts; the reasons of points that do not fit or failed follow it."""
    fr = fronts(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        mark = "".join(k for k, g in (("F", "fps"), ("E", "frames_per_j")) if r in fr.get(r.board, {}).get(g, []))
        clock = f"{_f(r.clock_mhz, '.2f')} {r.clock_source}" if r.clock_mhz is not None else "-"
        cells = [r.board, str(r.lanes), r.status, _f(r.luts, "d"), _f(r.ffs, "d"), _f(r.bram, "d"), _f(r.dsps, "d"),
                 _f(r.fmax_mhz, ".2f"), clock, _f(r.frame_interval_cycles, ".0f"), _f(r.fps, ".0f"),
                 _f(r.power_static_w and 1e3 * r.power_static_w, ".2f"),
                 _f(r.power_dynamic_w and 1e3 * r.power_dynamic_w, ".3f"), _f(r.frames_per_j, ".0f"), mark or "",
                 _f(r.build_seconds, ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    bad = [f"- {r.board} lanes={r.lanes}: {r.status}: {r.reason}" for r in rows if not r.ok]
    return "\n".join(lines + ([""] + bad if bad else []))


def write_outputs(rows: Sequence[ParetoRow], out: Path, meta: dict[str, Any], plot: bool = True,
                  name: str = DEFAULT_NAME) -> list[Path]:
    """``<name>.md``, ``<name>.json`` and (with ``plot`` and an ok point) ``<name>.png`` in ``out``
    (``name`` default ``pareto``)."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{name}.md"
    head = [f"# Hardware Pareto benchmark: {meta.get('network', '?')} ({meta.get('ir', '?')})", ""]
    head += [f"- {k}: {v}" for k, v in meta.items() if k not in ("network", "ir")]
    head += ["- power and frames/J: estimates (boards/power.py) at fps compute-bound, no UART traffic",
             "- front: F = on the fps-vs-LUT Pareto front, E = on the frames/J-vs-LUT front (per board)", ""]
    md.write_text("\n".join(head) + "\n" + format_table(rows) + "\n")
    js = out / f"{name}.json"
    js.write_text(json.dumps({"meta": meta, "rows": [r.to_json() for r in rows]}, indent=1, default=str) + "\n")
    written = [md, js]
    if plot and any(r.ok and r.luts is not None for r in rows):
        written.append(plot_fronts(rows, out / f"{name}.png", meta.get("network", "")))
    return written


def plot_fronts(rows: Sequence[ParetoRow], path: Path, title: str = "") -> Path:
    """Per board (a row of two panels): fps vs LUT and frames/J vs LUT; every ok point dotted and
    labelled with its lanes, the Pareto-optimal points circled and joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = list(dict.fromkeys(r.board for r in rows))
    fr = fronts(rows)
    fig, axes = plt.subplots(len(boards), 2, figsize=(10, 3.8 * len(boards)), dpi=110, squeeze=False)
    for i, board in enumerate(boards):
        mine = [r for r in rows if r.board == board and r.ok and r.luts is not None]
        skipped = [r for r in rows if r.board == board and not r.ok]
        for j, (gain, label) in enumerate((("fps", "frames/s (compute-bound)"),
                                           ("frames_per_j", "frames/J (estimate)"))):
            ax = axes[i][j]
            pts = [r for r in mine if getattr(r, gain) is not None]
            ax.scatter([r.luts for r in pts], [getattr(r, gain) for r in pts], s=20, c="tab:blue", alpha=0.7,
                       label="point")
            front = fr[board][gain]
            if front:
                ax.plot([r.luts for r in front], [getattr(r, gain) for r in front], "k-", lw=1, marker="o",
                        mfc="none", ms=10, label="Pareto front")
            for r in pts:
                on = r in front
                ax.annotate(f"L{r.lanes}", (r.luts, getattr(r, gain)), textcoords="offset points", xytext=(5, 4),
                            fontsize=8, fontweight="bold" if on else "normal", color="k" if on else "0.45")
            if skipped:
                ax.text(0.02, 0.02, "does not fit / failed: " + ", ".join(f"L{r.lanes}" for r in skipped),
                        transform=ax.transAxes, fontsize=7, color="tab:red")
            ys = [getattr(r, gain) for r in pts if getattr(r, gain)]
            if ys and min(ys) > 0 and max(ys) > 10 * min(ys):
                ax.set_yscale("log")
            ax.margins(x=0.08, y=0.15)  # room for the lanes labels at the ends
            ax.set_xlabel("LUTs")
            ax.set_ylabel(label)
            ax.set_title(board)
            ax.grid(alpha=0.3)
            if pts:
                ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"lanes sweep: {title}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- points
def _default_ir() -> Path:
    """The digits SC-TTFS network; converted here (``snnfpga run`` without the sweep or the
    hardware steps, about 20 s) when no run left one."""
    for p in DEFAULT_IRS:
        if p.is_file():
            return p
    from snnfpga import flow

    print("no digits SC-TTFS network found: converting one (snnfpga run --dataset digits --no-sweep --no-hardware)")
    rep = flow.run(flow.RunOptions(dataset="digits", out=Path("runs/digits"), sweep=False, hardware=False,
                                   quiet=True), say=lambda s: None)
    return Path(rep.convert.main_ir)


def _activity(paths: Sequence[str] | None) -> dict[int | None, dict[str, Any]]:
    """Simulation reports by the lanes they were simulated at (None: a report without lanes: all)."""
    out: dict[int | None, dict[str, Any]] = {}
    for p in paths or ():
        d = json.loads(Path(p).read_text())
        out[d.get("lanes")] = d
    return out


def failure_reason(e: BaseException) -> str:
    """One line for a failed point: the error's first line and, when its log tail has one, the
    tool's first ``ERROR`` line (e.g. nextpnr's "Unable to place cell ... ICESTORM_DSP")."""
    lines = str(e).splitlines() or [type(e).__name__]
    err = next((ln.strip() for ln in lines[1:] if "ERROR" in ln), None)
    return lines[0].rstrip().rstrip(":") + (f": {err}" if err else "")


def _build(net, board, lanes: int, *, out: Path, hw, sim_report: dict[str, Any] | None, clock: str | float,
           decode: str, single_bank: Sequence[int] = ()):
    """The board build and its performance: :func:`snnfpga.flow.build` (what ``snnfpga run
    --board`` does)."""
    from snnfpga import flow

    opts = flow.RunOptions(lanes=lanes, decode=decode, board=board.name, clock=clock, quiet=True,
                           single_bank=tuple(single_bank))
    return flow.build(opts, net, out, hw, sim_report, say=lambda s: None)


def run_point(net, board_name: str, lanes: int, *, out: Path, hw, sim_report: dict[str, Any] | None,
              clock: str | float = "auto", decode: str = "auto", pnr: bool = True,
              single_bank: Sequence[int] = ()) -> ParetoRow:
    """One point: the fit check, then a build at ``clock`` (:func:`snnfpga.flow.build`) or, with
    ``pnr=False``, the pre-synthesis estimate at the oscillator (as ``snnfpga sweep`` without
    ``build``); ``single_bank``: layers with one bank of partial sums (as ``snnfpga build
    --single-bank``); never raises for the point's own failure (the row says it)."""
    from snnfpga.boards.fit import check_fit
    from snnfpga.boards.registry import BoardError, DoesNotFitBoard, get_board, resource_used
    from snnfpga.errors import UserError

    t0 = time.monotonic()
    row = ParetoRow(board=board_name, lanes=lanes)
    board = get_board(board_name)
    try:
        fit = check_fit(net, board, lanes=lanes, decode=decode, single_bank=tuple(single_bank))
    except DoesNotFitBoard as e:
        row.status, row.reason = NO_FIT, str(e)
        return row
    row.bram = fit["bram_blocks"]
    try:
        if pnr:
            b = _build(net, board, lanes, out=out, hw=hw, sim_report=sim_report, clock=clock, decode=decode,
                       single_bank=single_bank)
            perf, resources, result = b.performance, b.resources, b.build
            row.resource_source = "place and route"
            row.fmax_mhz, row.clock_source = b.fmax_mhz, b.clock.get("source")
            row.first_fmax_mhz = (result.get("clock_first_build") or {}).get("fmax_mhz")
            row.out_dir, row.notes = result.get("out_dir"), list(result.get("notes", []))
            row.bram = resource_used(resources, "BRAM")
        else:
            from snnfpga.boards.performance import performance
            from snnfpga.sweep import _estimated_resources

            resources = _estimated_resources(net, board, lanes, decode, tuple(single_bank))
            row.resource_source = "estimate before synthesis" if resources else None
            est = {"board": board.name, "clock_mhz": board.clock_hz / 1e6, "fmax_mhz": None,
                   "resources": resources, "power_device": board.power_device, "decode": decode}
            perf = performance(net, est, lanes=lanes, sim_report=sim_report, frames=hw.frames, ref=hw.ref)
            row.clock_source = "osc"
    except BoardError as e:  # the toolchain failed on this point: the sweep goes on
        row.status, row.reason = FAILED, failure_reason(e)
        row.build_seconds = time.monotonic() - t0
        return row
    except UserError as e:
        row.status, row.reason = FAILED, f"{type(e).__name__}: {e}"
        row.build_seconds = time.monotonic() - t0
        return row
    row.luts, row.ffs, row.dsps = (resource_used(resources, k) for k in ("LUT", "FF", "DSP"))
    row.clock_mhz, row.frame_interval_cycles = perf.clock_mhz, perf.frame_interval_cycles
    row.interval_source, row.fps = perf.interval_source, perf.fps
    if perf.power:
        p = perf.power
        row.power_w, row.power_static_w, row.frames_per_j = p["total_w"], p["static_w"], p["fps_per_w"]
        row.power_dynamic_w = p.get("dynamic_w", p["total_w"] - p["static_w"])
    row.build_seconds = time.monotonic() - t0
    return row


def parser() -> argparse.ArgumentParser:
    """The command line (``--single-bank`` is the generator's option, shared with ``snnfpga build``)."""
    from snnfpga.rtl_gen.cli import add_single_bank_option

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ir", type=Path, default=None, help="the network (default: the digits SC-TTFS network)")
    ap.add_argument("--lanes", type=int, nargs="+", default=list(DEFAULT_LANES))
    ap.add_argument("--boards", nargs="+", default=list(DEFAULT_BOARDS))
    ap.add_argument("--clock", default="auto", help="auto (default), osc or MHz: as snnfpga build --clock")
    ap.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto")
    add_single_bank_option(ap)
    ap.add_argument("--activity", nargs="+", default=None,
                    help="simulation report JSONs (snnfpga simulate --json) for the measured frame interval, "
                         "each used for the lanes it was simulated at; else the estimate's interval")
    ap.add_argument("--images", type=int, default=None, help="test images for the activity (default 200)")
    ap.add_argument("--no-pnr", action="store_true",
                    help="no synthesis: LUT/FF/DSP from the pre-synthesis estimate, at the oscillator")
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    ap.add_argument("--name", type=_name, default=DEFAULT_NAME,
                    help=f"output stem: <out>/<name>.{{md,json,png}} and <out>/<name>-builds/ "
                         f"(default {DEFAULT_NAME}; e.g. pareto-icebreaker for a second sweep)")
    return ap


def _name(s: str) -> str:
    """An output stem: a plain file name, no folder and no suffix of ours."""
    if not s or s in (".", "..") or "/" in s or "\\" in s or s.endswith((".md", ".json", ".png")):
        raise argparse.ArgumentTypeError(f"must be a plain file stem such as pareto-icebreaker, not {s!r}")
    return s


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)

    from tqdm.auto import tqdm

    from snnfpga import flow
    from snnfpga.boards.clock import parse_clock
    from snnfpga.boards.registry import get_board
    from snnfpga.convert.data import load_dataset
    from snnfpga.errors import UserError
    from snnfpga.ir import load

    try:
        clock = parse_clock(args.clock)
        boards = [get_board(b).name for b in args.boards]
    except UserError as e:
        ap.error(str(e))
    if any(n < 1 for n in args.lanes):
        ap.error(f"--lanes must be >= 1, not {args.lanes}")
    ir = args.ir or _default_ir()
    net = load(ir)
    from snnfpga.rtl_gen.top import check_single_bank

    try:
        single_bank = check_single_bank(net, args.single_bank)
    except UserError as e:
        ap.error(str(e))
    data = load_dataset(net.provenance.get("dataset", "digits"))
    n = min(args.images or flow.BOARD_ACTIVITY_FRAMES, len(data.test_y))
    hw = flow.hardware_frames(net, data, n)  # the integer reference, once for every point
    sims = _activity(args.activity)
    meta = {"network": net.name, "ir": str(ir), "coding": net.coding, "timesteps": net.timesteps,
            "dataset": data.name, "activity_frames": n, "clock": str(clock), "decode": args.decode,
            "single_bank": list(single_bank),
            "place_and_route": not args.no_pnr,
            "activity": ", ".join(args.activity) if args.activity else "estimate (busiest layer, lower bound)"}
    rows: list[ParetoRow] = []
    points = [(b, lanes) for b in boards for lanes in args.lanes]
    t_all = time.monotonic()
    bar = tqdm(points, desc="pareto", unit="point")
    for board, lanes in bar:
        bar.set_postfix_str(f"{board} L{lanes}")
        sim = sims.get(lanes, sims.get(None))
        row = run_point(net, board, lanes, out=args.out / f"{args.name}-builds" / f"{board}-L{lanes}", hw=hw,
                        sim_report=sim, clock=clock, decode=args.decode, pnr=not args.no_pnr,
                        single_bank=single_bank)
        rows.append(row)
        tqdm.write(f"{board} L{lanes}: {row.status}" + (f" ({row.reason[:120]})" if row.reason else
                   f", {row.luts} LUT, fmax {row.fmax_mhz} MHz, clock {row.clock_mhz} ({row.clock_source}), "
                   f"{_f(row.fps, '.0f')} fps, {_f(row.frames_per_j, '.0f')} frames/J, "
                   f"{_f(row.build_seconds, '.0f')} s"))
        write_outputs(rows, args.out, meta, plot=False, name=args.name)  # partial results survive an interrupted run
    meta["wall_seconds"] = round(time.monotonic() - t_all, 1)
    files = write_outputs(rows, args.out, meta, name=args.name)
    print(format_table(rows))
    print("wrote " + ", ".join(str(p) for p in files))
    return 0 if any(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
