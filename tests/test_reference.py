"""The vectorised integer reference against a deliberately simple scalar reading of DESIGN §3."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnfpga import reference
from snnfpga.ir import RateNeuron, signed_bits_for
from snnfpga.testing import random_frames, random_network


# --------------------------------------------------------------------------- scalar model

def scalar_encode(v, neuron):
    """One neuron: returns (t_e, t_c) with -1 for a missing spike."""
    T = len(neuron.enc)
    t_e = -1
    for t in range(T):
        if v >= neuron.enc[t]:
            t_e = t
            break
    t_c = -1
    if t_e >= 0 and neuron.cal is not None:
        r = v - neuron.enc[t_e]
        for t in range(t_e, T):
            if r >= neuron.cal[t]:
                t_c = t
                break
    return t_e, t_c


def scalar_value(neuron, t_e, t_c):
    x = 0
    if t_e >= 0:
        x += neuron.dec_enc[t_e]
    if t_c >= 0:
        x += neuron.dec_cal[t_c]
    return x


def scalar_ttfs(net, frame):
    x = [int(p) for p in frame.reshape(-1)]
    events = {}
    if net.input.input_coding == "spikes":
        ev, xs = [], []
        for i, p in enumerate(x):
            t_e, t_c = scalar_encode(p, net.input.neuron)
            ev += [(i, t_e, 0)] if t_e >= 0 else []
            ev += [(i, t_c, 1)] if t_c >= 0 else []
            xs.append(scalar_value(net.input.neuron, t_e, t_c))
        events[reference.INPUT], x = ev, xs
    for li, layer in enumerate(net.layers):
        v = []
        for j in range(layer.n_out):
            acc = int(layer.bias[j])
            for i in range(layer.n_in):
                acc += int(layer.weight[j, i]) * x[i]
            v.append(acc)
        if layer.neuron is None:
            return v, events
        ev, xs = [], []
        for j, vj in enumerate(v):
            t_e, t_c = scalar_encode(vj, layer.neuron)
            ev += [(j, t_e, 0)] if t_e >= 0 else []
            ev += [(j, t_c, 1)] if t_c >= 0 else []
            xs.append(scalar_value(layer.neuron, t_e, t_c))
        events[li], x = ev, xs
    raise AssertionError("no output layer")


def scalar_rate(net, frame):
    pix = [int(p) for p in frame.reshape(-1)]
    T = net.timesteps
    vs = [[(l.neuron.v0 if isinstance(l.neuron, RateNeuron) else 0)] * l.n_out for l in net.layers]
    v_in = [net.input.neuron.v0] * len(pix) if net.input.input_coding == "spikes" else None
    events = {k: [] for k in ([reference.INPUT] if v_in else []) + list(range(len(net.layers) - 1))}
    for t in range(T):
        if v_in is not None:
            s = []
            for i, p in enumerate(pix):
                v_in[i] += p
                fire = v_in[i] >= net.input.neuron.theta
                if fire:
                    v_in[i] -= net.input.neuron.theta
                    events[reference.INPUT].append((i, t, 0))
                s.append(int(fire))
            x = s
        else:
            x = pix
        for li, layer in enumerate(net.layers):
            s = []
            for j in range(layer.n_out):
                vs[li][j] += int(layer.bias[j]) + sum(int(layer.weight[j, i]) * x[i] for i in range(layer.n_in))
                if layer.neuron is not None:
                    fire = vs[li][j] >= layer.neuron.theta
                    if fire:
                        vs[li][j] -= layer.neuron.theta
                        events[li].append((j, t, 0))
                    s.append(int(fire))
            x = s
    return vs[-1], events


def check_against_scalar(net, frames):
    res = reference.simulate(net, frames)
    for n, frame in enumerate(frames):
        out, events = (scalar_rate if net.coding == "rate" else scalar_ttfs)(net, frame)
        assert list(res.output[n]) == out
        assert res.classes[n] == int(np.argmax(out))  # argmax: lowest index on ties
        assert set(res.spikes) == set(events)
        for stage, ev in events.items():
            assert res.spikes[stage].events(n) == sorted(ev, key=lambda e: (e[1], e[2], e[0]))
        # the proven width holds on this frame
        for layer, v in zip(net.layers[-1:], [out]):
            assert signed_bits_for(min(v), max(v)) <= layer.acc_bits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coding=st.sampled_from(["rate", "ttfs", "sc-ttfs"]),
       input_coding=st.sampled_from(["direct", "spikes"]),
       sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       T=st.integers(1, 6), weight_bits=st.integers(2, 12), input_bits=st.integers(1, 8),
       extreme=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_vectorised_reference_equals_scalar(coding, input_coding, sizes, T, weight_bits, input_bits, extreme, seed):
    net = random_network(coding, tuple(sizes), T, weight_bits, input_bits, input_coding, extreme, seed)
    frames = random_frames(net, 3, seed)
    check_against_scalar(net, frames)


def test_extreme_frames_at_range_ends():
    for coding in ("rate", "ttfs", "sc-ttfs"):
        net = random_network(coding, (12, 7, 3), 5, 16, 8, "direct", extreme=True, seed=3)
        frames = np.stack([np.zeros(12, np.int64), np.full(12, 255, np.int64), np.tile([0, 255], 6)])
        check_against_scalar(net, frames)


def test_two_spikes_in_one_step_are_both_reported():
    """t_c may equal t_e: an event of each kind at the same time."""
    from snnfpga.ir import TTFSNeuron

    neuron = TTFSNeuron(enc=(10, 5), dec_enc=(4, 2), cal=(3, 1), dec_cal=(2, 1))
    t_e, t_c = reference.encode_ttfs(np.array([[14, 12, 4]]), neuron)
    assert t_e.tolist() == [[0, 0, -1]]
    assert t_c.tolist() == [[0, 1, -1]]
    assert reference.spike_values(neuron, t_e, t_c).tolist() == [[6, 5, 0]]


def test_rejects_frames_out_of_range():
    import pytest

    net = random_network("sc-ttfs", (4, 3, 2), 4, input_bits=4)
    with pytest.raises(ValueError, match="0..15"):
        reference.simulate(net, np.full((1, 4), 16))
