"""Verilog emission and the summary JSON pinned by docs/hardware.md.

The Verilog is byte-identical wherever the toolkit is checked out or installed: amaranth's
``src`` attributes (absolute paths of the Python lines that made each net) are rewritten to the
checkout's relative names (``rtl_gen/luts.py:123``), and locations outside the toolkit
(amaranth's own files, the standard library: paths and line numbers that vary by machine and
Python version) are dropped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from snnfpga.errors import BadOption
from snnfpga.ir import Network

from .description import describe
from .top import NetworkTop

__all__ = ["generate", "summary", "portable_verilog", "convert"]


def summary(net: Network, *, lanes: int = 1, name: str = "snn_top", decode: str = "auto") -> dict[str, Any]:
    """What the generated top looks like: widths, taps, per-layer memory sizes and every memory
    (``describe(net, lanes=lanes, name=name, decode=decode).summary()``)."""
    return describe(net, lanes=lanes, name=name, decode=decode).summary()


_SRC_ATTR = re.compile(r'\(\* src = "([^"]*)" \*\)( ?)')


@lru_cache(maxsize=1)
def _package_dirs() -> tuple[tuple[str, str], ...]:
    """``(real folder + os.sep, checkout name)`` of the toolkit's packages, longest first.

    Found from the modules themselves, not from an install layout: ``snnfpga.rtl_gen`` is
    ``rtl_gen/`` in a checkout and ``snnfpga/rtl_gen/`` in a wheel, with ``sim/`` and
    ``boards/`` beside it in both; all are named as in a checkout.
    """
    import snnfpga

    here = Path(__file__).resolve().parent
    dirs = {here: "rtl_gen", here.parent / "sim": "sim", here.parent / "boards": "boards"}
    for module, short in (("snnfpga.sim", "sim"), ("snnfpga.boards", "boards")):
        spec = importlib.util.find_spec(module)
        for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
            dirs.setdefault(Path(folder).resolve(), short)
    dirs.setdefault(Path(snnfpga.__file__).resolve().parent, "snnfpga")
    return tuple(sorted(((str(d) + os.sep, short) for d, short in dirs.items()), key=lambda i: -len(i[0])))


def _portable_location(location: str) -> str | None:
    """``/any/path/rtl_gen/luts.py:12`` -> ``rtl_gen/luts.py:12``; None outside the toolkit."""
    path, sep, line = location.rpartition(":")
    if not sep or not path:
        return None
    real = os.path.realpath(path)
    for folder, short in _package_dirs():
        if real.startswith(folder):
            return f"{short}/{Path(real[len(folder):]).as_posix()}:{line}"
    return None


def portable_verilog(text: str) -> str:
    """``text`` with every ``(* src = "..." *)`` attribute made independent of the install path
    and the machine: toolkit locations relative (``rtl_gen/top.py:147``), others dropped, an
    attribute left empty removed (with its line, when it stood alone)."""

    def attr(match: re.Match) -> str:
        kept = [p for p in map(_portable_location, match.group(1).split("|")) if p]
        return f'(* src = "{"|".join(kept)}" *){match.group(2)}' if kept else ""

    out = []
    for line in text.splitlines(keepends=True):
        if "(* src = " in line:
            line = _SRC_ATTR.sub(attr, line)
            if not line.strip():
                continue
        out.append(line)
    return "".join(out)


def convert(top: Any, *, name: str) -> str:
    """``amaranth.back.verilog.convert(top, name=name)``, made portable by
    :func:`portable_verilog`."""
    from amaranth.back import verilog

    return portable_verilog(verilog.convert(top, name=name))


def generate(net: Network, out_dir: str | Path, *, lanes: int = 1, name: str = "snn_top",
             decode: str = "auto", single_bank=()) -> Path:
    """Write ``out_dir/<name>.v`` and ``out_dir/<name>.json``; return the Verilog path.
    ``decode``, ``single_bank``: ``NetworkTop``'s options."""
    if not isinstance(name, str) or not name.isidentifier():
        raise BadOption(f"name must be a Verilog identifier, not {name!r}")
    top = NetworkTop(net, lanes=lanes, decode=decode, single_bank=single_bank)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = convert(top, name=name)
    v_path = out_dir / f"{name}.v"
    v_path.write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(top.description(name).summary(), indent=1) + "\n")
    return v_path
