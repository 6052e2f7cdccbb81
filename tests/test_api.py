"""The Python API as a PyTorch user meets it (docs/api.md, README "From your own model"), the
``torch.export`` files the command line reads and writes, and the errors bad input gets."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import snnfpga
from snnfpga.cli import main
from snnfpga.convert.data import load_dataset
from snnfpga.convert.export import NotAnExportProgram, load_export, save_export
from snnfpga.convert.graph import UnsupportedModel, trace


class MyNet(nn.Module):
    """Not one of the built-in models: an ``nn.Sequential`` inside a custom ``forward``."""

    def __init__(self, hidden: int = 24):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.out = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.out(self.body(torch.flatten(x, 1)))


class SigmoidNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(64, 16), nn.Sigmoid(), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x.flatten(1))))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """MyNet trained on digits for a few epochs (seconds)."""
    torch.manual_seed(0)
    model = MyNet()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    x, y = torch.from_numpy(digits.train_x), torch.from_numpy(digits.train_y)
    for _epoch in range(8):
        model.train()
        for i in range(0, len(y), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return model.eval()


def test_readme_example_end_to_end_bit_exact(digits, trained, tmp_path):
    """README "From your own model", on digits, through the Verilator check."""
    x_train, y_train = torch.from_numpy(digits.train_x), torch.from_numpy(digits.train_y)
    x_test, y_test = digits.test_x, digits.test_y  # numpy works as well as tensors

    snn = snnfpga.convert(trained, calibration=x_train[:1000], coding="sc-ttfs", timesteps=4, weight_bits=8,
                          finetune=(x_train, y_train), finetune_epochs=1)
    assert isinstance(snn, snnfpga.SNN) and snn.net.coding == "sc-ttfs" and snn.net.timesteps == 4
    classes = snn.predict(x_test)
    assert classes.shape == (len(y_test),) and classes.dtype == np.int64
    assert snn.simulate_float(x_test[:20]).shape == (20,)
    ev = snn.evaluate(x_test, y_test)
    assert isinstance(ev, snnfpga.Evaluation) and ev.images == len(y_test)
    assert ev.float_ann > 0.85 and ev.int_ref > 0.8 and abs(ev.int_ref - ev.float_snn) < 0.05
    assert ev.int_ref == pytest.approx(float((classes == y_test).mean()))
    assert ev.spikes_per_frame > 0
    json_path, npz_path = snn.save(tmp_path / "net.snn.json")
    again = snnfpga.load(json_path)
    np.testing.assert_array_equal(again.predict(x_test), classes)
    assert again.evaluate(x_test, y_test).float_snn is None  # the IR holds the integer network only

    est = snn.estimate(board="icebreaker", lanes=4)
    assert est.board == "icebreaker" and est.bram <= est.capacity["BRAM"] and est.fps > 0
    gen = snn.generate(tmp_path / "rtl", lanes=4)
    assert gen.verilog.is_file() and gen.verilog.suffix == ".v"
    sim = snn.simulate(x_test[:6], y_test[:6], simulator="verilator", generated=gen)
    assert sim.images == 6 and sim.mismatching_images == 0 and sim.bit_exact
    assert sim.report.cycles_per_frame["mean"] > 0
    assert sim.report.rtl_classes == classes[:6].tolist()


def test_dataloader_and_unlabelled_calibration(digits, trained):
    """A DataLoader of (images, labels) for fine-tuning, bare images for calibration, rate coding
    (thresholds scored against the model's own classes)."""
    ds = torch.utils.data.TensorDataset(torch.from_numpy(digits.train_x), torch.from_numpy(digits.train_y))
    loader = torch.utils.data.DataLoader(ds, batch_size=200)
    snn = snnfpga.convert(trained, calibration=digits.train_x[:300], coding="rate", timesteps=16,
                          finetune=loader)
    assert snn.net.provenance["calibration_labels"] == "the model's own classes"
    assert snn.net.provenance["float_ann_accuracy"] is None
    assert snn.evaluate(loader).images == len(digits.train_y)


def test_input_scale_taken_from_the_data(digits, trained):
    """A model trained on raw pixels 0..16 converts to the integer network of the same model on
    0..1 images, with input.scale 16 times larger: the first layer's weights absorb the factor."""
    import copy

    raw = copy.deepcopy(trained)
    with torch.no_grad():
        raw.body[0].weight /= 16  # raw(16 x) == trained(x), exactly (a power of two)
    x, y = digits.test_x, digits.test_y
    unit = snnfpga.convert(trained, calibration=digits.train_x[:300], coding="ttfs")
    scaled = snnfpga.convert(raw, calibration=digits.train_x[:300] * 16, coding="ttfs")
    assert scaled.net.input.scale == pytest.approx(16 * unit.net.input.scale)
    assert scaled.net.provenance["input_range"] == [0.0, 16.0]
    for a, b in zip(unit.net.layers, scaled.net.layers):
        if a.weighted:
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)
        assert a.neuron == b.neuron
    np.testing.assert_array_equal(scaled.predict(x * 16), unit.predict(x))
    ev = scaled.evaluate(x * 16, y)
    assert ev.float_ann == unit.evaluate(x, y).float_ann and ev.float_snn > 0.8
    with pytest.raises(snnfpga.DataMismatch, match="exceed the network's input range"):
        unit.predict(x * 16)


