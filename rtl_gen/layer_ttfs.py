"""(SC-)TTFS dense layer core: event decode (shared), then one encode pass per frame.

Encode side, per group of ``lanes`` neurons: ``v = b + Σ_slot dec[slot]·P[slot]`` reading one
partial-sum word per slot (and clearing it for the bank's next use), with one multiplier per
lane by the small ``dec`` constant (none for a direct-input layer, where ``dec`` is 1); then
each lane in turn is compared with the ``enc``/``cal`` LUTs and emits up to two events. Hidden
layers end the frame with an end marker; the output layer emits one result beat per neuron
with the running argmax.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed

from .layer_common import DenseLayerBase, EncodeSide, lane, power_of_two_shifts
from .luts import const_mul, rom, ttfs_encode

__all__ = ["TTFSDenseLayer"]


class TTFSDenseLayer(DenseLayerBase):
    """A dense (SC-)TTFS layer; see :class:`.layer_common.DenseLayerBase` for the members."""

    def elaborate_encode(self, m: Module, enc: EncodeSide) -> None:
        L, G, S, T, ab = self.lanes, self.groups, self.slots, self.T, self.ab
        bmem = self.word_memory(m, "bias", self.lane_rows([int(b) for b in self.layer.bias]), ab, G)
        b_rp = bmem.read_port()
        v = [Signal(signed(ab), name=f"v{k}") for k in range(L)]
        g = Signal(range(G))
        iss = Signal(range(S + 1))
        rd_valid = Signal()
        rd_slot = Signal(range(S))
        pr_valid = Signal()
        pr_slot = Signal(range(S))
        prod = [Signal(signed(ab), name=f"prod{k}") for k in range(L)]
        ln = Signal(range(L))
        sub = Signal()
        m.d.comb += [enc.r_addr.eq(const_mul(iss, G) + g), b_rp.addr.eq(g)]
        if not self.direct:
            src = self.src
            decs = list(src.dec_enc) + (list(src.dec_cal) if S > T else [])
            shifts = power_of_two_shifts(decs)
            dec = rom(decs) if shifts is None else None
        vsel = Signal(signed(ab))
        m.d.comb += vsel.eq(Array(v)[ln])
        j = Signal(range(G * L))
        m.d.comb += j.eq(const_mul(g, L) + ln)
        lane_ok = j < self.n_out

        def next_lane():
            with m.If(ln == L - 1):
                m.d.sync += ln.eq(0)
                with m.If(g == G - 1):
                    m.d.sync += g.eq(0)
                    if self.is_output:
                        m.d.sync += enc.busy.eq(0)
                        m.next = "IDLE"
                    else:
                        m.next = "END"
                with m.Else():
                    m.d.sync += [g.eq(g + 1), iss.eq(0), rd_valid.eq(0), pr_valid.eq(0)]
                    m.next = "ACC"
            with m.Else():
                m.d.sync += ln.eq(ln + 1)

        if self.is_output:
            best_v = Signal(signed(ab))
            best_i = Signal(range(self.n_out))
            better = Signal()
            m.d.comb += better.eq((j == 0) | (vsel > best_v))
        else:
            e = ttfs_encode(m, vsel, self.layer.neuron, self.tb)
            o = self.o_events

        with m.FSM(name="encode"):
            with m.State("IDLE"):
                with m.If(enc.start):
                    m.d.sync += [enc.busy.eq(1), g.eq(0), iss.eq(0), rd_valid.eq(0), pr_valid.eq(0), ln.eq(0)]
                    m.next = "ACC"
            with m.State("ACC"):
                # issue: read slot iss of group g; data: the word is here, scale it (and clear
                # the word); add: accumulate the registered product into v
                with m.If(iss < S):
                    m.d.sync += [rd_valid.eq(1), rd_slot.eq(iss), iss.eq(iss + 1)]
                with m.Else():
                    m.d.sync += rd_valid.eq(0)
                m.d.sync += [pr_valid.eq(rd_valid), pr_slot.eq(rd_slot)]
                with m.If(rd_valid):
                    m.d.comb += [enc.w_addr.eq(const_mul(rd_slot, G) + g), enc.w_data.eq(0), enc.w_en.eq(1)]
                for k in range(L):
                    p = lane(enc.r_data, k, ab)
                    if self.direct:
                        term = p
                    elif dec is not None:
                        term = dec[rd_slot] * p
                    else:  # power-of-two LUT: a shift mux, no multiplier
                        term = Array([Const(0, signed(ab)) if sh is None else (p << sh)[:ab].as_signed()
                                      for sh in shifts])[rd_slot]
                    m.d.sync += prod[k].eq(term)
                with m.If(pr_valid):
                    for k in range(L):
                        base = Mux(pr_slot == 0, lane(b_rp.data, k, ab), v[k])
                        m.d.sync += v[k].eq(base + prod[k])
                    with m.If(pr_slot == S - 1):
                        m.d.sync += [ln.eq(0), sub.eq(0), pr_valid.eq(0)]
                        m.next = "EMIT"
            with m.State("EMIT"):
                if self.is_output:
                    r = self.result
                    m.d.comb += [r.valid.eq(lane_ok), r.payload.membrane.eq(vsel),
                                 r.payload.last.eq(j == self.n_out - 1),
                                 r.payload.cls.eq(Mux(better, j, best_i))]
                    with m.If(~lane_ok | r.ready):
                        with m.If(lane_ok & better):
                            m.d.sync += [best_v.eq(vsel), best_i.eq(j)]
                        next_lane()
                else:
                    cal = self.layer.neuron.calibrated
                    with m.If(sub == 0):
                        m.d.comb += [o.valid.eq(lane_ok & e.fired), o.payload.neuron.eq(j),
                                     o.payload.time.eq(e.t_enc), o.payload.kind.eq(0)]
                        with m.If(~o.valid | o.ready):
                            if cal:
                                with m.If(lane_ok & e.cal_fired):
                                    m.d.sync += sub.eq(1)
                                with m.Else():
                                    next_lane()
                            else:
                                next_lane()
                    with m.Else():
                        m.d.comb += [o.valid.eq(1), o.payload.neuron.eq(j),
                                     o.payload.time.eq(e.t_cal), o.payload.kind.eq(1)]
                        with m.If(o.ready):
                            m.d.sync += sub.eq(0)
                            next_lane()
            if not self.is_output:
                with m.State("END"):
                    m.d.comb += [o.valid.eq(1), o.payload.end.eq(1)]
                    with m.If(o.ready):
                        m.d.sync += enc.busy.eq(0)
                        m.next = "IDLE"
