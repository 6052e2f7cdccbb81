"""End to end on real images: trained, converted networks proven bit-exact in RTL.

digits (all 360 test images) on Verilator and Icarus for SC-TTFS, TTFS and IF rate; the
MNIST-10k 784-128-10 SC-TTFS network on 100 test images on Verilator (the full 2,000 run is
``benchmarks/bench_rtl.py``). RTL accuracy must equal the integer reference's exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnfpga import sim
from snnfpga.convert.data import load_dataset
from snnfpga.ir.frames import quantize_frames
from snnfpga.convert.models import mlp
from snnfpga.convert.pipeline import ConvertOptions, convert
from snnfpga.convert.train import train_ann


def _trained(name: str, epochs: int):
    data = load_dataset(name)
    torch.manual_seed(0)
    model = mlp(data.shape, (128,))
    train_ann(model, data, epochs=epochs, progress=False)
    return data, model


@pytest.fixture(scope="module")
def digits():
    return _trained("digits", 20)


def _check(net, data, n, simulator, lanes, min_accuracy=0.9):
    frames = quantize_frames(net, data.test_x[:n])
    rep = sim.simulate(net, frames, simulator=simulator, lanes=lanes)
    assert rep.images == n
    assert rep.mismatching_images == 0, rep.first_mismatch
    assert not rep.stat_errors and not rep.protocol_errors
    rtl = np.asarray(rep.rtl_classes)
    ref = np.asarray(rep.reference_classes)
    assert (rtl == ref).all()
    assert (rtl == data.test_y[:n]).mean() > min_accuracy  # a trained network, not noise
    return rep


@pytest.mark.parametrize("coding, T", [("sc-ttfs", 4), ("ttfs", 4), ("rate", 16)])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_digits_every_test_image_bit_exact(digits, coding, T, simulator):
    data, model = digits
    net = convert(model, data, ConvertOptions(coding=coding, timesteps=T, finetune_epochs=1), progress=False).net
    rep = _check(net, data, len(data.test_y), simulator, lanes=4)
    assert rep.events_per_frame > 0


def test_mnist10k_mlp_100_images_bit_exact_on_verilator():
    data, model = _trained("mnist10k", 3)
    net = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=4, finetune_epochs=0), progress=False).net
    assert max(layer.n_out for layer in net.layers if layer.weighted) >= 128
    rep = _check(net, data, 100, "verilator", lanes=16)
    assert rep.cycles_per_frame["mean"] >= rep.event_bound_cycles  # the bound is a bound


@pytest.fixture(scope="module")
def digits_cnn():
    from snnfpga.convert.models import cnn

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = cnn(data.shape, (4, 8), data.classes)
    train_ann(model, data, epochs=15, progress=False)
    return data, model


@pytest.mark.parametrize("coding, T, input_coding, simulator", [
    ("sc-ttfs", 4, "direct", "verilator"), ("sc-ttfs", 4, "direct", "icarus"),
    ("ttfs", 4, "spikes", "icarus"), ("rate", 16, "direct", "verilator")])
def test_digits_cnn_60_images_bit_exact(digits_cnn, coding, T, input_coding, simulator):
    """A trained CNN (conv → pool → conv → pool → flatten → dense) through the conv cores."""
    data, model = digits_cnn
    opts = ConvertOptions(coding=coding, timesteps=T, input_coding=input_coding, finetune_epochs=0)
    net = convert(model, data, opts, progress=False).net
    assert [layer.kind for layer in net.layers if layer.kind != "flatten"][:2] == ["conv2d", "avgpool2d"]
    rep = _check(net, data, 60, simulator, lanes=4, min_accuracy=0.8)  # a 4-8-channel CNN
    assert rep.events_per_frame > 0
