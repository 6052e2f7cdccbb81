"""The Python API: convert your own PyTorch model, then check, generate and build it.

::

    import snnfpga
    snn = snnfpga.convert(model, calibration=x_train[:2000], coding="sc-ttfs", timesteps=4,
                          weight_bits=8, finetune=(x_train, y_train))
    snn.predict(x_test)                      # integer reference: classes
    snn.evaluate(x_test, y_test)             # float ANN / float SNN / integer accuracy, spikes
    snn.estimate(board="icebreaker")         # resources, fps, power without a toolchain
    snn.save("net.snn.json"); snnfpga.load("net.snn.json")
    snn.generate("out/", lanes=4)            # Verilog
    snn.simulate(x_test[:100])               # cocotb + Verilator: bit-exact check, cycles
    snn.build(board="ulx3s-85f")             # place and route: resources, fmax, fps, frames/J

Nothing here is a second implementation: :func:`convert` runs the converter's passes
(:func:`snnfpga.convert.pipeline.convert_network`), :meth:`SNN.evaluate` its evaluation
(:func:`snnfpga.convert.pipeline.evaluate`), and the hardware methods call the steps of
``snnfpga run`` (:mod:`snnfpga.flow`). The command line is a layer over the same functions.

Data (calibration, fine-tuning, test images) may be a ``torch.Tensor``, a numpy array, an
``(images, labels)`` pair of them, or a ``DataLoader`` (any iterable of such batches). Images
are non-negative ``(N, *shape)``; the input shape and the input scale (the largest pixel value,
1 for images in [0, 1]) are taken from the data and checked against the model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .errors import BadOption, UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .boards.estimate import Estimate
    from .convert.pipeline import Converted
    from .flow import BuildResult, GenerateResult, SimulateResult
    from .ir import Network

__all__ = ["SNN", "Evaluation", "DataMismatch", "convert", "load", "load_model", "check_model", "as_arrays",
           "ArrayLike", "DataLike"]

#: one batch of images (or labels)
ArrayLike = Union[np.ndarray, "torch.Tensor"]
#: images, an (images, labels) pair, or a DataLoader / iterable of such batches
DataLike = Union[ArrayLike, tuple, list, Iterable]

#: frames of the calibration data the board estimates average their activity over (at most)
ACTIVITY_FRAMES = 200


class DataMismatch(BadOption):
    """Data that does not fit the model or the IR (shape, range, labels); the message names the argument."""


# --------------------------------------------------------------------------- data
def _numpy(a: Any, what: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as e:  # ragged lists and other objects numpy cannot stack
        raise DataMismatch(f"{what}: cannot be read as an array ({type(e).__name__}: {e})") from None


def _is_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and not np.isscalar(data[0])


def as_arrays(data: DataLike, what: str, *, labels: bool = False,
              signed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``(images float32 (N, *shape), labels int64 (N,) or None)`` from any :data:`DataLike`.

    With ``labels``, labels are required. Raises :class:`DataMismatch` naming ``what`` for
    anything that is not images, non-negative unless ``signed`` (with integer labels of the same count).
    """
    if data is None:
        raise DataMismatch(f"{what}: no data given")
    if _is_pair(data):
        x, y = _numpy(data[0], f"{what}[0]"), _numpy(data[1], f"{what}[1]")
    elif isinstance(data, np.ndarray) or hasattr(data, "detach"):
        x, y = _numpy(data, what), None
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        xs, ys = [], []
        for k, batch in enumerate(data):  # a DataLoader: batches of images or (images, labels, ...)
            if isinstance(batch, (tuple, list)):
                if len(batch) < 1 or len(batch) > 2:
                    raise DataMismatch(f"{what}: batch {k} holds {len(batch)} items, not images or (images, labels)")
                xs.append(_numpy(batch[0], f"{what} batch {k}"))
                if len(batch) == 2:
                    ys.append(_numpy(batch[1], f"{what} batch {k} labels"))
            else:
                xs.append(_numpy(batch, f"{what} batch {k}"))
        if not xs:
            raise DataMismatch(f"{what}: the data loader yielded no batches")
        if ys and len(ys) != len(xs):
            raise DataMismatch(f"{what}: some batches carry labels and some do not")
        if len({b.shape[1:] for b in xs}) != 1:
            raise DataMismatch(f"{what}: batches of different image shapes {sorted({b.shape[1:] for b in xs})}")
        x = np.concatenate(xs)
        y = np.concatenate(ys) if ys else None
    else:
        raise DataMismatch(f"{what}: expected a tensor, a numpy array, an (images, labels) pair or a DataLoader, "
                           f"not {type(data).__name__}")
    if x.dtype.kind not in "fiub" or x.ndim < 2 or len(x) == 0:
        raise DataMismatch(f"{what}: images must be a non-empty numeric array (N, *shape), not {x.dtype} of "
                           f"shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataMismatch(f"{what}: images hold NaN or infinite values")
    if not signed and float(x.min()) < 0.0:
        raise DataMismatch(f"{what}: image values must be >= 0 (the IR's pixels are unsigned integers), not "
                           f"min {float(x.min()):.4g}; train on images without mean subtraction")
    if y is not None:
        if y.ndim != 1 or len(y) != len(x):
            raise DataMismatch(f"{what}: labels must be one per image ({len(x)}), not shape {y.shape}")
        if y.dtype.kind not in "iub" or (len(y) and y.min() < 0):
            raise DataMismatch(f"{what}: labels must be class indices (integers >= 0), not {y.dtype}")
        y = y.astype(np.int64)
    elif labels:
        raise DataMismatch(f"{what}: labels are needed: pass (images, labels) or a DataLoader of (images, labels)")
    return np.ascontiguousarray(x), y


def load_model(path: str | Path) -> tuple[nn.Module, tuple[int, ...] | None, dict[str, Any]]:
    """``(model, input shape or None, metadata)`` from a ``torch.export`` program (``.pt2``,
    :func:`snnfpga.convert.export.load_export`) or a ``snnfpga train`` checkpoint (``.pt`` with
    its ``.pt.json``, :func:`snnfpga.convert.models.load_checkpoint`); nothing is unpickled."""
    from .convert.export import is_export_file, load_export

    path = Path(path)
    if path.suffix == ".pt2" or is_export_file(path):
        e = load_export(path)
        return e.module, e.in_shape, e.meta
    from .convert.models import load_checkpoint

    model, arch = load_checkpoint(path)
    return model, tuple(arch["in_shape"]) if "in_shape" in arch else None, arch


def check_model(model: nn.Module, x: np.ndarray, what: str, in_shape: tuple[int, ...] | None) -> int:
    """Run ``model`` on two images of ``x`` (``what`` names them in errors): the number of classes, or
    :class:`DataMismatch` when they do not fit (or ``in_shape``, the exported input shape, differs)."""
    import torch

    shape = tuple(x.shape[1:])
    if in_shape is not None and tuple(in_shape) != shape:
        raise DataMismatch(f"{what}: images of shape {shape}, but the model was exported for {tuple(in_shape)}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(x[:2]))
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        raise DataMismatch(f"{what}: images of shape {shape} do not fit the model ({type(e).__name__}: {msg})") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != min(2, len(x)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataMismatch(f"{what}: the model must return class scores (N, classes) for images of shape {shape}, "
                           f"not {got}")
    return int(out.shape[1])


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Evaluation:
    """Accuracy of each model on the same images (fractions; None where that model is not at hand,
    e.g. the float models of a network loaded from an IR file)."""

    images: int
    float_ann: float | None  #: the PyTorch model
    float_snn: float | None  #: the float SNN (thresholds fitted, fine-tuned)
    int_ref: float  #: the integer reference (what the hardware computes, bit for bit)
    spikes_per_frame: float  #: integer reference, mean
    float_spikes_per_frame: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the network
class SNN:
    """A converted spiking network: its integer IR (``net``) and, when it came from :func:`convert`,
    the float SNN and the PyTorch model it was converted from.

    Members
    -------
    net : snnfpga.ir.Network
        The integer network (the file format's content; what the hardware computes).
    model : torch.nn.Module or None
        The PyTorch model it was converted from (None after :func:`load`).
    converted : snnfpga.convert.pipeline.Converted or None
        The conversion (float SNN, options, pass timings; None after :func:`load`).
    """

    def __init__(self, net: Network, *, converted: Converted | None = None, model: nn.Module | None = None,
                 calibration: np.ndarray | None = None, input_max: float = 1.0):
        self.net, self.converted, self.model = net, converted, model
        self._calibration = calibration
        self._input_max = float(input_max)  # the float SNN runs on x / input_max (images in [0, 1])

    def __repr__(self) -> str:
        return (f"SNN({self.net.name!r}, coding={self.net.coding!r}, T={self.net.timesteps}, "
                f"input={tuple(self.net.input.shape)}, layers={len(self.net.layers)})")

    # ----------------------------------------------------------------- software
    def _frames(self, x: DataLike, what: str) -> tuple[np.ndarray, np.ndarray | None]:
        imgs, y = as_arrays(x, what, signed=self.net.input.signed)
        if imgs[0].size != self.net.input.size:
            raise DataMismatch(f"{what}: images of shape {imgs.shape[1:]} ({imgs[0].size} values), but the network "
                               f"takes {tuple(self.net.input.shape)} ({self.net.input.size} values)")
        lo, hi = self.net.input.value_range
        if float(imgs.max()) >= self.net.input.scale * (hi + 0.5) or float(imgs.min()) < self.net.input.scale * (lo - 0.5):
            raise DataMismatch(f"{what}: image values {float(imgs.min()):.4g}..{float(imgs.max()):.4g} exceed the "
                               f"network's input range [{self.net.input.scale * lo:.4g}, {self.net.input.scale * hi:.4g}] "
                               f"(input.scale {self.net.input.scale:.4g} × {lo}..{hi}; set by the data it was "
                               "converted with, or convert's input_range)")
        return imgs, y

    def predict(self, x: DataLike) -> np.ndarray:
        """Classes the integer reference (the hardware's golden model) gives ``x``'s images.

        Parameters
        ----------
        x : DataLike
            Images within the network's input range (labels, if any, are ignored).

        Returns
        -------
        numpy.ndarray
            int64 class per image (argmax of the output membrane, lowest index on ties).
        """
        from . import reference
        from .cli import reference_batch
        from .ir.frames import quantize_frames

        imgs, _ = self._frames(x, "x")
        frames = quantize_frames(self.net, imgs)
        batch = reference_batch(self.net)
        return np.concatenate([reference.simulate(self.net, frames[i:i + batch]).classes
                               for i in range(0, len(frames), batch)]).astype(np.int64)

    def simulate_float(self, x: DataLike) -> np.ndarray:
        """Classes the float SNN (before quantization) gives ``x``'s images; needs :func:`convert`'s result."""
        import torch

        snn = self._float("simulate_float").snn
        imgs, _ = self._frames(x, "x")
        snn.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(imgs), 500):
                out.append(snn.run(torch.from_numpy(imgs[i:i + 500] / self._input_max))[0].argmax(1).numpy())
        return np.concatenate(out).astype(np.int64)

    def evaluate(self, x: DataLike, y: ArrayLike | None = None, *, progress: bool = False) -> Evaluation:
        """Accuracy of the float ANN, the float SNN and the integer reference on the same images.

        Parameters
        ----------
        x : DataLike
            Images, or (images, labels), or a DataLoader of (images, labels).
        y : array-like, optional
            Labels, when ``x`` holds images only.
        """
        from .convert.data import Dataset
        from .convert.pipeline import evaluate, evaluate_int

        imgs, labels = self._frames(x if y is None else (x, y), "x")
        if labels is None:
            raise DataMismatch("evaluate: labels are needed: evaluate(x, y) or evaluate((x, y))")
        if self.converted is None:
            res = evaluate_int(self.net, imgs, labels, progress=progress)
            return Evaluation(images=res["images"], float_ann=None, float_snn=None, int_ref=res["accuracy"],
                              spikes_per_frame=res["spikes_per_frame"], float_spikes_per_frame=None)
        from .convert.finetune import snn_accuracy
        from .convert.train import accuracy

        empty = imgs[:0]
        data = Dataset("evaluate", empty, labels[:0], imgs, labels, classes=self.net.n_classes)
        float_snn = snn_accuracy(self.converted.snn, imgs / np.float32(self._input_max), labels, progress=progress)
        m = evaluate(self.converted, data, progress=progress, float_result=float_snn,
                     float_ann=accuracy(self.model, imgs, labels) if self.model is not None else None)
        return Evaluation(images=m["images"], float_ann=m["float_ann"], float_snn=m["float_snn"],
                          int_ref=m["int_ref"], spikes_per_frame=m["spikes_per_frame"],
                          float_spikes_per_frame=m["float_spikes_per_frame"])

    def _float(self, method: str) -> Converted:
        if self.converted is None:
            raise UserError(f"{method}: this network was loaded from an IR file, which holds the integer network "
                            "only; convert the PyTorch model (snnfpga.convert) for the float SNN")
        return self.converted

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write the IR: ``path`` (``.snn.json``) and its ``.snn.npz`` beside (:func:`snnfpga.ir.save`)."""
        from .ir import save

        return save(self.net, path)

    # ----------------------------------------------------------------- hardware
    def generate(self, out_dir: str | Path, *, lanes: int = 4, decode: str = "auto") -> GenerateResult:
        """Verilog of the network top (``out_dir/snn_top.v`` and its summary JSON), as ``snnfpga generate``.

        Parameters
        ----------
        lanes : int
            Weights read per cycle in each layer core.
        decode : {"auto", "slots", "arrival"}
            Where (SC-)TTFS layers apply the decode LUT (docs/hardware.md).
        """
        import json

        from . import rtl_gen
        from .flow import GenerateResult

        _check_lanes(lanes)
        t0 = time.time()
        v = Path(rtl_gen.generate(self.net, Path(out_dir), lanes=lanes, decode=decode))
        return GenerateResult(verilog=v, summary=json.loads(v.with_suffix(".json").read_text()), lanes=lanes,
                              seconds=time.time() - t0)

    def simulate(self, x: DataLike, y: ArrayLike | None = None, *, simulator: str = "verilator", lanes: int = 4,
                 decode: str = "auto", out_dir: str | Path | None = None, generated: GenerateResult | None = None,
                 verbose: bool = False) -> SimulateResult:
        """Simulate the generated Verilog (cocotb + Verilator or Icarus) on ``x`` and compare every
        spike event and the output membranes with the integer reference (``snnfpga run``'s step).

        ``generated``: a :meth:`generate` result to simulate (its lanes and decode), instead of
        generating the Verilog here; ``out_dir``: where the Verilog and the compiled model go
        (default: a temporary folder for the Verilog, and the compiled model in the cache that
        ``snnfpga simulate`` uses, :func:`snnfpga.sim.runner.default_build_root`, reused for the same Verilog).

        Returns
        -------
        snnfpga.flow.SimulateResult
            ``mismatching_images`` (must be 0), ``bit_exact``, ``report`` (cycles per frame, frame
            interval, events; docs/hardware.md), and the RTL and reference accuracy when labels are given.
        """
        from . import flow
        from .convert.data import Dataset

        imgs, labels = self._frames(x if y is None else (x, y), "x")
        opts = flow.RunOptions(simulator=simulator, lanes=_check_lanes(lanes), decode=decode)
        data = Dataset("simulate", imgs[:0], np.zeros(0, np.int64), imgs,
                       labels if labels is not None else np.zeros(len(imgs), np.int64))
        hw = flow.hardware_frames(self.net, data, len(imgs))
        if labels is None:
            hw.labels = None
        say = print if verbose else _quiet
        with _workdir(out_dir) as out:
            if generated is not None:
                opts = flow.RunOptions(simulator=simulator, lanes=generated.lanes, decode=decode)
            gen = generated if generated is not None else flow.generate(opts, self.net, out)
            root = None
            if out_dir is None:
                from .sim.runner import default_build_root

                root = default_build_root()
            return flow.simulate(opts, self.net, gen, hw, out, say, build_root=root)

    def estimate(self, board: str, *, lanes: int = 4, decode: str = "auto", x: DataLike | None = None,
                 clock_mhz: float | None = None) -> Estimate:
        """Resources, cycles, fps and power on ``board`` in a second, before any toolchain runs
        (``snnfpga estimate``: :func:`snnfpga.boards.estimate.estimate`).

        The activity comes from the integer reference on ``x`` (default: up to 200 calibration
        images when the network came from :func:`convert`; else every neuron fires once).
        """
        from .boards.estimate import estimate

        hw = self._activity_frames(x)
        return estimate(self.net, board, lanes=_check_lanes(lanes), decode=decode,
                        frames=hw.frames if hw is not None else None, clock_mhz=clock_mhz)

    def build(self, board: str, *, lanes: int = 4, decode: str = "auto", out_dir: str | Path = "build",
              x: DataLike | None = None, sim_report: Any = None, verbose: bool = False) -> BuildResult:
        """Place and route the UART top for ``board`` with the open toolchain (``snnfpga run --board``'s
        step): resources, fmax, fps and the power estimate (frames per joule = ``fps_per_w``).

        ``x``: images for the activity estimate (default as :meth:`estimate`); ``sim_report``: a
        :meth:`simulate` report (its ``.report``) for the measured frame interval.
        """
        from . import flow
        from .boards.registry import get_board

        get_board(board)  # an unknown board fails before anything is written
        opts = flow.RunOptions(board=board, lanes=_check_lanes(lanes), decode=decode)
        report = getattr(sim_report, "report", sim_report)
        return flow.build(opts, self.net, Path(out_dir), self._activity_frames(x), report,
                          print if verbose else _quiet)

    def _activity_frames(self, x: DataLike | None):
        from . import flow
        from .convert.data import Dataset

        if x is not None:
            imgs, _ = self._frames(x, "x")
        elif self._calibration is not None:
            imgs = self._calibration[:ACTIVITY_FRAMES]
        else:
            return None
        data = Dataset("activity", imgs[:0], np.zeros(0, np.int64), imgs, np.zeros(len(imgs), np.int64))
        hw = flow.hardware_frames(self.net, data, len(imgs))
        hw.labels = None
        return hw


def _quiet(_: str) -> None:
    pass


def _check_lanes(lanes: int) -> int:
    from .cli_types import MAX_LANES

    if not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise BadOption(f"lanes must be in 1..{MAX_LANES}, not {lanes!r}")
    return lanes


class _workdir:
    """``out_dir`` (created), or a temporary folder removed afterwards."""

    def __init__(self, out_dir: str | Path | None):
        self.out_dir, self._tmp = out_dir, None

    def __enter__(self) -> Path:
        if self.out_dir is not None:
            Path(self.out_dir).mkdir(parents=True, exist_ok=True)
            return Path(self.out_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="snnfpga-")
        return Path(self._tmp.name)

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


# --------------------------------------------------------------------------- entry points
def _check_options(coding: str, timesteps: int, weight_bits: int, input_bits: int, act_bits: int,
                   input_coding: str, finetune_epochs: int) -> None:
    from .cli_types import MAX_CONVERT_BITS
    from .flow import CODINGS
    from .ir.network import MAX_INPUT_BITS, max_timesteps

    if coding not in CODINGS:
        raise BadOption(f"coding must be one of {', '.join(CODINGS)}, not {coding!r}")
    if input_coding not in ("direct", "spikes"):
        raise BadOption(f"input_coding must be 'direct' or 'spikes', not {input_coding!r}")
    for name, v, lo, hi in (("timesteps", timesteps, 1, max_timesteps(coding)), ("weight_bits", weight_bits, 2, MAX_CONVERT_BITS),
                            ("act_bits", act_bits, 2, MAX_CONVERT_BITS), ("input_bits", input_bits, 1, MAX_INPUT_BITS),
                            ("finetune_epochs", finetune_epochs, 0, None)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
            raise BadOption(f"{name} must be an integer in {lo}..{hi if hi is not None else ''}, not {v!r}")


def convert(model: nn.Module | str | Path, calibration: DataLike, *, coding: str = "sc-ttfs",
            timesteps: int | None = None, weight_bits: int = 8, input_bits: int = 8, act_bits: int = 8,
            input_coding: str = "direct", pow2: bool = False, finetune: DataLike | None = None,
            finetune_epochs: int = 3, seed: int = 0, name: str = "model", data_name: str = "user",
            input_range: float | None = None, progress: bool = False) -> SNN:
    """Convert a trained PyTorch classifier to an integer spiking network.

    The converter's passes, in order: trace (``torch.fx``; BatchNorm folded), threshold fit on
    ``calibration``, fine-tuning on ``finetune`` ((SC-)TTFS), quantization last.

    Parameters
    ----------
    model : torch.nn.Module or path
        Any module of supported layers (Linear, Conv2d, BatchNorm, ReLU, AvgPool2d, MaxPool2d
        (TTFS), Flatten, Dropout, residual ``+``), or a ``.pt2`` ``torch.export`` program.
    calibration : DataLike
        Images the thresholds are fitted on (a few thousand); labels optional (rate coding
        scores its thresholds against them, or else against the model's own classes).
    coding : {"sc-ttfs", "ttfs", "rate"}
    timesteps : int, optional
        Time window T (default 4 for (SC-)TTFS, 32 for rate).
    weight_bits, input_bits, act_bits : int
        Signed weight width, pixel width, width of decoded spike values.
    input_coding : {"direct", "spikes"}
        Pixels straight into the first layer (multipliers) or encoded as spikes (multiplier-free).
    pow2 : bool
        Power-of-two threshold series (decode by shifts).
    finetune : DataLike, optional
        Labelled images to fine-tune thresholds and folded BatchNorm on; None: no fine-tuning.
    finetune_epochs, seed : int
    name : str
        The network's name in the IR; ``data_name`` is recorded as its data set.
    input_range : float, optional
        Largest pixel value: pixels ``0..input_range`` map to the integers ``0..2^input_bits - 1``.
        Default: 1, or the largest value in the data when that is above 1 (images of 0..255
        convert as they are; the first layers' weights absorb the factor).

    Returns
    -------
    SNN

    Raises
    ------
    snnfpga.convert.graph.UnsupportedModel
        A layer the converter cannot map (the message names it and lists what is supported).
    DataMismatch
        Data of the wrong shape or range for the model, or labels that do not fit it.
    """
    import torch

    from .convert.data import Dataset
    from .convert.pipeline import ConvertOptions, Shared, convert_network
    from .flow import default_timesteps

    T = default_timesteps(coding, timesteps)
    _check_options(coding, T, weight_bits, input_bits, act_bits, input_coding, finetune_epochs)
    in_shape = None
    if isinstance(model, (str, Path)):
        model, in_shape, _ = load_model(model)
    cx, cy = as_arrays(calibration, "calibration")
    classes = check_model(model, cx, "calibration", in_shape)
    fx = fy = None
    if finetune is not None:
        fx, fy = as_arrays(finetune, "finetune", labels=True)
        if fx.shape[1:] != cx.shape[1:]:
            raise DataMismatch(f"finetune: images of shape {fx.shape[1:]}, calibration of shape {cx.shape[1:]}")
    for what, y in (("calibration", cy), ("finetune", fy)):
        if y is not None and len(y) and y.max() >= classes:
            raise DataMismatch(f"{what}: label {int(y.max())} is out of range for a model with {classes} outputs")
    model.eval()
    top = max(float(cx.max()), float(fx.max()) if fx is not None else 0.0)
    if input_range is None:
        input_range = max(1.0, top)
    elif not input_range > 0 or top > input_range:
        raise DataMismatch(f"input_range must be positive and cover the data's largest value {top:.4g}, "
                           f"not {input_range!r}")
    labelled = cy is not None
    if cy is None:  # thresholds are scored against the model's own answers
        with torch.no_grad():
            cy = np.concatenate([model(torch.from_numpy(cx[i:i + 1000])).argmax(1).numpy()
                                 for i in range(0, len(cx), 1000)]).astype(np.int64)
    user_model, raw_cx = model, cx
    if input_range != 1.0:  # the converter's float side works on images in [0, 1]
        model = _scale_input(model, float(input_range))
        cx = cx / np.float32(input_range)
        with torch.no_grad():  # the copy computes the user's function on the scaled images
            want, got = user_model(torch.from_numpy(raw_cx[:16])).double(), model(torch.from_numpy(cx[:16])).double()
        if ((got - want).abs().max() / (1.0 + want.abs().max())).item() > 1e-4:
            raise AssertionError("rescaling the input layers changed the model's output")
        fx = fx / np.float32(input_range) if fx is not None else None
    train_x, train_y = (fx, fy) if fx is not None else (cx, cy)
    data = Dataset(data_name, train_x, train_y, cx, cy, classes=classes)
    opts = ConvertOptions(coding=coding, timesteps=T, weight_bits=weight_bits, input_bits=input_bits,
                          act_bits=act_bits, input_coding=input_coding, pow2=pow2,
                          finetune_epochs=finetune_epochs if fx is not None else 0, calib_samples=len(cx), seed=seed)
    shared = Shared(model, data, rate_timesteps=(T,) if coding == "rate" else (),
                    calibration=(torch.from_numpy(cx), torch.from_numpy(cy)))
    c = convert_network(model, data, opts, name=name, progress=progress, shared=shared)
    if input_range != 1.0:  # one integer pixel is worth input_range times more: the same integer network
        c.net.input = replace(c.net.input, scale=c.net.input.scale * float(input_range))
    prov = c.net.provenance
    prov["input_range"] = [0.0, float(input_range)]
    prov["calibration_images"] = int(len(cx))
    prov["calibration_labels"] = "given" if labelled else "the model's own classes"
    prov["finetune_images"] = int(len(fx)) if fx is not None else 0
    if not labelled:  # measured against its own classes, it would read 100 %
        prov["float_ann_accuracy"] = None
    return SNN(c.net, converted=c, model=user_model, calibration=raw_cx, input_max=float(input_range))


def _scale_input(model: nn.Module, factor: float) -> nn.Module:
    """A copy of ``model`` that computes ``model(x · factor)`` on ``x``: the weights of every
    Linear / Conv2d reading the input (through Flatten, pooling, Dropout, Identity) times
    ``factor`` (exact: those layers are linear, the bias stays)."""
    import copy

    import torch
    import torch.fx
    from torch import nn

    from .convert.graph import UnsupportedModel

    scaled = copy.deepcopy(model)
    try:
        gm = torch.fx.symbolic_trace(scaled)
    except Exception as e:
        raise UnsupportedModel(f"torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {e})") from None
    modules = dict(gm.named_modules())
    passthrough = (nn.Flatten, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.Dropout, nn.Identity)
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    hits: dict[str, nn.Module] = {}
    todo = [n for n in gm.graph.nodes if n.op == "placeholder"]
    seen = set()
    while todo:
        node = todo.pop()
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            m = modules.get(user.target) if user.op == "call_module" else None
            if isinstance(m, (nn.Linear, nn.Conv2d)) and user.args[0] is node:
                if calls[user.target] != 1:
                    raise UnsupportedModel(f"{user.target!r} reads the input and is called {calls[user.target]} "
                                           "times: scale the images to [0, 1] yourself")
                hits[user.target] = m
            elif isinstance(m, passthrough) or user.target in (torch.flatten, "flatten", "view", "reshape",
                                                                "contiguous", "size", "dim"):
                if user.target not in ("size", "dim"):
                    todo.append(user)
            else:
                raise UnsupportedModel(f"node {user.name} reads the input values directly, so images above 1 "
                                       "cannot be rescaled into its weights: scale the images to [0, 1] yourself")
    with torch.no_grad():
        for m in hits.values():
            m.weight.mul_(factor)
    return scaled


def load(path: str | Path) -> SNN:
    """An :class:`SNN` from an IR file (``.snn.json`` or ``.npz``, :func:`snnfpga.ir.load`): the integer
    network only (predict, evaluate, generate, simulate, estimate, build)."""
    from .ir import load as load_ir

    return SNN(load_ir(path))
