"""The UART top: the network behind a serial port, speaking :mod:`boards.protocol`.

Two layers, as in amaranth-boards / Glasgow:

* :class:`UARTTop` is board-independent gateware (ports ``rx``, ``tx``, ``leds``,
  ``error``): request parser → network ``pixels``; network ``result`` → response serialiser.
  The cocotb testbench simulates exactly this component.
* :class:`BoardTop` binds it to a platform: the USB serial UART, the LEDs, the board clock
  (the bit period comes from the platform's default clock and the requested baud rate).
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .protocol import SYNC, Protocol
from .uart import UARTRx, UARTTx, divisor_for

__all__ = ["UARTTop", "BoardTop", "DEFAULT_BAUD", "request_fifo_depth", "request_fifo_memory",
           "CORE_NAME", "REQUEST_FIFO_NAME", "UART_TOP_NAME"]

DEFAULT_BAUD = 115200
#: submodule names: the network core and the request FIFO in :class:`UARTTop` (the FIFO's
#: memory is ``fifo.storage``), the UART top in :class:`BoardTop`
CORE_NAME = "core"
REQUEST_FIFO_NAME = "fifo"
UART_TOP_NAME = "uart_top"
#: smallest request FIFO, bytes
MIN_REQUEST_FIFO = 16


def request_fifo_depth(protocol: Protocol) -> int:
    """Depth of :class:`UARTTop`'s request FIFO by default: one whole request
    (:attr:`Protocol.request_bytes`), at least :data:`MIN_REQUEST_FIFO` bytes.

    The FIFO is a :class:`~amaranth.lib.fifo.SyncFIFOBuffered`: its memory holds
    ``depth - 1`` bytes, the last one waits in its output register.
    """
    return max(MIN_REQUEST_FIFO, protocol.request_bytes)


def request_fifo_memory(net, fifo_depth: int | None = None):
    """The request FIFO's memory as a :class:`snnfpga.rtl_gen.MemoryDescription` (path in
    :class:`UARTTop`): ``fifo_depth - 1`` bytes (:func:`request_fifo_depth` by default), as
    :class:`~amaranth.lib.fifo.SyncFIFOBuffered` keeps the last byte in its output register."""
    from snnfpga.rtl_gen import MemoryDescription

    depth = request_fifo_depth(Protocol.for_network(net)) if fifo_depth is None else fifo_depth
    return MemoryDescription(path=f"{REQUEST_FIFO_NAME}.storage", stage="uart", role="frames",
                             depth=depth - 1, width=8, initialised=False)


def _result_fields(core):
    """Widths of the core's result payload (``membrane``, ``cls``, ``last``)."""
    layout = core.signature.members["result"].signature.members["payload"].shape
    fields = {name: f.width for name, f in layout}
    for name in ("membrane", "cls", "last"):
        if name not in fields:
            raise TypeError(f"core.result payload must have a {name!r} field, not {layout!r}")
    return fields


