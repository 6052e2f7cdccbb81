"""``snnfpga run``: the whole flow as one explicit, ordered list of steps.

::

    data → train → convert → evaluate → generate → simulate → build → report

Each step is a function here and returns a typed result; :func:`run` calls them in that order
and :mod:`snnfpga.report` writes ``report.json`` from the results (docs/report.md):

- data: load the data set (``Dataset``);
- train: train the ANN, write ``ann.pt`` (:class:`TrainResult`);
- convert: the main network, the other codings at their default T and (with ``sweep``) the T
  sweep; write the IR files (:class:`ConvertResult`);
- evaluate: float SNN and integer accuracy of every converted network on the test split, the
  accuracy-vs-T plot (:class:`EvaluateResult` of :class:`ConversionRow`);
- generate: the Verilog of the main network, once (:class:`GenerateResult`);
- simulate: the golden model once on the hardware frames (:class:`HardwareFrames`), then cocotb
  on that Verilog: bit-exact check, cycles, events (:class:`SimulateResult`);
- build (with ``board``): place and route the UART top, then throughput and power from the
  measured frame interval (:class:`BuildResult` with its ``Performance``);
- report: ``report.json`` (:class:`Report`, written by :func:`snnfpga.report.write`).

Verilog is generated once and handed to the simulator; the integer reference runs once on the
frames the hardware steps use and its result is handed to the simulation report, the activity
count and the power estimate. The hardware steps import amaranth / cocotb lazily.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import BadOption, Mismatch

if TYPE_CHECKING:
    from torch import nn

    from .boards.performance import Performance
    from .convert.data import Dataset
    from .convert.pipeline import ConvertOptions, Converted
    from .ir import Network
    from .reference import Result
    from .sim import SimulationReport

__all__ = ["CODINGS", "FINETUNE_SWEEP", "SWEEP_T", "STEPS", "BOARD_ACTIVITY_FRAMES", "default_timesteps", "RunOptions",
           "TrainResult", "ConversionRow", "ConvertResult", "EvaluateResult", "GenerateResult", "HardwareFrames",
           "SimulateResult", "BuildResult", "Report", "preflight", "load_data", "train", "convert", "evaluate",
           "generate", "hardware_images", "hardware_frames", "simulate", "build", "run"]

CODINGS = ("sc-ttfs", "ttfs", "rate")
#: what the sweep points' fine-tuning may be (:attr:`RunOptions.finetune_sweep`)
FINETUNE_SWEEP = ("all", "warm", "none")
SWEEP_T = {"sc-ttfs": (2, 3, 4, 6, 8), "ttfs": (2, 3, 4, 6, 8), "rate": (8, 16, 32, 64)}
#: the steps of :func:`run`, in order; ``report.json``'s ``seconds_per_step`` times those that ran
#: before the report was written
STEPS = ("data", "train", "convert", "evaluate", "generate", "simulate", "build", "report")
#: frames of the test split the board's activity estimate averages over (at most)
BOARD_ACTIVITY_FRAMES = 200

Say = Callable[[str], None]


def default_timesteps(coding: str, T: int | None = None) -> int:
    """``T`` if given, else 4 for (SC-)TTFS and 32 for rate."""
    return T if T is not None else (32 if coding == "rate" else 4)


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class RunOptions:
    """Everything ``snnfpga run`` is told (the command-line options, typed)."""

    dataset: str = "digits"
    data_root: str | None = None
    model: str = "mlp"
    hidden: tuple[int, ...] | None = None  #: default (128,) for mlp, (16, 32) for cnn
    kernel: tuple[int, ...] | None = None  #: cnn: kernel size per conv (one for all), default 3
    stride: tuple[int, ...] | None = None  #: cnn: stride per conv, default 1
    pool: tuple[int, ...] | None = None  #: cnn: average pool after each conv (1 = none), default 2
    epochs: int = 30
    coding: str = "sc-ttfs"
    timesteps: int | None = None  #: default: :func:`default_timesteps`
    weight_bits: int = 8
    input_bits: int = 8
    act_bits: int = 8
    input_coding: str = "direct"
    pow2: bool = False
    finetune_epochs: int = 3
    #: fine-tuning of the sweep points (the jobs after the first three): ``all`` (each its own
    #: ``finetune_epochs``), ``warm`` (start from the folded BN the same coding's fine-tuned network
    #: at its default T reached, thresholds fitted again, no fine-tuning of its own) or ``none``;
    #: default: :meth:`sweep_finetune`
    finetune_sweep: str | None = None
    seed: int = 0
    out: str | Path | None = None  #: default runs/<dataset>
    sweep: bool = True
    hardware: bool = True
    images: int | None = None  #: hardware frames; default all of digits, else 100
    simulator: str = "verilator"
    lanes: int = 4
    decode: str = "auto"  #: where the generated (SC-)TTFS layers apply the decode LUT (rtl_gen.NetworkTop)
    board: str | None = None
    #: the board build's clock: ``"osc"``, ``"auto"`` or MHz (``boards.clock.parse_clock``'s value)
    clock: str | float = "osc"
    single_bank: tuple[int, ...] = ()  #: layers with one bank of partial sums (rtl_gen.NetworkTop)
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """From parsed ``train`` / ``convert`` / ``run`` arguments (options a command lacks keep their defaults)."""
        kw: dict[str, Any] = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        for key in ("hidden", "kernel", "stride", "pool"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        if hasattr(args, "no_sweep"):
            kw["sweep"] = not args.no_sweep
        if hasattr(args, "no_hardware"):
            kw["hardware"] = not args.no_hardware
        if kw.get("clock") is None:  # not given: the default (the CLI leaves it None, see cli._clock)
            kw.pop("clock", None)
        return cls(**kw)

    @property
    def main_timesteps(self) -> int:
        return default_timesteps(self.coding, self.timesteps)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return self.hidden if self.hidden else ((128,) if self.model == "mlp" else (16, 32))

    def sweep_finetune(self, coding: str) -> str:
        """How the sweep points of ``coding`` are fine-tuned: ``finetune_sweep`` if given; else
        ``all`` for an MLP (a fraction of a second a network) and, for a CNN, ``all`` for TTFS
        and ``warm`` for SC-TTFS. Measured on MNIST-10k (docs/report.md, "Conversion time"):
        fine-tuning a CNN's TTFS sweep point gains 0.3-0.4 points for about 20 s on 2 cores, and
        starting from the fine-tuned BN without it gains nothing; fine-tuning an SC-TTFS point costs
        twice that for -0.05 to +0.25 points, and the warm start gets +0.1 to +0.15 of it for free."""
        if self.finetune_sweep is not None:
            if self.finetune_sweep not in FINETUNE_SWEEP:
                raise BadOption(f"finetune_sweep must be one of {', '.join(FINETUNE_SWEEP)}, not {self.finetune_sweep!r}")
            return self.finetune_sweep
        return "warm" if self.model != "mlp" and coding == "sc-ttfs" else "all"

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset}")

    def convert_options(self, coding: str | None = None, T: int | None = None) -> ConvertOptions:
        from .convert.pipeline import ConvertOptions

        coding = coding or self.coding
        return ConvertOptions(coding=coding, timesteps=T or default_timesteps(coding, self.timesteps),
                              weight_bits=self.weight_bits, input_bits=self.input_bits, act_bits=self.act_bits,
                              input_coding=self.input_coding, pow2=self.pow2,
                              finetune_epochs=self.finetune_epochs, seed=self.seed)

    def jobs(self) -> list[tuple[str, int]]:
        """(coding, T) to convert: the main network first, then the other codings at their
        default T, then (with ``sweep``) the rest of :data:`SWEEP_T`."""
        jobs = [(self.coding, self.main_timesteps)]
        jobs += [(c, default_timesteps(c)) for c in CODINGS if c != self.coding]
        if self.sweep:
            jobs += [(c, T) for c in CODINGS for T in SWEEP_T[c] if (c, T) not in jobs]
        return jobs


# --------------------------------------------------------------------------- step results
@dataclass
class TrainResult:
    """The trained ANN and its checkpoint metadata (``arch``: model, hidden, in_shape, classes,
    dataset, epochs, accuracy {train, test})."""

    model: nn.Module
    arch: dict[str, Any]
    checkpoint: Path | None
    seconds: float

    @property
    def test_accuracy(self) -> float:
        return float(self.arch["accuracy"]["test"])


@dataclass(frozen=True)
class ConversionRow:
    """One converted network evaluated on the whole test split (a row of ``report.json``'s ``runs``)."""

    coding: str
    timesteps: int
    input_coding: str
    float_ann: float  #: the ANN's test accuracy (fraction)
    float_snn: float  #: the float SNN's
    int_ref: float  #: the integer reference's
    images: int  #: test images evaluated
    float_spikes_per_frame: float
    spikes_per_frame: float  #: integer reference, mean over the test split
    finetune: dict[str, Any]  #: what the fine-tune pass reported
    seconds: float  #: convert + evaluate wall time
    energy_paper: dict[str, float]  #: E = N*E_i + L*E_l, {"truenorth", "spinnaker"}
    #: wall seconds of each pass (``convert.pipeline.PASSES``: trace, thresholds, finetune,
    #: quantize, float_snn, int_ref); work shared across the sweep counts in the row that did it
    seconds_per_pass: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, m: dict[str, Any]) -> ConversionRow:
        """From :func:`snnfpga.convert.pipeline.evaluate`'s metrics."""
        from .metrics.energy import paper_energy

        return cls(coding=m["coding"], timesteps=int(m["timesteps"]), input_coding=m["input_coding"],
                   float_ann=m["float_ann"], float_snn=m["float_snn"], int_ref=m["int_ref"], images=m["images"],
                   float_spikes_per_frame=m["float_spikes_per_frame"], spikes_per_frame=m["spikes_per_frame"],
                   finetune=m["finetune"], seconds=m["seconds"],
                   energy_paper=paper_energy(m["spikes_per_frame"], int(m["timesteps"])),
                   seconds_per_pass=dict(m.get("seconds_per_pass", {})))

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ConvertResult:
    """Every converted network, keyed by (coding, T) in job order; the IR files written."""

    converted: dict[tuple[str, int], Converted]
    main: tuple[str, int]
    ir_files: dict[str, Path]  #: <coding>.snn.json of the main network and the other two codings
    main_ir: Path  #: model.snn.json, the main network
    seconds: float

    @property
    def main_net(self) -> Network:
        return self.converted[self.main].net


