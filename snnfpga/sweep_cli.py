"""``snnfpga sweep``: the command line of :mod:`snnfpga.sweep` (argument parsing only).

Parameters come from the options, from a TOML (or, with PyYAML, YAML) file given with
``--config``, or both (an option overrides the file). Every value is checked before Ray starts
or anything is written; ``--resume runs/<name>`` takes the sweep's own ``sweep.json``.
"""

from __future__ import annotations

import argparse

from . import cli_types as types

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="design-space sweep on Ray Tune: accuracy, resources, fps, frames/J per point; Pareto fronts",
        description="Train the ANN once, then run every combination of the swept parameters as a Ray Tune "
                    "trial: convert, integer accuracy on the test split, block RAM fit, fps and power "
                    "(estimates; --build: place and route), with --simulate N the RTL bit-exact check. "
                    "Results: runs/<name>/sweep.csv, sweep.jsonl, pareto.png (docs/sweep.md).")
    p.add_argument("--config", metavar="FILE", help="parameters from a TOML (or YAML) file; options override it")
    p.add_argument("--name", default=argparse.SUPPRESS, help="sweep folder under --runs (default: sweep)")
    p.add_argument("--runs", default="runs", help="where sweep folders go (default: runs)")
    p.add_argument("--resume", metavar="DIR", help="resume the sweep in DIR (runs/<name>): only unfinished points run")
    p.add_argument("--address", default=None,
                   help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: start Ray on this machine)")
    p.add_argument("--workers", type=types.count, default=None,
                   help="CPUs of the local Ray (default: every core; ignored with --address)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("swept parameters (one or more values each)")
    g.add_argument("--coding", nargs="+", default=argparse.SUPPRESS, metavar="CODING",
                   help="sc-ttfs, ttfs, rate (default: sc-ttfs)")
    g.add_argument("--timesteps", "-T", nargs="+", default=argparse.SUPPRESS, metavar="T",
                   help="time windows (default: each coding's default, 4 or 32)")
    g.add_argument("--weight-bits", nargs="+", default=argparse.SUPPRESS, metavar="BITS", help="(default: 8)")
    g.add_argument("--act-bits", nargs="+", default=argparse.SUPPRESS, metavar="BITS",
                   help="decoded spike value widths (default: 8)")
    g.add_argument("--input-coding", nargs="+", default=argparse.SUPPRESS, metavar="CODING",
                   help="direct, spikes (default: direct)")
    g.add_argument("--pow2", nargs="+", default=argparse.SUPPRESS, metavar="YES/NO",
                   help="power-of-two threshold series, (sc-)ttfs only (default: no)")
    g.add_argument("--lanes", nargs="+", default=argparse.SUPPRESS, metavar="N", help="(default: 4)")
    g.add_argument("--board", nargs="+", default=argparse.SUPPRESS, metavar="BOARD",
                   help="(default: icebreaker ulx3s-85f)")
    s = p.add_argument_group("shared by every point")
    for opt, kw in (("--dataset", {}), ("--data-root", {}), ("--model", {}),
                    ("--hidden", {"nargs": "+"}), ("--epochs", {}), ("--finetune-epochs", {}),
                    ("--input-bits", {}), ("--seed", {}), ("--decode", {}), ("--simulator", {})):
        s.add_argument(opt, default=argparse.SUPPRESS, help="as for 'snnfpga run' (same default)", **kw)
    s.add_argument("--cpus-per-point", default=argparse.SUPPRESS, help="CPUs each point asks Ray for (default 1)")
    s.add_argument("--max-failures", default=argparse.SUPPRESS,
                   help="retries of a point whose worker died (default 2)")
    s.add_argument("--simulate", metavar="N", default=argparse.SUPPRESS,
                   help="RTL bit-exact check and cycles on N test images per point")
    s.add_argument("--build", action="store_const", const=True, default=argparse.SUPPRESS,
                   help="a real place and route per point (LUTs, fmax); default: estimates before synthesis")
    p.set_defaults(func=cmd_sweep)


_NOT_VALUES = {"command", "func", "config", "runs", "resume", "address", "workers", "quiet"}


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import sweep
    from .errors import BadOption

    values = {k: v for k, v in vars(args).items() if k not in _NOT_VALUES}
    if args.resume:
        if values or args.config:
            raise BadOption(f"--resume takes the parameters of {args.resume}/sweep.json; drop "
                            f"{', '.join('--' + k.replace('_', '-') for k in values) or '--config'}")
        res = sweep.run_sweep(resume=args.resume, address=args.address, workers=args.workers,
                              progress=not args.quiet)
    else:
        base: dict = {}
        if args.config:
            base = sweep.load_config(args.config)
            sweep.SweepSpec.from_mapping(base, args.config)  # the file's own errors name the file
        spec = sweep.SweepSpec.from_mapping({**{k.replace("-", "_"): v for k, v in base.items()}, **values},
                                            "command line" if not args.config else f"{args.config} + command line")
        if spec.simulate or spec.build:
            from .cli import require_extra

            require_extra("sweep --simulate/--build", ("amaranth", "cocotb", "cocotb_tools") if spec.simulate
                          else ("amaranth", "amaranth_boards"))
        res = sweep.run_sweep(spec, runs=args.runs, address=args.address, workers=args.workers,
                              progress=not args.quiet)
    if res.unfinished:
        raise sweep.SweepFailed(f"{len(res.unfinished)} points did not finish (interrupted, or their workers kept failing); "
                                f"resume with: snnfpga sweep --resume {res.root}")
    return 0
