"""Model zoo: small networks the converter and the hardware handle (``nn.Sequential`` only)."""

from __future__ import annotations

from torch import nn

__all__ = ["mlp", "cnn", "build_model", "MODELS"]


def mlp(in_shape: tuple[int, ...], hidden: tuple[int, ...] = (128,), classes: int = 10,
        batchnorm: bool = True) -> nn.Sequential:
    """Flatten → (Linear → BatchNorm1d → ReLU)* → Linear."""
    n_in = 1
    for s in in_shape:
        n_in *= s
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers.append(nn.Linear(n_in, h))
        if batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.ReLU())
        n_in = h
    layers.append(nn.Linear(n_in, classes))
    return nn.Sequential(*layers)


def cnn(in_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 32), classes: int = 10) -> nn.Sequential:
    """(Conv3x3 → BatchNorm2d → ReLU → AvgPool2)* → Flatten → Linear: pooling by average, as SNNs need."""
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [nn.Conv2d(c, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(), nn.AvgPool2d(2)]
        c, h, w = ch, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, classes)]
    return nn.Sequential(*layers)


MODELS = {"mlp": mlp, "cnn": cnn}


def build_model(kind: str, in_shape: tuple[int, ...], classes: int = 10, hidden: tuple[int, ...] | None = None) -> nn.Sequential:
    if kind == "mlp":
        return mlp(in_shape, hidden or (128,), classes)
    if kind == "cnn":
        return cnn(in_shape, hidden or (16, 32), classes)
    raise ValueError(f"unknown model {kind!r}; choose one of: {', '.join(MODELS)}")
