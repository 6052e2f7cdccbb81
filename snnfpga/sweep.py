"""``snnfpga sweep``: a design-space sweep on Ray Tune, from one laptop to a cluster.

The ANN is trained once (:func:`snnfpga.flow.train`) and handed to every point through Ray's
object store (:func:`ray.tune.with_parameters` puts it there once, with the data set). A point is
one combination of the swept parameters (:data:`PARAMETERS`: coding, T, weight bits, decoded-value
bits, input coding, power-of-two thresholds, lanes, board) and runs as one Tune trial
(:func:`run_point`): the conversion and the integer accuracy on the test split come from the same
functions ``snnfpga run`` calls (:func:`snnfpga.convert.pipeline.convert_network` and
:func:`~snnfpga.convert.pipeline.evaluate`, once per conversion and shared by the points that
differ only in lanes or board), block RAM from the pre-synthesis fit check
(:func:`snnfpga.boards.fit.check_fit`), frame interval, fps and power from
:func:`snnfpga.boards.performance.performance`; with ``simulate`` the RTL bit-exact check and
cycles (:func:`snnfpga.flow.simulate`), with ``build`` a real place and route
(:func:`snnfpga.flow.build`).

Ray Tune does the scheduling (each trial asks for ``cpus_per_point`` CPUs), the retries (a
worker that dies makes its point run again: ``FailureConfig(max_failures)``) and the experiment
state (``runs/<name>/tune``, restored by ``Tuner.restore``). A point that fails for a reason of
its own (it does not fit the board, its accuracy is NaN, its RTL disagrees) is a finished point
with ``status = failed`` and its reason. :class:`ResultsWriter` (a Tune callback) rewrites
``sweep.csv`` / ``sweep.jsonl`` as each point finishes, one row per point, and draws the
progress bar. Each point also keeps ``points/<id>/result.json``, its ``attempts`` counter and the
``worker.pid`` that computes it: a point whose result is there is never computed again.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import socket
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from . import cli_types as types
from .errors import BadFile, BadOption, MissingTool, UserError

if TYPE_CHECKING:
    from torch import nn

    from .convert.data import Dataset
    from .flow import ConversionRow, RunOptions
    from .ir import Network

__all__ = ["PARAMETERS", "SETTINGS", "Point", "SweepSpec", "PointResult", "SweepResult", "ResultsWriter",
           "load_config", "run_point", "run_sweep", "pareto_front", "best_points", "reproduce_command",
           "connect", "read_rows", "SweepFailed"]

Say = Callable[[str], None]

#: the swept parameters: name -> (the ``Point`` field, parser of one value, CLI option)
PARAMETERS: dict[str, tuple[str, Callable[[Any], Any]]] = {}
#: the settings every point shares (not swept): name -> parser of the value
SETTINGS: dict[str, Callable[[Any], Any]] = {}

RESULT_FILE = "result.json"
SPEC_FILE = "sweep.json"
TUNE_DIR = "tune"
INPUT_CODINGS = ("direct", "spikes")
DECODES = ("auto", "slots", "arrival")
SIMULATORS = ("verilator", "icarus")


class SweepFailed(UserError):
    """A sweep that ran but left points unfinished (errored more than ``max_failures`` times)."""

    exit_code = 1


# --------------------------------------------------------------------------- parameters
def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be an integer, not {value!r}")
    return str(value)


def _int(parse: Callable[[str], int]) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        try:
            return parse(_text(value))
        except Exception as e:  # argparse.ArgumentTypeError from cli_types: reuse its message
            raise ValueError(str(e)) from None
    return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
        return value
    return check


def _board(value: Any) -> str:
    from .boards.registry import get_board

    if not isinstance(value, str):
        raise ValueError(f"must be a board name, not {value!r}")
    try:
        return get_board(value).name
    except UserError as e:
        raise ValueError(str(e)) from None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "on", "1", "pow2"):
        return True
    if text in ("no", "false", "off", "0", "lin"):
        return False
    raise ValueError(f"must be yes or no, not {value!r}")


def _dataset(value: Any) -> str:
    from .convert.data import DATASETS

    return _choice(tuple(DATASETS))(value)


def _name(value: Any) -> str:
    text = str(value)
    if not text or text in (".", "..") or "/" in text or text.strip() != text:
        raise ValueError(f"must be a plain folder name, not {value!r}")
    return text


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _hidden(value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError("must name at least one size")
    return tuple(_int(types.hidden)(v) for v in values)


def _cpus(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number > 0, not {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number > 0, not {value!r}") from None
    if not v > 0 or not math.isfinite(v):
        raise ValueError(f"must be a number > 0, not {value!r}")
    return v


def _register() -> None:
    from .flow import CODINGS

    PARAMETERS.update({
        "coding": ("coding", _choice(CODINGS)),
        "timesteps": ("timesteps", _int(types.timesteps)),
        "weight_bits": ("weight_bits", _int(types.weight_bits)),
        "act_bits": ("act_bits", _int(types.act_bits)),
        "input_coding": ("input_coding", _choice(INPUT_CODINGS)),
        "pow2": ("pow2", _flag),
        "lanes": ("lanes", _int(types.lanes)),
        "board": ("board", _board),
    })
    SETTINGS.update({
        "name": _name, "dataset": _dataset, "data_root": _optional_text, "model": _choice(("mlp", "cnn", "resnet")),
        "hidden": _hidden, "epochs": _int(types.non_negative), "finetune_epochs": _int(types.non_negative),
        "input_bits": _int(types.input_bits), "seed": _int(types.seed), "decode": _choice(DECODES),
        "simulator": _choice(SIMULATORS), "simulate": _int(types.non_negative), "build": _flag,
        "cpus_per_point": _cpus, "max_failures": _int(types.non_negative),
    })


_register()

#: the parameters' values when not given (timesteps: each coding's default T, flow.default_timesteps)
DEFAULT_VALUES: dict[str, tuple] = {"coding": ("sc-ttfs",), "timesteps": (), "weight_bits": (8,), "act_bits": (8,),
                                    "input_coding": ("direct",), "pow2": (False,), "lanes": (4,),
                                    "board": ("icebreaker", "ulx3s-85f")}


def _key(name: str) -> str:
    return name.strip().replace("-", "_")


# --------------------------------------------------------------------------- points and the spec
@dataclass(frozen=True)
class Point:
    """One combination of the swept parameters."""

    coding: str
    timesteps: int
    weight_bits: int
    act_bits: int
    input_coding: str
    pow2: bool
    lanes: int
    board: str

    @property
    def id(self) -> str:
        """A readable, unique, file-name-safe id (``sc-ttfs-T4-w8-a8-direct-lin-L4-icebreaker``)."""
        return f"{self.conversion_id}-L{self.lanes}-{self.board}"

    @property
    def conversion_id(self) -> str:
        """The id of its conversion: points that differ only in lanes and board share it."""
        return (f"{self.coding}-T{self.timesteps}-w{self.weight_bits}-a{self.act_bits}-{self.input_coding}-"
                f"{'pow2' if self.pow2 else 'lin'}")


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep is told: the swept values (tuples) and the settings every point shares."""

    name: str = "sweep"
    dataset: str = "digits"
    data_root: str | None = None
    model: str = "mlp"
    hidden: tuple[int, ...] | None = None
    epochs: int = 30
    finetune_epochs: int = 3
    input_bits: int = 8
    seed: int = 0
    decode: str = "auto"
    simulator: str = "verilator"
    simulate: int = 0  #: RTL bit-exact check on this many test images per point (0: none)
    build: bool = False  #: a real place and route per point (else: estimates before synthesis)
    cpus_per_point: float = 1.0  #: CPUs each trial asks Ray for
    max_failures: int = 2  #: retries of a point whose worker died
    coding: tuple[str, ...] = ("sc-ttfs",)
    timesteps: tuple[int, ...] = ()  #: empty: each coding's default T
    weight_bits: tuple[int, ...] = (8,)
    act_bits: tuple[int, ...] = (8,)
    input_coding: tuple[str, ...] = ("direct",)
    pow2: tuple[bool, ...] = (False,)
    lanes: tuple[int, ...] = (4,)
    board: tuple[str, ...] = ("icebreaker", "ulx3s-85f")
    #: seconds each point waits after it starts, before its work (tests: time to kill its worker)
    hold_s: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "command line") -> SweepSpec:
        """Checked values (parameters as lists, settings as scalars); an unknown name, an empty
        range or a bad value raises :class:`BadOption` naming ``source``, the name and the value."""
        kw: dict[str, Any] = {}
        for raw, value in values.items():
            key = _key(raw)
            if key in PARAMETERS:
                items = list(value) if isinstance(value, (list, tuple)) else [value]
                if not items:
                    raise BadOption(f"{source}: {raw} is an empty range: give at least one value")
                parse = PARAMETERS[key][1]
                parsed = []
                for item in items:
                    try:
                        v = parse(item)
                    except ValueError as e:
                        raise BadOption(f"{source}: {raw}: {e}") from None
                    if v not in parsed:
                        parsed.append(v)
                kw[key] = tuple(parsed)
            elif key in SETTINGS:
                if value is None and key != "data_root":
                    continue
                try:
                    kw[key] = SETTINGS[key](value)
                except ValueError as e:
                    raise BadOption(f"{source}: {raw}: {e}") from None
            elif key == "hold_s":
                try:
                    kw[key] = _cpus(value) if value else 0.0
                except ValueError as e:
                    raise BadOption(f"{source}: {raw}: {e}") from None
            else:
                known = ", ".join(sorted(set(PARAMETERS) | set(SETTINGS)))
                raise BadOption(f"{source}: unknown parameter {raw!r}; known: {known}")
        return cls(**kw)

    def points(self) -> list[Point]:
        """Every point, the hardware parameters (lanes, board) varying fastest, so points that
        share a conversion run next to each other."""
        from .flow import default_timesteps

        out = []
        for coding in self.coding:
            steps = self.timesteps or (default_timesteps(coding),)
            for T, wb, ab, ic, p2, lanes, board in itertools.product(
                    steps, self.weight_bits, self.act_bits, self.input_coding, self.pow2, self.lanes, self.board):
                if p2 and coding == "rate":
                    continue  # power-of-two thresholds are an (SC-)TTFS threshold series
                out.append(Point(coding, T, wb, ab, ic, p2, lanes, board))
        if not out:
            raise BadOption("the sweep has no point: pow2 applies to sc-ttfs and ttfs only")
        return out

    def run_options(self, point: Point, out: Path | str | None = None, quiet: bool = True) -> RunOptions:
        """The ``snnfpga run`` options of one point (what :func:`reproduce_command` prints)."""
        from .flow import RunOptions

        return RunOptions(dataset=self.dataset, data_root=self.data_root, model=self.model, hidden=self.hidden,
                          epochs=self.epochs, coding=point.coding, timesteps=point.timesteps,
                          weight_bits=point.weight_bits, input_bits=self.input_bits, act_bits=point.act_bits,
                          input_coding=point.input_coding, pow2=point.pow2, finetune_epochs=self.finetune_epochs,
                          seed=self.seed, out=out, sweep=False, hardware=bool(self.simulate or self.build),
                          images=self.simulate or None, simulator=self.simulator, lanes=point.lanes,
                          decode=self.decode, board=point.board if self.build else None, quiet=quiet)

    def to_json(self) -> dict[str, Any]:
        """Plain values; ``timesteps`` left out when empty (each coding's default T)."""
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(self)
                for v in [getattr(self, f.name)] if not (f.name == "timesteps" and not v)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], source: str = SPEC_FILE) -> SweepSpec:
        return cls.from_mapping(d, source)


