# amaranth: UnusedElaboratable=no
# (the memories and sub-components made in __init__ are used exactly when their owner is)
"""The part every layer core (dense, conv2d) shares: weights, double-banked partial sums, event decode.

Decode is event driven: an incoming event ``(i, t, kind)`` reads column ``W[:, i]`` of the
weight memory ``lanes`` weights per word and adds it into partial-sum word
``P[bank][slot][g]`` (``slot = kind*T + t`` for (SC-)TTFS, one slot for rate, where a batch is
one step), one word per cycle: a three-stage read-modify-write pipeline over the group index
``g`` (:class:`DecodePipeline`). A first layer fed direct pixels multiplies each weight by the
pixel (one multiplier per lane) instead.

A conv2d layer, and any layer fed through a sum pool, decodes through :class:`WindowDecode`
instead: the event's flat C-order index is split into ``(c, y, x)``, sum pooling (an address
remap: the event counts at every pooled position whose window covers it) and the convolution
taps (every ``(ky, kx)`` whose output position is integral and in range) are enumerated from
per-axis ``[lo, hi]`` tables, and each tap adds the ``groups`` words of ``W[g, c, ky, kx]``
(``lanes`` output channels a word) into partial-sum word ``(slot, oy, ox, g)``. Flatten is the
identity on C-order indices. A conv layer's partial sums are ``positions × groups`` words per
slot (``positions = Ho·Wo``), and its neuron ``j = co·positions + position``, the C order the
next layer and the reference use.

The partial sums live in two memories (:class:`PartialSumBanks`). The decode side fills bank
``dbank`` while the layer's encode side (a subclass of :class:`DenseLayerBase`:
:mod:`.layer_ttfs`, :mod:`.layer_rate`) reads, uses and clears the other; an end marker hands the
filled bank over as soon as the encode side is idle, so decoding frame f+1 (or step t+1)
overlaps encoding frame f (step t).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2, exact_log2

from snnfpga.errors import BadOption, Unsupported
from snnfpga.ir import INPUT, Layer, Network, weighted_layers

from .description import Multiplier
from .events import event_signature, index_bits, pixel_shape, result_signature, time_bits
from .luts import const_divmod, const_mul, pack_words, window_ranges

__all__ = ["DenseLayerBase", "LayerCore", "PartialSumBanks", "DecodePipeline", "WindowDecode", "check_lanes",
           "check_supported", "source_neuron", "wiring_before", "DECODES", "check_decode", "decode_lut",
           "resolve_decode", "producer", "add_decode_mode", "BranchDecode"]


def check_lanes(lanes: object) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes <= 0:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    return lanes


def _check_count(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _wiring_indices(net: Network, index: int) -> list[int]:
    """IR indices of the flattens and sum pools between layer ``index`` and its stream."""
    out: list[int] = []
    j = net.sources(index)[0]
    while j != INPUT and net.layers[j].kind in ("flatten", "avgpool2d"):
        out.insert(0, j)
        j = net.sources(j)[0]
    return out


def wiring_before(net: Network, index: int) -> list[Layer]:
    """The weightless layers (flatten, avgpool2d) that layer ``index``'s decode remaps, in
    order: those between it and the stream it reads (:func:`producer`), found by following
    ``net.sources`` (a graph) back to the input, a spiking layer or a ``maxpool2d``. A max
    pool is a stage of its own (:mod:`.layer_maxpool`) that sends pooled indices, so the
    consumer sees the pooled shape."""
    return [net.layers[j] for j in _wiring_indices(net, index)]


def producer(net: Network, index: int) -> int:
    """The stream layer ``index`` reads: ``INPUT`` (pixels or the input encoder's events), a
    spiking layer (weighted with a neuron, or ``add``) or a ``maxpool2d``; the flattens and
    sum pools in between are address remaps in the reader's decode (:func:`wiring_before`)."""
    j = net.sources(index)[0]
    while j != INPUT and net.layers[j].kind in ("flatten", "avgpool2d"):
        j = net.sources(j)[0]
    return j


def add_decode_mode(net: Network, branch: int, decode: str) -> str:
    """Where branch ``branch`` of an add scales its input spikes: ``"none"`` (rate, direct
    pixels) or ``"arrival"``. Each branch's source has its own decode LUT and the two share
    one membrane, so per-(kind, t) slots cannot hold both; ``"auto"`` means ``"arrival"``
    here and ``"slots"`` is refused (:class:`Unsupported` naming the add)."""
    mode = resolve_decode(net, branch, decode)
    if mode == "slots":
        if decode == "slots":
            add = net.branch_of(branch)
            raise Unsupported(f"rtl_gen builds add layer {add} (a residual add) with decode='arrival' only "
                              f"(each branch's source has its own decode LUT); layer {branch} is one of its "
                              f"branches: use decode='arrival' or 'auto'")
        return "arrival"
    return mode


def check_supported(net: Network, decode: str = "auto") -> None:
    """Dense and conv2d layers, with flatten and at most one avgpool2d between a weighted layer
    and the stream it reads; the output layer is dense or a conv2d with one output position
    (its result beats leave in channel order). ``maxpool2d`` (TTFS only, where the IR puts it:
    after a spiking stage, unsigned direct pixels or another max pool) is a stage of its own.
    Graphs: ``add`` (residual) layers in every coding, with ``decode`` ``"auto"`` or
    ``"arrival"`` for (SC-)TTFS; in rate coding no branch may read direct pixels (their
    current is decoded once per frame, the other branch's once per step)."""
    wl = weighted_layers(net)
    for i, layer in enumerate(net.layers):
        if layer.kind not in ("dense", "conv2d", "flatten", "avgpool2d", "maxpool2d", "add"):
            raise Unsupported(f"rtl_gen does not support layer {i} ({layer.kind!r})")
        if layer.kind == "maxpool2d" and net.coding != "ttfs":
            raise Unsupported(f"rtl_gen builds maxpool2d in ttfs coding only; layer {i} ('maxpool2d') "
                              f"is in {net.coding!r}")
        pools = [j for j in _wiring_indices(net, i) if net.layers[j].kind == "avgpool2d"] if layer.weighted else []
        if len(pools) > 1:
            raise Unsupported(f"rtl_gen supports one avgpool2d between weighted layers; layer {pools[1]} is a second one")
        if layer.kind == "conv2d" and layer is wl[-1] and layer.n_out != layer.out_shape[0]:
            raise Unsupported(f"rtl_gen supports a conv2d output layer with one output position only; layer {i} "
                              f"(the output layer) is 'conv2d' with output shape {list(layer.out_shape)}")
        if layer.kind == "add":
            for j in net.sources(i):
                if net.coding == "rate" and source_neuron(net, j) is None:
                    raise Unsupported(f"rtl_gen does not build add layer {i} in rate coding with a branch fed "
                                      f"direct pixels (layer {j}): that branch's current is decoded once per "
                                      "frame, the other's once per step")
                add_decode_mode(net, j, decode)


def source_neuron(net: Network, index: int):
    """The neuron whose spikes feed layer ``index`` (None: direct pixels), found by following
    ``net.sources`` through weightless layers (a max pool forwards its source's spikes)."""
    j = net.sources(index)[0]
    while j != INPUT and not (net.layers[j].weighted or net.layers[j].kind == "add"):
        j = net.sources(j)[0]
    if j != INPUT:
        return net.layers[j].neuron
    if net.input.input_coding == "spikes":
        return net.input.neuron
    return None


def power_of_two_shifts(values) -> list[int | None] | None:
    """``log2`` of each value (None for 0) when all are 0 or powers of two, else None."""
    out = []
    for v in values:
        if v == 0:
            out.append(None)
        elif v > 0 and v & (v - 1) == 0:
            out.append(exact_log2(v))
        else:
            return None
    return out


def lane(word: Value, k: int, width: int) -> Value:
    return word[k * width:(k + 1) * width].as_signed()


#: values of the generator's ``decode`` option (docs/hardware.md, "Decode scaling")
DECODES = ("auto", "slots", "arrival")
#: entries of a direct first layer's queue of non-zero pixels (DecodePipeline): enough to ride
#: out most runs of zero pixels between strokes, small enough to stay in logic
PIXEL_QUEUE = 4


def check_decode(decode: object) -> str:
    """``decode`` if it is one of :data:`DECODES`; :class:`BadOption` otherwise."""
    if not isinstance(decode, str) or decode not in DECODES:
        raise BadOption(f"decode must be one of {', '.join(DECODES)}, not {decode!r}")
    return decode


def decode_lut(net: Network, index: int) -> list[int] | None:
    """The decode LUT of the spikes feeding (SC-)TTFS layer ``index``, indexed by ``kind·T + t``
    (``dec_enc``, then ``dec_cal`` after a calibrated source); None where nothing is scaled
    (rate coding, direct pixels)."""
    src = source_neuron(net, index)
    if src is None or net.coding == "rate":
        return None
    return [int(v) for v in src.dec_enc] + ([int(v) for v in src.dec_cal] if src.calibrated else [])


def resolve_decode(net: Network, index: int, decode: str) -> str:
    """Where layer ``index`` applies its decode LUT: ``"none"`` (no LUT: rate coding, direct
    pixels), ``"slots"`` (per-(kind, t) partial sums, scaled on the encode side) or
    ``"arrival"`` (each weight scaled as its event arrives, one partial sum).

    ``"auto"`` is ``"arrival"``: it costs the same number of multipliers (one per lane, none
    when the LUT is 0 and powers of two) and narrower ones (weight × decode value instead of
    partial sum × decode value), keeps one partial sum per neuron and bank instead of ``T`` or
    ``2T`` and reads one word per neuron on encode instead of one per slot (measured in
    docs/hardware.md, "Decode scaling": 15 instead of 23 iCE40 block RAMs and 3 instead of 5
    DSPs for the digits CNN, 7-8 % lower latency, the same frame interval).
    """
    check_decode(decode)
    if decode_lut(net, index) is None:
        return "none"
    return "arrival" if decode == "auto" else decode


def input_beat(inp, *, direct: bool, n_in: int, slots: int, timesteps: int,
               decs: list[int] | None = None):
    """What an input beat means to a decode pipeline: ``(pix, row, slot, is_event, is_end, x)``.

    Direct pixels: ``pix`` counts the frame's pixels (the caller advances it), a non-zero pixel
    is an event, the last pixel ends the frame, ``x`` is the pixel. Events: the neuron index,
    the partial-sum slot (``kind*T + t`` after a calibrated source, ``t`` after TTFS, 0 for rate
    or with scaling on arrival) and the end marker. Scaling on arrival (``decs``, the decode LUT
    indexed by ``kind*T + t``): ``x`` is the event's ``dec`` value, or its LUT index when every
    entry is 0 or a power of two (:func:`scale_weight` shifts by it); an event whose ``dec`` is
    0 adds nothing and is no event. Otherwise ``x`` is None.
    """
    if direct:
        pix = Signal(range(n_in))
        return pix, pix, 0, inp.payload != 0, pix == n_in - 1, inp.payload
    p = inp.payload
    if decs is not None:
        lut_idx = (Mux(p.kind, timesteps, 0) + p.time) if len(decs) > timesteps else p.time
        nonzero = Array(Const(int(v != 0), 1) for v in decs)[lut_idx]
        if power_of_two_shifts(decs) is not None:
            x = lut_idx[:max(1, bits_for(len(decs) - 1))]
        else:
            x = Array(Const(v, arrival_shape(decs)) for v in decs)[lut_idx]
        return None, p.neuron, 0, ~p.end & nonzero, p.end, x
    if slots == 1:
        slot = 0
    elif slots > timesteps:  # calibrated source: slot = kind*T + t
        slot = Mux(p.kind, timesteps, 0) + p.time
    else:
        slot = p.time
    return None, p.neuron, slot, ~p.end, p.end, None


def arrival_shape(decs: list[int]) -> Shape:
    """The shape of the ``dec`` value a weight is multiplied by when scaling on arrival."""
    return unsigned(max(1, bits_for(max(decs))))


def decode_products(*, lanes: int, weight_bits: int, pixel_shape, decs: list[int] | None,
                    shifts: list[int | None] | None) -> tuple[Multiplier, ...]:
    """The decode side's multipliers (:func:`scale_weight`): one ``W·x`` per lane for direct
    pixels or a ``dec`` LUT that is not powers of two, none otherwise."""
    if pixel_shape is not None:
        x = Shape.cast(pixel_shape)
    elif decs is not None and shifts is None:
        x = arrival_shape(decs)
    else:
        return ()
    return (Multiplier.of(signed(weight_bits), x, lanes),)


def scale_weight(wk: Value, x: Value | None, shifts: list[int | None] | None) -> Value:
    """A weight as a decode stage adds it: ``wk`` alone (``x`` None), ``wk·x`` (a pixel or a
    ``dec`` value: one multiplier), or, with ``shifts`` (the ``log2`` of each LUT entry, None
    for 0; ``x`` the LUT index), ``wk << shifts[x]`` as a constant-shift mux (no multiplier).
    Every result is exact (full width); the caller truncates the sum to ``acc_bits``."""
    if x is None:
        return wk
    if shifts is None:
        return wk * x
    width = len(wk) + max((sh for sh in shifts if sh is not None), default=0)
    return Array(Const(0, signed(width)) if sh is None else (wk << sh).as_signed() for sh in shifts)[x]


def add_weight_words(m: Module, *, weights, psum, x: Value | None, s1_valid: Value, s1_addr: Value,
                     s2_valid: Signal, s2_addr: Signal, lanes: int, weight_bits: int, acc_bits: int,
                     shifts: list[int | None] | None = None) -> None:
    """The last two decode stages, shared by :class:`DecodePipeline` and :class:`WindowDecode`.

    Stage 1: the weight word is here; each lane's weight, scaled by ``x`` (:func:`scale_weight`:
    the pixel of a direct first layer, or the event's ``dec`` value or LUT index when scaling
    on arrival), is registered while the partial-sum word is read. Stage 2: add and write back
    (the sum is exact in ``acc_bits``: snnfpga.ir.bounds bounds every partial sum).
    """
    prods = []
    for k in range(lanes):
        wk = lane(weights.data, k, weight_bits)
        value = scale_weight(wk, x, shifts)
        prod = Signal(value.shape(), name=f"prod{k}")
        m.d.sync += prod.eq(value)
        prods.append(prod)
    m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr)]
    terms = [(lane(psum.r_data, k, acc_bits) + prods[k])[:acc_bits] for k in range(lanes)]
    m.d.comb += [psum.w_addr.eq(s2_addr), psum.w_en.eq(s2_valid), psum.w_data.eq(Cat(*terms))]


