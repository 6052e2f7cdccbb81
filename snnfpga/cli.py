"""``snnfpga`` command line: train, convert, evaluate, run (and generate, simulate, build, infer).

Argument parsing only: the commands call :mod:`snnfpga.flow` (``run``: every step, in order)
and :mod:`snnfpga.convert.pipeline`. The hardware subcommands live beside their packages
(``snnfpga.rtl_gen.cli``, ``snnfpga.sim.cli``, ``snnfpga.boards.cli``); they are always listed,
and a missing ``snnfpga[hardware]`` extra is reported when one runs. Errors the user can fix
(:class:`snnfpga.errors.UserError`) are raised, never printed by a command; :func:`main`
prints ``snnfpga: error: ...`` to stderr and exits 2 (1 for a failed check, e.g. a bit-exact
mismatch); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from . import cli_types as types
from .convert.data import DATASETS
from .errors import BadOption, MissingExtra, UserError
from .flow import CODINGS

__all__ = ["main", "build_parser"]


#: what each hardware command imports from the ``hardware`` extra
HARDWARE_MODULES = {"generate": ("amaranth",), "simulate": ("amaranth", "cocotb", "cocotb_tools"),
                    "build": ("amaranth", "amaranth_boards"), "infer": ("amaranth",), "estimate": ("amaranth",),
                    "run": ("amaranth", "cocotb", "cocotb_tools")}


def require_extra(command: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtra` naming ``snnfpga[hardware]`` if a module it provides is absent."""
    for module in modules if modules is not None else HARDWARE_MODULES.get(command, ()):
        if importlib.util.find_spec(module) is None:
            raise MissingExtra("hardware", command, module)


