"""Threshold and decode lookup tables as hardware: ROM muxes and the encode comparators.

The LUTs are small (T entries) constants from the IR. ``ttfs_encode`` builds the combinational
encode rule of DESIGN.md §3 for one membrane value: ``t_e = min{t : v >= enc[t]}``, then
``t_c = min{t >= t_e : v - enc[t_e] >= cal[t]}``, as T parallel comparators and priority
encoders (cheap for the T <= 16 the codings use). Nothing in them is T deep (a priority tree,
a thermometer for ``t >= t_e``), so the IR's whole T range elaborates (issue 13).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from amaranth.hdl import Array, Cat, Const, Module, Signal, Value, signed, unsigned
from amaranth.utils import bits_for, ceil_log2

from snnfpga.ir import TTFSNeuron

__all__ = ["rom", "pack_words", "lowest_set", "TTFSEncode", "ttfs_encode", "ttfs_fire", "ttfs_calibrate", "event_buffer",
           "signed_width", "const_mul", "const_divmod", "window_ranges"]


def signed_width(values: Sequence[int]) -> int:
    """Smallest two's complement width holding every value (at least 2)."""
    lo, hi = min(values, default=0), max(values, default=0)
    return max(2, bits_for(lo, require_sign_bit=True), bits_for(hi, require_sign_bit=True))


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


