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


# --------------------------------------------------------------------------- issue 13: options checked at parse time

@pytest.mark.parametrize("argv, message", [
    (["evaluate", "m.snn.json", "--images", "-5"], "argument --images: must be >= 1, not -5"),
    (["evaluate", "m.snn.json", "--images", "0"], "argument --images: must be >= 1, not 0"),
    (["evaluate", "m.snn.json", "--images", "many"], "argument --images: must be an integer, not 'many'"),
    (["build", "m.snn.json", "--board", "icebreaker", "--baud", "0"], "argument --baud: must be in 300..12000000, not 0"),
    (["infer", "m.snn.json", "--port", "/dev/ttyUSB0", "--baud", "-1"], "argument --baud: must be in 300..12000000, not -1"),
    (["infer", "m.snn.json", "--port", "/dev/ttyUSB0", "--window", "0"], "argument --window: must be in 1..256, not 0"),
    (["infer", "m.snn.json"], "the following arguments are required: --port"),
    (["infer", "m.snn.json", "--port", ""], "argument --port: must not be empty"),
    (["convert", "a.pt", "--timesteps", "0"], "argument --timesteps/-T: must be in 1..4096, not 0"),
    (["convert", "a.pt", "-T", "-1"], "argument --timesteps/-T: must be in 1..4096, not -1"),
    (["run", "-T", "5000"], "argument --timesteps/-T: must be in 1..4096, not 5000"),
    (["convert", "a.pt", "--input-bits", "0"], "argument --input-bits: must be in 1..16, not 0"),
    (["convert", "a.pt", "--act-bits", "0"], "argument --act-bits: must be in 2..16, not 0"),
    (["convert", "a.pt", "--weight-bits", "1"], "argument --weight-bits: must be in 2..16, not 1"),
    (["convert", "a.pt", "--finetune-epochs", "-1"], "argument --finetune-epochs: must be >= 0, not -1"),
    (["convert", "a.pt", "--seed", "-1"], "argument --seed: must be in 0..4294967295, not -1"),
    (["train", "--hidden", "16", "0"], "argument --hidden: must be in 1..65536, not 0"),
    (["train", "--epochs", "-2"], "argument --epochs: must be >= 0, not -2"),
    (["train", "--seed", "99999999999"], "argument --seed: must be in 0..4294967295, not 99999999999"),
    (["run", "--lanes", "1000000"], "argument --lanes: must be in 1..64, not 1000000"),
    (["run", "--images", "-5"], "argument --images: must be >= 1, not -5"),
    (["generate", "m.snn.json", "-o", "out", "--lanes", "0"], "argument --lanes: must be in 1..64, not 0"),
    (["simulate", "m.snn.json", "--lanes", "65"], "argument --lanes: must be in 1..64, not 65"),
    (["simulate", "m.snn.json", "--images", "-5"], "argument --images: must be >= 1, not -5"),
    (["simulate", "m.snn.json", "--seed", "-3"], "argument --seed: must be in 0..4294967295, not -3"),
    (["build", "m.snn.json", "--board", "icebreaker", "--lanes", "0"], "argument --lanes: must be in 1..64, not 0"),
    (["build", "m.snn.json", "--board", "icebreaker", "--images", "0"], "argument --images: must be >= 1, not 0"),
    (["infer", "m.snn.json", "--port", "p", "--images", "-5"], "argument --images: must be >= 1, not -5"),
])
def test_numeric_options_are_range_checked_at_parse_time(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err, err


def test_every_numeric_option_has_a_checked_type():
    """No parser of any subcommand takes a bare ``type=int``: each uses snnfpga.cli_types."""
    import argparse

    from snnfpga.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [(name, a.dest) for name, p in sub.choices.items() for a in p._actions if a.type is int]
    assert bare == []


def test_run_with_unknown_board_fails_even_without_hardware(tmp_path, capsys):
    code = main(["run", "--quiet", "--board", "nosuch", "--no-hardware", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "snnfpga: error: unknown board 'nosuch'; supported boards:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_evaluate_warns_when_every_pixel_is_zero(tmp_path, capsys):
    """An input.scale that maps every image of the data set to 0 is reported, not silently evaluated."""
    from dataclasses import replace

    from snnfpga.testing import random_network

    net = random_network("ttfs", (64, 8, 10), 3)
    net = replace(net, input=replace(net.input, scale=1e20), provenance={"dataset": "digits"})
    j, _ = ir.save(net, tmp_path / "m.snn.json")
    assert main(["evaluate", str(j), "--quiet", "--images", "5"]) == 0
    out = capsys.readouterr().out
    assert "warning: every pixel of the 5 frame(s) is 0: input.scale=1e+20 maps every pixel of these images to 0" in out


def test_evaluate_batches_shrink_with_t_times_width():
    """A rate network at T=4096 over 2**16 neurons runs the reference a few frames at a time
    (a batch of 200 would hold 50 GB of spike rasters)."""
    from snnfpga.cli import REFERENCE_BATCH_BYTES, reference_batch
    from snnfpga.convert.pipeline import INT_BATCH
    from snnfpga.testing import random_network

    assert reference_batch(random_network("rate", (8, 6, 3), 32)) == INT_BATCH
    assert reference_batch(random_network("ttfs", (8, 6, 3), 256)) == INT_BATCH
    from dataclasses import replace

    small = random_network("rate", (8, 6, 3), 4)
    wide = replace(small.with_layer(0, out_shape=(1 << 16,)), timesteps=4096)  # sizes only: not validated
    b = reference_batch(wide)
    assert 1 <= b < INT_BATCH and b * 4096 * (1 << 16) <= REFERENCE_BATCH_BYTES