@dataclass
class EvaluateResult:
    rows: list[ConversionRow]  #: in job order, the main network first
    test_images: int
    plot: Path | None  #: accuracy_vs_T.png (with the sweep)
    seconds: float

    @property
    def main(self) -> ConversionRow:
        return self.rows[0]


@dataclass
class GenerateResult:
    verilog: Path  #: the generated top, ``<out>/rtl/snn_top.v``
    summary: dict[str, Any]  #: the summary JSON beside it (docs/hardware.md)
    lanes: int
    seconds: float


@dataclass
class HardwareFrames:
    """Integer test frames, their labels, and the integer reference's result on them (run once)."""

    frames: np.ndarray  #: (N, input size), integer pixels
    labels: np.ndarray | None  #: None: unlabelled frames (no accuracy, only the bit-exact check)
    ref: Result

    def head(self, n: int) -> HardwareFrames:
        """The first ``n`` frames with their labels and reference results (nothing re-run)."""
        from .reference import LayerSpikes, Result

        def cut(a):
            return None if a is None else a[:n]

        ref = Result(output=self.ref.output[:n], classes=self.ref.classes[:n],
                     spikes={k: LayerSpikes(t_enc=cut(s.t_enc), t_cal=cut(s.t_cal), raster=cut(s.raster))
                             for k, s in self.ref.spikes.items()})
        return HardwareFrames(frames=self.frames[:n], labels=cut(self.labels), ref=ref)


