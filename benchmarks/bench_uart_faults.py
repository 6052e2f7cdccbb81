"""UART fault soak: injected byte drops, duplicates and corruptions; frames correct / lost / wrong.

Runs the UART top around the real rtl_gen.NetworkTop in cocotb (Verilator by default) with the
board host's own session logic (boards.host.HostSession) and a seeded fault injector that
damages one byte of a share of the requests and of the responses, for several small random
networks and host windows; then prints, per run and in total, the faults injected by kind and
direction, the frames correct, lost and wrong (wrong must be 0), resends, requests the board
dropped and responses the host rejected. Exits 1 if any frame was wrong. Not part of the test
suite (tests/test_uart_faults.py runs 80 frames).

    .venv/bin/python benchmarks/bench_uart_faults.py [--frames 200] [--rate 0.3] [--windows 1 3]
        [--codings sc-ttfs rate ttfs] [--retries 2] [--simulator verilator] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from snnfpga.sim.uart_sim import run_uart
from snnfpga.testing import random_frames, random_network

#: (coding, input coding) of each random network
NETWORKS = {"sc-ttfs": ("sc-ttfs", "direct"), "ttfs": ("ttfs", "direct"), "rate": ("rate", "spikes")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per run (default 200)")
    ap.add_argument("--rate", type=float, default=0.3,
                    help="share of requests and of responses with one damaged byte (default 0.3)")
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 3], help="host windows (default 1 3)")
    ap.add_argument("--codings", nargs="+", default=["sc-ttfs", "rate"], choices=sorted(NETWORKS))
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write every run's counts to this file")
    args = ap.parse_args(argv)

    rows, totals = [], Counter()
    injected_total = {"request": Counter(), "response": Counter()}
    for k, coding in enumerate(args.codings):
        code, input_coding = NETWORKS[coding]
        net = random_network(coding=code, input_coding=input_coding, sizes=(12, 10, 5), seed=args.seed + k)
        frames = random_frames(net, args.frames, seed=args.seed + k)
        for window in args.windows:
            t0 = time.perf_counter()
            run = run_uart(net, frames, simulator=args.simulator, window=window, retries=args.retries,
                           faults={"seed": args.seed * 1000 + 10 * k + window, "request_rate": args.rate,
                                   "response_rate": args.rate})
            dt = time.perf_counter() - t0
            print(f"{coding:8s} window {window}: {run.summary()}  [{dt:.0f} s]", flush=True)
            if run.lost_reasons:
                print(f"{'':8s} lost: {run.lost_reasons}")
            for key in ("frames", "correct", "lost", "wrong"):
                totals[key] += getattr(run, key)
            totals["requests"] += run.stats["requests"]
            totals["retries"] += run.stats["retries"]
            totals["board_dropped"] += run.dropped
            totals["host_rejected"] += run.stats["rejected_responses"]
            for where, kinds in run.injected.items():
                injected_total[where].update(kinds)
            rows.append({"coding": coding, "window": window, "frames": run.frames, "correct": run.correct,
                         "lost": run.lost, "wrong": run.wrong, "injected": run.injected, "stats": run.stats,
                         "lost_reasons": run.lost_reasons, "board_dropped": run.dropped, "cycles": run.cycles,
                         "seconds": dt})
    n_inj = sum(sum(c.values()) for c in injected_total.values())
    print(f"\ntotal: {totals['frames']} frames, {n_inj} faults injected "
          f"(requests: {dict(injected_total['request'])}; responses: {dict(injected_total['response'])}); "
          f"{totals['correct']} correct, {totals['lost']} lost, {totals['wrong']} WRONG; "
          f"{totals['requests']} requests ({totals['retries']} resent), board dropped {totals['board_dropped']}, "
          f"host rejected {totals['host_rejected']} responses")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": rows, "totals": dict(totals),
                       "injected": {w: dict(c) for w, c in injected_total.items()}}, f, indent=1)
    return 1 if totals["wrong"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
