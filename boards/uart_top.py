"""The UART top: the network behind a serial port, speaking :mod:`boards.protocol`.

Two layers, as in amaranth-boards / Glasgow:

* :class:`UARTTop` is board-independent gateware (ports ``rx``, ``tx``, ``leds``,
  ``error``, ``dropped``): framed request parser → checked request buffer → network
  ``pixels``; network ``result`` → framed response serialiser. The cocotb testbench
  simulates exactly this component.
* :class:`BoardTop` binds it to a platform: the USB serial UART, the LEDs, the board clock
  (the bit period comes from the platform's default clock and the requested baud rate).

The request parser writes a request's pixel bytes into a ring buffer while the CRC
(:mod:`amaranth.lib.crc`, CRC-16/CCITT-FALSE) runs over them, and commits them only when the
CRC matches; otherwise (or after an idle gap mid-frame, a UART framing error, a full buffer or
a full frame-number queue) it rolls the buffer back and hunts for the next start marker. The
network therefore never sees a damaged request, and each committed request's frame number
waits in a small queue until its response goes out.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import DEFAULT_BAUD, MAX_WINDOW, RESYNC_IDLE_BITS, SYNC, Protocol
from .uart import UARTRx, UARTTx, divisor_for

__all__ = ["UARTTop", "BoardTop", "DEFAULT_BAUD", "request_fifo_depth", "request_fifo_memory", "request_fifo_width",
           "CORE_NAME", "REQUEST_FIFO_NAME", "UART_TOP_NAME", "CRC_ALGORITHM"]

#: submodule names: the network core and the request buffer in :class:`UARTTop` (the buffer's
#: memory is ``fifo.storage``), the UART top in :class:`BoardTop`
CORE_NAME = "core"
REQUEST_FIFO_NAME = "fifo"
UART_TOP_NAME = "uart_top"
#: smallest request buffer, bytes
MIN_REQUEST_FIFO = 16
#: the CRC of both directions (:func:`boards.protocol.crc16` in software)
CRC_ALGORITHM = catalog.CRC16_CCITT_FALSE


def request_fifo_depth(protocol: Protocol) -> int:
    """Depth of :class:`UARTTop`'s request buffer by default, bytes: the smallest power of two
    holding one request's pixels (:attr:`Protocol.payload_bytes`), at least
    :data:`MIN_REQUEST_FIFO`. Marker, frame number and CRC are not stored."""
    return 1 << (max(MIN_REQUEST_FIFO, protocol.payload_bytes) - 1).bit_length()


def request_fifo_memory(net, fifo_depth: int | None = None):
    """The request buffer's memory as a :class:`snnfpga.rtl_gen.MemoryDescription` (path in
    :class:`UARTTop`): ``fifo_depth`` bytes (:func:`request_fifo_depth` by default)."""
    from snnfpga.rtl_gen import MemoryDescription

    protocol = Protocol.for_network(net)
    depth = request_fifo_depth(protocol) if fifo_depth is None else fifo_depth
    return MemoryDescription(path=f"{REQUEST_FIFO_NAME}.storage", stage="uart", role="frames",
                             depth=depth, width=request_fifo_width(protocol), initialised=False)


def request_fifo_width(protocol: Protocol) -> int:
    """Bits of a request buffer entry: a pixel's bits when a pixel is one byte (the host sends
    them range-checked and the CRC has passed, so the bits above are zero or copies of the sign),
    else a byte. 4-bit pixels of a 28×28 frame then take one iCE40 block RAM, not two."""
    return protocol.input_bits if protocol.pixel_bytes == 1 else 8


def _result_fields(core):
    """Widths of the core's result payload (``membrane``, ``cls``, ``last``)."""
    layout = core.signature.members["result"].signature.members["payload"].shape
    fields = {name: f.width for name, f in layout}
    for name in ("membrane", "cls", "last"):
        if name not in fields:
            raise TypeError(f"core.result payload must have a {name!r} field, not {layout!r}")
    return fields


