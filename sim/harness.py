"""The testbench's per-cycle work in HDL: a simulation-only wrapper of the generated top.

Driving pixels, sinking result beats and watching every event tap from cocotb costs Python
wake-ups on almost every clock, so a Verilator model that runs ~600k cycles/s simulated only
tens of frames a second. :class:`Harness` (Amaranth, never synthesised) does that work beside
the network in the simulator itself:

- a ring of ``ring_frames`` frames of pixels (``load_*``: cocotb writes one word of
  ``word_pixels`` pixels a cycle, and only while the ring has room), streamed into
  ``pixels`` in the same three phases as :mod:`sim.tb_network` (one at a time up to frame
  ``wait_upto``, then back to back, from frame ``stress_from`` with random pixel gaps and random
  result back-pressure from an LFSR when ``gaps`` / ``backpressure`` are set);
- every transfer it sees is printed with ``Print`` (Verilog ``$write``) as one line of text
  (read by :mod:`sim.trace`): ``@P`` a frame's first and last accepted pixel, ``@E`` a tap's event,
  ``@D`` a tap's end of frame (with the event of that cycle, if any), ``@R`` a result beat, ``@X`` a protocol error (a result beat offered while
  ``ready`` was low changed or vanished; a ring overrun). :mod:`sim.tb_harness` turns the
  lines into the same observations :mod:`sim.tb_network` writes, so :func:`sim.report`
  compares them the same way.

What stays in Python: the clock, the reset, loading the ring, and waiting for ``finished``.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Mux, Signal
from amaranth.hdl import Format, Print
from amaranth.lib.memory import Memory

from .runner import TopPorts, top_ports
from .trace import KIND_BITS, RING_FRAMES, TIME_BITS, TOPLEVEL, word_pixels

__all__ = ["Harness", "generate", "CLOCK"]

CLOCK_MODULE = "snn_harness_clock"
#: The harness' clock, free-running in the simulator: a clock cocotb drives costs VPI calls and
#: callbacks at every edge, as much time as the network's own logic. (Amaranth emits no delays.)
CLOCK = f"""
module {CLOCK_MODULE}(clk);
  output reg clk;
  initial clk = 1'b0;
  always #{{half}} clk = ~clk;
