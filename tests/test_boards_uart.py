"""The UART and the UART top in amaranth.sim, around a stand-in network core.

The real network (rtl_gen.NetworkTop) is covered by tests/test_uart.py (cocotb, bit-exact with
snnfpga.reference); here ``FakeNetworkCore`` -- a TEST DOUBLE with NetworkTop's pixels/result
stream signature computing one small dense layer -- pins the protocol plumbing quickly.
"""

import numpy as np
import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from snnfpga.boards.protocol import SYNC, Protocol, ProtocolError, ResponseParser, crc16
from snnfpga.boards.uart import UARTRx, UARTTx, divisor_for
from snnfpga.boards.uart_top import CRC_ALGORITHM, UARTTop, request_fifo_depth, request_fifo_memory
from snnfpga.ir import InputSpec, Layer, Network


# --------------------------------------------------------------------------- test double
class FakeNetworkCore(wiring.Component):
    """TEST DOUBLE ONLY (not used by the real flow): NetworkTop's stream signature, computing
    ``membrane[k] = Σ_i W[k, i]·x_i`` and ``cls = argmax`` (lowest index on ties)."""

    def __init__(self, weight: np.ndarray, *, input_bits: int, acc_bits: int, signed_input=False):
        self.weight = weight
        self.n_out, self.n_in = weight.shape
        self.acc_bits = acc_bits
        self.cls_bits = max(1, (self.n_out - 1).bit_length())
        layout = data.StructLayout({"membrane": signed(acc_bits), "cls": unsigned(self.cls_bits), "last": 1})
        pix = signed(input_bits) if signed_input else unsigned(input_bits)
        super().__init__({"pixels": In(stream.Signature(pix)), "result": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        acc = [Signal(signed(self.acc_bits), name=f"acc{k}") for k in range(self.n_out)]
        idx = Signal(range(max(self.n_in, self.n_out) + 1))
        best = Signal(signed(self.acc_bits))
        best_k = Signal(self.cls_bits)
        out_mem = Signal(signed(self.acc_bits))
        with m.FSM():
            with m.State("IN"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    with m.Switch(idx):
                        for i in range(self.n_in):
                            with m.Case(i):
                                for k in range(self.n_out):
                                    m.d.sync += acc[k].eq(acc[k] + int(self.weight[k, i]) * self.pixels.payload)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == self.n_in - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "OUT"
            with m.State("OUT"):
                with m.Switch(idx):
                    for k in range(self.n_out):
                        with m.Case(k):
                            m.d.comb += out_mem.eq(acc[k])
                is_best = (idx == 0) | (out_mem > best)
                m.d.comb += [self.result.valid.eq(1), self.result.payload.membrane.eq(out_mem),
                             self.result.payload.last.eq(idx == self.n_out - 1),
                             self.result.payload.cls.eq(best_k)]
                with m.If(is_best):
                    m.d.comb += self.result.payload.cls.eq(idx)
                with m.If(self.result.ready):
                    with m.If(is_best):
                        m.d.sync += [best.eq(out_mem), best_k.eq(idx)]
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == self.n_out - 1):
                        m.d.sync += [idx.eq(0)] + [a.eq(0) for a in acc]
                        m.next = "IN"
        return m


def _fake_net(weight: np.ndarray, input_bits: int, acc_bits: int, signed_input=False) -> Network:
    n_out, n_in = weight.shape
    inp = InputSpec(shape=(n_in,), bits=input_bits, signed=signed_input)
    layer = Layer(kind="dense", in_shape=(n_in,), out_shape=(n_out,), weight=weight,
                  bias=np.zeros(n_out, dtype=np.int64), weight_bits=8, acc_bits=acc_bits)
    return Network(name="fake", coding="sc-ttfs", timesteps=2, input=inp, layers=[layer])


# --------------------------------------------------------------------------- UART host model
async def send_byte(ctx, line, byte, divisor):
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)


async def recv_bytes(ctx, line, divisor, n, out: list, timeout=200000):
    """Collect ``n`` bytes from ``line`` (sampled mid-bit)."""
    waited = 0
    while len(out) < n:
        if ctx.get(line):
            await ctx.tick()
            waited += 1
            assert waited < timeout, f"no byte after {timeout} cycles (got {out})"
            continue
        waited = 0
        await ctx.tick().repeat(divisor // 2)
        assert ctx.get(line) == 0
        byte = 0
        for i in range(8):
            await ctx.tick().repeat(divisor)
            byte |= ctx.get(line) << i
        await ctx.tick().repeat(divisor)
        assert ctx.get(line) == 1, "stop bit must be 1"
        out.append(byte)


# --------------------------------------------------------------------------- tests
def _uart_exchange(dut, request, n_response: int, divisor: int, idle_ticks: int = 0, seen=None) -> bytes:
    """Send ``request`` (bytes, or a list of ``(bytes, idle ticks after)``) into the UART top's
    rx while collecting ``n_response`` bytes from its tx; ``seen`` gets ``error``/``dropped``."""
    got: list[int] = []
    chunks = [(request, 0)] if isinstance(request, (bytes, bytearray)) else request

    async def host_tx(ctx):
        if idle_ticks:
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(idle_ticks)
        for chunk, gap in chunks:
            for b in chunk:
                await send_byte(ctx, dut.rx, b, divisor)
            if gap:
                await ctx.tick().repeat(gap)

    async def host_rx(ctx):
        await recv_bytes(ctx, dut.tx, divisor, n_response, got)
        # nothing more comes: stay a while after the last expected byte
        for _ in range(30 * divisor):
            await ctx.tick()
            assert ctx.get(dut.tx) == 1, "the UART top sent more than expected"
        if seen is not None:
            seen.update(error=ctx.get(dut.error), dropped=ctx.get(dut.dropped))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx, background=True)
    sim.add_testbench(host_rx)
    sim.run()
    return bytes(got)


def test_divisor_for():
    assert divisor_for(25e6, 115200) == 217
    assert divisor_for(12e6, 115200) == 104
    assert divisor_for(12e6, 1_000_000) == 12
    with pytest.raises(ValueError, match="too fast"):
        divisor_for(12e6, 6_000_000)
    with pytest.raises(TypeError, match=r"divisor must be an integer >= 4, not 2"):
        UARTTx(divisor=2)


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback(divisor):
    """tx → rx on the same clock: every byte comes back, nothing is flagged."""
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor=divisor)
    m.submodules.rx = rx = UARTRx(divisor=divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80]
    got, flags = [], []

    async def producer(ctx):
        for b in sent:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(sent):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
            if ctx.get(rx.overflow) or ctx.get(rx.frame_error):
                flags.append(1)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert got == sent and not flags


