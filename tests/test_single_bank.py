"""One bank of partial sums for chosen layers (``single_bank``): half the memory, still bit-exact.

A layer whose partial sums have one bank decodes nothing while it encodes; the hardware must
stay exact (every spike event and output membrane), the fit check must count the memory it
saves, and a layer that has no partial sums of its own is refused by name.
"""

from __future__ import annotations

import pytest

from snnfpga import sim
from snnfpga.boards import fit
from snnfpga.boards.registry import get_board
from snnfpga.errors import BadOption
from snnfpga.rtl_gen import describe
from snnfpga.rtl_gen.top import NetworkTop, check_single_bank
from snnfpga.testing import random_conv_network, random_frames, random_network


@pytest.mark.parametrize("coding,input_coding,lanes", [("sc-ttfs", "direct", 2), ("ttfs", "spikes", 1),
                                                         ("rate", "direct", 2), ("rate", "spikes", 3)])
def test_single_bank_layers_are_bit_exact(coding, input_coding, lanes):
    net = random_conv_network(coding, (1, 5, 5), timesteps=3, input_coding=input_coding, seed=4)
    weighted = [i for i, layer in enumerate(net.layers) if layer.weighted]
    frames = random_frames(net, 8, seed=5)
    r = sim.simulate(net, frames, lanes=lanes, single_bank=weighted)
    assert r.images == 8 and r.mismatching_images == 0, r.first_mismatch
    assert not r.protocol_errors and not r.stat_errors
    # one bank decodes nothing while it encodes: the frame interval can only grow
    both = sim.simulate(net, frames, lanes=lanes)
    assert both.mismatching_images == 0
    assert r.frame_interval_cycles >= both.frame_interval_cycles


def test_single_bank_halves_the_partial_sums_and_the_fit_counts_it():
    net = random_conv_network("sc-ttfs", (2, 12, 12), timesteps=4, seed=1)
    conv = next(i for i, layer in enumerate(net.layers) if layer.kind == "conv2d")

    def psums(desc, index):
        return [m for m in desc.memories if m.role == "partial_sums" and m.path.startswith(f"layer{index}.")]

    two, one = describe(net, lanes=2), describe(net, lanes=2, single_bank=[conv])
    assert len(psums(two, conv)) == 2 and len(psums(one, conv)) == 1
    board = get_board("icebreaker")
    saved = (fit.check_fit(net, board, lanes=2)["bram_blocks"]
             - fit.check_fit(net, board, lanes=2, single_bank=[conv])["bram_blocks"])
    need = next(m for m in fit.memory_needs(net, lanes=2) if m.name == f"layer {conv} partial sums")
    assert saved == fit.blocks_for(need.depth, need.width, board.bram_configs) > 0


def test_single_bank_refuses_layers_without_partial_sums():
    net = random_conv_network("sc-ttfs", (1, 6, 6), seed=2)
    flatten = next(i for i, layer in enumerate(net.layers) if layer.kind == "flatten")
    with pytest.raises(BadOption, match=rf"single_bank: layer {flatten} is 'flatten'"):
        NetworkTop(net, lanes=1, single_bank=[flatten])
    with pytest.raises(BadOption, match=r"single_bank: there is no layer 99"):
        NetworkTop(net, lanes=1, single_bank=[99])
    with pytest.raises(BadOption, match=r"single_bank must be layer indices"):
        NetworkTop(random_network("rate", (4, 3, 2), seed=0), lanes=1, single_bank=["x"])
    assert check_single_bank(net, (1, 0, 1)) == (0, 1)
