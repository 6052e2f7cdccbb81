"""rtl_gen.generate / the CLI: Verilog with the ports of docs/hardware.md, and the summary JSON."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from snnfpga import rtl_gen
from snnfpga.cli import main
from snnfpga.rtl_gen.top import NetworkTop
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.ir import InputSpec, Layer, Network, TTFSNeuron, save
from snnfpga.testing import random_network


def module_ports(verilog: str, name: str) -> set[str]:
    header = re.search(rf"module {name}\((.*?)\);", verilog, re.S).group(1)
    return {p.strip() for p in header.split(",")}


def test_generate_writes_verilog_and_summary(tmp_path):
    net = random_network("sc-ttfs", (16, 12, 8, 4), timesteps=4, input_coding="spikes", seed=1)
    v = rtl_gen.generate(net, tmp_path / "out", lanes=4, name="snn_top")
    assert v == tmp_path / "out" / "snn_top.v"
    ports = module_ports(v.read_text(), "snn_top")
    want = {"clk", "rst", "pixels__payload", "pixels__valid", "pixels__ready", "result__payload",
            "result__valid", "result__ready", "stat_cycles", "stat_events", "stat_frames"}
    for s in ("in", "0", "1"):
        want |= {f"tap_{s}_{f}" for f in ("valid", "neuron", "time", "kind", "done")}
    assert ports == want
    s = json.loads((tmp_path / "out" / "snn_top.json").read_text())
    assert s["top"] == "snn_top" and s["coding"] == "sc-ttfs" and s["timesteps"] == 4 and s["lanes"] == 4
    assert s["input"] == {"size": 16, "bits": 8, "signed": False, "input_coding": "spikes"}
    assert s["n_classes"] == 4 and s["cls_bits"] == 2 and s["out_acc_bits"] == net.layers[2].acc_bits
    assert [t["stage"] for t in s["taps"]] == ["in", 0, 1]
    assert s["taps"][1] == {"stage": 0, "name": "tap_0", "neurons": 12, "neuron_bits": 4, "time_bits": 2}
    assert [(d["index"], d["n_in"], d["n_out"], d["weight_words"]) for d in s["layers"]] == \
        [(0, 16, 12, 16 * 3), (1, 12, 8, 12 * 2), (2, 8, 4, 8 * 1)]
    # result payload width = membrane + cls + last
    assert re.search(rf"output \[{s['out_acc_bits'] + 2 + 1 - 1}:0\] result__payload;", v.read_text())


def test_cli_generate(tmp_path, capsys):
    net = random_network("rate", (8, 6, 3), timesteps=3, seed=2)
    save(net, tmp_path / "m.snn.json")
    assert main(["generate", str(tmp_path / "m.snn.json"), "-o", str(tmp_path / "v"), "--lanes", "2"]) == 0
    assert (tmp_path / "v" / "snn_top.v").read_text().count("module snn_top(") == 1
    assert json.loads((tmp_path / "v" / "snn_top.json").read_text())["lanes"] == 2
    assert "rate" in capsys.readouterr().out


@pytest.mark.parametrize("lanes", [0, -1, 1.5, True, "4"])
def test_lanes_must_be_positive_int(lanes):
    net = random_network("ttfs", (4, 3, 2), seed=0)
    with pytest.raises(ValueError, match=r"^lanes must be a positive integer, not "):
        NetworkTop(net, lanes=lanes)


def test_conv_network_builds_and_describes_itself():
    """conv2d → flatten → dense was refused before the conv core; it now builds (tests/test_rtl_conv.py
    proves it bit-exact) and its description names the conv layer's memories."""
    neuron = TTFSNeuron(enc=(40, 20), dec_enc=(8, 4))
    conv = Layer(kind="conv2d", in_shape=(1, 4, 4), out_shape=(2, 2, 2), weight=np.ones((2, 1, 3, 3), np.int64),
                 bias=np.zeros(2, np.int64), weight_bits=4, neuron=neuron, kernel=3)
    flat = Layer(kind="flatten", in_shape=(2, 2, 2), out_shape=(8,))
    dense = Layer(kind="dense", in_shape=(8,), out_shape=(3,), weight=np.ones((3, 8), np.int64),
                  bias=np.zeros(3, np.int64), weight_bits=4)
    net = Network(name="c", coding="ttfs", timesteps=2, input=InputSpec(shape=(1, 4, 4), bits=4),
                  layers=[conv, flat, dense])
    for i in (0, 2):
        net.layers[i].acc_bits = layer_acc_bits(net, i)
    d = rtl_gen.describe(net)
    assert [layer.kind for layer in d.layers] == ["conv2d", "dense"]
    assert any(m.path.startswith("layer0.") and m.role == "weights" for m in d.memories)


def test_no_torch_or_cocotb_import():
    import subprocess
    import sys
    code = ("import sys, rtl_gen, rtl_gen.cli, rtl_gen.pysim; "
            "bad = [m for m in ('torch', 'cocotb') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_cli_generate_reports_bad_lanes(tmp_path, capsys):
    net = random_network("ttfs", (4, 3, 2), seed=0)
    save(net, tmp_path / "m.snn.json")
    with pytest.raises(SystemExit) as e:  # refused at parse time (snnfpga/cli_types.py)
        main(["generate", str(tmp_path / "m.snn.json"), "-o", str(tmp_path / "v"), "--lanes", "0"])
    assert e.value.code == 2
    assert "argument --lanes: must be in 1..64, not 0" in capsys.readouterr().err
    assert not (tmp_path / "v" / "snn_top.v").exists()
