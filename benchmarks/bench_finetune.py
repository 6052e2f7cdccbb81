"""Does SC-TTFS fine-tuning help, and which recipe? (DESIGN §3 "verify either way and report")

On MNIST-10k (784-128-10 MLP) at small T, compares integer test accuracy after threshold
initialisation only, after the paper's fine-tuning read literally (thresholds only, spike
times constant), and after ours (folded BN through a straight-through gradient, thresholds
at a smaller learning rate). Training accuracy decides whether a fine-tune is kept; the
'forced' columns show the fine-tuned model even where it would have been rolled back.

    .venv/bin/python benchmarks/bench_finetune.py [--dataset mnist10k] [--epochs 3]
"""

from __future__ import annotations

import argparse
import copy

import torch


from snnfpga.convert.data import load_dataset
from snnfpga.convert.finetune import finetune
from snnfpga.convert.graph import trace
from snnfpga.convert.models import mlp
from snnfpga.convert.pipeline import calibration_sample, evaluate_int
from snnfpga.convert.quantize import quantize
from snnfpga.convert.snn import FloatSNN
from snnfpga.convert.thresholds import fit_ttfs_thresholds
from snnfpga.convert.train import accuracy, train_ann


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist10k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[2, 3, 4])
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    torch.manual_seed(0)
    model = mlp(data.shape, (128,))
    train_ann(model, data, epochs=30)
    ann = accuracy(model, data.test_x, data.test_y)
    print(f"{data.name}: float ANN {100 * ann:.2f}%")
    print(f"{'coding':8} {'T':>2} {'init only':>10} {'paper FT':>9} {'ours FT':>8}   (integer test accuracy; train acc before→after)")
    for coding in ("sc-ttfs", "ttfs"):
        for T in args.timesteps:
            snn = FloatSNN(trace(model, data.shape), coding, T)
            cx, _ = calibration_sample(data, 2000)
            fit_ttfs_thresholds(snn, cx, progress=False)
            cols, notes = [], []
            for mode in (None, "paper", "bn"):
                s = copy.deepcopy(snn)
                if mode:
                    ft = finetune(s, data.train_x, data.train_y, epochs=args.epochs, mode=mode, progress=False)
                    notes.append(f"{mode}: {100 * ft['train_acc_before']:.2f}→{100 * ft['train_acc_after']:.2f}"
                                 f"{'' if ft['kept'] else ' (rolled back)'}")
                net = quantize(s, name="bench")
                cols.append(evaluate_int(net, data.test_x, data.test_y)["accuracy"])
            print(f"{coding:8} {T:>2} {100 * cols[0]:>9.2f}% {100 * cols[1]:>8.2f}% {100 * cols[2]:>7.2f}%   "
                  + "; ".join(notes))


if __name__ == "__main__":
    main()
