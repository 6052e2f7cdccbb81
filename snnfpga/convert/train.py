"""ANN training: plain cross-entropy with Adam and a cosine schedule, with a progress bar."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Dataset

__all__ = ["train_ann", "accuracy", "batches"]


def batches(x: np.ndarray, y: np.ndarray, size: int, shuffle: bool = False, seed: int = 0):
    idx = np.random.default_rng(seed).permutation(len(y)) if shuffle else np.arange(len(y))
    for i in range(0, len(idx), size):
        j = idx[i:i + size]
        yield torch.from_numpy(x[j]), torch.from_numpy(y[j])


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for xb, yb in batches(x, y, batch):
        correct += (model(xb).argmax(1) == yb).sum().item()
    return correct / len(y)


def train_ann(model: nn.Module, data: Dataset, epochs: int = 30, lr: float = 3e-3, batch: int = 64,
              weight_decay: float = 1e-4, seed: int = 0, progress: bool = True) -> dict:
    """Train in place; returns the final train/test accuracy."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(data.train_y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc=f"train ANN ({data.name})", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for xb, yb in batches(data.train_x, data.train_y, batch, shuffle=True, seed=seed + epoch):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(yb)
        bar.set_postfix(loss=f"{total / len(data.train_y):.4f}")
    model.eval()
    return {"train": accuracy(model, data.train_x, data.train_y), "test": accuracy(model, data.test_x, data.test_y)}
