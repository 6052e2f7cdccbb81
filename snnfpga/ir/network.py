"""The Network IR's data model: an integer spiking network as frozen dataclasses.

Integer semantics are DESIGN.md §3 (and docs/); :mod:`snnfpga.reference` implements them.
Validation lives in :mod:`.validate`, the file format in :mod:`.file`, width bounds in
:mod:`.bounds`: this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Union

import numpy as np

from ..errors import BadFile

__all__ = [
    "FORMAT_VERSION", "CODINGS", "LAYER_KINDS", "WEIGHTED_KINDS", "POOL_KINDS", "MAXPOOL_CODINGS",
    "INPUT_CODINGS", "MAX_ACC_BITS", "IRError", "InputSpec", "RateNeuron", "TTFSNeuron", "Neuron", "Layer",
    "Network", "signed_bits_for", "weighted_layers", "CHAIN_FORMAT_VERSION", "GRAPH_KINDS", "INPUT",
    "MAX_TIMESTEPS", "MAX_TTFS_TIMESTEPS", "max_timesteps", "MAX_INPUT_BITS", "MAX_WEIGHT_BITS", "MAX_LAYERS", "MAX_NEURONS", "MAX_WEIGHTS",
    "MIN_SCALE", "MAX_SCALE", "ARRAY_DTYPES", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_NPZ_MEMBERS",
    "MAX_ARRAY_NAME",
]

#: the newest file format: every layer names its ``inputs`` (a graph; docs/ir.md)
FORMAT_VERSION = 2
#: the format of a chain (every layer reads the one before): written for such networks, so
#: readers that predate graphs still read them
CHAIN_FORMAT_VERSION = 1
CODINGS = ("rate", "ttfs", "sc-ttfs")
LAYER_KINDS = ("dense", "conv2d", "avgpool2d", "maxpool2d", "flatten", "add")
#: kinds that exist only in graphs (format_version 2): ``add`` joins two weighted layers'
#: membranes (a residual connection)
GRAPH_KINDS = ("add",)
#: the source index that names the network's input (the frame, after the input encoder)
INPUT = -1
WEIGHTED_KINDS = ("dense", "conv2d")
#: weightless k×k window layers (``kernel``, ``stride``, ``padding``); see docs/ir.md
POOL_KINDS = ("avgpool2d", "maxpool2d")
#: codings in which ``maxpool2d`` is exact and allowed (docs/ir.md: TTFS values fall with spike
#: time, so the window's maximum is its earliest spike)
MAXPOOL_CODINGS = ("ttfs",)
INPUT_CODINGS = ("direct", "spikes")
#: The widest accumulator the reference and the RTL support (the reference uses exact float64).
MAX_ACC_BITS = 52

# The IR's documented limits (docs/ir.md, "Limits and integrity"), checked on load before any
# array is decompressed and by :func:`snnfpga.ir.validate`; the CLI's options use them too.
#: largest time window T (``timesteps`` is 1..MAX_TIMESTEPS; (SC-)TTFS: 1..MAX_TTFS_TIMESTEPS)
MAX_TIMESTEPS = 4096
#: largest T of a (SC-)TTFS network: its encode compares the membrane with T thresholds per lane
#: in parallel, so generating and compiling grow with T (T = 4096: minutes for a 3-neuron
#: network), and one or two spikes a neuron need no such window; every T up to this one is
#: proven bit-exact in RTL in CI (tests/test_rtl_random.py)
MAX_TTFS_TIMESTEPS = 256


def max_timesteps(coding: str) -> int:
    """The largest T the IR allows for ``coding`` (docs/ir.md, "Limits and integrity")."""
    return MAX_TTFS_TIMESTEPS if coding in ("ttfs", "sc-ttfs") else MAX_TIMESTEPS
#: widest input pixel (``input.bits`` is 1..MAX_INPUT_BITS)
MAX_INPUT_BITS = 16
#: widest weight (``weight_bits`` is 2..MAX_WEIGHT_BITS)
MAX_WEIGHT_BITS = 32
#: most layers in a network (also bounds the recursion of the width bound over weightless layers)
MAX_LAYERS = 256
#: most values in any shape (``input.shape``, each layer's ``in_shape`` and ``out_shape``)
MAX_NEURONS = 1 << 20
#: most elements in one weight or bias array
MAX_WEIGHTS = 1 << 24
#: the range of every float ``scale`` / ``out_scale`` (finite, positive, a real number)
MIN_SCALE, MAX_SCALE = 1e-30, 1e30
#: the dtypes an array in the npz may have: each holds its values exactly in int64
ARRAY_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
#: largest ``.snn.json`` file, in bytes, and deepest nesting of JSON objects and lists in it
MAX_JSON_BYTES = 64 << 20
MAX_JSON_DEPTH = 32
#: most members in the ``.snn.npz`` zip (its directory is read before anything else)
MAX_NPZ_MEMBERS = 4096
#: longest array name (the ``weight`` / ``bias`` fields and the ``arrays`` file name)
MAX_ARRAY_NAME = 255


class IRError(BadFile, ValueError):
    """A Network IR that is malformed; the message names the file, the field and the value."""

    def __init__(self, where: str, field_name: str, problem: str):
        self.where, self.field_name, self.problem = where, field_name, problem
        super().__init__(f"{where}: field '{field_name}': {problem}")


@dataclass(frozen=True)
class RateNeuron:
    """IF neuron, reset by subtraction: fires when ``v >= theta``; membranes start at ``v0``.

    ``leak_shift`` k (None: no leak, plain IF) makes it a LIF without a multiplier: at the start
    of every step t >= 1 the membrane carried over leaks, ``v ← v − (v >> k)`` with ``>>`` the
    arithmetic shift (floor division by 2^k), so β = 1 − 2^-k (docs/ir.md, "Leaky rate neurons").
    """

    theta: int
    v0: int
    # --- LIF leak (issue 12): begin
    leak_shift: int | None = None
    # --- LIF leak (issue 12): end


@dataclass(frozen=True)
class TTFSNeuron:
    """(SC-)TTFS neuron: encode LUT in membrane units, decode LUT in the next layer's input units.

    ``cal``/``dec_cal`` are ``None`` for single-spike TTFS.
    """

    enc: tuple[int, ...]
    dec_enc: tuple[int, ...]
    cal: tuple[int, ...] | None = None
    dec_cal: tuple[int, ...] | None = None

    @property
    def calibrated(self) -> bool:
        return self.cal is not None


Neuron = Union[RateNeuron, TTFSNeuron]


@dataclass(frozen=True)
class InputSpec:
    """The frame: ``shape`` integers of ``bits`` bits; ``scale`` is the float value of one unit.

    With ``input_coding == "spikes"`` the pixels are encoded by ``neuron`` (pixel units in,
    first layer's input units out) exactly like a hidden layer's membranes.
    """

    shape: tuple[int, ...]
    bits: int
    signed: bool = False
    input_coding: str = "direct"
    scale: float = 1.0
    neuron: Neuron | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def value_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


@dataclass(eq=False)
class Layer:
    """One layer. Weighted layers (dense, conv2d) carry weights and, except the last, a neuron.

    ``add`` (graphs only) sums the membranes of two weighted layers without a neuron (its
    *branches*, docs/ir.md) and carries the neuron, ``acc_bits``, ``scale`` and ``out_scale``
    of that shared membrane: a residual connection.

    ``avgpool2d`` is integer *sum* pooling (the 1/k² lives in the next weights), ``maxpool2d``
    the maximum over each window (padding excluded; TTFS only, see docs/ir.md) and ``flatten``
    a reshape; none has a neuron, all act on the decoded input values.
    Dense weights are ``(out, in)``; conv2d weights ``(out_ch, in_ch, kh, kw)``. Shapes are
    ``(features,)`` or ``(channels, height, width)``.
    """

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    weight_bits: int = 0
    acc_bits: int = 0
    neuron: Neuron | None = None
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    #: float value of one membrane unit (weighted layers) so ``v_int * scale`` is the float membrane
    scale: float = 1.0
    #: float value of one unit of this layer's output (= next layer's input unit)
    out_scale: float = 1.0
    #: indices of the layers whose outputs this layer reads (``INPUT`` = -1: the network's
    #: input); empty means the previous layer (a chain). ``add`` reads two weighted layers.
    inputs: tuple[int, ...] = ()

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))


@dataclass(eq=False)
class Network:
    name: str
    coding: str
    timesteps: int
    input: InputSpec
    layers: list[Layer]
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def output_layer(self) -> Layer:
        return weighted_layers(self)[-1]

    def sources(self, index: int) -> tuple[int, ...]:
        """The layers ``index`` reads (``INPUT`` for the network's input)."""
        return tuple(self.layers[index].inputs) or (index - 1,)

    def consumers(self, index: int) -> list[int]:
        """The layers that read layer ``index``'s output."""
        return [j for j in range(index + 1, len(self.layers)) if index in self.sources(j)]

    @property
    def is_graph(self) -> bool:
        """True unless every layer reads the one before and none is a graph kind."""
        return any(layer.kind in GRAPH_KINDS or (layer.inputs and tuple(layer.inputs) != (i - 1,))
                   for i, layer in enumerate(self.layers))

    def branch_of(self, index: int) -> int | None:
        """The ``add`` layer whose membrane weighted layer ``index`` charges (None: its own)."""
        for j in self.consumers(index):
            if self.layers[j].kind == "add":
                return j
        return None

    def spiking(self, index: int) -> bool:
        """Whether layer ``index`` fires (a stage): a weighted layer with a neuron, or an add."""
        layer = self.layers[index]
        return layer.neuron is not None and (layer.weighted or layer.kind == "add")

    @property
    def n_classes(self) -> int:
        return self.output_layer.n_out

    def with_layer(self, index: int, **changes: Any) -> "Network":
        """A copy with one layer changed (used to build corrupted networks in tests)."""
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return replace(self, layers=layers)


def weighted_layers(net: Network) -> list[Layer]:
    return [layer for layer in net.layers if layer.weighted]


def signed_bits_for(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits
