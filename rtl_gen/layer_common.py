# amaranth: UnusedElaboratable=no
# (the memories and sub-components made in __init__ are used exactly when their owner is)
"""The part every dense layer core shares: weights, double-banked partial sums, event decode.

Decode is event driven: an incoming event ``(i, t, kind)`` reads column ``W[:, i]`` of the
weight memory ``lanes`` weights per word and adds it into partial-sum word
``P[bank][slot][g]`` (``slot = kind*T + t`` for (SC-)TTFS, one slot for rate, where a batch is
one step), one word per cycle: a three-stage read-modify-write pipeline over the group index
``g`` (:class:`DecodePipeline`). A first layer fed direct pixels multiplies each weight by the
pixel (one multiplier per lane) instead.

The partial sums live in two memories (:class:`PartialSumBanks`). The decode side fills bank
``dbank`` while the layer's encode side (a subclass of :class:`DenseLayerBase`:
:mod:`.layer_ttfs`, :mod:`.layer_rate`) reads, uses and clears the other; an end marker hands the
filled bank over as soon as the encode side is idle, so decoding frame f+1 (or step t+1)
overlaps encoding frame f (step t).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from snnfpga.errors import BadOption, Unsupported
from snnfpga.ir import Layer, Network, weighted_layers

from .events import event_signature, index_bits, pixel_shape, result_signature, time_bits
from .luts import const_mul, pack_words

__all__ = ["DenseLayerBase", "PartialSumBanks", "DecodePipeline", "check_lanes", "check_supported",
           "source_neuron"]


def check_lanes(lanes: object) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes <= 0:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    return lanes


def _check_count(name: str, value: object, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"{name} must be an integer >= {minimum}, not {value!r}")


def check_supported(net: Network) -> None:
    """Dense networks (with optional flatten layers) only, so far."""
    for i, layer in enumerate(net.layers):
        if layer.kind not in ("dense", "flatten"):
            raise Unsupported(
                f"rtl_gen supports dense and flatten layers only; layer {i} is {layer.kind!r}")


def source_neuron(net: Network, index: int):
    """The neuron whose spikes feed layer ``index`` (None: direct pixels)."""
    prev = [i for i, layer in enumerate(net.layers[:index]) if layer.weighted]
    if prev:
        return net.layers[prev[-1]].neuron
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


class PartialSumBanks(wiring.Component):
    """Two banks of partial-sum words: the decode side fills one, the encode side reads and
    clears the other, and :attr:`swap` exchanges them.

    After reset both banks are swept to zero, one word per cycle (memories have no reset), so a
    reset in the middle of a frame leaves no stale partial sums behind; :attr:`clearing` is high
    meanwhile and the decode side must accept nothing.

    Parameters
    ----------
    width : int
        Bits of a word (``lanes × acc_bits``).
    depth : int
        Words per bank (``slots × groups``).

    Attributes
    ----------
    banks : tuple of two :class:`~amaranth.lib.memory.Memory`
        Submodules ``bank0`` and ``bank1``.

    Members
    -------
    decode : ``Out(PartialSumBanks.PortSignature(addr_width=ceil_log2(depth), width=width))``
        Read and write port into the decode bank.
    encode : ``Out(PartialSumBanks.PortSignature(addr_width=ceil_log2(depth), width=width))``
        Read and write port into the other bank.
    swap : ``In(1)``
        The banks exchange roles at the next clock edge.
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

    def __init__(self, *, width: int, depth: int):
        _check_count("width", width)
        _check_count("depth", depth)
        self.width, self.depth = width, depth
        self.banks = tuple(Memory(shape=unsigned(width), depth=depth, init=[]) for _ in range(2))
        self._ports = []
        for mem in self.banks:
            wp = mem.write_port()
            self._ports.append((mem.read_port(transparent_for=(wp,)), wp))
        port = self.PortSignature(addr_width=ceil_log2(depth), width=width)
        super().__init__({"decode": Out(port), "encode": Out(port), "swap": In(1),
                          "clearing": Out(1, init=1)})

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        """``(submodule path, role, memory)`` of each bank."""
        return tuple((f"bank{b}", "partial_sums", mem) for b, mem in enumerate(self.banks))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.bank0, m.submodules.bank1 = self.banks
        (rp0, _), (rp1, _) = self._ports
        dec, enc = self.decode, self.encode
        dbank = Signal()
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


