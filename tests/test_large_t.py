"""The whole T range the IR allows generates (issue 13: ``generate`` hit a ``RecursionError`` from
T ~ 327 for (SC-)TTFS: an OR of T comparators built as a T-deep chain that amaranth walks
recursively), and the reference encode's memory stays bounded at large T.

The TTFS encode's LUT logic is now flat or log-deep (:func:`rtl_gen.luts.lowest_set`, a tree on
bit planes; :func:`rtl_gen.luts._thermometer` for ``t >= t_e``): checked here exhaustively
against their definitions, then elaborated at ``MAX_TIMESTEPS``. Bit-exactness of the whole
encode at small T is tests/test_rtl_network.py's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from snnfpga import reference, rtl_gen
from snnfpga.ir import TTFSNeuron
from snnfpga.ir.network import MAX_TIMESTEPS, MAX_TTFS_TIMESTEPS
from snnfpga.rtl_gen.luts import lowest_set, _thermometer, ttfs_calibrate
from snnfpga.testing import random_frames, random_network


def _exhaustive(m: Module, inp: Signal, check) -> None:
    async def bench(ctx):
        for value in range(1 << len(inp)):
            ctx.set(inp, value)
            check(ctx, value)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11])
def test_priority_encoder_is_lowest_set_bit(n):
    m = Module()
    bits = Signal(n)
    anyv, idx = lowest_set(m, [bits[k] for k in range(n)], "p", max(1, (n - 1).bit_length()))

    def check(ctx, v):
        assert (ctx.get(anyv), ctx.get(idx)) == (int(v != 0), (v & -v).bit_length() - 1 if v else 0), v

    _exhaustive(m, bits, check)


@pytest.mark.parametrize("x_bits,n", [(1, 1), (1, 2), (2, 3), (3, 5), (3, 8), (4, 11)])
def test_thermometer_is_t_at_least_x(x_bits, n):
    m = Module()
    x, out = Signal(x_bits), Signal(n)
    m.d.comb += out.eq(_thermometer(m, x, n, "th"))

    def check(ctx, v):
        assert ctx.get(out) == sum(1 << t for t in range(n) if t >= v), v

    _exhaustive(m, x, check)


def test_calibrate_lut_logic_elaborates_at_max_timesteps():
    """The calibration half of the encode (T comparators, the thermometer, a priority encoder:
    every T-wide structure of the encode) at the IR's largest T: no recursion."""
    rng = np.random.default_rng(0)

    def lut(hi):
        return tuple(int(v) for v in np.sort(rng.integers(1, hi, MAX_TIMESTEPS))[::-1])

    neuron = TTFSNeuron(enc=lut(1 << 20), dec_enc=lut(256), cal=lut(1 << 16), dec_cal=lut(64))
    tb = (MAX_TIMESTEPS - 1).bit_length()
    m = Module()
    t_e, r, fired = Signal(tb), Signal(signed(25)), Signal()
    e = ttfs_calibrate(m, fired, t_e, r, neuron, tb)
    cal_fired, t_c = Signal(), Signal(tb)
    m.d.comb += [cal_fired.eq(e.cal_fired), t_c.eq(e.t_cal)]
    assert "module" in rtlil.convert(m, ports=[t_e, r, fired, cal_fired, t_c])


@pytest.mark.parametrize("coding", ["ttfs", "sc-ttfs"])
def test_generate_at_the_coding_s_max_timesteps(coding, tmp_path):
    """The IR's largest (SC-)TTFS T generates (it failed from T = 327 with RecursionError); the
    T-wide encode structures elaborate without recursion far beyond it (above)."""
    net = random_network(coding, (3, 2, 2), timesteps=MAX_TTFS_TIMESTEPS, input_coding="spikes", seed=1)
    v = rtl_gen.generate(net, tmp_path)
    assert "module snn_top(" in v.read_text()


@pytest.mark.parametrize("coding", ["ttfs", "sc-ttfs"])
def test_larger_ttfs_timesteps_are_refused(coding):
    from snnfpga.ir import IRError, validate

    net = random_network(coding, (3, 2, 2), timesteps=4, seed=1)
    with pytest.raises(IRError, match=rf"field 'timesteps': a {coding} network takes T in 1\.\.{MAX_TTFS_TIMESTEPS} .*not 257"):
        validate(replace(net, timesteps=MAX_TTFS_TIMESTEPS + 1))


def test_reference_encode_memory_is_bounded(monkeypatch):
    """The encode runs in chunks of ``ENCODE_CHUNK // T`` values (same results as one piece):
    a batch of 200 frames × 1000 neurons × T = 4096 used 2.8 GB before, ~100 MB now."""
    net = random_network("sc-ttfs", (8, 40, 3), timesteps=64, seed=3)
    frames = random_frames(net, 30, seed=4)
    whole = reference.simulate(net, frames)
    monkeypatch.setattr(reference, "ENCODE_CHUNK", 64 * 7)  # 7 values a chunk: ragged last chunk
    chunked = reference.simulate(net, frames)
    assert np.array_equal(whole.output, chunked.output)
    for stage, spikes in whole.spikes.items():
        assert np.array_equal(spikes.t_enc, chunked.spikes[stage].t_enc)
        assert np.array_equal(spikes.t_cal, chunked.spikes[stage].t_cal)


def test_run_refuses_a_large_ttfs_t_before_training():
    """`snnfpga run -T 300` with an (SC-)TTFS job fails in the preflight, before any training."""
    from snnfpga.errors import BadOption
    from snnfpga.flow import RunOptions, preflight

    with pytest.raises(BadOption, match=r"--timesteps: a sc-ttfs network takes T in 1\.\.256 .*not 300"):
        preflight(RunOptions(coding="sc-ttfs", timesteps=300, hardware=False))
    preflight(RunOptions(coding="rate", timesteps=300, hardware=False, sweep=False))  # rate takes it