@dataclass
class SimulateResult:
    report: SimulationReport
    rtl_accuracy: float  #: RTL classes vs labels on the simulated images (nan without labels)
    int_ref_accuracy: float  #: the integer reference on the same images (nan without labels)
    seconds: float

    @property
    def images(self) -> int:
        return self.report.images

    @property
    def mismatching_images(self) -> int:
        """Frames whose spike events or output membranes differ from the integer reference (must be 0)."""
        return self.report.mismatching_images

    @property
    def bit_exact(self) -> bool:
        return self.report.mismatching_images == 0


@dataclass
class BuildResult:
    """A board build (``boards.build.build``'s result in ``build``) and the throughput and power
    estimated from it."""

    board: str
    build: dict[str, Any]
    performance: Performance
    seconds: float

    @property
    def fmax_mhz(self) -> float | None:
        return self.build.get("fmax_mhz")

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.build.get("resources") or {})

    @property
    def bitstream(self) -> str | None:
        return self.build.get("bitstream")

    @property
    def clock(self) -> dict[str, Any]:
        """The clock plan the build ran at (``boards.clock.ClockPlan``'s JSON: source, osc_mhz, mhz, pll)."""
        return dict(self.build.get("clock") or {})


@dataclass
class Report:
    """Everything one run produced: every step's result (``None`` for a step that did not run)."""

    options: RunOptions
    dataset: str
    out: Path
    train: TrainResult
    convert: ConvertResult
    evaluate: EvaluateResult
    generate: GenerateResult | None = None
    simulate: SimulateResult | None = None
    build: BuildResult | None = None
    seconds: float = 0.0  #: the whole run, up to writing report.json
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    path: Path | None = None  #: report.json, once written

    @property
    def mismatching_images(self) -> int:
        return self.simulate.report.mismatching_images if self.simulate is not None else 0