class PartialSumBanks(wiring.Component):
    """Two banks of partial-sum words: the decode side fills one, the encode side reads and
    clears the other, and :attr:`swap` exchanges them.

    With ``banks=1`` (half the memory) there is one bank: the encode side owns it while
    :attr:`owner` is high, the decode side otherwise (the layer then decodes nothing while it
    encodes: its decode and encode no longer overlap, which costs nothing in a layer faster than
    the network's busiest one).

    After reset both banks are swept to zero, one word per cycle (memories have no reset), so a
    reset in the middle of a frame leaves no stale partial sums behind; :attr:`clearing` is high
    meanwhile and the decode side must accept nothing.

    Parameters
    ----------
    width : int
        Bits of a word (``lanes × acc_bits``).
    depth : int
        Words per bank (``slots × groups``).
    banks : int
        2 (double-banked) or 1.

    Attributes
    ----------
    banks : tuple of :class:`~amaranth.lib.memory.Memory`
        Submodules ``bank0`` and ``bank1`` (``bank0`` alone with ``banks=1``).

    Members
    -------
    decode : ``Out(PartialSumBanks.PortSignature(addr_width=ceil_log2(depth), width=width))``
        Read and write port into the decode bank.
    encode : ``Out(PartialSumBanks.PortSignature(addr_width=ceil_log2(depth), width=width))``
        Read and write port into the other bank.
    swap : ``In(1)``
        The banks exchange roles at the next clock edge.
    owner : ``In(1)``
        ``banks=1``: the encode side uses the bank (ignored with two banks).
    clearing : ``Out(1, init=1)``
        The banks are being swept to zero (from reset on, ``depth`` cycles).
    """

    class PortSignature(wiring.Signature):
        """One bank as seen by a user: a read port (data one cycle after the address,
        transparent to the same bank's write port) and a write port.

        Members
        -------
        r_addr : ``In(addr_width)``
        r_data : ``Out(width)``
        w_addr : ``In(addr_width)``
        w_data : ``In(width)``
        w_en : ``In(1)``
        """

        def __init__(self, *, addr_width: int, width: int):
            _check_count("addr_width", addr_width, 0)
            _check_count("width", width)
            self._addr_width, self._width = addr_width, width
            super().__init__({"r_addr": In(addr_width), "r_data": Out(width),
                              "w_addr": In(addr_width), "w_data": In(width), "w_en": In(1)})

        @property
        def addr_width(self) -> int:
            return self._addr_width

        @property
        def width(self) -> int:
            return self._width

        def __eq__(self, other):
            return (type(self) is type(other) and self.addr_width == other.addr_width
                    and self.width == other.width)

        def __repr__(self):
            return f"PartialSumBanks.PortSignature(addr_width={self.addr_width}, width={self.width})"

    def __init__(self, *, width: int, depth: int, banks: int = 2):
        _check_count("width", width)
        _check_count("depth", depth)
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self.width, self.depth = width, depth
        self.banks = tuple(Memory(shape=unsigned(width), depth=depth, init=[]) for _ in range(banks))
        self._ports = []
        for mem in self.banks:
            wp = mem.write_port()
            self._ports.append((mem.read_port(transparent_for=(wp,)), wp))
        port = self.PortSignature(addr_width=ceil_log2(depth), width=width)
        super().__init__({"decode": Out(port), "encode": Out(port), "swap": In(1), "owner": In(1),
                          "clearing": Out(1, init=1)})

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        """``(submodule path, role, memory)`` of each bank."""
        return tuple((f"bank{b}", "partial_sums", mem) for b, mem in enumerate(self.banks))

    def elaborate(self, platform) -> Module:
        m = Module()
        for b, mem in enumerate(self.banks):
            m.submodules[f"bank{b}"] = mem
        dec, enc = self.decode, self.encode
        dbank = Signal()
        if len(self.banks) == 1:           # one bank: whoever owns it
            (rp0, _), = self._ports
            m.d.comb += [dec.r_data.eq(rp0.data), enc.r_data.eq(rp0.data), dbank.eq(self.owner)]
        else:
            (rp0, _), (rp1, _) = self._ports
            with m.If(self.swap):
                m.d.sync += dbank.eq(~dbank)
            m.d.comb += [dec.r_data.eq(Mux(dbank, rp1.data, rp0.data)),
                         enc.r_data.eq(Mux(dbank, rp0.data, rp1.data))]
        for b, (rp, wp) in enumerate(self._ports):
            mine = dbank == b
            m.d.comb += [rp.addr.eq(Mux(mine, dec.r_addr, enc.r_addr)),
                         wp.addr.eq(Mux(mine, dec.w_addr, enc.w_addr)),
                         wp.data.eq(Mux(mine, dec.w_data, enc.w_data)),
                         wp.en.eq(Mux(mine, dec.w_en, enc.w_en))]
        clr = Signal(range(self.depth))
        with m.If(self.clearing):
            for _rp, wp in self._ports:
                m.d.comb += [wp.addr.eq(clr), wp.data.eq(0), wp.en.eq(1)]
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == self.depth - 1):
                m.d.sync += [self.clearing.eq(0), clr.eq(0)]
        return m