class UARTTop(wiring.Component):
    """A network core behind an 8N1 UART speaking the framed protocol of :mod:`boards.protocol`.

    Parameters
    ----------
    net : snnfpga.ir.Network
        The network (it fixes the protocol: pixel and membrane widths, sizes).
    divisor : int
        Clock cycles per UART bit.
    lanes : int
        Passed to :class:`rtl_gen.NetworkTop`.
    core : wiring.Component, optional
        The network core to wrap; by default ``rtl_gen.NetworkTop(net, lanes=lanes)``. It must
        have ``pixels`` (stream in) and ``result`` (stream out, payload with ``membrane``,
        ``cls``, ``last``) as in docs/hardware.md. Tests pass a stand-in here.
    fifo_depth : int, optional
        Request buffer depth in bytes, a power of two holding at least one request's pixels;
        by default :func:`request_fifo_depth`.
    led_width : int
        Width of ``leds``: the last class in binary (low bits), and, when there is room
        above the class bits, a sticky error flag in the top LED.
    idle_timeout_bits : int
        A request with no byte for this many bit times mid-frame is dropped (default
        :data:`~boards.protocol.RESYNC_IDLE_BITS`; simulations shorten it).

    Members
    -------
    rx : In(1)
        Serial line from the host.
    tx : Out(1)
        Serial line to the host.
    leds : Out(led_width)
        The last class (and the error flag if there is room).
    error : Out(1)
        Sticky: a request was dropped or a byte had a UART framing error since reset.
    dropped : Out(16)
        Requests dropped since reset (CRC, idle gap, framing error, no room), saturating.
    """

    def __init__(self, net, *, divisor: int, lanes: int = 1, core=None, fifo_depth: int | None = None,
                 led_width: int = 8, idle_timeout_bits: int = RESYNC_IDLE_BITS):
        try:
            self._setup(net, divisor=divisor, lanes=lanes, core=core, fifo_depth=fifo_depth,
                        led_width=led_width, idle_timeout_bits=idle_timeout_bits)
        except Exception:
            self._MustUse__silence = True  # rejected before use: no "never used" warning
            raise
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "leds": Out(led_width),
            "error": Out(1),
            "dropped": Out(16),
        })

    def _setup(self, net, *, divisor, lanes, core, fifo_depth, led_width, idle_timeout_bits):
        self.protocol = Protocol.for_network(net)
        if not isinstance(divisor, int) or divisor < 4:
            raise TypeError(f"divisor must be an integer >= 4, not {divisor!r}")
        if fifo_depth is None:
            fifo_depth = request_fifo_depth(self.protocol)
        if (not isinstance(fifo_depth, int) or fifo_depth < self.protocol.payload_bytes
                or fifo_depth & (fifo_depth - 1)):
            raise TypeError(f"fifo_depth must be a power of two >= {self.protocol.payload_bytes} "
                            f"(one request's pixel bytes), not {fifo_depth!r}")
        if not isinstance(led_width, int) or led_width < 1:
            raise TypeError(f"led_width must be a positive integer, not {led_width!r}")
        if not isinstance(idle_timeout_bits, int) or idle_timeout_bits < 20:
            raise TypeError(f"idle_timeout_bits must be an integer >= 20 (two byte times), "
                            f"not {idle_timeout_bits!r}")
        if core is None:
            from snnfpga.rtl_gen import NetworkTop  # lazy: the only dependency on the generator
            core = NetworkTop(net, lanes=lanes)
        self.core = core
        self._fields = _result_fields(core)
        if self._fields["membrane"] != self.protocol.out_acc_bits:
            raise ValueError(f"core membrane width must be the output acc_bits "
                             f"{self.protocol.out_acc_bits}, not {self._fields['membrane']!r}")
        self._divisor = divisor
        self._fifo_depth = fifo_depth
        self._idle_timeout_bits = idle_timeout_bits

    @property
    def fifo_depth(self) -> int:
        """Depth of the request buffer, bytes."""
        return self._fifo_depth

    def elaborate(self, platform):
        m = Module()
        p = self.protocol
        m.submodules[CORE_NAME] = core = self.core
        m.submodules.uart_rx = urx = UARTRx(divisor=self._divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self._divisor)
        m.submodules.rx_crc = rx_crc = CRC_ALGORITHM(data_width=8).create()
        m.submodules.tx_crc = tx_crc = CRC_ALGORITHM(data_width=8).create()
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # ---- request buffer: a ring of fifo_depth bytes; pointers carry one wrap bit.
        # wptr: next byte of the request being received; cptr: end of the committed requests;
        # rptr: next byte for the network. A dropped request rolls wptr back to cptr.
        depth = self._fifo_depth
        abits = (depth - 1).bit_length()
        buf = Module()
        buf.submodules.storage = mem = Memory(shape=request_fifo_width(p), depth=depth, init=[])
        wport = mem.write_port()
        rport = mem.read_port(transparent_for=())
        m.submodules[REQUEST_FIFO_NAME] = buf
        wptr, cptr, rptr = (Signal(abits + 1, name=n) for n in ("wptr", "cptr", "rptr"))
        full = Signal()
        m.d.comb += full.eq((wptr ^ rptr) == (1 << abits))

        # ---- frame numbers of committed requests, until their response has gone out
        qbits = (MAX_WINDOW - 1).bit_length()
        queue = Array(Signal(8, name=f"seq_q{i}") for i in range(MAX_WINDOW))
        qhead, qtail = Signal(qbits + 1), Signal(qbits + 1)
        q_full = Signal()
        m.d.comb += q_full.eq((qhead ^ qtail) == (1 << qbits))

        # ---- request parser: every received byte is taken at once (a UART cannot wait)
        m.d.comb += urx.data.ready.eq(1)
        byte, got = urx.data.payload, urx.data.valid
        seq = Signal(8)
        count = Signal(range(max(p.payload_bytes, 2)))
        bad = Signal()
        error = Signal()
        dropped = Signal(16)
        timeout_cycles = self._idle_timeout_bits * self._divisor
        idle = Signal(range(timeout_cycles + 1))
        idle_out = Signal()
        m.d.comb += [idle_out.eq(idle == timeout_cycles), rx_crc.data.eq(byte),
                     self.error.eq(error), self.dropped.eq(dropped),
                     wport.addr.eq(wptr[:abits]), wport.data.eq(byte)]
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Elif(~idle_out):
            m.d.sync += idle.eq(idle + 1)
        with m.If(urx.frame_error):
            m.d.sync += [error.eq(1), bad.eq(1)]

        def drop():
            m.d.sync += [wptr.eq(cptr), error.eq(1)]
            with m.If(dropped != 0xFFFF):
                m.d.sync += dropped.eq(dropped + 1)
            m.next = "HUNT"

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC[0])):
                    m.next = "MARK"
            with m.State("MARK"):
                with m.If(got):
                    with m.If(byte == SYNC[1]):
                        m.d.sync += [bad.eq(0), count.eq(0)]
                        m.next = "SEQ"
                    with m.Elif(byte != SYNC[0]):
                        m.next = "HUNT"
                with m.Elif(idle_out):
                    m.next = "HUNT"
            with m.State("SEQ"):
                with m.If(got):
                    m.d.comb += [rx_crc.start.eq(1), rx_crc.valid.eq(1)]
                    m.d.sync += seq.eq(byte)
                    m.next = "DATA"
                with m.Elif(idle_out):
                    drop()
            with m.State("DATA"):
                with m.If(got):
                    m.d.comb += rx_crc.valid.eq(1)
                    with m.If(full):
                        m.d.sync += bad.eq(1)
                    with m.Else():
                        m.d.comb += wport.en.eq(1)
                        m.d.sync += wptr.eq(wptr + 1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == p.payload_bytes - 1):
                        m.next = "CRC_HI"
                with m.Elif(idle_out):
                    drop()
            with m.State("CRC_HI"):
                with m.If(got):
                    m.d.comb += rx_crc.valid.eq(1)
                    m.next = "CRC_LO"
                with m.Elif(idle_out):
                    drop()
            with m.State("CRC_LO"):
                with m.If(got):
                    m.d.comb += rx_crc.valid.eq(1)
                    m.next = "CHECK"
                with m.Elif(idle_out):
                    drop()
            with m.State("CHECK"):  # the CRC register has taken the last byte
                with m.If(rx_crc.match_detected & ~bad & ~q_full):
                    m.d.sync += [cptr.eq(wptr), queue[qtail[:qbits]].eq(seq), qtail.eq(qtail + 1)]
                    m.next = "HUNT"
                with m.Else():
                    drop()

        # ---- buffer → network: committed bytes, little-endian pixel by pixel
        nb = p.pixel_bytes
        byte_idx = Signal(range(max(nb, 2)))
        pix_reg = Signal(8 * nb)
        m.d.comb += [rport.addr.eq(rptr[:abits]), core.pixels.payload.eq(pix_reg[:p.input_bits])]
        with m.FSM(name="pix_fsm"):
            with m.State("FETCH"):
                with m.If(rptr != cptr):
                    m.d.comb += rport.en.eq(1)
                    m.d.sync += rptr.eq(rptr + 1)
                    m.next = "BYTE"
            with m.State("BYTE"):
                if nb == 1:  # the entry holds the pixel's bits
                    m.d.sync += pix_reg.eq(rport.data)
                    m.next = "PIXEL"
                else:
                    m.d.sync += [pix_reg.eq(Cat(pix_reg[8:], rport.data)), byte_idx.eq(byte_idx + 1)]
                    with m.If(byte_idx == nb - 1):
                        m.d.sync += byte_idx.eq(0)
                        m.next = "PIXEL"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("PIXEL"):
                m.d.comb += core.pixels.valid.eq(1)
                with m.If(core.pixels.ready):
                    m.next = "FETCH"

        # ---- response serialiser: marker, seq, each result beat's membrane bytes, class, CRC
        mb = p.membrane_bytes
        mw = self._fields["membrane"]
        assert mw <= 8 * mb
        shreg = Signal(8 * mb)
        sent = Signal(range(max(mb, 2)))
        last = Signal()
        cls = Signal(8)
        crc_lo = Signal(8)
        leds = Signal(len(self.leds))
        res = core.result.payload
        tx_seq = queue[qhead[:qbits]]
        txd = utx.data
        m.d.comb += tx_crc.data.eq(txd.payload)
        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(core.result.valid):
                    m.next = "SYNC0"
            with m.State("SYNC0"):
                m.d.comb += [txd.payload.eq(SYNC[0]), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.next = "SYNC1"
            with m.State("SYNC1"):
                m.d.comb += [txd.payload.eq(SYNC[1]), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.next = "SEQ"
            with m.State("SEQ"):
                m.d.comb += [txd.payload.eq(tx_seq), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.d.comb += [tx_crc.start.eq(1), tx_crc.valid.eq(1)]
                    m.next = "BEAT"
            with m.State("BEAT"):
                m.d.comb += core.result.ready.eq(1)
                with m.If(core.result.valid):
                    m.d.sync += [shreg.eq(res.membrane.as_signed()), sent.eq(0), last.eq(res.last),
                                 cls.eq(res.cls)]
                    m.next = "MEMBRANE"
            with m.State("MEMBRANE"):
                m.d.comb += [txd.payload.eq(shreg[:8]), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.d.comb += tx_crc.valid.eq(1)
                    m.d.sync += [shreg.eq(shreg >> 8), sent.eq(sent + 1)]
                    with m.If(sent == mb - 1):
                        with m.If(last):
                            m.next = "CLASS"
                        with m.Else():
                            m.next = "BEAT"
            with m.State("CLASS"):
                m.d.comb += [txd.payload.eq(cls), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.d.comb += tx_crc.valid.eq(1)
                    m.next = "CRC_HI"
            with m.State("CRC_HI"):  # the CRC register has taken the class byte
                m.d.comb += [txd.payload.eq(tx_crc.crc[8:]), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.d.sync += crc_lo.eq(tx_crc.crc[:8])
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                m.d.comb += [txd.payload.eq(crc_lo), txd.valid.eq(1)]
                with m.If(txd.ready):
                    m.d.sync += [leds.eq(cls), qhead.eq(qhead + 1)]
                    m.next = "IDLE"

        cls_bits = self._fields["cls"]
        if len(self.leds) > cls_bits:
            m.d.comb += self.leds.eq(Cat(leds[:cls_bits], Const(0, len(self.leds) - cls_bits - 1), error))
        else:
            m.d.comb += self.leds.eq(leds)
        return m


class BoardTop(Elaboratable):
    """:class:`UARTTop` on a board: UART 0 of the platform, its LEDs, its default clock.

    Parameters
    ----------
    net : snnfpga.ir.Network
    baud : int
        Line rate; the divisor is ``round(clk / baud)`` of the platform's default clock.
    lanes : int
    core : optional, see :class:`UARTTop`.
    clock : boards.clock.ClockGenerator, optional
        Drives ``sync`` from a PLL (defined here); the baud divisor is then of its frequency.
    """

    def __init__(self, net, *, baud: int = DEFAULT_BAUD, lanes: int = 1, core=None, clock=None):
        self.net, self.baud, self.lanes, self.core = net, baud, lanes, core
        self.clock = clock
        self.uart_top = None

    def elaborate(self, platform):
        m = Module()
        if platform is None:
            raise TypeError("BoardTop needs a platform (use UARTTop for simulation)")
        clk_hz = platform.default_clk_frequency
        if self.clock is not None:  # the domain lives here, the generator drives it (boards/clock.py)
            from amaranth import ClockDomain

            m.domains.sync = ClockDomain("sync")
            m.submodules.clock = self.clock
            clk_hz = self.clock.frequency
        divisor = divisor_for(clk_hz, self.baud)
        leds = []
        for i in range(8):
            try:
                leds.append(platform.request("led", i, dir="-"))
            except Exception:  # ResourceError: the board has fewer LEDs
                break
        self.uart_top = top = UARTTop(self.net, divisor=divisor, lanes=self.lanes, core=self.core,
                                      led_width=max(1, len(leds)))
        m.submodules[UART_TOP_NAME] = top

        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx_buf.i), tx_buf.o.eq(top.tx)]
        for i, led in enumerate(leds):
            buf = io.Buffer("o", led)
            m.submodules[f"led_buf_{i}"] = buf
            m.d.comb += buf.o.eq(top.leds[i])
        return m
