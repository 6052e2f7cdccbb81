"""Peers in one run: our SC-TTFS / TTFS / IF-rate conversions against SpikingJelly's ``ann2snn``
and sinabs' ``from_model`` on the same trained ANN and the same test images (issue 10).

For each network (``--networks``) one ANN is trained with snnfpga's own training (or loaded from
``<out>/ann/<network>.pt``), then converted by every tool:

- ours (``snnfpga.convert.pipeline``): SC-TTFS, TTFS and IF rate, the 8-bit integer network that
  the hardware runs (integer reference accuracy and spikes; the float SNN's accuracy is in the
  JSON), direct (analog) pixel input, BN folded by our tracer;
- SpikingJelly ``ann2snn.Converter`` (IF neurons, reset by subtraction), modes ``max`` and
  ``99.9%``, calibrated on the whole training split as its MNIST example does; the ANN module is
  handed over as is (the Converter fuses Conv+BN itself; Linear+BatchNorm1d stays an affine
  module before the IF neuron); constant-current input, output = sum over T of the last layer;
- sinabs ``from_model(..., add_spiking_output=True)`` (IAFSqueeze, MultiSpike, reset by
  subtraction) on a BN-folded copy whose weights ``sinabs.utils.normalize_weights`` rescaled
  (99th percentile, its default) on our calibration sample; its weight-transfer tutorial's input
  (Bernoulli pixel spikes, seeded) and constant current; class = most output spikes.

Spikes per frame: mean spikes of all spiking layers per image (ours and SpikingJelly: the hidden
layers; sinabs: the hidden layers and its spiking output layer); input spikes are not counted.
For each tool: the smallest T of the grid within ``--tolerance`` points of the ANN, and the
ratios ours/theirs of that T and of the spikes per frame at it. Writes ``<out>/peers.md``,
``<out>/peers.json`` and ``<out>/peers.png``.

    .venv/bin/python benchmarks/bench_peers.py --out runs/bench
    .venv/bin/python benchmarks/bench_peers.py --quick --out /tmp/peers    # digits, < 60 s
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from snnfpga import flow
from snnfpga.convert.data import Dataset, load_dataset
from snnfpga.convert.models import load_checkpoint
from snnfpga.convert.pipeline import Shared, calibration_sample, convert_network, evaluate_all
from snnfpga.convert.train import accuracy

#: network name -> (data set, model)
NETWORKS = {"mnist10k-mlp": ("mnist10k", "mlp"), "mnist10k-cnn": ("mnist10k", "cnn"),
            "fashion-mlp": ("fashion-mnist", "mlp"), "fashion-cnn": ("fashion-mnist", "cnn"),
            "digits-mlp": ("digits", "mlp")}
DEFAULT_NETWORKS = ("mnist10k-mlp", "fashion-mlp", "mnist10k-cnn")
RATE_T = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TTFS_T = (1, 2, 3, 4, 6, 8, 12, 16)
OURS = ("sc-ttfs", "ttfs", "rate")


@dataclass
class Point:
    """One tool at one T on the test images."""

    T: int
    accuracy: float
    spikes_per_frame: float
    float_accuracy: float | None = None  #: ours: the float SNN (the accuracy above is the integer network)


@dataclass
class ToolResult:
    """A tool/coding's T sweep and where it reaches the ANN."""

    tool: str  #: row label
    family: str  #: "ours", "spikingjelly" or "sinabs"
    mode: str  #: conversion mode, normalisation and input, in words
    points: list[Point]
    reached_T: int | None = None  #: smallest T within tolerance of the ANN (None: not within the grid)
    seconds: float = 0.0
    error: str | None = None  #: the tool failed: why

    def at(self, T: int | None) -> Point | None:
        return next((p for p in self.points if p.T == T), None)


@dataclass
class Ratio:
    """ours / theirs at each one's smallest T within tolerance (None where either did not reach it)."""

    ours: str
    theirs: str
    T_ratio: float | None
    spikes_ratio: float | None