# --------------------------------------------------------------------------- steps
def load_data(opts: RunOptions) -> Dataset:
    from .convert.data import load_dataset

    return load_dataset(opts.dataset, opts.data_root)


def train(opts: RunOptions, data: Dataset, checkpoint: str | Path | None = None) -> TrainResult:
    """Train the ANN (seeded: reproducible); with ``checkpoint``, save it there."""
    import torch

    from .convert.models import build_model, model_options, save_checkpoint
    from .convert.train import train_ann

    t0 = time.time()
    hidden = opts.hidden_sizes
    torch.manual_seed(opts.seed)  # the initial weights too: a run is reproducible
    options = model_options(vars(opts))
    model = build_model(opts.model, data.shape, data.classes, hidden, **options)
    acc = train_ann(model, data, epochs=opts.epochs, seed=opts.seed, progress=not opts.quiet)
    arch = {"model": opts.model, "hidden": list(hidden), "in_shape": list(data.shape), "classes": data.classes,
            "dataset": data.name, "epochs": opts.epochs, "accuracy": acc, **{k: list(v) for k, v in options.items()}}
    if checkpoint is not None:
        save_checkpoint(model, arch, checkpoint)
    return TrainResult(model=model, arch=arch, checkpoint=Path(checkpoint) if checkpoint is not None else None,
                       seconds=time.time() - t0)


def convert(opts: RunOptions, data: Dataset, trained: TrainResult, out: Path) -> ConvertResult:
    """Convert every job of :meth:`RunOptions.jobs`; save ``<coding>.snn.json`` for the first three
    and ``model.snn.json`` for the main network."""
    from tqdm.auto import tqdm

    from .convert.pipeline import Shared, convert_network
    from .ir import save

    t0 = time.time()
    jobs = opts.jobs()
    converted = {}
    shared = Shared(trained.model, data, rate_timesteps=tuple(T for c, T in jobs if c == "rate"))
    first = {}  # coding -> its fine-tuned network among the first three jobs
    bar = tqdm(jobs, desc="convert", unit="net", disable=opts.quiet)
    for k, (coding, T) in enumerate(bar):
        bar.set_postfix_str(f"{coding} T={T}")
        copts, warm = opts.convert_options(coding, T), None
        sweep_point = k >= 3 and coding != "rate"
        policy = opts.sweep_finetune(coding)
        if sweep_point and policy != "all":
            copts.finetune_epochs = 0
            warm = first.get(coding) if policy == "warm" else None
        c = convert_network(trained.model, data, copts, name=f"{coding}-T{T}", progress=not opts.quiet,
                            shared=shared, warm_start=warm)
        if sweep_point and policy != "all":
            c.finetune = dict(c.finetune, sweep=policy)
        if k < 3:
            first[coding] = c
        converted[(coding, T)] = c
    ir_files = {}
    for coding, T in jobs[:3]:
        ir_files[coding] = save(converted[(coding, T)].net, out / f"{coding}.snn.json")[0]
    main_ir = out / "model.snn.json"
    save(converted[jobs[0]].net, main_ir)
    return ConvertResult(converted=converted, main=jobs[0], ir_files=ir_files, main_ir=main_ir,
                         seconds=time.time() - t0)


def evaluate(opts: RunOptions, data: Dataset, trained: TrainResult, conv: ConvertResult, out: Path,
             say: Say = print) -> EvaluateResult:
    """Float SNN and integer accuracy of every converted network on the test split; print the
    table; with the sweep, plot accuracy against T."""
    from .convert.pipeline import evaluate_all
    from .report import format_rows

    t0 = time.time()
    rows = [ConversionRow.from_metrics(m)
            for m in evaluate_all(list(conv.converted.values()), data, progress=not opts.quiet)]
    say("")
    say(format_rows(sorted(rows, key=lambda r: (CODINGS.index(r.coding), r.timesteps))))
    plot = None
    if opts.sweep:
        from .plots import plot_accuracy_vs_timesteps

        plot = plot_accuracy_vs_timesteps(rows, trained.test_accuracy, out / "accuracy_vs_T.png",
                                          f"{data.name}: {opts.model} {trained.arch['hidden']}")
        say(f"plot: {plot}")
    return EvaluateResult(rows=rows, test_images=len(data.test_y), plot=plot, seconds=time.time() - t0)


