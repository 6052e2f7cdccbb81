"""Rate-coded (IF, reset by subtraction) dense layer core.

A batch is one time step (the previous stage's events of step t, closed by its end marker),
or for a first layer fed direct pixels the whole frame: its current ``Σ W·x`` is the same every
step, so it is decoded once and the encode side runs T fire passes over it, clearing the bank
only in the last one. Fire pass over each group of ``lanes`` neurons:
``v = (t == 0 ? v0 : V) + b + P`` (a LIF, ``leak_shift`` k: ``V − (V >>> k)`` in place of ``V``,
docs/ir.md "Leaky rate neurons"); every lane with ``v >= theta`` fires and subtracts ``theta``,
all lanes at once; ``V`` is written back and the word's spikes
``(j, t, 0)`` leave one a cycle, lowest lane first, while the next word is read: a pass costs
about three cycles a word plus one a spike, not one a neuron. Hidden layers close each step
with an end marker whose ``time`` is the step; the output layer never fires and emits its
membranes as result beats in the last step's pass, one a neuron.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory

from snnfpga.ir import RateNeuron

from .layer_common import DenseLayerBase, emit_result, lane
from .luts import lowest_set

__all__ = ["RateDenseLayer"]


class RateDenseLayer(DenseLayerBase):
    """A dense rate (IF) layer; see :class:`.layer_common.DenseLayerBase` for the members.

    Attributes
    ----------
    membranes : :class:`~amaranth.lib.memory.Memory`
        Submodule ``membranes``: the IF membranes ``V`` (``groups`` words, single-banked).
    """

    def __init__(self, net, index: int, *, lanes: int = 1, decode: str = "auto", single_bank: bool = False):
        # rate spikes carry no decode LUT: ``decode`` is checked, and changes nothing
        super().__init__(net, index, lanes=lanes, decode=decode, single_bank=single_bank)
        self.membranes = self.word_memory(None, self.ab, self.words)
        self._membranes_rp = self.membranes.read_port()
        self._membranes_wp = self.membranes.write_port()

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        return (*super().memories, ("membranes", "membranes", self.membranes))

    def elaborate_encode(self, m: Module, bank, *, start, busy) -> None:
        L, T, ab = self.lanes, self.T, self.ab
        neuron = self.layer.neuron
        v0 = neuron.v0 if isinstance(neuron, RateNeuron) else 0
        leak = getattr(neuron, "leak_shift", None)  # LIF (issue 12): no multiplier, one subtract
        m.submodules.membranes = self.membranes
        b_rp, v_rp, v_wp = self._bias_rp, self._membranes_rp, self._membranes_wp
        v = [Signal(signed(ab), name=f"v{k}") for k in range(L)]
        NW = self.words
        # two walks over the same words: the accumulate side's (addresses) runs ahead of the
        # emit side's (neuron numbers of the spikes or results still to leave)
        w, g, _, _, acc_lane_ok, _, step_acc, reset_acc = self.word_counters(m, "acc_word")
        _, _, _, neuron_of, lane_ok_of, last_lane, step_emit, reset_emit = self.word_counters(m, "emit_word")
        t = Signal(range(T))
        last_step = t == T - 1
        clear = last_step if self.direct else 1
        m.d.comb += [bank.r_addr.eq(w), b_rp.addr.eq(g), v_rp.addr.eq(w), v_wp.addr.eq(w)]
        if self.is_output:
            m.d.comb += v_wp.data.eq(Cat(*v))
        else:
            # every lane fires at once: v >= theta, and theta is subtracted before the write-back
            fire = Signal(L)
            m.d.comb += fire.eq(Cat(*(acc_lane_ok(k) & (v[k] >= neuron.theta) for k in range(L))))
            m.d.comb += v_wp.data.eq(Cat(*((v[k] - Mux(fire[k], neuron.theta, 0))[:ab] for k in range(L))))
            mask = Signal(L)               # emit side: lanes whose spike has yet to leave
            emit_free = mask == 0
            o = self.o_events
            spiking, ln = lowest_set(m, mask, "spike_lane", max(1, (L - 1).bit_length()))
            end_marker = Signal()
            m.d.comb += [o.valid.eq(spiking | end_marker), o.payload.end.eq(end_marker), o.payload.time.eq(t),
                         o.payload.kind.eq(0), o.payload.neuron.eq(neuron_of(ln))]
            with m.If(spiking & o.ready):
                left = mask & ~(Const(1, L) << ln)[:L]
                m.d.sync += mask.eq(left)
                with m.If(left == 0):
                    step_emit()
        if self.is_output:
            e = [Signal(signed(ab), name=f"e{k}") for k in range(L)]
            em_busy = Signal()             # emit side: a word's result beats are leaving
            emit_free = ~em_busy
            rl = Signal(range(L))
            vsel = Signal(signed(ab))
            m.d.comb += vsel.eq(Array(e)[rl])

            def result_done():
                m.d.sync += em_busy.eq(0)
                step_emit()

            with m.If(em_busy):
                emit_result(m, self.result, vsel=vsel, best_bits=ab, n_out=self.n_out, j=neuron_of(rl),
                            lane_ok=lane_ok_of(rl), ln=rl, last=last_lane(rl), group_done=result_done)

        def end_of_pass():
            reset_acc()
            reset_emit()
            m.d.sync += t.eq(Mux(last_step, 0, t + 1))
            if self.direct:
                with m.If(~last_step):
                    m.next = "ACC0"
                with m.Else():
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
            else:
                m.d.sync += busy.eq(0)
                m.next = "IDLE"

        with m.FSM(name="encode"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += busy.eq(1)
                    reset_acc()
                    reset_emit()
                    m.next = "ACC0"
            with m.State("ACC0"):          # reads of word w are issued
                m.next = "ACC1"
            with m.State("ACC1"):          # ... and their data is here
                m.d.comb += [bank.w_addr.eq(w), bank.w_data.eq(0), bank.w_en.eq(clear)]
                for k in range(L):
                    carried = lane(v_rp.data, k, ab)
                    if leak is not None:  # LIF leak (issue 12): V − (V >>> k), an arithmetic shift
                        carried = carried - (carried >> leak)
                    old = Mux(t == 0, v0, carried)
                    m.d.sync += v[k].eq(old + lane(b_rp.data, k, ab) + lane(bank.r_data, k, ab))
                m.next = "FULL"
            with m.State("FULL"):          # write V back, hand the spikes / results over
                with m.If(emit_free):
                    m.d.comb += v_wp.en.eq(1)
                    if self.is_output:
                        with m.If(last_step):
                            m.d.sync += [em_busy.eq(1), rl.eq(0)] + [e[k].eq(v[k]) for k in range(L)]
                        with m.Else():
                            step_emit()
                    else:
                        m.d.sync += mask.eq(fire)
                        with m.If(fire == 0):
                            step_emit()
                    with m.If(w == NW - 1):
                        m.next = "DRAIN"
                    with m.Else():
                        step_acc()
                        m.next = "ACC0"
            with m.State("DRAIN"):         # every word handed over: wait for the emit side
                with m.If(emit_free):
                    if self.is_output:
                        end_of_pass()
                    else:
                        m.next = "END"
            if not self.is_output:
                with m.State("END"):
                    m.d.comb += end_marker.eq(1)
                    with m.If(o.ready):
                        end_of_pass()