def test_uart_rx_frame_error():
    dut = UARTRx(divisor=4)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.data.ready, 1)
        for bit in [0] + [1] * 8 + [0]:  # stop bit 0
            ctx.set(dut.rx, bit)
            for _ in range(4):
                await ctx.tick()
                seen["fe"] = seen.get("fe", 0) | ctx.get(dut.frame_error)
                seen["v"] = seen.get("v", 0) | ctx.get(dut.data.valid)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(8)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"fe": 1, "v": 0}


def test_protocol_roundtrip_and_errors():
    p = Protocol(input_size=3, input_bits=12, input_signed=True, n_classes=2, out_acc_bits=17)
    assert p.pixel_bytes == 2 and p.membrane_bytes == 3
    assert p.request_bytes == 2 + 1 + 6 + 2 and p.response_bytes == 2 + 1 + 6 + 1 + 2
    body = bytes([7, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0xF8])
    assert p.encode_frame([-1, 2047, -2048], seq=7) == SYNC + body + crc16(body).to_bytes(2, "big")
    assert p.decode_request(p.encode_frame([-1, 2047, -2048], seq=7)) == (7, [-1, 2047, -2048])
    r = p.decode_response(p.encode_response(1, [-5, 65535], seq=200))
    assert (r.seq, r.cls, r.membranes) == (200, 1, (-5, 65535))
    with pytest.raises(ProtocolError, match="pixel 0 is 2048, outside -2048..2047"):
        p.encode_frame([2048, 0, 0])
    with pytest.raises(ProtocolError, match="a frame must have 3 pixels, not 2"):
        p.encode_frame([0, 0])
    with pytest.raises(ProtocolError, match="seq must be an integer in 0..255, not 256"):
        p.encode_frame([0, 0, 0], seq=256)
    with pytest.raises(ProtocolError, match="a response must be 12 bytes, not 11"):
        p.decode_response(bytes(11))
    with pytest.raises(ProtocolError, match="a response must start with a5 5a, not 00 00"):
        p.decode_response(bytes(12))
    good = p.encode_response(1, [-5, 65535], seq=3)
    bad = good[:4] + bytes([good[4] ^ 0x10]) + good[5:]
    with pytest.raises(ProtocolError, match="response CRC mismatch"):
        p.decode_response(bad)
    with pytest.raises(ProtocolError, match="class byte is 2, but the network has 2 classes"):
        p.decode_response(p.encode_response(2, [0, 0]))
    with pytest.raises(ProtocolError, match="class byte is 0, but the largest membrane is 1"):
        p.decode_response(p.encode_response(0, [0, 1]))


