"""Threshold initialisation from activation statistics (a pass over the float SNN).

TTFS / SC-TTFS: per stage, in network order, a grid search for ``θ_e(0), k_e, θ_c(0), k_c``
minimising the squared error between the decoded value and ``ReLU(v)`` on membranes sampled
from the SNN itself (earlier stages already spiking), so errors do not compound unseen.
Rate: ``λ`` per stage = a percentile of the ANN's activations, the percentile picked by
training accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..ir.stage import Stage
from .snn import INPUT_STAGE, FloatSNN, ttfs_decode, ttfs_encode

__all__ = ["fit_ttfs_thresholds", "fit_rate_thresholds", "rate_scores", "rate_lambdas", "rate_search_images", "decode_error"]

#: membrane samples per stage the grid search scores (a random subset beyond this): enough for
#: the 99.9th percentile and the mean error to be stable, small enough that the (candidates ×
#: samples × T) encode of one chunk stays a few MB.
MAX_SAMPLES = 16_000
#: percentile of the positive membranes taken as the activation scale ``top`` every grid is
#: relative to (the maximum is an outlier; DESIGN §3: the best θ_e(0) sat well below it).
TOP_PERCENTILE = 0.999
#: θ_e(0) candidates: 20 points, geometric from 0.08·top to 1.5·top. Geometric because the error
#: is flat in log θ; the range reaches far below ``top`` because the best θ_e(0) sits well below
#: the 99.9th percentile (DESIGN §3), and a little above it for heavy-tailed stages.
THETA0_GRID = (0.08, 1.5, 20)
#: decay k candidates per step (θ(t) = θ(0)·e^(−k·t)): 16 points in [0, 3]; k = 3 already divides
#: by 20 per step, so larger k only wastes later steps. T = 1 has no decay to fit.
K_GRID = (0.0, 3.0, 16)
#: θ_c(0)/θ_e(0) candidates for the calibration spike: 16 points, geometric from 1/20 to 1 (the
#: calibration spike refines the residual, which is below θ_e(0) by construction).
CAL_RATIO_GRID = (0.05, 1.0, 16)
#: calibrated search: alternate the (θ_e, k_e) and (θ_c/θ_e, k_c) grids this many times. Each fit
#: depends on the other; a second round lets the encode series adapt to the fitted calibration
#: spike (coordinate descent; the grids are small, so this is cheap).
CALIBRATED_ROUNDS = 2
#: where the calibration grid starts before the first (θ_e, k_e) search: θ_c(0) = 1/4 θ_e(0) and
#: k = 0.7 (about halving per step) are mid-grid guesses; both are re-fitted.
START_CAL_RATIO, START_K = 0.25, 0.7
#: candidate LUTs scored per batch in :func:`_best` (bounds memory, not results)
CHUNK = 64
#: power-of-two series: halve per step, θ_c(0)/θ_e(0) = 2^-m for m in 0..POW2_MAX_SHIFT
LN2 = float(np.log(2.0))
POW2_MAX_SHIFT = 7
#: rate coding: λ candidates as percentiles of the ANN's positive activations (the "robust
#: normalisation" of Rueckauer et al. 2017 uses 99.9–99.999; 99 and 100 bracket it), the one with
#: the best calibration accuracy wins
RATE_PERCENTILES = (99.0, 99.7, 99.9, 99.99, 100.0)
#: the rate λ search scores each candidate on at most this many image-neurons (calibration images
#: × spiking neurons): all 2000 calibration images for an MLP (a 128-neuron MLP needs 256,000),
#: the first 531 for the default CNN (18,816 neurons; 2000 images at T = 64 took minutes a
#: candidate on 2 cores). The images are a random sample, so the first n are one too; n does not
#: depend on T, so a network is the same converted alone or in a sweep.
RATE_SEARCH_IMAGE_NEURONS = 10_000_000
#: calibration images per rate SNN run in the λ search (memory; results do not depend on it: each
#: image's output is the same in any batch, checked bit for bit on the MLPs)
RATE_BATCH = 500


def _series(theta0: torch.Tensor, k: torch.Tensor, T: int) -> torch.Tensor:
    return theta0[:, None] * torch.exp(-k[:, None] * torch.arange(T, dtype=torch.float64))


def decode_error(v: torch.Tensor, enc: torch.Tensor, cal: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error of the decoded value against ReLU(v), for C candidate LUTs at once.

    ``v``: (M,) samples; ``enc``/``cal``: (C, T). Returns (C,). Uses the float SNN's own
    encode/decode, so the fit optimises exactly what the network will do.
    """
    e = enc[:, None, :]
    c = None if cal is None else cal[:, None, :]
    t_e, t_c = ttfs_encode(v[None, :], e, c)
    val = ttfs_decode(t_e, t_c, e, c)
    return ((val - v.clamp(min=0)[None]) ** 2).mean(1)


