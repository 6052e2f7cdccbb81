"""Payload layouts of the streams between stages, and the widths derived from the IR.

Every spiking stage talks to the next through one ``stream.Signature(EventLayout(...))``.
A beat is either a spike event ``(neuron, time, kind)`` or, with ``end`` set, a marker saying
that a batch is complete: the whole frame for (SC-)TTFS, one time step for rate coding (its
``time`` field is then the step). Markers let every core stall or run ahead without counting.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream
from amaranth.utils import ceil_log2

__all__ = ["index_bits", "time_bits", "EventLayout", "ResultLayout", "event_signature",
           "result_signature", "pixel_shape"]


def index_bits(n: int) -> int:
    """Bits of an index into ``n`` items (at least 1, so that ports never vanish)."""
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    return max(1, ceil_log2(n))


def time_bits(timesteps: int) -> int:
    """Bits of a time step ``t < timesteps``."""
    return index_bits(timesteps)


def EventLayout(neuron_bits: int, t_bits: int) -> data.StructLayout:
    """One spike event, or an end marker (``end=1``; neuron and kind are then 0)."""
    return data.StructLayout({"neuron": unsigned(neuron_bits), "time": unsigned(t_bits),
                              "kind": unsigned(1), "end": unsigned(1)})


def ResultLayout(out_acc_bits: int, cls_bits: int) -> data.StructLayout:
    """One result beat: output membrane k; ``cls`` (argmax) is valid on the ``last`` beat."""
    return data.StructLayout({"membrane": signed(out_acc_bits), "cls": unsigned(cls_bits),
                              "last": unsigned(1)})


def event_signature(neuron_bits: int, t_bits: int) -> stream.Signature:
    return stream.Signature(EventLayout(neuron_bits, t_bits))


def result_signature(out_acc_bits: int, cls_bits: int) -> stream.Signature:
    return stream.Signature(ResultLayout(out_acc_bits, cls_bits))


def pixel_shape(bits: int, is_signed: bool):
    return signed(bits) if is_signed else unsigned(bits)