def const_divmod(x: Value, d: int, n: int) -> tuple[Value, Value]:
    """``(x // d, x % d)`` for ``0 <= x < n`` and a constant ``d >= 1``: a multiplication by a
    constant reciprocal (shifts and adds, :func:`const_mul`) and a shift, checked exhaustively
    over ``[0, n)`` when the hardware is built, so no divider (and no DSP block) is spent on an
    address computation."""
    if d < 1 or n < 1:
        raise ValueError(f"d and n must be positive integers, not {d!r}, {n!r}")
    qb, rb = max(1, bits_for(max(n - 1, 0) // d)), max(1, bits_for(d - 1))
    if d == 1:
        return x, Const(0, 1)
    if d & (d - 1) == 0:
        k = d.bit_length() - 1
        return (x >> k)[:qb], x[:k]
    xs = list(range(n))
    s = bits_for(n - 1)
    while True:
        mul = -(-(1 << s) // d)
        if all((v * mul) >> s == v // d for v in xs):
            break
        s += 1
    q = (const_mul(x, mul) >> s)[:qb]
    r = (x - const_mul(q, d))[:rb]
    return q, r


def window_ranges(size_in: int, size_out: int, kernel: int, stride: int, padding: int
                  ) -> tuple[list[int], list[int]]:
    """For a k-window op (conv taps, pool windows) along one axis: the outputs ``o`` whose window
    covers input ``a`` are ``lo[a] <= o <= hi[a]`` (``o·stride - padding + d = a``, ``0 <= d <
    kernel``); empty where ``lo > hi``."""
    lo, hi = [], []
    for a in range(size_in):
        lo.append(max(0, -(-(a + padding - kernel + 1) // stride)))
        hi.append(min(size_out - 1, (a + padding) // stride))
    return lo, hi


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


def lowest_set(m: Module, bits: Sequence[Value] | Value, name: str, width: int) -> tuple[Value, Signal]:
    """(any, index of the lowest set bit; 0 when none is set).

    A balanced tree, built level by level on whole vectors (a few wide operators per level, so
    nothing is T deep for amaranth to walk recursively and elaboration stays fast at the IR's
    largest T): a node joins its halves ``lo``, ``hi`` as ``any = any_lo | any_hi`` and ``idx =
    Cat(any_lo ? idx_lo : idx_hi, ~any_lo & any_hi)``, with ``idx`` kept as bit planes (plane
    ``b``: bit ``b`` of every node's index). About 2T selection bits and log2(T) levels.
    """
    flat = Cat(*bits) if not isinstance(bits, Value) else bits
    # one signal, padded with zeros to a power of two: every level then slices signals (slicing
    # a long Cat again and again would cost amaranth O(T²))
    anys = Signal(1 << ceil_log2(max(1, len(flat))), name=f"{name}_any0")
    m.d.comb += anys.eq(flat)
    planes: list[Value] = []
    level = 0
    while len(anys) > 1:
        lo, hi = anys[0::2], anys[1::2]
        n = len(lo)
        sel = Signal(n, name=f"{name}_lo{level + 1}")  # per node: the index comes from its lower half
        nxt = Signal(n, name=f"{name}_any{level + 1}")
        m.d.comb += [sel.eq(lo), nxt.eq(lo | hi)]
        new_planes = []
        for b, plane in enumerate(planes):
            q = Signal(n, name=f"{name}_idx{level + 1}_{b}")
            m.d.comb += q.eq((plane[0::2] & sel) | (plane[1::2] & ~sel))
            new_planes.append(q)
        top = Signal(n, name=f"{name}_idx{level + 1}_{level}")
        m.d.comb += top.eq(~sel & hi)
        planes, anys = new_planes + [top], nxt
        level += 1
    anyv = Signal(name=name + "_any")
    idx = Signal(unsigned(width), name=name)
    m.d.comb += [anyv.eq(anys[0]), idx.eq(Cat(*(p[0] for p in planes)))]
    return anyv, idx


def _thermometer(m: Module, x: Value, n: int, name: str) -> Value:
    """``n`` bits, bit ``t`` set iff ``t >= x`` (``x`` unsigned): the bits of ``x`` from the
    least significant up, each doubling the table (``Cat(lower & ~b, lower | ~b)``): about 2n
    gates in a few wide operators, where n comparators would each be a cell for amaranth to
    elaborate (and a variable shift costs amaranth O(n²) to check)."""
    table: Value = Const(1, 1)                   # 0 >= x for the 0-bit x
    for j in range(len(x)):
        b = x[j].replicate(len(table))
        nxt = Signal(2 * len(table), name=f"{name}{j}")
        m.d.comb += nxt.eq(Cat(table & ~b, table | ~b))
        table = nxt
    if len(table) < n:                           # x < 2**len(x) <= t: always set
        return Cat(table, Const(-1, n - len(table)))
    return table[:n]


class TTFSEncode(NamedTuple):
    fired: Value
    t_enc: Value
    cal_fired: Value
    t_cal: Value


def ttfs_fire(m: Module, v: Value, neuron: TTFSNeuron, t_bits: int,
              name: str = "enc") -> tuple[Value, Value, Value]:
    """First half of the encode: ``(fired, t_e, r = v - enc[t_e])``."""
    T = len(neuron.enc)
    ge = [v >= int(neuron.enc[t]) for t in range(T)]
    fired, t_e = lowest_set(m, ge, f"{name}_te", t_bits)
    r = Signal(signed(len(v) + 1), name=f"{name}_r")
    if neuron.calibrated:
        m.d.comb += r.eq(v - rom(neuron.enc)[t_e])
    return fired, t_e, r


def ttfs_calibrate(m: Module, fired: Value, t_e: Value, r: Value, neuron: TTFSNeuron, t_bits: int,
                   name: str = "enc") -> TTFSEncode:
    """Second half: ``t_c = min{t >= t_e : r >= cal[t]}`` (nothing for single-spike TTFS)."""
    if not neuron.calibrated:
        return TTFSEncode(fired, t_e, Const(0, 1), Const(0, t_bits))
    T = len(neuron.cal)
    ok = Cat(*(r >= int(neuron.cal[t]) for t in range(T))) & _thermometer(m, t_e, T, f"{name}_after")
    cal_any, t_c = lowest_set(m, ok, f"{name}_tc", t_bits)
    return TTFSEncode(fired, t_e, fired & cal_any, t_c)


def ttfs_encode(m: Module, v: Value, neuron: TTFSNeuron, t_bits: int, name: str = "enc") -> TTFSEncode:
    """Combinational encode of membrane ``v`` (see module docstring)."""
    fired, t_e, r = ttfs_fire(m, v, neuron, t_bits, name)
    return ttfs_calibrate(m, fired, t_e, r, neuron, t_bits, name)


def event_buffer(m: Module, o, *, calibrated: bool, load: Value, neuron: Value, e: TTFSEncode,
                 keep: Value = Const(1, 1), name: str = "buf") -> tuple[Value, Value]:  # noqa: B008 (immutable)
    """A one-entry buffer between a TTFS encode and the event stream ``o``.

    When ``load`` is high (the caller only raises it while the returned ``free`` is high) the
    encode result ``e`` of ``neuron`` is registered (``keep`` low: a padding lane, dropped); the
    buffered neuron's encoding spike, then calibration spike, leave on ``o``. This cuts the
    compare chain off the stream handshake while a new neuron is prepared each cycle.
    Returns ``(free, empty)``: a load is possible this cycle; nothing is buffered.
    """
    tb = len(o.payload.time)
    bv = Signal(name=f"{name}_valid")
    b_j = Signal(len(o.payload.neuron), name=f"{name}_neuron")
    b_fired, b_calf = Signal(name=f"{name}_fired"), Signal(name=f"{name}_cal_fired")
    b_te, b_tc = Signal(tb, name=f"{name}_t_enc"), Signal(tb, name=f"{name}_t_cal")
    sub = Signal(name=f"{name}_sub")  # 0: encoding spike next, 1: calibration spike next
    with m.If(sub == 0):
        m.d.comb += [o.valid.eq(bv & b_fired), o.payload.time.eq(b_te), o.payload.kind.eq(0)]
    with m.Else():
        m.d.comb += [o.valid.eq(bv), o.payload.time.eq(b_tc), o.payload.kind.eq(1)]
    m.d.comb += o.payload.neuron.eq(b_j)
    step = ~o.valid | o.ready
    finish = Signal(name=f"{name}_finish")
    if calibrated:
        m.d.comb += finish.eq(bv & step & ((sub == 1) | ~b_calf))
        with m.If(bv & step & (sub == 0) & b_calf):
            m.d.sync += sub.eq(1)
    else:
        m.d.comb += finish.eq(bv & step)
    free = Signal(name=f"{name}_free")
    m.d.comb += free.eq(~bv | finish)
    with m.If(finish):
        m.d.sync += [bv.eq(0), sub.eq(0)]
    with m.If(load):
        m.d.sync += [bv.eq(keep), b_j.eq(neuron), b_fired.eq(e.fired), b_te.eq(e.t_enc),
                     b_calf.eq(e.cal_fired), b_tc.eq(e.t_cal)]
    return free, ~bv
