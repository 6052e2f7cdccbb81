"""rtl_gen.describe: the description is the hardware actually built.

Every memory the description lists is a memory of the elaborated NetworkTop (same submodule
path, depth, width, ROM or RAM) and nothing else is; its multipliers are the multiplications in
the design (``$mul`` cells of the RTLIL); the summary JSON is derived from it.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import warnings

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment, MemoryInstance, Module, Shape, UnusedElaboratable
from amaranth.lib.memory import Memory

from snnfpga.errors import BadOption
from snnfpga.ir import Layer, Stage, validate
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.rtl_gen import HardwareDescription, MemoryDescription, describe, summary
from snnfpga.rtl_gen.top import NetworkTop
from snnfpga.testing import random_conv_network, random_network


def elaborated_memories(top: NetworkTop) -> set[tuple[str, int, int, bool]]:
    """``(path, depth, width, initialised)`` of every memory in the elaborated ``top``.

    Amaranth has no documented API that lists an elaborated hierarchy: ``Fragment.get`` returns
    the fragment tree, and we walk its ``subfragments`` (``(fragment, name, src_loc)``) and read
    each memory fragment's ``origins`` (the elaboratables it came from, here the
    ``lib.memory.Memory``); both are plain attributes of ``Fragment`` (no underscore). A memory
    is "initialised" when nothing writes it (a ROM); every written memory must start as zeros.
    """
    found = set()

    def walk(fragment, path):
        if isinstance(fragment, MemoryInstance):
            mem = fragment.origins[0]
            assert isinstance(mem, Memory)
            rom = not mem.write_ports
            if not rom:
                assert not any(mem.init), f"{path} is written by the design but has initial contents"
            found.add((".".join(path), mem.depth, Shape.cast(mem.shape).width, rom))
        for sub, name, _src_loc in fragment.subfragments:
            walk(sub, (*path, name))

    walk(Fragment.get(top, None), ())
    return found


def rtlil_multipliers(top: NetworkTop) -> int:
    return len(re.findall(r"^\s*cell \$mul ", rtlil.convert(top), re.M))


from snnfpga.testing import pow2_decode  # noqa: E402  (shared with test_decode_arrival)


CASES = [(coding, input_coding, lanes) for coding in ("sc-ttfs", "ttfs", "rate")
         for input_coding in ("direct", "spikes") for lanes in (1, 2, 3, 4)]


@pytest.mark.parametrize("coding,input_coding,lanes", CASES)
def test_memories_are_the_elaborated_ones(coding, input_coding, lanes):
    # 12 -> 8 -> 6 -> 3: lanes 3 and 4 leave padded weight groups in some layers
    net = random_network(coding, (12, 8, 6, 3), timesteps=3, input_coding=input_coding, seed=lanes)
    top = NetworkTop(net, lanes=lanes)
    d = top.description()
    assert d == describe(net, lanes=lanes)
    described = {(m.path, m.depth, m.width, m.initialised) for m in d.memories}
    assert len(described) == len(d.memories)
    assert described == elaborated_memories(top)
    assert d.multipliers == rtlil_multipliers(top)       # a second elaboration of the same top
    # the figures of docs/hardware.md
    for layer in d.layers:
        assert layer.groups == -(-layer.n_out // lanes)
        assert layer.weight_words == layer.n_in * layer.groups
        assert layer.membrane_words == (2 * layer.slots + (coding == "rate")) * layer.groups
        assert {m.stage for m in layer.memories} == {str(layer.index)}
    assert all(m.stage == "in" for m in d.encoder_memories)
    assert [m.role for m in d.encoder_memories] == (["frames", "membranes"] if coding == "rate" and
                                                   input_coding == "spikes" else [])
    direct = input_coding == "direct"
    # W·x of a direct first layer: one multiplier per lane; (SC-)TTFS dec scaling: one per lane
    assert d.layers[0].multipliers == (lanes if direct or coding != "rate" else 0)
    assert [layer.multipliers for layer in d.layers[1:]] == [0 if coding == "rate" else lanes] * 2


@pytest.mark.parametrize("input_coding", ["direct", "spikes"])
@pytest.mark.parametrize("coding", ["sc-ttfs", "ttfs"])
def test_power_of_two_decode_has_no_multipliers(coding, input_coding):
    net = pow2_decode(random_network(coding, (10, 7, 3), timesteps=4, input_coding=input_coding, seed=4))
    top = NetworkTop(net, lanes=4)
    d = top.description()
    assert [layer.multipliers for layer in d.layers] == [4 if input_coding == "direct" else 0, 0]
    assert rtlil_multipliers(top) == d.multipliers
    assert {(m.path, m.depth, m.width, m.initialised) for m in d.memories} == elaborated_memories(top)


def test_odd_shapes_and_flatten():
    """T = 1, one-neuron layers, 16 lanes for 7 neurons, IR indices shifted by a flatten layer."""
    base = random_network("sc-ttfs", (9, 1, 7, 2), timesteps=1, input_coding="spikes", seed=3)
    net = dataclasses.replace(base, input=dataclasses.replace(base.input, shape=(1, 3, 3)),
                              layers=[Layer(kind="flatten", in_shape=(1, 3, 3), out_shape=(9,))] + base.layers)
    validate(net)
    top = NetworkTop(net, lanes=16)
    d = top.description()
    assert [layer.index for layer in d.layers] == [1, 2, 3]
    assert d.stages == ((Stage.INPUT, 9), (Stage(1), 1), (Stage(2), 7))
    assert {(m.path, m.depth, m.width, m.initialised) for m in d.memories} == elaborated_memories(top)
    assert rtlil_multipliers(top) == d.multipliers


CONV_SPECS = {
    # conv 3x3 s1 p1 -> sum pool 2x2 -> flatten -> dense
    "conv-pool": ((2, 5, 5), (("conv2d", 3, 3, 1, 1), ("avgpool2d", 2, 2, 0))),
    # pool on the input, conv 1x1 s2 p1, conv 3x3 s1 p1 -> flatten -> dense
    "pool-conv-conv": ((2, 5, 4), (("avgpool2d", 2, 1, 0), ("conv2d", 2, 1, 2, 1), ("conv2d", 4, 3, 1, 1))),
}
CONV_CASES = [(coding, input_coding, spec, lanes) for coding in ("sc-ttfs", "ttfs", "rate")
              for input_coding in ("direct", "spikes") for spec, lanes in (("conv-pool", 1), ("pool-conv-conv", 3))]


@pytest.mark.parametrize("coding,input_coding,spec,lanes", CONV_CASES)
def test_conv_memories_are_the_elaborated_ones(coding, input_coding, spec, lanes):
    in_shape, layers = CONV_SPECS[spec]
    net = random_conv_network(coding, in_shape, spec=layers, input_coding=input_coding, seed=lanes)
    top = NetworkTop(net, lanes=lanes)
    d = top.description()
    assert d == describe(net, lanes=lanes)
    described = {(m.path, m.depth, m.width, m.initialised) for m in d.memories}
    assert len(described) == len(d.memories)
    assert described == elaborated_memories(top)
    assert d.multipliers == rtlil_multipliers(top)
    for layer in d.layers:
        ir = net.layers[layer.index]
        channels = ir.out_shape[0]
        positions = layer.n_out // channels
        assert layer.groups == -(-channels // lanes)
        if layer.kind == "conv2d":
            assert layer.weight_words == ir.in_shape[0] * ir.kernel ** 2 * layer.groups
        else:
            assert layer.weight_words == layer.n_in * layer.groups
        rate_membranes = coding == "rate"
        assert layer.membrane_words == (2 * layer.slots + rate_membranes) * positions * layer.groups
    direct = input_coding == "direct"
    assert d.layers[0].multipliers == (lanes if direct or coding != "rate" else 0)
    assert [layer.multipliers for layer in d.layers[1:]] == [0 if coding == "rate" else lanes] * (len(d.layers) - 1)


@pytest.mark.parametrize("coding", ["ttfs", "rate"])
def test_conv_output_layer_memories(coding):
    net = random_conv_network(coding, (2, 5, 5), spec=(("conv2d", 3, 3, 2, 1),), head="conv", n_classes=4,
                              input_coding="direct", seed=5)
    top = NetworkTop(net, lanes=3)
    d = top.description()
    assert [layer.kind for layer in d.layers] == ["conv2d", "conv2d"]
    assert d.layers[1].weight_words == 3 * 3 * 3 * 2
    assert {(m.path, m.depth, m.width, m.initialised) for m in d.memories} == elaborated_memories(top)
    assert d.multipliers == rtlil_multipliers(top)


def test_conv_power_of_two_decode_has_no_multipliers():
    in_shape, layers = CONV_SPECS["conv-pool"]
    net = random_conv_network("sc-ttfs", in_shape, spec=layers, input_coding="spikes", seed=2)

    def pow2(n):
        return dataclasses.replace(n, dec_enc=tuple(64 >> t for t in range(3)), dec_cal=tuple(4 >> t for t in range(3)))

    net = dataclasses.replace(net, input=dataclasses.replace(net.input, neuron=pow2(net.input.neuron)))
    net = net.with_layer(0, neuron=pow2(net.layers[0].neuron))
    for i, layer in enumerate(net.layers):
        if layer.weighted:
            net = net.with_layer(i, acc_bits=layer_acc_bits(net, i))
    validate(net)
    top = NetworkTop(net, lanes=2)
    assert [layer.multipliers for layer in top.description().layers] == [0, 0]
    assert rtlil_multipliers(top) == 0


def test_example_network():
    """The memories of docs/hardware.md's example (SC-TTFS, spike input, lanes = 4)."""
    net = random_network("sc-ttfs", sizes=(64, 16, 4), seed=0, input_coding="spikes")
    d = describe(net, lanes=4, decode="slots")
    assert isinstance(d, HardwareDescription)
    ab0, ab1 = net.layers[0].acc_bits, net.layers[1].acc_bits
    assert d.memories == (
        MemoryDescription("layer0.weights", "0", "weights", 64 * 4, 4 * 8, True),
        MemoryDescription("layer0.bias", "0", "bias", 4, 4 * ab0, True),
        MemoryDescription("layer0.psums.bank0", "0", "partial_sums", 2 * 4 * 4, 4 * ab0, False),
        MemoryDescription("layer0.psums.bank1", "0", "partial_sums", 2 * 4 * 4, 4 * ab0, False),
        MemoryDescription("layer1.weights", "1", "weights", 16 * 1, 4 * 8, True),
        MemoryDescription("layer1.bias", "1", "bias", 1, 4 * ab1, True),
        MemoryDescription("layer1.psums.bank0", "1", "partial_sums", 2 * 4 * 1, 4 * ab1, False),
        MemoryDescription("layer1.psums.bank1", "1", "partial_sums", 2 * 4 * 1, 4 * ab1, False),
    )
    assert d.memories[0].bits == 256 * 32
    assert d.multipliers == 8


