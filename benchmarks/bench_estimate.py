"""Estimate before synthesis against real builds: ``snnfpga estimate`` vs yosys/nextpnr.

Builds each network of :data:`NETWORKS` (tiny random digits-sized nets from
``snnfpga.testing``) for each board with the open toolchain (``boards.build.build``, one at a
time, under ``nice -n 10`` when run as below), caches each build's result as JSON under
``runs/bench/estimate/<net>-<board>.json`` (a re-run reads the cache; ``--rebuild`` ignores
it), then prints one row per (network, board): estimated and built LUT, FF, block RAM and DSP
and the errors. Block RAM and DSP must be exact, LUT and FF within 15 %.

The LUT/FF calibration (``boards/estimate_calibration.py``) is fitted on the :data:`FIT`
networks only (``--fit`` rewrites it from the cached builds); the other networks check it.

    nice -n 10 .venv/bin/python benchmarks/bench_estimate.py              # build what is missing, print
    nice -n 10 .venv/bin/python benchmarks/bench_estimate.py --fit        # refit the calibration, print
    .venv/bin/python benchmarks/bench_estimate.py --cached-only           # no builds: print what is cached
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "bench" / "estimate"
BUILD_DIR = ROOT / "build" / "bench-estimate"
BOARDS = ("ulx3s-85f", "icebreaker")

#: name -> (random_network keyword arguments, lanes, decode); digits-sized (64 inputs, 10
#: classes), all fit the iCE40 UP5K (30 EBR, 8 DSP)
NETWORKS: dict[str, tuple[dict, int, str]] = {
    "n1": (dict(coding="sc-ttfs", sizes=(64, 32, 10)), 1, "auto"),
    "n2": (dict(coding="sc-ttfs", sizes=(64, 32, 10)), 2, "auto"),
    "n3": (dict(coding="sc-ttfs", sizes=(64, 48, 10), input_coding="spikes"), 4, "auto"),
    "n4": (dict(coding="ttfs", sizes=(64, 32, 10)), 1, "auto"),
    "n5": (dict(coding="rate", sizes=(64, 32, 10), timesteps=8), 1, "auto"),
    "n6": (dict(coding="rate", sizes=(64, 24, 10), timesteps=8, input_coding="spikes"), 2, "auto"),
    "n7": (dict(coding="sc-ttfs", sizes=(64, 32, 16, 10)), 2, "auto"),
    "n8": (dict(coding="ttfs", sizes=(64, 40, 10), weight_bits=4, input_coding="spikes"), 4, "auto"),
    "n9": (dict(coding="sc-ttfs", sizes=(64, 64, 10)), 1, "slots"),
    "n10": (dict(coding="sc-ttfs", sizes=(64, 24, 10), input_coding="spikes"), 4, "auto"),
}
#: the calibration is fitted on these; the others only check it
FIT = ("n1", "n3", "n5", "n8")


def network(name: str):
    """The IR of network ``name`` (seeded by its number) and its lanes and decode option."""
    from snnfpga.testing import random_network

    kw, lanes, decode = NETWORKS[name]
    return random_network(seed=int(name[1:]), name=name, **kw), lanes, decode


def cached_build(name: str, board: str, *, rebuild: bool = False, cached_only: bool = False) -> dict | None:
    """The build result of ``name`` on ``board``, from the cache or built now (and cached)."""
    from snnfpga.boards.build import build

    path = CACHE / f"{name}-{board}.json"
    if path.is_file() and not rebuild:
        return json.loads(path.read_text())
    if cached_only:
        return None
    net, lanes, decode = network(name)
    t0 = time.monotonic()
    r = build(net, board, BUILD_DIR / f"{name}-{board}", lanes=lanes, decode=decode)
    keep = {k: r[k] for k in ("board", "network", "lanes", "decode", "clock_mhz", "fmax_mhz", "resources",
                              "build_seconds", "notes")}
    keep["spec"] = {"kwargs": NETWORKS[name][0], "seed": int(name[1:])}
    keep["wall_seconds"] = round(time.monotonic() - t0, 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keep, indent=1) + "\n")
    return keep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--boards", nargs="+", default=list(BOARDS), choices=list(BOARDS))
    ap.add_argument("--rebuild", action="store_true", help="ignore the cache")
    ap.add_argument("--cached-only", action="store_true", help="build nothing; use what is cached")
    ap.add_argument("--build-only", action="store_true", help="build (and cache) only, print no table")
    ap.add_argument("--fit", action="store_true",
                    help=f"refit boards/estimate_calibration.py on the cached builds of {', '.join(FIT)}")
    ap.add_argument("--json", help="also write the table to this file")
    args = ap.parse_args(argv)

    builds: dict[tuple[str, str], dict] = {}
    for name in args.networks:
        for board in args.boards:
            r = cached_build(name, board, rebuild=args.rebuild, cached_only=args.cached_only)
            if r is not None:
                builds[(name, board)] = r
                print(f"built {name} on {board}: fmax {r['fmax_mhz']} MHz, {r['build_seconds']} s", file=sys.stderr)
    if args.build_only:
        return 0

    from snnfpga.boards import estimate as est

    if args.fit:
        samples = []
        for (name, board), r in builds.items():
            if name in FIT:
                net, lanes, decode = network(name)
                samples.append(est.Sample(net=net, board=board, lanes=lanes, decode=decode,
                                          luts=r["resources"]["LUT"]["used"], ffs=r["resources"]["FF"]["used"]))
        table = est.fit_calibration(samples, fitted_on=[f"{n}-{b}" for (n, b) in builds if n in FIT])
        path = est.write_calibration(table)
        print(f"calibration written to {path}", file=sys.stderr)

    rows = []
    header = (f"{'net':4s} {'set':5s} {'board':10s} {'LUT est':>7s} {'built':>6s} {'err':>6s}  {'FF est':>6s} "
              f"{'built':>6s} {'err':>6s}  {'BRAM':>4s} {'built':>5s}  {'DSP':>3s} {'built':>5s}  {'fmax':>6s}  ok")
    print(header)
    for (name, board), r in builds.items():
        net, lanes, decode = network(name)
        e = est.estimate(net, board, lanes=lanes, decode=decode, frames=None)
        res = r["resources"]
        got = {k: res[k]["used"] for k in ("LUT", "FF", "BRAM", "DSP")}
        lut_err = (e.luts - got["LUT"]) / got["LUT"]
        ff_err = (e.ffs - got["FF"]) / got["FF"]
        ok = (abs(lut_err) <= 0.15 and abs(ff_err) <= 0.15 and e.bram == got["BRAM"] and e.dsp == got["DSP"])
        role = "fit" if name in FIT else "check"
        print(f"{name:4s} {role:5s} {board:10s} {e.luts:7d} {got['LUT']:6d} {100 * lut_err:+5.1f}%  {e.ffs:6d} "
              f"{got['FF']:6d} {100 * ff_err:+5.1f}%  {e.bram:4d} {got['BRAM']:5d}  {e.dsp:3d} {got['DSP']:5d}  "
              f"{r['fmax_mhz']:6.1f}  {'yes' if ok else 'NO'}")
        rows.append({"network": name, "set": role, "board": board, "estimate": e.to_json(), "built": got,
                     "fmax_mhz": r["fmax_mhz"], "lut_error": lut_err, "ff_error": ff_err, "ok": ok})
    checks = [row for row in rows if row["set"] == "check"]
    for label, sel in (("all", rows), ("check only", checks)):
        if sel:
            worst_lut = max(abs(row["lut_error"]) for row in sel)
            worst_ff = max(abs(row["ff_error"]) for row in sel)
            exact = sum(row["estimate"]["bram"] == row["built"]["BRAM"] and row["estimate"]["dsp"] == row["built"]["DSP"]
                        for row in sel)
            print(f"{label}: {len(sel)} builds, worst |LUT error| {100 * worst_lut:.1f} %, worst |FF error| "
                  f"{100 * worst_ff:.1f} %, BRAM and DSP exact in {exact}/{len(sel)}, "
                  f"all within bounds: {sum(row['ok'] for row in sel)}/{len(sel)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
