"""``snnfpga`` command line: train, convert, evaluate, run (and generate, simulate, build, infer).

The hardware subcommands live beside their packages (``snnfpga.rtl_gen.cli``,
``snnfpga.sim.cli``, ``snnfpga.boards.cli``); they are always listed, and a missing
``snnfpga[hardware]`` extra is reported when one runs. Errors the user can fix
(:class:`snnfpga.errors.UserError`) print ``snnfpga: error: ...`` to stderr and exit 2
(1 for a failed check); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from .convert.data import DATASETS
from .errors import Mismatch, MissingExtra, UserError

__all__ = ["main", "build_parser"]

CODINGS = ("sc-ttfs", "ttfs", "rate")
SWEEP_T = {"sc-ttfs": (2, 3, 4, 6, 8), "ttfs": (2, 3, 4, 6, 8), "rate": (8, 16, 32, 64)}


#: what each hardware command imports from the ``hardware`` extra
HARDWARE_MODULES = {"generate": ("amaranth",), "simulate": ("amaranth", "cocotb", "cocotb_tools"),
                    "build": ("amaranth", "amaranth_boards"), "infer": ("amaranth",),
                    "run": ("amaranth", "cocotb", "cocotb_tools")}


def require_extra(command: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtra` naming ``snnfpga[hardware]`` if a module it provides is absent."""
    for module in modules if modules is not None else HARDWARE_MODULES.get(command, ()):
        if importlib.util.find_spec(module) is None:
            raise MissingExtra("hardware", command, module)


