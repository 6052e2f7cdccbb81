"""The part every dense layer core shares: weights, double-banked partial sums, event decode.

Decode is event driven: an incoming event ``(i, t, kind)`` reads column ``W[:, i]`` of the
weight memory ``lanes`` weights per word and adds it into partial-sum word
``P[bank][slot][g]`` (``slot = kind*T + t`` for (SC-)TTFS, one slot for rate, where a batch is
one step), one word per cycle: a three-stage read-modify-write pipeline over the group index
``g`` (weight read; product / partial-sum read; add and write). A first
layer fed direct pixels multiplies each weight by the pixel (one multiplier per lane) instead.

The partial sums live in two memories (banks). The decode side fills bank ``dbank`` while the
layer's encode side (a subclass: :mod:`.layer_ttfs`, :mod:`.layer_rate`) reads, uses and
clears bank ``~dbank``; an end marker hands the filled bank over as soon as the encode side is
idle, so decoding frame f+1 (or step t+1) overlaps encoding frame f (step t).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from snnfpga.errors import BadOption, Unsupported
from snnfpga.ir import Layer, Network, TTFSNeuron, weighted_layers

from .events import event_signature, index_bits, pixel_shape, result_signature, time_bits
from .luts import const_mul, pack_words

__all__ = ["DenseLayerBase", "check_lanes", "check_supported", "source_neuron"]


def check_lanes(lanes: object) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes <= 0:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    return lanes


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
            out.append(v.bit_length() - 1)
        else:
            return None
    return out


def multipliers(net: Network, index: int, lanes: int) -> int:
    """Hardware multipliers layer ``index`` uses: ``W·x`` of a direct-input layer (one per
    lane), or the ``dec[t]`` scaling of a (SC-)TTFS encode pass (one per lane, none when every
    decode LUT entry is 0 or a power of two: shifts). Rate layers with spike input use none."""
    src = source_neuron(net, index)
    if src is None:
        return lanes
    if net.coding == "rate":
        return 0
    decs = list(src.dec_enc) + list(src.dec_cal or ())
    return 0 if power_of_two_shifts(decs) is not None else lanes


def lane(word: Value, k: int, width: int) -> Value:
    return word[k * width:(k + 1) * width].as_signed()


@dataclass
class EncodeSide:
    """Signals the decode side shares with the encode side of one layer."""

    start: Signal        # one-cycle pulse: bank ~dbank now holds a complete batch
    busy: Signal         # driven by the encode side; the next handover waits while set
    r_addr: Signal       # read address into the encode side's bank (data one cycle later)
    r_data: Value
    w_addr: Signal
    w_data: Signal
    w_en: Signal


class DenseLayerBase(wiring.Component):
    """A dense layer core (subclasses add the encode side); see the module docstring.

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
            assert isinstance(self.src, TTFSNeuron)
            self.slots = self.T * (2 if self.src.calibrated else 1)
        members = {}
        if self.direct:
            members["i_stream"] = In(stream.Signature(pixel_shape(net.input.bits, net.input.signed)))
        else:
            members["i_stream"] = In(event_signature(index_bits(self.n_in), self.tb))
        if self.is_output:
            self.cls_bits = index_bits(self.n_out)
            members["result"] = Out(result_signature(self.ab, self.cls_bits))
        else:
            members["o_events"] = Out(event_signature(index_bits(self.n_out), self.tb))
        super().__init__(members)

    # -- helpers for subclasses
    def lane_rows(self, per_neuron: list[int]) -> list[list[int]]:
        """Group a per-neuron list into ``groups`` rows of ``lanes`` (zero padded)."""
        L = self.lanes
        padded = list(per_neuron) + [0] * (self.groups * L - len(per_neuron))
        return [padded[g * L:(g + 1) * L] for g in range(self.groups)]

    def word_memory(self, m: Module, name: str, rows: list[list[int]] | None, width: int,
                    depth: int) -> Memory:
        mem = Memory(shape=unsigned(self.lanes * width), depth=depth,
                     init=pack_words(rows, width) if rows is not None else [])
        m.submodules[name] = mem
        return mem

    def elaborate(self, platform) -> Module:
        m = Module()
        L, G, S, T, ab, wb = self.lanes, self.groups, self.slots, self.T, self.ab, self.wb
        w = self.layer.weight
        rows = [row for i in range(self.n_in) for row in self.lane_rows([int(x) for x in w[:, i]])]
        wmem = self.word_memory(m, "weights", rows, wb, self.n_in * G)
        w_rp = wmem.read_port()

        depth = S * G
        ports = []
        for b in range(2):
            mem = self.word_memory(m, f"psum{b}", None, ab, depth)
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            ports.append((rp, wp))

        dbank = Signal()
        d_raddr = Signal(range(depth))
        d_waddr = Signal(range(depth))
        d_wdata = Signal(L * ab)
        d_wen = Signal()
        enc = EncodeSide(start=Signal(), busy=Signal(), r_addr=Signal(range(depth)),
                         r_data=Mux(dbank, ports[0][0].data, ports[1][0].data),
                         w_addr=Signal(range(depth)), w_data=Signal(L * ab), w_en=Signal())
        d_rdata = Mux(dbank, ports[1][0].data, ports[0][0].data)
        for b, (rp, wp) in enumerate(ports):
            mine = dbank == b
            m.d.comb += [rp.addr.eq(Mux(mine, d_raddr, enc.r_addr)),
                         wp.addr.eq(Mux(mine, d_waddr, enc.w_addr)),
                         wp.data.eq(Mux(mine, d_wdata, enc.w_data)),
                         wp.en.eq(Mux(mine, d_wen, enc.w_en))]

        # After reset both banks are swept to zero (memories have no reset), so a reset in the
        # middle of a frame leaves no stale partial sums behind; input waits meanwhile.
        clearing = Signal(init=1)
        clr = Signal(range(depth))
        with m.If(clearing):
            for _rp, wp in ports:
                m.d.comb += [wp.addr.eq(clr), wp.data.eq(0), wp.en.eq(1)]
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == depth - 1):
                m.d.sync += [clearing.eq(0), clr.eq(0)]

        # ---- decode: events -> partial sums of bank dbank
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
            if self.net.coding == "rate":
                in_slot = 0
            elif S > T:  # calibrated source: slot = kind*T + t
                in_slot = Mux(p.kind, T, 0) + p.time
            else:
                in_slot = p.time
            in_ev = ~p.end
            in_end = p.end

        m.d.comb += [w_rp.addr.eq(const_mul(row, G) + g), d_raddr.eq(s1_addr)]
        m.d.sync += s1_valid.eq(0)
        accept = Signal()
        m.d.comb += accept.eq(inp.valid & inp.ready)
        IDLE, RUN, WAIT = range(3)
        state = Signal(range(3))
        with m.Switch(state):
            with m.Case(IDLE):
                m.d.comb += inp.ready.eq(~clearing)
            with m.Case(RUN):
                m.d.comb += inp.ready.eq((g == G - 1) & ~pend_end)
                m.d.sync += [s1_valid.eq(1), s1_addr.eq(const_mul(slot, G) + g), g.eq(g + 1)]
                if self.direct:
                    m.d.sync += s1_x.eq(x)
                with m.If(g == G - 1):
                    m.d.sync += [g.eq(0), state.eq(Mux(pend_end, WAIT, IDLE))]
            with m.Case(WAIT):
                with m.If(~enc.busy & ~s1_valid & ~s2_valid):
                    m.d.comb += enc.start.eq(1)
                    m.d.sync += [dbank.eq(~dbank), state.eq(IDLE)]
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
        # partial-sum word is read; stage 2: add and write back. Back-to-back updates of one
        # word are safe because the partial-sum read port is transparent to the write port.
        prods = []
        for k in range(L):
            wk = lane(w_rp.data, k, wb)
            value = wk * s1_x if self.direct else wk
            prod = Signal(value.shape(), name=f"prod{k}")
            m.d.sync += prod.eq(value)
            prods.append(prod)
        m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr)]
        terms = [(lane(d_rdata, k, ab) + prods[k])[:ab] for k in range(L)]
        m.d.comb += [d_waddr.eq(s2_addr), d_wen.eq(s2_valid), d_wdata.eq(Cat(*terms))]

        self.elaborate_encode(m, enc)
        return m

    def elaborate_encode(self, m: Module, enc: EncodeSide) -> None:  # pragma: no cover
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
