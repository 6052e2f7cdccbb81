"""Board builds of real networks: build time, fmax, utilization, fps and frames/W per board.

Builds each IR for each board with the open toolchain (yowasp; Vivado boards: files only) and
prints one line per (network, board), or the fit error when a network cannot fit. Not part
of the test suite (MNIST-size builds take minutes).

    .venv/bin/python benchmarks/bench_boards.py [IR ...] [--boards ulx3s-85f icebreaker] [--lanes 1]
        [--out build/bench] [--json bench_boards.json]

Default IRs: runs/digits/sc-ttfs and runs/mnist10k/sc-ttfs (whichever exist).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from snnfpga import reference
from snnfpga.boards.build import build
from snnfpga.boards.performance import dataset_frames, performance
from snnfpga.boards.registry import BoardError, get_board
from snnfpga.ir import load

ROOT = Path(__file__).resolve().parents[1]



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("irs", nargs="*")
    ap.add_argument("--boards", nargs="+", default=["ulx3s-85f", "icebreaker"])
    ap.add_argument("--lanes", type=int, default=1)
    ap.add_argument("--images", type=int, default=100, help="test images for the activity estimate")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args(argv)
    irs = args.irs or [str(p) for p in (ROOT / "runs/digits/sc-ttfs.snn.json",
                                         ROOT / "runs/mnist10k/sc-ttfs.snn.json") if p.is_file()]
    rows = []
    for ir in irs:
        net = load(ir)
        try:
            got = dataset_frames(net, args.images)
        except Exception:
            got = None
        frames = got[0] if got else None
        ref = reference.simulate(net, frames) if frames is not None and len(frames) else None  # once per IR
        for name in args.boards:
            board = get_board(name)
            t0 = time.monotonic()
            try:
                r = build(net, board, Path(args.out) / f"{Path(ir).parent.name}-{net.name}-{name}", lanes=args.lanes)
            except BoardError as e:
                print(f"{Path(ir).parent.name}/{net.name:12s} {name:11s} does not fit / failed: {str(e).splitlines()[0]}")
                rows.append({"ir": ir, "board": name, "error": str(e)})
                continue
            r["power_device"] = board.power_device
            perf = performance(net, r, lanes=args.lanes, frames=frames, ref=ref)
            wall = time.monotonic() - t0
            res = r["resources"] or {}
            util = " ".join(f"{k} {v['used']}/{v['available']} ({v['percent']:.1f}%)" for k, v in res.items())
            p = perf.power
            print(f"{Path(ir).parent.name}/{net.name:12s} {name:11s} build {wall:6.1f} s  fmax {r['fmax_mhz']} MHz  {util}  "
                  f"interval {perf.frame_interval_cycles} cyc (lower bound)  fps {perf.fps:.0f}  "
                  + (f"P {1e3 * p['total_w']:.2f} mW  {p['fps_per_w']:.0f} frames/W" if p else ""))
            rows.append({"ir": ir, "board": name, "build_wall_s": wall, **{k: r[k] for k in
                         ("fmax_mhz", "resources", "memory_estimate", "bitstream", "notes")},
                         "performance": {k: getattr(perf, k) for k in ("fps", "fps_uart", "frame_interval_cycles",
                                                                       "power", "power_uart")}})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