class UARTTop(wiring.Component):
    """A network core behind an 8N1 UART.

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
        Request FIFO depth in bytes; by default one whole request, so a host can send a
        frame at line rate while the network is busy.
    led_width : int
        Width of ``leds``: the last class in binary (low bits), and, when there is room
        above the class bits, a sticky error flag in the top LED.

    Members
    -------
    rx : In(1)
        Serial line from the host.
    tx : Out(1)
        Serial line to the host.
    leds : Out(led_width)
        The last class (and the error flag if there is room).
    error : Out(1)
        Sticky: a received byte was lost or had a framing error since reset.
    """

    def __init__(self, net, *, divisor: int, lanes: int = 1, core=None, fifo_depth: int | None = None,
                 led_width: int = 8):
        try:
            self._setup(net, divisor=divisor, lanes=lanes, core=core, fifo_depth=fifo_depth,
                        led_width=led_width)
        except Exception:
            self._MustUse__silence = True  # rejected before use: no "never used" warning
            raise
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "leds": Out(led_width),
            "error": Out(1),
        })

    def _setup(self, net, *, divisor, lanes, core, fifo_depth, led_width):
        self.protocol = Protocol.for_network(net)
        if core is None:
            from snnfpga.rtl_gen import NetworkTop  # lazy: the only dependency on the generator
            core = NetworkTop(net, lanes=lanes)
        self.core = core
        self._fields = _result_fields(core)
        if self._fields["membrane"] != self.protocol.out_acc_bits:
            raise ValueError(f"core membrane width must be the output acc_bits "
                             f"{self.protocol.out_acc_bits}, not {self._fields['membrane']!r}")
        self._divisor = divisor
        if fifo_depth is None:
            fifo_depth = request_fifo_depth(self.protocol)
        if not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise TypeError(f"fifo_depth must be an integer >= 2, not {fifo_depth!r}")
        self._fifo_depth = fifo_depth
        if not isinstance(led_width, int) or led_width < 1:
            raise TypeError(f"led_width must be a positive integer, not {led_width!r}")
        if not isinstance(divisor, int) or divisor < 4:
            raise TypeError(f"divisor must be an integer >= 4, not {divisor!r}")

    @property
    def fifo_depth(self) -> int:
        """Depth of the request FIFO, bytes."""
        return self._fifo_depth

    def elaborate(self, platform):
        m = Module()
        p = self.protocol
        m.submodules[CORE_NAME] = core = self.core
        m.submodules.uart_rx = urx = UARTRx(divisor=self._divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self._divisor)
        fifo = SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        m.submodules[REQUEST_FIFO_NAME] = fifo
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # ---- receive: UART → FIFO (a UART cannot wait: full FIFO = lost byte = error)
        m.d.comb += [fifo.w_data.eq(urx.data.payload), fifo.w_en.eq(urx.data.valid),
                     urx.data.ready.eq(fifo.w_rdy)]
        error = Signal()
        with m.If(urx.overflow | urx.frame_error):
            m.d.sync += error.eq(1)
        m.d.comb += self.error.eq(error)

        # ---- request parser: sync byte, then size pixels of pixel_bytes little-endian bytes
        npix = p.input_size
        nb = p.pixel_bytes
        pix_count = Signal(range(npix))
        byte_idx = Signal(range(max(nb, 2)))
        pix_reg = Signal(8 * nb)
        m.d.comb += core.pixels.payload.eq(pix_reg[:p.input_bits])
        with m.FSM(name="rx_fsm"):
            with m.State("SYNC"):
                m.d.comb += fifo.r_en.eq(1)
                with m.If(fifo.r_rdy & (fifo.r_data == SYNC)):
                    m.d.sync += [pix_count.eq(0), byte_idx.eq(0)]
                    m.next = "BYTE"
            with m.State("BYTE"):
                m.d.comb += fifo.r_en.eq(1)
                with m.If(fifo.r_rdy):
                    if nb == 1:
                        m.d.sync += pix_reg.eq(fifo.r_data)
                        m.next = "PIXEL"
                    else:
                        m.d.sync += pix_reg.eq(Cat(pix_reg[8:], fifo.r_data))
                        m.d.sync += byte_idx.eq(byte_idx + 1)
                        with m.If(byte_idx == nb - 1):
                            m.d.sync += byte_idx.eq(0)
                            m.next = "PIXEL"
            with m.State("PIXEL"):
                m.d.comb += core.pixels.valid.eq(1)
                with m.If(core.pixels.ready):
                    m.d.sync += pix_count.eq(pix_count + 1)
                    with m.If(pix_count == npix - 1):
                        m.next = "SYNC"
                    with m.Else():
                        m.next = "BYTE"

        # ---- response serialiser: each result beat → membrane bytes; after the last, the class
        mb = p.membrane_bytes
        mw = self._fields["membrane"]
        shreg = Signal(8 * mb)
        sent = Signal(range(max(mb, 2)))
        last = Signal()
        cls = Signal(8)
        leds = Signal(len(self.leds))
        res = core.result.payload
        with m.FSM(name="tx_fsm"):
            with m.State("WAIT"):
                m.d.comb += core.result.ready.eq(1)
                with m.If(core.result.valid):
                    membrane = res.membrane.as_signed()
                    m.d.sync += [shreg.eq(membrane), sent.eq(0),
                                 last.eq(res.last), cls.eq(res.cls)]
                    m.next = "MEMBRANE"
            with m.State("MEMBRANE"):
                m.d.comb += [utx.data.payload.eq(shreg[:8]), utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    m.d.sync += [shreg.eq(shreg >> 8), sent.eq(sent + 1)]
                    with m.If(sent == mb - 1):
                        with m.If(last):
                            m.next = "CLASS"
                        with m.Else():
                            m.next = "WAIT"
            with m.State("CLASS"):
                m.d.comb += [utx.data.payload.eq(cls), utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    m.d.sync += leds.eq(cls)
                    m.next = "WAIT"

        cls_bits = self._fields["cls"]
        if len(self.leds) > cls_bits:
            m.d.comb += self.leds.eq(Cat(leds[:cls_bits], Const(0, len(self.leds) - cls_bits - 1), error))
        else:
            m.d.comb += self.leds.eq(leds)
        assert mw <= 8 * mb
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
    """

    def __init__(self, net, *, baud: int = DEFAULT_BAUD, lanes: int = 1, core=None):
        self.net, self.baud, self.lanes, self.core = net, baud, lanes, core
        self.uart_top = None

    def elaborate(self, platform):
        m = Module()
        if platform is None:
            raise TypeError("BoardTop needs a platform (use UARTTop for simulation)")
        divisor = divisor_for(platform.default_clk_frequency, self.baud)
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