class DecodePipeline(wiring.Component):
    """Event decode: each input beat adds one weight column into the decode bank.

    An event ``(i, t, kind)``, or non-zero pixel ``x`` number ``i`` of a first layer fed direct
    pixels, reads the ``groups`` words of column ``W[:, i]`` (``lanes`` weights a word) and adds
    each (times ``x`` for a pixel) into partial-sum word ``slot·groups + g``, one word per cycle
    through three stages: weight read; product registered and partial-sum read; add and write.
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

    Attributes
    ----------
    multipliers : int
        Hardware multipliers: ``lanes`` for pixel input, else 0.

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
                 weight_bits: int, acc_bits: int, pixel_shape=None):
        for name, value in (("n_in", n_in), ("groups", groups), ("timesteps", timesteps),
                            ("lanes", lanes), ("weight_bits", weight_bits), ("acc_bits", acc_bits)):
            _check_count(name, value)
        if slots not in (1, timesteps, 2 * timesteps):
            raise ValueError(f"slots must be 1, timesteps or 2 × timesteps, not {slots!r}")
        self.n_in, self.groups, self.slots, self.T = n_in, groups, slots, timesteps
        self.lanes, self.wb, self.ab = lanes, weight_bits, acc_bits
        self.direct = pixel_shape is not None
        self.multipliers = lanes if self.direct else 0
        if self.direct:
            i_sig = stream.Signature(Shape.cast(pixel_shape))
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
            x = Signal.like(inp.payload)
            s1_x = Signal.like(inp.payload)
            pix = Signal(range(self.n_in))
            in_row, in_slot = pix, 0
            in_ev = inp.payload != 0
            in_end = pix == self.n_in - 1
        else:
            p = inp.payload
            in_row = p.neuron
            if S == 1:
                in_slot = 0
            elif S > T:  # calibrated source: slot = kind*T + t
                in_slot = Mux(p.kind, T, 0) + p.time
            else:
                in_slot = p.time
            in_ev = ~p.end
            in_end = p.end

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
                m.d.comb += inp.ready.eq((g == G - 1) & ~pend_end)
                m.d.sync += [s1_valid.eq(1), s1_addr.eq(const_mul(slot, G) + g), g.eq(g + 1)]
                if self.direct:
                    m.d.sync += s1_x.eq(x)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), state.eq(Mux(pend_end, WAIT, IDLE))]
            with m.Case(WAIT):
                with m.If(~self.busy & ~s1_valid & ~s2_valid):
                    m.d.comb += self.start.eq(1)
                    m.d.sync += state.eq(IDLE)
        with m.If(accept):
            if self.direct:
                m.d.sync += pix.eq(Mux(in_end, 0, pix + 1))
            with m.If(in_ev):
                m.d.sync += [row.eq(in_row), slot.eq(in_slot), g.eq(0), pend_end.eq(in_end),
                             state.eq(RUN)]
                if self.direct:
                    m.d.sync += x.eq(inp.payload)
            with m.Elif(in_end):
                m.d.sync += state.eq(WAIT)
        # stage 1: the weight word is here (its product with the pixel is registered) and the
        # partial-sum word is read; stage 2: add and write back
        prods = []
        for k in range(L):
            wk = lane(self.weights.data, k, wb)
            value = wk * s1_x if self.direct else wk
            prod = Signal(value.shape(), name=f"prod{k}")
            m.d.sync += prod.eq(value)
            prods.append(prod)
        m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr)]
        terms = [(lane(self.psum.r_data, k, ab) + prods[k])[:ab] for k in range(L)]
        m.d.comb += [self.psum.w_addr.eq(s2_addr), self.psum.w_en.eq(s2_valid),
                     self.psum.w_data.eq(Cat(*terms))]
        return m


class DenseLayerBase(wiring.Component):
    """A dense layer core (subclasses add the encode side); see the module docstring.

    Parameters
    ----------
    net : Network
    index : int
        The IR index of this (dense) layer.
    lanes : int
        Weights read per cycle.

    Attributes
    ----------
    weights, bias : :class:`~amaranth.lib.memory.Memory`
        Submodules ``weights`` (``n_in × groups`` words, column-major) and ``bias`` (``groups``
        words), initialised from the IR.
    psums : :class:`PartialSumBanks`
        Submodule ``psums``.
    decode : :class:`DecodePipeline`
        Submodule ``decode``.
    memories : tuple of ``(path, role, Memory)``
        Every memory inside this core.
    multipliers : int
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

    def __init__(self, net: Network, index: int, *, lanes: int = 1):
        lanes = check_lanes(lanes)
        layer: Layer = net.layers[index]
        if layer.kind != "dense":
            raise NotImplementedError(f"layer {index} is {layer.kind!r}; this core implements dense layers")
        self.net, self.index, self.layer, self.lanes = net, index, layer, lanes
        self.T = net.timesteps
        self.tb = time_bits(self.T)
        self.n_in, self.n_out = layer.n_in, layer.n_out
        self.groups = -(-self.n_out // lanes)
        self.is_output = layer is weighted_layers(net)[-1]
        self.src = source_neuron(net, index)
        self.direct = self.src is None
        self.ab = layer.acc_bits
        self.wb = layer.weight_bits
        if self.direct or net.coding == "rate":
            self.slots = 1
        else:
            self.slots = self.T * (2 if self.src.calibrated else 1)
        pixels = pixel_shape(net.input.bits, net.input.signed)

        w = layer.weight
        rows = [row for i in range(self.n_in) for row in self.lane_rows([int(x) for x in w[:, i]])]
        self.weights = self.word_memory(rows, self.wb, self.n_in * self.groups)
        self._weights_rp = self.weights.read_port()
        self.bias = self.word_memory(self.lane_rows([int(b) for b in layer.bias]), self.ab, self.groups)
        self._bias_rp = self.bias.read_port()
        self.psums = PartialSumBanks(width=lanes * self.ab, depth=self.slots * self.groups)
        self.decode = DecodePipeline(n_in=self.n_in, groups=self.groups, slots=self.slots,
                                     timesteps=self.T, lanes=lanes, weight_bits=self.wb,
                                     acc_bits=self.ab, pixel_shape=pixels if self.direct else None)

        members = {"i_stream": self.decode.signature.members["i_stream"]}
        if self.is_output:
            self.cls_bits = index_bits(self.n_out)
            members["result"] = Out(result_signature(self.ab, self.cls_bits))
        else:
            members["o_events"] = Out(event_signature(index_bits(self.n_out), self.tb))
        super().__init__(members)

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        """``(submodule path, role, memory)`` of every memory inside this core."""
        return (("weights", "weights", self.weights), ("bias", "bias", self.bias),
                *((f"psums.{path}", role, mem) for path, role, mem in self.psums.memories))

    @property
    def multipliers(self) -> int:
        """Hardware multipliers: the decode side's (``W·x`` of direct input: one per lane)."""
        return self.decode.multipliers

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
        m = Module()
        m.submodules.weights = self.weights
        m.submodules.bias = self.bias
        m.submodules.psums = psums = self.psums
        m.submodules.decode = decode = self.decode
        wiring.connect(m, wiring.flipped(self.i_stream), decode.i_stream)
        wiring.connect(m, self._weights_rp, decode.weights)
        wiring.connect(m, psums.decode, decode.psum)
        busy = Signal()      # driven by the encode side; the next hand-over waits while set
        m.d.comb += [decode.hold.eq(psums.clearing), decode.busy.eq(busy), psums.swap.eq(decode.start)]
        self.elaborate_encode(m, psums.encode, start=decode.start, busy=busy)
        return m

    def elaborate_encode(self, m: Module, bank, *, start: Value, busy: Signal) -> None:  # pragma: no cover
        """The encode side: on ``start`` (a one-cycle pulse) the encode ``bank``
        (:class:`PartialSumBanks.PortSignature`) holds a complete batch; ``busy`` is set while
        it is used and cleared."""
        raise NotImplementedError


def emit_result(m: Module, r, *, vsel: Value, best_bits: int, n_out: int, j: Value, lane_ok: Value, ln: Signal,
                L: int, group_done) -> None:
    """Output layer: one result beat per neuron; ``cls`` is the running argmax (lowest index on ties).

    Shared by the TTFS and rate cores; ``group_done()`` is called when the last lane of a weight
    group has left.
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
        with m.If(ln == L - 1):
            m.d.sync += ln.eq(0)
            group_done()
        with m.Else():
            m.d.sync += ln.eq(ln + 1)
