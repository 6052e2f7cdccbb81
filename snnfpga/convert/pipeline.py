"""The conversion flow, as an explicit ordered list of passes.

``trace (BN fold) → threshold init → fine-tune → quantize`` (:func:`convert_network`); then
evaluation of the float ANN, the float SNN and the integer reference on the test split
(:func:`evaluate`). :func:`convert` runs both; ``snnfpga run`` (:mod:`snnfpga.flow`) runs every
conversion of a sweep first and evaluates them after (:func:`evaluate_all`).

Every pass is timed (``Converted.timings``, then ``metrics["seconds_per_pass"]``: ``trace``,
``thresholds``, ``finetune``, ``quantize``, ``float_snn``, ``int_ref``, wall seconds). The
conversions of one ANN share what does not depend on the coding or T (:class:`Shared`: the traced,
folded layers, the ANN's accuracy, the calibration sample, the rate λ search over every T of a
sweep, the float rate SNN's outputs at every T); shared work is timed in the row that did it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from .. import reference
from .data import Dataset
from .finetune import finetune, snn_accuracy
from .graph import forward_float, trace
from ..errors import BadOption
from ..ir import Network
from ..ir.network import max_timesteps
from .quantize import quantize, quantize_frames
from .snn import FloatSNN
from .thresholds import RATE_PERCENTILES, fit_rate_thresholds, fit_ttfs_thresholds, rate_scores
from .train import accuracy

__all__ = ["ConvertOptions", "Converted", "Shared", "PASSES", "convert", "convert_network", "evaluate",
           "evaluate_all", "evaluate_int", "calibration_sample"]

#: the timed passes, in order (``metrics["seconds_per_pass"]``; docs/report.md)
PASSES = ("trace", "thresholds", "finetune", "quantize", "float_snn", "int_ref")
#: images per integer-reference call: the reference's convolution unrolls a batch (im2col), and
#: beyond a few hundred images that matrix outgrows the caches (1000 images ran 7x slower per
#: image than 200 on the default CNN); results do not depend on it
INT_BATCH = 200


@dataclass
class ConvertOptions:
    coding: str = "sc-ttfs"
    timesteps: int = 4
    weight_bits: int = 8
    input_bits: int = 8
    act_bits: int = 8
    input_coding: str = "direct"
    pow2: bool = False
    finetune_epochs: int = 3
    finetune_lr: float = 1e-3
    calib_samples: int = 2000
    seed: int = 0


@dataclass
class Converted:
    """A converted network: the float SNN, its integer IR, and (after :func:`evaluate`) its metrics."""

    snn: FloatSNN
    net: Network
    metrics: dict[str, Any] = field(default_factory=dict)
    options: ConvertOptions = field(default_factory=ConvertOptions)
    float_ann: float = float("nan")  # the trained ANN's test accuracy (also in the provenance)
    finetune: dict[str, Any] = field(default_factory=dict)  # what the fine-tune pass reported
    seconds: float = 0.0  # conversion time (evaluate adds its own to metrics["seconds"])
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pass (PASSES)


class Shared:
    """What the conversions of one trained ANN have in common, computed once (``snnfpga run``
    converts up to 14 networks of one ANN). ``rate_timesteps``: every rate T that will be
    converted, so the λ search scores each candidate once for all of them.

    Nothing here changes a result: each item is exactly what one conversion computes alone.
    ``calibration``: the (images, labels) the thresholds are fitted on, given by the caller
    (:func:`snnfpga.api.convert`); by default a seeded sample of the training split.
    """

    def __init__(self, model: nn.Module, data: Dataset, rate_timesteps: tuple[int, ...] = (),
                 calibration: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.model, self.data = model, data
        self.rate_timesteps = tuple(sorted(set(int(t) for t in rate_timesteps)))
        self._layers: list | None = None
        self._float_ann: float | None = None
        self._calib: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._given_calib = calibration
        self._rate_scores: dict[tuple, dict[int, list[float]]] = {}

    def layers(self) -> list:
        """Pass 1: the traced layers, BN folded, checked to compute the model's function (once)."""
        if self._layers is None:
            model, data = self.model, self.data
            model.eval()
            layers = trace(model, data.shape)
            with torch.no_grad():  # the folded graph must be the same function as the model
                xs = torch.from_numpy(data.test_x[:256])
                ref = model(xs).double()
                err = ((forward_float(layers, xs) - ref).abs().max() / (1.0 + ref.abs().max())).item()
            if err > 1e-4:
                raise AssertionError(f"BN folding changed the network's output (relative error {err:.2e})")
            self._layers = layers
        return self._layers

    def float_ann(self) -> float:
        if self._float_ann is None:
            self._float_ann = accuracy(self.model, self.data.test_x, self.data.test_y)
        return self._float_ann

    def calibration(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._given_calib is not None:
            return self._given_calib
        if (n, seed) not in self._calib:
            self._calib[(n, seed)] = calibration_sample(self.data, n, seed)
        return self._calib[(n, seed)]

    def rate_scores(self, snn: FloatSNN, opts: ConvertOptions, progress: bool = False) -> list[float]:
        """The rate λ search's accuracy per percentile at ``snn.T``; the first call scores every
        T of ``rate_timesteps`` (and ``snn.T``) in one run per candidate."""
        key = (snn.input_coding, opts.calib_samples, opts.seed)
        if snn.T not in self._rate_scores.get(key, {}):
            cx, cy = self.calibration(opts.calib_samples, opts.seed)
            steps = tuple(sorted(set(self.rate_timesteps) | {snn.T}))
            self._rate_scores.setdefault(key, {}).update(
                rate_scores(snn, cx, cy, RATE_PERCENTILES, steps, progress=progress))
        return self._rate_scores[key][snn.T]


def calibration_sample(data: Dataset, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.random.default_rng(seed).permutation(len(data.train_y))[:n]
    return torch.from_numpy(data.train_x[idx]), torch.from_numpy(data.train_y[idx])


def evaluate_int(net: Network, x: np.ndarray, y: np.ndarray, batch: int = INT_BATCH, progress: bool = False) -> dict:
    """Integer reference accuracy and spikes per frame on float images ``x``."""
    frames = quantize_frames(net, x)
    correct, spikes = 0, 0
    for i in tqdm(range(0, len(y), batch), desc=f"integer reference ({net.coding}, T={net.timesteps})",
                  unit="batch", disable=not progress, leave=False):
        r = reference.simulate(net, frames[i:i + batch])
        correct += int((r.classes == y[i:i + batch]).sum())
        spikes += int(r.spikes_per_frame().sum())
    return {"accuracy": correct / len(y), "images": len(y), "spikes_per_frame": spikes / len(y)}


def convert_network(model: nn.Module, data: Dataset, opts: ConvertOptions, name: str = "model",
                    progress: bool = True, shared: Shared | None = None,
                    warm_start: Converted | None = None) -> Converted:
    """Passes 1-4 on a trained ANN (trace + BN fold, threshold init, fine-tune, quantize); no
    evaluation (:func:`evaluate` adds the metrics). ``shared``: work shared with the other
    conversions of the same model (:class:`Shared`; made here if not given). ``warm_start``: a
    fine-tuned conversion of the same model (same coding, another T) whose folded BN (gain and
    shift) this one starts from, before its thresholds are fitted (recorded in ``finetune``)."""
    if opts.timesteps > max_timesteps(opts.coding):  # before any work (the IR would refuse it)
        raise BadOption(f"--timesteps: a {opts.coding} network takes T in 1..{max_timesteps(opts.coding)} "
                        f"(docs/ir.md, limits), not {opts.timesteps}")
    t0 = time.perf_counter()
    shared = shared if shared is not None else Shared(model, data)
    if shared.model is not model or shared.data is not data:
        raise ValueError("shared work belongs to another model or data set")
    timings = dict.fromkeys(PASSES[:4], 0.0)
    t = time.perf_counter()
    layers = shared.layers()  # pass 1: trace, BN folded (once per model)
    snn = FloatSNN(layers, opts.coding, opts.timesteps, opts.input_coding, opts.pow2)
    if warm_start is not None:
        if warm_start.snn.layers is not layers:
            raise ValueError("warm_start must be a conversion of the same model (the same Shared)")
        snn.gain.load_state_dict(warm_start.snn.gain.state_dict())
        snn.shift.load_state_dict(warm_start.snn.shift.state_dict())
    float_ann = shared.float_ann()
    timings["trace"] = time.perf_counter() - t
    t = time.perf_counter()
    cx, cy = shared.calibration(opts.calib_samples, opts.seed)
    ft: dict[str, Any] = {"epochs": 0}
    if opts.coding == "rate":  # pass 2: threshold init
        pct = fit_rate_thresholds(snn, cx, cy, RATE_PERCENTILES, scores=shared.rate_scores(snn, opts, progress))
        init = {"percentile": pct}
        timings["thresholds"] = time.perf_counter() - t
    else:
        fit_ttfs_thresholds(snn, cx, progress=progress)
        init = snn.describe()
        timings["thresholds"] = time.perf_counter() - t
        t = time.perf_counter()
        ft = finetune(snn, data.train_x, data.train_y, epochs=opts.finetune_epochs,  # pass 3
                      lr=opts.finetune_lr, seed=opts.seed, progress=progress)
        if warm_start is not None:
            ft = dict(ft, warm_start=warm_start.net.name)
        timings["finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    provenance = {
        "snnfpga": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "dataset": data.name,
        "train_images": int(len(data.train_y)), "test_images": int(len(data.test_y)),
        "float_ann_accuracy": float_ann,
        "thresholds_init": init, "finetune": ft, "thresholds": snn.describe(),
        "input_range": [0.0, 1.0],
    }
    net = quantize(snn, name=name, weight_bits=opts.weight_bits, input_bits=opts.input_bits,  # pass 4
                   act_bits=opts.act_bits, provenance=provenance)
    timings["quantize"] = time.perf_counter() - t
    return Converted(snn=snn, net=net, options=opts, float_ann=float_ann, finetune=ft,
                     seconds=time.perf_counter() - t0, timings=timings)


def evaluate(c: Converted, data: Dataset, progress: bool = True,
             float_result: tuple[float, float] | None = None, float_ann: float | None = None) -> dict[str, Any]:
    """Float SNN and integer reference accuracy of a converted network on the test split; fills
    and returns ``c.metrics`` (the float ANN's accuracy is the one recorded in the provenance
    unless ``float_ann`` gives it on these images). ``float_result``: the float SNN's (accuracy,
    spikes per frame) if already known."""
    t0 = time.perf_counter()
    opts = c.options
    if float_result is None:
        float_result = snn_accuracy(c.snn, data.test_x, data.test_y, progress=progress)
    snn_acc, snn_spikes = float_result
    t_float = time.perf_counter() - t0
    t = time.perf_counter()
    int_res = evaluate_int(c.net, data.test_x, data.test_y, progress=progress)
    timings = dict(c.timings, float_snn=c.timings.get("float_snn", 0.0) + t_float,
                   int_ref=time.perf_counter() - t)
    c.metrics = {
        "coding": opts.coding, "timesteps": opts.timesteps, "input_coding": opts.input_coding,
        "float_ann": c.float_ann if float_ann is None else float_ann, "float_snn": snn_acc, "int_ref": int_res["accuracy"],
        "images": int_res["images"], "float_spikes_per_frame": snn_spikes,
        "spikes_per_frame": int_res["spikes_per_frame"], "finetune": c.finetune,
        "seconds": c.seconds + time.perf_counter() - t0 + c.timings.get("float_snn", 0.0),
        "seconds_per_pass": {k: timings.get(k, 0.0) for k in PASSES},
    }
    return c.metrics


def _rate_key(c: Converted) -> tuple:
    """Rate networks with equal keys differ only in T (the same λ, layers and gain/shift)."""
    snn = c.snn
    return (id(snn.layers), snn.input_coding, tuple(snn.rate_theta.tolist()),
            tuple(tuple(p.detach().flatten().tolist()) for p in list(snn.gain.values()) + list(snn.shift.values())))


def evaluate_all(convs: list[Converted], data: Dataset, progress: bool = True) -> list[dict[str, Any]]:
    """:func:`evaluate` every network; rate networks that differ only in T share one float-SNN run
    of the longest T (:meth:`FloatSNN.run_rate_steps`: exactly the shorter runs' results), timed
    in the first network of each group."""
    groups: dict[tuple, list[Converted]] = {}
    for c in convs:
        if c.options.coding == "rate":
            groups.setdefault(_rate_key(c), []).append(c)
    known: dict[int, tuple[float, float]] = {}
    for group in groups.values():
        if len(group) < 2:
            continue
        t = time.perf_counter()
        res = snn_accuracy(group[0].snn, data.test_x, data.test_y, steps=[c.snn.T for c in group], progress=progress)
        for c in group:
            known[id(c)] = res[c.snn.T]
        group[0].timings["float_snn"] = group[0].timings.get("float_snn", 0.0) + time.perf_counter() - t
    out = []
    for c in tqdm(convs, desc="evaluate", unit="net", disable=not progress):
        out.append(evaluate(c, data, progress=progress, float_result=known.get(id(c))))
    return out


def convert(model: nn.Module, data: Dataset, opts: ConvertOptions, name: str = "model",
            progress: bool = True) -> Converted:
    """Run every conversion pass on a trained ANN and evaluate the result on the test split."""
    c = convert_network(model, data, opts, name=name, progress=progress)
    evaluate(c, data, progress=progress)
    return c
