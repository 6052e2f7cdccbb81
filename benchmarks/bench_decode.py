"""Decode scaling: the memory and multiplier cost of ``decode="slots"`` against ``"arrival"``.

For each IR × lanes × decode choice, from the generator's own description (``rtl_gen.describe``)
and the block RAM estimate (``boards.fit.check_fit``): RAM bits (partial sums, rate membranes,
spike-input frames: written by the design), ROM bits (weights and biases), multipliers, and the
block RAMs per board (``blocks`` in the usual shapes / at least ``min``; ``no fit`` where even
the lower bound exceeds the device). With ``--build BOARD`` the first ``--build-irs`` IRs are
also placed and routed (yowasp) for each choice: LUT, FF, block RAM, DSP and fmax.

    .venv/bin/python benchmarks/bench_decode.py [IR ...] [--lanes 1 4] [--build icebreaker]
        [--build-irs 1] [--build-lanes 1] [--out build/bench-decode] [--json bench_decode.json]

Default IRs: runs/digits-cnn-ice/sc-ttfs, runs/mnist10k-cnn/sc-ttfs and runs/mnist10k-cnn/ttfs
(whichever exist). Builds take minutes each; the table alone takes seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from snnfpga.boards.fit import check_fit
from snnfpga.boards.registry import BoardError, get_board, list_boards
from snnfpga.ir import Network, load
from snnfpga.rtl_gen import describe

ROOT = Path(__file__).resolve().parents[1]
DECODES = ("slots", "arrival")
DEFAULT_IRS = ("runs/digits-cnn-ice/sc-ttfs.snn.json", "runs/mnist10k-cnn/sc-ttfs.snn.json",
               "runs/mnist10k-cnn/ttfs.snn.json")


def cost(net: Network, lanes: int, decode: str, boards: list[str]) -> dict[str, Any]:
    """Memory bits, multipliers and per-board block RAMs of ``net``'s top built with ``decode``."""
    d = describe(net, lanes=lanes, decode=decode)
    row: dict[str, Any] = {
        "decode": decode, "lanes": lanes,
        "slots": [layer.slots for layer in d.layers],
        "psum_bits": sum(m.bits for m in d.memories if m.role == "partial_sums"),
        "ram_bits": sum(m.bits for m in d.memories if not m.initialised),
        "rom_bits": sum(m.bits for m in d.memories if m.initialised),
        "multipliers": d.multipliers, "blocks": {},
    }
    for name in boards:
        try:
            fit = check_fit(net, get_board(name), lanes=lanes, decode=decode)
            row["blocks"][name] = (fit["bram_blocks"], fit["bram_blocks_min"], fit["bram_available"])
        except BoardError:
            row["blocks"][name] = None
    return row


def _blocks(b) -> str:
    return "no fit" if b is None else f"{b[0]} (min {b[1]}) / {b[2]}"


def board_build(net: Network, ir: str, board: str, lanes: int, decode: str, out: Path) -> dict[str, Any]:
    """Place and route the UART top with ``decode``: resources and fmax (or the error)."""
    from snnfpga.boards.build import build

    t0 = time.monotonic()
    try:
        r = build(net, get_board(board), out / f"{Path(ir).parent.name}-{net.name}-{board}-l{lanes}-{decode}",
                  lanes=lanes, decode=decode)
    except BoardError as e:
        return {"error": str(e).splitlines()[0]}
    res = r["resources"] or {}
    return {"fmax_mhz": r["fmax_mhz"], "resources": {k: v["used"] for k, v in res.items()},
            "available": {k: v["available"] for k, v in res.items()}, "seconds": round(time.monotonic() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("irs", nargs="*")
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--boards", nargs="+", default=list_boards(), help="boards for the block RAM estimate")
    ap.add_argument("--build", default=None, help="also place and route on this board (e.g. icebreaker)")
    ap.add_argument("--build-irs", type=int, default=1, help="how many of the IRs to build (default: the first)")
    ap.add_argument("--build-lanes", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench-decode"))
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args(argv)
    irs = args.irs or [str(ROOT / p) for p in DEFAULT_IRS if (ROOT / p).is_file()]
    rows: list[dict[str, Any]] = []
    head = (f"{'network':28} {'lanes':>5} {'decode':8} {'slots':>10} {'RAM bits':>10} {'(psums)':>10} "
            f"{'ROM bits':>9} {'mult':>4}  " + "  ".join(f"{b + ' blocks':>20}" for b in args.boards))
    print(head)
    print("-" * len(head))
    nets = {}
    for ir in irs:
        net = nets[ir] = load(ir)
        label = f"{Path(ir).parent.name}/{net.coding} T={net.timesteps}"
        for lanes in args.lanes:
            for decode in DECODES:
                r = cost(net, lanes, decode, args.boards)
                slots = ",".join(str(s) for s in r["slots"])
                print(f"{label:28} {lanes:>5} {decode:8} {slots:>10} {r['ram_bits']:>10,} {r['psum_bits']:>10,} "
                      f"{r['rom_bits']:>9,} {r['multipliers']:>4}  "
                      + "  ".join(f"{_blocks(r['blocks'][b]):>20}" for b in args.boards))
                rows.append({"ir": ir, **r})
    if args.build:
        print(f"\nplace and route on {args.build}, lanes={args.build_lanes} (yowasp):")
        for ir in irs[:args.build_irs]:
            net = nets[ir]
            for decode in DECODES:
                b = board_build(net, ir, args.build, args.build_lanes, decode, Path(args.out))
                label = f"{Path(ir).parent.name}/{net.coding}"
                if "error" in b:
                    print(f"{label:28} {decode:8} {b['error']}")
                else:
                    used = "  ".join(f"{k} {v}/{b['available'][k]}" for k, v in b["resources"].items())
                    print(f"{label:28} {decode:8} {used}  fmax {b['fmax_mhz']} MHz  ({b['seconds']} s)")
                rows.append({"ir": ir, "decode": decode, "board": args.build, "lanes": args.build_lanes,
                             "build": b})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
