# amaranth: UnusedElaboratable=no
# (describe() builds a NetworkTop only to read it; it is never elaborated)
"""The generated hardware described as data: every memory, multiplier and width, read from
the cores that build it.

A :class:`HardwareDescription` is made by constructing :class:`~.top.NetworkTop` and reading
its components (no elaboration): each core creates its memories in ``__init__`` and knows its
multipliers, so the description, the summary JSON (docs/hardware.md) and every consumer
(``boards.fit`` for block RAM, ``boards.power`` for multipliers and widths) agree with the
Verilog by construction. ``tests/test_hw_description.py`` checks the memories against the
elaborated design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amaranth.hdl import Shape

from snnfpga.ir import Network, Stage

from .events import index_bits, time_bits

if TYPE_CHECKING:
    from .top import NetworkTop

__all__ = ["MemoryDescription", "Multiplier", "LayerDescription", "HardwareDescription", "describe", "describe_top"]

#: roles of a memory
ROLES = ("weights", "bias", "partial_sums", "membranes", "frames", "pool_maxima", "queue")


@dataclass(frozen=True)
class MemoryDescription:
    """One memory (``amaranth.lib.memory.Memory``) of the top.

    ``path`` is its submodule path in the elaborated :class:`~.top.NetworkTop`
    (``"layer0.weights"``, ``"layer0.psums.bank1"``, ``"enc_in.frame"``); ``stage`` the
    :class:`~snnfpga.ir.Stage` name of its owner (``"in"`` for the input encoder, else the
    layer index); ``role`` one of :data:`ROLES`; ``depth`` words of ``width`` bits.
    ``initialised``: its contents come from the IR (weights, biases) and the design never
    writes it, a ROM; otherwise it starts as zeros and the design writes it. ``transparent``:
    its read port is transparent to its write port (yosys emulates that in logic around a
    block RAM, which enters its block-or-logic choice: ``boards.fit.in_block_ram``).
    """

    path: str
    stage: str
    role: str
    depth: int
    width: int
    initialised: bool
    transparent: bool = field(default=False, compare=False)  # a property of the ports, not of the memory

    @property
    def bits(self) -> int:
        return self.depth * self.width

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "stage": self.stage, "role": self.role, "depth": self.depth,
                "width": self.width, "bits": self.bits, "initialised": self.initialised}


@dataclass(frozen=True)
class Multiplier:
    """``count`` identical hardware products ``a × b``, operands as Amaranth shapes
    (``a_bits``/``a_signed``, ``b_bits``/``b_signed``), of which the design keeps the low
    ``y_bits`` (Amaranth's product is ``a_bits + b_bits`` wide). The widths decide whether yosys
    puts a product in DSP blocks and in how many (``boards.fit.dsp_blocks``), so they are read
    from the core that builds it, like the memories."""

    a_bits: int
    a_signed: bool
    b_bits: int
    b_signed: bool
    y_bits: int
    count: int

    @classmethod
    def of(cls, a, b, count: int, y_bits: int | None = None) -> Multiplier:
        """From two shape-likes; ``y_bits`` None: the full product."""
        a, b = Shape.cast(a), Shape.cast(b)
        full = a.width + b.width
        return cls(a.width, a.signed, b.width, b.signed, full if y_bits is None else min(full, y_bits), count)

    def summary(self) -> dict[str, Any]:
        return {"a": [self.a_bits, self.a_signed], "b": [self.b_bits, self.b_signed],
                "y_bits": self.y_bits, "count": self.count}


@dataclass(frozen=True)
class LayerDescription:
    """One weighted layer's core: ``groups = ceil(out_channels / lanes)`` words per weight column
    (dense: ``out_channels = n_out``; conv2d: per kernel tap ``(ci, ky, kx)``),
    ``slots`` partial sums per neuron and bank, ``products`` its hardware multipliers (docs/hardware.md),
    ``decode`` where the decode LUT of its input spikes is applied: ``"slots"`` (per-(kind, t)
    partial sums scaled on encode), ``"arrival"`` (each weight scaled as its event arrives, one
    slot) or ``"none"`` (no LUT: rate coding, direct pixels)."""

    index: int
    kind: str
    n_in: int
    n_out: int
    lanes: int
    groups: int
    slots: int
    weight_bits: int
    acc_bits: int
    products: tuple[Multiplier, ...]
    memories: tuple[MemoryDescription, ...]
    decode: str = "none"

    @property
    def multipliers(self) -> int:
        return sum(p.count for p in self.products)

    @property
    def weight_words(self) -> int:
        return sum(mem.depth for mem in self.memories if mem.role == "weights")

    @property
    def membrane_words(self) -> int:
        """Both partial-sum banks, plus the IF membranes of a rate layer."""
        return sum(mem.depth for mem in self.memories if mem.role in ("partial_sums", "membranes"))

    def summary(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "n_in": self.n_in, "n_out": self.n_out,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits,
                "weight_words": self.weight_words, "membrane_words": self.membrane_words,
                "lanes": self.lanes, "multipliers": self.multipliers,
                "products": [p.summary() for p in self.products], "decode": self.decode}


@dataclass(frozen=True)
class HardwareDescription:
    """The generated top ``top`` (its module name): ports' widths, stages, layers, memories;
    ``decode`` the generator option it was built with (each layer's resolved choice is
    :attr:`LayerDescription.decode`)."""

    top: str
    coding: str
    timesteps: int
    lanes: int
    input_size: int
    input_bits: int
    input_signed: bool
    input_coding: str
    n_classes: int
    out_acc_bits: int
    cls_bits: int
    stages: tuple[tuple[Stage, int], ...]
    layers: tuple[LayerDescription, ...]
    encoder_memories: tuple[MemoryDescription, ...]
    decode: str = "auto"
    #: the max-pool stages' banks (``pool<l>.banks.bank0/1``, role ``pool_maxima``, stage ``l``)
    pool_memories: tuple[MemoryDescription, ...] = ()

    @property
    def memories(self) -> tuple[MemoryDescription, ...]:
        """Every memory of the top: the input encoder's, then each layer's, then the max pools'."""
        return (self.encoder_memories + tuple(mem for layer in self.layers for mem in layer.memories)
                + self.pool_memories)

    @property
    def multipliers(self) -> int:
        return sum(layer.multipliers for layer in self.layers)

    def summary(self) -> dict[str, Any]:
        """The summary JSON of docs/hardware.md."""
        tb = time_bits(self.timesteps)
        return {
            "top": self.top, "coding": self.coding, "timesteps": self.timesteps, "lanes": self.lanes,
            "decode": self.decode, "input": {"size": self.input_size, "bits": self.input_bits, "signed": self.input_signed,
                      "input_coding": self.input_coding},
            "n_classes": self.n_classes, "out_acc_bits": self.out_acc_bits, "cls_bits": self.cls_bits,
            "taps": [{"stage": s.name if s.is_input else int(s), "name": f"tap_{s.name}", "neurons": n,
                      "neuron_bits": index_bits(n), "time_bits": tb} for s, n in self.stages],
            "layers": [layer.summary() for layer in self.layers],
            "memories": [mem.summary() for mem in self.memories],
            "multipliers": self.multipliers,
        }


def _memories(prefix: str, stage: Stage, part) -> tuple[MemoryDescription, ...]:
    return tuple(MemoryDescription(path=f"{prefix}.{path}", stage=stage.name, role=role, depth=mem.depth,
                                   width=Shape.cast(mem.shape).width, initialised=not mem.write_ports,
                                   transparent=any(rp.transparent_for for rp in mem.read_ports))
                 for path, role, mem in part.memories)


def describe_top(top: NetworkTop, name: str = "snn_top") -> HardwareDescription:
    """Read ``top``'s components (see :meth:`.top.NetworkTop.description`)."""
    net = top.net
    encoder_memories: tuple[MemoryDescription, ...] = ()
    pool_memories: tuple[MemoryDescription, ...] = ()
    layers = []
    for prefix, part in top.parts.items():
        if part is top.encoder:
            encoder_memories = _memories(prefix, Stage.INPUT, part)
            continue
        if prefix.startswith("pool"):     # a max pool (top.pools): memories only, no layer core
            pool_memories += _memories(prefix, Stage(int(prefix[4:])), part)
            continue
        layers.append(LayerDescription(
            index=part.index, kind=part.layer.kind, n_in=part.n_in, n_out=part.n_out, lanes=part.lanes,
            groups=part.groups, slots=part.slots, weight_bits=part.wb, acc_bits=part.ab,
            products=part.products, memories=_memories(prefix, Stage(part.index), part),
            decode=part.decode_mode))
    return HardwareDescription(
        top=name, coding=net.coding, timesteps=net.timesteps, lanes=top.lanes,
        input_size=net.input.size, input_bits=net.input.bits, input_signed=net.input.signed,
        input_coding=net.input.input_coding, n_classes=net.n_classes, out_acc_bits=top.out_acc_bits,
        cls_bits=top.cls_bits, stages=tuple(top.stages), layers=tuple(layers),
        encoder_memories=encoder_memories, decode=top.decode, pool_memories=pool_memories)


def describe(net: Network, *, lanes: int = 1, name: str = "snn_top", decode: str = "auto",
             single_bank=()) -> HardwareDescription:
    """What ``NetworkTop(net, lanes=lanes, decode=decode, single_bank=single_bank)`` is made of,
    built by constructing it and reading its components (no elaboration)."""
    from .top import NetworkTop

    return NetworkTop(net, lanes=lanes, decode=decode, single_bank=single_bank).description(name)