def generate(opts: RunOptions, net: Network, out: Path) -> GenerateResult:
    """The Verilog top of ``net`` (``out/rtl/snn_top.v`` + its summary JSON): generated once per run."""
    import json

    from . import rtl_gen

    t0 = time.time()
    v = Path(rtl_gen.generate(net, out / "rtl", lanes=opts.lanes, decode=opts.decode))
    summary = json.loads(v.with_suffix(".json").read_text())
    return GenerateResult(verilog=v, summary=summary, lanes=opts.lanes, seconds=time.time() - t0)


def hardware_frames(net: Network, data: Dataset, n: int) -> HardwareFrames:
    """The first ``n`` test frames quantised to ``net``'s input, and the integer reference on them:
    the golden model's one run for the hardware steps."""
    from . import reference
    from .ir.frames import quantize_frames

    frames = quantize_frames(net, data.test_x[:n])
    frames = frames.reshape(len(frames), -1)
    return HardwareFrames(frames=frames, labels=np.asarray(data.test_y[:len(frames)]),
                          ref=reference.simulate(net, frames))


def simulate(opts: RunOptions, net: Network, gen: GenerateResult, hw: HardwareFrames, out: Path,
             say: Say = print, build_root: Path | None = None) -> SimulateResult:
    """Simulate the generated Verilog with cocotb on ``hw``'s frames and compare it, event by event,
    with ``hw``'s reference result. The compiled model goes under ``out/sim_build`` (or ``build_root``,
    e.g. the shared cache :func:`snnfpga.sim.runner.default_build_root`)."""
    from . import sim

    t0 = time.time()
    say(f"RTL: cocotb + {opts.simulator} on {len(hw.frames)} test images (lanes={opts.lanes}) ...")
    rep = sim.simulate(net, hw.frames, simulator=opts.simulator, lanes=opts.lanes,
                       build_dir=build_root if build_root is not None else out / "sim_build",
                       verilog=gen.verilog, ref=hw.ref)
    if hw.labels is None:
        rtl_acc = ref_acc = float("nan")
    else:
        rtl_acc = float((np.asarray(rep.rtl_classes) == hw.labels).mean())
        ref_acc = float((np.asarray(rep.reference_classes) == hw.labels).mean())
    cpf = (rep.cycles_per_frame or {}).get("mean")
    say(f"RTL: {rep.images} images, {rep.mismatching_images} mismatching (bit-exact: every spike event and "
        f"output membrane), accuracy {100 * rtl_acc:.2f}% (integer reference on the same images "
        f"{100 * ref_acc:.2f}%), {cpf if cpf is not None else float('nan'):.0f} cycles/frame, "
        f"frame interval {rep.frame_interval_cycles or float('nan'):.0f} cycles")
    if rep.first_mismatch:
        say(f"first mismatch: {rep.first_mismatch}")
    return SimulateResult(report=rep, rtl_accuracy=rtl_acc, int_ref_accuracy=ref_acc, seconds=time.time() - t0)


def build(opts: RunOptions, net: Network, out: Path, hw: HardwareFrames | None,
          sim_report: SimulationReport | None, say: Say = print) -> BuildResult:
    """Place and route the UART top for ``opts.board`` at ``opts.clock``
    (:func:`snnfpga.boards.clock.build_at_clock`); fps and power from the measured frame
    interval and ``hw``'s reference activity (without ``hw``, every neuron is assumed to fire once)."""
    from .boards.clock import build_at_clock
    from .boards.performance import performance
    from .boards.registry import get_board

    t0 = time.time()
    board = get_board(opts.board)
    say(f"board: building for {opts.board} (open toolchain, clock {opts.clock}) ...")
    b = build_at_clock(net, board, out / "board", clock=opts.clock, lanes=opts.lanes, decode=opts.decode,
                       single_bank=opts.single_bank)
    b["power_device"] = board.power_device
    perf = performance(net, b, lanes=opts.lanes, sim_report=sim_report, frames=hw.frames if hw else None,
                       ref=hw.ref if hw else None)
    pw = perf.power or {}
    plan = b.get("clock") or {}
    for note in b.get("notes", []):
        if note.startswith("clock auto"):
            say(f"board: {note}")
    say(f"board: {opts.board}: fmax {b.get('fmax_mhz') or float('nan'):.1f} MHz (clock {perf.clock_mhz} MHz: "
        f"{plan.get('source', 'osc')}, --clock {opts.clock}), "
        f"{perf.fps or float('nan'):.0f} frames/s, {pw.get('total_w', float('nan')) * 1e3:.2f} mW, "
        f"{pw.get('fps_per_w', float('nan')):.0f} frames/W (estimate; see power breakdown in report.json)")
    return BuildResult(board=board.name, build=b, performance=perf, seconds=time.time() - t0)


