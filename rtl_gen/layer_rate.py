"""Rate-coded (IF, reset by subtraction) dense layer core.

A batch is one time step (the previous stage's events of step t, closed by its end marker),
or for a first layer fed direct pixels the whole frame: its current ``Σ W·x`` is the same every
step, so it is decoded once and the encode side runs T fire passes over it, clearing the bank
only in the last one. Fire pass over each group of ``lanes`` neurons:
``v = (t == 0 ? v0 : V) + b + P`` (a LIF, ``leak_shift`` k: ``V − (V >>> k)`` in place of ``V``,
docs/ir.md "Leaky rate neurons"); each lane in turn fires ``(j, t, 0)`` and subtracts
``theta`` if ``v >= theta`` (through a one-entry event buffer, one cycle per neuron); ``V`` is
written back. Hidden layers close each step with an end
marker whose ``time`` is the step; the output layer never fires and emits its membranes as
result beats in the last step's pass.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory

from snnfpga.ir import RateNeuron

from .layer_common import DenseLayerBase, emit_result, lane
from .luts import TTFSEncode, const_mul, event_buffer

__all__ = ["RateDenseLayer"]


class RateDenseLayer(DenseLayerBase):
    """A dense rate (IF) layer; see :class:`.layer_common.DenseLayerBase` for the members.

    Attributes
    ----------
    membranes : :class:`~amaranth.lib.memory.Memory`
        Submodule ``membranes``: the IF membranes ``V`` (``groups`` words, single-banked).
    """

    def __init__(self, net, index: int, *, lanes: int = 1, decode: str = "auto"):
        # rate spikes carry no decode LUT: ``decode`` is checked, and changes nothing
        super().__init__(net, index, lanes=lanes, decode=decode)
        self.membranes = self.word_memory(None, self.ab, self.words)
        self._membranes_rp = self.membranes.read_port()
        self._membranes_wp = self.membranes.write_port()

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        return (*super().memories, ("membranes", "membranes", self.membranes))

    def elaborate_encode(self, m: Module, bank, *, start, busy) -> None:
        L, G, T, ab = self.lanes, self.groups, self.T, self.ab
        neuron = self.layer.neuron
        v0 = neuron.v0 if isinstance(neuron, RateNeuron) else 0
        leak = getattr(neuron, "leak_shift", None)  # LIF (issue 12): no multiplier, one subtract
        m.submodules.membranes = self.membranes
        b_rp, v_rp, v_wp = self._bias_rp, self._membranes_rp, self._membranes_wp
        v = [Signal(signed(ab), name=f"v{k}") for k in range(L)]
        NW, P = self.words, self.positions
        # w: the partial-sum / membrane word (position·groups + g); g: its weight group (dense: w)
        w, g, _base_j, neuron_of, lane_ok_of, last_lane, step_word, reset_words = self.word_counters(m)
        t = Signal(range(T))
        ln = Signal(range(L))
        m.d.comb += [bank.r_addr.eq(w), b_rp.addr.eq(g), v_rp.addr.eq(w),
                     v_wp.addr.eq(w), v_wp.data.eq(Cat(*v))]
        vsel = Signal(signed(ab))
        m.d.comb += vsel.eq(Array(v)[ln])
        j = Signal(range(G * L * P))
        if P == 1:
            m.d.comb += j.eq(const_mul(g, L) + ln)
        else:
            m.d.comb += j.eq(neuron_of(ln))
        lane_ok = lane_ok_of(ln) if P > 1 else j < self.n_out
        last = last_lane(ln)
        last_step = t == T - 1
        clear = last_step if self.direct else 1

        def end_of_pass():
            reset_words()
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

        def next_group():
            with m.If(w == NW - 1):
                if self.is_output:
                    end_of_pass()
                else:
                    m.next = "END"
            with m.Else():
                step_word()
                m.next = "ACC0"

        if not self.is_output:
            o = self.o_events
            fire = Signal()
            m.d.comb += fire.eq(lane_ok & (vsel >= neuron.theta))
            prepared = Signal()

        with m.FSM(name="encode"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += busy.eq(1)
                    reset_words()
                    m.next = "ACC0"
            with m.State("ACC0"):          # reads of group g are issued
                m.next = "ACC1"
            with m.State("ACC1"):          # ... and their data is here
                m.d.comb += [bank.w_addr.eq(w), bank.w_data.eq(0), bank.w_en.eq(clear)]
                for k in range(L):
                    carried = lane(v_rp.data, k, ab)
                    if leak is not None:  # LIF leak (issue 12): V − (V >>> k), an arithmetic shift
                        carried = carried - (carried >> leak)
                    old = Mux(t == 0, v0, carried)
                    m.d.sync += v[k].eq(old + lane(b_rp.data, k, ab) + lane(bank.r_data, k, ab))
                m.d.sync += ln.eq(0)
                if self.is_output:
                    with m.If(last_step):
                        m.next = "EMIT"
                    with m.Else():
                        m.next = "WB"
                else:
                    m.next = "EMIT"
            with m.State("EMIT"):
                if self.is_output:
                    emit_result(m, self.result, vsel=vsel, best_bits=ab, n_out=self.n_out, j=j, lane_ok=lane_ok,
                                ln=ln, last=last, group_done=next_group)
                else:
                    # prepare lane ln (fire, subtract theta) into a one-entry event buffer
                    # while the previous spike leaves: one cycle per neuron
                    load = Signal()
                    free, _ = event_buffer(m, o, calibrated=False, load=load, neuron=j,
                                           e=TTFSEncode(fire, t, Const(0, 1), Const(0, 1)), keep=fire)
                    m.d.comb += load.eq(~prepared & free)
                    with m.If(load):
                        with m.If(fire):
                            m.d.sync += Array(v)[ln].eq(vsel - neuron.theta)
                        with m.If(last):
                            m.d.sync += [ln.eq(0), prepared.eq(1)]
                        with m.Else():
                            m.d.sync += ln.eq(ln + 1)
                    with m.If(prepared & free):
                        m.d.sync += prepared.eq(0)
                        m.next = "WB"
            with m.State("WB"):
                m.d.comb += v_wp.en.eq(1)
                next_group()
            if not self.is_output:
                with m.State("END"):
                    m.d.comb += [o.valid.eq(1), o.payload.end.eq(1), o.payload.time.eq(t)]
                    with m.If(o.ready):
                        end_of_pass()
