"""Random networks in RTL on Verilator, bit-exact with the integer reference under stress.

Hypothesis draws batches of small random networks: every coding (rate, ttfs, sc-ttfs), dense,
conv (a max pool now and then in TTFS) and residual graphs, direct and spike input, 1..4 lanes,
T from 1 to the largest T tested here for the coding (drawn mostly small, the largest often).
One batch is one Verilator build (``sim.batch``: the networks side by side in one top, each
with its own reset), so a build serves many networks. Each network's frames go in the
testbench's three phases; in the last one with short and long input gaps, random result
back-pressure, long result stalls (the result stream must hold ``valid`` and its payload
steady while ``ready`` is low) and a reset at a random cycle of a thrown-away frame, whatever
stage it has reached (the frames after it must be exact). Compared per frame: every spike event
of every stage, the output membranes, the class, the counters, the stream protocol.

Shrinking is off: a failing batch is reported with each network's kind, coding, T, lanes and
seed, which ``sim.batch.make_case`` rebuilds exactly. The soak (``benchmarks/soak_rtl.py``)
runs hundreds of such networks.

The largest T: every coding is tested up to the largest T the IR allows for it
(``snnfpga.ir.network.max_timesteps``: 4096 for rate, 256 for (SC-)TTFS, whose encode compares
with T thresholds per lane in parallel), in the explicit batch below and one random batch in ten.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from snnfpga.sim import batch
from snnfpga.ir.bounds import layer_acc_bits
from snnfpga.testing import random_frames, random_network

#: networks per Verilator build
BATCH = 7


def top_t(coding: str) -> int:
    """The largest T tested here for ``coding``: the IR's."""
    return batch.max_timesteps(coding)


@st.composite
def case_params(draw):
    kind = draw(st.sampled_from(batch.KINDS))
    coding = draw(st.sampled_from(batch.CODINGS))
    top = top_t(coding)
    band = draw(st.integers(0, 9))  # mostly small T (fast), the largest one time in ten
    T = (draw(st.integers(1, min(4, top))) if band < 6 else draw(st.integers(1, min(32, top))) if band < 8
         else draw(st.integers(1, top)) if band < 9 else top)
    return kind, coding, T, draw(st.integers(0, 2**20))


def _check(params: list[tuple]) -> list[batch.Outcome]:
    cases = [batch.make_case(kind, coding, T, seed=seed, frames=4 if T > 64 else 5)
             for kind, coding, T, seed in params]
    outcomes = batch.check(cases).outcomes
    bad = [p for o in outcomes for p in o.problems]
    assert not bad, "\n".join(bad)
    # every network was stressed as asked: reset once (hitting its frame somewhere), stalled
    for o in outcomes:
        st_ = o.obs["stress"]
        assert len(st_["resets"]) == len(o.case.resets) == 1, o.case.label
        assert o.report.images == len(o.case.frames)
    assert sum(o.obs["stress"]["stalls"]["count"] for o in outcomes) > 0
    assert max(o.obs["stress"]["stalls"]["longest"] for o in outcomes) >= 32
    return outcomes


# the largest T of every coding, and T = 1, in one batch with every kind
@example(params=[("dense", "rate", top_t("rate"), 1), ("conv", "ttfs", top_t("ttfs"), 2),
                 ("residual", "sc-ttfs", top_t("sc-ttfs"), 3), ("dense", "sc-ttfs", 1, 4),
                 ("residual", "rate", 1, 5), ("conv", "sc-ttfs", 2, 6), ("dense", "ttfs", 1, 7)])
@settings(max_examples=1, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(params=st.lists(case_params(), min_size=BATCH, max_size=BATCH))
def test_random_networks_bit_exact_in_rtl(params):
    _check(params)


def test_harness_catches_faults():
    """The checks can fail: a result payload that changes while stalled, and hardware built from
    another network than the reference's (one weight flipped), are both reported, each alone."""
    good = batch.make_case("dense", "sc-ttfs", 3, seed=11, frames=5, lanes=2)
    unsteady = batch.make_case("dense", "rate", 2, seed=12, frames=5, lanes=1)
    unsteady.fault = "unsteady"
    net = random_network("sc-ttfs", (6, 5, 3), timesteps=3, seed=13)
    w = net.layers[0].weight
    bad = net.with_layer(0, weight=np.where(w == -128, 0, -w))
    bad = bad.with_layer(0, acc_bits=max(net.layers[0].acc_bits, layer_acc_bits(bad, 0)))
    wrong = batch.Case(net=net, frames=random_frames(net, 4, seed=1), rtl_net=bad, label="corrupted weights")
    outcomes = batch.check([good, unsteady, wrong]).outcomes
    assert outcomes[0].ok, outcomes[0].problems
    assert any("while ready was low" in p for p in outcomes[1].problems), outcomes[1].problems
    assert any("differ; first: image" in p for p in outcomes[2].problems), outcomes[2].problems


@pytest.mark.parametrize("coding", batch.CODINGS)
def test_max_timesteps_is_the_ir_limit(coding):
    from snnfpga.ir.network import MAX_TIMESTEPS, MAX_TTFS_TIMESTEPS

    assert batch.max_timesteps(coding) == (MAX_TIMESTEPS if coding == "rate" else MAX_TTFS_TIMESTEPS)
    assert top_t(coding) == batch.max_timesteps(coding)


def test_every_drawn_case_is_a_valid_network():
    """Every kind × coding × input coding over many seeds builds a valid network (the soak once
    drew a residual rate case with a stem whose identity shortcut had the wrong channels)."""
    drawn = 0
    for seed in range(40):
        for kind in batch.KINDS:
            for coding in batch.CODINGS:
                for input_coding in ("direct", "spikes"):
                    c = batch.make_case(kind, coding, 1 + seed % 5, seed=seed, frames=3, input_coding=input_coding)
                    assert len(c.frames) == 3, c.label
                    drawn += 1
    assert drawn == 40 * len(batch.KINDS) * len(batch.CODINGS) * 2
