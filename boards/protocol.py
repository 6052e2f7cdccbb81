"""The byte protocol between a host and the UART top (pure Python: no amaranth, no pyserial).

The same code runs against the cocotb testbench (``sim/tb_uart.py``) and against a board
(:mod:`boards.host`), so what is proven in simulation is what the host sends.

Wire format (8N1, the board's USB serial port, default 115200 baud)
------------------------------------------------------------------

Request, host → device, one per frame::

    0xA5  p[0] p[1] … p[size-1]

* ``0xA5`` is the frame sync byte. Bytes that arrive while the device waits for a sync
  byte and are not ``0xA5`` are dropped, so a host can always start cleanly with a sync
  byte after a reset or a garbled transfer between frames.
* ``size = net.input.size`` pixels in flattened C order, each ``pixel_bytes =
  ceil(input.bits / 8)`` bytes, **little-endian**, two's complement when ``input.signed``
  (so with ``input.bits <= 8`` a pixel is exactly one byte). A ``0xA5`` byte inside the pixel
  data is data: the device counts bytes, it does not search for sync inside a frame.
* The device buffers one whole request in a FIFO, so the host may send it at full line rate
  even while the network is still busy with the previous frame.

Response, device → host, one per frame::

    m[0] m[1] … m[n_classes-1]  cls

* ``m[k]`` is output membrane ``k`` as a **little-endian two's complement** integer of
  ``membrane_bytes = ceil(out_acc_bits / 8)`` bytes (``out_acc_bits`` = the output layer's
  ``acc_bits``);
* ``cls`` (one byte) is the class: the argmax of the membranes, lowest index on ties.
  It comes *last* because the network's result stream carries it on its last beat: the
  device forwards membranes as they come and needs no buffer. The class is also shown
  in binary on the board's LEDs.

Flow control: the host sends at most ``window`` requests before reading their responses
(default 1: send, wait, read). The device's request FIFO holds one frame; responses are
never dropped (the network waits for the transmitter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from snnfpga.errors import UserError

__all__ = ["SYNC", "Protocol", "Response", "ProtocolError"]

#: the request sync byte
SYNC = 0xA5


class ProtocolError(UserError, ValueError):
    """A frame or a response that does not match the protocol; the message says what."""


@dataclass(frozen=True)
class Response:
    """One decoded response: the class and the output membranes."""

    cls: int
    membranes: tuple[int, ...]


@dataclass(frozen=True)
class Protocol:
    """Frame/response encoding for one network shape.

    Parameters
    ----------
    input_size : int
        Pixels per frame (``net.input.size``).
    input_bits : int
        Bits per pixel (``net.input.bits``, 1..16).
    input_signed : bool
        Whether pixels are two's complement.
    n_classes : int
        Output membranes per response.
    out_acc_bits : int
        Width of an output membrane (the output layer's ``acc_bits``).
    """

    input_size: int
    input_bits: int
    input_signed: bool
    n_classes: int
    out_acc_bits: int

    def __post_init__(self):
        if self.input_size <= 0:
            raise ProtocolError(f"input_size must be positive, not {self.input_size!r}")
        if not 1 <= self.input_bits <= 16:
            raise ProtocolError(f"input_bits must be in 1..16, not {self.input_bits!r}")
        if not 1 <= self.n_classes <= 256:
            raise ProtocolError(f"n_classes must be in 1..256 (the class is one byte), not {self.n_classes!r}")
        if self.out_acc_bits <= 0:
            raise ProtocolError(f"out_acc_bits must be positive, not {self.out_acc_bits!r}")

    @classmethod
    def for_network(cls, net) -> "Protocol":
        """The protocol of a :class:`snnfpga.ir.Network`."""
        return cls(input_size=net.input.size, input_bits=net.input.bits,
                   input_signed=net.input.signed, n_classes=net.n_classes,
                   out_acc_bits=net.output_layer.acc_bits)

    # ------------------------------------------------------------------ sizes
    @property
    def pixel_bytes(self) -> int:
        return (self.input_bits + 7) // 8

    @property
    def membrane_bytes(self) -> int:
        return (self.out_acc_bits + 7) // 8

    @property
    def request_bytes(self) -> int:
        return 1 + self.input_size * self.pixel_bytes

    @property
    def response_bytes(self) -> int:
        return self.n_classes * self.membrane_bytes + 1

    # ------------------------------------------------------------------ encode / decode
    def encode_frame(self, frame: Iterable[int]) -> bytes:
        """One request: the sync byte and the pixels (a flat or shaped integer array)."""
        pixels = [int(p) for p in _flatten(frame)]
        if len(pixels) != self.input_size:
            raise ProtocolError(f"a frame must have {self.input_size} pixels, not {len(pixels)}")
        if self.input_signed:
            lo, hi = -(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1
        else:
            lo, hi = 0, (1 << self.input_bits) - 1
        out = bytearray([SYNC])
        for i, p in enumerate(pixels):
            if not lo <= p <= hi:
                raise ProtocolError(f"pixel {i} is {p}, outside {lo}..{hi} for {self.input_bits}-bit "
                                    f"{'signed' if self.input_signed else 'unsigned'} input")
            out += (p & ((1 << (8 * self.pixel_bytes)) - 1)).to_bytes(self.pixel_bytes, "little")
        return bytes(out)

    def decode_response(self, data: bytes) -> Response:
        """One response (exactly :attr:`response_bytes` bytes) to class and membranes."""
        if len(data) != self.response_bytes:
            raise ProtocolError(f"a response must be {self.response_bytes} bytes, not {len(data)}")
        nb = self.membrane_bytes
        membranes = tuple(int.from_bytes(data[k * nb:(k + 1) * nb], "little", signed=True)
                          for k in range(self.n_classes))
        cls = data[-1]
        if cls >= self.n_classes:
            raise ProtocolError(f"class byte is {cls}, but the network has {self.n_classes} classes")
        return Response(cls=cls, membranes=membranes)

    def encode_response(self, cls: int, membranes: Sequence[int]) -> bytes:
        """What the device sends for ``cls`` and ``membranes`` (the testbench's expectation)."""
        if len(membranes) != self.n_classes:
            raise ProtocolError(f"need {self.n_classes} membranes, not {len(membranes)}")
        nb = self.membrane_bytes
        out = bytearray()
        for m in membranes:
            out += int(m).to_bytes(nb, "little", signed=True)
        return bytes(out) + bytes([int(cls)])

    def split_responses(self, data: bytes) -> list[Response]:
        """Decode a byte string holding whole responses back to back."""
        n = self.response_bytes
        if len(data) % n:
            raise ProtocolError(f"{len(data)} bytes is not a whole number of {n}-byte responses")
        return [self.decode_response(data[i:i + n]) for i in range(0, len(data), n)]


def _flatten(frame) -> list:
    if hasattr(frame, "ravel"):
        return list(frame.ravel())
    out = []
    for x in frame:
        if isinstance(x, (list, tuple)) or hasattr(x, "ravel"):
            out += _flatten(x)
        else:
            out.append(x)
    return out
