"""``snnfpga estimate MODEL --board NAME``: resources, cycles, fps and power before synthesis.

Argument parsing and printing only; the numbers come from :func:`snnfpga.boards.estimate.estimate`.
"""

from __future__ import annotations

import argparse

from snnfpga import cli_types as types
from snnfpga.rtl_gen.cli import add_single_bank_option

__all__ = ["add_parser"]


def _clock(text: str) -> str | float:
    from .clock import parse_clock

    try:
        value = parse_clock(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if value == "auto":
        raise argparse.ArgumentTypeError("auto needs a build's fmax: use osc or a frequency in MHz here")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate", help="estimate LUT/FF/block RAM/DSP, cycles, fps and power without synthesis (< 1 s)",
        description="Estimate what `snnfpga build` would report, from the generator's hardware description "
                    "and a per-family LUT/FF calibration fitted on real builds (benchmarks/bench_estimate.py). "
                    "Block RAM and DSP are counted exactly; the frame interval is the event lower bound.")
    p.add_argument("model", help="the IR file (<name>.snn.json / .snn.npz)")
    p.add_argument("--board", required=True, help="target board (see snnfpga build --list-boards)")
    p.add_argument("--lanes", type=types.lanes, default=1, help="weights read per cycle per layer (default 1)")
    p.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                   help="where (SC-)TTFS layers apply the decode LUT (as snnfpga build; default auto)")
    add_single_bank_option(p)
    p.add_argument("--clock", type=_clock, default="osc",
                   help="osc (the board oscillator, default) or a PLL frequency in MHz (the setting at or below it)")
    p.add_argument("--frames", help="integer frames (.npy) for the reference's event counts; without them "
                                    "every neuron is assumed to fire once per frame")
    p.add_argument("--json", help="also write the estimate to this JSON file")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from snnfpga.ir import load

    from .estimate import estimate

    net = load(args.model)
    frames = np.load(args.frames, allow_pickle=False) if args.frames else None
    if frames is not None:
        frames = frames.reshape(len(frames), -1)
    e = estimate(net, args.board, lanes=args.lanes, decode=args.decode, frames=frames, single_bank=args.single_bank,
                 clock_mhz=None if args.clock == "osc" else float(args.clock))
    cap = e.capacity

    def line(kind: str, used) -> str:
        if used is None:
            return f"  {kind:5s} {'n/a':>7s}"
        return f"  {kind:5s} {used:7d} / {cap[kind]:<6d} ({100 * used / cap[kind]:.1f} %)" if cap[kind] else \
            f"  {kind:5s} {used:7d}"

    print(f"{net.name}: {net.coding} T={net.timesteps}, lanes={e.lanes}, decode={e.decode} on {e.board} "
          f"({e.device}) -- estimate, no synthesis ({e.seconds:.2f} s)")
    for kind, used in (("LUT", e.luts), ("FF", e.ffs), ("BRAM", e.bram), ("DSP", e.dsp)):
        print(line(kind, used))
    print(f"cycles per frame {e.cycles_per_frame} (one frame alone), frame interval {e.frame_interval_cycles} "
          f"cycles ({e.interval_source})")
    p = e.power
    print(f"fps {e.fps:.0f} at {e.clock_mhz:.3f} MHz ({e.clock_source})")
    print(f"power (estimate) {1e3 * p['total_w']:.3f} mW = static {1e3 * p['static_w']:.3f} + dynamic "
          f"{1e3 * p['dynamic_w']:.3f} mW -> {p['fps_per_w']:.0f} frames/J (static alone "
          f"{p['fps_per_w_static']:.0f}, dynamic alone {p['fps_per_w_dynamic']:.0f}); dynamic "
          f"{p['dynamic_energy_per_frame_nj']:.1f} nJ/frame, dominated by {p['dominant']['dynamic_energy_per_frame_nj']}")
    print(f"calibration: {e.calibration}")
    for note in e.notes:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(e.to_json(), indent=1, default=str) + "\n")
    return 0
