"""Host side: run frames through a board over its USB serial port (:mod:`boards.protocol`).

Two layers, as in Glasgow: :class:`HostSession` is the protocol logic without any I/O (what to
send, what a received byte string means, what a timeout means), so the very same code drives
the cocotb testbench (``sim/tb_uart.py``) and a board; :func:`infer_on` runs a session over
any object with ``write(bytes)`` and ``read(n) -> bytes`` (a pyserial port, whose ``read``
returns short after its timeout, or a test double). pyserial is imported lazily (only
:func:`open_port` needs it).

Every frame ends as a :class:`FrameResult`: a class and membranes that passed the checks of
:class:`~boards.protocol.ResponseParser`, or ``lost`` with the reason. A result is never
taken from a response that is damaged, unmatched or out of order.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from snnfpga.errors import BadOption, UserError

from .protocol import DEFAULT_BAUD, MAX_WINDOW, RESYNC_IDLE_BITS, Protocol, Response, ResponseParser, frame

__all__ = ["open_port", "infer", "infer_on", "HostError", "HostSession", "FrameResult", "InferResult",
           "LOST_TIMEOUT", "LOST_SKIPPED"]

#: reasons a request is counted lost
LOST_TIMEOUT = "no valid response before the timeout"
LOST_SKIPPED = "no valid response; a later request was answered"


class HostError(UserError, RuntimeError):
    """The board could not be reached or used."""


@dataclass(frozen=True)
class FrameResult:
    """What became of one frame: ``cls`` and ``membranes`` when answered, else ``lost`` (why)."""

    index: int
    cls: int | None
    membranes: tuple[int, ...] | None
    attempts: int
    lost: str | None = None

    @property
    def ok(self) -> bool:
        return self.lost is None


@dataclass
class InferResult:
    """Every frame's :class:`FrameResult` and the link's counters."""

    results: list[FrameResult]
    seconds: float = 0.0
    #: requests sent (first tries and resends)
    requests: int = 0
    #: resends
    retries: int = 0
    #: lost attempts by reason (a frame answered on a resend counts here, not in ``lost``)
    failed_attempts: dict[str, int] = field(default_factory=dict)
    #: response candidates rejected by the checks (CRC, class), bytes discarded, stale responses
    rejected_responses: int = 0
    discarded_bytes: int = 0
    stale_responses: int = 0

    @property
    def classes(self) -> list[int | None]:
        return [r.cls for r in self.results]

    @property
    def membranes(self) -> list[tuple[int, ...] | None]:
        return [r.membranes for r in self.results]

    @property
    def lost(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def frames_per_second(self) -> float | None:
        return len(self.results) / self.seconds if self.seconds > 0 else None

    def summary(self) -> str:
        """One line: frames answered and lost, resends, rejected responses."""
        return (f"{len(self.results) - self.lost}/{len(self.results)} frames answered, {self.lost} lost; "
                f"{self.requests} requests ({self.retries} resent), {self.rejected_responses} damaged responses "
                f"rejected, {self.stale_responses} stale responses ignored")


class HostSession:
    """The host's protocol state machine, with no I/O (see the module docstring).

    Parameters
    ----------
    protocol : Protocol
    frames : sequence of integer arrays
    window : int
        Requests in flight (1..:data:`~boards.protocol.MAX_WINDOW`).
    retries : int
        Resends of a frame whose response was lost before it is reported lost.

    Use: send :meth:`requests`; pass received bytes to :meth:`receive`; call :meth:`timeout`
    when nothing arrived for the timeout while :attr:`outstanding` is non-zero (then stay silent
    for the resync gap before sending again); stop when :attr:`done`; read :meth:`result`.
    """

    def __init__(self, protocol: Protocol, frames: Sequence, *, window: int = 1, retries: int = 2):
        if not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
            raise BadOption(f"window must be an integer in 1..{MAX_WINDOW} (the board queues {MAX_WINDOW} "
                            f"frame numbers), not {window!r}")
        if not isinstance(retries, int) or retries < 0:
            raise BadOption(f"retries must be a non-negative integer, not {retries!r}")
        self.protocol, self.window, self.retries = protocol, window, retries
        self._frames = list(frames)
        # every frame is checked before anything is sent
        self._payloads = [protocol.encode_pixels(f) for f in self._frames]
        self._pending: list[int] = list(range(len(self._frames)))
        self._outstanding: dict[int, int] = {}  # seq -> frame index, in send order
        self._attempts = [0] * len(self._frames)
        self._results: dict[int, FrameResult] = {}
        self._seq = 0
        self.parser = ResponseParser(protocol)
        self.failed = Counter()
        self.stale = 0
        self.requests_sent = 0

    # ------------------------------------------------------------------ state
    @property
    def done(self) -> bool:
        return len(self._results) == len(self._frames)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    # ------------------------------------------------------------------ events
    def requests(self) -> list[bytes]:
        """The requests to send now (fills the window), each with a fresh frame number."""
        out = []
        while self._pending and len(self._outstanding) < self.window:
            i = self._pending.pop(0)
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFF
            self._outstanding[seq] = i
            self._attempts[i] += 1
            self.requests_sent += 1
            out.append(frame(seq, self._payloads[i]))
        return out

    def receive(self, data: bytes) -> list[FrameResult]:
        """Bytes from the board; returns the frames they answered."""
        done = []
        for r in self.parser.feed(data):
            done += self._answer(r)
        return done

    def timeout(self) -> None:
        """Nothing came for the timeout: every outstanding request is lost; partial bytes are junk."""
        self.parser.flush()
        for seq in list(self._outstanding):
            self._fail(seq, LOST_TIMEOUT)

    def result(self, seconds: float = 0.0) -> InferResult:
        return InferResult(results=[self._results[i] for i in range(len(self._frames))], seconds=seconds,
                           requests=self.requests_sent, retries=sum(max(0, a - 1) for a in self._attempts),
                           failed_attempts=dict(self.failed),
                           rejected_responses=self.parser.rejected, discarded_bytes=self.parser.discarded,
                           stale_responses=self.stale)

    # ------------------------------------------------------------------ internals
    def _answer(self, r: Response) -> list[FrameResult]:
        if r.seq not in self._outstanding:
            self.stale += 1  # a late answer to a request already given up, or a stray
            return []
        for seq in list(self._outstanding):  # the board answers in order: earlier ones are gone
            if seq == r.seq:
                break
            self._fail(seq, LOST_SKIPPED)
        i = self._outstanding.pop(r.seq)
        res = FrameResult(index=i, cls=r.cls, membranes=r.membranes, attempts=self._attempts[i])
        self._results[i] = res
        return [res]

    def _fail(self, seq: int, reason: str) -> None:
        i = self._outstanding.pop(seq)
        self.failed[reason] += 1
        if self._attempts[i] <= self.retries:
            self._pending.insert(0, i)
        else:
            self._results[i] = FrameResult(index=i, cls=None, membranes=None, attempts=self._attempts[i],
                                           lost=reason)


def open_port(port: str, baud: int, timeout: float = 2.0):
    """Open ``port`` (e.g. ``/dev/ttyUSB0``) as 8N1 at ``baud`` with pyserial."""
    try:
        import serial  # pyserial
    except ImportError:
        raise HostError("talking to a board needs pyserial: pip install pyserial") from None
    try:
        return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=timeout)
    except (OSError, ValueError) as e:  # serial.SerialException is an OSError
        raise HostError(f"cannot open serial port {port!r}: {e}") from None


def resync_gap(baud: int) -> float:
    """Seconds of silence after a timeout: twice the board's idle limit, so it has dropped any
    partial request before the next one starts."""
    return 2 * RESYNC_IDLE_BITS / baud


def infer_on(link, protocol: Protocol, frames: Iterable, *, window: int = 1, retries: int = 2,
             quiet: float = 0.0, sleep=time.sleep) -> InferResult:
    """Run ``frames`` through the board on ``link`` (see :class:`HostSession`).

    ``link.read(n)`` must return fewer than ``n`` bytes only after its timeout (pyserial does);
    with ``link.in_waiting`` (pyserial) it reads what has arrived, or waits for one byte. An
    empty read is a timeout: no byte came for that long. After one the host sleeps ``quiet``
    seconds (:func:`resync_gap`).
    """
    session = HostSession(protocol, list(frames), window=window, retries=retries)
    t0 = time.perf_counter()
    while not session.done:
        for req in session.requests():
            link.write(req)
        waiting = getattr(link, "in_waiting", None)  # pyserial: read what is there, else wait for a byte
        data = link.read(max(1, waiting) if isinstance(waiting, int) else protocol.response_bytes)
        if data:
            session.receive(bytes(data))
        else:
            session.timeout()
            if quiet:
                sleep(quiet)
    return session.result(time.perf_counter() - t0)


def infer(port: str, net, frames: Iterable, baud: int = DEFAULT_BAUD, *, window: int = 1, retries: int = 2,
          timeout: float = 2.0) -> InferResult:
    """Classify ``frames`` on the board at ``port`` running ``net``'s bitstream.

    Lost frames are in the result (``lost``, each :class:`FrameResult`'s reason), never guessed.
    """
    if timeout <= 0:
        raise BadOption(f"timeout must be positive, not {timeout!r}")
    protocol = Protocol.for_network(net)
    with open_port(port, baud, timeout) as link:
        link.reset_input_buffer()
        return infer_on(link, protocol, frames, window=window, retries=retries, quiet=resync_gap(baud))
