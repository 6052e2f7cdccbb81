"""The conversion flow, as an explicit ordered list of passes.

``trace (BN fold) → threshold init → fine-tune → quantize`` (:func:`convert_network`); then
evaluation of the float ANN, the float SNN and the integer reference on the test split
(:func:`evaluate`). :func:`convert` runs both; ``snnfpga run`` (:mod:`snnfpga.flow`) runs every
conversion of a sweep first and evaluates them after.
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
from ..ir import Network
from .quantize import quantize, quantize_frames
from .snn import FloatSNN
from .thresholds import fit_rate_thresholds, fit_ttfs_thresholds
from .train import accuracy

__all__ = ["ConvertOptions", "Converted", "convert", "convert_network", "evaluate", "evaluate_int",
           "calibration_sample"]


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


def calibration_sample(data: Dataset, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.random.default_rng(seed).permutation(len(data.train_y))[:n]
    return torch.from_numpy(data.train_x[idx]), torch.from_numpy(data.train_y[idx])


def evaluate_int(net: Network, x: np.ndarray, y: np.ndarray, batch: int = 1000, progress: bool = False) -> dict:
    """Integer reference accuracy and spikes per frame on float images ``x``."""
    frames = quantize_frames(net, x)
    correct, spikes = 0, 0
    for i in tqdm(range(0, len(y), batch), desc=f"integer reference ({net.coding}, T={net.timesteps})",
                  disable=not progress, leave=False):
        r = reference.simulate(net, frames[i:i + batch])
        correct += int((r.classes == y[i:i + batch]).sum())
        spikes += int(r.spikes_per_frame().sum())
    return {"accuracy": correct / len(y), "images": len(y), "spikes_per_frame": spikes / len(y)}


def convert_network(model: nn.Module, data: Dataset, opts: ConvertOptions, name: str = "model",
                    progress: bool = True) -> Converted:
    """Passes 1-4 on a trained ANN (trace + BN fold, threshold init, fine-tune, quantize); no
    evaluation (:func:`evaluate` adds the metrics)."""
    t0 = time.time()
    model.eval()
    layers = trace(model, data.shape)  # pass 1: trace, BN folded
    with torch.no_grad():  # the folded graph must be the same function as the model
        xs = torch.from_numpy(data.test_x[:256])
        ref = model(xs).double()
        err = ((forward_float(layers, xs) - ref).abs().max() / (1.0 + ref.abs().max())).item()
    if err > 1e-4:
        raise AssertionError(f"BN folding changed the network's output (relative error {err:.2e})")
    snn = FloatSNN(layers, opts.coding, opts.timesteps, opts.input_coding, opts.pow2)
    cx, cy = calibration_sample(data, opts.calib_samples, opts.seed)
    ft: dict[str, Any] = {"epochs": 0}
    if opts.coding == "rate":  # pass 2: threshold init
        pct = fit_rate_thresholds(snn, cx, cy)
        init = {"percentile": pct}
    else:
        fit_ttfs_thresholds(snn, cx, progress=progress)
        init = snn.describe()
        ft = finetune(snn, data.train_x, data.train_y, epochs=opts.finetune_epochs,  # pass 3
                      lr=opts.finetune_lr, seed=opts.seed, progress=progress)
    provenance = {
        "snnfpga": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "dataset": data.name,
        "train_images": int(len(data.train_y)), "test_images": int(len(data.test_y)),
        "float_ann_accuracy": accuracy(model, data.test_x, data.test_y),
        "thresholds_init": init, "finetune": ft, "thresholds": snn.describe(),
        "input_range": [0.0, 1.0],
    }
    net = quantize(snn, name=name, weight_bits=opts.weight_bits, input_bits=opts.input_bits,  # pass 4
                   act_bits=opts.act_bits, provenance=provenance)
    return Converted(snn=snn, net=net, options=opts, float_ann=provenance["float_ann_accuracy"], finetune=ft,
                     seconds=time.time() - t0)


def evaluate(c: Converted, data: Dataset, progress: bool = True) -> dict[str, Any]:
    """Float SNN and integer reference accuracy of a converted network on the test split; fills
    and returns ``c.metrics`` (the float ANN's accuracy is the one recorded in the provenance)."""
    t0 = time.time()
    opts = c.options
    snn_acc, snn_spikes = snn_accuracy(c.snn, data.test_x, data.test_y)
    int_res = evaluate_int(c.net, data.test_x, data.test_y, progress=progress)
    c.metrics = {
        "coding": opts.coding, "timesteps": opts.timesteps, "input_coding": opts.input_coding,
        "float_ann": c.float_ann, "float_snn": snn_acc, "int_ref": int_res["accuracy"],
        "images": int_res["images"], "float_spikes_per_frame": snn_spikes,
        "spikes_per_frame": int_res["spikes_per_frame"], "finetune": c.finetune,
        "seconds": c.seconds + time.time() - t0,
    }
    return c.metrics


def convert(model: nn.Module, data: Dataset, opts: ConvertOptions, name: str = "model",
            progress: bool = True) -> Converted:
    """Run every conversion pass on a trained ANN and evaluate the result on the test split."""
    c = convert_network(model, data, opts, name=name, progress=progress)
    evaluate(c, data, progress=progress)
    return c