def _check_arrival(decs, *, slots: int, timesteps: int, direct: bool):
    """``(decs, shifts)`` of a decode pipeline that scales on arrival (see :class:`DecodePipeline`)."""
    if decs is None:
        return None, None
    decs = [int(v) for v in decs]
    if direct or slots != 1 or len(decs) not in (timesteps, 2 * timesteps) or min(decs) < 0:
        raise ValueError(f"scaling on arrival needs events, one slot and T or 2T non-negative LUT entries, "
                         f"not decs={decs!r} with slots={slots!r}, timesteps={timesteps!r}, direct={direct!r}")
    return decs, power_of_two_shifts(decs)


class DecodePipeline(wiring.Component):
    """Event decode: each input beat adds one weight column into the decode bank.

    An event ``(i, t, kind)``, or non-zero pixel ``x`` number ``i`` of a first layer fed direct
    pixels, reads the ``groups`` words of column ``W[:, i]`` (``lanes`` weights a word) and adds
    each (times ``x`` for a pixel) into partial-sum word ``slot·groups + g``, one word per cycle
    through three stages: weight read; product registered and partial-sum read; add and write.
    Beats that add nothing (zero pixels) are taken while an event's words are issued, so they
    cost no cycle of their own. Direct pixels go through :attr:`queue` first: a zero pixel is
    dropped as it arrives and a non-zero one (or the frame's last) waits there with its index,
    so a run of zero pixels longer than one pixel's words keeps streaming in while the words of
    the pixels before it issue.
    Back-to-back updates of one word are safe because the bank's read port is transparent to
    its write port. An end marker (or a frame's last pixel) waits until the pipeline is empty
    and the encode side idle, then pulses :attr:`start`.

    Parameters
    ----------
    n_in : int
        Input neurons (or pixels): weight columns.
    groups : int
        Weight words per column, ``ceil(n_out / lanes)``.
    slots : int
        Partial sums per neuron and bank: 1 (one batch), ``timesteps`` (slot ``t``) or
        ``2 × timesteps`` (slot ``kind·T + t``, a calibrated source).
    timesteps : int
    lanes, weight_bits, acc_bits : int
        Weights (partial sums) per word, and the bits of each.
    pixel_shape : shape-like or None
        The pixels of a first layer fed direct pixels (``W·x``, one multiplier per lane), or
        None for events.
    decs : list of int or None
        Scaling on arrival: the decode LUT (indexed by ``kind·T + t``) each event's weights are
        multiplied by (shifted by, when every entry is 0 or a power of two) before they are
        added into the single slot (``slots`` must be 1); None: weights are added as they are.

    Attributes
    ----------
    products : tuple of :class:`~.description.Multiplier`
        Hardware multipliers (:func:`decode_products`): ``lanes`` for pixel input or a
        non-power-of-two ``decs``, else none.
    queue : Memory or None
        Direct pixels: :data:`PIXEL_QUEUE` entries of (pixel, index, last), read asynchronously
        (logic, not block RAM); None for events.

    Members
    -------
    i_stream : ``In(stream.Signature(pixel_shape))`` or ``In(event_signature(...))``
        Input beats.
    weights : ``In(ReadPort.Signature(addr_width=ceil_log2(n_in·groups), shape=unsigned(lanes·weight_bits)))``
        Read port of the weight memory (column-major, ``groups`` words a column).
    psum : ``In(PartialSumBanks.PortSignature(addr_width=ceil_log2(slots·groups), width=lanes·acc_bits))``
        The decode bank.
    hold : ``In(1)``
        Accept nothing (the banks are being cleared).
    busy : ``In(1)``
        The encode side is busy: a hand-over waits.
    start : ``Out(1)``
        Hand-over: the decode bank holds a complete batch and becomes the encode bank.
    """

    def __init__(self, *, n_in: int, groups: int, slots: int, timesteps: int, lanes: int,
                 weight_bits: int, acc_bits: int, pixel_shape=None, decs: list[int] | None = None):
        for name, value in (("n_in", n_in), ("groups", groups), ("timesteps", timesteps),
                            ("lanes", lanes), ("weight_bits", weight_bits), ("acc_bits", acc_bits)):
            _check_count(name, value)
        if slots not in (1, timesteps, 2 * timesteps):
            raise ValueError(f"slots must be 1, timesteps or 2 × timesteps, not {slots!r}")
        self.n_in, self.groups, self.slots, self.T = n_in, groups, slots, timesteps
        self.lanes, self.wb, self.ab = lanes, weight_bits, acc_bits
        self.direct = pixel_shape is not None
        self.decs, self.shifts = _check_arrival(decs, slots=slots, timesteps=timesteps, direct=self.direct)
        self.products = decode_products(lanes=lanes, weight_bits=weight_bits, pixel_shape=pixel_shape,
                                        decs=self.decs, shifts=self.shifts)
        self.queue = None
        if self.direct:
            i_sig = stream.Signature(Shape.cast(pixel_shape))
            self.queue = Memory(shape=unsigned(Shape.cast(pixel_shape).width + index_bits(n_in) + 1),
                                depth=PIXEL_QUEUE, init=[])
            # ports made here, so a description (which never elaborates) sees a written memory
            self._queue_ports = (self.queue.write_port(), self.queue.read_port(domain="comb"))
        else:
            i_sig = event_signature(index_bits(n_in), time_bits(timesteps))
        super().__init__({
            "i_stream": In(i_sig),
            "weights": In(ReadPort.Signature(addr_width=ceil_log2(n_in * groups),
                                             shape=unsigned(lanes * weight_bits))),
            "psum": In(PartialSumBanks.PortSignature(addr_width=ceil_log2(slots * groups),
                                                     width=lanes * acc_bits)),
            "hold": In(1), "busy": In(1), "start": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        L, G, S, T, ab, wb = self.lanes, self.groups, self.slots, self.T, self.ab, self.wb
        depth = S * G
        inp = self.i_stream
        row = Signal(range(self.n_in))
        slot = Signal(range(S))
        g = Signal(range(G))
        pend_end = Signal()
        s1_valid = Signal()
        s1_addr = Signal(range(depth))
        s2_valid = Signal()
        s2_addr = Signal(range(depth))
        if self.direct:
            inp = self._pixel_queue(m)
            in_x = inp.payload.x
            in_row, in_slot, in_ev, in_end = inp.payload.row, 0, in_x != 0, inp.payload.last
        else:
            _, in_row, in_slot, in_ev, in_end, in_x = input_beat(inp, direct=False, n_in=self.n_in,
                                                                 slots=S, timesteps=T, decs=self.decs)
        scaled = in_x is not None
        if scaled:                         # the pixel, or the event's dec value / LUT index
            x = Signal(in_x.shape(), name="x")
            s1_x = Signal(in_x.shape(), name="s1_x")

        m.d.comb += [self.weights.addr.eq(const_mul(row, G) + g), self.psum.r_addr.eq(s1_addr)]
        m.d.sync += s1_valid.eq(0)
        accept = Signal()
        m.d.comb += accept.eq(inp.valid & inp.ready)
        IDLE, RUN, WAIT = range(3)
        state = Signal(range(3))
        with m.Switch(state):
            with m.Case(IDLE):
                m.d.comb += inp.ready.eq(~self.hold)
            with m.Case(RUN):
                # the next event waits for the last word; a beat that adds nothing (a zero
                # pixel, an event whose dec is 0) is taken meanwhile
                m.d.comb += inp.ready.eq(((g == G - 1) | ~in_ev) & ~pend_end)
                m.d.sync += [s1_valid.eq(1), s1_addr.eq(const_mul(slot, G) + g), g.eq(g + 1)]
                if scaled:
                    m.d.sync += s1_x.eq(x)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), state.eq(Mux(pend_end, WAIT, IDLE))]
            with m.Case(WAIT):
                with m.If(~self.busy & ~s1_valid & ~s2_valid):
                    m.d.comb += self.start.eq(1)
                    m.d.sync += state.eq(IDLE)
        with m.If(accept):
            with m.If(in_ev):
                m.d.sync += [row.eq(in_row), slot.eq(in_slot), g.eq(0), pend_end.eq(in_end),
                             state.eq(RUN)]
                if scaled:
                    m.d.sync += x.eq(in_x)
            with m.Elif(in_end & (state == RUN) & (g != G - 1)):
                m.d.sync += pend_end.eq(1)   # after the running event's last word
            with m.Elif(in_end):
                m.d.sync += state.eq(WAIT)
        # stage 1: the weight word is here (scaled by the pixel or dec value, registered) and the
        # partial-sum word is read; stage 2: add and write back
        add_weight_words(m, weights=self.weights, psum=self.psum, x=s1_x if scaled else None,
                         s1_valid=s1_valid, s1_addr=s1_addr, s2_valid=s2_valid, s2_addr=s2_addr,
                         lanes=L, weight_bits=wb, acc_bits=ab, shifts=self.shifts)
        return m

    def _pixel_queue(self, m: Module):
        """The queue of direct pixels that add something (see the class doc): its read side, a
        stream of (``x``, ``row``, ``last``) the decode takes like events."""
        inp, n_in, Q = self.i_stream, self.n_in, PIXEL_QUEUE
        entry = data.StructLayout({"x": inp.payload.shape(), "row": unsigned(index_bits(n_in)), "last": 1})
        out = stream.Signature(entry).create()
        m.submodules.queue = self.queue
        wr, rd = self._queue_ports
        pix = Signal(range(n_in))
        level = Signal(range(Q + 1))
        produce, consume = Signal(range(Q)), Signal(range(Q))
        last = pix == n_in - 1
        keep = (inp.payload != 0) | last
        m.d.comb += inp.ready.eq(~keep | (level != Q))  # a zero pixel is dropped at once
        push = inp.valid & inp.ready & keep
        pop = out.valid & out.ready
        with m.If(inp.valid & inp.ready):
            m.d.sync += pix.eq(Mux(last, 0, pix + 1))
        entry_in = Signal(entry)  # by field: pix is narrower than the row field when n_in == 1
        m.d.comb += [entry_in.x.eq(inp.payload), entry_in.row.eq(pix), entry_in.last.eq(last),
                     wr.addr.eq(produce), wr.data.eq(entry_in), wr.en.eq(push),
                     rd.addr.eq(consume), out.valid.eq(level != 0), out.payload.eq(rd.data)]
        m.d.sync += level.eq(level + push - pop)
        with m.If(push):
            m.d.sync += produce.eq(Mux(produce == Q - 1, 0, produce + 1))
        with m.If(pop):
            m.d.sync += consume.eq(Mux(consume == Q - 1, 0, consume + 1))
        return out


