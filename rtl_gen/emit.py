"""Verilog emission and the summary JSON pinned by docs/hardware.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snnfpga.errors import BadOption
from snnfpga.ir import Network

from .events import index_bits, time_bits
from .layer_common import check_lanes, multipliers, source_neuron
from .top import NetworkTop, stages

__all__ = ["generate", "summary"]


def summary(net: Network, *, lanes: int = 1, name: str = "snn_top") -> dict[str, Any]:
    """What the generated top looks like: widths, taps and per-layer memory sizes."""
    lanes = check_lanes(lanes)
    out = net.output_layer
    tb = time_bits(net.timesteps)
    layers = []
    for i, layer in enumerate(net.layers):
        if not layer.weighted:
            continue
        groups = -(-layer.n_out // lanes)
        src = source_neuron(net, i)
        direct = src is None
        if direct or net.coding == "rate":
            slots = 1
        else:
            slots = net.timesteps * (2 if src.calibrated else 1)
        # two banks of partial sums, plus the IF membranes of a rate layer
        words = 2 * slots * groups + (groups if net.coding == "rate" else 0)
        layers.append({
            "index": i, "kind": layer.kind, "n_in": layer.n_in, "n_out": layer.n_out,
            "weight_bits": layer.weight_bits, "acc_bits": layer.acc_bits,
            "weight_words": layer.n_in * groups, "membrane_words": words, "lanes": lanes,
            "multipliers": multipliers(net, i, lanes),
        })
    return {
        "top": name, "coding": net.coding, "timesteps": net.timesteps, "lanes": lanes,
        "input": {"size": net.input.size, "bits": net.input.bits, "signed": net.input.signed,
                  "input_coding": net.input.input_coding},
        "n_classes": net.n_classes, "out_acc_bits": out.acc_bits,
        "cls_bits": index_bits(net.n_classes),
        "taps": [{"stage": s, "name": f"tap_{s}", "neurons": n, "neuron_bits": index_bits(n),
                  "time_bits": tb} for s, n in stages(net)],
        "layers": layers,
    }


def generate(net: Network, out_dir: str | Path, *, lanes: int = 1, name: str = "snn_top") -> Path:
    """Write ``out_dir/<name>.v`` and ``out_dir/<name>.json``; return the Verilog path."""
    from amaranth.back import verilog

    if not isinstance(name, str) or not name.isidentifier():
        raise BadOption(f"name must be a Verilog identifier, not {name!r}")
    top = NetworkTop(net, lanes=lanes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(top, name=name)
    v_path = out_dir / f"{name}.v"
    v_path.write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(summary(net, lanes=lanes, name=name), indent=1) + "\n")
    return v_path
