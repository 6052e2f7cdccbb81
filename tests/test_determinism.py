"""Generated Verilog is byte-identical wherever the toolkit lives and whoever runs it (issue 13).

amaranth records the absolute path of the Python line behind every net in ``src`` attributes;
``rtl_gen.emit`` rewrites the toolkit's to checkout-relative names and drops the others. Here
the toolkit is copied, in the wheel's layout (``snnfpga/rtl_gen``, ``snnfpga/sim``, ...), to
two folders of different depth, ``snnfpga generate`` runs from each in a fresh interpreter
(another hash seed, another working directory), and every output file must equal the bytes
the checkout writes in process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from snnfpga import rtl_gen
from snnfpga.ir import save
from snnfpga.rtl_gen.emit import portable_verilog
from snnfpga.testing import random_network


def _install_copy(dest: Path) -> Path:
    """The toolkit's packages under ``dest`` in the layout a wheel installs (no editable finder
    is needed: ``snnfpga.rtl_gen`` is found inside ``snnfpga/``)."""
    import snnfpga

    pkg = Path(snnfpga.__file__).resolve().parent
    here = Path(rtl_gen.__file__).resolve().parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(pkg, dest / "snnfpga", ignore=ignore)
    for sub, src in (("rtl_gen", here), ("sim", here.parent / "sim"), ("boards", here.parent / "boards")):
        if not (dest / "snnfpga" / sub).exists():
            shutil.copytree(src, dest / "snnfpga" / sub, ignore=ignore)
    return dest


def _generate_in(root: Path, model: Path, out: Path, cwd: Path, seed: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED=seed, PYTHONDONTWRITEBYTECODE="1")
    probe = subprocess.run([sys.executable, "-c", "import snnfpga.rtl_gen as r; print(r.__file__)"],
                           env=env, cwd=cwd, capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(root), probe.stdout  # the copy, not the checkout
    subprocess.run([sys.executable, "-m", "snnfpga", "generate", str(model), "-o", str(out), "--lanes", "2"],
                   env=env, cwd=cwd, capture_output=True, text=True, check=True)


def test_verilog_is_byte_identical_across_checkout_paths(tmp_path):
    net = random_network("sc-ttfs", (6, 5, 3), timesteps=4, input_coding="spikes", seed=4)
    save(net, tmp_path / "m.snn.json")
    want = tmp_path / "here"
    rtl_gen.generate(net, want, lanes=2)
    text = (want / "snn_top.v").read_text()
    assert "src = " in text                         # the locations are kept, only made portable
    for bad in (str(Path(rtl_gen.__file__).resolve().parent.parent), str(tmp_path), sys.prefix, "site-packages"):
        assert bad not in text
    a = _install_copy(tmp_path / "a")
    b = _install_copy(tmp_path / "b" / "deeper" / "still")
    _generate_in(a, tmp_path / "m.snn.json", tmp_path / "out_a", cwd=a, seed="1")
    _generate_in(b, tmp_path / "m.snn.json", tmp_path / "out_b", cwd=tmp_path, seed="2")
    for name in ("snn_top.v", "snn_top.json"):
        ref = (want / name).read_bytes()
        assert (tmp_path / "out_a" / name).read_bytes() == ref, name
        assert (tmp_path / "out_b" / name).read_bytes() == ref, name


def test_generating_twice_gives_the_same_bytes(tmp_path):
    net = random_network("rate", (6, 4, 3), timesteps=3, seed=5)
    rtl_gen.generate(net, tmp_path / "1")
    rtl_gen.generate(net, tmp_path / "2")
    for name in ("snn_top.v", "snn_top.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_portable_verilog_rewrites_and_drops_locations():
    here = Path(rtl_gen.__file__).resolve().parent
    text = (f'(* src = "{here}/top.py:12" *)\n'
            f'  (* src = "/usr/lib/python3/contextlib.py:81" *)\n'
            f'  assign a = b & (* src = "/x/amaranth/hdl/_ir.py:3|{here}/luts.py:7" *) c;\n'
            f'  assign d = e | (* src = "/elsewhere/mod.py:9" *) f;\n')
    assert portable_verilog(text) == ('(* src = "rtl_gen/top.py:12" *)\n'
                                      '  assign a = b & (* src = "rtl_gen/luts.py:7" *) c;\n'
                                      '  assign d = e | f;\n')