def test_crc16_is_amaranths():
    """The host's table CRC and amaranth.lib.crc (what the board computes) agree."""
    rng = np.random.default_rng(0)
    assert crc16(b"123456789") == 0x29B1
    for n in (0, 1, 5, 64):
        data = bytes(rng.integers(0, 256, size=n, dtype=np.uint8))
        assert crc16(data) == CRC_ALGORITHM(data_width=8).compute(data)


def test_response_parser_resynchronises():
    """Damaged candidates are rejected and the scan resumes one byte after their marker."""
    p = Protocol(input_size=2, input_bits=8, input_signed=False, n_classes=3, out_acc_bits=9)
    r = [p.encode_response(k % 3, [5 if j == k % 3 else 1 for j in range(3)], seq=k) for k in range(4)]
    stream = (b"\xa5" + r[0]           # a lone marker byte, then a good response
              + r[1][:5] + r[1][6:]     # a dropped byte
              + r[2][:7] + bytes([r[2][7] ^ 1]) + r[2][8:]  # a corrupted byte
              + b"\xa5\x5a\x00" + r[3])  # a false marker, then a good response
    parser = ResponseParser(p)
    got = []
    for k in range(0, len(stream), 3):  # in pieces, as a serial port delivers them
        got += parser.feed(stream[k:k + 3])
    assert [x.seq for x in got] == [0, 3]
    assert parser.rejected >= 2


@pytest.mark.parametrize("input_bits,signed_input", [(8, False), (10, True), (4, True), (3, False)])
def test_uart_top_with_test_double(input_bits, signed_input):
    """Bytes in, responses out, through the protocol code the host uses; garbage before a
    sync byte is ignored; frames sent back to back are all answered in order."""
    rng = np.random.default_rng(input_bits)
    weight = rng.integers(-8, 8, size=(3, 5))
    acc_bits = 20
    net = _fake_net(weight, input_bits, acc_bits, signed_input)
    core = FakeNetworkCore(weight, input_bits=input_bits, acc_bits=acc_bits, signed_input=signed_input)
    divisor = 4
    dut = UARTTop(net, divisor=divisor, core=core, led_width=4)
    proto = dut.protocol
    lo, hi = net.input.value_range
    frames = rng.integers(lo, hi + 1, size=(3, 5))
    if not signed_input and input_bits == 8:  # the start marker inside the data
        frames[0, :2] = list(SYNC)
    stream_bytes = bytes([0x00, 0x13, 0xA5]) + b"".join(proto.encode_frame(f, seq=9 + k) for k, f in enumerate(frames))
    responses = proto.split_responses(_uart_exchange(dut, stream_bytes, proto.response_bytes * len(frames),
                                                     divisor, idle_ticks=3))
    assert [r.seq for r in responses] == [9, 10, 11]
    for f, r in zip(frames, responses):
        want = weight @ f
        assert r.membranes == tuple(int(x) for x in want)
        assert r.cls == int(np.argmax(want))


@pytest.mark.parametrize("coding,input_coding", [("sc-ttfs", "direct"), ("ttfs", "direct"), ("rate", "spikes")])
def test_uart_top_real_network_amaranth_sim(coding, input_coding):
    """The real rtl_gen.NetworkTop behind the UART (amaranth.sim; tests/test_uart.py does it in
    cocotb): responses bit-exact with snnfpga.reference, frames sent back to back."""
    from snnfpga import reference
    from snnfpga.testing import random_frames, random_network

    net = random_network(coding=coding, input_coding=input_coding, sizes=(8, 6, 3), seed=11)
    frames = random_frames(net, 3, seed=2)
    ref = reference.simulate(net, frames)
    divisor = 4
    dut = UARTTop(net, divisor=divisor)
    proto = dut.protocol
    data = b"".join(proto.encode_frame(f, seq=k) for k, f in enumerate(frames))
    responses = proto.split_responses(_uart_exchange(dut, data, proto.response_bytes * len(frames), divisor))
    assert [r.seq for r in responses] == [0, 1, 2]
    assert [r.cls for r in responses] == [int(c) for c in ref.classes]
    assert [r.membranes for r in responses] == [tuple(int(x) for x in m) for m in ref.output]