endmodule
"""

#: counters: wide enough for any run
COUNT_BITS = 32

def _lfsr_step(s):
    """One step of a 32-bit Galois LFSR (taps 32, 22, 2, 1): the random bits of the stress phase."""
    return Mux(s[0], (s >> 1) ^ 0x80200003, s >> 1)


class Harness(Elaboratable):
    """Pixel source, result sink and tap printer around the top ``summary["top"]`` (see module doc).

    Config inputs (held by cocotb for the whole run): ``n_frames``, ``wait_upto`` (frames
    ``0..wait_upto`` and ``stress_from`` start only once every earlier result is out),
    ``stress_from``, ``gaps``, ``backpressure``, ``seed``, ``start``. Outputs: ``loaded`` /
    ``consumed`` (frames written into / fully taken from the ring), ``taken`` (toggles with
    each frame taken), ``finished`` (every result and every tap's end of frame seen),
    ``gap_count`` / ``gap_cycles`` / ``gap_longest``, ``refused`` and the top's ``stat_*`` counters.
    """

    def __init__(self, summary: dict, ports: TopPorts, *, ring_frames: int = RING_FRAMES):
        if ring_frames < 2 or ring_frames & (ring_frames - 1):
            raise ValueError(f"ring_frames must be a power of two >= 2, not {ring_frames}")
        self.summary, self.top_ports, self.ring_frames = summary, ports, ring_frames
        inp = summary["input"]
        self.pixel_bits, self.size = int(inp["bits"]), int(inp["size"])
        self.word_pixels = word_pixels(summary)
        self.words = -(-self.size // self.word_pixels)  # words a frame
        self.acc_bits, self.cls_bits = int(summary["out_acc_bits"]), int(summary["cls_bits"])
        self.taps = [t["name"] for t in summary["taps"]]
        c = COUNT_BITS
        self.clk = Signal(name="clk")  # an output: the clock runs in the simulator (:data:`CLOCK`)
        self.rst = Signal(name="rst")
        self.n_frames = Signal(c, name="n_frames")
        self.wait_upto = Signal(c, name="wait_upto")
        self.stress_from = Signal(c, name="stress_from")
        self.gaps = Signal(name="gaps")
        self.backpressure = Signal(name="backpressure")
        self.start = Signal(name="start")
        self.seed = Signal(32, name="seed")
        self.load_valid = Signal(name="load_valid")
        self.load_data = Signal(self.word_pixels * self.pixel_bits, name="load_data")
        self.loaded = Signal(c, name="loaded")
        self.consumed = Signal(c, name="consumed")
        self.taken = Signal(name="taken")
        self.finished = Signal(name="finished")
        self.gap_count = Signal(c, name="gap_count")
        self.gap_cycles = Signal(c, name="gap_cycles")
        self.gap_longest = Signal(8, name="gap_longest")
        self.refused = Signal(c, name="refused")  # cycles a result beat waited for ready
        self.stats = {n: Signal(ports.width(n), name=n) for n in ("stat_cycles", "stat_events", "stat_frames")}

    def ports(self) -> list[Signal]:
        return [self.clk, self.rst, self.n_frames, self.wait_upto, self.stress_from, self.gaps, self.backpressure, self.start,
                self.seed, self.load_valid, self.load_data, self.loaded, self.consumed, self.taken,
                self.finished, self.gap_count, self.gap_cycles, self.gap_longest, self.refused,
                *self.stats.values()]

    def elaborate(self, platform) -> Module:
        m = Module()
        c, p_bits, W, P = COUNT_BITS, self.pixel_bits, self.words, self.word_pixels
        slot_bits = (self.ring_frames - 1).bit_length()
        # Every input is registered before use, the reset too: logic fed straight from a top-level
        # input is re-evaluated by Verilator whenever any input moves, i.e. on both clock edges.
        m.submodules.clock = Instance(CLOCK_MODULE, o_clk=self.clk)
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.inputs = ClockDomain("inputs", reset_less=True)
        rst = Signal()
        m.d.comb += [sync.clk.eq(self.clk), ClockSignal("inputs").eq(self.clk), sync.rst.eq(rst)]
        m.d.inputs += rst.eq(self.rst)
        i = {}
        for sig in (self.n_frames, self.wait_upto, self.stress_from, self.gaps, self.backpressure, self.start,
                    self.seed, self.load_valid, self.load_data):
            i[sig.name] = q = Signal.like(sig, name=f"{sig.name}_q")
            m.d.inputs += q.eq(sig)
        cycle = Signal(c)
        m.d.sync += cycle.eq(cycle + 1)

        # the network
        tp = self.top_ports
        pix_valid, pix_ready = Signal(), Signal()
        pix_payload = Signal(tp.width("pixels__payload"))
        res_valid, res_ready = Signal(), Signal()
        res_payload = Signal(tp.width("result__payload"))
        conns = {"i_clk": self.clk, "i_rst": rst, "i_pixels__valid": pix_valid,
                 "i_pixels__payload": pix_payload, "o_pixels__ready": pix_ready,
                 "o_result__valid": res_valid, "o_result__payload": res_payload, "i_result__ready": res_ready}
        conns.update({f"o_{n}": s for n, s in self.stats.items()})
        taps = []
        for t in self.taps:
            sig = {f: Signal(tp.width(f"{t}_{f}"), name=f"{t}_{f}") for f in ("valid", "done", "neuron", "time", "kind")}
            conns.update({f"o_{t}_{f}": s for f, s in sig.items()})
            taps.append(sig)
        m.submodules.top = Instance(self.summary["top"], **conns)

        lfsr = Signal(32, init=1)
        with m.If(~i["start"]):
            m.d.sync += lfsr.eq(i["seed"] | 1)
        with m.Else():
            m.d.sync += lfsr.eq(_lfsr_step(lfsr))

        # the ring of frames
        m.submodules.ring = ring = Memory(shape=P * p_bits, depth=self.ring_frames * W, init=[])
        wr, rd = ring.write_port(), ring.read_port(domain="comb")
        load_w = Signal(range(W))
        m.d.comb += [wr.addr.eq(self.loaded[:slot_bits] * W + load_w), wr.data.eq(i["load_data"]),
                     wr.en.eq(i["load_valid"])]
        with m.If(i["load_valid"]):
            with m.If(self.loaded - self.consumed >= self.ring_frames):
                m.d.sync += Print(Format("@X {:d} ring_overrun", cycle))
            m.d.sync += load_w.eq(Mux(load_w == W - 1, 0, load_w + 1))
            with m.If(load_w == W - 1):
                m.d.sync += self.loaded.eq(self.loaded + 1)

        # results: counted here because the pixel source waits on them
        results = Signal(c)
        last_bit = self.acc_bits + self.cls_bits
        res_take = res_valid & res_ready
        with m.If(res_take):
            m.d.sync += Print(Format("@R {:d} {:d}", cycle, res_payload))
            with m.If(res_payload[last_bit]):
                m.d.sync += results.eq(results + 1)
        stress_r = (results >= i["stress_from"]) & i["backpressure"]
        m.d.comb += res_ready.eq(~stress_r | (lfsr[8:11] < 5))  # ready 5/8 of the time under stress
        with m.If(res_valid & ~res_ready):
            m.d.sync += self.refused.eq(self.refused + 1)
        held, held_payload = Signal(), Signal.like(res_payload)
        m.d.sync += [held.eq(res_valid & ~res_ready), held_payload.eq(res_payload)]
        with m.If(held & (~res_valid | (res_payload != held_payload))):
            m.d.sync += Print(Format("@X {:d} result_not_steady", cycle))

        # the pixel source
        f, w, p = Signal(c), Signal(range(W)), Signal(range(P))
        gap, first = Signal(8), Signal(c)
        last_p = (self.size - 1) % P
        m.d.comb += [rd.addr.eq(f[:slot_bits] * W + w), pix_payload.eq(rd.data.word_select(p, p_bits))]
        waits = (f <= i["wait_upto"]) | (f == i["stress_from"])
        m.d.comb += pix_valid.eq(i["start"] & (f < i["n_frames"]) & (f < self.loaded) & (gap == 0)
                                 & ~(waits & (results < f)))
        with m.If(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(pix_valid & pix_ready):
            is_first = (w == 0) & (p == 0)
            is_last = (w == W - 1) & (p == last_p)
            with m.If(is_first):
                m.d.sync += first.eq(cycle)
            with m.If(is_last):
                m.d.sync += [Print(Format("@P {:d} {:d} {:d}", f, Mux(is_first, cycle, first), cycle)),
                             f.eq(f + 1), w.eq(0), p.eq(0), self.consumed.eq(f + 1), self.taken.eq(~self.taken)]
            with m.Elif(p == P - 1):
                m.d.sync += [w.eq(w + 1), p.eq(0)]
            with m.Else():
                m.d.sync += p.eq(p + 1)
            # a short pause before the next pixel, a quarter of the time under stress
            n = Mux(lfsr[2:4] == 3, 1, lfsr[2:4] + 1)
            with m.If(i["gaps"] & (f >= i["stress_from"]) & (lfsr[0:2] == 0)):
                m.d.sync += [gap.eq(n), self.gap_count.eq(self.gap_count + 1),
                             self.gap_cycles.eq(self.gap_cycles + n),
                             self.gap_longest.eq(Mux(n > self.gap_longest, n, self.gap_longest))]

        # the taps
        all_done = Const(1)
        for k, t in enumerate(taps):
            done = Signal(c, name=f"tap{k}_frames")
            # one field for the event (formatting is most of the cost of a line); the cycle only
            # where it is needed, at the end of a frame
            for f, width in (("kind", KIND_BITS), ("time", TIME_BITS)):
                if len(t[f]) > width:
                    raise ValueError(f"tap {k}: {f} has {len(t[f])} bits, the trace holds {width}")
            packed = Cat(t["kind"], Const(0, KIND_BITS - len(t["kind"])), t["time"],
                         Const(0, TIME_BITS - len(t["time"])), t["neuron"])
            with m.If(t["valid"] & ~t["done"]):
                m.d.sync += Print(Format("@E {:d} {:x}", k, packed))
            with m.Elif(t["done"]):
                m.d.sync += Print(Format("@D {:d} {:d} {:d} {:x}", k, cycle, t["valid"], packed))
            with m.If(t["done"]):
                m.d.sync += done.eq(done + 1)
            all_done = all_done & (done >= i["n_frames"])
        m.d.comb += self.finished.eq(i["start"] & (results >= i["n_frames"]) & all_done)
        return m


def generate(verilog: str, summary: dict, *, period_ns: int, ring_frames: int = RING_FRAMES) -> str:
    """The harness module (``TOPLEVEL``) around the top in ``verilog``, and its clock, as Verilog
    text (the simulator must support delays: Verilator's ``--timing``)."""
    from amaranth.back import verilog as back

    if period_ns < 2 or period_ns % 2:
        raise ValueError(f"the clock period must be an even number of ns, not {period_ns}")
    h = Harness(summary, top_ports(verilog, summary["top"]), ring_frames=ring_frames)
    return back.convert(h, name=TOPLEVEL, ports=h.ports(), emit_src=False) + CLOCK.format(half=period_ns // 2)
