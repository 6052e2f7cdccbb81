"""Model zoo: small networks the converter handles (MLP and CNN as ``nn.Sequential``, a ResNet
as a module the converter traces with ``torch.fx``)."""

from __future__ import annotations

from torch import nn

from ..errors import BadFile, BadOption

__all__ = ["mlp", "cnn", "resnet", "BasicBlock", "ResNet", "build_model", "MODELS", "save_checkpoint", "load_checkpoint", "CheckpointError"]


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


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3×3 conv+BN, the shortcut added before the last
    ReLU; the shortcut is the identity, or a 1×1 conv+BN where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = nn.functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nn.functional.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Conv3×3 stem, one basic block per entry of ``channels`` (identity shortcut where the
    width stays, else stride 2 and a 1×1 shortcut), AvgPool2 → Flatten → Linear."""

    def __init__(self, in_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 16, 32), classes: int = 10):
        super().__init__()
        c, h, w = in_shape
        self.stem = nn.Sequential(nn.Conv2d(c, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]),
                                  nn.ReLU())
        blocks, c = [], channels[0]
        for ch in channels[1:]:
            stride = 1 if ch == c else 2
            blocks.append(BasicBlock(c, ch, stride))
            c, h, w = ch, (h - 1) // stride + 1, (w - 1) // stride + 1
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(c * (h // 2) * (w // 2), classes)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(x.flatten(1))


def resnet(in_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 16, 32), classes: int = 10) -> ResNet:
    """A small ResNet: stem width ``channels[0]``, then a basic block per further entry."""
    if len(channels) < 2:
        raise BadOption(f"a resnet needs a stem width and at least one block width, not {channels}")
    return ResNet(in_shape, tuple(channels), classes)


MODELS = {"mlp": mlp, "cnn": cnn, "resnet": resnet}


def build_model(kind: str, in_shape: tuple[int, ...], classes: int = 10, hidden: tuple[int, ...] | None = None) -> nn.Module:
    if kind == "mlp":
        return mlp(in_shape, hidden or (128,), classes)
    if kind == "cnn":
        return cnn(in_shape, hidden or (16, 32), classes)
    if kind == "resnet":
        return resnet(in_shape, hidden or (16, 16, 32), classes)
    raise BadOption(f"unknown model {kind!r}; choose one of: {', '.join(MODELS)}")


def save_checkpoint(model: nn.Module, arch: dict, path) -> None:
    """``<path>`` holds the state dict (tensors only), ``<path>.json`` the architecture."""
    import json
    from pathlib import Path

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(arch, indent=1, sort_keys=True) + "\n")


def load_checkpoint(path) -> tuple[nn.Module, dict]:
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