def test_summary_is_the_description():
    net = random_network("rate", (8, 6, 3), timesteps=3, input_coding="spikes", seed=2)
    d = describe(net, lanes=2, name="top2")
    s = summary(net, lanes=2, name="top2")
    assert s == d.summary()
    assert list(s) == ["top", "coding", "timesteps", "lanes", "decode", "input", "n_classes", "out_acc_bits",
                       "cls_bits", "taps", "layers", "memories", "multipliers"]
    assert [t["stage"] for t in s["taps"]] == ["in", 0]
    assert list(s["layers"][0]) == ["index", "kind", "n_in", "n_out", "weight_bits", "acc_bits",
                                    "weight_words", "membrane_words", "lanes", "multipliers", "products", "decode"]
    assert s["layers"][0]["products"] == []  # rate fed by spikes: no multiplier
    assert s["decode"] == "auto" and s["layers"][0]["decode"] == "none"  # rate: no decode LUT
    assert s["memories"][0] == {"path": "enc_in.frame", "stage": "in", "role": "frames", "depth": 16,
                                "width": 8, "bits": 128, "initialised": False}
    assert sum(m["bits"] for m in s["memories"]) == sum(m.bits for m in d.memories)


def test_no_unused_elaboratable_warnings():
    """describe() and a rejected top leave no "created but never used" warning behind; a top
    the caller never elaborates still gets one, pointing at the caller."""
    Fragment.get(Module(), None)  # Amaranth only warns once something has been elaborated
    net = random_network("rate", (6, 4, 2), timesteps=2, input_coding="spikes", seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        describe(net, lanes=2)
        with pytest.raises(BadOption, match=r"^lanes must be a positive integer, not 0$"):
            NetworkTop(net, lanes=0)
        gc.collect()
        assert [w for w in caught if issubclass(w.category, UnusedElaboratable)] == []
        NetworkTop(net, lanes=2)
        gc.collect()
    unused = [w for w in caught if issubclass(w.category, UnusedElaboratable)]
    assert len(unused) == 1 and unused[0].filename == __file__
