"""``snnfpga build MODEL --board NAME`` and ``snnfpga infer --port PORT MODEL``.

``build`` writes Verilog, constraints and (ECP5 / iCE40) a bitstream with the open toolchain,
then prints utilization, fmax, throughput and the power estimate (frames per watt).
``infer`` runs frames through a programmed board over its USB serial port.
Throughput and power come from :mod:`snnfpga.boards.performance` (the library; this module is
only the command line). amaranth, rtl_gen and pyserial are imported inside the handlers only.
"""

from __future__ import annotations

import argparse

from snnfpga import cli_types as types
from snnfpga.rtl_gen.cli import add_single_bank_option

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="build a bitstream for a board (open toolchain) and report resources, fmax, frames/W",
        description="Wrap the network top in a UART top for a board, run yosys/nextpnr (yowasp) for "
                    "ECP5/iCE40 or write Verilog + XDC + TCL for Vivado boards, and report utilization, "
                    "fmax, frames per second and the power estimate.")
    p.add_argument("model", nargs="?", help="the IR file (<name>.snn.json / .snn.npz)")
    p.add_argument("--board", help="target board (see --list-boards)")
    p.add_argument("-o", "--out", help="output directory (default: build/<board>)")
    p.add_argument("--lanes", type=types.lanes, default=1, help="weights read per cycle per layer (default 1)")
    p.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                   help="where (SC-)TTFS layers apply the decode LUT: per-(kind, t) partial-sum slots scaled on "
                        "encode, or each weight scaled on arrival (one slot: less memory); auto: arrival (default)")
    add_single_bank_option(p)
    p.add_argument("--baud", type=types.baud, default=None, help="UART baud rate (default 115200)")
    p.add_argument("--clock", default="osc", help=types.CLOCK_HELP)
    p.add_argument("--list-boards", action="store_true", help="list the supported boards and exit")
    p.add_argument("--no-pnr", action="store_true", help="write the files only, run no toolchain")
    p.add_argument("--activity", help="a simulation report JSON (snnfpga simulate --json) for fps and power; "
                                      "without it both are estimated from the integer reference")
    p.add_argument("--images", type=types.count, default=100,
                   help="test images for the reference activity estimate (default 100)")
    p.add_argument("--data-root", help="directory holding torchvision-layout data sets")
    p.add_argument("--json", help="also write the build report to this JSON file")
    p.set_defaults(func=_build_handler)

    q = subparsers.add_parser(
        "infer", help="classify images on a programmed board over its USB serial port",
        description="Send frames to a board running `snnfpga build`'s bitstream (boards/protocol.py) "
                    "and print classes, accuracy and throughput. Needs pyserial.")
    q.add_argument("model", help="the IR file the bitstream was built from")
    q.add_argument("--port", required=True, type=types.non_empty, help="serial port, e.g. /dev/ttyUSB0")
    q.add_argument("--images", type=types.count, default=100, help="test images to send (default 100)")
    q.add_argument("--baud", type=types.baud, default=None, help="UART baud rate (default 115200)")
    q.add_argument("--window", type=types.window, default=1, help="requests in flight (default 1)")
    q.add_argument("--frames", help="integer frames (.npy) instead of the data set")
    q.add_argument("--data", help="data set name (default: the one in the IR provenance)")
    q.add_argument("--data-root", help="directory holding torchvision-layout data sets")
    q.set_defaults(func=_infer_handler)

    from .cli_estimate import add_parser as add_estimate_parser

    add_estimate_parser(subparsers)


# --------------------------------------------------------------------------- helpers
def _pct(r: dict) -> str:
    return f"{r['used']:>6} / {r['available']:<6} ({r['percent']:.1f} %)"