def _best(v: torch.Tensor, enc: torch.Tensor, cal: torch.Tensor | None, chunk: int = CHUNK) -> int:
    errs = []
    for i in range(0, enc.shape[0], chunk):
        errs.append(decode_error(v, enc[i:i + chunk], None if cal is None else cal[i:i + chunk]))
    return int(torch.cat(errs).argmin())


def fit_stage(v: torch.Tensor, T: int, calibrated: bool, pow2: bool = False) -> tuple[float, float, float, float]:
    """Grid search on one stage's membrane samples; returns θ_e(0), k_e, θ_c(0), k_c.

    ``pow2`` restricts the series to halving per step (``k = ln 2``) with ``θ_c(0)/θ_e(0)`` a
    power of two, so every decode LUT entry is a power of two: the hardware decodes by shifting.
    """
    v = v.flatten().double()
    if v.numel() > MAX_SAMPLES:
        v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:MAX_SAMPLES]]
    pos = v[v > 0]
    top = float(torch.quantile(pos, TOP_PERCENTILE)) if pos.numel() else 1.0
    top = max(top, 1e-6)
    e0_grid = torch.tensor(np.geomspace(*THETA0_GRID) * top)
    k_grid = torch.tensor(np.linspace(*K_GRID) if T > 1 else [0.0], dtype=torch.float64)
    ratio_grid = torch.tensor(np.geomspace(*CAL_RATIO_GRID))
    kc_grid = torch.tensor(np.linspace(*K_GRID) if T > 1 else [0.0], dtype=torch.float64)
    e0, ke = top * 0.5, START_K  # e0/ke are overwritten by the first search; only c0/e0 and kc seed it
    c0, kc = START_CAL_RATIO * e0, START_K
    if pow2:
        k_grid = kc_grid = torch.tensor([LN2], dtype=torch.float64)
        ratio_grid = torch.tensor([2.0 ** -m for m in range(0, POW2_MAX_SHIFT + 1)], dtype=torch.float64)
        ke = kc = LN2
    for _ in range(CALIBRATED_ROUNDS if calibrated else 1):
        E0, KE = torch.meshgrid(e0_grid, k_grid, indexing="ij")
        E0, KE = E0.flatten(), KE.flatten()
        enc = _series(E0, KE, T)
        cal = _series(E0 * (c0 / e0), torch.full_like(KE, kc), T) if calibrated else None
        j = _best(v, enc, cal)
        e0, ke = float(E0[j]), float(KE[j])
        if not calibrated:
            break
        R, KC = torch.meshgrid(ratio_grid, kc_grid, indexing="ij")
        R, KC = R.flatten(), KC.flatten()
        enc = _series(torch.full_like(R, e0), torch.full_like(R, ke), T)
        cal = _series(R * e0, KC, T)
        j = _best(v, enc, cal)
        c0, kc = float(R[j]) * e0, float(KC[j])
    return e0, ke, c0, kc


@torch.no_grad()
def fit_ttfs_thresholds(snn: FloatSNN, x: torch.Tensor, progress: bool = True) -> dict:
    """Set every stage's threshold series from the SNN's own membranes on ``x``."""
    calibrated = snn.coding == "sc-ttfs"
    fitted = {}
    for stage in tqdm(snn.stages, desc=f"fit {snn.coding} thresholds (T={snn.T})", disable=not progress, leave=False):
        v = snn.stage_inputs(x, stage)
        e0, ke, c0, kc = fit_stage(v, snn.T, calibrated, snn.pow2)
        snn.threshold(stage).set(e0, ke, c0, kc)
        fitted[stage.name] = (e0, ke, c0, kc)
    return fitted


