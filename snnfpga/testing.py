"""Random valid integer networks, for tests of the reference and of the hardware.

They need no training: weights, biases and monotone LUTs are drawn at random (optionally at
their extremes), and ``acc_bits`` comes from the worst-case bound like in a converted model.
"""

from __future__ import annotations

import numpy as np

from .ir.bounds import layer_acc_bits
from .ir import InputSpec, Layer, Network, RateNeuron, TTFSNeuron

__all__ = ["random_network", "random_frames"]


def _monotone_lut(rng: np.random.Generator, T: int, lo: int, hi: int) -> tuple[int, ...]:
    return tuple(int(x) for x in np.sort(rng.integers(lo, hi + 1, size=T))[::-1])


def random_neuron(rng: np.random.Generator, coding: str, T: int, scale: int) -> RateNeuron | TTFSNeuron:
    """A neuron whose thresholds are of the order of ``scale`` membrane units."""
    scale = max(int(scale), 2)
    if coding == "rate":
        theta = int(rng.integers(max(1, scale // 4), scale + 1))
        return RateNeuron(theta=theta, v0=int(rng.integers(0, theta)))
    enc = _monotone_lut(rng, T, max(1, scale // 8), scale)
    dec_enc = _monotone_lut(rng, T, 0, 255)
    if coding == "ttfs":
        return TTFSNeuron(enc=enc, dec_enc=dec_enc)
    cal = _monotone_lut(rng, T, 1, max(1, scale // 4))
    dec_cal = _monotone_lut(rng, T, 0, 63)
    return TTFSNeuron(enc=enc, dec_enc=dec_enc, cal=cal, dec_cal=dec_cal)


def random_network(coding: str = "sc-ttfs", sizes: tuple[int, ...] = (16, 12, 4), timesteps: int = 4,
                   weight_bits: int = 8, input_bits: int = 8, input_coding: str = "direct",
                   extreme: bool = False, seed: int = 0, name: str = "random") -> Network:
    """A dense network ``sizes[0] → … → sizes[-1]`` with random integer parameters.

    With ``extreme`` the weights sit at the ends of their range, to exercise the width bound.
    """
    rng = np.random.default_rng(seed)
    wmax = (1 << (weight_bits - 1)) - 1
    in_max = (1 << input_bits) - 1
    inp = InputSpec(shape=(sizes[0],), bits=input_bits, input_coding=input_coding, scale=1.0 / in_max)
    if input_coding == "spikes":
        inp = InputSpec(shape=(sizes[0],), bits=input_bits, input_coding="spikes", scale=1.0 / in_max,
                        neuron=random_neuron(rng, coding, timesteps, in_max))
    layers: list[Layer] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if extreme:
            w = rng.choice([-wmax - 1, wmax], size=(n_out, n_in))
        else:
            w = rng.integers(-wmax - 1, wmax + 1, size=(n_out, n_in))
            w[rng.random(w.shape) < 0.3] = 0
        # typical |membrane| ~ sqrt(n_in) * wmax * typical input
        typical_in = in_max if k == 0 and input_coding == "direct" else (1 if coding == "rate" else 128)
        typical = int(np.sqrt(n_in) * wmax * typical_in / 2) + 2
        b = rng.integers(-typical // 4, typical // 4 + 1, size=n_out)
        last = k == len(sizes) - 2
        neuron = None if last else random_neuron(rng, coding, timesteps, typical)
        layers.append(Layer(kind="dense", in_shape=(n_in,), out_shape=(n_out,), weight=w.astype(np.int64),
                            bias=b.astype(np.int64), weight_bits=weight_bits, neuron=neuron,
                            scale=1.0, out_scale=1.0))
    net = Network(name=name, coding=coding, timesteps=timesteps, input=inp, layers=layers,
                  provenance={"source": "snnfpga.testing.random_network", "seed": seed})
    for i, layer in enumerate(net.layers):
        layer.acc_bits = layer_acc_bits(net, i)
    return net


def random_frames(net: Network, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = net.input.value_range
    return rng.integers(lo, hi + 1, size=(n,) + tuple(net.input.shape)).astype(np.int64)
