"""The power model: breakdown sums, sourced constants, fps_per_w, the paper's energy."""

import math

import pytest

from snnfpga.boards import power
from snnfpga.reference import simulate
from snnfpga.testing import random_frames, random_network

ACT = {"memory_reads": 5000, "memory_writes": 2000, "accumulator_updates": 2500, "events": 300,
       "multiplies": 1024, "uart_bits": 800}
RES = {"LUT": {"used": 1500, "available": 5280}, "FF": {"used": 400, "available": 5280}}


@pytest.mark.parametrize("device", sorted(power.DEVICES))
def test_breakdown_sums_and_fps_per_w(device):
    r = power.estimate(device, RES, ACT, fmax_mhz=12.0, fps=1000.0)
    parts = r["static_w"] + r["memories_w"] + r["logic_w"] + r["io_w"]
    assert math.isclose(r["total_w"], parts, rel_tol=1e-12)
    assert math.isclose(r["logic_w"], r["logic_clock_w"] + r["logic_compute_w"], rel_tol=1e-12)
    assert math.isclose(r["fps_per_w"], 1000.0 / r["total_w"], rel_tol=1e-12)
    assert math.isclose(r["energy_per_frame_j"], r["total_w"] / 1000.0, rel_tol=1e-12)
    assert all(r[k] >= 0 for k in ("static_w", "memories_w", "logic_w", "io_w"))
    assert r["assumptions"] and all(isinstance(a, str) for a in r["assumptions"])


def test_constants_non_negative_and_plausible():
    for dev in power.DEVICES.values():
        for name in ("static_w", "e_clock_base", "e_toggle", "e_dsp", "e_bram_read", "e_bram_write"):
            assert getattr(dev, name) >= 0, (dev.name, name)
    ice = power.DEVICES["ice40up5k"]
    assert math.isclose(ice.static_w, 90e-6)                       # 75 uA x 1.2 V
    assert math.isclose(power.E_CLOCK_BASE_ICE40, 52.1e-12, rel_tol=0.01)
    assert math.isclose(power.E_TOGGLE_ICE40, 14.4e-15, rel_tol=0.01)
    assert math.isclose(power.E_DSP_ICE40, 24.1e-12, rel_tol=0.01)
    assert power.DEVICES["ecp5-85f"].static_w > power.DEVICES["ice40up5k"].static_w
    assert any("85F" in a for a in power.DEVICES["ecp5-85f"].assumptions)


def test_more_activity_more_power_and_missing_counts_reported():
    lo = power.estimate("ice40up5k", RES, ACT, 12.0, 100.0)
    hi = power.estimate("ice40up5k", RES, {k: 2 * v for k, v in ACT.items()}, 12.0, 100.0)
    assert hi["memories_w"] > lo["memories_w"] and hi["logic_w"] > lo["logic_w"]
    r = power.estimate("icebreaker", None, {"events": 10}, 12.0, 100.0)
    assert any("memory_reads" in a for a in r["assumptions"])
    with pytest.raises(ValueError, match="unknown power device 'nope'"):
        power.estimate("nope", RES, ACT, 12.0, 1.0)


def test_paper_energy():
    e = power.paper_energy(100, 4)
    assert math.isclose(e["truenorth"], 100 * 0.4 + 4 * 0.6)
    assert math.isclose(e["spinnaker"], 100 * 0.64 + 4 * 0.36)


@pytest.mark.parametrize("coding,input_coding", [("sc-ttfs", "direct"), ("rate", "spikes")])
def test_activity_from_reference(coding, input_coding):
    net = random_network(coding=coding, input_coding=input_coding, seed=3)
    res = simulate(net, random_frames(net, 8, seed=1))
    a = power.activity_from_reference(net, res, decode="slots")  # arrival: tests/test_power.py below
    assert set(power.ACTIVITY_KEYS) <= set(a)
    assert a["multiplies"] == (16 * 12 if input_coding == "direct" else 0)
    assert a["events"] == pytest.approx(float(res.spikes_per_frame().mean()))
    r = power.estimate("ecp5-85f", RES, a, 25.0, 1000.0)
    assert r["total_w"] > r["static_w"]


def test_device_from_board_registry():
    """A board resolves to its power model through the registry's power_device (one table)."""
    from snnfpga.boards.registry import BOARDS

    for board in BOARDS.values():
        dev = power.DEVICES[board.power_device]
        assert power.device_for(board) is dev
        assert power.device_for(board.name) is dev
        assert power.device_for(board.device) is dev
    assert power.device_for("lfe5u-85f") is power.DEVICES["ecp5-85f"]
    assert power.device_for(power.DEVICES["xc7a35t"]) is power.DEVICES["xc7a35t"]
    r = power.estimate(BOARDS["icebreaker"], RES, ACT, 12.0, 100.0)
    assert r == power.estimate("ice40up5k", RES, ACT, 12.0, 100.0)