# --------------------------------------------------------------------------- handlers
def _build_handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from snnfpga.errors import BadOption

    from .registry import format_board_list, get_board

    if args.list_boards:
        print(format_board_list())
        return 0
    if not args.model or not args.board:
        raise BadOption("build needs MODEL and --board NAME (or --list-boards)")
    from snnfpga.ir import load

    from .performance import dataset_frames, performance
    from .uart_top import DEFAULT_BAUD

    board = get_board(args.board)
    net = load(args.model)
    out = Path(args.out or Path("build") / board.name)
    from .clock import build_at_clock, parse_clock

    r = build_at_clock(net, board, out, clock=parse_clock(args.clock), lanes=args.lanes, do_build=not args.no_pnr,
                       baud=args.baud or DEFAULT_BAUD, decode=args.decode, single_bank=args.single_bank)
    r["power_device"] = board.power_device
    print(f"{net.name}: {net.coding} T={net.timesteps}, lanes={args.lanes}, decode={args.decode} on {board.name} "
          f"({board.device}), "
          f"UART {r['baud']} baud")
    for key, path in r["files"].items():
        print(f"  {key:12s} {path}")
    if r["bitstream"]:
        print(f"  {'bitstream':12s} {r['bitstream']}   (built in {r['build_seconds']:.1f} s)")
    print(f"block RAM estimate: {r['memory_estimate']['bram_blocks']} of {r['memory_estimate']['bram_available']}")
    for note in r["notes"]:
        print(f"note: {note}")
    if r["resources"]:
        for kind, res in r["resources"].items():
            print(f"  {kind:6s} {_pct(res)}")
        print(f"fmax {r['fmax_mhz']} MHz (clock {r['clock_mhz']} MHz: {r.get('clock', {}).get('source', 'osc')})")
    sim_report = json.loads(Path(args.activity).read_text()) if args.activity else None
    frames = None
    if sim_report is None:
        try:
            got = dataset_frames(net, args.images, data_root=args.data_root)
        except Exception as e:  # a data set that is not on this machine: fall back, say so
            print(f"note: no test images for the activity estimate ({e}); assuming one spike per neuron")
            got = None
        frames = got[0] if got else None
    perf = performance(net, r, lanes=args.lanes, sim_report=sim_report, frames=frames)
    r["performance"] = perf.to_json()
    print(f"frame interval {perf.frame_interval_cycles:.0f} cycles ({perf.interval_source})")
    print(f"fps {perf.fps:.0f} at {perf.clock_mhz:.2f} MHz; over the UART at most {perf.fps_uart:.0f} fps")
    for label, p in (("compute-bound", perf.power), ("over the UART", perf.power_uart)):
        if not p:
            continue
        print(f"power, {label} (estimate): {1e3 * p['total_w']:.3f} mW = static {1e3 * p['static_w']:.3f} "
              f"+ memories {1e3 * p['memories_w']:.3f} + logic {1e3 * p['logic_w']:.3f} "
              f"+ io {1e3 * p['io_w']:.3f} mW at {p['fps']:.0f} fps -> {p['fps_per_w']:.0f} frames/W")
    if perf.power:
        for a in perf.power["assumptions"]:
            print(f"  assumption: {a}")
    e = perf.energy_paper
    if perf.power:
        p = perf.power
        print(f"energy: {p['fps_per_w']:.0f} frames/J = static alone {p['fps_per_w_static']:.0f} (dominated by "
              f"{p['dominant']['fps_per_w_static']}) with dynamic alone {p['fps_per_w_dynamic']:.0f}; dynamic "
              f"{p['dynamic_energy_per_frame_nj']:.1f} nJ/frame (dominated by {p['dominant']['dynamic_energy_per_frame_nj']})")
    print(f"paper energy E = N*Ei + L*El: TrueNorth {e['truenorth']:.1f}, SpiNNaker {e['spinnaker']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1, default=str) + "\n")
    return 0


def _infer_handler(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from snnfpga.ir import load
    from snnfpga.ir.frames import degenerate_frames
    from snnfpga.reference import simulate

    from snnfpga.errors import BadOption

    from .host import infer
    from .performance import dataset_frames
    from .uart_top import DEFAULT_BAUD

    net = load(args.model)
    if args.frames:
        frames, labels = np.load(args.frames, allow_pickle=False)[: args.images], None
    else:
        got = dataset_frames(net, args.images, name=args.data, data_root=args.data_root)
        if got is None:
            raise BadOption("the IR names no data set: pass --data NAME or --frames file.npy")
        frames, labels = got
    warning = degenerate_frames(net, frames)
    if warning:
        print(f"warning: {warning}")
    r = infer(args.port, net, frames, baud=args.baud or DEFAULT_BAUD, window=args.window)
    ref = simulate(net, frames)
    ok = [x.index for x in r.results if x.ok]  # lost frames have no class: never guessed
    agree = sum(r.classes[k] == ref.classes[k] for k in ok)
    exact = sum(r.membranes[k] == tuple(int(x) for x in ref.output[k]) for k in ok)
    print(f"{len(frames)} frames in {r.seconds:.2f} s ({r.frames_per_second or 0:.1f} frames/s over the UART)")
    print(r.summary())
    print(f"board vs integer reference on the {len(ok)} answered frames: classes agree {agree}/{len(ok)}, "
          f"membranes bit-exact {exact}/{len(ok)}")
    if labels is not None and ok:
        print(f"board accuracy {100 * sum(r.classes[k] == labels[k] for k in ok) / len(ok):.2f} % "
              f"(answered frames)")
    if r.lost:
        reasons = sorted({x.lost for x in r.results if not x.ok})
        print(f"snnfpga: error: {r.lost} of {len(frames)} frames lost ({'; '.join(reasons)})", file=sys.stderr)
        return 1
    return 0
