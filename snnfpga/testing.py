"""Random valid integer networks, for tests of the reference and of the hardware.

They need no training: weights, biases and monotone LUTs are drawn at random (optionally at
their extremes), and ``acc_bits`` comes from the worst-case bound like in a converted model.
"""

from __future__ import annotations

import numpy as np

from .ir.bounds import layer_acc_bits
from .ir import INPUT, InputSpec, Layer, Network, RateNeuron, TTFSNeuron

__all__ = ["random_network", "random_conv_network", "random_maxpool_network", "random_residual_network",
           "random_frames"]


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


def random_conv_network(coding: str = "sc-ttfs", in_shape: tuple[int, int, int] = (1, 6, 6),
                        spec: tuple[tuple, ...] | None = None, n_classes: int = 3, timesteps: int = 3,
                        weight_bits: int = 6, input_bits: int = 4, input_coding: str = "direct",
                        head: str = "dense", seed: int = 0, name: str = "random_conv") -> Network:
    """A small CNN with random integer parameters: the layers of ``spec``, then flatten and a
    dense output layer of ``n_classes``.

    ``spec`` items are ``("conv2d", out_channels, kernel, stride, padding)``,
    ``("avgpool2d", kernel, stride, padding)`` (integer sum pooling) or ``("maxpool2d", kernel,
    stride, padding)``. Without ``spec`` one or two
    conv2d layers are drawn (kernel 1..3, stride 1..2, padding 0..1, channels 1..4), the last
    one followed by an avgpool2d half of the time, as far as the shapes allow. With
    ``head="conv"`` the output layer is instead a conv2d whose kernel covers the whole last
    feature map (``n_classes`` channels of one position), without flatten.
    """
    rng = np.random.default_rng(seed)
    wmax = (1 << (weight_bits - 1)) - 1
    in_max = (1 << input_bits) - 1
    if spec is None:
        items: list[tuple] = []
        c, h, w = in_shape
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(1, min(3, h + 1, w + 1) + 1))
            st, pd = int(rng.integers(1, 3)), int(rng.integers(0, 2))
            ho, wo = (h + 2 * pd - k) // st + 1, (w + 2 * pd - k) // st + 1
            if ho <= 0 or wo <= 0:
                continue
            items.append(("conv2d", int(rng.integers(1, 5)), k, st, pd))
            h, w = ho, wo
        if rng.random() < 0.5 and min(h, w) >= 2:
            k = int(rng.integers(1, 3))
            items.append(("avgpool2d", k, int(rng.integers(1, k + 1)), 0))
        spec = tuple(items) or (("conv2d", 2, 1, 1, 0),)
    neuron_in = random_neuron(rng, coding, timesteps, in_max) if input_coding == "spikes" else None
    inp = InputSpec(shape=tuple(in_shape), bits=input_bits, input_coding=input_coding, scale=1.0 / in_max,
                    neuron=neuron_in)
    typical_in = in_max if input_coding == "direct" else (1 if coding == "rate" else 128)
    layers: list[Layer] = []
    shape = tuple(in_shape)

    def weights(shape_w, fan_in):
        wt = rng.integers(-wmax - 1, wmax + 1, size=shape_w)
        wt[rng.random(wt.shape) < 0.3] = 0
        typical = int(np.sqrt(fan_in) * wmax * typical_in / 2) + 2
        return wt.astype(np.int64), rng.integers(-typical // 4, typical // 4 + 1, size=shape_w[0]).astype(np.int64), typical

    for item in spec:
        c, h, w = shape
        if item[0] == "conv2d":
            _, co, k, st, pd = item
            out = (co, (h + 2 * pd - k) // st + 1, (w + 2 * pd - k) // st + 1)
            wt, b, typical = weights((co, c, k, k), c * k * k)
            layers.append(Layer(kind="conv2d", in_shape=shape, out_shape=out, weight=wt, bias=b,
                                weight_bits=weight_bits, neuron=random_neuron(rng, coding, timesteps, max(2, typical // 3)),
                                kernel=k, stride=st, padding=pd))
            typical_in = 1 if coding == "rate" else 128
        elif item[0] in ("avgpool2d", "maxpool2d"):
            kind, k, st, pd = item
            out = (c, (h + 2 * pd - k) // st + 1, (w + 2 * pd - k) // st + 1)
            layers.append(Layer(kind=kind, in_shape=shape, out_shape=out, kernel=k, stride=st, padding=pd))
            typical_in *= k * k if kind == "avgpool2d" else 1
        else:
            raise ValueError(f"unknown spec item {item!r}")
        shape = out
    n = int(np.prod(shape))
    if head == "conv":
        c, h, w = shape
        if h != w:
            raise ValueError(f"a conv head needs a square last feature map, not {list(shape)}")
        wt, b, _ = weights((n_classes, c, h, h), n)
        layers.append(Layer(kind="conv2d", in_shape=shape, out_shape=(n_classes, 1, 1), weight=wt, bias=b,
                            weight_bits=weight_bits, kernel=h))
    else:
        layers.append(Layer(kind="flatten", in_shape=shape, out_shape=(n,)))
        wt, b, _ = weights((n_classes, n), n)
        layers.append(Layer(kind="dense", in_shape=(n,), out_shape=(n_classes,), weight=wt, bias=b,
                            weight_bits=weight_bits))
    net = Network(name=name, coding=coding, timesteps=timesteps, input=inp, layers=layers,
                  provenance={"source": "snnfpga.testing.random_conv_network", "seed": seed})
    for i, layer in enumerate(net.layers):
        if layer.weighted:
            layer.acc_bits = layer_acc_bits(net, i)
    return net


def random_maxpool_network(in_shape: tuple[int, int, int], spec: tuple[tuple, ...], *, coding: str = "ttfs",
                           n_classes: int = 3, timesteps: int = 4, weight_bits: int = 6, input_bits: int = 4,
                           input_coding: str = "spikes", head: str = "dense", seed: int = 0) -> Network:
    """Like :func:`snnfpga.testing.random_conv_network`, with ``("maxpool2d", k, s, p)`` items
    besides ``("conv2d", out_ch, k, s, p)`` and ``("avgpool2d", k, s, p)``; then flatten and a
    dense output layer (``head="dense"``) or a conv2d covering the last map (``head="conv"``).

    Max pools are exact in TTFS only and must pool spikes or pixels (docs/ir.md): the result
    is not validated here, so tests can build the networks the IR refuses too."""
    net = random_conv_network(coding, in_shape, spec, n_classes, timesteps, weight_bits, input_bits, input_coding,
                              head, seed, name="random_maxpool")
    net.provenance["source"] = "snnfpga.testing.random_maxpool_network"
    return net


def random_residual_network(coding: str = "sc-ttfs", in_shape: tuple[int, ...] = (2, 6, 6),
                            blocks: tuple[tuple, ...] = (("conv", 2, 1, "identity"),), *, stem: int = 0,
                            head: str = "dense", n_classes: int = 3, timesteps: int = 3, weight_bits: int = 6,
                            input_bits: int = 4, input_coding: str = "spikes", seed: int = 0) -> Network:
    """A small residual graph (docs/ir.md: ``add`` joins two branches) with random integer
    parameters, for tests of graph hardware.

    ``stem`` > 0 puts a spiking 3×3 conv of that many channels first; otherwise the first block
    reads the input itself (the input, or the input encoder's events, read by two layers).
    ``blocks`` items: ``("conv", out_ch, stride, shortcut)``: x → conv 3×3 (stride, padding 1,
    fires) → conv 3×3 (branch a); x → shortcut (branch b): ``"identity"`` (a 1×1 conv with a
    random positive diagonal, the converter's form of an identity shortcut; needs
    ``out_ch`` = channels and stride 1) or ``"conv"`` (a random 1×1 conv of that stride);
    the add fires. ``("dense", n, _)``: the same with dense layers (a flatten first when
    needed, read by both). ``head``: ``"dense"`` (flatten → dense), ``"conv"`` (a spiking 3×3
    conv, then flatten → dense) or ``"pool"`` (2×2 sum pool, flatten, dense).
    Not validated here, so tests can build refused graphs too.
    """
    rng = np.random.default_rng(seed)
    wmax = (1 << (weight_bits - 1)) - 1
    in_max = (1 << input_bits) - 1
    inp = InputSpec(shape=tuple(in_shape), bits=input_bits, input_coding=input_coding, scale=1.0 / in_max,
                    neuron=random_neuron(rng, coding, timesteps, in_max) if input_coding == "spikes" else None)
    spike_in = 1 if coding == "rate" else 128
    layers: list[Layer] = []

    def typical_of(fan_in: int, typical_in: int) -> int:
        return int(np.sqrt(fan_in) * wmax * typical_in / 2) + 2

    def weighted(kind, src, in_shape_, out_shape, wshape, typical_in, *, k=0, s=1, p=0, fire=True, w=None):
        fan_in = int(np.prod(wshape[1:]))
        if w is None:
            w = rng.integers(-wmax - 1, wmax + 1, size=wshape)
            w[rng.random(w.shape) < 0.3] = 0
        typical = typical_of(fan_in, typical_in)
        b = rng.integers(-typical // 4, typical // 4 + 1, size=wshape[0])
        layers.append(Layer(kind=kind, in_shape=tuple(in_shape_), out_shape=tuple(out_shape), weight=w.astype(np.int64),
                            bias=b.astype(np.int64), weight_bits=weight_bits, kernel=k, stride=s, padding=p,
                            neuron=random_neuron(rng, coding, timesteps, max(2, typical // 3)) if fire else None,
                            inputs=(src,)))
        return len(layers) - 1, typical

    def conv_out(shape, k, s, p, co):
        return (co, (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)

    src, shape = INPUT, tuple(in_shape)
    typical_in = in_max if input_coding == "direct" else spike_in
    if stem:
        out = conv_out(shape, 3, 1, 1, stem)
        src, _ = weighted("conv2d", src, shape, out, (stem, shape[0], 3, 3), typical_in, k=3, p=1)
        shape, typical_in = out, spike_in
    for kind, n, *rest in blocks:
        stride, shortcut = tuple(rest[:2]) if kind == "conv" else (1, None)  # a dense block: ("dense", n[, _])
        if kind == "conv":
            c = shape[0]
            mid = conv_out(shape, 3, stride, 1, n)
            a1, _ = weighted("conv2d", src, shape, mid, (n, c, 3, 3), typical_in, k=3, s=stride, p=1)
            a2, ta = weighted("conv2d", a1, mid, mid, (n, n, 3, 3), spike_in, k=3, p=1, fire=False)
            out_b = conv_out(shape, 1, stride, 0, n)
            w = None
            if shortcut == "identity":
                if n != c or stride != 1:
                    raise ValueError(f"an identity shortcut needs out_ch == {c} and stride 1, not {n}, {stride}")
                w = np.zeros((n, c, 1, 1), dtype=np.int64)
                w[np.arange(n), np.arange(n), 0, 0] = rng.integers(1, wmax + 1, size=n)
            b_, tb = weighted("conv2d", src, shape, out_b, (n, c, 1, 1), typical_in, k=1, s=stride, w=w, fire=False)
            out = mid
        elif kind == "dense":
            if len(shape) > 1:
                layers.append(Layer(kind="flatten", in_shape=shape, out_shape=(int(np.prod(shape)),), inputs=(src,)))
                src, shape = len(layers) - 1, (int(np.prod(shape)),)
            a1, _ = weighted("dense", src, shape, (n,), (n, shape[0]), typical_in)
            a2, ta = weighted("dense", a1, (n,), (n,), (n, n), spike_in, fire=False)
            b_, tb = weighted("dense", src, shape, (n,), (n, shape[0]), typical_in, fire=False)
            out = (n,)
        else:
            raise ValueError(f"unknown block {kind!r}")
        layers.append(Layer(kind="add", in_shape=out, out_shape=out, inputs=(a2, b_),
                            neuron=random_neuron(rng, coding, timesteps, max(2, (ta + tb) // 3))))
        src, shape, typical_in = len(layers) - 1, out, spike_in
    if head == "conv" and len(shape) == 3:
        out = conv_out(shape, 3, 1, 1, 2)
        src, _ = weighted("conv2d", src, shape, out, (2, shape[0], 3, 3), typical_in, k=3, p=1)
        shape = out
    elif head == "pool" and len(shape) == 3:
        out = (shape[0], shape[1] // 2, shape[2] // 2)
        layers.append(Layer(kind="avgpool2d", in_shape=shape, out_shape=out, kernel=2, stride=2, inputs=(src,)))
        src, shape, typical_in = len(layers) - 1, out, typical_in * 4
    if len(shape) > 1:
        layers.append(Layer(kind="flatten", in_shape=shape, out_shape=(int(np.prod(shape)),), inputs=(src,)))
        src, shape = len(layers) - 1, (int(np.prod(shape)),)
    weighted("dense", src, shape, (n_classes,), (n_classes, shape[0]), typical_in, fire=False)
    net = Network(name="random_residual", coding=coding, timesteps=timesteps, input=inp, layers=layers,
                  provenance={"source": "snnfpga.testing.random_residual_network", "seed": seed})
    for i, layer in enumerate(net.layers):
        if layer.weighted or layer.kind == "add":
            layer.acc_bits = layer_acc_bits(net, i)
    return net


def random_frames(net: Network, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = net.input.value_range
    return rng.integers(lo, hi + 1, size=(n,) + tuple(net.input.shape)).astype(np.int64)


def pow2_decode(net: Network) -> Network:
    """``net`` with every decode LUT made of powers of two and 0 (any layer kinds): the hardware
    decodes it by shifts, with no multiplier."""
    import dataclasses

    from .ir import validate

    T = net.timesteps

    def pow2(n):
        return dataclasses.replace(n, dec_enc=tuple(64 >> t for t in range(T)),
                                   dec_cal=tuple(4 >> t for t in range(T)) if n.calibrated else None)

    if net.input.input_coding == "spikes":
        net = dataclasses.replace(net, input=dataclasses.replace(net.input, neuron=pow2(net.input.neuron)))
    for i, layer in enumerate(net.layers):
        if layer.weighted and layer.neuron is not None:
            net = net.with_layer(i, neuron=pow2(layer.neuron))
    for i, layer in enumerate(net.layers):
        if layer.weighted:
            net = net.with_layer(i, acc_bits=layer_acc_bits(net, i))
    validate(net)
    return net
