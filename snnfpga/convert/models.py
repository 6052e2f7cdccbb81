"""Model zoo: small networks the converter handles (MLP and CNN as ``nn.Sequential``, a ResNet
as a module the converter traces with ``torch.fx``)."""

from __future__ import annotations

from torch import nn

from ..errors import BadFile, BadOption

__all__ = ["mlp", "cnn", "CNN_OPTIONS", "model_options", "resnet", "BasicBlock", "ResNet", "build_model", "MODELS", "save_checkpoint", "load_checkpoint", "CheckpointError"]


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


def _per_layer(name: str, values: tuple[int, ...] | None, n: int, default: int, lo: int) -> tuple[int, ...]:
    """One value per conv stage: ``default`` for all, a single value for all, or one each."""
    if values is None or len(values) == 0:
        return (default,) * n
    values = tuple(int(v) for v in values)
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise BadOption(f"cnn {name}: give one value or one per conv layer ({n}), not {len(values)}: {list(values)}")
    bad = [v for v in values if v < lo]
    if bad:
        raise BadOption(f"cnn {name}: every value must be >= {lo}, not {bad[0]}")
    return values


def cnn(in_shape: tuple[int, ...], channels: tuple[int, ...] = (16, 32), classes: int = 10, *,
        kernel: tuple[int, ...] | None = None, stride: tuple[int, ...] | None = None,
        pool: tuple[int, ...] | None = None) -> nn.Sequential:
    """(Conv k×k stride s, padding k//2 → BatchNorm2d → ReLU [→ AvgPool p])* → Flatten → Linear:
    pooling by average, as SNNs need.

    ``kernel``, ``stride`` and ``pool`` give one value for every conv stage or one per stage
    (defaults 3, 1 and 2: the zoo's original network; pool 1 = none). A strided convolution
    instead of stride 1 + pool 2 keeps the layer's partial sums at the pooled resolution, a
    quarter of the memory and of the next layer's fan-out in hardware (docs/results-cnn.md,
    "Board goals")."""
    if len(in_shape) != 3:
        raise BadOption(f"a cnn needs (channels, height, width) input, not {tuple(in_shape)}")
    n = len(channels)
    kernel = _per_layer("kernel", kernel, n, 3, 1)
    stride = _per_layer("stride", stride, n, 1, 1)
    pool = _per_layer("pool", pool, n, 2, 1)
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for i, ch in enumerate(channels):
        k, s, p = kernel[i], stride[i], pool[i]
        h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        if h < p or w < p or h < 1 or w < 1:
            raise BadOption(f"cnn layer {i} (kernel {k}, stride {s}, pool {p}) leaves no output: "
                            f"{h}×{w} before pooling; use fewer layers, smaller strides or pools")
        layers += [nn.Conv2d(c, ch, k, stride=s, padding=k // 2), nn.BatchNorm2d(ch), nn.ReLU()]
        if p > 1:
            layers.append(nn.AvgPool2d(p))
            h, w = h // p, w // p
        c = ch
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


#: options of the ``cnn`` builder beyond its channels (``--kernel``, ``--stride``, ``--pool``):
#: recorded in a checkpoint's architecture file only when given, so older files stay valid
CNN_OPTIONS = ("kernel", "stride", "pool")


def model_options(arch: dict) -> dict[str, tuple[int, ...]]:
    """The :data:`CNN_OPTIONS` an architecture dict (or run options as a dict) sets."""
    return {k: tuple(arch[k]) for k in CNN_OPTIONS if arch.get(k) is not None}


def build_model(kind: str, in_shape: tuple[int, ...], classes: int = 10, hidden: tuple[int, ...] | None = None,
                **options: tuple[int, ...] | None) -> nn.Module:
    """The zoo's ``kind`` network; ``options`` (:data:`CNN_OPTIONS`, None = default) only for ``cnn``."""
    unknown = sorted(set(options) - set(CNN_OPTIONS))
    if unknown:
        raise BadOption(f"unknown model option(s) {unknown}; known: {', '.join(CNN_OPTIONS)}")
    given = {k: v for k, v in options.items() if v is not None}
    if given and kind != "cnn":
        raise BadOption(f"--{'/--'.join(sorted(given))} only apply to --model cnn, not {kind!r}")
    if kind == "mlp":
        return mlp(in_shape, hidden or (128,), classes)
    if kind == "cnn":
        return cnn(in_shape, hidden or (16, 32), classes, **given)
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
        model = build_model(arch["model"], tuple(arch["in_shape"]), arch["classes"], tuple(arch["hidden"]),
                            **model_options(arch))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{meta}: malformed architecture file ({e!r}); needs model, in_shape, classes, hidden") from None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    except Exception as e:  # torch raises several types for a bad file
        raise CheckpointError(f"{path}: not a loadable state dict for {arch['model']} ({e})") from None
    model.eval()
    return model, arch
