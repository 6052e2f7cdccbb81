"""Cycles and memories of one conv network with a max pool (docs/hardware.md, "Max pool").

1×8×8 → conv 4@3×3 pad 1 → max pool 2×2 → conv 8@3×3 pad 1 → flatten 128 → dense 10, TTFS T = 4,
random integer parameters (``snnfpga.testing.random_maxpool_network``, seed 3), 8 random frames
on Verilator: bit-exactness, cycles per frame, frame interval and the event bounds, per input
coding and lane count.

    .venv/bin/python benchmarks/bench_maxpool.py --lanes 1 4 --decode arrival
"""

from __future__ import annotations

import argparse

from snnfpga import sim
from snnfpga.ir import validate
from snnfpga.rtl_gen import describe
from snnfpga.testing import random_frames, random_maxpool_network

SPEC = (("conv2d", 4, 3, 1, 1), ("maxpool2d", 2, 2, 0), ("conv2d", 8, 3, 1, 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--input-coding", nargs="+", default=["spikes", "direct"], choices=["spikes", "direct"])
    ap.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto")
    ap.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    args = ap.parse_args(argv)
    print(f"{'input':7} {'lanes':>5} {'mism.':>5} {'ROM bits':>8} {'RAM bits':>8} {'pool RAM':>8} {'mult':>4} "
          f"{'cyc/frame':>9} {'interval':>8} {'int. bound':>10} {'ratio':>6}")
    failures = 0
    for input_coding in args.input_coding:
        net = random_maxpool_network((1, 8, 8), SPEC, n_classes=10, timesteps=4, weight_bits=8, input_bits=8,
                                     input_coding=input_coding, seed=3)
        validate(net)
        frames = random_frames(net, 8, seed=0)
        for lanes in args.lanes:
            d = describe(net, lanes=lanes, decode=args.decode)
            rom = sum(m.bits for m in d.memories if m.initialised)
            ram = sum(m.bits for m in d.memories if not m.initialised)
            pool = sum(m.bits for m in d.memories if m.role == "pool_maxima")
            b = sim.prepare(net, simulator=args.simulator, lanes=lanes, opt="-O0", decode=args.decode)
            r = sim.simulate(net, frames, build=b, seed=0, decode=args.decode)
            failures += r["mismatching_images"] > 0
            print(f"{input_coding:7} {lanes:5d} {r['mismatching_images']:5d} {rom:8d} {ram:8d} {pool:8d} "
                  f"{d.multipliers:4d} {r['cycles_per_frame']['mean']:9.1f} {r['frame_interval_cycles']:8.1f} "
                  f"{r['interval_bound_cycles']:10.1f} {r['interval_bound_ratio']:6.3f}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
