"""The framed byte protocol between a host and the UART top (pure Python: no amaranth, no pyserial).

The same code runs against the cocotb testbench (``sim/tb_uart.py``) and against a board
(:mod:`boards.host`), so what is proven in simulation is what the host sends.

Wire format (8N1, the board's USB serial port, default 115200 baud)
------------------------------------------------------------------

Every request and every response is a frame::

    0xA5 0x5A  seq  payload …  crc_hi crc_lo

* ``0xA5 0x5A`` (:data:`SYNC`) is the start marker. A receiver that is not inside a frame
  drops every byte until it has seen ``0xA5`` followed by ``0x5A`` (``0xA5 0xA5 0x5A`` is a
  marker too), so it resynchronises on the next marker after garbage or a damaged frame.
* ``seq`` is the frame number (0..255, chosen by the host, one per request it sends); the
  response to a request carries the request's ``seq``, so the host matches results to
  requests and notices a missing one.
* ``crc`` is CRC-16/CCITT-FALSE (:func:`crc16`: polynomial ``0x1021``, initial value
  ``0xFFFF``, no reflection, no final XOR) over ``seq`` and the payload (not the marker),
  sent most significant byte first, so the CRC over ``seq … crc_lo`` is 0. It detects every
  error burst of up to 16 bits (so every corrupted byte) and all but 2⁻¹⁶ of other damage
  (a slipped or duplicated byte).
* Lengths are fixed by the network, so no length field: the payload of a request is
  ``input.size`` pixels in flattened C order, each ``pixel_bytes = ceil(input.bits / 8)``
  bytes **little-endian**, two's complement when ``input.signed``; the payload of a response
  is ``n_classes`` output membranes of ``membrane_bytes = ceil(out_acc_bits / 8)`` bytes,
  little-endian two's complement, then the class (one byte, the argmax of the membranes,
  lowest index on ties; also shown on the board's LEDs).

The board checks a request before the network sees any of it: the payload goes into a buffer
and is committed only when the CRC matches. It drops a request whose CRC fails, that is cut
short (no byte for :data:`RESYNC_IDLE_BITS` bit times inside a frame), that hit a UART framing
error or that does not fit its buffer, and answers only the requests it keeps, in order.

The host (:class:`boards.host.HostSession`) scans responses for the marker, rejects a
candidate whose CRC fails or whose class is not the argmax of its membranes (and rescans from
the next byte), ignores a response whose ``seq`` it is not waiting for, and counts a request
as lost when no response came within its timeout or when a later request was answered first
(the board answers in order). It resends a lost request (with a new ``seq``) up to its retry
limit, then reports the frame as lost; after a timeout it stays silent for at least
:data:`RESYNC_IDLE_BITS` bit times so that the board has dropped any partial request.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Iterable, Sequence

from snnfpga.errors import UserError

__all__ = ["SYNC", "CRC_BYTES", "HEADER_BYTES", "RESYNC_IDLE_BITS", "MAX_WINDOW", "DEFAULT_BAUD", "crc16",
           "frame", "Protocol", "Response", "ProtocolError", "ResponseParser"]

#: line rate of the UART top unless the build says otherwise
DEFAULT_BAUD = 115200

#: start marker of every request and response
SYNC = bytes((0xA5, 0x5A))
#: marker + seq
HEADER_BYTES = len(SYNC) + 1
#: CRC-16, most significant byte first
CRC_BYTES = 2
#: a request that stalls this many bit times (about 200 byte times) mid-frame is dropped
RESYNC_IDLE_BITS = 2048
#: requests a host may have in flight: the depth of the board's frame-number queue
MAX_WINDOW = 8


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``); the board computes
    the same with :mod:`amaranth.lib.crc` (``catalog.CRC16_CCITT_FALSE``). The standard
    library's ``binascii.crc_hqx`` is this CRC (polynomial 0x1021, MSB first) from ``crc``."""
    return binascii.crc_hqx(bytes(data), crc)


def frame(seq: int, payload: bytes) -> bytes:
    """``payload`` framed as frame number ``seq``: marker, seq, payload, CRC-16."""
    if not isinstance(seq, int) or not 0 <= seq <= 255:
        raise ProtocolError(f"seq must be an integer in 0..255, not {seq!r}")
    body = bytes([seq]) + bytes(payload)
    return SYNC + body + crc16(body).to_bytes(CRC_BYTES, "big")


class ProtocolError(UserError, ValueError):
    """A frame or a response that does not match the protocol; the message says what."""


