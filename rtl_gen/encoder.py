# amaranth: UnusedElaboratable=no
# (the memories and sub-components made in __init__ are used exactly when their owner is)
"""Input encoders (``input_coding == "spikes"``): pixels in, the ``in`` stage's events out.

(SC-)TTFS: each pixel is encoded as it arrives, exactly like a membrane (``ttfs_encode``).
Rate: an IF neuron per pixel (``v += x`` every step) needs the whole frame for every step, so
pixels are stored in a double-banked frame memory (frame f+1 streams in while frame f is
encoded) and the encoder runs T passes over it, keeping the membranes in a second memory.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from snnfpga.ir import Network, RateNeuron, TTFSNeuron

from .events import event_signature, index_bits, pixel_shape, time_bits
from .luts import event_buffer, ttfs_encode

__all__ = ["InputEncoder"]


class InputEncoder(wiring.Component):
    """Encodes pixels into spike events of stage ``in``.

    Parameters
    ----------
    net : Network
        Its ``input`` (``input_coding == "spikes"``) and ``timesteps``.

    Attributes
    ----------
    frame, membranes : :class:`~amaranth.lib.memory.Memory` or None
        Rate coding: submodules ``frame`` (two banks of ``input.size`` pixels) and
        ``membranes`` (one IF membrane per pixel); None for (SC-)TTFS.
    memories : tuple of ``(path, role, Memory)``
        Every memory inside this encoder.

    Members
    -------
    pixels : ``In(stream.Signature(pixel))``
        One pixel per beat, ``input.size`` beats per frame.
    o_events : ``Out(stream.Signature(EventLayout))``
        Events and end markers (one per frame for TTFS, one per step for rate).
    """

    def __init__(self, net: Network):
        if net.input.input_coding != "spikes":
            raise ValueError(f"input_coding must be 'spikes' for an input encoder, not {net.input.input_coding!r}")
        self.net = net
        self.n = net.input.size
        self.T = net.timesteps
        self.tb = time_bits(self.T)
        self.pshape = pixel_shape(net.input.bits, net.input.signed)
        self.frame = self.membranes = None
        neuron = net.input.neuron
        if isinstance(neuron, RateNeuron):
            self.frame = Memory(shape=self.pshape, depth=2 * self.n, init=[])
            self._frame_wp = self.frame.write_port()
            self._frame_rp = self.frame.read_port()
            self.vbits = (max(net.input.bits, bits_for(neuron.theta), bits_for(abs(neuron.v0)))
                          + bits_for(self.T) + 2)
            self.membranes = Memory(shape=signed(self.vbits), depth=self.n, init=[])
            self._membranes_wp = self.membranes.write_port()
            self._membranes_rp = self.membranes.read_port()
        super().__init__({"pixels": In(stream.Signature(self.pshape)),
                          "o_events": Out(event_signature(index_bits(self.n), self.tb))})

    @property
    def memories(self) -> tuple[tuple[str, str, Memory], ...]:
        if self.frame is None:
            return ()
        return (("frame", "frames", self.frame), ("membranes", "membranes", self.membranes))

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.frame is None:
            self._ttfs(m, self.net.input.neuron)
        else:
            self._rate(m, self.net.input.neuron)
        return m

    def _ttfs(self, m: Module, neuron: TTFSNeuron) -> None:
        """Each accepted pixel is encoded straight into a one-entry event buffer."""
        n = self.n
        o, p = self.o_events, self.pixels
        x = Signal(signed(self.net.input.bits + 1))
        m.d.comb += x.eq(p.payload)
        i = Signal(range(n))
        end = Signal()                     # the frame's last pixel is in: end marker next
        load = Signal()
        free, empty = event_buffer(m, o, calibrated=neuron.calibrated, load=load, neuron=i,
                                   e=ttfs_encode(m, x, neuron, self.tb))
        m.d.comb += [p.ready.eq(free & ~end), load.eq(p.valid & p.ready)]
        with m.If(load):
            m.d.sync += i.eq(Mux(i == n - 1, 0, i + 1))
            with m.If(i == n - 1):
                m.d.sync += end.eq(1)
        with m.If(end & empty):
            m.d.comb += [o.valid.eq(1), o.payload.end.eq(1), o.payload.time.eq(0), o.payload.kind.eq(0)]
            with m.If(o.ready):
                m.d.sync += end.eq(0)

    def _rate(self, m: Module, neuron: RateNeuron) -> None:
        n, T, vbits = self.n, self.T, self.vbits
        o, p = self.o_events, self.pixels
        m.submodules.frame = self.frame
        m.submodules.membranes = self.membranes
        f_wp, f_rp = self._frame_wp, self._frame_rp
        v_wp, v_rp = self._membranes_wp, self._membranes_rp
        # writer: fills bank wbank, then hands it to the reader
        wbank = Signal()
        wi = Signal(range(n))
        full = Signal()
        busy = Signal()
        start = Signal()
        m.d.comb += [p.ready.eq(~full), f_wp.addr.eq(Mux(wbank, n, 0) + wi), f_wp.data.eq(p.payload),
                     f_wp.en.eq(p.valid & p.ready)]
        with m.If(p.valid & p.ready):
            m.d.sync += wi.eq(Mux(wi == n - 1, 0, wi + 1))
            with m.If(wi == n - 1):
                m.d.sync += full.eq(1)
        with m.If(full & ~busy):
            m.d.comb += start.eq(1)
            m.d.sync += [full.eq(0), wbank.eq(~wbank)]
        # reader: T passes over bank ~wbank
        ri = Signal(range(n))
        t = Signal(range(T))
        m.d.comb += [f_rp.addr.eq(Mux(wbank, 0, n) + ri), v_rp.addr.eq(ri), v_wp.addr.eq(ri)]
        vnew = Signal(signed(vbits))
        m.d.comb += vnew.eq(Mux(t == 0, neuron.v0, v_rp.data) + f_rp.data)
        fire = vnew >= neuron.theta
        with m.FSM(name="in_encode"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [busy.eq(1), ri.eq(0), t.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.next = "FIRE"
            with m.State("FIRE"):
                m.d.comb += [o.valid.eq(fire), o.payload.neuron.eq(ri), o.payload.time.eq(t)]
                with m.If(~o.valid | o.ready):
                    m.d.comb += [v_wp.en.eq(1), v_wp.data.eq(vnew - Mux(fire, neuron.theta, 0))]
                    with m.If(ri == n - 1):
                        m.d.sync += ri.eq(0)
                        m.next = "END"
                    with m.Else():
                        m.d.sync += ri.eq(ri + 1)
                        m.next = "READ"
            with m.State("END"):
                m.d.comb += [o.valid.eq(1), o.payload.end.eq(1), o.payload.time.eq(t)]
                with m.If(o.ready):
                    with m.If(t == T - 1):
                        m.d.sync += [t.eq(0), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += t.eq(t + 1)
                        m.next = "READ"