def _add_convert_options(p: argparse.ArgumentParser, main: bool = True) -> None:
    p.add_argument("--coding", choices=CODINGS, default="sc-ttfs", help="neuron coding (default: sc-ttfs)")
    p.add_argument("--timesteps", "-T", type=types.timesteps, default=None,
                   help="time window T (default: 4 for (sc-)ttfs, 32 for rate)")
    p.add_argument("--weight-bits", type=types.weight_bits, default=8, help="signed weight width (default: 8)")
    p.add_argument("--input-bits", type=types.input_bits, default=8, help="pixel width (default: 8)")
    p.add_argument("--act-bits", type=types.act_bits, default=8, help="width of decoded spike values (default: 8)")
    p.add_argument("--input-coding", choices=("direct", "spikes"), default="direct",
                   help="feed pixels to the first layer (direct, needs multipliers) or encode them as spikes")
    p.add_argument("--pow2", action="store_true",
                   help="power-of-two threshold series (k = ln 2): decode LUTs are powers of two, decoded by shifts")
    p.add_argument("--finetune-epochs", type=types.non_negative, default=3,
                   help="threshold/BN fine-tuning epochs (default: 3)")
    p.add_argument("--seed", type=types.seed, default=0)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=list(DATASETS),
                   help="; ".join(f"{k}: {v}" for k, v in DATASETS.items()))
    p.add_argument("--data-root", default=None, help="folder with torchvision-layout MNIST / CIFAR-10 data")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp")
    p.add_argument("--hidden", type=types.hidden, nargs="+", default=None,
                   help="hidden sizes (mlp, default 128) or channels (cnn, default 16 32; resnet: stem, then one basic block per width, default 16 16 32)")
    p.add_argument("--kernel", type=types.int_range(1, 15), nargs="+", default=None,
                   help="cnn: conv kernel size, one for all layers or one per layer (default 3; padding k//2)")
    p.add_argument("--stride", type=types.int_range(1, 8), nargs="+", default=None,
                   help="cnn: conv stride, one for all layers or one per layer (default 1)")
    p.add_argument("--pool", type=types.int_range(1, 8), nargs="+", default=None,
                   help="cnn: average pool after each conv, one for all or one per layer (default 2; 1 = none)")
    p.add_argument("--epochs", type=types.non_negative, default=30, help="ANN training epochs (default: 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnfpga", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", parents=[common], help="train the ANN")
    _add_data_options(p)
    _add_model_options(p)
    p.add_argument("--seed", type=types.seed, default=0)
    p.add_argument("-o", "--output", default="runs/ann.pt",
                   help="checkpoint path (default: runs/ann.pt); the torch.export program (.pt2) is written beside "
                        "it, or alone with -o NAME.pt2")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", parents=[common], help="convert a trained ANN to an integer SNN (Network IR)")
    p.add_argument("checkpoint", help="a torch.export program (.pt2, torch.export.save: any supported "
                                      "architecture) or a checkpoint written by 'snnfpga train' (.pt)")
    _add_data_options(p)
    _add_convert_options(p)
    p.add_argument("-o", "--output", default=None, help="IR path (default: beside the checkpoint, <coding>.snn.json)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("evaluate", parents=[common], help="integer reference accuracy of a Network IR on a data set's test split")
    p.add_argument("model", help="model.snn.json")
    p.add_argument("--dataset", default=None, help="default: the data set recorded in the IR")
    p.add_argument("--data-root", default=None)
    p.add_argument("--images", type=types.count, default=None, help="first N test images (default: all)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", parents=[common], help="train → convert (sc-ttfs, ttfs, rate) → evaluate → sweep T → hardware check → report")
    _add_data_options(p)
    _add_model_options(p)
    _add_convert_options(p)
    p.add_argument("--out", default=None, help="output folder (default: runs/<dataset>)")
    p.add_argument("--no-sweep", action="store_true", help="skip the accuracy-vs-T sweep and its plot")
    p.add_argument("--no-hardware", action="store_true", help="skip Verilog generation and the cocotb bit-exact check")
    p.add_argument("--finetune-sweep", choices=("all", "warm", "none"), default=None,
                   help="fine-tuning of the T-sweep points: all, warm (start from the main network's fine-tuned "
                        "BN, no fine-tuning of their own) or none (default: all; warm for SC-TTFS CNNs, measured "
                        "in docs/report.md)")
    p.add_argument("--images", type=types.count, default=None, help="test images to simulate in RTL (default: all of digits, else 100)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--lanes", type=types.lanes, default=4, help="weights read per cycle in the generated cores (default: 4)")
    p.add_argument("--decode", choices=("auto", "slots", "arrival"), default="auto",
                   help="where (SC-)TTFS layers apply the decode LUT: per-(kind, t) partial-sum slots scaled on "
                        "encode, or each weight scaled on arrival (one slot: less memory); auto: arrival (default)")
    p.add_argument("--board", default=None,
                   help="also build for this board (see 'snnfpga build --list-boards'): resources, fmax, fps, frames/W")
    # default None, not "osc": argparse would convert a string default, importing amaranth (an extra)
    p.add_argument("--clock", type=_clock, default=None,
                   help="with --board: " + types.CLOCK_HELP)
    p.set_defaults(func=cmd_run)

    from .boards import cli as boards_cli
    from .rtl_gen import cli as rtl_cli
    from .sim import cli as sim_cli

    for mod in (rtl_cli, sim_cli, boards_cli):
        mod.add_parser(sub)
    from . import nir_io  # snnfpga import / export (NIR, issue 12)

    nir_io.add_parser(sub)
    from . import sweep_cli

    sweep_cli.add_parser(sub)
    return parser


def _clock(text: str) -> str | float:
    """``--clock``'s argparse type: :func:`snnfpga.boards.clock.parse_clock` (the one parser, shared
    with ``snnfpga build``), so a bad value fails at parse time, before training."""
    try:
        from .boards.clock import parse_clock
    except ImportError as e:
        raise argparse.ArgumentTypeError(f"needs the hardware extra (pip install 'snnfpga[hardware]'): {e}") from None
    try:
        return parse_clock(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from . import flow

    from .convert.export import save_export

    opts = flow.RunOptions.from_args(args)
    data = flow.load_data(opts)
    out = Path(args.output)
    pt2 = out if out.suffix == ".pt2" else out.with_suffix(".pt2")
    t = flow.train(opts, data, checkpoint=None if out.suffix == ".pt2" else out)
    save_export(t.model, data.shape, pt2, meta=t.arch)  # architecture + weights, no pickles
    print(f"ANN {t.arch['model']} {t.arch['hidden']} on {data.name}: train {100 * t.arch['accuracy']['train']:.2f}% "
          f"test {100 * t.test_accuracy:.2f}%  → {', '.join(str(p) for p in dict.fromkeys((out, pt2)))}")
    return 0


def cmd_convert(args) -> int:
    from . import flow
    from .api import check_model, load_model
    from .convert.data import load_dataset
    from .convert.pipeline import convert
    from .ir import save
    from .report import format_rows

    model, in_shape, arch = load_model(args.checkpoint)  # .pt2 (torch.export) or a 'snnfpga train' checkpoint
    data = load_dataset(arch.get("dataset", args.dataset), args.data_root)
    check_model(model, data.train_x, f"data set {data.name!r} (--dataset)", in_shape)
    opts = flow.RunOptions.from_args(args).convert_options()
    out = Path(args.output) if args.output else Path(args.checkpoint).with_name(f"{opts.coding}.snn.json")
    c = convert(model, data, opts, name=out.name.split(".")[0], progress=not args.quiet)
    json_path, npz_path = save(c.net, out)
    print(format_rows([flow.ConversionRow.from_metrics(c.metrics)]))
    print(f"→ {json_path} + {npz_path.name}")
    return 0


def cmd_evaluate(args) -> int:
    from .convert.data import load_dataset
    from .convert.pipeline import evaluate_int
    from .ir import load
    from .ir.frames import degenerate_frames, quantize_frames

    net = load(args.model)
    data = load_dataset(args.dataset or net.provenance.get("dataset", "digits"), args.data_root)
    n = args.images or len(data.test_y)
    warning = degenerate_frames(net, quantize_frames(net, data.test_x[:n]), source=data.test_x[:n])
    if warning:
        print(f"warning: {warning}")
    res = evaluate_int(net, data.test_x[:n], data.test_y[:n], batch=reference_batch(net), progress=not args.quiet)
    print(f"{net.name}: {net.coding} T={net.timesteps} on {data.name}: integer accuracy "
          f"{100 * res['accuracy']:.2f}% ({res['images']} images), {res['spikes_per_frame']:.1f} spikes/frame")
    return 0


#: memory the integer reference may use for one batch of frames in ``evaluate``
REFERENCE_BATCH_BYTES = 1 << 30


def reference_batch(net) -> int:
    """Frames per integer-reference call, so that a batch's spike rasters (rate coding keeps
    ``T × neurons`` bytes per frame and stage) stay within ``REFERENCE_BATCH_BYTES``: a large T
    or a wide network runs in smaller batches, never out of memory (same results)."""
    from .convert.pipeline import INT_BATCH

    per_frame = 0
    if net.coding == "rate":
        stages = [layer.n_out for i, layer in enumerate(net.layers) if net.spiking(i)]
        per_frame = net.timesteps * (sum(stages) + (net.input.size if net.input.input_coding == "spikes" else 0))
    return max(1, min(INT_BATCH, REFERENCE_BATCH_BYTES // max(1, per_frame)))


def cmd_run(args) -> int:
    """The whole flow (:func:`snnfpga.flow.run`); a bit-exact mismatch raises Mismatch after report.json."""
    from . import flow

    if args.board:  # checked even with --no-hardware: an unknown board is never accepted
        from .boards.registry import get_board

        get_board(args.board)
    elif args.clock is not None:
        raise BadOption(f"--clock {args.clock}: the clock is the board build's; give --board NAME too")
    flow.run(flow.RunOptions.from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run" and getattr(args, "no_hardware", False):
            pass
        else:
            require_extra(args.command)
            if args.command == "run" and args.board:
                require_extra("run --board", ("amaranth_boards",))
        return int(args.func(args) or 0)
    except UserError as e:  # the user's to fix: one line, no traceback; anything else is a bug
        print(f"snnfpga: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
