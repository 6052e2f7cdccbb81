"""Where conversion time goes: every pass of every network of a T sweep, timed (issue 9).

Trains (or loads, ``--checkpoint``) one ANN, converts the jobs ``snnfpga run`` converts (or
``--jobs``), evaluates them on the test split and prints accuracy and wall seconds per pass
(``trace``, ``thresholds``, ``finetune``, ``quantize``, ``float_snn``, ``int_ref``). With
``--finetune-gain`` every (SC-)TTFS network is also converted without fine-tuning, so the table
shows what fine-tuning buys at each coding and T and what it costs.

    .venv/bin/python benchmarks/bench_convert.py --dataset mnist10k --model cnn --checkpoint /tmp/cnn.pt
    .venv/bin/python benchmarks/bench_convert.py --dataset mnist10k --model cnn --jobs sc-ttfs:4 ttfs:2 --finetune-gain
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from snnfpga import flow
from snnfpga.convert.models import load_checkpoint
from snnfpga.convert.pipeline import PASSES, Shared, convert_network, evaluate_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist10k")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--hidden", type=int, nargs="+")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--checkpoint", help="load the ANN from here if it exists, else train it and save it here")
    ap.add_argument("--jobs", nargs="+", help="coding:T pairs (default: the jobs of `snnfpga run`)")
    ap.add_argument("--finetune-gain", action="store_true", help="also convert each (SC-)TTFS job without fine-tuning")
    ap.add_argument("--warm", action="store_true",
                    help="also convert each (SC-)TTFS job after the first of its coding warm-started from that "
                         "first one's fine-tuned BN, without fine-tuning (`snnfpga run`'s sweep policy 'warm')")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    opts = flow.RunOptions(dataset=args.dataset, model=args.model, hidden=tuple(args.hidden) if args.hidden else None,
                           epochs=args.epochs, finetune_epochs=args.finetune_epochs, quiet=args.quiet)
    print(f"torch threads: {torch.get_num_threads()}")
    t = time.perf_counter()
    data = flow.load_data(opts)
    print(f"data: {data!r} ({time.perf_counter() - t:.1f} s)")
    if args.checkpoint and Path(args.checkpoint).is_file():
        model, arch = load_checkpoint(args.checkpoint)
        print(f"ANN: {args.checkpoint} ({arch['model']} {arch['hidden']}, {arch['epochs']} epochs, "
              f"test {100 * arch['accuracy']['test']:.2f}%)")
    else:
        tr = flow.train(opts, data, checkpoint=args.checkpoint)
        model = tr.model
        print(f"ANN: trained in {tr.seconds:.1f} s, test {100 * tr.test_accuracy:.2f}%")
    jobs = ([(j.split(":")[0], int(j.split(":")[1])) for j in args.jobs] if args.jobs else opts.jobs())
    variants = [(c, T, opts.finetune_epochs) for c, T in jobs]
    if args.finetune_gain:
        variants += [(c, T, 0) for c, T in jobs if c != "rate" and opts.finetune_epochs > 0]
    first = {}
    for c, T in jobs:
        first.setdefault(c, (c, T, opts.finetune_epochs))
    if args.warm:
        variants += [(c, T, "warm") for c, T in jobs if c != "rate" and (c, T, opts.finetune_epochs) != first[c]]
    shared = Shared(model, data, rate_timesteps=tuple(T for c, T in jobs if c == "rate"))
    convs, done = [], {}
    t_all = time.perf_counter()
    for coding, T, ft in variants:
        o = opts.convert_options(coding, T)
        o.finetune_epochs = 0 if ft == "warm" else ft
        warm = done[first[coding]] if ft == "warm" else None
        done[(coding, T, ft)] = convert_network(model, data, o, name=f"{coding}-T{T}", progress=not args.quiet,
                                                shared=shared, warm_start=warm)
        convs.append(done[(coding, T, ft)])
    rows = evaluate_all(convs, data, progress=not args.quiet)
    total = time.perf_counter() - t_all
    head = f"{'coding':8} {'T':>3} {'FT':>2} {'float SNN':>9} {'integer':>8} " + " ".join(f"{p:>10}" for p in PASSES)
    print(f"\nfloat ANN {100 * rows[0]['float_ann']:.2f}%  ({len(data.test_y)} test images)")
    print(head)
    sums = dict.fromkeys(PASSES, 0.0)
    for (coding, T, ft), m in zip(variants, rows):
        sp = m["seconds_per_pass"]
        for p in PASSES:
            sums[p] += sp[p]
        kept = "" if not m["finetune"].get("epochs") else ("" if m["finetune"].get("kept") else " (rolled back)")
        print(f"{coding:8} {T:>3} {ft:>2} {100 * m['float_snn']:>8.2f}% {100 * m['int_ref']:>7.2f}% "
              + " ".join(f"{sp[p]:>10.1f}" for p in PASSES) + kept)
    print(f"{'total':24} {'':>8} " + " ".join(f"{sums[p]:>10.1f}" for p in PASSES)
          + f"   = {sum(sums.values()):.1f} s (wall {total:.1f} s)")
    by = {(c, T, ft): m for (c, T, ft), m in zip(variants, rows)}
    for label, alt in (("fine-tuning", 0), ("warm start (vs none)", "warm")):
        if not any(k[2] == alt for k in by):
            continue
        print(f"\n{label}: gain (integer, percentage points) and cost:")
        for c, T in jobs:
            if c == "rate" or (c, T, alt) not in by:
                continue
            a, b = by[(c, T, opts.finetune_epochs if alt == 0 else "warm")], by.get((c, T, 0))
            if b is None:
                continue
            print(f"  {c:8} T={T}: {100 * (a['int_ref'] - b['int_ref']):+.2f} pp "
                  f"(float SNN {100 * (a['float_snn'] - b['float_snn']):+.2f}), {a['seconds_per_pass']['finetune']:.1f} s")


if __name__ == "__main__":
    main()
