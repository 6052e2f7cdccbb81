"""``snnfpga simulate MODEL``: run the generated hardware in cocotb and prove it bit-exact.

Frames come from ``--frames file.npy`` (integer pixels) or from the test split of the data set
named in the IR's provenance (``snnfpga.convert.data.load_dataset``), quantised to the IR's input.
Random frames are never used: they would say nothing about the network's real activity.
cocotb, amaranth and the simulators are imported inside the handler only.
"""

from __future__ import annotations

import argparse

from snnfpga import cli_types as types
from snnfpga.rtl_gen.cli import add_single_bank_option

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate the generated Verilog and compare it with the integer reference",
        description="Generate the network top, simulate it with cocotb on Verilator or Icarus, and "
                    "compare every spike event and output membrane with the integer reference.")
    p.add_argument("model", help="the IR file (<name>.snn.json / .snn.npz)")
    p.add_argument("--images", type=types.count, default=100, help="frames to simulate (default 100)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="HDL simulator (default verilator)")
    p.add_argument("--lanes", type=types.lanes, default=1, help="weights read per cycle per layer (default 1)")
    p.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                   help="where (SC-)TTFS layers apply the decode LUT: per-(kind, t) partial-sum slots scaled on "
                        "encode, or each weight scaled on arrival (one slot: less memory); auto: arrival (default)")
    add_single_bank_option(p)
    p.add_argument("--waves", action="store_true",
                   help="record a waveform (FST) of the run; its path is printed")
    p.add_argument("--frames", help="integer frames (.npy, shape (N, *input.shape)) instead of the data set")
    p.add_argument("--labels", help="labels for --frames (.npy), to report the RTL accuracy")
    p.add_argument("--data", "--dataset", dest="data",
                   help="data set name (default: the one recorded in the IR provenance)")
    p.add_argument("--data-root", help="directory holding torchvision-layout data sets")
    p.add_argument("--build-dir", help="where compiled models are kept (default ~/.cache/snnfpga/sim)")
    p.add_argument("--seed", type=types.seed, default=0, help="seed of random pixel gaps and back-pressure")
    p.add_argument("--no-stress", action="store_true",
                   help="no random pixel gaps or result back-pressure")
    p.add_argument("--json", help="also write the simulation report to this JSON file")
    p.set_defaults(func=_handler)


def load_frames(net, args) -> tuple:
    """``(frames, labels or None, where they came from)`` for ``--frames`` or the data set."""
    import numpy as np

    from snnfpga.errors import BadOption

    if args.frames:
        frames = np.load(args.frames, allow_pickle=False)
        if frames.dtype.kind not in "iu":
            raise BadOption(f"--frames {args.frames}: must hold integers, not {frames.dtype}")
        labels = np.load(args.labels, allow_pickle=False) if args.labels else None
        frames = frames[: args.images]
        return frames, (labels[: len(frames)] if labels is not None else None), args.frames
    name = args.data or net.provenance.get("dataset")
    if not name:
        raise BadOption("the IR records no data set (provenance 'dataset'): pass --data NAME or "
                         "--frames file.npy")
    from snnfpga.convert.data import load_dataset
    from snnfpga.ir.frames import quantize_frames

    ds = load_dataset(name, data_root=args.data_root)
    n = min(args.images, len(ds.test_y))
    return quantize_frames(net, ds.test_x[:n]), np.asarray(ds.test_y[:n]), f"{name} test split"


def _fmt(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _handler(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from snnfpga.errors import BadOption, Mismatch
    from snnfpga.ir import load
    from snnfpga.ir.frames import degenerate_frames

    from . import simulate

    net = load(args.model)
    frames, labels, source = load_frames(net, args)
    if len(frames) == 0:
        raise BadOption("no frames to simulate (--images 0, or an empty --frames file)")
    degenerate = degenerate_frames(net, frames)
    r = simulate(net, frames, simulator=args.simulator, lanes=args.lanes, decode=args.decode,
                 single_bank=args.single_bank, waves=args.waves,
                 build_dir=args.build_dir, seed=args.seed, gaps=not args.no_stress,
                 backpressure=not args.no_stress)
    print(f"{net.name}: {net.coding} T={net.timesteps}, {args.simulator}, lanes={r.lanes}, "
          f"frames from {source}")
    print(f"images compared:      {r.images} (every spike event of every stage and the output membranes)")
    print(f"mismatching images:   {r.mismatching_images}")
    if r.first_mismatch:
        print(f"first mismatch:       {r.first_mismatch}")
    if labels is not None:
        cls = np.array([-1 if c is None else c for c in r.rtl_classes])
        ref = np.array(r.reference_classes)
        print(f"RTL accuracy:         {100 * float(np.mean(cls == labels)):.2f}% "
              f"(integer reference {100 * float(np.mean(ref == labels)):.2f}%)")
    cpf = r.cycles_per_frame
    if cpf:
        print(f"cycles per frame:     {_fmt(cpf['mean'])} (min {cpf['min']}, max {cpf['max']}; "
              f"first pixel in -> last result out)")
    print(f"frame interval:       {_fmt(r.frame_interval_cycles)} cycles (streamed back to back)")
    print(f"events per frame:     {_fmt(r.events_per_frame)} spikes, "
          f"{_fmt(r.synaptic_events_per_frame)} synaptic events")
    print(f"event bound:          {_fmt(r.event_bound_cycles)} cycles (latency ratio "
          f"{_fmt(r.bound_ratio, 3)}); busiest layer {_fmt(r.interval_bound_cycles)} cycles "
          f"(interval ratio {_fmt(r.interval_bound_ratio, 3)})")
    if r.stage_interval_cycles:
        per = ", ".join(f"{k}: {_fmt(v)}" for k, v in r.stage_interval_cycles.items())
        print(f"stage intervals:      {per} cycles (end of frame to end of frame, per tapped stage)")
    raw = f"; the simulator ran {_fmt(r.cycles_per_second)} cycles/s" if r.cycles_per_second else ""
    print(f"simulation speed:     {_fmt(r.images_per_second, 2)} images/s "
          f"({_fmt(r.sim_seconds, 2)} s with start-up{raw})")
    for e in r.stat_errors + r.protocol_errors + ([degenerate] if degenerate else []):
        print(f"warning: {e}")
    if r.waves is not None:
        print(f"waves:                {r.waves}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r.to_json(), f, indent=1)
    if r.mismatching_images:
        raise Mismatch(f"{r.mismatching_images} of {r.images} images differ from the integer reference; "
                       f"first: {r.first_mismatch}")
    return 0
