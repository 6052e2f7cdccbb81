"""Model zoo: small networks the converter and the hardware handle (``nn.Sequential`` only)."""

from __future__ import annotations

from torch import nn

from ..errors import BadFile, BadOption

__all__ = ["mlp", "cnn", "build_model", "MODELS", "save_checkpoint", "load_checkpoint", "CheckpointError"]


class CheckpointError(BadFile, ValueError):
    """A checkpoint or its architecture file that is missing or unreadable."""


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
    raise BadOption(f"unknown model {kind!r}; choose one of: {', '.join(MODELS)}")


def save_checkpoint(model: nn.Sequential, arch: dict, path) -> None:
    """``<path>`` holds the state dict (tensors only), ``<path>.json`` the architecture."""
    import json
    from pathlib import Path

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(arch, indent=1, sort_keys=True) + "\n")


def load_checkpoint(path) -> tuple[nn.Sequential, dict]:
    """Rebuild a model saved by :func:`save_checkpoint` (``weights_only``: nothing is unpickled)."""
    import json
    from pathlib import Path

    import torch

    path = Path(path)
    meta = path.with_suffix(path.suffix + ".json")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not meta.is_file():
        raise CheckpointError(f"{meta}: architecture file not found (written beside the checkpoint by 'snnfpga train')")
    try:
        arch = json.loads(meta.read_text())
        model = build_model(arch["model"], tuple(arch["in_shape"]), arch["classes"], tuple(arch["hidden"]))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{meta}: malformed architecture file ({e!r}); needs model, in_shape, classes, hidden") from None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except Exception as e:  # torch raises several types for a bad file
        raise CheckpointError(f"{path}: not a loadable state dict for {arch['model']} ({e})") from None
    model.eval()
    return model, arch
