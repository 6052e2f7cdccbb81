# amaranth: UnusedElaboratable=no
# (the banks made in __init__ are used exactly when their owner is)
"""Max pooling (``maxpool2d``, TTFS only, docs/ir.md) as an event stage between two stages.

A TTFS spike at time t carries ``dec_enc[t]``, non-increasing in t, so a window's largest
decoded value is that of its earliest spike: the pool forwards, per pooled element, one event
at the earliest time any element of its window spiked, and nothing for a silent window.

The events of a stage are **not** in time order (a TTFS layer emits them in neuron order, each
at its own time), so "forward the first event to arrive" would be wrong: a later-arriving
event can be earlier in time. The stage therefore keeps, per pooled element, the best value
seen in the frame (``T − t`` for the earliest time, 0 for "no spike" — a max, like the
pixels'), and at the frame's end marker sweeps the pooled elements in C order, emitting one
event per non-empty element and clearing it as it goes (clearing costs no extra cycle). The
values live in two banks (:class:`~.layer_common.PartialSumBanks`): frame f+1 accumulates in
one while frame f is swept out of the other, so a frame costs ``max(accumulate, sweep)`` cycles
in steady state: one cycle per (event, covering window) pair (at least one per event) against
``C·Ho·Wo`` sweep cycles plus one for the end marker.

Direct unsigned pixels pool the same way (the value is the pixel, padding never wins because
0 is the smallest pixel): the sweep sends every pooled pixel, zeros included, since a pixel
stream has no end marker and the consumer counts ``C·Ho·Wo`` pixels per frame.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from snnfpga.ir import INPUT, Layer, Network

from .events import event_signature, index_bits, pixel_shape, time_bits
from .layer_common import PartialSumBanks
from .luts import const_divmod, const_mul, window_ranges

__all__ = ["MaxPoolStage", "maxpool_stage"]


def _check_count(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _check_geometry(in_shape, kernel, stride, padding, timesteps, pixel_shape):
    """``(in_shape, out_shape)`` of a valid max pool; ``TypeError`` / ``ValueError`` otherwise."""
    in_shape = tuple(in_shape)
    if len(in_shape) != 3:
        raise ValueError(f"in_shape must be (C, H, W), not {in_shape!r}")
    for name, value in (("kernel", kernel), ("stride", stride), ("timesteps", timesteps),
                        *zip(("C", "H", "W"), in_shape)):
        _check_count(name, value)
    _check_count("padding", padding, 0)
    if 2 * padding > kernel:
        raise ValueError(f"padding must be at most half the kernel ({kernel // 2}), not {padding!r}")
    C, H, W = in_shape
    Ho, Wo = (H + 2 * padding - kernel) // stride + 1, (W + 2 * padding - kernel) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {kernel}×{kernel} window does not fit in_shape {list(in_shape)}")
    if pixel_shape is not None and Shape.cast(pixel_shape).signed:
        raise ValueError(f"a max pool of direct pixels needs unsigned pixels (docs/ir.md), not {pixel_shape!r}")
    return in_shape, (C, Ho, Wo)


class MaxPoolStage(wiring.Component):
    """One ``maxpool2d`` between two stages: events (or direct pixels) in, pooled ones out.

    An incoming event (or non-zero pixel) has the flat C-order index ``n = (c·H + y)·W + x``;
    every pooled element ``(c, i, j)`` whose window covers ``(y, x)`` (``lo ≤ i ≤ hi`` from
    per-axis constant tables, so overlapping windows, borders, stride and padding cost no
    extra cycle) keeps the max of its value and the event's (``T − t``, or the pixel), one
    read-modify-write a cycle through a two-stage pipeline (read, then max and write back; the
    bank's read port is transparent to its write port, so back-to-back updates of one element
    are safe). At the end marker (or the frame's last pixel) the bank is handed to the sweep
    once the last write is done and the previous sweep is over. The sweep reads the elements
    in C order, one a cycle while the output is ready, emits element ``e`` with value ``v``
    as event ``(e, T − v, kind 0)`` if ``v ≠ 0`` (or as a pixel ``v``, always) and writes 0
    back; an end marker closes an event frame.

    Parameters
    ----------
    in_shape : (int, int, int)
        ``(C, H, W)`` of the incoming events or pixels.
    kernel, stride, padding : int
        The window (``2·padding ≤ kernel``, docs/ir.md).
    timesteps : int
    pixel_shape : shape-like or None
        Unsigned direct pixels (pixels in, pixels out), or None for TTFS events.

    Attributes
    ----------
    out_shape : (int, int, int)
        ``(C, Ho, Wo)``.
    n_in, n_out : int
        Elements in and out.
    banks : :class:`~.layer_common.PartialSumBanks`
        Submodule ``banks``: two banks of ``n_out`` words of the value width (``bits_for(T)``,
        or the pixel width).
    memories : tuple of ``(path, role, Memory)``
        Both banks, role ``pool_maxima``.

    Members
    -------
    i_stream : ``In(event_signature(index_bits(n_in), time_bits(T)))`` or ``In(stream.Signature(pixel_shape))``
    o_stream : ``Out(event_signature(index_bits(n_out), time_bits(T)))`` or ``Out(stream.Signature(pixel_shape))``
    """

    def __new__(cls, *, in_shape, kernel: int, stride: int, padding: int, timesteps: int, pixel_shape=None):
        # Refuse bad parameters before the object exists (as NetworkTop does): every
        # Elaboratable is registered for Amaranth's "created but never used" warning.
        _check_geometry(in_shape, kernel, stride, padding, timesteps, pixel_shape)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, *, in_shape, kernel: int, stride: int, padding: int, timesteps: int,
                 pixel_shape=None):
        self.in_shape, self.out_shape = _check_geometry(in_shape, kernel, stride, padding, timesteps, pixel_shape)
        C, H, W = self.in_shape
        _, Ho, Wo = self.out_shape
        self.kernel, self.stride, self.padding, self.T = kernel, stride, padding, timesteps
        self.n_in, self.n_out = C * H * W, C * Ho * Wo
        self.direct = pixel_shape is not None
        if self.direct:
            shape = Shape.cast(pixel_shape)
            self.value_bits = shape.width
            i_sig = o_sig = stream.Signature(shape)
        else:
            self.value_bits = bits_for(timesteps)
            tb = time_bits(timesteps)
            i_sig = event_signature(index_bits(self.n_in), tb)
            o_sig = event_signature(index_bits(self.n_out), tb)
        self.banks = PartialSumBanks(width=self.value_bits, depth=self.n_out)
        super().__init__({"i_stream": In(i_sig), "o_stream": Out(o_sig)})

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        """``(submodule path, role, memory)`` of both banks."""
        return tuple((f"banks.bank{b}", "pool_maxima", mem) for b, mem in enumerate(self.banks.banks))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.banks = banks = self.banks
        C, H, W = self.in_shape
        _, Ho, Wo = self.out_shape
        T, vb = self.T, self.value_bits
        inp, o = self.i_stream, self.o_stream
        acc, swp = banks.decode, banks.encode
        busy, start = Signal(), Signal()
        m.d.comb += banks.swap.eq(start)

        # ---- accumulate: the waiting beat (R0), the current event's windows, read-modify-write
        r0_valid, r0_ev, r0_end = Signal(), Signal(), Signal()
        r0_n = Signal(range(self.n_in))
        r0_v, val = Signal(vb), Signal(vb)
        # what an input beat is: a non-zero pixel (``pix`` counts them, the last ends the frame)
        # or an event, whose value is ``T − t``; an end marker
        if self.direct:
            pix = Signal(range(self.n_in))
            in_row, in_ev, in_end, in_v = pix, inp.payload != 0, pix == self.n_in - 1, inp.payload
        else:
            p = inp.payload
            in_row, in_ev, in_end, in_v = p.neuron, ~p.end, p.end, (T - p.time)[:vb]

        c_q, rem = const_divmod(r0_n, H * W, self.n_in)
        y_q, x_q = const_divmod(rem, W, H * W)
        c = Signal(range(C))
        py, pyh = Signal(range(Ho)), Signal(range(Ho))
        px, pxl, pxh = Signal(range(Wo)), Signal(range(Wo)), Signal(range(Wo))

        def table(values):
            return Array(Const(v, unsigned(max(1, bits_for(max(values))))) for v in values)

        ly, hy = (table(t)[y_q] for t in window_ranges(H, Ho, self.kernel, self.stride, self.padding))
        lx, hx = (table(t)[x_q] for t in window_ranges(W, Wo, self.kernel, self.stride, self.padding))

        s1_valid = Signal()
        s1_addr = Signal(range(self.n_out))
        s1_v = Signal(vb)
        running = Signal()                 # the current event's windows are being issued
        last = (px == pxh) & (py == pyh)
        take = Signal()                    # the waiting event becomes the current one
        m.d.comb += take.eq(r0_valid & r0_ev & (~running | last))
        m.d.sync += s1_valid.eq(0)
        with m.If(running):
            addr = const_mul(c, Ho * Wo) + const_mul(py, Wo) + px
            m.d.comb += acc.r_addr.eq(addr)
            m.d.sync += [s1_valid.eq(1), s1_addr.eq(addr), s1_v.eq(val)]
            with m.If(~last):
                with m.If(px == pxh):
                    m.d.sync += [px.eq(pxl), py.eq(py + 1)]
                with m.Else():
                    m.d.sync += px.eq(px + 1)
            with m.Else():
                m.d.sync += running.eq(0)
        with m.If(take):
            m.d.sync += [c.eq(c_q), val.eq(r0_v), r0_ev.eq(0),
                         py.eq(ly), pyh.eq(hy), px.eq(lx), pxl.eq(lx), pxh.eq(hx),
                         running.eq((ly <= hy) & (lx <= hx))]
            with m.If(~r0_end):
                m.d.sync += r0_valid.eq(0)
        # stage 1: the element's value is here; keep the max and write it back
        m.d.comb += [acc.w_addr.eq(s1_addr), acc.w_en.eq(s1_valid),
                     acc.w_data.eq(Mux(s1_v > acc.r_data, s1_v, acc.r_data))]
        # an end marker (alone, or after the frame's last pixel) waits for the last write and
        # for the previous sweep, then hands the bank over
        with m.If(r0_valid & ~r0_ev & r0_end & ~running & ~s1_valid & ~busy):
            m.d.comb += start.eq(1)
            m.d.sync += [r0_valid.eq(0), r0_end.eq(0)]
        accept = Signal()
        m.d.comb += [inp.ready.eq(~banks.clearing & (~r0_valid | (take & ~r0_end))),
                     accept.eq(inp.valid & inp.ready)]
        with m.If(accept):
            if self.direct:
                m.d.sync += pix.eq(Mux(in_end, 0, pix + 1))
            m.d.sync += [r0_n.eq(in_row), r0_v.eq(in_v), r0_ev.eq(in_ev), r0_end.eq(in_end),
                         r0_valid.eq(in_ev | in_end)]

        # ---- sweep: element rd_addr's value is on swp.r_data while rd_valid
        sweeping = Signal()                # reads still to issue
        end_owed = Signal()                # an event frame's end marker is still to send
        ptr = Signal(range(self.n_out))
        rd_valid = Signal()
        rd_addr = Signal(range(self.n_out))
        nonzero = Signal()
        m.d.comb += [nonzero.eq(swp.r_data != 0), busy.eq(sweeping | rd_valid | end_owed)]
        done = Signal()                    # element rd_addr is finished this cycle
        with m.If(rd_valid):
            if self.direct:
                m.d.comb += [o.valid.eq(1), o.payload.eq(swp.r_data)]
            else:
                m.d.comb += [o.valid.eq(nonzero), o.payload.neuron.eq(rd_addr),
                             o.payload.time.eq((T - swp.r_data)[:len(o.payload.time)])]
            m.d.comb += done.eq(~o.valid | o.ready)
        if not self.direct:
            with m.Elif(end_owed & ~sweeping):
                m.d.comb += [o.valid.eq(1), o.payload.end.eq(1)]
                with m.If(o.ready):
                    m.d.sync += end_owed.eq(0)
        hold = rd_valid & ~done            # the output stalls: read element rd_addr again
        m.d.comb += swp.r_addr.eq(Mux(hold, rd_addr, ptr))
        with m.If(done):                   # cleared for the frame after next
            m.d.comb += [swp.w_addr.eq(rd_addr), swp.w_data.eq(0), swp.w_en.eq(1)]
        with m.If(~hold):
            m.d.sync += [rd_valid.eq(sweeping), rd_addr.eq(ptr)]
            with m.If(sweeping):
                with m.If(ptr == self.n_out - 1):
                    m.d.sync += [ptr.eq(0), sweeping.eq(0)]
                with m.Else():
                    m.d.sync += ptr.eq(ptr + 1)
        with m.If(start):
            m.d.sync += [sweeping.eq(1), ptr.eq(0), end_owed.eq(not self.direct)]
        return m


def maxpool_stage(net: Network, index: int) -> MaxPoolStage:
    """The stage for ``maxpool2d`` layer ``index`` of ``net``: pixels when nothing but max
    pools lies between it and direct input, else events."""
    layer: Layer = net.layers[index]
    if layer.kind != "maxpool2d":
        raise ValueError(f"layer {index} is {layer.kind!r}, not 'maxpool2d'")
    j = net.sources(index)[0]              # follow the graph through other max pools
    while j != INPUT and net.layers[j].kind == "maxpool2d":
        j = net.sources(j)[0]
    direct = net.input.input_coding == "direct" and j == INPUT
    return MaxPoolStage(in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                        padding=layer.padding, timesteps=net.timesteps,
                        pixel_shape=pixel_shape(net.input.bits, net.input.signed) if direct else None)
