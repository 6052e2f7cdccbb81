"""Bit-exact proof of the generated network: cocotb testbenches on Verilator or Icarus.

``simulate(net, frames)`` generates the Verilog top (``rtl_gen.generate``), builds it once per
(Verilog, simulator) in a hashed build directory (:mod:`sim.runner`), runs the cocotb testbench
(:mod:`sim.tb_network`), and compares every spike event of every stage and the output membranes
with the integer reference (:mod:`sim.compare`). The returned dict is docs/hardware.md's
"Simulation report".

cocotb, Verilator and amaranth are imported lazily (inside functions); importing ``sim`` costs
numpy and ``snnfpga`` only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from snnfpga.ir import Network

from .runner import SIMULATORS, Build, SimulationError, SimulatorNotFound

__all__ = ["simulate", "prepare", "report", "SIMULATORS", "SimulationError", "SimulatorNotFound", "Build"]


def prepare(net: Network, *, simulator: str = "verilator", lanes: int = 1, waves: bool = False,
            build_dir: str | Path | None = None, verilog: str | Path | None = None,
            opt: str | None = None) -> Build:
    """Generate (unless ``verilog`` names an already generated ``.v`` with its ``.json`` beside
    it) and compile the top of ``net``; a compiled model of the same Verilog is reused.
    ``opt``: Verilator's C++ optimisation (see :func:`sim.runner.build`)."""
    from . import runner

    runner.prepare_simulator(simulator)  # fail early, before generating
    if verilog is not None:
        v = Path(verilog)
        return runner.build(v, v.with_suffix(".json"), simulator=simulator, build_root=build_dir, waves=waves,
                            opt=opt)
    from snnfpga import rtl_gen

    with tempfile.TemporaryDirectory(prefix="snnfpga-gen-") as tmp:
        v = Path(rtl_gen.generate(net, Path(tmp), lanes=lanes))
        return runner.build(v, v.with_suffix(".json"), simulator=simulator, build_root=build_dir, waves=waves,
                            opt=opt)


def simulate(net: Network, frames: np.ndarray, *, simulator: str = "verilator", lanes: int = 1,
             waves: bool = False, build_dir: str | Path | None = None, seed: int = 0, gaps: bool = True,
             backpressure: bool = True, build: Build | None = None, rtl_net: Network | None = None,
             latency_frames: int = 2) -> dict[str, Any]:
    """Simulate the generated top of ``net`` on integer ``frames`` and compare with the reference.

    Returns the "Simulation report" of docs/hardware.md plus ``bound_ratio`` (mean cycles per
    frame / mean event bound), ``interval_bound_cycles`` (the busiest layer's
    ``ceil(synaptic events / lanes)``, mean: what bounds the pipelined frame interval) and
    ``interval_bound_ratio``, ``synaptic_events_per_layer``, ``reference_classes``, ``lanes``,
    ``stat_errors`` (stat counters that disagree with what the taps and results showed),
    ``protocol_errors``, ``build_dir`` / ``run_dir`` and, with ``waves``, ``waves`` (the trace).

    ``build`` reuses a model from :func:`prepare`; ``rtl_net`` generates the hardware from
    another network than the reference's (to prove a corrupted network is caught).
    """
    from . import runner

    frames = np.asarray(frames)
    if frames.ndim == len(net.input.shape):
        frames = frames[None]
    frames = frames.reshape(len(frames), -1).astype(np.int64)
    if build is None:
        build = prepare(rtl_net if rtl_net is not None else net, simulator=simulator, lanes=lanes,
                        waves=waves, build_dir=build_dir)
    obs = runner.run(build, frames, seed=seed, gaps=gaps, backpressure=backpressure,
                     latency_frames=latency_frames)
    return report(net, frames, obs, simulator=build.simulator,
                  lanes=int(build.summary.get("lanes", lanes)), build=build)


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def report(net: Network, frames: np.ndarray, obs: dict, *, simulator: str, lanes: int = 1,
           build: Build | None = None) -> dict[str, Any]:
    """The simulation report for observations ``obs`` of ``frames`` (see :func:`simulate`)."""
    from snnfpga import reference

    from snnfpga.metrics.activity import event_bound_cycles, synaptic_events_per_layer
    from .compare import compare

    frames = np.asarray(frames).reshape(len(frames), -1)
    ref = reference.simulate(net, frames)
    cmp = compare(net, frames, obs, ref=ref)
    recs = obs.get("frames", [])
    sent = obs.get("sent", list(range(len(recs))))
    lat = [r["last_result"] - r["first_pixel"] + 1 for r in recs
           if r.get("phase") == "latency" and "last_result" in r and "first_pixel" in r]
    stream = [r["last_result"] for r in recs if r.get("phase") == "stream" and "last_result" in r]
    intervals = list(np.diff(stream)) if len(stream) >= 2 else []
    stages = obs.get("stages", {})
    ev = [sum(len(per[j]) for per in stages.values() if j < len(per)) for j in range(len(sent))]
    idx = [int(i) for i in sent]
    per_layer = synaptic_events_per_layer(net, frames, ref=ref)[idx]
    syn = per_layer.sum(axis=1)
    bound = event_bound_cycles(syn, lanes)
    # pipelined layers: the interval is bounded by the busiest layer, the latency by the sum
    layer_bound = event_bound_cycles(per_layer, lanes).max(axis=1) if len(idx) else np.zeros(0)
    interval = _mean(intervals)
    mean_bound = _mean(bound.tolist())
    mean_layer_bound = _mean(layer_bound.tolist())
    lat_mean = float(np.mean(lat)) if lat else None
    stats = obs.get("stats", {})
    stat_errors = []
    if stats.get("stat_frames") is not None and stats["stat_frames"] != len(recs):
        stat_errors.append(f"stat_frames {stats['stat_frames']} != {len(recs)} frames received")
    if stats.get("stat_events") is not None and stats["stat_events"] != obs.get("tap_events"):
        stat_errors.append(f"stat_events {stats['stat_events']} != {obs.get('tap_events')} tap events")
    images = cmp.images
    secs = float(obs.get("sim_seconds", 0.0))
    out = {
        "simulator": simulator,
        "images": images,
        "mismatching_images": cmp.mismatching_images,
        "first_mismatch": cmp.first_mismatch,
        "rtl_classes": cmp.rtl_classes,
        "cycles_per_frame": ({"mean": lat_mean, "min": int(min(lat)), "max": int(max(lat))}
                             if lat else None),
        "frame_interval_cycles": interval,
        "events_per_frame": _mean(ev),
        "synaptic_events_per_frame": _mean(syn.tolist()),
        "event_bound_cycles": mean_bound,
        "bound_ratio": (lat_mean / mean_bound) if lat_mean and mean_bound else None,
        "interval_bound_cycles": mean_layer_bound,
        "interval_bound_ratio": (interval / mean_layer_bound) if interval and mean_layer_bound else None,
        "synaptic_events_per_layer": [float(x) for x in per_layer.mean(axis=0)] if len(idx) else [],
        "sim_seconds": secs,
        "images_per_second": images / secs if secs > 0 else None,
        "lanes": lanes,
        "reference_classes": [int(ref.classes[int(i)]) for i in sent],
        "stats": stats,
        "stat_errors": stat_errors,
        "protocol_errors": obs.get("protocol_errors", []),
        "sim_cycles": obs.get("cycles"),
        "build_dir": str(build.directory) if build is not None else None,
        "run_dir": obs.get("run_dir"),
    }
    if "waves" in obs:
        out["waves"] = obs["waves"]
    return out
