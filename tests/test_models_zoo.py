"""Model zoo options for fast small CNNs (issue 9's board goals): ``--kernel``, ``--stride`` and
``--pool`` of the ``cnn`` builder, per layer or one for all; defaults unchanged; recorded in the
checkpoint; converted and run bit-exact in RTL with a 5×5 stride-2 padding-2 first layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from snnfpga import flow
from snnfpga.cli import build_parser
from snnfpga.convert.data import load_dataset
from snnfpga.convert.models import build_model, cnn, load_checkpoint, save_checkpoint
from snnfpga.convert.pipeline import ConvertOptions, convert
from snnfpga.errors import BadOption, UserError
from snnfpga.ir import validate


def _convs(model: nn.Module) -> list[tuple]:
    return [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
            for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_default_cnn_is_unchanged():
    """Defaults give the zoo's original network, layer for layer and weight for weight."""
    torch.manual_seed(0)
    a = cnn((1, 28, 28), (16, 32))
    torch.manual_seed(0)
    b = cnn((1, 28, 28), (16, 32), kernel=(3,), stride=(1, 1), pool=(2,))
    assert [type(m) for m in a] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d] * 2 + [nn.Flatten, nn.Linear]
    assert _convs(a) == [(1, 16, (3, 3), (1, 1), (1, 1)), (16, 32, (3, 3), (1, 1), (1, 1))]
    assert a[-1].in_features == 32 * 7 * 7
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_strided_cnn_shapes():
    m = cnn((1, 28, 28), (8, 16), kernel=(5, 3), stride=(2,), pool=(1,))
    assert _convs(m) == [(1, 8, (5, 5), (2, 2), (2, 2)), (8, 16, (3, 3), (2, 2), (1, 1))]
    assert not any(isinstance(x, nn.AvgPool2d) for x in m)
    assert m[-1].in_features == 16 * 7 * 7
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    m = cnn((1, 28, 28), (4, 8), kernel=(5, 3), stride=(2, 1), pool=(1, 2))  # pool on the second only
    assert [type(x) for x in m].count(nn.AvgPool2d) == 1 and m[-1].in_features == 8 * 7 * 7


@pytest.mark.parametrize("kw, fragment", [
    (dict(kernel=(3, 3, 3)), "one value or one per conv layer (2), not 3"),
    (dict(stride=(0,)), "stride: every value must be >= 1, not 0"),
    (dict(stride=(4, 4)), "leaves no output"),
])
def test_bad_cnn_options_name_the_option(kw, fragment):
    with pytest.raises(BadOption, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        cnn((1, 8, 8), (2, 2), **kw)


def test_options_only_for_cnn():
    with pytest.raises(BadOption, match="--stride only apply to --model cnn, not 'mlp'"):
        build_model("mlp", (1, 8, 8), 10, (16,), stride=(2,))
    assert isinstance(build_model("mlp", (1, 8, 8), 10, (16,), stride=None), nn.Sequential)


def test_cli_options_reach_the_checkpoint(tmp_path):
    args = build_parser().parse_args(["run", "--model", "cnn", "--hidden", "3", "4", "--kernel", "5", "3",
                                      "--stride", "2", "--pool", "1"])
    opts = flow.RunOptions.from_args(args)
    assert (opts.kernel, opts.stride, opts.pool) == ((5, 3), (2,), (1,))
    plain = flow.RunOptions.from_args(build_parser().parse_args(["run", "--model", "cnn"]))
    assert (plain.kernel, plain.stride, plain.pool) == (None, None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--stride", "0"])

    model = build_model("cnn", (1, 8, 8), 10, (3, 4), kernel=(5, 3), stride=(2,), pool=(1,)).eval()
    arch = {"model": "cnn", "hidden": [3, 4], "in_shape": [1, 8, 8], "classes": 10, "kernel": [5, 3],
            "stride": [2], "pool": [1]}
    save_checkpoint(model, arch, tmp_path / "ann.pt")
    back, got = load_checkpoint(tmp_path / "ann.pt")
    x = torch.rand(3, 1, 8, 8)
    assert got["stride"] == [2] and torch.equal(back(x), model(x))
    # an architecture file from before these options loads the default network
    old = tmp_path / "old.pt"
    save_checkpoint(cnn((1, 8, 8), (3, 4)), {k: arch[k] for k in ("model", "hidden", "in_shape", "classes")}, old)
    assert _convs(load_checkpoint(old)[0])[0][2:] == ((3, 3), (1, 1), (1, 1))
    bad = tmp_path / "bad.pt"
    save_checkpoint(model, dict(arch, stride=[2, 2, 2]), bad)
    with pytest.raises(UserError, match="stride"):
        load_checkpoint(bad)
    assert json.loads((tmp_path / "ann.pt.json").read_text())["kernel"] == [5, 3]


def test_strided_cnn_converts_and_runs_bit_exact_in_rtl():
    """5×5 stride 2 padding 2, then 3×3 stride 2 (no pooling) on digits: the IR keeps the
    geometry, the integer reference follows the float SNN, and the generated hardware equals
    the reference event for event (padding 2 is beyond the random conv tests' 0..1)."""
    from snnfpga.rtl_gen.pysim import run
    from snnfpga.reference import simulate

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = cnn(data.shape, (3, 4), kernel=(5, 3), stride=(2,), pool=(1,))
    from snnfpga.convert.train import train_ann

    train_ann(model, data, epochs=2, progress=False)
    c = convert(model, data, ConvertOptions(coding="sc-ttfs", timesteps=3, weight_bits=6, finetune_epochs=0),
                progress=False)
    net = c.net
    validate(net)
    convs = [(layer.kernel, layer.stride, layer.padding, layer.out_shape) for layer in net.layers if layer.kind == "conv2d"]
    assert convs == [(5, 2, 2, (3, 4, 4)), (3, 2, 1, (4, 2, 2))]
    assert not any(layer.kind == "avgpool2d" for layer in net.layers)
    assert abs(c.metrics["int_ref"] - c.metrics["float_snn"]) <= 0.05
    from snnfpga.ir.frames import quantize_frames

    frames = quantize_frames(net, data.test_x[:3]).reshape(3, -1)
    hw = run(net, frames, lanes=2, gaps=True, backpressure=True, seed=1)
    ref = simulate(net, frames)
    for stage, spikes in ref.spikes.items():
        assert [hw.events[stage][f] for f in range(3)] == [spikes.events(f) for f in range(3)], stage
    assert int(np.sum(ref.spikes_per_frame())) > 0