@dataclass
class NetworkResult:
    name: str
    dataset: str
    model: str
    ann_accuracy: float  #: on the same test images
    ann_source: str  #: trained now or loaded from a checkpoint
    images: int
    tolerance: float
    tools: list[ToolResult] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- shared helpers
def reached(points: list[Point], ann: float, tolerance: float) -> int | None:
    """Smallest T whose accuracy is within ``tolerance`` (a fraction) of the ANN's."""
    ok = [p.T for p in points if p.accuracy >= ann - tolerance - 1e-12]
    return min(ok) if ok else None


def ratios(tools: list[ToolResult]) -> list[Ratio]:
    """Every (ours, peer) pair: T and spikes per frame at each one's reached T."""
    out = []
    for a in (t for t in tools if t.family == "ours"):
        for b in (t for t in tools if t.family != "ours"):
            pa, pb = a.at(a.reached_T), b.at(b.reached_T)
            ok = pa is not None and pb is not None
            out.append(Ratio(a.tool, b.tool, pa.T / pb.T if ok else None,
                             (pa.spikes_per_frame / pb.spikes_per_frame
                              if ok and pb.spikes_per_frame > 0 else None)))
    return out


def fold_bn(model: nn.Sequential) -> nn.Sequential:
    """A copy with every Linear/Conv + BatchNorm pair fused (eval statistics): a weight
    normalisation that rescales a layer's parameters cannot reach through a BatchNorm."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    mods, out = list(copy.deepcopy(model).eval().children()), []
    for m in mods:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and out and isinstance(out[-1], (nn.Linear, nn.Conv2d)):
            prev = out.pop()
            out.append(fuse_linear_bn_eval(prev, m) if isinstance(prev, nn.Linear) else fuse_conv_bn_eval(prev, m))
        else:
            out.append(m)
    return nn.Sequential(*out).eval()


def _count_hooks(modules: list[nn.Module], store: list[torch.Tensor], unflatten: int | None = None):
    """Forward hooks adding each module's output spikes per image (per time step with ``unflatten``)."""
    def hook(_m, _i, out):
        s = out.detach().float()
        s = s.reshape(-1, unflatten, int(np.prod(s.shape[1:]))) if unflatten else s.flatten(1)
        store[0] = store[0] + s.sum(-1)
    return [m.register_forward_hook(hook) for m in modules]


# --------------------------------------------------------------------------- ours
def run_ours(model: nn.Module, data: Dataset, rate_T: tuple[int, ...], ttfs_T: tuple[int, ...],
             finetune_epochs: int, progress: bool) -> list[ToolResult]:
    """snnfpga's conversions at every T, with the sweep's fine-tuning policy of ``snnfpga run``
    (each coding's T = 4 first, fine-tuned; other T per :meth:`RunOptions.sweep_finetune`)."""
    model_kind = "cnn" if any(isinstance(m, nn.Conv2d) for m in model.modules()) else "mlp"
    opts = flow.RunOptions(dataset=data.name, model=model_kind, finetune_epochs=finetune_epochs, quiet=not progress)
    shared = Shared(model, data, rate_timesteps=rate_T)
    results = []
    for coding in OURS:
        t0 = time.perf_counter()
        grid = rate_T if coding == "rate" else ttfs_T
        first = 4 if 4 in grid else grid[0]
        order = [first] + [T for T in grid if T != first]
        policy = opts.sweep_finetune(coding)
        convs, head = {}, None
        for T in tqdm(order, desc=f"ours {coding}: convert", unit="T", disable=not progress):
            o = opts.convert_options(coding, T)
            warm = None
            if head is not None and coding != "rate" and policy != "all":
                o.finetune_epochs = 0
                warm = head if policy == "warm" else None
            convs[T] = convert_network(model, data, o, name=f"{coding}-T{T}", progress=False, shared=shared,
                                       warm_start=warm)
            head = head or convs[T]
        rows = evaluate_all([convs[T] for T in grid], data, progress=progress)
        pts = [Point(T, m["int_ref"], m["spikes_per_frame"], m["float_snn"]) for T, m in zip(grid, rows)]
        ft = {"all": "each T fine-tuned", "warm": f"T={first} fine-tuned, others warm-started",
              "none": f"T={first} fine-tuned"}[policy]
        mode = ("λ per T by percentile search (no fine-tuning)" if coding == "rate"
                else f"fitted θ series; {finetune_epochs} fine-tune epochs ({ft})")
        results.append(ToolResult(f"snnfpga {coding}", "ours",
                                  f"{mode}; 8-bit integer network; BN folded; direct input", pts,
                                  seconds=time.perf_counter() - t0))
    return results


