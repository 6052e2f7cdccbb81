"""A compact 8N1 UART (amaranth 0.5 has none built in): a receiver and a transmitter.

Both are :class:`amaranth.lib.wiring.Component`\\ s with byte streams; the bit period is
``divisor`` clock cycles (``round(clk_hz / baud)``), at least 4.
"""

from amaranth import Module, Signal, Cat, Const
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from snnfpga.errors import BadOption

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; errors above 2 % are refused.

    8N1 sampling tolerates about ±4.5 % between the two ends in total, so half of it is
    left for the other end.
    """
    if baud <= 0:
        raise BadOption(f"baud must be positive, not {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise BadOption(f"baud {baud} is too fast for a {clk_hz / 1e6:g} MHz clock "
                         f"(needs at least 4 cycles per bit, got {clk_hz / baud:.2f})")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise BadOption(f"baud {baud} at {clk_hz / 1e6:g} MHz is off by {error:.1%} "
                         f"(divisor {divisor}); pick a baud rate closer to clk/N")
    return divisor


def _check_divisor(component, divisor):
    if not isinstance(divisor, int) or divisor < 4:
        component._MustUse__silence = True  # rejected before use: no "never used" warning
        raise TypeError(f"divisor must be an integer >= 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 receiver.

    Members
    -------
    rx : In(1)
        The serial line (idle high); synchronised inside.
    data : Out(stream.Signature(8))
        Received bytes. A UART cannot be paused: a byte not taken before the next one is
        complete is overwritten and ``overflow`` pulses.
    overflow : Out(1)
        One-cycle pulse: a byte was lost because ``data`` was not taken in time.
    frame_error : Out(1)
        One-cycle pulse: the stop bit was 0 (the byte is dropped).
    """

    def __init__(self, *, divisor: int):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "overflow": Out(1),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(d))
        bits = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                    # a glitch shorter than half a bit is not a start bit
                    with m.If(rx):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                        m.d.comb += self.overflow.eq(self.data.valid & ~self.data.ready)
                    with m.Else():
                        m.d.comb += self.frame_error.eq(1)
                    # resynchronise on the next falling edge (we are mid stop bit)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` while the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, *, divisor: int):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        # stop bit, 8 data bits, start bit; shifted out LSB first
        shreg = Signal(10, init=0x3FF)
        left = Signal(range(11))

        m.d.comb += self.tx.eq(shreg[0])
        m.d.comb += self.data.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.data.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                             left.eq(10), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [timer.eq(d - 1), shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1)]
        return m
