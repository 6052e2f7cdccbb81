"""Throughput and power of a board build: frames per second, and frames per watt (estimated).

:func:`performance` takes a build result (:func:`snnfpga.boards.build.build`) and the network's
activity (a simulation report, or the integer reference's spikes) and returns a typed
:class:`Performance`. It is the library behind ``snnfpga build`` and ``snnfpga run --board``;
no CLI module is imported here. Imports neither amaranth, cocotb nor torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from snnfpga import reference
from snnfpga.ir import Network, Stage
from snnfpga.metrics.activity import synaptic_events_per_layer

from . import power
from .protocol import Protocol

if TYPE_CHECKING:
    from snnfpga.sim import SimulationReport

__all__ = ["Performance", "performance", "busiest_layer_events", "dataset_frames"]


@dataclass
class Performance:
    """Frames per second and power at the clock a build runs at (power figures are estimates)."""

    clock_mhz: float  #: the board clock, or fmax where that is lower
    frame_interval_cycles: float | None  #: cycles between frames streamed back to back
    interval_source: str  #: "measured in RTL simulation" or the estimate it is
    fps: float | None  #: clock / frame interval (compute-bound)
    fps_uart: float  #: the most frames per second the UART carries
    activity: dict[str, Any]  #: per-frame activity counts the power model read (boards.power)
    power: dict[str, Any] | None  #: power.estimate at ``fps``, UART traffic not counted
    power_uart: dict[str, Any]  #: power.estimate at the UART-limited rate, UART pins switching
    energy_paper: dict[str, float]  #: the SC-TTFS paper's normalised E = N*E_i + L*E_l

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dataset_frames(net: Network, n: int, name: str | None = None, data_root=None):
    """``(frames, labels)`` from the IR's data set test split, quantised to the input; or None."""
    name = name or net.provenance.get("dataset")
    if not name:
        return None
    from snnfpga.convert.data import load_dataset

    from snnfpga.ir.frames import quantize_frames

    ds = load_dataset(name, data_root=data_root)
    frames = quantize_frames(net, ds.test_x[:n]).reshape(min(n, len(ds.test_x)), -1)
    return frames, np.asarray(ds.test_y[: len(frames)])


def performance(net: Network, build_result: Mapping[str, Any], *, lanes: int = 1,
                sim_report: SimulationReport | Mapping[str, Any] | None = None, frames=None,
                ref: reference.Result | None = None) -> Performance:
    """Throughput and power for a build.

    The clock is the board clock (or fmax if lower). The frame interval comes from the
    simulation report (measured) or, without one, from the reference's busiest layer
    ``ceil(synaptic events / lanes)`` (a lower bound: labelled as an estimate). The activity is
    the integer reference's on ``frames`` in the hardware built (``build_result["decode"]``): pass its result as ``ref`` when it has already run
    on them (it runs here otherwise); without frames every neuron is assumed to fire once.
    """
    clock = build_result["clock_mhz"]
    if build_result.get("fmax_mhz"):
        clock = min(clock, build_result["fmax_mhz"])
    if frames is not None and len(frames):
        frames = np.asarray(frames)
        if ref is None:
            ref = reference.simulate(net, frames)
        elif len(ref.classes) != len(frames):
            raise ValueError(f"ref holds {len(ref.classes)} frames, not the {len(frames)} given")
    elif ref is not None:
        raise ValueError("ref needs the frames it was computed on (direct pixels count by value)")
    else:
        frames = None
    activity = power.activity_from_reference(net, ref, lanes=lanes, frames=frames,
                                             decode=build_result.get("decode", "auto"))
    if sim_report is not None:
        interval = sim_report.get("frame_interval_cycles") or (sim_report.get("cycles_per_frame") or {}).get("mean")
        source = "measured in RTL simulation"
        if sim_report.get("events_per_frame") is not None:
            activity["events"] = float(sim_report["events_per_frame"])
        syn = sim_report.get("synaptic_events_per_frame")
        if syn is not None:
            old = activity["accumulator_updates"]
            activity["memory_reads"] += (syn - old) * (1 + 1 / lanes)
            activity["memory_writes"] += syn - old
            activity["accumulator_updates"] = activity["synaptic_events"] = float(syn)
        activity["assumptions"] = [a for a in activity["assumptions"] if "not from RTL" not in a]
        activity["assumptions"].append("spike and synaptic event counts from RTL simulation")
    else:
        interval = max(1, math.ceil(busiest_layer_events(net, frames, ref) / lanes))
        source = "estimate: busiest layer's ceil(synaptic events / lanes), a lower bound"
    fps = clock * 1e6 / interval if interval else None
    proto = Protocol.for_network(net)
    from .uart_top import DEFAULT_BAUD

    baud = build_result.get("baud") or DEFAULT_BAUD
    fps_uart = baud / (10 * (proto.request_bytes + proto.response_bytes))
    device = build_result.get("power_device") or build_result["board"]
    if not build_result.get("fmax_mhz"):
        activity["assumptions"].append(f"clock {clock} MHz is the board clock: no place and route ran, "
                                       "timing is not verified")

    def at(rate, act):
        est = power.estimate(device, build_result.get("resources"), act, clock, rate,
                             acc_bits=activity.get("acc_bits", 16))
        est["assumptions"] = activity["assumptions"] + est["assumptions"]
        return est

    # compute-bound: frames back to back at the network's interval, no UART traffic counted;
    # as built: the UART limits the frame rate and its pins switch
    compute = at(fps, {**activity, "uart_bits": 0}) if fps else None
    uart = at(min(fps or fps_uart, fps_uart), activity)
    return Performance(clock_mhz=clock, frame_interval_cycles=interval, interval_source=source, fps=fps,
                       fps_uart=fps_uart, activity=activity, power=compute, power_uart=uart,
                       energy_paper=power.paper_energy(activity["events"], net.timesteps))


def busiest_layer_events(net: Network, frames=None, ref: reference.Result | None = None) -> float:
    """Synaptic events of the busiest weighted layer per frame (mean over ``frames``), counted by
    :func:`snnfpga.metrics.activity.synaptic_events_per_layer`. Without frames and ``ref``:
    every input element and neuron fires once (rate: at every step), every pixel is non-zero."""
    if ref is None:
        frames, ref = _every_neuron_fires(net)
    return float(synaptic_events_per_layer(net, frames, ref).mean(axis=0).max())


def _every_neuron_fires(net: Network) -> tuple[np.ndarray, reference.Result]:
    """One frame of non-zero pixels and a reference record in which every neuron fires once per
    frame ((SC-)TTFS: one encoding spike; rate: one spike at every step)."""

    def fired(n: int) -> reference.LayerSpikes:
        if net.coding == "rate":
            return reference.LayerSpikes(raster=np.ones((1, net.timesteps, n), dtype=np.int64))
        return reference.LayerSpikes(t_enc=np.zeros((1, n), dtype=np.int64))

    spikes = {}
    if net.input.input_coding == "spikes":
        spikes[reference.INPUT] = fired(net.input.size)
    for i, layer in enumerate(net.layers):
        if layer.weighted and layer.neuron is not None:
            spikes[Stage(i)] = fired(layer.n_out)
    result = reference.Result(output=np.zeros((1, net.n_classes), dtype=np.int64),
                              classes=np.zeros(1, dtype=np.int64), spikes=spikes)
    return np.ones((1, net.input.size), dtype=np.int64), result
