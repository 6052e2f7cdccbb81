"""Bit-exact proof of the generated network: cocotb testbenches on Verilator or Icarus.

``simulate(net, frames)`` generates the Verilog top (``rtl_gen.generate``; or takes an already
generated ``verilog=`` file), builds it once per (Verilog, simulator) in a hashed build directory
(:mod:`sim.runner`), runs the cocotb testbench (:mod:`sim.tb_network`), and compares every spike
event of every stage and the output membranes with the integer reference (:mod:`sim.compare`),
which it runs once (or takes as ``ref=``). It returns a :class:`SimulationReport`, docs/hardware.md's
"Simulation report".

cocotb, Verilator and amaranth are imported lazily (inside functions); importing ``sim`` costs
numpy and ``snnfpga`` only.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snnfpga.ir import Network

from .runner import SIMULATORS, Build, SimulationError, SimulatorNotFound

if TYPE_CHECKING:
    from snnfpga.reference import Result

__all__ = ["simulate", "prepare", "report", "SimulationReport", "SIMULATORS", "SimulationError",
           "SimulatorNotFound", "Build"]


@dataclass
class SimulationReport:
    """What one simulation showed (docs/hardware.md, "Simulation report"); cycles are clock cycles.

    Reads like the dict it used to be (``r["images"]``, ``"waves" in r``, ``r.get(...)``);
    :meth:`to_json` gives that dict (``--json`` files, ``report.json``'s ``hardware``).
    """

    simulator: str
    images: int  #: frames compared
    mismatching_images: int  #: frames with any differing event or output membrane (must be 0)
    first_mismatch: str | None  #: image, stage and the first differing event or membrane
    rtl_classes: list[int | None]  #: class the hardware answered, per frame (None: no answer)
    cycles_per_frame: dict[str, float] | None  #: {"mean", "min", "max"}: first pixel in -> last result out
    frame_interval_cycles: float | None  #: mean interval between frames streamed back to back
    events_per_frame: float | None  #: spike events of all stages, mean
    synaptic_events_per_frame: float | None  #: (event, connection) pairs, mean
    event_bound_cycles: float | None  #: ceil(synaptic events / lanes), mean
    bound_ratio: float | None  #: cycles_per_frame mean / event_bound_cycles
    interval_bound_cycles: float | None  #: the busiest layer's ceil(synaptic events / lanes), mean over the frames the interval is measured on
    interval_bound_ratio: float | None  #: frame_interval_cycles / interval_bound_cycles
    synaptic_events_per_layer: list[float]  #: per weighted layer, mean
    sim_seconds: float  #: wall time of the simulation run
    images_per_second: float | None
    lanes: int
    reference_classes: list[int]  #: the integer reference's class, per frame
    stats: dict[str, Any]  #: the top's stat_* counters at the end
    stat_errors: list[str]  #: counters that disagree with what taps and results showed
    protocol_errors: list[str]  #: stream handshake violations seen by the testbench
    sim_cycles: int | None  #: simulated clock cycles
    build_dir: str | None
    run_dir: str | None
    waves: str | None = None  #: the waveform file (with ``waves=True``)
    #: per tapped stage (IR layer index, or ``in`` for the input encoder): mean cycles between
    #: its end-of-frame pulses while frames stream back to back. In a pipeline every stage settles
    #: to the same interval; a stage below the frame interval is waiting on the others.
    stage_interval_cycles: dict[str, float] = field(default_factory=dict)
    #: the simulator's own rate while the frames ran (harness runs: clock cycles per wall second
    #: from the first frame to the last result, without start-up); None for the Python testbench
    cycles_per_second: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as a plain dict (``waves`` only when recorded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.waves is None:
            del out["waves"]
        return out

    # the dict this used to be, for readers that index it
    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in _REPORT_KEYS and (key != "waves" or self.waves is not None)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def keys(self) -> list[str]:
        return [k for k in _REPORT_KEYS if k in self]


_REPORT_KEYS = frozenset(f.name for f in fields(SimulationReport))


def prepare(net: Network, *, simulator: str = "verilator", lanes: int = 1, waves: bool = False,
            build_dir: str | Path | None = None, verilog: str | Path | None = None,
            opt: str | None = None, decode: str = "auto", single_bank=(), harness: bool = True) -> Build:
    """Generate (unless ``verilog`` names an already generated ``.v`` with its ``.json`` beside
    it) and compile the top of ``net``; a compiled model of the same Verilog is reused.
    ``opt``: Verilator's C++ optimisation (see :func:`sim.runner.build`); ``decode``: where the
    generated layers apply the decode LUT, ``single_bank``: layers with one bank of partial sums
    (``rtl_gen.NetworkTop``'s options); ``harness``: the testbench's per-cycle work runs in the
    simulator (:mod:`sim.harness`, fast), not in cocotb's Python (:mod:`sim.tb_network`)."""
    from . import runner

    runner.prepare_simulator(simulator)  # fail early, before generating
    if verilog is not None:
        v = Path(verilog)
        return runner.build(v, v.with_suffix(".json"), simulator=simulator, build_root=build_dir, waves=waves,
                            opt=opt, harness=harness)
    from snnfpga import rtl_gen

    with tempfile.TemporaryDirectory(prefix="snnfpga-gen-") as tmp:
        v = Path(rtl_gen.generate(net, Path(tmp), lanes=lanes, decode=decode, single_bank=single_bank))
        return runner.build(v, v.with_suffix(".json"), simulator=simulator, build_root=build_dir, waves=waves,
                            opt=opt, harness=harness)


def simulate(net: Network, frames: np.ndarray, *, simulator: str = "verilator", lanes: int = 1,
             waves: bool = False, build_dir: str | Path | None = None, seed: int = 0, gaps: bool = True,
             backpressure: bool = True, build: Build | None = None, rtl_net: Network | None = None,
             latency_frames: int = 2, verilog: str | Path | None = None,
             ref: Result | None = None, decode: str = "auto", single_bank=(),
             harness: bool = True) -> SimulationReport:
    """Simulate the generated top of ``net`` on integer ``frames`` and compare with the reference.

    Returns the :class:`SimulationReport` (docs/hardware.md): beyond the basic figures
    ``bound_ratio`` (mean cycles per frame / mean event bound), ``interval_bound_cycles`` (the
    busiest layer's ``ceil(synaptic events / lanes)``, mean: what bounds the pipelined frame
    interval) and ``interval_bound_ratio``, ``synaptic_events_per_layer``, ``reference_classes``,
    ``lanes``, ``stat_errors`` (stat counters that disagree with what the taps and results
    showed), ``protocol_errors``, ``build_dir`` / ``run_dir`` and, with ``waves``, ``waves``.

    ``build`` reuses a model from :func:`prepare`; ``verilog`` names an already generated top
    (see :func:`prepare`) so nothing is generated here; ``rtl_net`` generates the hardware from
    another network than the reference's (to prove a corrupted network is caught); ``ref`` is
    the integer reference's result on these very ``frames`` (run here when not given);
    ``decode`` and ``single_bank`` are the generator's options, ``harness`` where the testbench's
    per-cycle work runs (see :func:`prepare`).
    """
    from . import runner

    frames = np.asarray(frames)
    if frames.ndim == len(net.input.shape):
        frames = frames[None]
    frames = frames.reshape(len(frames), -1).astype(np.int64)
    if build is None:
        build = prepare(rtl_net if rtl_net is not None else net, simulator=simulator, lanes=lanes,
                        waves=waves, build_dir=build_dir, verilog=verilog, decode=decode, single_bank=single_bank,
                        harness=harness)
    obs = runner.run(build, frames, seed=seed, gaps=gaps, backpressure=backpressure,
                     latency_frames=latency_frames)
    return report(net, frames, obs, simulator=build.simulator,
                  lanes=int(build.summary.get("lanes", lanes)), build=build, ref=ref)


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def report(net: Network, frames: np.ndarray, obs: dict, *, simulator: str, lanes: int = 1,
           build: Build | None = None, ref: Result | None = None) -> SimulationReport:
    """The simulation report for observations ``obs`` of ``frames`` (see :func:`simulate`);
    ``ref``: the integer reference's result on ``frames`` (run here when not given)."""
    from snnfpga import reference

    from snnfpga.metrics.activity import event_bound_cycles, synaptic_events_per_layer
    from .compare import compare

    frames = np.asarray(frames).reshape(len(frames), -1)
    if ref is None:
        ref = reference.simulate(net, frames)
    elif len(ref.classes) != len(frames):
        raise ValueError(f"ref holds {len(ref.classes)} frames, not the {len(frames)} simulated")
    cmp = compare(net, frames, obs, ref=ref)
    recs = obs.get("frames", [])
    sent = obs.get("sent", list(range(len(recs))))
    lat = [r["last_result"] - r["first_pixel"] + 1 for r in recs
           if r.get("phase") == "latency" and "last_result" in r and "first_pixel" in r]
    streamed_at = [i for i, r in enumerate(recs) if r.get("phase") == "stream" and "last_result" in r]
    stream = [recs[i]["last_result"] for i in streamed_at]
    intervals = list(np.diff(stream)) if len(stream) >= 2 else []
    stages = obs.get("stages", {})
    done = obs.get("done_cycles", {})
    streamed = [i for i, r in enumerate(recs) if r.get("phase") == "stream"]
    stage_interval = {}
    for name, cyc in done.items():
        d = [cyc[b] - cyc[a] for a, b in zip(streamed, streamed[1:]) if b == a + 1 and b < len(cyc)]
        if d:
            stage_interval[name] = float(np.mean(d))
    ev = [sum(len(per[j]) for per in stages.values() if j < len(per)) for j in range(len(sent))]
    idx = [int(i) for i in sent]
    per_layer = synaptic_events_per_layer(net, frames, ref=ref)[idx]
    syn = per_layer.sum(axis=1)
    bound = event_bound_cycles(syn, lanes)
    # pipelined layers: the interval is bounded by the busiest layer, the latency by the sum
    # (an add core's two branches decode in parallel, each into its own banks: one column each)
    layer_bound = event_bound_cycles(per_layer, lanes).max(axis=1) if len(idx) else np.zeros(0)
    interval = _mean(intervals)
    mean_bound = _mean(bound.tolist())
    # each interval between two streamed frames is the later frame's time in the busiest stage:
    # its bound is over those very frames (frames differ: a mean over others is no bound)
    later = [k for k in streamed_at[1:] if k < len(layer_bound)]
    mean_layer_bound = _mean(layer_bound[later].tolist() if later else layer_bound.tolist())
    lat_mean = float(np.mean(lat)) if lat else None
    stats = obs.get("stats", {})
    stat_errors = []
    if stats.get("stat_frames") is not None and stats["stat_frames"] != len(recs):
        stat_errors.append(f"stat_frames {stats['stat_frames']} != {len(recs)} frames received")
    if stats.get("stat_events") is not None and stats["stat_events"] != obs.get("tap_events"):
        stat_errors.append(f"stat_events {stats['stat_events']} != {obs.get('tap_events')} tap events")
    images = cmp.images
    secs = float(obs.get("sim_seconds", 0.0))
    return SimulationReport(
        simulator=simulator,
        images=images,
        mismatching_images=cmp.mismatching_images,
        first_mismatch=cmp.first_mismatch,
        rtl_classes=cmp.rtl_classes,
        cycles_per_frame=({"mean": lat_mean, "min": int(min(lat)), "max": int(max(lat))}
                          if lat else None),
        frame_interval_cycles=interval,
        events_per_frame=_mean(ev),
        synaptic_events_per_frame=_mean(syn.tolist()),
        event_bound_cycles=mean_bound,
        bound_ratio=(lat_mean / mean_bound) if lat_mean and mean_bound else None,
        interval_bound_cycles=mean_layer_bound,
        interval_bound_ratio=(interval / mean_layer_bound) if interval and mean_layer_bound else None,
        synaptic_events_per_layer=[float(x) for x in per_layer.mean(axis=0)] if len(idx) else [],
        stage_interval_cycles=stage_interval,
        sim_seconds=secs,
        images_per_second=images / secs if secs > 0 else None,
        lanes=lanes,
        reference_classes=[int(ref.classes[int(i)]) for i in sent],
        stats=stats,
        stat_errors=stat_errors,
        protocol_errors=obs.get("protocol_errors", []),
        sim_cycles=obs.get("cycles"),
        build_dir=str(build.directory) if build is not None else None,
        run_dir=obs.get("run_dir"),
        waves=obs.get("waves"),
        cycles_per_second=(run["cycles"] / run["seconds"]) if (run := obs.get("run")) and run.get("seconds") else None,
    )
