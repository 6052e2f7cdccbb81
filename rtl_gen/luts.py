"""Threshold and decode lookup tables as hardware: ROM muxes and the encode comparators.

The LUTs are small (T entries) constants from the IR. ``ttfs_encode`` builds the combinational
encode rule of DESIGN.md §3 for one membrane value: ``t_e = min{t : v >= enc[t]}``, then
``t_c = min{t >= t_e : v - enc[t_e] >= cal[t]}``, as T parallel comparators and priority
encoders (cheap for the T <= 16 the codings use).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from amaranth.hdl import Array, Const, Module, Signal, Value, signed, unsigned

from snnfpga.ir import TTFSNeuron

__all__ = ["rom", "pack_words", "TTFSEncode", "ttfs_encode", "signed_width", "const_mul"]


def signed_width(values: Sequence[int]) -> int:
    """Smallest two's complement width holding every value (at least 2)."""
    lo, hi = min(values, default=0), max(values, default=0)
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return bits


def const_mul(x: Value, c: int) -> Value:
    """``x * c`` for a constant ``c >= 0`` as shifts and adds, so synthesis never spends a DSP
    block on an address computation."""
    if c < 0:
        raise ValueError(f"c must be a non-negative integer, not {c!r}")
    terms = [x << k for k in range(c.bit_length()) if c >> k & 1]
    if not terms:
        return Const(0, 1)
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def rom(values: Sequence[int]) -> Array:
    """A constant table indexed by a signal (synthesises to a LUT mux)."""
    width = signed_width(values)
    return Array(Const(int(v), signed(width)) for v in values)


def pack_words(rows: Sequence[Sequence[int]], width: int) -> list[int]:
    """Pack rows of signed integers into unsigned words, element 0 at the least significant bits."""
    mask = (1 << width) - 1
    out = []
    for row in rows:
        word = 0
        for k, v in enumerate(row):
            word |= (int(v) & mask) << (k * width)
        out.append(word)
    return out


def _priority(m: Module, bits: Sequence[Value], name: str, width: int) -> tuple[Value, Signal]:
    """(any, index of the lowest set bit)."""
    idx = Signal(unsigned(width), name=name)
    for t in reversed(range(len(bits))):
        with m.If(bits[t]):
            m.d.comb += idx.eq(t)
    anyv = Signal(name=name + "_any")
    m.d.comb += anyv.eq(_or(bits))
    return anyv, idx


def _or(bits: Sequence[Value]) -> Value:
    out = bits[0]
    for b in bits[1:]:
        out = out | b
    return out


class TTFSEncode(NamedTuple):
    fired: Value
    t_enc: Value
    cal_fired: Value
    t_cal: Value


def ttfs_encode(m: Module, v: Value, neuron: TTFSNeuron, t_bits: int, name: str = "enc") -> TTFSEncode:
    """Combinational encode of membrane ``v`` (see module docstring)."""
    T = len(neuron.enc)
    ge = [v >= int(neuron.enc[t]) for t in range(T)]
    fired, t_e = _priority(m, ge, f"{name}_te", t_bits)
    if not neuron.calibrated:
        return TTFSEncode(fired, t_e, Const(0, 1), Const(0, t_bits))
    enc = rom(neuron.enc)
    r = Signal(signed(len(v) + 1), name=f"{name}_r")
    m.d.comb += r.eq(v - enc[t_e])
    ok = [(r >= int(neuron.cal[t])) & (t_e <= t) for t in range(T)]
    cal_any, t_c = _priority(m, ok, f"{name}_tc", t_bits)
    return TTFSEncode(fired, t_e, fired & cal_any, t_c)
