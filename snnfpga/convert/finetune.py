"""Fine-tuning of the SC-TTFS / TTFS thresholds (α, β, k) and the folded BN (gain, shift).

The paper's recipe: cross-entropy on the output membrane, spike times held constant, Adam with
a cosine schedule. Read literally it only reaches the last hidden layer, so (DESIGN §3) the
folded BN is trained too, through a straight-through gradient of the spike quantiser, with
the thresholds at a smaller learning rate. The result is kept only if training accuracy
does not drop.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .snn import FloatSNN
from .train import batches

__all__ = ["finetune", "snn_accuracy"]


@torch.no_grad()
def snn_accuracy(snn: FloatSNN, x: np.ndarray, y: np.ndarray, batch: int = 500, steps=None,
                 progress: bool = False, desc: str | None = None):
    """(accuracy, mean spikes per frame) of the float SNN; with ``steps`` (rate coding), a dict
    ``{T: (accuracy, spikes per frame)}`` of the same network run for each T, from one run of the
    longest (:meth:`FloatSNN.run_rate_steps`)."""
    snn.eval()
    if steps is not None:
        steps = tuple(sorted(set(int(t) for t in steps)))
    correct = dict.fromkeys(steps or (None,), 0)
    spikes = dict.fromkeys(steps or (None,), 0.0)
    label = desc or f"float SNN ({snn.coding}, T={','.join(map(str, steps)) if steps else snn.T})"
    with tqdm(total=len(y), desc=label, unit="img", disable=not progress, leave=False) as bar:
        for xb, yb in batches(x, y, batch):
            res = snn.run_rate_steps(xb, steps) if steps is not None else {None: snn.run(xb)[:2]}
            for t, (out, s) in res.items():
                correct[t] += (out.argmax(1) == yb).sum().item()
                spikes[t] += s.sum().item()
            bar.update(len(yb))
    if steps is None:
        return correct[None] / len(y), spikes[None] / len(y)
    return {t: (correct[t] / len(y), spikes[t] / len(y)) for t in steps}


def finetune(snn: FloatSNN, x: np.ndarray, y: np.ndarray, epochs: int = 3, lr: float = 1e-3,
             threshold_lr_ratio: float = 0.1, batch: int = 64, seed: int = 0, progress: bool = True,
             mode: str = "bn") -> dict:
    """Fine-tune in place; returns training accuracy before/after and whether it was kept.

    ``mode="bn"`` (default) trains the folded BN through the straight-through gradient and the
    thresholds at ``lr·threshold_lr_ratio``; ``mode="paper"`` is the paper read literally:
    thresholds only, at ``lr``, spike times constant, no straight-through gradient.
    """
    if mode not in ("bn", "paper"):
        raise ValueError(f"mode must be 'bn' or 'paper', not {mode!r}")
    if snn.coding == "rate" or epochs <= 0:
        return {"epochs": 0}
    before, _ = snn_accuracy(snn, x, y, progress=progress, desc=f"train accuracy before fine-tuning (T={snn.T})")
    saved = copy.deepcopy(snn.state_dict())
    torch.manual_seed(seed)
    thresholds = [p for p in snn.thresholds.parameters() if p.requires_grad]
    if mode == "bn":
        groups = [{"params": list(snn.gain.parameters()) + list(snn.shift.parameters()), "lr": lr}]
        if thresholds:
            groups.append({"params": thresholds, "lr": lr * threshold_lr_ratio})
        opt = torch.optim.Adam(groups)
    elif thresholds:
        opt = torch.optim.Adam(thresholds, lr=lr)
    else:
        return {"epochs": 0, "mode": mode, "note": "nothing to train (power-of-two thresholds are fixed)"}
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    snn.ste = mode == "bn"
    bar = tqdm(total=steps, desc=f"fine-tune {snn.coding} (T={snn.T}, {epochs} epochs)", unit="batch",
               disable=not progress, leave=False)
    for epoch in range(epochs):
        snn.train()
        total = 0.0
        for xb, yb in batches(x, y, batch, shuffle=True, seed=seed + epoch):
            bar.update(1)
            opt.zero_grad()
            out, _, _ = snn.run(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for th in snn.thresholds.values():
                    th.k_e.clamp_(min=0)
                    th.k_c.clamp_(min=0)
            total += loss.item() * len(yb)
        bar.set_postfix(epoch=epoch + 1, loss=f"{total / len(y):.4f}")
    bar.close()
    snn.ste = False
    snn.eval()
    after, _ = snn_accuracy(snn, x, y, progress=progress, desc=f"train accuracy after fine-tuning (T={snn.T})")
    kept = after >= before
    if not kept:
        snn.load_state_dict(saved)
    return {"epochs": epochs, "mode": mode, "train_acc_before": before, "train_acc_after": after, "kept": kept}
