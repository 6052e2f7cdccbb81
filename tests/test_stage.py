"""Stage ids: one type for the reference, the float SNN, the RTL taps and the comparator."""

import json

import pytest

from snnfpga import reference
from snnfpga.ir import Stage
from snnfpga.testing import random_frames, random_network


def test_stage_names_and_parsing():
    assert Stage.INPUT == -1 and Stage.INPUT.name == "in" and Stage.INPUT.is_input
    assert Stage(3).name == "3" and not Stage(3).is_input
    assert Stage("in") == Stage.INPUT and Stage("2") == 2 and type(Stage("2")) is Stage
    assert {Stage(2): "x"}[2] == "x"  # an int as a dict key, sorts like one
    assert sorted([Stage(1), Stage.INPUT, Stage(0)]) == [-1, 0, 1]
    assert repr(Stage("in")) == "Stage('in')"


@pytest.mark.parametrize("bad", ["x", "-2", -2, 1.5, True])
def test_bad_stage_is_refused(bad):
    with pytest.raises(ValueError, match="stage must be"):
        Stage(bad)


@pytest.mark.parametrize("coding", ["sc-ttfs", "rate"])
def test_reference_keys_are_stages(coding):
    net = random_network(coding, sizes=(8, 6, 3), timesteps=3, input_coding="spikes", seed=1)
    ref = reference.simulate(net, random_frames(net, 2, seed=0))
    assert all(type(k) is Stage for k in ref.spikes)
    assert [k.name for k in sorted(ref.spikes)] == ["in", "0"]
    assert json.dumps({k.name: 1 for k in ref.spikes}) == '{"in": 1, "0": 1}'