# --------------------------------------------------------------------------- SpikingJelly
def run_spikingjelly(model: nn.Module, data: Dataset, mode: str, steps: tuple[int, ...], batch: int,
                     progress: bool) -> ToolResult:
    """``ann2snn.Converter(mode, dataloader=train split)``; constant input current each step, the
    output summed over T (its MNIST example's ``val``): one run of max(T) gives every T."""
    from spikingjelly.activation_based import ann2snn, functional, neuron

    t0 = time.perf_counter()
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)),
        batch_size=100, shuffle=True)
    snn = ann2snn.Converter(mode=mode, dataloader=loader)(copy.deepcopy(model).eval()).eval()
    ifs = [m for m in snn.modules() if isinstance(m, neuron.IFNode)]
    store = [torch.zeros(0)]
    hooks = _count_hooks(ifs, store)
    n, tmax = len(data.test_y), max(steps)
    correct, spikes = dict.fromkeys(steps, 0), dict.fromkeys(steps, 0.0)
    with torch.no_grad(), tqdm(total=n, desc=f"SpikingJelly {mode} (T≤{tmax})", unit="img",
                               disable=not progress, leave=False) as bar:
        for i in range(0, n, batch):
            x = torch.from_numpy(data.test_x[i:i + batch])
            y = torch.from_numpy(data.test_y[i:i + batch])
            functional.reset_net(snn)
            store[0] = torch.zeros(len(y))
            out = 0
            for t in range(1, tmax + 1):
                out = out + snn(x)
                if t in correct:
                    correct[t] += int((out.argmax(1) == y).sum())
                    spikes[t] += float(store[0].sum())
            bar.update(len(y))
    for h in hooks:
        h.remove()
    pts = [Point(T, correct[T] / n, spikes[T] / n) for T in steps]
    return ToolResult(f"SpikingJelly {mode}", "spikingjelly",
                      f"ann2snn.Converter(mode='{mode}'), calibrated on the {len(data.train_y)} training images; "
                      "IFNode (v_th 1, reset by subtraction); ANN given with its BN (Conv+BN fused by the Converter); "
                      "constant-current input; class = argmax of the summed output",
                      pts, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- sinabs
def run_sinabs(model: nn.Module, data: Dataset, calib: torch.Tensor, steps: tuple[int, ...],
               bernoulli: bool, progress: bool) -> ToolResult:
    """``normalize_weights`` (99th percentile) on a BN-folded copy, then ``from_model(...,
    add_spiking_output=True)``; input as in its weight-transfer tutorial (Bernoulli spikes) or
    constant current; one run of max(T) per batch, cumulative over time for every T."""
    import sinabs.layers as sl
    from sinabs.from_torch import from_model
    from sinabs.utils import normalize_weights

    t0 = time.perf_counter()
    ann = fold_bn(model)
    names = [name for name, _ in ann.named_children()]
    mods = dict(ann.named_children())
    param = [k for k in names if isinstance(mods[k], (nn.Linear, nn.Conv2d))]
    # each weighted layer is normalised at the ReLU after it, the last one at its own output
    output = []
    for k in param:
        j = names.index(k) + 1
        output.append(names[j] if j < len(names) and isinstance(mods[names[j]], nn.ReLU) else k)
    normalize_weights(ann, calib, output_layers=output, param_layers=param, percentile=99)
    tmax, n = max(steps), len(data.test_y)
    net = from_model(ann, input_shape=data.shape, add_spiking_output=True, num_timesteps=tmax)
    layers = [m for m in net.spiking_model.modules() if isinstance(m, sl.IAFSqueeze)]
    widest = max(int(np.prod(data.shape)), *(int(np.prod(m.out_shape)) for m in net.spiking_model.modules()
                                              if hasattr(m, "out_shape")))
    batch = max(1, min(500, int(2e7 // (tmax * widest))))  # bounds the (batch·T, neurons) tensors
    store = [torch.zeros(0)]
    hooks = _count_hooks(layers, store, unflatten=tmax)
    gen = torch.Generator().manual_seed(0)
    correct, spikes = dict.fromkeys(steps, 0), dict.fromkeys(steps, 0.0)
    label = "Bernoulli" if bernoulli else "const."
    with torch.no_grad(), tqdm(total=n, desc=f"sinabs {label} (T≤{tmax})", unit="img",
                               disable=not progress, leave=False) as bar:
        for i in range(0, n, batch):
            x = torch.from_numpy(data.test_x[i:i + batch])
            y = torch.from_numpy(data.test_y[i:i + batch])
            b = len(y)
            xt = x.unsqueeze(1).expand(b, tmax, *x.shape[1:])
            if bernoulli:
                xt = (torch.rand(xt.shape, generator=gen) < xt).float()
            net.reset_states()
            store[0] = torch.zeros(b, tmax)
            out = net(xt.reshape(b * tmax, *x.shape[1:])).reshape(b, tmax, -1).cumsum(1)
            cum = store[0].cumsum(1)
            for T in steps:
                correct[T] += int((out[:, T - 1].argmax(1) == y).sum())
                spikes[T] += float(cum[:, T - 1].sum())
            bar.update(b)
    for h in hooks:
        h.remove()
    pts = [Point(T, correct[T] / n, spikes[T] / n) for T in steps]
    inp = ("Bernoulli pixel spikes (its tutorial)" if bernoulli else "constant-current input")
    return ToolResult(f"sinabs IAF ({label} input)", "sinabs",
                      f"from_model(add_spiking_output=True), IAFSqueeze MultiSpike, reset by subtraction; "
                      f"BN-folded copy, normalize_weights(p99) on {len(calib)} calibration images; {inp}; "
                      "class = most output spikes",
                      pts, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- one network
def get_ann(name: str, data: Dataset, model: str, epochs: int, ckpt_dir: Path | None,
            progress: bool) -> tuple[nn.Module, str]:
    """snnfpga's own training (``flow.train``), cached under ``ckpt_dir`` so reruns compare the same ANN."""
    path = ckpt_dir / f"{name}.pt" if ckpt_dir else None
    if path is not None and path.is_file():
        m, arch = load_checkpoint(path)
        if arch.get("epochs") == epochs and arch.get("dataset") == data.name:
            return m, f"loaded {path} ({epochs} epochs)"
    opts = flow.RunOptions(dataset=data.name, model=model, epochs=epochs, quiet=not progress)
    tr = flow.train(opts, data, checkpoint=path)
    return tr.model, f"trained now ({epochs} epochs, {tr.seconds:.0f} s)" + (f", saved {path}" if path else "")


def bench_network(name: str, images: int, epochs: int, finetune_epochs: int, rate_T: tuple[int, ...],
                  ttfs_T: tuple[int, ...], tolerance: float, ckpt_dir: Path | None,
                  progress: bool = True) -> NetworkResult:
    """Train (or load) one ANN and convert it with every tool on the first ``images`` test images."""
    t0 = time.perf_counter()
    ds, kind = NETWORKS[name]
    full = load_dataset(ds)
    data = Dataset(full.name, full.train_x, full.train_y, full.test_x[:images], full.test_y[:images], full.classes)
    model, source = get_ann(name, data, kind, epochs, ckpt_dir, progress)
    model.eval()
    ann = accuracy(model, data.test_x, data.test_y)
    res = NetworkResult(name, ds, kind, ann, source, len(data.test_y), tolerance)
    calib, _ = calibration_sample(data, 2000, 0)  # the sample our thresholds are fitted on
    jobs = [("ours", lambda: run_ours(model, data, rate_T, ttfs_T, finetune_epochs, progress))]
    for mode in ("max", "99.9%"):
        jobs.append((f"SpikingJelly {mode}", lambda mode=mode: [run_spikingjelly(model, data, mode, rate_T, 200, progress)]))
    for bern in (False, True):
        jobs.append((f"sinabs {'Bernoulli' if bern else 'const.'}",
                     lambda bern=bern: [run_sinabs(model, data, calib, rate_T, bern, progress)]))
    for label, job in tqdm(jobs, desc=f"{name}: tools", unit="tool", disable=not progress):
        try:
            res.tools += job()
        except Exception as e:  # a tool that fails is reported, not hidden
            fam = "ours" if label == "ours" else label.split()[0].lower()
            res.tools.append(ToolResult(label, fam, "", [], error=f"{type(e).__name__}: {e}"))
    for t in res.tools:
        t.reached_T = reached(t.points, ann, tolerance)
    res.ratios = ratios(res.tools)
    res.seconds = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- output
def _f(v: float | None, fmt: str = "{:.2f}", none: str = "n/a") -> str:
    return none if v is None else fmt.format(v)


def markdown(results: list[NetworkResult], wall: float, argv: list[str]) -> str:
    """The table: per network, each tool's smallest T within tolerance, its accuracy and spikes
    there, the ratios ours/theirs, then accuracy and spikes at every T."""
    out = ["# Peers: snnfpga vs SpikingJelly ann2snn vs sinabs from_model", "",
           f"`benchmarks/bench_peers.py {' '.join(argv)}` — wall {wall:.0f} s, torch threads "
           f"{torch.get_num_threads()}. Same trained ANN and the same test images for every tool. "
           "Ours: the 8-bit integer network (integer reference). Spikes/frame: all spiking layers, "
           "input spikes not counted. T*: the smallest T of the grid within the tolerance of the ANN.", ""]
    for r in results:
        out += [f"## {r.name} ({r.dataset}, {r.model}): ANN {100 * r.ann_accuracy:.2f}% on {r.images} test images",
                "", f"ANN: {r.ann_source}; tolerance {100 * r.tolerance:.1f} points; {r.seconds:.0f} s.", "",
                "| tool | T* | acc. at T* (%) | spikes/frame at T* | best acc. (%) (T) | mode / input |",
                "|---|---:|---:|---:|---:|---|"]
        for t in r.tools:
            if t.error:
                out.append(f"| {t.tool} | failed | | | | {t.error} |")
                continue
            p = t.at(t.reached_T)
            best = max(t.points, key=lambda q: (q.accuracy, -q.T))
            out.append(f"| {t.tool} | {t.reached_T if p else 'not reached within the grid'} | "
                       f"{_f(p and 100 * p.accuracy)} | {_f(p and p.spikes_per_frame, '{:.1f}')} | "
                       f"{100 * best.accuracy:.2f} ({best.T}) | {t.mode} |")
        out += ["", "Ratios ours / theirs at each one's T* (n/a: one of them did not reach it):", "",
                "| ours | theirs | T ratio | spikes/frame ratio |", "|---|---|---:|---:|"]
        out += [f"| {q.ours} | {q.theirs} | {_f(q.T_ratio, '{:.3g}')} | {_f(q.spikes_ratio, '{:.3g}')} |"
                for q in r.ratios]
        out += ["", "Accuracy (%) / spikes per frame at every T:", "",
                "| tool | " + " | ".join(f"T={T}" for T in sorted({p.T for t in r.tools for p in t.points})) + " |"]
        grid = sorted({p.T for t in r.tools for p in t.points})
        out.append("|---|" + "---:|" * len(grid))
        for t in r.tools:
            cells = [(lambda p: "" if p is None else f"{100 * p.accuracy:.2f} / {p.spikes_per_frame:.0f}")(t.at(T))
                     for T in grid]
            out.append(f"| {t.tool} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(results: list[NetworkResult], path: Path) -> None:
    """Accuracy vs T (top) and vs spikes per frame (bottom), a column per network."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(5.5 * len(results), 8), squeeze=False)
    for j, r in enumerate(results):
        for t in r.tools:
            if not t.points:
                continue
            style = "-o" if t.family == "ours" else ("--s" if t.family == "spikingjelly" else ":^")
            T = [p.T for p in t.points]
            a = [100 * p.accuracy for p in t.points]
            axes[0][j].plot(T, a, style, ms=4, label=t.tool)
            s = [(p.spikes_per_frame, 100 * p.accuracy) for p in t.points if p.spikes_per_frame > 0]
            if s:
                axes[1][j].plot(*zip(*s), style, ms=4, label=t.tool)
        for ax, xl in ((axes[0][j], "T (time steps)"), (axes[1][j], "spikes per frame")):
            ax.axhline(100 * r.ann_accuracy, color="k", lw=0.8, ls="--", label="ANN")
            ax.axhspan(100 * (r.ann_accuracy - r.tolerance), 100 * r.ann_accuracy, color="k", alpha=0.07)
            ax.set_xscale("log", base=2 if xl.startswith("T") else 10)
            lo = min([100 * p.accuracy for t in r.tools for p in t.points] + [100 * r.ann_accuracy])
            ax.set_ylim(max(lo - 2, 100 * r.ann_accuracy - 30), 100 * r.ann_accuracy + 2)
            ax.set_xlabel(xl)
            ax.set_ylabel("accuracy (%)")
            ax.grid(alpha=0.3)
        axes[0][j].set_title(f"{r.name}: ANN {100 * r.ann_accuracy:.2f}% ({r.images} images)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[NetworkResult]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits MLP, few T, few images (< 60 s; the test)")
    ap.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), help=f"default {' '.join(DEFAULT_NETWORKS)}")
    ap.add_argument("--images", type=int, default=2000, help="first N test images (MNIST-10k has 2000)")
    ap.add_argument("--epochs", type=int, default=20, help="ANN training epochs")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--rate-T", type=int, nargs="+", help=f"default {RATE_T}")
    ap.add_argument("--ttfs-T", type=int, nargs="+", help=f"default {TTFS_T}")
    ap.add_argument("--tolerance", type=float, default=0.5, help="points below the ANN that count as reached")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a shared machine)")
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    torch.set_num_threads(args.threads)
    if args.quick:
        networks = args.networks or ["digits-mlp"]
        images, epochs, ft = min(args.images, 200), min(args.epochs, 15), min(args.finetune_epochs, 1)
        rate_T, ttfs_T = tuple(args.rate_T or (4, 16, 64)), tuple(args.ttfs_T or (2, 4))
    else:
        networks = args.networks or list(DEFAULT_NETWORKS)
        images, epochs, ft = args.images, args.epochs, args.finetune_epochs
        rate_T, ttfs_T = tuple(args.rate_T or RATE_T), tuple(args.ttfs_T or TTFS_T)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: list[NetworkResult] = []
    for n in tqdm(networks, desc="networks", unit="net", disable=args.quiet):
        results.append(bench_network(n, images, epochs, ft, tuple(sorted(rate_T)), tuple(sorted(ttfs_T)),
                                     args.tolerance / 100, None if args.quick else out / "ann",
                                     progress=not args.quiet))
        wall = time.perf_counter() - t0
        md = markdown(results, wall, argv)  # after every network: a long run keeps what it finished
        (out / "peers.md").write_text(md + "\n")
        (out / "peers.json").write_text(json.dumps({"argv": argv, "wall_seconds": wall,
                                                    "networks": [asdict(r) for r in results]}, indent=1) + "\n")
        plot(results, out / "peers.png")
    print(md)
    print(f"\nwrote {out / 'peers.md'}, {out / 'peers.json'}, {out / 'peers.png'} ({wall:.0f} s)")
    return results


if __name__ == "__main__":
    main()
