"""(SC-)TTFS dense layer core: event decode (shared), then one encode pass per frame.

Encode side, per group of ``lanes`` neurons:

- *accumulate* ``v = b + Σ_slot dec[slot]·P[slot]``: one partial-sum word per slot and cycle,
  cleared as it is read (the bank is then ready for its next frame), pipelined as read →
  register → scale → add. Scaling is one multiplier per lane by the small ``dec`` constant, a
  shift mux when every ``dec`` entry is 0 or a power of two, nothing for a direct-input layer
  or when the decode side scaled each weight on arrival (``decode="arrival"``: one slot,
  ``v = b + P``).
- *encode / emit* (hidden layers): lane after lane is compared with the ``enc`` LUT (fire
  stage: ``t_e`` and the residue), then with ``cal`` (calibrate stage: ``t_c``), into a
  one-entry buffer from which up to two events leave while later lanes are prepared: one
  cycle per silent neuron, one per event. The frame ends with an end marker.
- *result* (output layer): one beat per neuron with the running argmax.

The two sides overlap: a finished word moves into the emit registers (``e``) as soon as the
emit side is free, and the next word accumulates while it is emitted, so a word costs the
larger of the two (``slots + 4`` cycles, or its lanes and events), not their sum. Lanes past a
layer's last channel cost no cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed

from .description import Multiplier
from .layer_common import DenseLayerBase, emit_result, lane
from .luts import const_mul, event_buffer, rom, signed_width, ttfs_calibrate, ttfs_fire

__all__ = ["TTFSDenseLayer"]


class TTFSDenseLayer(DenseLayerBase):
    """A dense (SC-)TTFS layer; see :class:`.layer_common.DenseLayerBase` for the members
    (``decs``, ``shifts``: the source's decode LUT, applied here with ``decode_mode ==
    "slots"``, by the decode side with ``"arrival"``)."""

    def __init__(self, net, index: int, *, lanes: int = 1, decode: str = "auto", single_bank: bool = False):
        super().__init__(net, index, lanes=lanes, decode=decode, single_bank=single_bank)

    @property
    def scales_on_encode(self) -> bool:
        """The encode side multiplies each slot by its ``dec`` (``decode_mode == "slots"``)."""
        return self.decode_mode == "slots"

    @property
    def products(self) -> tuple[Multiplier, ...]:
        """The decode side's, plus one per lane for the encode side's ``dec·P`` (slots) unless
        it is shifts: ``dec`` from :func:`.luts.rom` times an ``acc_bits`` partial sum, kept
        to ``acc_bits``."""
        if not (self.scales_on_encode and self.shifts is None):
            return super().products
        return (*super().products,
                Multiplier.of(signed(signed_width(self.decs)), signed(self.ab), self.lanes, y_bits=self.ab))

    def elaborate_encode(self, m: Module, bank, *, start, busy) -> None:
        L, S, ab, tb = self.lanes, self.slots, self.ab, self.tb
        NW = self.words
        b_rp = self._bias_rp
        v = [Signal(signed(ab), name=f"v{k}") for k in range(L)]   # the word being accumulated
        e = [Signal(signed(ab), name=f"e{k}") for k in range(L)]   # the word being emitted
        # two walks over the same words: the accumulate side's (partial-sum and bias addresses)
        # runs one word ahead of the emit side's (neuron numbers), so they overlap
        w, g, _, _, _, _, step_acc, reset_acc = self.word_counters(m, "acc_word")
        ew, _, _, neuron_of, lane_ok_of, last_lane, step_emit, reset_emit = self.word_counters(m, "emit_word")
        # accumulate pipeline: issue (iss) -> data (rd) -> registered word (pd) -> product (pr)
        iss = Signal(range(S + 1))
        rd_valid, pd_valid, pr_valid = Signal(), Signal(), Signal()
        rd_slot, pd_slot, pr_slot = Signal(range(S)), Signal(range(S)), Signal(range(S))
        pd = [Signal(signed(ab), name=f"pd{k}") for k in range(L)]
        prod = [Signal(signed(ab), name=f"prod{k}") for k in range(L)]
        m.d.comb += [bank.r_addr.eq(const_mul(iss, NW) + w), b_rp.addr.eq(g)]
        shifts = self.shifts
        dec = rom(self.decs) if self.scales_on_encode and shifts is None else None
        emit_free = Signal()               # the emit side holds no word
        handoff = Signal()                 # the accumulated word moves to the emit side

        def start_group():
            m.d.sync += [iss.eq(0), rd_valid.eq(0), pd_valid.eq(0), pr_valid.eq(0)]
            m.next = "ACC"

        with m.FSM(name="accumulate"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += busy.eq(1)
                    reset_acc()
                    start_group()
            with m.State("ACC"):
                with m.If(iss < S):
                    m.d.sync += [rd_valid.eq(1), rd_slot.eq(iss), iss.eq(iss + 1)]
                with m.Else():
                    m.d.sync += rd_valid.eq(0)
                m.d.sync += [pd_valid.eq(rd_valid), pd_slot.eq(rd_slot),
                             pr_valid.eq(pd_valid), pr_slot.eq(pd_slot)]
                with m.If(rd_valid):
                    m.d.comb += [bank.w_addr.eq(const_mul(rd_slot, NW) + w), bank.w_data.eq(0),
                                 bank.w_en.eq(1)]
                for k in range(L):
                    m.d.sync += pd[k].eq(lane(bank.r_data, k, ab))
                    if not self.scales_on_encode:  # direct input, or scaled on arrival
                        term = pd[k]
                    elif dec is not None:
                        term = dec[pd_slot] * pd[k]
                    else:  # power-of-two LUT: a shift mux, no multiplier
                        term = Array([Const(0, signed(ab)) if sh is None else (pd[k] << sh)[:ab].as_signed()
                                      for sh in shifts])[pd_slot]
                    m.d.sync += prod[k].eq(term)
                with m.If(pr_valid):
                    for k in range(L):
                        base = Mux(pr_slot == 0, lane(b_rp.data, k, ab), v[k])
                        m.d.sync += v[k].eq(base + prod[k])
                    with m.If(pr_slot == S - 1):
                        m.next = "FULL"
            with m.State("FULL"):          # the word waits for the emit side
                with m.If(emit_free):
                    m.d.comb += handoff.eq(1)
                    m.d.sync += [e[k].eq(v[k]) for k in range(L)]
                    with m.If(w == NW - 1):
                        reset_acc()
                        m.next = "IDLE"
                    with m.Else():
                        step_acc()
                        start_group()

        ln = Signal(range(L))
        vsel = Signal(signed(ab))
        m.d.comb += vsel.eq(Array(e)[ln])
        j = Signal(range(self.groups * L * self.positions))
        m.d.comb += j.eq(neuron_of(ln))
        lane_ok = lane_ok_of(ln)
        last = last_lane(ln)

        def group_done():
            with m.If(ew == NW - 1):
                reset_emit()
                if self.is_output:
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                else:
                    m.next = "END"
            with m.Else():
                step_emit()
                m.next = "IDLE"

        with m.FSM(name="emit"):
            with m.State("IDLE"):
                m.d.comb += emit_free.eq(1)
                with m.If(handoff):
                    m.d.sync += ln.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                if self.is_output:
                    emit_result(m, self.result, vsel=vsel, best_bits=self.ab, n_out=self.n_out, j=j, lane_ok=lane_ok, ln=ln,
                                last=last, group_done=group_done)
                else:
                    self._emit_events(m, vsel, j, lane_ok, last, ln, tb, group_done)
            if not self.is_output:
                with m.State("END"):
                    o = self.o_events
                    m.d.comb += [o.valid.eq(1), o.payload.end.eq(1)]
                    with m.If(o.ready):
                        m.d.sync += busy.eq(0)
                        m.next = "IDLE"

    def _emit_events(self, m, vsel, j, lane_ok, last, ln, tb, group_done) -> None:
        """Lane ``ln`` goes through two prepare stages (fire: ``t_e`` and the residue; then
        calibrate: ``t_c``) into the event buffer while earlier lanes' events leave."""
        neuron = self.layer.neuron
        fired, t_e, r = ttfs_fire(m, vsel, neuron, tb)
        a_valid, a_keep, a_fired = Signal(), Signal(), Signal()
        a_j, a_te, a_r = Signal.like(j), Signal(tb), Signal.like(r)
        e = ttfs_calibrate(m, a_fired, a_te, a_r, neuron, tb)
        prepared = Signal()                # every lane of the group has left the fire stage
        b_load, a_load = Signal(), Signal()
        free, _ = event_buffer(m, self.o_events, calibrated=neuron.calibrated, load=b_load,
                               neuron=a_j, e=e, keep=a_keep)
        m.d.comb += [b_load.eq(a_valid & free), a_load.eq(~prepared & (~a_valid | b_load))]
        with m.If(b_load):
            m.d.sync += a_valid.eq(0)
        with m.If(a_load):
            m.d.sync += [a_valid.eq(1), a_keep.eq(lane_ok), a_fired.eq(fired), a_j.eq(j),
                         a_te.eq(t_e), a_r.eq(r)]
            with m.If(last):
                m.d.sync += [ln.eq(0), prepared.eq(1)]
            with m.Else():
                m.d.sync += ln.eq(ln + 1)
        with m.If(prepared & ~a_valid & free):
            m.d.sync += prepared.eq(0)
            group_done()