@torch.no_grad()
def rate_scores(snn: FloatSNN, x: torch.Tensor, y: torch.Tensor, percentiles: tuple[float, ...] = RATE_PERCENTILES,
                timesteps: tuple[int, ...] | None = None, progress: bool = False) -> dict[int, list[float]]:
    """Accuracy on (x, y) of each λ candidate (:func:`rate_lambdas` at each percentile) at each T
    in ``timesteps`` (default: the SNN's T): ``{T: [accuracy per percentile]}``. The candidates are
    the percentiles of the ANN's activations on all of ``x``; they are scored on its first
    :func:`rate_search_images`.

    One run of ``max(timesteps)`` steps per candidate serves every T (:meth:`FloatSNN.run_rate_steps`
    gives exactly the outputs of shorter runs): the λ candidates depend on the ANN only, not on T,
    so a T sweep scores them once. The SNN's λ are left as they were.
    """
    steps = tuple(sorted(set(timesteps or (snn.T,))))
    acts = _ann_activations(snn, x.double())
    n = rate_search_images(snn, len(y))
    x, y = x[:n], y[:n]
    saved = snn.rate_theta.clone()
    scores: dict[int, list[float]] = {t: [] for t in steps}
    for p in tqdm(percentiles, desc=f"rate λ search (T={','.join(map(str, steps))})", unit="λ", disable=not progress,
                  leave=False):
        snn.rate_theta.copy_(torch.tensor(rate_lambdas(snn, acts, p), dtype=torch.float64))
        correct = dict.fromkeys(steps, 0)
        for i in range(0, len(y), RATE_BATCH):
            for t, (out, _) in snn.run_rate_steps(x[i:i + RATE_BATCH], steps).items():
                correct[t] += int((out.argmax(1) == y[i:i + RATE_BATCH]).sum())
        for t in steps:
            scores[t].append(correct[t] / len(y))
    snn.rate_theta.copy_(saved)
    return scores


def rate_search_images(snn: FloatSNN, available: int) -> int:
    """Calibration images the λ search scores on (:data:`RATE_SEARCH_IMAGE_NEURONS`), at least 100."""
    neurons = sum(int(np.prod(snn.layers[s].out_shape)) for s in snn.stages if s != INPUT_STAGE)
    if snn.input_coding == "spikes":
        neurons += int(np.prod(snn.layers[0].in_shape))
    return min(available, max(100, RATE_SEARCH_IMAGE_NEURONS // max(1, neurons)))


def rate_lambdas(snn: FloatSNN, acts: dict[Stage, np.ndarray], percentile: float) -> list[float]:
    """λ per stage: the ``percentile`` of the ANN's positive activations there."""
    return [max(float(np.percentile(acts[s], percentile)), 1e-6) for s in snn.stages]


@torch.no_grad()
def fit_rate_thresholds(snn: FloatSNN, x: torch.Tensor, y: torch.Tensor,
                        percentiles: tuple[float, ...] = RATE_PERCENTILES, scores: list[float] | None = None,
                        progress: bool = False) -> float:
    """λ per stage = a percentile of the ANN's activations; picks the percentile by accuracy on (x, y)
    (the first best). ``scores``: those accuracies at the SNN's T, one per percentile, if already
    known (:func:`rate_scores` of a sweep)."""
    if scores is None:
        scores = rate_scores(snn, x, y, percentiles, progress=progress)[snn.T]
    if len(scores) != len(percentiles):
        raise ValueError(f"{len(scores)} scores for {len(percentiles)} percentiles")
    best, best_acc = percentiles[0], -1.0
    for p, acc in zip(percentiles, scores):
        if acc > best_acc:
            best, best_acc = p, acc
    acts = _ann_activations(snn, x.double())
    snn.rate_theta.copy_(torch.tensor(rate_lambdas(snn, acts, best), dtype=torch.float64))
    return best


def _ann_activations(snn: FloatSNN, x: torch.Tensor) -> dict[Stage, np.ndarray]:
    from .graph import apply_layer, sources

    acts = {}
    if snn.input_coding == "spikes":
        acts[INPUT_STAGE] = x.flatten().numpy()
    vals = {-1: x}
    for i, layer in enumerate(snn.layers):
        src = sources(snn.layers, i)
        if layer.kind == "add":
            a, b = vals[src[0]], vals[src[1]]
            h = (a.reshape(a.shape[0], -1) + b.reshape(b.shape[0], -1)).reshape(a.shape)
        elif not layer.weighted:
            vals[i] = apply_layer(layer, vals[src[0]])
            continue
        else:
            h = snn.charge(i, vals[src[0]])
            if i == snn.weighted[-1]:
                break
            if i in snn.branch_of:
                vals[i] = h
                continue
        h = h.clamp(min=0)
        vals[i] = h
        a = h.flatten()
        a = a[a > 0]
        acts[Stage(i)] = a.numpy() if a.numel() else np.ones(1)
    return acts
