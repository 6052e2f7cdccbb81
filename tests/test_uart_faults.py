"""Line faults on the UART: every frame's result is correct or reported lost, never wrong.

* The board host's recovery logic (boards.host.HostSession, infer_on, `snnfpga infer`) against
  a fake serial port: a TEST DOUBLE board (Python model of the UART top's request parser,
  answering with snnfpga.reference) behind a line that drops, duplicates and corrupts bytes.
* The real thing in cocotb (Verilator): the UART top around rtl_gen.NetworkTop, the same host
  session, seeded faults in requests and responses (sim/tb_uart.py, sim/uart_sim.py).
  benchmarks/bench_uart_faults.py runs more frames.
"""

import random

import numpy as np
import pytest

from snnfpga import reference
from snnfpga.boards.host import LOST_SKIPPED, LOST_TIMEOUT, HostSession, infer_on
from snnfpga.boards.protocol import SYNC, Protocol, crc16
from snnfpga.cli import main
from snnfpga.errors import BadOption
from snnfpga.ir import save
from snnfpga.testing import random_frames, random_network

KINDS = ("drop", "duplicate", "corrupt")


def _damage(rng: random.Random, data: bytes, counts: dict) -> bytes:
    kind = rng.choice(KINDS)
    i = rng.randrange(len(data))
    counts[kind] += 1
    if kind == "drop":
        return data[:i] + data[i + 1:]
    if kind == "duplicate":
        return data[:i + 1] + data[i:]
    return data[:i] + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1:]


class FaultyBoardLink:
    """TEST DOUBLE: a serial port to a model of the UART top (hunts for the marker, takes the
    fixed request length, checks the CRC, drops bad requests and partial ones when the line
    goes silent, answers in order with the reference), with seeded one-byte faults on a
    ``request_rate`` / ``response_rate`` share of the requests / responses."""

    def __init__(self, net, *, seed=0, request_rate=0.0, response_rate=0.0, silent_after=None, dup_response=()):
        self.net, self.proto = net, Protocol.for_network(net)
        self.rng = random.Random(seed)
        self.rates = {"request": request_rate, "response": response_rate}
        self.injected = {"request": dict.fromkeys(KINDS, 0), "response": dict.fromkeys(KINDS, 0)}
        self.silent_after, self.dup_response = silent_after, set(dup_response)
        self.rx, self.tx = bytearray(), bytearray()
        self.state, self.body = "HUNT", bytearray()
        self.answered = self.dropped = 0

    # ---- the line
    def write(self, data: bytes) -> None:
        if self.rng.random() < self.rates["request"]:
            data = _damage(self.rng, bytes(data), self.injected["request"])
        for b in data:
            self._board_byte(b)

    def read(self, n: int) -> bytes:
        if not self.tx:  # silence: the host times out, the board drops any partial request
            if self.state == "BODY":
                self.dropped += 1
            self.state = "HUNT"
            return b""
        out, self.tx = bytes(self.tx[:n]), self.tx[n:]
        return out

    # ---- the board
    def _board_byte(self, b: int) -> None:
        if self.state == "HUNT":
            self.state = "MARK" if b == SYNC[0] else "HUNT"
        elif self.state == "MARK":
            if b == SYNC[1]:
                self.state, self.body = "BODY", bytearray()
            elif b != SYNC[0]:
                self.state = "HUNT"
        else:
            self.body.append(b)
            if len(self.body) == self.proto.request_bytes - len(SYNC):
                self.state = "HUNT"
                if crc16(bytes(self.body)) != 0:
                    self.dropped += 1
                    return
                self._answer(bytes(self.body))

    def _answer(self, body: bytes) -> None:
        seq, pixels = self.proto.decode_request(SYNC + body)
        if self.silent_after is not None and self.answered >= self.silent_after:
            return
        r = reference.simulate(self.net, np.asarray([pixels], dtype=np.int64))
        resp = self.proto.encode_response(int(r.classes[0]), [int(x) for x in r.output[0]], seq=seq)
        if self.answered in self.dup_response:  # the case: one response byte twice
            resp = resp[:5] + resp[4:]
        elif self.rng.random() < self.rates["response"]:
            resp = _damage(self.rng, resp, self.injected["response"])
        self.answered += 1
        self.tx += resp


def _judge(net, frames, result):
    ref = reference.simulate(net, frames)
    correct = wrong = 0
    for r in result.results:
        if not r.ok:
            continue
        if r.cls == int(ref.classes[r.index]) and r.membranes == tuple(int(x) for x in ref.output[r.index]):
            correct += 1
        else:
            wrong += 1
    return correct, result.lost, wrong


@pytest.mark.parametrize("window,retries", [(1, 2), (3, 2), (1, 0)])
def test_host_recovers_from_line_faults(window, retries):
    """300 frames, a third of requests and responses damaged: none wrong, the losses counted."""
    net = random_network(sizes=(12, 8, 5), seed=4)
    frames = random_frames(net, 300, seed=4)
    link = FaultyBoardLink(net, seed=window * 10 + retries, request_rate=0.33, response_rate=0.33)
    result = infer_on(link, Protocol.for_network(net), frames, window=window, retries=retries)
    correct, lost, wrong = _judge(net, frames, result)
    injected = sum(n for kinds in link.injected.values() for n in kinds.values())
    print(f"window {window} retries {retries}: injected {link.injected}; {correct} correct, {lost} lost, "
          f"{wrong} wrong; {result.summary()}")
    assert wrong == 0 and correct + lost == len(frames)
    assert all(n > 10 for kinds in link.injected.values() for n in kinds.values())
    assert injected > 150 and result.rejected_responses > 0 and link.dropped > 0
    if retries == 0:  # every damaged exchange costs its frame, except faults that change nothing
        assert lost > 100
    else:
        assert correct > 200 and result.retries > 150