def test_paper_energy_and_counts_have_one_source():
    from snnfpga.boards.protocol import Protocol
    from snnfpga.metrics import activity, energy

    assert power.PAPER_CONSTANTS is energy.PLATFORMS
    assert power.paper_energy(7, 3) == {**energy.paper_energy(7, 3), "spikes_per_frame": 7.0, "timesteps": 3}
    with pytest.raises(ValueError, match="non-negative"):
        energy.paper_energy(-1, 3)
    for coding, input_coding in (("sc-ttfs", "direct"), ("rate", "spikes"), ("rate", "direct")):
        net = random_network(coding=coding, input_coding=input_coding, sizes=(16, 12, 4), seed=3)
        frames = random_frames(net, 8, seed=1)
        frames[:, ::2] = 0  # the hardware skips zero pixels; so does the count
        res = simulate(net, frames)
        a = power.activity_from_reference(net, res, frames=frames, decode="slots")
        per_layer = activity.synaptic_events_per_layer(net, frames, res).mean(axis=0)
        assert a["synaptic_events"] == pytest.approx(float(per_layer.sum()))
        assert a["multiplies"] == pytest.approx(float(per_layer[0]) if input_coding == "direct" else 0.0)
        proto = Protocol.for_network(net)
        assert a["uart_bits"] == 10 * (proto.request_bytes + proto.response_bytes)


def test_arrival_decode_multiplies_per_synapse():
    """Scaling on arrival multiplies each W·dec (unless the LUT is powers of two); slots do not."""
    from snnfpga.metrics.activity import synaptic_events_per_layer

    net = random_network("sc-ttfs", sizes=(16, 12, 4), input_coding="spikes", seed=3)
    frames = random_frames(net, 20)
    ref = simulate(net, frames)
    slots = power.activity_from_reference(net, ref, frames=frames, decode="slots")
    arrival = power.activity_from_reference(net, ref, frames=frames, decode="arrival")
    assert slots["multiplies"] == 0
    assert arrival["multiplies"] == pytest.approx(synaptic_events_per_layer(net, frames, ref).mean(axis=0).sum())
    assert arrival["synaptic_events"] == slots["synaptic_events"] > 0


def test_activity_of_a_residual_network_counts_each_core_once():
    """Branches decode into their add's core: one encode pass per core, every branch's events."""
    from snnfpga.metrics.activity import synaptic_events_per_layer
    from snnfpga.testing import random_residual_network

    net = random_residual_network("sc-ttfs", blocks=(("conv", 2, 1, "identity"), ("conv", 3, 2, "conv")), seed=4)
    frames = random_frames(net, 10)
    ref = simulate(net, frames)
    layers, note = power._hardware_layers(net, 1)
    assert note is None
    weighted = [i for i, layer in enumerate(net.layers) if layer.weighted]
    assert len(layers) == len(weighted)
    firing = [i for i in range(len(net.layers)) if net.spiking(i)] + [weighted[-1]]
    assert sum(hw["encode_neurons"] for hw in layers) == sum(net.layers[i].n_out for i in firing)
    a = power.activity_from_reference(net, ref, frames=frames)
    assert a["synaptic_events"] == pytest.approx(synaptic_events_per_layer(net, frames, ref).mean(axis=0).sum())


def test_multiplies_in_logic_are_named_so():
    """A build with no DSP block multiplies in logic cells: the term and an assumption say so."""
    activity = {"memory_reads": 100, "memory_writes": 50, "accumulator_updates": 50, "events": 10,
                "multiplies": 50, "uart_bits": 0}
    in_dsp = power.estimate("ice40up5k", {"LUT": 1000, "DSP": 4}, activity, 12.0, 1000.0)
    in_logic = power.estimate("ice40up5k", {"LUT": 1000, "DSP": 0}, activity, 12.0, 1000.0)
    assert in_dsp["total_w"] == in_logic["total_w"]
    assert "E_dsp (multiplies)" in in_dsp["power_terms_w"]
    assert any("in logic cells" in k for k in in_logic["power_terms_w"])
    assert any("in logic cells" in a for a in in_logic["assumptions"])
    assert not any("in logic cells" in a for a in in_dsp["assumptions"])