def load_config(path: str | Path) -> dict[str, Any]:
    """The parameters of a TOML file (``.toml``) or, if PyYAML is installed, a YAML file."""
    p = Path(path)
    if not p.is_file():
        raise BadFile(f"sweep file {str(p)!r} does not exist")
    try:
        if p.suffix == ".toml":
            d = tomllib.loads(p.read_text())
        elif p.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise MissingTool(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or write the file "
                                  "as TOML") from None
            d = yaml.safe_load(p.read_text())
        else:
            raise BadFile(f"sweep file {str(p)!r}: the name must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise BadFile(f"sweep file {str(p)!r} is not valid: {e}") from None
    except Exception as e:  # yaml.YAMLError
        if type(e).__module__.startswith("yaml"):
            raise BadFile(f"sweep file {str(p)!r} is not valid YAML: {e}") from None
        raise
    if not isinstance(d, dict):
        raise BadFile(f"sweep file {str(p)!r} must hold a table of parameters, not {type(d).__name__}")
    return d


# --------------------------------------------------------------------------- one point
@dataclass
class PointResult:
    """One row of ``sweep.csv``: the point, what it measured, and how it went. Power and frames
    per joule are estimates (boards/power.py), at fps compute-bound (no UART)."""

    id: str
    status: str  #: ``ok`` or ``failed``
    reason: str  #: why it failed ("" when ok)
    coding: str
    timesteps: int
    weight_bits: int
    act_bits: int
    input_coding: str
    pow2: bool
    lanes: int
    board: str
    float_ann: float | None = None
    float_snn: float | None = None
    int_ref: float | None = None  #: integer reference accuracy on the whole test split
    test_images: int | None = None
    spikes_per_frame: float | None = None
    bram_blocks: int | None = None  #: block RAMs, pre-synthesis (boards.fit.check_fit)
    bram_blocks_min: int | None = None
    bram_available: int | None = None
    luts: int | None = None  #: from ``resource_source``
    ffs: int | None = None
    dsps: int | None = None
    resource_source: str | None = None  #: "place and route" (``build``) or "estimate before synthesis"
    fmax_mhz: float | None = None  #: with ``build`` only
    clock_mhz: float | None = None
    frame_interval_cycles: float | None = None
    interval_source: str | None = None
    fps: float | None = None
    power_w: float | None = None
    frames_per_j: float | None = None
    rtl_images: int | None = None
    rtl_mismatching: int | None = None
    rtl_accuracy: float | None = None
    cycles_per_frame: float | None = None
    seconds: float | None = None  #: this point's wall time (a shared conversion counts where it ran)
    attempts: int | None = None  #: times the point was started (a retry after a dead worker adds one)
    worker: str | None = None  #: host:pid that computed it
    ir: str | None = None  #: the converted network (IR file)

    @classmethod
    def for_point(cls, point: Point, status: str = "ok", reason: str = "", **kw: Any) -> PointResult:
        return cls(id=point.id, status=status, reason=reason, **asdict(point), **kw)

    @property
    def point(self) -> Point:
        return Point(**{f.name: getattr(self, f.name) for f in fields(Point)})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PointResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class PointFailed(UserError):
    """A point that cannot give a result for a reason of its own (NaN accuracy, an RTL mismatch)."""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _locked(path: Path):
    """An exclusive lock on ``path`` (fcntl): one process converts a shared network, the others wait."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def hold():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return hold()


def converted(spec: SweepSpec, point: Point, model: nn.Module, data: Dataset, root: Path,
              say: Say = print) -> tuple[Network, ConversionRow, Path, float]:
    """The point's network and its accuracy row, converted and evaluated as ``snnfpga run`` does
    for its main network, once per conversion (``root/nets/<conversion id>``; later points load
    it). Returns ``(net, row, IR path, seconds spent here)``."""
    from .convert.pipeline import convert_network, evaluate
    from .flow import ConversionRow
    from .ir import load, save

    t0 = time.time()
    d = root / "nets" / point.conversion_id
    row_file, ir_file = d / "row.json", d / "model.snn.json"
    with _locked(root / "nets" / f"{point.conversion_id}.lock"):
        if not row_file.is_file():
            opts = spec.run_options(point).convert_options()
            c = convert_network(model, data, opts, name=f"{point.coding}-T{point.timesteps}", progress=False)
            row = ConversionRow.from_metrics(evaluate(c, data, progress=False))
            d.mkdir(parents=True, exist_ok=True)
            save(c.net, ir_file)
            _atomic_write(row_file, json.dumps(row.to_json(), indent=1) + "\n")  # last: marks it complete
            say(f"{point.conversion_id}: converted, integer accuracy {100 * row.int_ref:.2f}%")
    row = ConversionRow(**json.loads(row_file.read_text()))
    return load(ir_file), row, ir_file, time.time() - t0


def _estimated_resources(net: Network, board, lanes: int, decode: str,
                         single_bank: tuple[int, ...] = ()) -> dict[str, Any] | None:
    """LUT, FF and DSP counts from :func:`snnfpga.boards.estimate.estimate` (the per-family model
    calibrated on real builds), or None where it has no calibration or is not installed."""
    try:
        from .boards.estimate import estimate
    except ImportError:
        return None
    # frames=None: resources do not depend on them
    e = estimate(net, board, lanes=lanes, decode=decode, single_bank=single_bank)
    if e.luts is None:
        return None
    return {"LUT": {"used": e.luts}, "FF": {"used": e.ffs}, "DSP": {"used": e.dsp}}


def simulated(opts: RunOptions, point: Point, net: Network, hw, root: Path):
    """The RTL check of ``net`` at the point's lanes on ``hw``'s frames (:func:`snnfpga.flow.generate`,
    :func:`snnfpga.flow.simulate`), once per conversion and lanes: the boards share one Verilog
    core, so the points that differ only in board share the simulation (``root/sims/<id>/``)."""
    from . import flow
    from .sim import SimulationReport

    key = f"{point.conversion_id}-L{point.lanes}"
    d, report = root / "sims" / key, root / "sims" / key / "report.json"
    with _locked(root / "sims" / f"{key}.lock"):
        if not report.is_file():
            d.mkdir(parents=True, exist_ok=True)
            gen = flow.generate(opts, net, d)
            sim = flow.simulate(opts, net, gen, hw, d, say=lambda s: None)
            _atomic_write(report, json.dumps(sim.report.to_json(), indent=1) + "\n")
    return SimulationReport(**json.loads(report.read_text()))


def run_point(spec: SweepSpec, point: Point, model: nn.Module, data: Dataset, root: Path,
              say: Say = print) -> PointResult:
    """Every figure of one point (see the module docstring). Raises :class:`UserError` for a
    point that fails for a reason of its own (:func:`run_sweep` records it as failed)."""
    from . import flow
    from .boards.fit import check_fit
    from .boards.performance import performance
    from .boards.registry import get_board, resource_used

    t0 = time.time()
    out = root / "points" / point.id
    net, row, ir_file, _ = converted(spec, point, model, data, root, say)
    res = PointResult.for_point(point, float_ann=row.float_ann, float_snn=row.float_snn, int_ref=row.int_ref,
                                test_images=row.images, spikes_per_frame=row.spikes_per_frame, ir=str(ir_file))
    for label, v in (("integer accuracy", row.int_ref), ("float SNN accuracy", row.float_snn)):
        if v is None or not math.isfinite(v):
            raise PointFailed(f"{label} is {v} (NaN: the conversion diverged)")
    board = get_board(point.board)
    fit = check_fit(net, board, lanes=point.lanes, decode=spec.decode)  # DoesNotFitBoard: failed
    res.bram_blocks, res.bram_blocks_min, res.bram_available = (fit["bram_blocks"], fit["bram_blocks_min"],
                                                                fit["bram_available"])
    opts = spec.run_options(point, out=out)
    n_act = min(flow.BOARD_ACTIVITY_FRAMES, len(data.test_y))
    n_sim = min(spec.simulate, len(data.test_y))
    hw_all = flow.hardware_frames(net, data, max(n_act, n_sim))  # the golden model's one run
    sim_report = None
    if spec.simulate:
        hw = hw_all.head(n_sim)
        sim_report = simulated(opts, point, net, hw, root)
        res.rtl_images, res.rtl_mismatching = sim_report.images, sim_report.mismatching_images
        res.rtl_accuracy = float((np.asarray(sim_report.rtl_classes) == hw.labels).mean())
        res.cycles_per_frame = (sim_report.cycles_per_frame or {}).get("mean")
        if res.rtl_mismatching:
            raise PointFailed(f"RTL differs from the integer reference on {res.rtl_mismatching} of "
                              f"{res.rtl_images} images (first: {sim_report.first_mismatch})")
    board_hw = hw_all.head(n_act)
    if spec.build:
        b = flow.build(opts, net, out, board_hw, sim_report, say=lambda s: None)
        perf, resources, res.fmax_mhz = b.performance, b.resources, b.fmax_mhz
        res.resource_source = "place and route"
    else:  # the board's clock, LUT/FF/DSP estimated before synthesis where the estimator is there
        resources = _estimated_resources(net, board, point.lanes, spec.decode)
        res.resource_source = "estimate before synthesis" if resources else None
        est = {"board": board.name, "clock_mhz": board.clock_hz / 1e6, "fmax_mhz": None, "resources": resources,
               "power_device": board.power_device, "decode": spec.decode}
        perf = performance(net, est, lanes=point.lanes, sim_report=sim_report, frames=board_hw.frames,
                           ref=board_hw.ref)
    res.luts, res.ffs, res.dsps = (resource_used(resources, k) for k in ("LUT", "FF", "DSP"))
    res.clock_mhz, res.frame_interval_cycles = perf.clock_mhz, perf.frame_interval_cycles
    res.interval_source, res.fps = perf.interval_source, perf.fps
    if perf.power:
        res.power_w, res.frames_per_j = perf.power["total_w"], perf.power["fps_per_w"]
    res.seconds = time.time() - t0
    return res


def _bump(path: Path) -> int:
    with _locked(path.with_name(path.name + ".lock")):
        n = int(path.read_text() or 0) + 1 if path.is_file() else 1
        _atomic_write(path, f"{n}\n")
    return n


def _trial(config: dict[str, Any], payload: tuple[Any, Any], spec: dict[str, Any], root: str) -> None:
    """One Tune trial: one point. A point whose ``result.json`` exists is reported, not recomputed."""
    from ray import tune

    sweep = SweepSpec.from_json(spec)
    point = Point(**config["point"])
    base = Path(root)
    d = base / "points" / point.id
    d.mkdir(parents=True, exist_ok=True)
    done = d / RESULT_FILE
    if done.is_file():
        tune.report(json.loads(done.read_text()))
        return
    (d / "worker.pid").write_text(f"{os.getpid()}\n")
    attempts = _bump(d / "attempts")
    if sweep.hold_s:
        time.sleep(sweep.hold_s)
    model, data = payload
    try:
        res = run_point(sweep, point, model, data, base, say=lambda s: None)
    except UserError as e:  # the point's own failure: recorded, the sweep goes on
        res = PointResult.for_point(point, status="failed", reason=f"{type(e).__name__}: {e}")
    res.attempts = attempts
    res.worker = f"{socket.gethostname()}:{os.getpid()}"
    _atomic_write(done, json.dumps(res.to_json(), indent=1) + "\n")
    tune.report(res.to_json())


# --------------------------------------------------------------------------- results on disk
CSV_FIELDS = [f.name for f in fields(PointResult)]


def read_rows(root: Path) -> dict[str, PointResult]:
    """The rows of ``root/sweep.jsonl`` by point id (empty if none yet)."""
    p = Path(root) / "sweep.jsonl"
    rows: dict[str, PointResult] = {}
    if p.is_file():
        for line in p.read_text().splitlines():
            if line.strip():
                r = PointResult.from_json(json.loads(line))
                rows[r.id] = r
    return rows


def write_rows(root: Path, rows: Iterable[PointResult], order: list[str]) -> None:
    """``sweep.jsonl`` and ``sweep.csv``, one row per point in sweep order, each replaced whole."""
    rank = {pid: i for i, pid in enumerate(order)}
    rows = sorted(rows, key=lambda r: rank.get(r.id, len(rank)))
    _atomic_write(root / "sweep.jsonl", "".join(json.dumps(r.to_json()) + "\n" for r in rows))
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.to_json().items()})
    _atomic_write(root / "sweep.csv", buf.getvalue())


try:
    from ray.tune import Callback as _TuneCallback
except ImportError:  # the module imports without Ray; run_sweep says what is missing
    _TuneCallback = object  # type: ignore[assignment,misc]


class ResultsWriter(_TuneCallback):  # type: ignore[misc,valid-type]
    """Tune callback: a row per finished point in ``sweep.csv`` / ``sweep.jsonl`` (written as each
    finishes; a point computed again replaces its row, so each appears once), and the progress bar.
    Picklable (Tune saves it with the experiment; it reloads the rows when the sweep resumes)."""

    def __init__(self, root: Path, order: list[str], progress: bool = True):
        self.root, self.order, self.progress = Path(root), list(order), progress
        self._rows: dict[str, PointResult] = {}
        self._bar = None
        self._state: tuple[int, int, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "order": self.order, "progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["order"], state["progress"])

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self._rows = read_rows(self.root) if self.root.is_dir() else {}

    def _follow(self, trial) -> None:
        """The sweep folder is the parent of Tune's experiment folder: a restored callback writes
        where the sweep is now, even if the folder moved since it was pickled."""
        try:
            root = Path(trial.storage.experiment_fs_path).parent
        except AttributeError:
            return
        if root != self.root and root.is_dir():
            self.root = root
            self._rows = read_rows(root)

    def _point_id(self, trial) -> str:
        return Point(**trial.config["point"]).id

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        self._follow(trial)
        if "id" in result and "status" in result:
            self._rows[result["id"]] = PointResult.from_json(result)
            write_rows(self.root, self._rows.values(), self.order)
        self._show(trials)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        """A point whose worker failed more than ``max_failures`` times: failed, with the error
        (``--resume`` runs it again)."""
        self._follow(trial)
        pid = self._point_id(trial)
        err = str(getattr(trial, "error_msg", None) or "worker failed").strip().splitlines()
        self._rows[pid] = PointResult.for_point(Point(**trial.config["point"]), status="failed",
                                                reason=f"error: {err[-1] if err else 'worker failed'}")
        write_rows(self.root, self._rows.values(), self.order)
        self._show(trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._show(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._show(trials)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _show(self, trials: list) -> None:
        if not self.progress:
            return
        from tqdm.auto import tqdm

        if self._bar is None:
            self._bar = tqdm(total=len(self.order), desc="sweep", unit="point")
        finished = {r.id for r in self._rows.values()}
        running = sum(1 for t in trials if t.status == "RUNNING" and self._point_id(t) not in finished)
        failed = sum(1 for r in self._rows.values() if not r.ok)
        state = (len(finished), running, failed)
        if state == self._state:  # on_step_end comes many times a second: redraw on change only
            return
        self._state = state
        self._bar.n = len(finished)
        self._bar.set_postfix_str(f"done {len(finished) - failed}, running {running}, failed {failed}", refresh=False)
        self._bar.refresh()


# --------------------------------------------------------------------------- Pareto fronts
def pareto_front(rows: Iterable[PointResult], cost: str, *, minimize: bool) -> list[PointResult]:
    """The points no other point beats on both integer accuracy (higher) and ``cost`` (``frames_per_j``
    higher, or ``luts`` / ``bram_blocks`` lower with ``minimize``); sorted by ``cost``, best first.
    Points without the figure are left out."""
    pts = [r for r in rows if r.ok and r.int_ref is not None and getattr(r, cost) is not None]

    def better(a, b):  # a at least as good as b on both, strictly on one
        ca, cb = getattr(a, cost), getattr(b, cost)
        ge = ca <= cb if minimize else ca >= cb
        gt = ca < cb if minimize else ca > cb
        return a.int_ref >= b.int_ref and ge and (a.int_ref > b.int_ref or gt)

    front = [p for p in pts if not any(better(q, p) for q in pts if q is not p)]
    return sorted(front, key=lambda r: (getattr(r, cost) if minimize else -getattr(r, cost), -r.int_ref, r.id))


def resource_axis(rows: Iterable[PointResult]) -> str:
    """``luts`` when every finished point of these has a LUT count (``build``), else ``bram_blocks``."""
    ok = [r for r in rows if r.ok]
    return "luts" if ok and all(r.luts is not None for r in ok) else "bram_blocks"


def best_points(rows: Iterable[PointResult]) -> dict[str, PointResult]:
    """Per board, the point with the highest integer accuracy (ties: more frames per joule, then
    fewer resources, then the id)."""
    def rank(r: PointResult) -> tuple:
        return (r.int_ref, r.frames_per_j or 0.0, -(r.luts or 0), -(r.bram_blocks or 0))

    best: dict[str, PointResult] = {}
    for r in sorted((r for r in rows if r.ok and r.int_ref is not None), key=lambda r: r.id):
        if r.board not in best or rank(r) > rank(best[r.board]):
            best[r.board] = r
    return best


def reproduce_command(spec: SweepSpec, point: Point, out: str | Path) -> str:
    """The ``snnfpga run`` command that computes this point alone (same ANN: same data, model,
    epochs and seed), writing to ``out``."""
    import shlex

    o = spec.run_options(point, out=out)
    args = ["snnfpga", "run", "--dataset", o.dataset]
    if o.data_root:
        args += ["--data-root", o.data_root]
    args += ["--model", o.model]
    if o.hidden:
        args += ["--hidden", *map(str, o.hidden)]
    args += ["--epochs", str(o.epochs), "--seed", str(o.seed), "--coding", o.coding, "-T", str(o.timesteps),
             "--weight-bits", str(o.weight_bits), "--input-bits", str(o.input_bits), "--act-bits", str(o.act_bits),
             "--input-coding", o.input_coding]
    if o.pow2:
        args.append("--pow2")
    args += ["--finetune-epochs", str(o.finetune_epochs), "--lanes", str(o.lanes), "--decode", o.decode, "--no-sweep"]
    if o.hardware:
        args += ["--simulator", o.simulator]
        if o.images:
            args += ["--images", str(o.images)]
        if o.board:
            args += ["--board", o.board]
    else:
        args.append("--no-hardware")
    args += ["--out", str(out)]
    return shlex.join(args)


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(int(round(v)) if spec == "d" else v, spec)


def format_front(rows: list[PointResult], cost: str) -> str:
    head = f"  {'point':48s} {'int acc':>8s} {'frames/J':>10s} {'LUTs':>6s} {'BRAM':>5s} {'fps':>9s}"
    lines = [head]
    if not rows:
        lines.append("  (no finished point: see the failed points above)")
    for r in rows:
        lines.append(f"  {r.id:48s} {_fmt(r.int_ref, '.2%'):>8s} {_fmt(r.frames_per_j, '.3g'):>10s} "
                     f"{_fmt(r.luts, 'd'):>6s} {_fmt(r.bram_blocks, 'd'):>5s} {_fmt(r.fps, '.4g'):>9s}")
    return "\n".join(lines)


def plot_fronts(rows: list[PointResult], path: Path, title: str) -> Path:
    """Accuracy against frames/J and against resources, one row of two panels per board; every
    finished point dotted, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = list(dict.fromkeys(r.board for r in rows))
    res_axis = resource_axis(rows)
    fig, axes = plt.subplots(max(1, len(boards)), 2, figsize=(10, 3.6 * max(1, len(boards))), dpi=110,
                             squeeze=False)
    colours = {"sc-ttfs": "tab:blue", "ttfs": "tab:orange", "rate": "tab:green"}
    for i, board in enumerate(boards):
        mine = [r for r in rows if r.board == board and r.ok]
        for j, (cost, minimize, label) in enumerate((("frames_per_j", False, "frames/J (estimate)"),
                                                     (res_axis, True, "LUTs" if res_axis == "luts"
                                                      else "block RAMs (pre-synthesis)"))):
            ax = axes[i][j]
            if not mine:
                failed = [r for r in rows if r.board == board]
                ax.text(0.5, 0.5, f"no finished point: {len(failed)} failed\n({failed[0].reason[:60]}...)",
                        ha="center", va="center", fontsize=8, transform=ax.transAxes, wrap=True)
                ax.set_title(board)
                continue
            for coding, c in colours.items():
                pts = [r for r in mine if r.coding == coding and getattr(r, cost) is not None]
                if pts:
                    ax.scatter([getattr(r, cost) for r in pts], [100 * r.int_ref for r in pts], s=18, c=c,
                               alpha=0.6, label=coding)
            front = pareto_front(mine, cost, minimize=minimize)
            if front:
                ax.plot([getattr(r, cost) for r in front], [100 * r.int_ref for r in front], "k-", lw=1,
                        marker="o", mfc="none", ms=8, label="Pareto front")
            xs = [getattr(r, cost) for r in mine if getattr(r, cost)]
            if cost == "frames_per_j" and xs and max(xs) > 10 * min(xs):  # log only over decades
                ax.set_xscale("log")
            else:
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=False)
            ax.set_xlabel(label)
            ax.set_ylabel("integer accuracy (%)")
            ax.set_title(f"{board}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- Ray
def connect(address: str | None, workers: int | None = None) -> bool:
    """Connect to Ray: ``None`` starts it here with ``workers`` CPUs (default: every core), no
    dashboard; ``auto`` or ``host:port`` joins a running cluster, ``ray://host:port`` through Ray
    Client. Unreachable → :class:`BadOption`. Returns whether Ray was started by this call (then
    the caller shuts it down)."""
    import logging

    try:
        import ray
    except ImportError:
        raise MissingTool("'snnfpga sweep' needs Ray Tune: pip install 'ray[tune]' (see requirements.txt)") from None
    if address is not None and address != "auto":
        hostport = address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise BadOption(f"--address {address!r}: must be auto, HOST:PORT or ray://HOST:PORT")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise BadOption(f"--address {address}: cannot reach a Ray cluster at {host}:{port} ({e}); start one "
                            "with 'ray start --head' (docs/sweep.md)") from None
    if ray.is_initialized():
        if address is not None:
            raise BadOption(f"--address {address}: this process is already connected to a Ray cluster")
        return False
    if address is None:  # "local": a new Ray here, even if 'ray start' left one running
        ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        return True
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise BadOption(f"--address {address}: could not connect to Ray ({str(e).splitlines()[0]}); start a "
                        "cluster with 'ray start --head' (docs/sweep.md)") from None
    return True


@dataclass
class SweepResult:
    """What a sweep left: every row, the fronts per board, the best point per board and the files."""

    root: Path
    rows: list[PointResult]
    fronts: dict[str, dict[str, list[PointResult]]]  #: board -> {"frames_per_j" | resource axis: front}
    best: dict[str, PointResult]
    commands: dict[str, str]  #: board -> the snnfpga run command reproducing its best point
    plot: Path | None
    seconds: float
    resumed: bool = False
    ran: int = 0  #: points computed by this call (not loaded from an earlier one)
    fit_seconds: float = 0.0  #: wall time of Tune's run (the points), Ray start and training excluded
    unfinished: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[PointResult]:
        return [r for r in self.rows if not r.ok]


def _train(spec: SweepSpec, root: Path, resume: bool, say: Say):
    from . import flow

    opts = spec.run_options(spec.points()[0], out=root, quiet=True)
    data = flow.load_data(opts)
    ckpt = root / "ann.pt"
    if resume and ckpt.is_file():
        from .convert.models import load_checkpoint

        model, arch = load_checkpoint(ckpt)
        say(f"ANN: {ckpt} (trained by the first run), test accuracy {100 * arch['accuracy']['test']:.2f}%")
        return model, data
    t = flow.train(opts, data, checkpoint=ckpt)
    say(f"ANN {spec.model} {t.arch['hidden']} on {data.name}: test accuracy {100 * t.test_accuracy:.2f}% "
        f"({t.seconds:.0f} s) -> {ckpt}")
    return t.model, data


def run_sweep(spec: SweepSpec | None = None, *, runs: str | Path = "runs", resume: str | Path | None = None,
              address: str | None = None, workers: int | None = None, progress: bool = True,
              say: Say = print) -> SweepResult:
    """Run ``spec``'s points on Ray Tune under ``runs/<spec.name>``, or resume the sweep in
    ``resume`` (its own ``sweep.json``; only unfinished points run). Returns the rows, fronts
    and best points, which are also printed and plotted."""
    t0 = time.time()
    if resume is not None:
        root = Path(resume)
        if not (root / SPEC_FILE).is_file():  # tune/ may be missing: stopped before its first point
            raise BadFile(f"--resume {str(root)!r}: not a sweep folder (no {SPEC_FILE})")
        try:
            spec = SweepSpec.from_json(json.loads((root / SPEC_FILE).read_text()), str(root / SPEC_FILE))
        except json.JSONDecodeError as e:
            raise BadFile(f"{root / SPEC_FILE}: not valid JSON ({e})") from None
    else:
        if spec is None:
            raise BadOption("run_sweep needs a spec or resume")
        root = Path(runs) / spec.name
        if (root / SPEC_FILE).exists():
            raise BadOption(f"{root} already holds a sweep: resume it with 'snnfpga sweep --resume {root}' or "
                            "choose another --name")
    points = spec.points()
    order = [p.id for p in points]
    started = connect(address, workers)  # an unreachable cluster fails here, before anything is written
    try:
        from ray import tune

        root.mkdir(parents=True, exist_ok=True)
        if resume is None:
            _atomic_write(root / SPEC_FILE, json.dumps(spec.to_json(), indent=1) + "\n")
        model, data = _train(spec, root, resume is not None, say)
        done_before = set(read_rows(root)) if resume is not None else set()
        root_abs = str(root.resolve())
        trainable = tune.with_resources(
            tune.with_parameters(_trial, payload=(model, data), spec=spec.to_json(), root=root_abs),
            {"cpu": spec.cpus_per_point})
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own console tables off: our bar and rows
        say(f"sweep {spec.name}: {len(points)} points ({', '.join(_ranges(spec))}); results -> {root}/sweep.csv")
        if resume is not None and tune.Tuner.can_restore(str((root / TUNE_DIR).resolve())):
            tuner = tune.Tuner.restore(str((root / TUNE_DIR).resolve()), trainable=trainable,
                                       resume_unfinished=True, resume_errored=False, restart_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"point": tune.grid_search([asdict(p) for p in points])},
                # reuse_actors: one worker process serves point after point; a new process per
                # point cost about 13 s more per point on this machine (docs/sweep.md)
                tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=_trial_name,
                                            trial_dirname_creator=_trial_name, reuse_actors=True),
                run_config=tune.RunConfig(name=TUNE_DIR, storage_path=root_abs, verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                                          callbacks=[ResultsWriter(root.resolve(), order, progress)]))
        t_fit = time.time()
        tuner.fit()
        fit_seconds = time.time() - t_fit
    finally:
        if started:
            import ray

            ray.shutdown()
    res = summarize(spec, root, resumed=resume is not None, done_before=done_before, t0=t0, say=say)
    res.fit_seconds = fit_seconds
    if res.ran:
        say(f"{res.ran} points computed in {fit_seconds:.0f} s of Tune: {60 * res.ran / fit_seconds:.1f} points/min "
            f"(Ray start and ANN training excluded)")
    return res