def test_uart_top_parameter_errors():
    weight = np.ones((2, 3), dtype=np.int64)
    net = _fake_net(weight, 8, 12)
    cores = [FakeNetworkCore(weight, input_bits=8, acc_bits=12), FakeNetworkCore(weight, input_bits=8, acc_bits=16)]
    for core in cores:
        core._MustUse__silence = True  # never elaborated on purpose
    with pytest.raises(TypeError, match=r"fifo_depth must be a power of two >= 3 \(one request's pixel bytes\), "
                                        r"not 12"):
        UARTTop(net, divisor=4, core=cores[0], fifo_depth=12)
    with pytest.raises(TypeError, match=r"fifo_depth must be a power of two >= 3 .*, not 2"):
        UARTTop(net, divisor=4, core=cores[0], fifo_depth=2)
    with pytest.raises(ValueError, match=r"core membrane width must be the output acc_bits 12, not 16"):
        UARTTop(net, divisor=4, core=cores[1])


def test_request_fifo_is_one_request_and_described_as_built():
    """One rule sizes the request buffer (a power of two holding one request's pixels, at least
    16 bytes); request_fifo_memory (what boards.fit counts) is the memory the elaborated top has."""
    from amaranth.hdl import Fragment, MemoryInstance, Shape

    def memories(fragment, path=()):
        if isinstance(fragment, MemoryInstance):
            mem = fragment.origins[0]
            yield ".".join(path), mem.depth, Shape.cast(mem.shape).width, not mem.write_ports
        for sub, name, _ in fragment.subfragments:
            yield from memories(sub, (*path, name))

    for size, bits in ((5, 8), (40, 10), (784, 4)):
        weight = np.ones((2, size), dtype=np.int64)
        net = _fake_net(weight, bits, 12)
        proto = Protocol.for_network(net)
        want_depth = {5: 16, 40: 128, 784: 1024}[size]
        # an entry is a one-byte pixel's bits (4-bit MNIST: one iCE40 block RAM), else a byte
        assert request_fifo_memory(net).width == {8: 8, 10: 8, 4: 4}[bits]
        assert request_fifo_depth(proto) == want_depth and want_depth >= size * proto.pixel_bytes
        top = UARTTop(net, divisor=4, core=FakeNetworkCore(weight, input_bits=bits, acc_bits=12))
        assert top.fifo_depth == request_fifo_depth(proto)
        want = request_fifo_memory(net)
        assert (want.path, want.depth, want.width, want.initialised) in set(memories(Fragment.get(top, None)))


def test_uart_top_drops_damaged_requests_and_resynchronises():
    """A corrupted, a truncated (then silent) and a duplicated-byte request are dropped and
    counted; the requests after each are answered, correct and with their own frame numbers,
    so the network never saw a damaged one."""
    rng = np.random.default_rng(3)
    weight = rng.integers(-8, 8, size=(3, 5))
    net = _fake_net(weight, 8, 20)
    divisor, idle_bits = 4, 40
    dut = UARTTop(net, divisor=divisor, core=FakeNetworkCore(weight, input_bits=8, acc_bits=20), led_width=4,
                  idle_timeout_bits=idle_bits)
    proto = dut.protocol
    frames = rng.integers(0, 256, size=(6, 5))
    req = [proto.encode_frame(f, seq=k) for k, f in enumerate(frames)]
    gap = 2 * idle_bits * divisor
    corrupted = req[1][:5] + bytes([req[1][5] ^ 0x04]) + req[1][6:]
    truncated = req[2][:6] + req[2][7:]
    duplicated = req[4][:4] + req[4][3:]
    chunks = [(req[0], 0), (corrupted, 0), (truncated, gap), (b"\x00\xa5\x11" + req[3], 0), (duplicated, 0),
              (req[5], 0)]
    seen = {}
    data = _uart_exchange(dut, chunks, 3 * proto.response_bytes, divisor, seen=seen)
    responses = proto.split_responses(data)
    assert [r.seq for r in responses] == [0, 3, 5]
    for r in responses:
        want = weight @ frames[r.seq]
        assert r.membranes == tuple(int(x) for x in want) and r.cls == int(np.argmax(want))
    assert seen == {"error": 1, "dropped": 3}
