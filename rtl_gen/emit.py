"""Verilog emission and the summary JSON pinned by docs/hardware.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snnfpga.errors import BadOption
from snnfpga.ir import Network

from .description import describe
from .top import NetworkTop

__all__ = ["generate", "summary"]


def summary(net: Network, *, lanes: int = 1, name: str = "snn_top", decode: str = "auto") -> dict[str, Any]:
    """What the generated top looks like: widths, taps, per-layer memory sizes and every memory
    (``describe(net, lanes=lanes, name=name, decode=decode).summary()``)."""
    return describe(net, lanes=lanes, name=name, decode=decode).summary()


def generate(net: Network, out_dir: str | Path, *, lanes: int = 1, name: str = "snn_top",
             decode: str = "auto") -> Path:
    """Write ``out_dir/<name>.v`` and ``out_dir/<name>.json``; return the Verilog path.
    ``decode``: where the decode LUT is applied (``NetworkTop``'s option)."""
    from amaranth.back import verilog

    if not isinstance(name, str) or not name.isidentifier():
        raise BadOption(f"name must be a Verilog identifier, not {name!r}")
    top = NetworkTop(net, lanes=lanes, decode=decode)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(top, name=name)
    v_path = out_dir / f"{name}.v"
    v_path.write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(top.description(name).summary(), indent=1) + "\n")
    return v_path