class WindowDecode(wiring.Component):
    """Event decode through a window: sum pooling (an address remap) and/or a convolution.

    An incoming event (or non-zero pixel) has the flat C-order index ``n`` of a source of shape
    ``src_shape = (C, H, W)``: ``n = (c·H + y)·W + x``. Through an optional sum pool (``pool``)
    it is an event at every pooled position ``(c, py, px)`` whose window covers ``(y, x)``
    (level A); a convolution consumer (``conv``) then updates, for every kernel tap whose output
    position ``oy = (py + p - ky)/s``, ``ox = (px + p - kx)/s`` is integral and in range (level
    B, enumerated directly from per-axis ``[lo, hi]`` tables, so borders and stride cost
    nothing), the ``groups`` words of weight ``W[g, c, ky, kx]`` (``lanes`` output channels a
    word) into partial-sum word ``slot·positions·groups + (oy·Wo + ox)·groups + g``. A dense
    consumer after a pool reads column ``(c·Hp + py)·Wp + px``. One word per cycle through the
    same three-stage read-modify-write pipeline as :class:`DecodePipeline`. The next beat waits
    in a register; in the cycle the current event issues its last word it is decomposed
    (constant-reciprocal multiplications, no divider), its ranges are looked up and it becomes
    the current event, so events follow each other without a gap (an event none of whose
    positions is in range costs one cycle). An end marker (or the frame's last pixel) hands the
    bank over like there, once the last write is done and the encode side is idle.

    Parameters
    ----------
    src_shape : (int, int, int)
        Shape of the incoming events' source.
    pool : (kernel, stride, padding, out_h, out_w) or None
    conv : (kernel, stride, padding, out_h, out_w) or None
        At least one of them.
    weight_depth : int
        Words of the weight memory.
    groups, slots, timesteps, lanes, weight_bits, acc_bits, pixel_shape, decs
        As for :class:`DecodePipeline`.

    Members are those of :class:`DecodePipeline` (``i_stream`` indices into ``src_shape``).
    """

    def __init__(self, *, src_shape, pool, conv, weight_depth: int, groups: int, slots: int, timesteps: int,
                 lanes: int, weight_bits: int, acc_bits: int, pixel_shape=None, decs: list[int] | None = None):
        if pool is None and conv is None:
            raise ValueError("a window decode needs a pool or a conv (use DecodePipeline)")
        for name, value in (("groups", groups), ("timesteps", timesteps), ("lanes", lanes),
                            ("weight_bits", weight_bits), ("acc_bits", acc_bits), ("weight_depth", weight_depth)):
            _check_count(name, value)
        if slots not in (1, timesteps, 2 * timesteps):
            raise ValueError(f"slots must be 1, timesteps or 2 × timesteps, not {slots!r}")
        self.src_shape = tuple(int(v) for v in src_shape)
        self.pool, self.conv = pool, conv
        C, H, W = self.src_shape
        self.n_in = C * H * W
        self.positions = conv[3] * conv[4] if conv is not None else 1
        self.groups, self.slots, self.T = groups, slots, timesteps
        self.lanes, self.wb, self.ab = lanes, weight_bits, acc_bits
        self.direct = pixel_shape is not None
        self.decs, self.shifts = _check_arrival(decs, slots=slots, timesteps=timesteps, direct=self.direct)
        self.products = decode_products(lanes=lanes, weight_bits=weight_bits, pixel_shape=pixel_shape,
                                        decs=self.decs, shifts=self.shifts)
        if self.direct:
            i_sig = stream.Signature(Shape.cast(pixel_shape))
        else:
            i_sig = event_signature(index_bits(self.n_in), time_bits(timesteps))
        super().__init__({
            "i_stream": In(i_sig),
            "weights": In(ReadPort.Signature(addr_width=ceil_log2(weight_depth),
                                             shape=unsigned(lanes * weight_bits))),
            "psum": In(PartialSumBanks.PortSignature(addr_width=ceil_log2(slots * self.positions * groups),
                                                     width=lanes * acc_bits)),
            "hold": In(1), "busy": In(1), "start": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        L, G, S, T, ab, wb = self.lanes, self.groups, self.slots, self.T, self.ab, self.wb
        P = self.positions
        depth = S * P * G
        C, H, W = self.src_shape
        pool, conv = self.pool, self.conv
        inp = self.i_stream
        # R0: the next beat, waiting while the current event's words are issued
        r0_valid, r0_ev, r0_end = Signal(), Signal(), Signal()
        r0_n = Signal(range(self.n_in))
        r0_slot, slot = Signal(range(S)), Signal(range(S))
        s1_valid, s2_valid = Signal(), Signal()
        s1_addr, s2_addr = Signal(range(depth)), Signal(range(depth))
        pix, in_row, in_slot, in_ev, in_end, in_x = input_beat(inp, direct=self.direct, n_in=self.n_in,
                                                               slots=S, timesteps=T, decs=self.decs)
        scaled = in_x is not None
        if scaled:                         # the pixel, or the event's dec value / LUT index
            r0_x, xv = Signal(in_x.shape(), name="r0_x"), Signal(in_x.shape(), name="xv")
            s1_x = Signal(in_x.shape(), name="s1_x")

        # the waiting event's coordinates
        c_q, rem = const_divmod(r0_n, H * W, self.n_in)
        y_q, x_q = const_divmod(rem, W, H * W)
        Hin, Win = (pool[3], pool[4]) if pool is not None else (H, W)
        c = Signal(range(C))
        py, px, pxl = Signal(range(Hin)), Signal(range(Win)), Signal(range(Win))
        pyh, pxh = Signal(range(Hin)), Signal(range(Win))
        g = Signal(range(G))

        def table(values):
            return Array(Const(v, unsigned(max(1, bits_for(max(values))))) for v in values)

        if conv is not None:
            K, cs, cp, Ho, Wo = conv
            oy, oyh = Signal(range(Ho)), Signal(range(Ho))
            ox, oxl, oxh = Signal(range(Wo)), Signal(range(Wo)), Signal(range(Wo))
            b_ok = Signal()
            tlo_y, thi_y = (table(t) for t in window_ranges(Hin, Ho, K, cs, cp))
            tlo_x, thi_x = (table(t) for t in window_ranges(Win, Wo, K, cs, cp))

        def load_b(ny, nx):
            """Enter level B (the taps) at pooled / input position (ny, nx)."""
            m.d.sync += g.eq(0)
            if conv is not None:
                ly, hy, lx, hx = tlo_y[ny], thi_y[ny], tlo_x[nx], thi_x[nx]
                m.d.sync += [oy.eq(ly), oyh.eq(hy), ox.eq(lx), oxl.eq(lx), oxh.eq(hx),
                             b_ok.eq((ly <= hy) & (lx <= hx))]

        # addresses of the current word
        if conv is not None:
            ky, kx = Signal(range(K)), Signal(range(K))
            m.d.comb += [ky.eq(py + cp - const_mul(oy, cs)), kx.eq(px + cp - const_mul(ox, cs))]
            waddr = const_mul(c, K * K * G) + const_mul(ky, K * G) + const_mul(kx, G) + g
            paddr = const_mul(slot, P * G) + const_mul(oy, Wo * G) + const_mul(ox, G) + g
            issue = b_ok
        else:
            waddr = const_mul(c, Hin * Win * G) + const_mul(py, Win * G) + const_mul(px, G) + g
            paddr = const_mul(slot, G) + g
            issue = Const(1, 1)
        last_g = g == G - 1
        last_b = (~b_ok | (last_g & (ox == oxh) & (oy == oyh))) if conv is not None else last_g
        last_a = ((px == pxh) & (py == pyh)) if pool is not None else Const(1, 1)

        m.d.comb += self.psum.r_addr.eq(s1_addr)
        m.d.sync += s1_valid.eq(0)
        running = Signal()                 # words of the current event are being issued
        take = Signal()                    # the waiting event becomes the current one
        m.d.comb += take.eq(r0_valid & r0_ev & (~running | (last_b & last_a)))
        with m.If(running):
            m.d.comb += self.weights.addr.eq(waddr)
            m.d.sync += [s1_valid.eq(issue), s1_addr.eq(paddr)]
            if scaled:
                m.d.sync += s1_x.eq(xv)
            with m.If(~last_b):
                with m.If(~last_g):
                    m.d.sync += g.eq(g + 1)
                with m.Else():
                    m.d.sync += g.eq(0)
                    if conv is not None:
                        with m.If(ox == oxh):
                            m.d.sync += [ox.eq(oxl), oy.eq(oy + 1)]
                        with m.Else():
                            m.d.sync += ox.eq(ox + 1)
            with m.Elif(~last_a):
                wrap = px == pxh
                ny = Mux(wrap, py + 1, py)[:len(py)]
                nx = Mux(wrap, pxl, px + 1)[:len(px)]
                m.d.sync += [py.eq(ny), px.eq(nx)]
                load_b(ny, nx)
            with m.Else():
                m.d.sync += running.eq(0)
        with m.If(take):                   # decompose it and enter its first position
            m.d.sync += [c.eq(c_q), slot.eq(r0_slot), r0_ev.eq(0)]
            if scaled:
                m.d.sync += xv.eq(r0_x)
            with m.If(~r0_end):
                m.d.sync += r0_valid.eq(0)
            if pool is not None:
                kp, sp, pp, Hp, Wp = pool
                ly, hy = (table(t) for t in window_ranges(H, Hp, kp, sp, pp))
                lx, hx = (table(t) for t in window_ranges(W, Wp, kp, sp, pp))
                ly, hy, lx, hx = ly[y_q], hy[y_q], lx[x_q], hx[x_q]
                m.d.sync += [py.eq(ly), pyh.eq(hy), px.eq(lx), pxl.eq(lx), pxh.eq(hx),
                             running.eq((ly <= hy) & (lx <= hx))]
                load_b(ly, lx)
            else:
                m.d.sync += [py.eq(y_q), px.eq(x_q), running.eq(1)]
                load_b(y_q, x_q)
        # an end marker (alone, or after the frame's last pixel was taken) waits for the last
        # write and for the encode side, then hands the bank over
        with m.If(r0_valid & ~r0_ev & r0_end & ~running & ~s1_valid & ~s2_valid & ~self.busy):
            m.d.comb += self.start.eq(1)
            m.d.sync += [r0_valid.eq(0), r0_end.eq(0)]
        accept = Signal()
        m.d.comb += [inp.ready.eq(~self.hold & (~r0_valid | (take & ~r0_end))),
                     accept.eq(inp.valid & inp.ready)]
        with m.If(accept):
            if self.direct:
                m.d.sync += pix.eq(Mux(in_end, 0, pix + 1))
            if scaled:
                m.d.sync += r0_x.eq(in_x)
            m.d.sync += [r0_n.eq(in_row), r0_slot.eq(in_slot), r0_ev.eq(in_ev), r0_end.eq(in_end),
                         r0_valid.eq(in_ev | in_end)]
        add_weight_words(m, weights=self.weights, psum=self.psum, x=s1_x if scaled else None,
                         s1_valid=s1_valid, s1_addr=s1_addr, s2_valid=s2_valid, s2_addr=s2_addr,
                         lanes=L, weight_bits=wb, acc_bits=ab, shifts=self.shifts)
        return m


class DecodeSide:
    """The decode side of weighted layer ``index``: its weight memory (filled from the IR) and
    its decode pipeline (:class:`DecodePipeline`, or :class:`WindowDecode` for conv2d or after
    a sum pool), shared by :class:`DenseLayerBase` and :class:`BranchDecode`.

    Attributes are those :class:`DenseLayerBase` documents (``src``, ``direct``, ``wb``,
    ``decode_mode``, ``decs``, ``shifts``, ``slots``, ``pool``, ``weights``, ``decode``) plus
    ``weights_rp``, the weight memory's read port.
    """

    def __init__(self, net: Network, index: int, *, lanes: int, groups: int, words: int, acc_bits: int,
                 decode_mode: str):
        layer: Layer = net.layers[index]
        self.src = source_neuron(net, index)
        self.direct = self.src is None
        self.wb = layer.weight_bits
        self.decode_mode = decode_mode
        self.decs = decode_lut(net, index)
        self.shifts = power_of_two_shifts(self.decs) if self.decs is not None else None
        # scaling on arrival: every partial sum is a sum of W·dec over a subset of the frame's
        # events, within the membrane range snnfpga.ir.bounds proves for acc_bits (each input's
        # share is W·x with x in {0, dec_enc, dec_cal, dec_enc + dec_cal} ⊂ its input range)
        self.slots = len(self.decs) if decode_mode == "slots" else 1
        pixels = pixel_shape(net.input.bits, net.input.signed)
        pools = [w for w in wiring_before(net, index) if w.kind == "avgpool2d"]
        self.pool = pools[0] if pools else None
        conv = layer.kind == "conv2d"
        w = layer.weight
        rows_of = _lane_rows(groups, lanes)
        if conv:
            ci, k = layer.in_shape[0], layer.kernel
            rows = [row for c in range(ci) for ky in range(k) for kx in range(k)
                    for row in rows_of([int(x) for x in w[:, c, ky, kx]])]
            wdepth = ci * k * k * groups
        else:
            rows = [row for i in range(layer.n_in) for row in rows_of([int(x) for x in w[:, i]])]
            wdepth = layer.n_in * groups
        self.weights = Memory(shape=unsigned(lanes * self.wb), depth=wdepth, init=pack_words(rows, self.wb))
        self.weights_rp = self.weights.read_port()
        common = dict(groups=groups, slots=self.slots, timesteps=net.timesteps, lanes=lanes, weight_bits=self.wb,
                      acc_bits=acc_bits, pixel_shape=pixels if self.direct else None,
                      decs=self.decs if decode_mode == "arrival" else None)
        if not conv and self.pool is None:
            self.decode = DecodePipeline(n_in=layer.n_in, **common)
        else:
            pool = conv_p = None
            if self.pool is not None:
                pl = self.pool
                pool = (pl.kernel, pl.stride, pl.padding, pl.out_shape[1], pl.out_shape[2])
                src_shape = pl.in_shape
            else:
                src_shape = layer.in_shape
            if conv:
                conv_p = (layer.kernel, layer.stride, layer.padding, layer.out_shape[1], layer.out_shape[2])
            self.decode = WindowDecode(src_shape=src_shape, pool=pool, conv=conv_p, weight_depth=wdepth, **common)


def _lane_rows(groups: int, lanes: int):
    def rows(per_neuron: list[int]) -> list[list[int]]:
        padded = list(per_neuron) + [0] * (groups * lanes - len(per_neuron))
        return [padded[g * lanes:(g + 1) * lanes] for g in range(groups)]
    return rows


class BranchDecode(wiring.Component):
    """One branch of a residual ``add`` (a weighted layer without a neuron): the decode side of
    that layer (:class:`DecodeSide`: its weights, window geometry, sum pool, decode LUT
    scaling on arrival) filling its own double-banked partial sums (:class:`PartialSumBanks`),
    whose encode bank the add core reads (summed with the other branch's).

    Parameters
    ----------
    net : Network
    index : int
        The branch's IR index.
    lanes, groups, words, acc_bits : int
        The add core's (both branches have the add's shape and ``acc_bits``).
    decode_mode : str
        ``"none"`` or ``"arrival"`` (:func:`add_decode_mode`).

    Attributes
    ----------
    weights : Memory
        Submodule ``weights``.
    psums : :class:`PartialSumBanks`
        Submodule ``psums`` (``words`` words a bank: one slot).
    decode : :class:`DecodePipeline` or :class:`WindowDecode`
        Submodule ``decode``.

    Members
    -------
    i_stream : ``In(...)``
        The branch's input events (or pixels).
    encode : ``Out(PartialSumBanks.PortSignature(...))``
        The encode bank.
    busy : ``In(1)``
        The next hand-over waits while set.
    start : ``Out(1)``
        One-cycle pulse: the decode bank holds a complete batch and becomes the encode bank.
    """

    def __init__(self, net: Network, index: int, *, lanes: int, groups: int, words: int, acc_bits: int,
                 decode_mode: str):
        if decode_mode not in ("none", "arrival"):
            raise ValueError(f"decode_mode must be 'none' or 'arrival', not {decode_mode!r}")
        self.index = index
        side = DecodeSide(net, index, lanes=lanes, groups=groups, words=words, acc_bits=acc_bits,
                          decode_mode=decode_mode)
        self.decode_mode, self.wb, self.n_in = decode_mode, side.wb, net.layers[index].n_in
        self.weights, self.decode, self._weights_rp = side.weights, side.decode, side.weights_rp
        self.psums = PartialSumBanks(width=lanes * acc_bits, depth=words)
        port = PartialSumBanks.PortSignature(addr_width=ceil_log2(words), width=lanes * acc_bits)
        super().__init__({"i_stream": self.decode.signature.members["i_stream"], "encode": Out(port),
                          "busy": In(1), "start": Out(1)})

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        return (("weights", "weights", self.weights),
                *((f"psums.{path}", role, mem) for path, role, mem in self.psums.memories))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.weights = self.weights
        m.submodules.psums = psums = self.psums
        m.submodules.decode = decode = self.decode
        wiring.connect(m, wiring.flipped(self.i_stream), decode.i_stream)
        wiring.connect(m, self._weights_rp, decode.weights)
        wiring.connect(m, psums.decode, decode.psum)
        wiring.connect(m, wiring.flipped(self.encode), psums.encode)
        m.d.comb += [decode.hold.eq(psums.clearing), decode.busy.eq(self.busy), psums.swap.eq(decode.start),
                     self.start.eq(decode.start)]
        return m


class DenseLayerBase(wiring.Component):
    """A dense or conv2d layer core (subclasses add the encode side); see the module docstring.

    Parameters
    ----------
    net : Network
    index : int
        The IR index of this (dense or conv2d) layer.
    lanes : int
        Weights read per cycle.
    decode : str
        Where the decode LUT is applied (:data:`DECODES`, resolved by :func:`resolve_decode`).

    Attributes
    ----------
    decode_mode : str
        ``"none"`` (no decode LUT: rate coding, direct pixels), ``"slots"`` (per-(kind, t)
        partial sums, scaled by the encode side) or ``"arrival"`` (scaled by the decode side).
    decs : list of int or None
        The decode LUT of the source spikes, indexed by ``kind·T + t`` (None: ``"none"``).
    shifts : list of (int or None) or None
        ``log2`` of every entry of ``decs`` when each is 0 or a power of two (scaling by shifts,
        no multiplier), else None.
    slots : int
        Partial sums per neuron and bank: ``T`` or ``2T`` (after a calibrated source) with
        ``"slots"``, else 1.
    channels, positions : int
        Output channels and output positions (``Ho·Wo``; dense: ``n_out`` and 1); neuron
        ``j = channel·positions + position``.
    groups, words : int
        ``ceil(channels / lanes)`` weight groups; ``positions × groups`` partial-sum words per slot.
    pool : Layer or None
        The avgpool2d between the previous weighted layer (or the input) and this one.
    weights, bias : :class:`~amaranth.lib.memory.Memory`
        Submodules ``weights`` (dense: ``n_in × groups`` words, column-major; conv2d:
        ``in_channels × k² × groups`` words, one group of ``W[:, ci, ky, kx]`` each) and
        ``bias`` (``groups`` words), initialised from the IR.
    psums : :class:`PartialSumBanks`
        Submodule ``psums`` (``slots × words`` words a bank).
    decode : :class:`DecodePipeline` or :class:`WindowDecode`
        Submodule ``decode`` (a window decode for conv2d, or after a sum pool).
    memories : tuple of ``(path, role, Memory)``
        Every memory inside this core.
    products : tuple of :class:`~.description.Multiplier`
        Hardware multipliers of this core.

    Members
    -------
    i_stream : ``In(stream.Signature(...))``
        Events of the previous stage, or pixels for a first layer with direct input.
    o_events : ``Out(stream.Signature(EventLayout))``
        Hidden layers: this layer's events and end markers.
    result : ``Out(stream.Signature(ResultLayout))``
        Output layer: one beat per output neuron.
    """

    def __init__(self, net: Network, index: int, *, lanes: int = 1, decode: str = "auto", single_bank: bool = False):
        lanes = check_lanes(lanes)
        layer: Layer = net.layers[index]
        self.single_bank = bool(single_bank)
        if layer.kind not in ("dense", "conv2d", "add"):
            raise NotImplementedError(f"layer {index} is {layer.kind!r}; this core implements dense, conv2d "
                                      "and add layers")
        self.net, self.index, self.layer, self.lanes = net, index, layer, lanes
        self.T = net.timesteps
        self.tb = time_bits(self.T)
        self.n_out = layer.n_out
        #: output channels (dense: neurons) and output positions (dense: 1); neuron
        #: ``j = channel·positions + position`` (C order)
        self.channels = layer.out_shape[0]
        self.positions = self.n_out // self.channels
        self.groups = -(-self.channels // lanes)
        #: partial-sum words per slot and bank: ``positions × groups``, word ``position·groups + g``
        self.words = self.positions * self.groups
        self.is_output = layer is weighted_layers(net)[-1]
        self.ab = layer.acc_bits
        if layer.kind == "add":
            # a residual add: one decode side per branch (its own weights, geometry and
            # partial-sum banks), one encode side over the sum of the two banks
            self.branches: tuple[BranchDecode, ...] = tuple(
                BranchDecode(net, j, lanes=lanes, groups=self.groups, words=self.words, acc_bits=self.ab,
                             decode_mode=add_decode_mode(net, j, decode)) for j in net.sources(index))
            self.conv = self.positions > 1
            self.n_in = sum(br.n_in for br in self.branches)
            self.wb = max(br.wb for br in self.branches)
            self.src, self.direct = None, False
            self.decode_mode = "arrival" if any(br.decode_mode == "arrival" for br in self.branches) else "none"
            self.decs = self.shifts = self.pool = None
            self.slots = 1
            self.weights = self.psums = self.decode = None
            bias = sum(np.asarray(net.layers[br.index].bias, dtype=np.int64) for br in self.branches)
            self.bias = self.word_memory(self.lane_rows([int(b) for b in bias]), self.ab, self.groups)
            self._bias_rp = self.bias.read_port()
            members = {f"i_branch{br.index}": br.signature.members["i_stream"] for br in self.branches}
            members["o_events"] = Out(event_signature(index_bits(self.n_out), self.tb))
            super().__init__(members)
            return
        self.branches = ()
        self.n_in = layer.n_in
        self.conv = layer.kind == "conv2d"
        side = DecodeSide(net, index, lanes=lanes, groups=self.groups, words=self.words, acc_bits=self.ab,
                          decode_mode=resolve_decode(net, index, decode))
        self.src, self.direct, self.wb = side.src, side.direct, side.wb
        self.decode_mode, self.decs, self.shifts = side.decode_mode, side.decs, side.shifts
        self.slots, self.pool = side.slots, side.pool
        self.weights, self.decode = side.weights, side.decode
        self._weights_rp = side.weights_rp
        self.bias = self.word_memory(self.lane_rows([int(b) for b in layer.bias]), self.ab, self.groups)
        self._bias_rp = self.bias.read_port()
        self.psums = PartialSumBanks(width=lanes * self.ab, depth=self.slots * self.words,
                                     banks=1 if self.single_bank else 2)
        members = {"i_stream": self.decode.signature.members["i_stream"]}
        if self.is_output:
            self.cls_bits = index_bits(self.n_out)
            members["result"] = Out(result_signature(self.ab, self.cls_bits))
        else:
            members["o_events"] = Out(event_signature(index_bits(self.n_out), self.tb))
        super().__init__(members)

    def word_counters(self, m: Module, name: str = "word"):
        """The encode side's walk over the partial-sum words of one slot: returns ``(w, g,
        base_j, neuron, lane_ok, last_lane, step, reset)`` for lane ``ln`` (``neuron(ln)``,
        ``lane_ok(ln)``, ``last_lane(ln)``): ``w`` the word (``position·groups + g``), ``g`` the
        weight group (bias address), ``base_j = g·lanes`` the group's first channel;
        ``last_lane(ln)``: ``ln`` is the word's last lane holding a channel (the lanes past the
        last channel cost no cycle); ``step()`` moves to the next word, ``reset()`` back to word 0.
        Dense layers: ``w`` is ``g``."""
        L, G, P = self.lanes, self.groups, self.positions
        w = Signal(range(self.words), name=name)
        base_j = Signal(range(G * L), name=f"{name}_base_j")
        if P == 1:
            g = w
        else:
            g = Signal(range(G), name=f"{name}_group")
            pos = Signal(range(P), name=f"{name}_position")

        def neuron(ln):
            co = base_j + ln
            return co if P == 1 else const_mul(co, P) + pos

        def lane_ok(ln):
            return (base_j + ln) < self.channels

        def last_lane(ln):
            if self.channels % L == 0:
                return ln == L - 1
            return (ln == L - 1) | (base_j + ln == self.channels - 1)

        def step():
            m.d.sync += w.eq(w + 1)
            if P == 1:
                m.d.sync += base_j.eq(base_j + L)
            else:
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), base_j.eq(0), pos.eq(pos + 1)]
                with m.Else():
                    m.d.sync += [g.eq(g + 1), base_j.eq(base_j + L)]

        def reset():
            m.d.sync += [w.eq(0), base_j.eq(0)]
            if P > 1:
                m.d.sync += [g.eq(0), pos.eq(0)]

        return w, g, base_j, neuron, lane_ok, last_lane, step, reset

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        """``(submodule path, role, memory)`` of every memory inside this core (an add: the
        bias, then each branch's weights and partial-sum banks under ``branch<j>``)."""
        if self.branches:
            return (("bias", "bias", self.bias),
                    *((f"branch{br.index}.{path}", role, mem) for br in self.branches for path, role, mem in br.memories))
        queue = getattr(self.decode, "queue", None)  # a direct dense layer's queue of pixels
        return (("weights", "weights", self.weights), ("bias", "bias", self.bias),
                *((("decode.queue", "queue", queue),) if queue is not None else ()),
                *((f"psums.{path}", role, mem) for path, role, mem in self.psums.memories))

    @property
    def products(self) -> tuple[Multiplier, ...]:
        """Hardware multipliers: the decode side's (``W·x`` of direct input, ``W·dec`` when
        scaling on arrival by a LUT that is not powers of two: one per lane); an add's, both
        branches'."""
        if self.branches:
            return tuple(p for br in self.branches for p in br.decode.products)
        return self.decode.products

    # -- helpers for subclasses
    def lane_rows(self, per_neuron: list[int]) -> list[list[int]]:
        """Group a per-neuron list into ``groups`` rows of ``lanes`` (zero padded)."""
        L = self.lanes
        padded = list(per_neuron) + [0] * (self.groups * L - len(per_neuron))
        return [padded[g * L:(g + 1) * L] for g in range(self.groups)]

    def word_memory(self, rows: list[list[int]] | None, width: int, depth: int) -> Memory:
        """``depth`` words of ``lanes`` values of ``width`` bits, from ``rows`` (None: zeros)."""
        return Memory(shape=unsigned(self.lanes * width), depth=depth,
                      init=pack_words(rows, width) if rows is not None else [])

    def elaborate(self, platform) -> Module:
        if self.branches:
            return self._elaborate_add()
        m = Module()
        m.submodules.weights = self.weights
        m.submodules.bias = self.bias
        m.submodules.psums = psums = self.psums
        m.submodules.decode = decode = self.decode
        wiring.connect(m, wiring.flipped(self.i_stream), decode.i_stream)
        wiring.connect(m, self._weights_rp, decode.weights)
        wiring.connect(m, psums.decode, decode.psum)
        busy = Signal()      # driven by the encode side; the next hand-over waits while set
        m.d.comb += [decode.hold.eq(psums.clearing | (busy if self.single_bank else 0)), decode.busy.eq(busy),
                     psums.swap.eq(decode.start), psums.owner.eq(busy)]
        self.elaborate_encode(m, psums.encode, start=decode.start, busy=busy)
        return m

    def _elaborate_add(self) -> Module:
        """An add: each branch decodes into its own banks and hands a complete batch over
        (``full``); the encode side starts once every branch is full and reads the lane-wise
        sum of the branches' encode banks (clearing both). A branch that finished its batch
        decodes the next one into its other bank meanwhile; its next hand-over waits until the
        encode side has taken the batch and is idle (``busy``)."""
        m = Module()
        m.submodules.bias = self.bias
        L, ab = self.lanes, self.ab
        busy = Signal()
        full = []
        for br in self.branches:
            m.submodules[f"branch{br.index}"] = br
            wiring.connect(m, wiring.flipped(getattr(self, f"i_branch{br.index}")), br.i_stream)
            f = Signal(name=f"full{br.index}")
            m.d.comb += br.busy.eq(f | busy)
            with m.If(br.start):
                m.d.sync += f.eq(1)
            full.append(f)
        start = Signal()
        ready = ~busy
        for f in full:
            ready = ready & f
        m.d.comb += start.eq(ready)               # every branch full and the encode side idle
        with m.If(start):
            m.d.sync += [f.eq(0) for f in full]
        width = L * ab
        aw = ceil_log2(self.words)
        bank = PartialSumBanks.PortSignature(addr_width=aw, width=width).flip().create(path=("sum",))
        for br in self.branches:
            m.d.comb += [br.encode.r_addr.eq(bank.r_addr), br.encode.w_addr.eq(bank.w_addr),
                         br.encode.w_data.eq(bank.w_data), br.encode.w_en.eq(bank.w_en)]
        # the sum of both branches' partial sums lies in the add's proven range (bounds.py sums
        # the branches' charges), so acc_bits holds it exactly
        terms = []
        for k in range(L):
            t = lane(self.branches[0].encode.r_data, k, ab)
            for br in self.branches[1:]:
                t = t + lane(br.encode.r_data, k, ab)
            terms.append(t[:ab])
        m.d.comb += bank.r_data.eq(Cat(*terms))
        self.elaborate_encode(m, bank, start=start, busy=busy)
        return m

    def elaborate_encode(self, m: Module, bank, *, start: Value, busy: Signal) -> None:  # pragma: no cover
        """The encode side: on ``start`` (a one-cycle pulse) the encode ``bank``
        (:class:`PartialSumBanks.PortSignature`) holds a complete batch; ``busy`` is set while
        it is used and cleared."""
        raise NotImplementedError


def emit_result(m: Module, r, *, vsel: Value, best_bits: int, n_out: int, j: Value, lane_ok: Value, ln: Signal,
                last: Value, group_done) -> None:
    """Output layer: one result beat per neuron; ``cls`` is the running argmax (lowest index on ties).

    Shared by the TTFS and rate cores; ``group_done()`` is called when the ``last`` lane of a
    weight group has left.
    """
    best_v = Signal(signed(best_bits))
    best_i = Signal(range(n_out))
    better = Signal()
    m.d.comb += better.eq((j == 0) | (vsel > best_v))
    m.d.comb += [r.valid.eq(lane_ok), r.payload.membrane.eq(vsel),
                 r.payload.last.eq(j == n_out - 1),
                 r.payload.cls.eq(Mux(better, j, best_i))]
    with m.If(~lane_ok | r.ready):
        with m.If(lane_ok & better):
            m.d.sync += [best_v.eq(vsel), best_i.eq(j)]
        with m.If(last):
            m.d.sync += ln.eq(0)
            group_done()
        with m.Else():
            m.d.sync += ln.eq(ln + 1)


#: the core base class under its general name (dense and conv2d layers)
LayerCore = DenseLayerBase
