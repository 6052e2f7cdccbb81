"""The Network IR: the one thing that crosses from ``snnfpga`` to ``rtl_gen``, ``sim`` and ``boards``.

An IR is an integer spiking network: integer weights, integer biases and integer threshold
lookup tables, with the float scales that map them back to the trained model.

- :mod:`.network`: the data model (frozen dataclasses);
- :mod:`.stage`: stage ids shared by the reference, the float SNN, the RTL taps and reports;
- :mod:`.bounds`: worst-case value ranges, hence the membrane widths;
- :mod:`.validate`: every invariant, with errors naming the field;
- :mod:`.file`: ``<name>.snn.json`` + ``<name>.snn.npz``, never unpickled;
- :mod:`.frames`: float images to the IR's integer pixels.

Imports numpy only (no torch, no amaranth).
"""

from .file import load, save
from .frames import QuantizationError, quantize_frames
from .network import (CHAIN_FORMAT_VERSION, CODINGS, FORMAT_VERSION, GRAPH_KINDS, INPUT, INPUT_CODINGS, LAYER_KINDS, MAX_ACC_BITS, MAXPOOL_CODINGS,
                      POOL_KINDS, WEIGHTED_KINDS, InputSpec, IRError, Layer, Network, Neuron, RateNeuron,
                      TTFSNeuron, signed_bits_for, weighted_layers)
from .stage import Stage
from .validate import validate

__all__ = [
    "FORMAT_VERSION", "CHAIN_FORMAT_VERSION", "GRAPH_KINDS", "INPUT", "CODINGS", "LAYER_KINDS", "WEIGHTED_KINDS", "POOL_KINDS", "MAXPOOL_CODINGS",
    "INPUT_CODINGS", "MAX_ACC_BITS", "IRError", "InputSpec", "RateNeuron", "TTFSNeuron", "Neuron", "Layer",
    "Network", "Stage",
    "save", "load", "validate", "signed_bits_for", "weighted_layers", "QuantizationError", "quantize_frames",
]
