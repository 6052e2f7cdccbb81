"""Amaranth hardware for the Network IR: dense and conv2d SNN layer cores, the network top, Verilog.

Architecture (DESIGN.md §4; ports and summary JSON pinned by docs/hardware.md):

- Stages are chained by ``amaranth.lib.stream`` event streams (:mod:`.events`): a beat is a
  spike ``(neuron, time, kind)`` or an end marker (end of frame for (SC-)TTFS, end of step t
  for rate). Any stage may stall; nothing is lost or reordered.
- Input: with ``input_coding == "direct"`` the first layer consumes pixels itself (W·x, one
  multiplier per lane, zero pixels skipped); with ``"spikes"`` an :class:`~.encoder.InputEncoder`
  turns pixels into events of stage ``in``.
- Each dense layer (:mod:`.layer_common`, :mod:`.layer_ttfs`, :mod:`.layer_rate`) has a decode
  side that adds weight columns, ``lanes`` weights per memory word, into per-(kind, time)
  partial sums of one of two banks, and an encode side that turns the other bank into
  membranes and events (``dec`` scaling: one multiplier per lane, or shifts for power-of-two
  LUTs). The banks swap at each end marker, so decoding frame f+1 (step t+1) overlaps encoding
  frame f (step t): the frame interval is the busiest layer's ``events × ceil(n_out/lanes)``.
- conv2d layers decode events through their kernel footprint (:class:`~.layer_common.WindowDecode`:
  every tap whose output position is in range, ``lanes`` output channels a weight word);
  avgpool2d (integer sum pooling) and flatten between weighted layers are address remaps in
  the consumer's decode. The encode side is the dense one, walking ``positions × groups`` words.
- maxpool2d (TTFS) is a stage of its own (:mod:`.layer_maxpool`): it keeps each pooled
  element's earliest spike of the frame and sends one event per non-silent element at the end
  marker (events arrive in neuron order, not time order); the next layer decodes pooled indices.
- Graphs (residual networks): an ``add`` layer is one core whose two branch decode sides
  (each its own weights, geometry and partial-sum banks, scaling on arrival) feed one encode
  side that fires on their sum; a stream read by several layers is broadcast
  (:mod:`.fanout`). See docs/hardware.md, "Residual add and fan-out".
- :class:`NetworkTop` connects the stages and adds the counters and per-stage taps;
  :func:`generate` writes the Verilog and the summary JSON; :mod:`.pysim` runs the top in
  Amaranth's simulator; :func:`describe` returns a :class:`HardwareDescription` of the top
  (every memory, the multipliers, the widths) read from the cores that build it, from which the
  summary JSON, ``boards.fit`` and ``boards.power`` take their figures.

Imports amaranth (not torch, not cocotb).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["NetworkTop", "generate", "summary", "describe", "HardwareDescription", "LayerDescription",
           "MemoryDescription"]

_DESCRIPTION = ("describe", "HardwareDescription", "LayerDescription", "MemoryDescription")

if TYPE_CHECKING:
    from .description import HardwareDescription, LayerDescription, MemoryDescription, describe
    from .emit import generate, summary
    from .top import NetworkTop


def __getattr__(name: str):
    """Import amaranth only when hardware is asked for, so ``snnfpga.rtl_gen.cli`` loads without it."""
    if name in ("generate", "summary"):
        from . import emit
        return getattr(emit, name)
    if name in _DESCRIPTION:
        from . import description
        return getattr(description, name)
    if name == "NetworkTop":
        from .top import NetworkTop
        return NetworkTop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
