"""Soak: hundreds of random networks bit-exact in RTL on Verilator, under stress, 0 mismatches.

Draws ``--networks`` small random networks (every kind × coding in turn: dense, conv with a max
pool now and then in TTFS, residual; rate, ttfs, sc-ttfs; direct or spike input; 1..4 lanes;
T mostly small, up to the largest the IR allows for rate and up to ``--ttfs-max-t`` for
(SC-)TTFS), ``--frames`` random frames in all, and checks them in RTL with ``sim.batch``:
several networks per Verilator build, run side by side, each with input gaps (short and long),
random result back-pressure, long result stalls (the result must stay steady while stalled)
and one reset at a random cycle of a thrown-away frame (the frames after it must be exact).
Every spike event of every stage and every output membrane is compared with the integer
reference, frame by frame.

Prints the networks per coding and kind, the frames, the events and membranes compared,
mismatching frames and every other problem (protocol, counters, hangs), the stress applied
(resets per stage hit, stalls, gaps) and the time spent; exits 1 on any problem, naming each
failing network so that ``sim.batch.make_case`` rebuilds it.

    .venv/bin/python benchmarks/soak_rtl.py                        # 500 networks, 20,000 frames
    .venv/bin/python benchmarks/soak_rtl.py --networks 20 --frames 400 --seed 1
    .venv/bin/python benchmarks/soak_rtl.py --jobs 2 --json soak.json
    MAKEFLAGS=-j2 .venv/bin/python benchmarks/soak_rtl.py   # compile each model's C++ on 2 cores

Cost (2-core machine): a build of 10 small networks is about 40 CPU seconds (Amaranth and
Yosys ~10, Verilator ~10, the C++ compiler ~20), a third of what 10 builds would cost;
simulating 40 frames of one is a few seconds. ``cpu`` in the summary line is the CPU time
of the workers and their children (Verilator, compiler, simulator).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from snnfpga.sim import batch

#: T above this is a "large T" network: smaller, few frames, small batches (its frames are long)
LARGE_T = batch.LARGE_T
#: default largest T of an (SC-)TTFS network. The IR allows 4096, but the encode is T parallel
#: comparators a lane (docs/hardware.md), so generating and compiling grows with T: a small
#: network at T = 256 costs ~25 CPU s, one small SC-TTFS residual network at T = 1024 over
#: 3 CPU minutes, at T = 4096 more. --ttfs-max-t up to 4096 goes further, at that price.
TTFS_MAX_T = 256


@dataclass(frozen=True)
class Spec:
    """One network of the soak: what ``batch.make_case`` needs to (re)build it."""

    index: int
    kind: str
    coding: str
    timesteps: int
    seed: int
    frames: int

    def case(self) -> batch.Case:
        return batch.make_case(self.kind, self.coding, self.timesteps, seed=self.seed, frames=self.frames)

    @property
    def reproduce(self) -> str:
        return (f"sim.batch.make_case({self.kind!r}, {self.coding!r}, {self.timesteps}, seed={self.seed}, "
                f"frames={self.frames})")


def draw_t(rng: np.random.Generator, top: int) -> int:
    """T mostly small (fast), now and then log-uniform up to ``top``, sometimes ``top`` itself."""
    u = rng.random()
    if u < 0.6 or top <= 8:
        return int(rng.integers(1, min(8, top) + 1))
    if u < 0.88 or top <= 64:
        return int(rng.integers(9, min(64, top) + 1))
    if u < 0.98:
        return int(round(math.exp(rng.uniform(math.log(65), math.log(top)))))
    return top


def plan(networks: int, frames: int, seed: int, ttfs_max_t: int) -> list[Spec]:
    """The networks of the soak, every kind × coding in turn, and their share of ``frames``."""
    rng = np.random.default_rng(seed)
    combos = [(k, c) for k in batch.KINDS for c in batch.CODINGS]
    order: list[tuple[str, str]] = []
    while len(order) < networks:
        order += [combos[i] for i in rng.permutation(len(combos))]
    ts = []
    for _kind, coding in order[:networks]:
        top = batch.max_timesteps(coding)
        if coding != "rate":
            top = min(top, ttfs_max_t)
        ts.append(draw_t(rng, top))
    # at least 5 frames a network (a stressed phase with a reset); large-T networks get few,
    # the others share the rest evenly
    large = [t > LARGE_T for t in ts]
    n_small = networks - sum(large)
    rest = max(0, frames - 5 * sum(large))
    per = max(5, math.ceil(rest / n_small)) if n_small else 5
    counts = [5 if big else per for big in large]
    return [Spec(i, kind, coding, t, seed * 1_000_003 + i, counts[i])
            for i, ((kind, coding), t) in enumerate(zip(order, ts))]


def batches(specs: list[Spec], size: int) -> list[list[Spec]]:
    """Networks of similar T together (a build runs as long as its slowest network)."""
    small = [s for s in specs if s.timesteps <= LARGE_T]
    large = sorted((s for s in specs if s.timesteps > LARGE_T), key=lambda s: s.timesteps)
    out = [small[i:i + size] for i in range(0, len(small), size)]
    big = max(1, size // 4)
    out += [large[i:i + big] for i in range(0, len(large), big)]
    return out


@dataclass
class Row:
    """What the soak keeps of one network (picklable, from a worker process)."""

    spec: Spec
    input_coding: str
    lanes: int
    frames: int
    mismatching: int
    events: int
    membranes: int
    problems: list[str]
    stress: dict
    cycles: int


def run_batch(specs: list[Spec], build_root: str | None, keep: bool) -> tuple[list[Row], dict[str, float]]:
    """Check one batch (in a worker process); delete its build unless it failed or ``keep``."""
    c0 = _cpu()
    rows: list[Row] = []
    drawn: list[tuple[Spec, batch.Case]] = []
    for s in specs:  # a network that cannot be drawn is a failure of its own, not of the batch
        try:
            drawn.append((s, s.case()))
        except Exception as e:
            rows.append(Row(s, "?", 0, s.frames, s.frames, 0, 0,
                            [f"network {s.index}: make_case failed: {type(e).__name__}: {e}"], {}, 0))
    specs = [s for s, _ in drawn]
    cases = [c for _, c in drawn]
    if not cases:
        return rows, {"cpu": _cpu() - c0}
    try:
        res = batch.check(cases, build_root=build_root)
    except Exception as e:  # a failed build or simulation fails every network of the batch
        why = f"{type(e).__name__}: {str(e)[:2000]}"
        return rows + [Row(s, c.net.input.input_coding, c.lanes, len(c.frames), len(c.frames), 0, 0,
                           [f"{c.label}: {why}"], {}, 0) for s, c in zip(specs, cases)], {"cpu": _cpu() - c0}
    for s, o in zip(specs, res.outcomes):
        c = o.case
        r = o.report
        rows.append(Row(s, c.net.input.input_coding, c.lanes, len(c.frames),
                        r.mismatching_images if r is not None else len(c.frames), o.events,
                        len(c.frames) * c.net.n_classes, o.problems, o.obs.get("stress", {}),
                        int(o.obs.get("cycles") or 0)))
    if res.ok and not keep:
        shutil.rmtree(res.build_dir, ignore_errors=True)
    return rows, {**res.seconds, "cpu": _cpu() - c0}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Verilator, the C++ compiler, the simulation)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=500, help="random networks (default 500)")
    ap.add_argument("--frames", type=int, default=20000, help="frames in all (default 20000; at least 5 a network)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=10, help="networks per Verilator build (default 10)")
    ap.add_argument("--jobs", type=int, default=1, help="batches checked at once (default 1; the machine is shared)")
    ap.add_argument("--ttfs-max-t", type=int, default=TTFS_MAX_T,
                    help=f"largest T of a (SC-)TTFS network (default {TTFS_MAX_T}; the IR allows "
                         f"{batch.max_timesteps('ttfs')}, see TTFS_MAX_T)")
    ap.add_argument("--build-dir", default=None, help="where models are built (default: sim's cache)")
    ap.add_argument("--keep-builds", action="store_true", help="keep every build (by default only failed ones)")
    ap.add_argument("--json", help="write the counts to this file")
    args = ap.parse_args(argv)
    for name in ("networks", "frames", "batch", "jobs", "ttfs_max_t"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    if args.ttfs_max_t > batch.max_timesteps("ttfs"):
        ap.error(f"--ttfs-max-t must be at most {batch.max_timesteps('ttfs')}, not {args.ttfs_max_t}")

    specs = plan(args.networks, args.frames, args.seed, args.ttfs_max_t)
    groups = batches(specs, args.batch)
    t0 = time.perf_counter()
    rows: list[Row] = []
    seconds: Counter = Counter()
    bar = tqdm(total=len(specs), unit="net", desc="soak")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_batch, g, args.build_dir, args.keep_builds) for g in groups]
        for fut in as_completed(futures):
            try:
                got, secs = fut.result()
            except BaseException:  # a crashed worker: stop now instead of running the queue out
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            rows += got
            seconds.update(secs)
            bar.update(len(got))
            bar.set_postfix(frames=sum(r.frames for r in rows), bad=sum(bool(r.problems) for r in rows))
    bar.close()
    elapsed = time.perf_counter() - t0
    rows.sort(key=lambda r: r.spec.index)
    return report(rows, elapsed, dict(seconds), len(groups), args)


def report(rows: list[Row], elapsed: float, seconds: dict, n_builds: int, args) -> int:
    """Print the counts (and write --json); 1 when anything went wrong."""
    kinds, codings = batch.KINDS, batch.CODINGS
    per = Counter((r.spec.kind, r.spec.coding) for r in rows)
    print(f"\nnetworks per kind × coding ({len(rows)} in {n_builds} Verilator builds):")
    print(f"  {'':10}" + "".join(f"{c:>9}" for c in codings) + f"{'all':>9}")
    for k in kinds:
        print(f"  {k:10}" + "".join(f"{per[(k, c)]:9d}" for c in codings) + f"{sum(per[(k, c)] for c in codings):9d}")
    print(f"  {'all':10}" + "".join(f"{sum(per[(k, c)] for k in kinds):9d}" for c in codings) + f"{len(rows):9d}")
    inputs = Counter(r.input_coding for r in rows)
    lanes = Counter(r.lanes for r in rows)
    print(f"input coding: {dict(sorted(inputs.items()))}; lanes: {dict(sorted(lanes.items()))}")
    bands = [(1, 1), (2, 8), (9, 64), (65, 256), (257, 1024), (1025, 4096)]
    t_hist = {f"{lo}-{hi}" if lo != hi else str(lo): sum(lo <= r.spec.timesteps <= hi for r in rows) for lo, hi in bands}
    tops = {c: max((r.spec.timesteps for r in rows if r.spec.coding == c), default=0) for c in codings}
    print(f"T: {t_hist}; largest T per coding: {tops}")
    frames = sum(r.frames for r in rows)
    events = sum(r.events for r in rows)
    membranes = sum(r.membranes for r in rows)
    mism = sum(r.mismatching for r in rows)
    bad = [r for r in rows if r.problems]
    resets = [x for r in rows for x in r.stress.get("resets", [])]
    hits = Counter(x["hit"] for x in resets)
    stalls = [r.stress.get("stalls", {}) for r in rows]
    long_gaps = [r.stress.get("long_gaps", {}) for r in rows]
    print(f"frames compared: {frames}; spike events compared: {events}; output membranes compared: {membranes}")
    print(f"cycles simulated (sum over networks): {sum(r.cycles for r in rows)}")
    print(f"resets mid-frame: {len(resets)}, by what they hit: {dict(sorted(hits.items()))}")
    print(f"long result stalls: {sum(s.get('count', 0) for s in stalls)} "
          f"({sum(s.get('cycles', 0) for s in stalls)} cycles, longest {max((s.get('longest', 0) for s in stalls), default=0)}); "
          f"long input gaps: {sum(g.get('count', 0) for g in long_gaps)}")
    print(f"mismatching frames: {mism}; networks with any problem: {len(bad)}")
    for r in bad[:20]:
        print(f"  FAIL network {r.spec.index} ({r.spec.reproduce}):")
        for p in r.problems[:5]:
            print(f"    {p}")
    print(f"elapsed {elapsed:.0f} s ({elapsed / max(1, len(rows)):.1f} s a network); "
          + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(seconds.items())) + f" (summed over {args.jobs} job(s))")
    if args.json:
        out = {"networks": len(rows), "builds": n_builds, "per_kind_coding": {f"{k}/{c}": per[(k, c)] for k in kinds for c in codings},
               "input_coding": dict(inputs), "lanes": {str(k): v for k, v in lanes.items()}, "timesteps": t_hist,
               "largest_t": tops, "frames": frames, "events": events, "membranes": membranes,
               "mismatching_frames": mism, "failed_networks": [r.spec.reproduce for r in bad],
               "resets": len(resets), "reset_hits": dict(hits), "elapsed_s": elapsed, "seconds": seconds,
               "seed": args.seed, "argv": sys.argv[1:], "cpus": os.cpu_count()}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    ok = not bad and mism == 0
    print("PASS: 0 mismatches" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