def _ir_without_provenance(json_path):
    doc = json.loads(json_path.read_text())
    for key in ("provenance", "name", "arrays"):
        doc.pop(key, None)
    with np.load(json_path.with_suffix("").with_suffix(".snn.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return doc, arrays


def test_export_round_trip_cli_matches_api(digits, tmp_path, capsys):
    """snnfpga train → .pt2 → snnfpga convert gives the IR the Python API gives on the same model and data."""
    ckpt = tmp_path / "ann.pt"
    assert main(["train", "--quiet", "--epochs", "2", "--hidden", "16", "-o", str(ckpt)]) == 0
    pt2 = tmp_path / "ann.pt2"
    assert pt2.is_file() and ckpt.is_file()
    exported = load_export(pt2)
    assert exported.in_shape == (1, 8, 8) and exported.meta["dataset"] == "digits"
    cli_ir = tmp_path / "cli.snn.json"
    assert main(["convert", str(pt2), "--quiet", "--finetune-epochs", "1", "-o", str(cli_ir)]) == 0
    assert "sc-ttfs" in capsys.readouterr().out

    from snnfpga.convert.pipeline import calibration_sample

    model, _, _ = snnfpga.load_model(ckpt)  # the same weights, as the nn.Sequential 'train' built
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(exported.module(x), model(x), rtol=0, atol=0)
    cx, cy = calibration_sample(digits, 2000, 0)  # what 'snnfpga convert' calibrates on
    snn = snnfpga.convert(model, calibration=(cx, cy), finetune=(digits.train_x, digits.train_y),
                          finetune_epochs=1)
    api_ir, _ = snn.save(tmp_path / "api.snn.json")
    cli_doc, cli_arrays = _ir_without_provenance(cli_ir)
    api_doc, api_arrays = _ir_without_provenance(api_ir)
    assert cli_doc == api_doc
    assert cli_arrays.keys() == api_arrays.keys()
    for k in cli_arrays:
        np.testing.assert_array_equal(cli_arrays[k], api_arrays[k])


def test_exported_resnet_decomposed_and_training_mode(tmp_path):
    """A residual network's exported program, decomposed to core ATen (addmm, convolution,
    native batch norm), rebuilds to the same function; one exported in training mode is refused."""
    from snnfpga.convert.models import resnet

    model = resnet((1, 8, 8), (4, 4, 8)).eval()
    ep = torch.export.export(model, (torch.zeros(2, 1, 8, 8),)).run_decompositions()
    torch.export.save(ep, tmp_path / "r.pt2")
    exported = load_export(tmp_path / "r.pt2")
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(exported.module(x), model(x), rtol=0, atol=1e-6)
    assert [layer.kind for layer in trace(exported.module, (1, 8, 8))] == \
        [layer.kind for layer in trace(model, (1, 8, 8))]
    torch.export.save(torch.export.export(MyNet().train(), (torch.zeros(2, 1, 8, 8),)), tmp_path / "t.pt2")
    with pytest.raises(UnsupportedModel, match=r"training mode; call model.eval\(\)"):
        load_export(tmp_path / "t.pt2")


# --------------------------------------------------------------------------- bad input
def test_unsupported_op_named_with_what_is_supported(digits, tmp_path, capsys):
    with pytest.raises(UnsupportedModel) as e:
        snnfpga.convert(SigmoidNet(), calibration=digits.train_x[:50])
    assert "Sigmoid" in str(e.value) and "Linear" in str(e.value) and "ReLU" in str(e.value)

    pt2, out = tmp_path / "sig.pt2", tmp_path / "sig.snn.json"
    save_export(SigmoidNet(), (1, 8, 8), pt2)
    assert main(["convert", str(pt2), "--quiet", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sigmoid" in err and "'act'" in err and "linear" in err and "relu" in err
    assert not out.exists() and not out.with_suffix("").with_suffix(".snn.npz").exists()


def test_wrong_shaped_calibration(digits, trained):
    with pytest.raises(snnfpga.DataMismatch) as e:
        snnfpga.convert(trained, calibration=digits.train_x[:50, :, :7, :])
    assert "calibration" in str(e.value) and "(1, 7, 8)" in str(e.value)
    with pytest.raises(snnfpga.DataMismatch, match=r"finetune: images of shape \(1, 8, 7\)"):
        snnfpga.convert(trained, calibration=digits.train_x[:50],
                        finetune=(digits.train_x[:50, :, :, :7], digits.train_y[:50]))
    with pytest.raises(snnfpga.DataMismatch, match="must be >= 0"):
        snnfpga.convert(trained, calibration=digits.train_x[:50] - 0.5)
    with pytest.raises(snnfpga.DataMismatch, match="input_range must be positive and cover"):
        snnfpga.convert(trained, calibration=digits.train_x[:50], input_range=0.5)
    with pytest.raises(snnfpga.DataMismatch, match="labels must be one per image"):
        snnfpga.convert(trained, calibration=(digits.train_x[:50], digits.train_y[:49]))
    assert issubclass(snnfpga.DataMismatch, snnfpga.UserError)


def _pickled_weights_archive(src: bytes) -> bytes:
    """An export archive whose weight config claims a pickled payload (never to be loaded)."""
    zin, buf = zipfile.ZipFile(io.BytesIO(src)), io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                cfg = json.loads(data)
                for meta in cfg["config"].values():
                    meta["use_pickle"] = True
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    return buf.getvalue()


@pytest.mark.parametrize("content", ["text", "zip", "torch-save", "pickled-weights"])
def test_pt2_that_is_not_an_export_program(tmp_path, capsys, content):
    bad = tmp_path / "bad.pt2"
    if content == "text":
        bad.write_text("not a model\n")
    elif content == "zip":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("hello.txt", "hi")
    elif content == "torch-save":
        torch.save(MyNet().state_dict(), bad)
    else:
        good = tmp_path / "good.pt2"
        save_export(MyNet().eval(), (1, 8, 8), good)
        bad.write_bytes(_pickled_weights_archive(good.read_bytes()))
    with pytest.raises(NotAnExportProgram) as e:
        load_export(bad)
    assert str(bad) in str(e.value)
    if content == "pickled-weights":
        assert "pickled" in str(e.value)
    else:
        assert "not a torch.export program" in str(e.value)
    out = tmp_path / "x.snn.json"
    assert main(["convert", str(bad), "--quiet", "-o", str(out)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert not out.exists()


def test_import_is_lazy():
    """``import snnfpga`` loads neither torch nor amaranth (measured: ~0.15 s with Python's start)."""
    import subprocess
    import sys

    code = "import sys, snnfpga; snnfpga.convert; snnfpga.UserError; print('torch' in sys.modules, 'amaranth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert callable(snnfpga.convert) and "calibration" in str(__import__("inspect").signature(snnfpga.convert))
    assert set(snnfpga.__all__) <= set(dir(snnfpga))


def test_unknown_board_and_bad_lanes_write_nothing(tmp_path):
    from snnfpga.testing import random_network

    snn = snnfpga.SNN(random_network("rate", (4, 3, 2), 8))
    with pytest.raises(snnfpga.UserError, match="nope"):
        snn.estimate(board="nope")
    with pytest.raises(snnfpga.UserError, match="nope"):
        snn.build(board="nope", out_dir=tmp_path / "b")
    with pytest.raises(snnfpga.UserError, match="lanes must be in 1..64, not 0"):
        snn.generate(tmp_path / "g", lanes=0)
    assert not (tmp_path / "b").exists() and not (tmp_path / "g").exists()
    with pytest.raises(snnfpga.UserError, match="loaded from an IR file"):
        snn.simulate_float(np.zeros((1, 4)))