@dataclass(frozen=True)
class Response:
    """One checked response: the frame number, the class and the output membranes."""

    seq: int
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
    def payload_bytes(self) -> int:
        """Pixel bytes in one request (what the board buffers)."""
        return self.input_size * self.pixel_bytes

    @property
    def request_bytes(self) -> int:
        """Bytes on the wire per request: marker, seq, pixels, CRC."""
        return HEADER_BYTES + self.payload_bytes + CRC_BYTES

    @property
    def response_bytes(self) -> int:
        """Bytes on the wire per response: marker, seq, membranes, class, CRC."""
        return HEADER_BYTES + self.n_classes * self.membrane_bytes + 1 + CRC_BYTES

    # ------------------------------------------------------------------ requests
    def encode_frame(self, pixels: Iterable[int], seq: int = 0) -> bytes:
        """One request: marker, ``seq``, the pixels (a flat or shaped integer array), CRC."""
        return frame(seq, self.encode_pixels(pixels))

    def encode_pixels(self, pixels: Iterable[int]) -> bytes:
        """A request's payload: the pixels, range-checked, little-endian."""
        pixels = [int(p) for p in _flatten(pixels)]
        if len(pixels) != self.input_size:
            raise ProtocolError(f"a frame must have {self.input_size} pixels, not {len(pixels)}")
        if self.input_signed:
            lo, hi = -(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1
        else:
            lo, hi = 0, (1 << self.input_bits) - 1
        out = bytearray()
        for i, p in enumerate(pixels):
            if not lo <= p <= hi:
                raise ProtocolError(f"pixel {i} is {p}, outside {lo}..{hi} for {self.input_bits}-bit "
                                    f"{'signed' if self.input_signed else 'unsigned'} input")
            out += (p & ((1 << (8 * self.pixel_bytes)) - 1)).to_bytes(self.pixel_bytes, "little")
        return bytes(out)

    def decode_request(self, data: bytes) -> tuple[int, list[int]]:
        """``(seq, pixels)`` of one whole request (what the board does; for test doubles)."""
        body = self._check(data, self.request_bytes, "request")
        nb = self.pixel_bytes
        pixels = [int.from_bytes(body[1 + i * nb:1 + (i + 1) * nb], "little", signed=self.input_signed)
                  for i in range(self.input_size)]
        return body[0], pixels

    # ------------------------------------------------------------------ responses
    def encode_response(self, cls: int, membranes: Sequence[int], seq: int = 0) -> bytes:
        """What the device sends for ``cls`` and ``membranes`` answering request ``seq``."""
        if len(membranes) != self.n_classes:
            raise ProtocolError(f"need {self.n_classes} membranes, not {len(membranes)}")
        nb = self.membrane_bytes
        out = bytearray()
        for m in membranes:
            out += int(m).to_bytes(nb, "little", signed=True)
        return frame(seq, bytes(out) + bytes([int(cls)]))

    def decode_response(self, data: bytes) -> Response:
        """One whole response (exactly :attr:`response_bytes` bytes) to a checked :class:`Response`:
        marker, CRC, class range and class = argmax of the membranes."""
        body = self._check(data, self.response_bytes, "response")
        nb = self.membrane_bytes
        membranes = tuple(int.from_bytes(body[1 + k * nb:1 + (k + 1) * nb], "little", signed=True)
                          for k in range(self.n_classes))
        cls = body[-1]
        if cls >= self.n_classes:
            raise ProtocolError(f"class byte is {cls}, but the network has {self.n_classes} classes")
        best = max(range(self.n_classes), key=lambda k: (membranes[k], -k))
        if cls != best:
            raise ProtocolError(f"class byte is {cls}, but the largest membrane is {best}")
        return Response(seq=body[0], cls=cls, membranes=membranes)

    def split_responses(self, data: bytes) -> list[Response]:
        """Decode a byte string holding whole responses back to back (strict: no garbage)."""
        n = self.response_bytes
        if len(data) % n:
            raise ProtocolError(f"{len(data)} bytes is not a whole number of {n}-byte responses")
        return [self.decode_response(data[i:i + n]) for i in range(0, len(data), n)]

    def _check(self, data: bytes, n: int, what: str) -> bytes:
        if len(data) != n:
            raise ProtocolError(f"a {what} must be {n} bytes, not {len(data)}")
        if bytes(data[:len(SYNC)]) != SYNC:
            raise ProtocolError(f"a {what} must start with {SYNC.hex(' ')}, not {bytes(data[:len(SYNC)]).hex(' ')}")
        body = bytes(data[len(SYNC):])
        if crc16(body) != 0:
            raise ProtocolError(f"{what} CRC mismatch (received {body[-2:].hex()}, "
                                f"computed {crc16(body[:-CRC_BYTES]):04x})")
        return body[:-CRC_BYTES]


class ResponseParser:
    """Finds checked responses in a byte stream with faults (resynchronising on the marker).

    :meth:`feed` returns the responses completed by the new bytes. A candidate whose check
    fails is rejected and the scan restarts one byte after its marker, so a damaged response
    costs only itself. Counters: ``rejected`` (candidates that failed a check, with the last
    reason in ``last_error``) and ``discarded`` (bytes skipped outside any good response).
    """

    def __init__(self, protocol: Protocol):
        self.protocol = protocol
        self.buffer = bytearray()
        self.rejected = 0
        self.discarded = 0
        self.last_error: str | None = None

    def feed(self, data: bytes) -> list[Response]:
        self.buffer += data
        out = []
        n = self.protocol.response_bytes
        while True:
            i = self.buffer.find(SYNC)
            if i < 0:  # keep a trailing 0xA5: it may be the first half of a marker
                keep = 1 if self.buffer[-1:] == SYNC[:1] else 0
                self.discarded += len(self.buffer) - keep
                del self.buffer[:len(self.buffer) - keep]
                return out
            self.discarded += i
            del self.buffer[:i]
            if len(self.buffer) < n:
                return out
            try:
                out.append(self.protocol.decode_response(bytes(self.buffer[:n])))
            except ProtocolError as e:
                self.rejected += 1
                self.last_error = str(e)
                self.discarded += 1
                del self.buffer[:1]
                continue
            del self.buffer[:n]

    def flush(self) -> int:
        """Drop the bytes held (after a timeout: a partial response never completes); their count."""
        n = len(self.buffer)
        self.discarded += n
        self.buffer.clear()
        return n


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
