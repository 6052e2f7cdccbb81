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
    args = ap.parse_args(argv)
    rows, failures = [], 0
    print(f"{'network':28} {'sim':9} {'lanes':>5} {'images':>6} {'mism.':>5} {'RTL acc':>8} {'int acc':>8} "
          f"{'cyc/frame':>9} {'interval':>8} {'bound':>7} {'lat/bnd':>7} {'int/bnd':>7} {'img/s':>7} {'ref img/s':>9}")
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
                print(f"{label:28} {simulator:9} {lanes:>5} {r.images:>6} {r.mismatching_images:>5} "
                      f"{100 * rtl_acc:>7.2f}% {100 * int_acc:>7.2f}% {cpf:>9.0f} {interval or float('nan'):>8.0f} "
                      f"{bound:>7.0f} {cpf / bound:>7.2f} {(interval or float('nan')) / (ibound or bound):>7.2f} "
                      f"{r.images_per_second:>7.1f} {ref_ips:>9.0f}", flush=True)
                if r.first_mismatch:
                    print(f"    first mismatch: {r.first_mismatch}")
                rows.append({"ir": path, "simulator": simulator, "lanes": lanes, "decode": args.decode,
                             "test_images": [lo, lo + n], "rtl_accuracy": rtl_acc,
                             "int_accuracy": int_acc, **{k: v for k, v in r.to_json().items()
                                                         if k not in ("rtl_classes", "reference_classes")}})
    print("lat/bnd: cycles per frame / ceil(all synaptic events / lanes); "
          "int/bnd: frame interval / the busiest layer's ceil(synaptic events / lanes)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