def _add_convert_options(p: argparse.ArgumentParser, main: bool = True) -> None:
    p.add_argument("--coding", choices=CODINGS, default="sc-ttfs", help="neuron coding (default: sc-ttfs)")
    p.add_argument("--timesteps", "-T", type=int, default=None,
                   help="time window T (default: 4 for (sc-)ttfs, 32 for rate)")
    p.add_argument("--weight-bits", type=int, default=8, help="signed weight width (default: 8)")
    p.add_argument("--input-bits", type=int, default=8, help="pixel width (default: 8)")
    p.add_argument("--act-bits", type=int, default=8, help="width of decoded spike values (default: 8)")
    p.add_argument("--input-coding", choices=("direct", "spikes"), default="direct",
                   help="feed pixels to the first layer (direct, needs multipliers) or encode them as spikes")
    p.add_argument("--pow2", action="store_true",
                   help="power-of-two threshold series (k = ln 2): decode LUTs are powers of two, decoded by shifts")
    p.add_argument("--finetune-epochs", type=int, default=3, help="threshold/BN fine-tuning epochs (default: 3)")
    p.add_argument("--seed", type=int, default=0)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=list(DATASETS),
                   help="; ".join(f"{k}: {v}" for k, v in DATASETS.items()))
    p.add_argument("--data-root", default=None, help="folder with torchvision-layout MNIST / CIFAR-10 data")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help="hidden sizes (mlp, default 128) or channels (cnn, default 16 32)")
    p.add_argument("--epochs", type=int, default=30, help="ANN training epochs (default: 30)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnfpga", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", parents=[common], help="train the ANN")
    _add_data_options(p)
    _add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="runs/ann.pt", help="checkpoint path (default: runs/ann.pt)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", parents=[common], help="convert a trained ANN to an integer SNN (Network IR)")
    p.add_argument("checkpoint", help="checkpoint written by 'snnfpga train'")
    _add_data_options(p)
    _add_convert_options(p)
    p.add_argument("-o", "--output", default=None, help="IR path (default: beside the checkpoint, <coding>.snn.json)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("evaluate", parents=[common], help="integer reference accuracy of a Network IR on a data set's test split")
    p.add_argument("model", help="model.snn.json")
    p.add_argument("--dataset", default=None, help="default: the data set recorded in the IR")
    p.add_argument("--data-root", default=None)
    p.add_argument("--images", type=int, default=None, help="first N test images (default: all)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", parents=[common], help="train → convert (sc-ttfs, ttfs, rate) → evaluate → sweep T → hardware check → report")
    _add_data_options(p)
    _add_model_options(p)
    _add_convert_options(p)
    p.add_argument("--out", default=None, help="output folder (default: runs/<dataset>)")
    p.add_argument("--no-sweep", action="store_true", help="skip the accuracy-vs-T sweep and its plot")
    p.add_argument("--no-hardware", action="store_true", help="skip Verilog generation and the cocotb bit-exact check")
    p.add_argument("--images", type=int, default=None, help="test images to simulate in RTL (default: all of digits, else 100)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--lanes", type=int, default=4, help="weights read per cycle in the generated cores (default: 4)")
    p.add_argument("--board", default=None,
                   help="also build for this board (see 'snnfpga build --list-boards'): resources, fmax, fps, frames/W")
    p.set_defaults(func=cmd_run)

    from .boards import cli as boards_cli
    from .rtl_gen import cli as rtl_cli
    from .sim import cli as sim_cli

    for mod in (rtl_cli, sim_cli, boards_cli):
        mod.add_parser(sub)
    return parser


# --------------------------------------------------------------------------- commands

def _default_T(coding: str, T: int | None) -> int:
    return T if T is not None else (32 if coding == "rate" else 4)


def _train(args, data) -> tuple:
    from .convert.models import build_model
    from .convert.train import train_ann

    import torch

    hidden = tuple(args.hidden) if args.hidden else ((128,) if args.model == "mlp" else (16, 32))
    torch.manual_seed(args.seed)  # the initial weights too: a run is reproducible
    model = build_model(args.model, data.shape, data.classes, hidden)
    acc = train_ann(model, data, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    arch = {"model": args.model, "hidden": list(hidden), "in_shape": list(data.shape), "classes": data.classes,
            "dataset": data.name, "epochs": args.epochs, "accuracy": acc}
    return model, arch


def cmd_train(args) -> int:
    from .convert.data import load_dataset
    from .convert.models import save_checkpoint

    data = load_dataset(args.dataset, args.data_root)
    model, arch = _train(args, data)
    save_checkpoint(model, arch, args.output)
    print(f"ANN {arch['model']} {arch['hidden']} on {data.name}: train {100 * arch['accuracy']['train']:.2f}% "
          f"test {100 * arch['accuracy']['test']:.2f}%  → {args.output}")
    return 0


def _options(args, coding: str | None = None, T: int | None = None):
    from .convert.pipeline import ConvertOptions

    coding = coding or args.coding
    return ConvertOptions(coding=coding, timesteps=T or _default_T(coding, args.timesteps),
                          weight_bits=args.weight_bits, input_bits=args.input_bits, act_bits=args.act_bits,
                          input_coding=args.input_coding, pow2=args.pow2, finetune_epochs=args.finetune_epochs, seed=args.seed)


def cmd_convert(args) -> int:
    from .convert.data import load_dataset
    from .ir import save
    from .convert.models import load_checkpoint
    from .convert.pipeline import convert

    model, arch = load_checkpoint(args.checkpoint)
    data = load_dataset(arch.get("dataset", args.dataset), args.data_root)
    opts = _options(args)
    out = Path(args.output) if args.output else Path(args.checkpoint).with_name(f"{opts.coding}.snn.json")
    c = convert(model, data, opts, name=out.name.split(".")[0], progress=not args.quiet)
    json_path, npz_path = save(c.net, out)
    _print_rows([c.metrics])
    print(f"→ {json_path} + {npz_path.name}")
    return 0


def cmd_evaluate(args) -> int:
    from .convert.data import load_dataset
    from .ir import load
    from .convert.pipeline import evaluate_int

    net = load(args.model)
    data = load_dataset(args.dataset or net.provenance.get("dataset", "digits"), args.data_root)
    n = args.images or len(data.test_y)
    res = evaluate_int(net, data.test_x[:n], data.test_y[:n], progress=not args.quiet)
    print(f"{net.name}: {net.coding} T={net.timesteps} on {data.name}: integer accuracy "
          f"{100 * res['accuracy']:.2f}% ({res['images']} images), {res['spikes_per_frame']:.1f} spikes/frame")
    return 0


def _print_rows(rows: list[dict]) -> None:
    print(f"{'coding':8} {'T':>3} {'float ANN':>9} {'float SNN':>9} {'integer':>8} {'spikes/frame':>12}")
    for r in rows:
        print(f"{r['coding']:8} {r['timesteps']:>3} {100 * r['float_ann']:>8.2f}% {100 * r['float_snn']:>8.2f}% "
              f"{100 * r['int_ref']:>7.2f}% {r['spikes_per_frame']:>12.1f}")


def cmd_run(args) -> int:
    from tqdm.auto import tqdm

    from .convert.data import load_dataset
    from .metrics.energy import paper_energy
    from .ir import save
    from .convert.models import save_checkpoint
    from .convert.pipeline import convert
    from .plots import plot_accuracy_vs_timesteps

    t0 = time.time()
    out = Path(args.out or f"runs/{args.dataset}")
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset, args.data_root)
    print(f"data: {data!r}")
    model, arch = _train(args, data)
    save_checkpoint(model, arch, out / "ann.pt")
    print(f"float ANN: test accuracy {100 * arch['accuracy']['test']:.2f}%")

    main_T = _default_T(args.coding, args.timesteps)
    jobs = [(args.coding, main_T)]
    for coding in CODINGS:  # the other codings at their default T, for contrast
        if coding != args.coding:
            jobs.append((coding, _default_T(coding, None)))
    if not args.no_sweep:
        jobs += [(c, T) for c in CODINGS for T in SWEEP_T[c] if (c, T) not in jobs]
    rows, nets = [], {}
    for coding, T in tqdm(jobs, desc="convert + evaluate", unit="net", disable=args.quiet):
        c = convert(model, data, _options(args, coding, T), name=f"{coding}-T{T}", progress=False)
        row = dict(c.metrics, energy_paper=paper_energy(c.metrics["spikes_per_frame"], T))
        rows.append(row)
        nets[(coding, T)] = c.net
    for coding, T in jobs[:3]:
        save(nets[(coding, T)], out / f"{coding}.snn.json")
    main_net = nets[(args.coding, main_T)]
    main_path = out / "model.snn.json"
    save(main_net, main_path)
    print()
    _print_rows(sorted(rows, key=lambda r: (CODINGS.index(r["coding"]), r["timesteps"])))
    main_row = rows[0]
    report = {
        "name": main_net.name, "dataset": data.name, "model": {k: arch[k] for k in ("model", "hidden", "in_shape")},
        "ir": str(main_path),
        "accuracy": {
            "float_ann": {"accuracy": main_row["float_ann"], "images": len(data.test_y)},
            "float_snn": {"accuracy": main_row["float_snn"], "images": len(data.test_y)},
            "int_ref": {"accuracy": main_row["int_ref"], "images": len(data.test_y)},
        },
        "latency": {"timesteps": main_T},
        "spikes_per_frame": main_row["spikes_per_frame"],
        "energy_paper": main_row["energy_paper"],
        "runs": rows,
    }
    if not args.no_sweep:
        png = plot_accuracy_vs_timesteps(rows, arch["accuracy"]["test"], out / "accuracy_vs_T.png",
                                         f"{data.name}: {args.model} {arch['hidden']}")
        report["plot"] = str(png)
        print(f"plot: {png}")
    if not args.no_hardware:
        hw = _hardware_check(args, main_net, data, out)
        report["accuracy"]["rtl"] = hw.pop("rtl_accuracy")
        report.update(hw)
        if args.board:
            report.update(_board_build(args, main_net, data, out, hw["hardware"]))
    report["seconds"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"report: {out / 'report.json'}  ({report['seconds']:.0f} s)")
    bit = report.get("bit_exact")
    if bit and bit["mismatching_images"]:
        raise Mismatch(f"{bit['mismatching_images']} of {bit['images']} images differ from the integer "
                       f"reference (report: {out / 'report.json'})")
    return 0


def _hardware_check(args, net, data, out: Path) -> dict:
    """Generate Verilog for the main network and prove it bit-exact in cocotb."""
    import numpy as np

    from .ir.frames import quantize_frames

    from . import rtl_gen, sim
    n = args.images or (len(data.test_y) if data.name == "digits" else 100)
    rtl_gen.generate(net, out / "rtl", lanes=args.lanes)
    frames = quantize_frames(net, data.test_x[:n])
    print(f"RTL: cocotb + {args.simulator} on {n} test images (lanes={args.lanes}) ...")
    rep = sim.simulate(net, frames, simulator=args.simulator, lanes=args.lanes, build_dir=out / "sim_build")
    rtl_acc = float((np.asarray(rep["rtl_classes"]) == data.test_y[:n]).mean())
    ref_acc = float((np.asarray(rep["reference_classes"]) == data.test_y[:n]).mean())
    print(f"RTL: {rep['images']} images, {rep['mismatching_images']} mismatching (bit-exact: every spike event and "
          f"output membrane), accuracy {100 * rtl_acc:.2f}% (integer reference on the same images "
          f"{100 * ref_acc:.2f}%), {rep['cycles_per_frame']['mean']:.0f} cycles/frame, "
          f"frame interval {rep['frame_interval_cycles'] or float('nan'):.0f} cycles")
    if rep.get("first_mismatch"):
        print(f"first mismatch: {rep['first_mismatch']}")
    cpf = rep["cycles_per_frame"]["mean"]
    bound = rep.get("event_bound_cycles")
    return {
        "latency": {"timesteps": net.timesteps, "cycles_per_frame": cpf,
                    "frame_interval_cycles": rep.get("frame_interval_cycles"),
                    "event_bound_cycles": bound, "ratio_to_event_bound": cpf / bound if bound else None,
                    "lanes": args.lanes},
        "rtl_accuracy": {"accuracy": rtl_acc, "images": rep["images"], "int_ref_same_images": ref_acc},
        "bit_exact": {"images": rep["images"], "mismatching_images": rep["mismatching_images"],
                      "compared": "every spike event (stage, neuron, time, kind) and the final output membranes",
                      "first_mismatch": rep.get("first_mismatch"), "simulator": args.simulator},
        "hardware": {k: v for k, v in rep.items() if k not in ("rtl_classes",)},
    }


def _board_build(args, net, data, out: Path, sim_report: dict) -> dict:
    """Place and route for ``--board``; fps and power from the measured frame interval."""
    from .ir.frames import quantize_frames

    from .boards import build
    from .boards import cli as bcli
    print(f"board: building for {args.board} (open toolchain) ...")
    b = build.build(net, args.board, out / "board", lanes=args.lanes)
    frames = quantize_frames(net, data.test_x[: min(200, len(data.test_y))])
    perf = bcli.performance(net, b, lanes=args.lanes, sim_report=sim_report, frames=frames)
    pw = perf["power"] or {}
    res = {k: v for k, v in (b.get("resources") or {}).items()}
    fps = perf["fps"]
    print(f"board: {args.board}: fmax {b.get('fmax_mhz') or float('nan'):.1f} MHz (clock {perf['clock_mhz']} MHz), "
          f"{fps or float('nan'):.0f} frames/s, {pw.get('total_w', float('nan')) * 1e3:.2f} mW, "
          f"{pw.get('fps_per_w', float('nan')):.0f} frames/W (estimate; see power breakdown in report.json)")
    return {"board": args.board, "fmax_mhz": b.get("fmax_mhz"), "clock_mhz": perf["clock_mhz"], "resources": res,
            "bitstream": str(b.get("bitstream")), "fps": fps, "power_w": pw.get("total_w"),
            "fps_per_w": pw.get("fps_per_w"), "power": pw, "fps_uart_limited": perf["fps_uart"],
            "power_uart_limited": perf["power_uart"]}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run" and getattr(args, "no_hardware", False):
            pass
        else:
            require_extra(args.command)
        return int(args.func(args) or 0)
    except UserError as e:  # the user's to fix: one line, no traceback; anything else is a bug
        print(f"snnfpga: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
