"""Frames per second of the integer reference simulator on the MNIST-10k MLP (784-128-10).

Prints batch and single-frame throughput, each against a baseline run in the same process:
the same semantics with numpy's integer matmul (no BLAS) instead of the exact-float64 path, and
writes the table to ``<out>/reference.md`` and ``<out>/reference.json`` (``make bench``).

    .venv/bin/python benchmarks/bench_reference.py [--ir runs/mnist10k/model.snn.json] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


from snnfpga import reference
from snnfpga.convert.data import load_dataset
from snnfpga.ir import load
from snnfpga.convert.quantize import quantize_frames


def _model(path: Path | None):
    if path and path.is_file():
        return load(path)
    import torch

    from snnfpga.convert.models import mlp
    from snnfpga.convert.pipeline import ConvertOptions, convert
    from snnfpga.convert.train import train_ann

    data = load_dataset("mnist10k")
    torch.manual_seed(0)
    model = mlp(data.shape, (128,))
    train_ann(model, data, epochs=3)
    return convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, finetune_epochs=0)).net


def _rate(fn, frames, batch: int, min_seconds: float = 2.0) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        for i in range(0, len(frames), batch):
            fn(frames[i:i + batch])
            n += len(frames[i:i + batch])
            if time.perf_counter() - t0 >= min_seconds:
                break
    return n / (time.perf_counter() - t0)


@dataclass
class ReferenceRow:
    """One batch size: frames/s of the integer reference and of the int64-matmul baseline."""

    batch: int
    fps: float
    baseline_fps: float

    @property
    def ratio(self) -> float:
        return self.fps / self.baseline_fps


def format_table(rows: list[ReferenceRow]) -> str:
    """The Markdown table ``reference.md`` holds (and ``main`` prints)."""
    lines = ["| batch | frames/s | int64 baseline | ratio |", "|---:|---:|---:|---:|"]
    lines += [f"| {r.batch} | {r.fps:.0f} | {r.baseline_fps:.0f} | {r.ratio:.1f}x |" for r in rows]
    return "\n".join(lines)


def write(rows: list[ReferenceRow], out: Path, title: str, meta: dict) -> list[Path]:
    """``reference.md`` and ``reference.json`` in ``out``: the record ``make bench`` keeps."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "reference.md", out / "reference.json"
    md.write_text(f"# {title}\n\n{format_table(rows)}\n")
    js.write_text(json.dumps({"meta": meta, "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}, indent=1) + "\n")
    return [md, js]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ir", type=Path, default=Path("runs/mnist10k/model.snn.json"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench"), help="where reference.md / .json go")
    args = ap.parse_args()
    net = _model(args.ir)
    data = load_dataset("mnist10k")
    frames = quantize_frames(net, data.test_x)
    original = reference._exact_matmul
    try:
        rows = []
        for batch in (len(frames), 1):
            fast = _rate(lambda f: reference.simulate(net, f), frames, batch)
            reference._exact_matmul = lambda x, w: x.astype(np.int64) @ w.astype(np.int64).T
            base = _rate(lambda f: reference.simulate(net, f), frames, batch)
            reference._exact_matmul = original
            rows.append(ReferenceRow(batch, fast, base))
    finally:
        reference._exact_matmul = original
    title = (f"integer reference, {net.name}: {net.coding} T={net.timesteps}, "
             f"{' → '.join(str(l.n_out) for l in net.layers if l.weighted)} on {len(frames)} MNIST-10k test frames")
    print(title)
    print(f"{'batch':>6} {'frames/s':>12} {'int64 baseline':>15} {'ratio':>7}")
    for r in rows:
        print(f"{r.batch:>6} {r.fps:>12.0f} {r.baseline_fps:>15.0f} {r.ratio:>6.1f}x")
    meta = {"network": net.name, "coding": net.coding, "timesteps": net.timesteps, "frames": len(frames),
            "ir": str(args.ir) if args.ir and args.ir.is_file() else "trained here (mnist10k MLP 784-128-10, 3 epochs)"}
    files = write(rows, args.out, title, meta)
    print("wrote " + ", ".join(str(p) for p in files))


if __name__ == "__main__":
    main()
