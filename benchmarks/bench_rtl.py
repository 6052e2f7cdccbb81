"""RTL acceptance runs: bit-exactness on real test images, cycles per frame, simulation speed.

For each IR × simulator × lanes: simulate the generated Verilog with cocotb on the first N test
images of the IR's data set, compare every spike event and output membrane with the integer
reference, and print mismatching images, RTL vs integer accuracy, cycles per frame (latency),
the frame interval (frames back to back), the event lower bound ceil(synaptic events / lanes)
with the ratios, and images per second (baseline: the integer reference in the same process,
whose result the comparison reuses).

    .venv/bin/python benchmarks/bench_rtl.py runs/digits/sc-ttfs.snn.json --simulators verilator icarus
    .venv/bin/python benchmarks/bench_rtl.py runs/mnist10k/sc-ttfs.snn.json --images 2000 --lanes 1 4 16
    .venv/bin/python benchmarks/bench_rtl.py runs/mnist10k-cnn/sc-ttfs.snn.json --images 50 --lanes 16 --decode slots
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from snnfpga import sim
from snnfpga import reference
from snnfpga.convert.data import load_dataset
from snnfpga.ir.frames import quantize_frames
from snnfpga.ir import load

ROOT = Path(__file__).resolve().parents[1]



HEADER = ["network", "sim", "lanes", "images", "mism.", "RTL acc", "int acc", "cyc/frame", "interval", "bound",
          "lat/bnd", "int/bnd", "img/s", "kcyc/s", "ref img/s"]
WIDTHS = [28, 9, 5, 6, 5, 8, 8, 9, 8, 7, 7, 7, 7, 7, 9]


def _write_table_and_plot(out: Path, lines: list[list], rows: list[dict]) -> None:
    """``rtl.md`` (the printed table) and ``rtl.png``: images/s of each simulator per lanes and network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    md = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    md += ["| " + " | ".join(map(str, c)) + " |" for c in lines]
    (out / "rtl.md").write_text("# RTL simulation: bit-exactness, cycles, simulation speed\n\n" + "\n".join(md) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = sorted({(Path(r["ir"]).stem, r["lanes"]) for r in rows})
    for k, simulator in enumerate(sorted({r["simulator"] for r in rows})):
        ips = {(Path(r["ir"]).stem, r["lanes"]): r["images_per_second"] for r in rows if r["simulator"] == simulator}
        ax.bar([i + 0.4 * k for i in range(len(labels))], [ips.get(lb, 0) for lb in labels], 0.4, label=simulator)
    ax.set_xticks([i + 0.2 for i in range(len(labels))], [f"{n}\nL{lanes}" for n, lanes in labels], fontsize=7)
    ax.set_ylabel("images/s (bit-exact, start-up included)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rtl.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'rtl.md'}, {out / 'rtl.png'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("irs", nargs="+")
    ap.add_argument("--simulators", nargs="+", default=["verilator"], choices=["verilator", "icarus"])
    ap.add_argument("--lanes", type=int, nargs="+", default=[4])
    ap.add_argument("--images", type=int, default=None, help="N test images from --start (default: all)")
    ap.add_argument("--start", type=int, default=0,
                    help="skip the first START test images (run a long acceptance run in chunks)")
    ap.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                    help="where (SC-)TTFS layers apply the decode LUT (the generator's option; auto: arrival)")
    ap.add_argument("--json", help="write every report to this file")
    ap.add_argument("--out", type=Path, help="also write rtl.md (the table) and rtl.png (images/s per simulator "
                                             "and lanes) into this directory (make bench: runs/bench)")
    ap.add_argument("--opt", help="C++ optimisation of the whole Verilator model, e.g. -O3 or -Os (default: -O2 "
                                  "for the per-cycle code and the run-time library, sim.runner.DEFAULT_OPT)")
    args = ap.parse_args(argv)
    if args.opt:
        os.environ["SNNFPGA_VERILATOR_OPT"] = args.opt
    rows, failures, lines = [], 0, []
    print(" ".join(f"{c:>{w}}" if i else f"{c:28}" for i, (c, w) in enumerate(zip(HEADER, WIDTHS))))
    for path in args.irs:
        net = load(path)
        data = load_dataset(net.provenance.get("dataset", "digits"))
        lo = min(max(args.start, 0), len(data.test_y))
        n = min(args.images or len(data.test_y), len(data.test_y) - lo)
        frames = quantize_frames(net, data.test_x[lo:lo + n])
        labels = data.test_y[lo:lo + n]
        t0 = time.perf_counter()
        ref = reference.simulate(net, frames)
        ref_ips = n / (time.perf_counter() - t0)
        int_acc = float((ref.classes == labels).mean())
        label = f"{Path(path).parent.name}/{net.coding} T={net.timesteps}"
        for simulator in args.simulators:
            for lanes in args.lanes:
                r = sim.simulate(net, frames, simulator=simulator, lanes=lanes, ref=ref, decode=args.decode)
                rtl_acc = float((np.asarray(r.rtl_classes) == labels).mean())
                cpf = r.cycles_per_frame["mean"]
                interval = r.frame_interval_cycles
                bound = r.event_bound_cycles
                ibound = r.interval_bound_cycles
                failures += r.mismatching_images > 0 or rtl_acc != int_acc
                cells = [label, simulator, lanes, r.images, r.mismatching_images, f"{100 * rtl_acc:.2f}%",
                         f"{100 * int_acc:.2f}%", f"{cpf:.0f}", f"{interval or float('nan'):.0f}", f"{bound:.0f}",
                         f"{cpf / bound:.2f}", f"{(interval or float('nan')) / (ibound or bound):.2f}",
                         f"{r.images_per_second:.1f}", f"{(r.cycles_per_second or float('nan')) / 1e3:.0f}",
                         f"{ref_ips:.0f}"]
                lines.append(cells)
                print(" ".join(f"{c:>{w}}" if i else f"{c:28}" for i, (c, w) in enumerate(zip(map(str, cells), WIDTHS))),
                      flush=True)
                if r.first_mismatch:
                    print(f"    first mismatch: {r.first_mismatch}")
                rows.append({"ir": path, "simulator": simulator, "lanes": lanes, "decode": args.decode,
                             "test_images": [lo, lo + n], "rtl_accuracy": rtl_acc,
                             "int_accuracy": int_acc, **{k: v for k, v in r.to_json().items()
                                                         if k not in ("rtl_classes", "reference_classes")}})
    print("lat/bnd: cycles per frame / ceil(all synaptic events / lanes); "
          "int/bnd: frame interval / the busiest layer's ceil(synaptic events / lanes); "
          "img/s: images compared a second of the whole simulator run (start-up included); "
          "kcyc/s: the simulator's clock cycles a second while the frames ran")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    if args.out:
        _write_table_and_plot(args.out, lines, rows)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
