"""``snnfpga generate MODEL -o OUTDIR [--lanes N] [--decode {auto,slots,arrival}]``: IR file in, Verilog and summary JSON out.

Amaranth is imported inside the handler only, so the CLI loads without the hardware extras.
"""

from __future__ import annotations

import argparse

from snnfpga import cli_types as types

__all__ = ["add_parser", "add_single_bank_option"]


def add_single_bank_option(p) -> None:
    """``--single-bank L [L ...]``, shared by generate, simulate, build and estimate."""
    p.add_argument("--single-bank", type=types.non_negative, nargs="+", default=(), metavar="LAYER",
                   help="IR indices of layers whose partial sums get one bank, not two: half their memory, "
                        "and they decode nothing while they encode (free in a layer faster than the busiest)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate Verilog for a Network IR",
                              description="Generate the Amaranth network top as Verilog plus its summary JSON.")
    p.add_argument("model", help="the IR file (<name>.snn.json / .snn.npz)")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--lanes", type=types.lanes, default=1, help="weights read per cycle per layer (default 1)")
    p.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                   help="where (SC-)TTFS layers apply the decode LUT: per-(kind, t) partial-sum slots scaled on "
                        "encode, or each weight scaled on arrival (one slot: less memory); auto: arrival (default)")
    add_single_bank_option(p)
    p.add_argument("--name", default="snn_top", help="top module name (default snn_top)")
    p.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    import json

    from snnfpga.ir import load

    from .emit import generate

    net = load(args.model)
    v_path = generate(net, args.out, lanes=args.lanes, name=args.name, decode=args.decode,
                      single_bank=args.single_bank)
    info = json.loads(v_path.with_suffix(".json").read_text())
    layers = ", ".join(f"{d['n_in']}->{d['n_out']}" for d in info["layers"])
    print(f"{net.name}: {net.coding} T={net.timesteps} layers {layers}, lanes={args.lanes}, decode={args.decode}")
    print(f"wrote {v_path} and {v_path.with_suffix('.json')}")
    return 0