def test_duplicated_response_byte_no_longer_shifts_the_classes():
    """The issue's case: one duplicated response byte made every later class wrong. Now the
    damaged response is rejected, the frame resent, and all 8 are right."""
    net = random_network(sizes=(12, 8, 5), seed=1)
    frames = random_frames(net, 8, seed=2)
    link = FaultyBoardLink(net, dup_response={2})
    result = infer_on(link, Protocol.for_network(net), frames)
    assert _judge(net, frames, result) == (8, 0, 0)
    assert result.rejected_responses >= 1 and result.retries == 1 and result.results[2].attempts == 2


def test_session_matches_frame_numbers():
    """A response for a later request means the earlier ones are lost (the board answers in
    order); a response nobody waits for is ignored; a frame out of retries is lost with why."""
    proto = Protocol(input_size=2, input_bits=8, input_signed=False, n_classes=2, out_acc_bits=8)
    s = HostSession(proto, [[1, 2], [3, 4], [5, 6]], window=3, retries=0)
    reqs = s.requests()
    assert [proto.decode_request(r)[0] for r in reqs] == [0, 1, 2] and s.outstanding == 3
    got = s.receive(proto.encode_response(1, [0, 9], seq=1) + proto.encode_response(0, [9, 0], seq=77))
    assert [(r.index, r.cls) for r in got] == [(1, 1)] and s.stale == 1
    s.timeout()
    assert s.done
    res = s.result()
    assert [r.lost for r in res.results] == [LOST_SKIPPED, None, LOST_TIMEOUT]
    assert res.lost == 2 and res.classes == [None, 1, None]
    # with a retry, a lost frame is resent under a new frame number
    s = HostSession(proto, [[1, 2]], retries=1)
    assert proto.decode_request(s.requests()[0])[0] == 0
    s.timeout()
    assert proto.decode_request(s.requests()[0])[0] == 1
    s.receive(proto.encode_response(0, [3, 3], seq=1))
    assert s.done and s.result().results[0].attempts == 2 and s.result().retries == 1


def test_session_option_errors():
    proto = Protocol(input_size=2, input_bits=8, input_signed=False, n_classes=2, out_acc_bits=8)
    with pytest.raises(BadOption, match=r"window must be an integer in 1\.\.8 .*, not 9"):
        HostSession(proto, [[1, 2]], window=9)
    with pytest.raises(BadOption, match="retries must be a non-negative integer, not -1"):
        HostSession(proto, [[1, 2]], retries=-1)


def test_infer_cli_reports_lost_frames_and_exits_nonzero(tmp_path, monkeypatch, capsys):
    """`snnfpga infer`: a board that stops answering gives exit 1 and the count, never a class."""
    import snnfpga.boards.host as host

    net = random_network(sizes=(12, 8, 5), seed=1, name="m")
    save(net, tmp_path / "m")
    frames = random_frames(net, 8, seed=2)
    np.save(tmp_path / "frames.npy", frames)
    links = []

    class Port(FaultyBoardLink):
        """Like pyserial: ``in_waiting``, a context manager, ``reset_input_buffer``."""

        @property
        def in_waiting(self):
            return len(self.tx)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def reset_input_buffer(self):
            pass

    def fake_open(port, baud, timeout=2.0):
        links.append(Port(net, silent_after=links_silent_after))
        return links[-1]

    monkeypatch.setattr(host, "open_port", fake_open)
    monkeypatch.setattr(host, "resync_gap", lambda baud: 0.0)
    argv = ["infer", str(tmp_path / "m.snn.json"), "--port", "/dev/fake", "--frames", str(tmp_path / "frames.npy")]
    links_silent_after = None
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "8/8 frames answered, 0 lost" in out and "classes agree 8/8, membranes bit-exact 8/8" in out
    links_silent_after = 5
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "5/8 frames answered, 3 lost" in cap.out and "classes agree 5/5" in cap.out
    assert f"3 of 8 frames lost ({LOST_TIMEOUT})" in cap.err


# --------------------------------------------------------------------------- cocotb, real network
@pytest.mark.parametrize("window,n_frames,seed", [(1, 48, 1), (3, 32, 2)])
def test_uart_top_faults_cocotb_verilator(window, n_frames, seed):
    """The UART top around the real NetworkTop (Verilator) with one-byte faults in a third of
    the requests and of the responses: every frame correct or reported lost, none wrong."""
    from snnfpga.sim.uart_sim import run_uart

    net = random_network(coding="sc-ttfs", sizes=(10, 8, 4), seed=5)
    frames = random_frames(net, n_frames, seed=7)
    run = run_uart(net, frames, simulator="verilator", window=window, retries=2,
                   faults={"seed": seed, "request_rate": 0.3, "response_rate": 0.3})
    print(run.summary(), run.lost_reasons)
    assert run.wrong == 0, f"wrong frames {run.wrong_frames}: {run.summary()}"
    assert run.correct + run.lost == n_frames and run.correct >= n_frames * 2 // 3
    for where in ("request", "response"):
        assert sum(run.injected[where].values()) >= 5, run.injected
    assert run.dropped > 0 and run.error == 1 and run.stats["rejected_responses"] > 0
