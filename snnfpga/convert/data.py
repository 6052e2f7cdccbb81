"""Data sets, offline: every loader reads files already on disk and never downloads.

Images come back as float32 arrays ``(N, C, H, W)`` in ``[0, 1]`` with int64 labels.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadFile, BadOption

__all__ = ["Dataset", "DatasetNotFound", "BadDataFile", "DATASETS", "load_dataset", "read_idx"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout (snnfpga/convert/data.py)
#: MNIST test set (10,000 images) shipped beside the project; split 0–7999 / 8000–9999
MNIST10K_DIRS = [PROJECT_ROOT.parent / "shared" / "data" / "mnist10k"]
FASHION_DIRS = [Path("/usr/share/datasets/fashion-mnist")]


class DatasetNotFound(BadFile, FileNotFoundError):
    """A data set whose files are not where we looked; the message lists every place."""


class BadDataFile(BadFile, ValueError):
    """A data file that is not what its name says (IDX header, CIFAR record size)."""


@dataclass
class Dataset:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: int = 10

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, shape={self.shape}, train={len(self.train_y)}, "
                f"test={len(self.test_y)}, classes={self.classes})")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the MNIST format, with its header checked."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise BadDataFile(f"{path}: not an IDX file (bad magic {data[:4]!r})")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise BadDataFile(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise BadDataFile(f"{path}: header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _find(name: str, dirs: list[Path], files: list[str]) -> Path:
    tried = []
    for d in dirs:
        for variant in (files, [f.removesuffix(".gz") for f in files]):
            if all((d / f).is_file() for f in variant):
                return d
        tried.append(str(d))
    raise DatasetNotFound(f"data set '{name}' not found: looked for {', '.join(files)} in "
                          f"{'; '.join(tried)}")


def _idx_pair(d: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    def pick(stem: str) -> Path:
        p = d / f"{stem}.gz"
        return p if p.is_file() else d / stem
    x = read_idx(pick(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(pick(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return x[:, None], y


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)  # fixed split: 1437 train / 360 test
    idx = rng.permutation(len(y))
    tr, te = idx[:1437], idx[1437:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te])


def _load_mnist10k(data_root: Path | None) -> Dataset:
    dirs = ([data_root] if data_root else []) + [Path(p) for p in os.environ.get("SNNFPGA_MNIST10K", "").split(":") if p]
    d = _find("mnist10k", dirs + MNIST10K_DIRS, ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    x, y = _idx_pair(d, "t10k")
    return Dataset("mnist10k", x[:8000], y[:8000], x[8000:], y[8000:])


def _load_idx_full(name: str, dirs: list[Path]) -> Dataset:
    files = [f"{p}-{k}-idx{n}-ubyte.gz" for p in ("train", "t10k") for k, n in (("images", 3), ("labels", 1))]
    d = _find(name, dirs, files)
    trx, try_ = _idx_pair(d, "train")
    tex, tey = _idx_pair(d, "t10k")
    return Dataset(name, trx, try_, tex, tey)


def _torchvision_dirs(data_root: Path | None, sub: str) -> list[Path]:
    if data_root is None:
        return []
    return [data_root / sub / "raw", data_root / sub, data_root]


def _read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: records of a label byte and 3×32×32 pixel bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise BadDataFile(f"{path}: size {raw.size} is not a whole number of 3073-byte CIFAR-10 records")
    raw = raw.reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, raw[:, 0].astype(np.int64)


def _load_cifar10(data_root: Path | None) -> Dataset:
    # torchvision's CIFAR-10 layout is Python pickles: unpickling untrusted files can run code,
    # so we only read the binary version (cifar-10-batches-bin), which holds the same images.
    dirs = [] if data_root is None else [data_root / "cifar-10-batches-bin", data_root]
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    tried = []
    for d in dirs:
        if all((d / f).is_file() for f in files):
            parts = [_read_cifar_bin(d / f) for f in files[:5]]
            tex, tey = _read_cifar_bin(d / files[5])
            return Dataset("cifar10", np.concatenate([p[0] for p in parts]),
                           np.concatenate([p[1] for p in parts]), tex, tey)
        tried.append(str(d))
    raise DatasetNotFound("data set 'cifar10' not found: pass --data-root pointing at the folder holding "
                          f"cifar-10-batches-bin/ (the binary version; pickles are never loaded). Looked in: "
                          f"{'; '.join(tried) or 'nowhere (no --data-root given)'}")


#: name -> one-line description, for `--help` and errors
DATASETS = {
    "digits": "scikit-learn 8x8 digits, 1437 train / 360 test (embedded, the default)",
    "mnist10k": "MNIST test set split 8000 train / 2000 test (../shared/data/mnist10k)",
    "fashion-mnist": "Fashion-MNIST 60000 / 10000 (/usr/share/datasets/fashion-mnist)",
    "mnist": "full MNIST in torchvision layout under --data-root",
    "cifar10": "CIFAR-10 binary version under --data-root",
}


def load_dataset(name: str, data_root: str | Path | None = None) -> Dataset:
    """Load a data set by name (see :data:`DATASETS`); a missing one raises :class:`DatasetNotFound`."""
    root = Path(data_root) if data_root else None
    if name == "digits":
        return _load_digits()
    if name == "mnist10k":
        return _load_mnist10k(root)
    if name == "fashion-mnist":
        dirs = ([root, root / "FashionMNIST" / "raw"] if root else []) + FASHION_DIRS
        return _load_idx_full("fashion-mnist", dirs)
    if name == "mnist":
        dirs = _torchvision_dirs(root, "MNIST")
        if not dirs:
            raise DatasetNotFound("data set 'mnist' needs --data-root (torchvision layout: <root>/MNIST/raw)")
        return _load_idx_full("mnist", dirs)
    if name == "cifar10":
        return _load_cifar10(root)
    raise BadOption(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