def hardware_images(opts: RunOptions, data: Dataset) -> int:
    """Frames to simulate: ``opts.images``, or all of digits' test split, else 100."""
    return opts.images or (len(data.test_y) if data.name == "digits" else 100)


def preflight(opts: RunOptions) -> None:
    """Fail before training, not after, on a T the coding does not take, or a simulator or
    board that is not there."""
    from .ir.network import max_timesteps

    for coding, T in opts.jobs():
        if T > max_timesteps(coding):
            raise BadOption(f"--timesteps: a {coding} network takes T in 1..{max_timesteps(coding)} "
                            f"(docs/ir.md, limits), not {T}")
    if not opts.hardware:
        return
    from .sim import runner

    runner.prepare_simulator(opts.simulator)
    if opts.board:
        from .boards.registry import get_board

        board = get_board(opts.board)
        if opts.clock not in ("osc", "auto"):  # a frequency the board's PLL cannot make fails here
            from .boards.clock import plan_clock

            try:
                plan_clock(board, opts.clock)
            except BadOption as e:
                raise BadOption(f"--clock {opts.clock:g} on {board.name}: {e}") from None


# --------------------------------------------------------------------------- the flow
def run(opts: RunOptions, say: Say = print, *, strict: bool = True) -> Report:
    """Every step in order; writes ``report.json`` (and the IR files, the Verilog, the plot) under
    ``opts.out_dir``. With ``strict``, a hardware/reference mismatch raises :class:`Mismatch`
    after the report is written (the exception's ``report`` is the :class:`Report`)."""
    from . import report as report_json

    t0 = time.time()
    preflight(opts)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}

    t1 = time.time()
    data = load_data(opts)
    steps["data"] = time.time() - t1
    say(f"data: {data!r}")
    trained = train(opts, data, checkpoint=out / "ann.pt")
    steps["train"] = trained.seconds
    say(f"float ANN: test accuracy {100 * trained.test_accuracy:.2f}%")
    conv = convert(opts, data, trained, out)
    steps["convert"] = conv.seconds
    ev = evaluate(opts, data, trained, conv, out, say)
    steps["evaluate"] = ev.seconds
    rep = Report(options=opts, dataset=data.name, out=out, train=trained, convert=conv, evaluate=ev,
                 seconds_per_step=steps)
    if opts.hardware:
        net = conv.main_net
        rep.generate = generate(opts, net, out)
        steps["generate"] = rep.generate.seconds
        t1 = time.time()
        n = min(hardware_images(opts, data), len(data.test_y))
        n_all = max(n, min(BOARD_ACTIVITY_FRAMES, len(data.test_y))) if opts.board else n
        hw_all = hardware_frames(net, data, n_all)  # the golden model's one run
        hw = hw_all.head(n) if n < n_all else hw_all
        rep.simulate = simulate(opts, net, rep.generate, hw, out, say)
        steps["simulate"] = time.time() - t1  # the reference run included
        if opts.board:
            board_hw = hw_all.head(min(BOARD_ACTIVITY_FRAMES, n_all))
            rep.build = build(opts, net, out, board_hw, rep.simulate.report, say)
            steps["build"] = rep.build.seconds
    rep.seconds = time.time() - t0
    rep.path = report_json.write(rep, out / "report.json")
    say(f"report: {rep.path}  ({rep.seconds:.0f} s)")
    if strict and rep.mismatching_images:
        sim_rep = rep.simulate.report
        e = Mismatch(f"{sim_rep.mismatching_images} of {sim_rep.images} images differ from the integer "
                     f"reference (report: {rep.path})")
        e.report = rep
        raise e
    return rep
