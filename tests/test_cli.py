"""The command line as a user meets it: train → convert → evaluate, and clear errors."""

from __future__ import annotations

import json

import pytest

from snnfpga import ir
from snnfpga.cli import main


def test_train_convert_evaluate(tmp_path, capsys):
    ckpt = tmp_path / "ann.pt"
    assert main(["train", "--quiet", "--epochs", "3", "--hidden", "32", "-o", str(ckpt)]) == 0
    assert ckpt.is_file() and ckpt.with_suffix(".pt.json").is_file()
    out = tmp_path / "m.snn.json"
    assert main(["convert", str(ckpt), "--quiet", "--coding", "ttfs", "--timesteps", "3",
                 "--weight-bits", "6", "--finetune-epochs", "0", "-o", str(out)]) == 0
    net = ir.load(out)
    assert net.coding == "ttfs" and net.timesteps == 3
    assert all(layer.weight_bits == 6 for layer in net.layers if layer.weighted)
    assert main(["evaluate", str(out), "--quiet", "--images", "50"]) == 0
    text = capsys.readouterr().out
    assert "integer accuracy" in text and "(50 images)" in text


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--quiet", "--dataset", "mnist", "--data-root", str(tmp_path), "-o", str(tmp_path / "a.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "data set 'mnist' not found" in err and str(tmp_path) in err


def test_malformed_model_names_file_and_field(tmp_path, capsys):
    from snnfpga.testing import random_network

    j, _ = ir.save(random_network("rate", (4, 3, 2), 8), tmp_path / "m.snn.json")
    doc = json.loads(j.read_text())
    doc["layers"][0]["neuron"]["theta"] = -3
    j.write_text(json.dumps(doc))
    assert main(["evaluate", str(j), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(j) in err and "layers[0].neuron.theta" in err and "-3" in err


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.pt"), "--quiet"]) == 2
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err


def test_unknown_dataset_rejected_by_parser():
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "imagenet"])


def test_missing_simulator_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """`run` with its hardware check on a machine without the simulator: a message, not a traceback."""
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name in ("iverilog", "vvp") else real_which(name, *a, **k))
    code = main(["run", "--quiet", "--epochs", "1", "--hidden", "16", "--no-sweep", "--finetune-epochs", "0",
                 "--simulator", "icarus", "--images", "4", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "icarus" in err and "make setup" in err


def test_run_with_unknown_board_fails_before_training(tmp_path, capsys):
    """The simulator and the board are checked first: an unknown board costs seconds, not a training run."""
    code = main(["run", "--quiet", "--board", "nexys", "--simulator", "icarus", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "snnfpga: error: unknown board 'nexys'; supported boards:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
