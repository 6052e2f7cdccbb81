"""Host side: run frames through a board over its USB serial port (:mod:`boards.protocol`).

pyserial is imported lazily (only :func:`open_port` needs it); :func:`infer_on` works on any
object with ``write(bytes)`` and ``read(n) -> bytes`` (a pyserial port, or a test double).
"""

from __future__ import annotations

import time
from typing import Iterable

from snnfpga.errors import BadOption, UserError

from .protocol import Protocol, ProtocolError, Response
from .uart_top import DEFAULT_BAUD

__all__ = ["open_port", "infer", "infer_on", "HostError"]


class HostError(UserError, RuntimeError):
    """The board did not answer, or answered short."""


def open_port(port: str, baud: int = DEFAULT_BAUD, timeout: float = 2.0):
    """Open ``port`` (e.g. ``/dev/ttyUSB0``) as 8N1 at ``baud`` with pyserial."""
    try:
        import serial  # pyserial
    except ImportError:
        raise HostError("talking to a board needs pyserial: pip install pyserial") from None
    return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=timeout)


def infer_on(link, protocol: Protocol, frames: Iterable, *, window: int = 1) -> list[Response]:
    """Send ``frames`` over ``link`` with at most ``window`` requests outstanding; return responses."""
    if window < 1:
        raise BadOption(f"window must be at least 1, not {window!r}")
    frames = list(frames)
    responses: list[Response] = []
    sent = 0

    def read_one():
        data = link.read(protocol.response_bytes)
        if len(data) != protocol.response_bytes:
            raise HostError(f"frame {len(responses)}: expected {protocol.response_bytes} response bytes, "
                            f"got {len(data)} before the timeout (is the bitstream for this network loaded?)")
        try:
            responses.append(protocol.decode_response(bytes(data)))
        except ProtocolError as e:
            raise HostError(f"frame {len(responses)}: {e}") from None

    for frame in frames:
        if sent - len(responses) >= window:
            read_one()
        link.write(protocol.encode_frame(frame))
        sent += 1
    while len(responses) < sent:
        read_one()
    return responses


def infer(port: str, net, frames: Iterable, baud: int = DEFAULT_BAUD, *, window: int = 1,
          timeout: float = 2.0) -> dict:
    """Classify ``frames`` on the board at ``port`` running ``net``'s bitstream.

    Returns ``{"classes", "membranes", "seconds", "frames_per_second"}``.
    """
    protocol = Protocol.for_network(net)
    with open_port(port, baud, timeout) as link:
        link.reset_input_buffer()
        t0 = time.perf_counter()
        responses = infer_on(link, protocol, frames, window=window)
        dt = time.perf_counter() - t0
    return {"classes": [r.cls for r in responses], "membranes": [list(r.membranes) for r in responses],
            "seconds": dt, "frames_per_second": len(responses) / dt if dt > 0 else None}