def _trial_name(trial) -> str:
    return Point(**trial.config["point"]).id


def _ranges(spec: SweepSpec) -> list[str]:
    out = []
    for name in PARAMETERS:
        v = getattr(spec, name)
        if name == "timesteps" and not v:
            v = ("default",)
        out.append(f"{name} {'/'.join(str(x) for x in v)}")
    return out


def summarize(spec: SweepSpec, root: Path, *, resumed: bool = False, done_before: set[str] | None = None,
              t0: float | None = None, say: Say = print) -> SweepResult:
    """Read the rows, print the fronts per board and the best point with its command, plot."""
    by_id = read_rows(root)
    order = [p.id for p in spec.points()]
    rows = [by_id[i] for i in order if i in by_id]
    unfinished = [i for i in order if i not in by_id]
    res_axis = resource_axis(rows)
    fronts: dict[str, dict[str, list[PointResult]]] = {}
    for board in dict.fromkeys(r.board for r in rows):
        mine = [r for r in rows if r.board == board]
        fronts[board] = {"frames_per_j": pareto_front(mine, "frames_per_j", minimize=False),
                         res_axis: pareto_front(mine, res_axis, minimize=True)}
    best = best_points(rows)
    commands = {b: reproduce_command(spec, r.point, root / f"best-{b}") for b, r in best.items()}
    failed = [r for r in rows if not r.ok]
    say(f"\n{len(rows)} of {len(order)} points finished ({len(failed)} failed) -> {root / 'sweep.csv'}")
    for r in failed:
        say(f"  failed {r.id}: {r.reason}")
    for board, fr in fronts.items():
        for cost, front in fr.items():
            what = {"frames_per_j": "frames/J (estimate)", "luts": "LUTs", "bram_blocks": "block RAMs"}[cost]
            say(f"\nPareto front on {board}: integer accuracy vs {what}")
            say(format_front(front, cost))
    for board, r in best.items():
        say(f"\nbest on {board}: {r.id}, integer accuracy {100 * r.int_ref:.2f}%, "
            f"{_fmt(r.frames_per_j, '.3g')} frames/J; alone:\n  {commands[board]}")
    plot = None
    if any(r.ok for r in rows):
        plot = plot_fronts(rows, root / "pareto.png", f"{spec.name}: {spec.dataset} {spec.model}")
        say(f"plot: {plot}")
    for i in unfinished:
        say(f"  unfinished: {i} (resume with: snnfpga sweep --resume {root})")
    ran = sum(1 for r in rows if r.id not in (done_before or set()))
    return SweepResult(root=root, rows=rows, fronts=fronts, best=best, commands=commands, plot=plot,
                       seconds=time.time() - (t0 or time.time()), resumed=resumed, ran=ran, unfinished=unfinished)


def spec_with(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """``spec`` with some fields changed (checked again)."""
    return SweepSpec.from_mapping({**spec.to_json(), **changes}, "sweep")

