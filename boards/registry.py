"""Supported boards: their amaranth-boards platform, device capacities and block RAM shapes.

Capacities are the vendors' device tables (sources beside each figure). ``bram_configs`` are
the (depth, width) shapes one block RAM can take, used to estimate how many blocks the
network's memories need before running the toolchain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from snnfpga.errors import BadOption, DoesNotFit, ToolFailed, UserError

__all__ = ["Board", "BoardError", "UnknownBoard", "DoesNotFitBoard", "BuildFailed", "BOARDS", "get_board", "list_boards", "format_board_list",
           "resource_used"]


class BoardError(UserError):
    """Anything about a board the user must fix (base of the three below)."""


class UnknownBoard(BoardError, BadOption):
    """A board name that is not in the registry."""


class DoesNotFitBoard(BoardError, DoesNotFit, ValueError):
    """A design that needs more block RAM (or another resource) than the board has."""


class BuildFailed(BoardError, ToolFailed):
    """yosys / nextpnr / the packer failed; the message holds the tail of its log."""


@dataclass(frozen=True)
class Board:
    """A board target.

    ``toolchain`` is ``"open"`` (yosys/nextpnr through yowasp builds a bitstream here) or
    ``"vivado"`` (Verilog, XDC and a TCL script are written; Vivado is not available here).
    ``capacity`` counts LUT (4-input for Lattice, 6-input for Xilinx), FF, BRAM (block RAMs
    of ``bram_bits`` each), SPRAM (single-port RAMs, no initial contents) and DSP blocks.
    """

    name: str
    description: str
    family: str  # "ecp5" | "ice40" | "xilinx7"
    device: str
    toolchain: str
    platform_factory: Callable[[], object] = field(repr=False, compare=False)
    capacity: dict[str, int] = field(default_factory=dict)
    bram_bits: int = 0
    bram_configs: tuple[tuple[int, int], ...] = ()
    spram_configs: tuple[tuple[int, int], ...] = ()
    clock_hz: float = 0.0
    #: the power model's device entry (a key of snnfpga.boards.power.DEVICES): the one place a
    #: board is tied to its power figures (power.device_for resolves boards through it)
    power_device: str = ""

    def platform(self):
        """A fresh amaranth-boards platform object (one per build: ``prepare`` is one-shot)."""
        return self.platform_factory()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _arty_a7_35():
    from amaranth_boards.arty_a7 import ArtyA7_35Platform
    return ArtyA7_35Platform(toolchain="Vivado")


BOARDS: dict[str, Board] = {b.name: b for b in [
    Board(
        name="ulx3s-85f",
        description="Radiona ULX3S with Lattice ECP5 LFE5U-85F (25 MHz clock, FTDI USB UART)",
        family="ecp5", device="LFE5U-85F", toolchain="open", platform_factory=_ulx3s_85f,
        # Lattice ECP5 family datasheet FPGA-DS-02012, Table 1.1 (LFE5U-85): 84K LUTs,
        # 208 sysMEM EBR of 18 Kbit, 156 18x18 multipliers; one FF per LUT (2 per slice).
        capacity={"LUT": 83640, "FF": 83640, "BRAM": 208, "SPRAM": 0, "DSP": 156},
        bram_bits=18432,
        # DP16KD shapes (same datasheet, sysMEM section); x36 only as pseudo dual port
        bram_configs=((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
        clock_hz=25e6, power_device="ecp5-85f"),
    Board(
        name="icebreaker",
        description="1BitSquared iCEBreaker with Lattice iCE40UP5K (12 MHz clock, FTDI USB UART)",
        family="ice40", device="iCE40UP5K", toolchain="open", platform_factory=_icebreaker,
        # Lattice iCE40 UltraPlus datasheet FPGA-DS-02008, Table 1.1 (UP5K): 5280 LUT4 (one FF
        # each), 30 EBR of 4 Kbit, 4 SPRAM of 256 Kbit, 8 DSP (SB_MAC16).
        capacity={"LUT": 5280, "FF": 5280, "BRAM": 30, "SPRAM": 4, "DSP": 8},
        bram_bits=4096,
        bram_configs=((256, 16), (512, 8), (1024, 4), (2048, 2)),
        spram_configs=((16384, 16),),
        clock_hz=12e6, power_device="ice40up5k"),
    Board(
        name="arty-a7-35",
        description="Digilent Arty A7-35 with Xilinx Artix-7 XC7A35T (100 MHz clock, FTDI USB UART); "
                    "Verilog + XDC + Vivado TCL only (Vivado is not available here)",
        family="xilinx7", device="xc7a35ticsg324-1L", toolchain="vivado", platform_factory=_arty_a7_35,
        # Xilinx DS180 (7 Series overview), Table 3 (XC7A35T): 20800 LUT6, 41600 FF,
        # 50 BRAM36 (counted here as 100 RAMB18 of 18 Kbit), 90 DSP48E1.
        capacity={"LUT": 20800, "FF": 41600, "BRAM": 100, "SPRAM": 0, "DSP": 90},
        bram_bits=18432,
        bram_configs=((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
        clock_hz=100e6, power_device="xc7a35t"),
]}


def list_boards() -> list[str]:
    return sorted(BOARDS)


def format_board_list() -> str:
    lines = []
    for name in list_boards():
        b = BOARDS[name]
        cap = ", ".join(f"{k} {v}" for k, v in b.capacity.items() if v)
        lines.append(f"{name:12s} {b.description}\n{'':12s} {b.device}: {cap}")
    return "\n".join(lines)


def get_board(name: str) -> Board:
    """The board called ``name``; an unknown name lists the supported ones."""
    key = str(name).strip().lower()
    if key not in BOARDS:
        raise UnknownBoard(f"unknown board {name!r}; supported boards: {', '.join(list_boards())}")
    return BOARDS[key]


def resource_used(resources, kind: str) -> int | None:
    """How many of ``kind`` (``"LUT"``, ``"DSP"``, ...) a build's or an estimate's ``resources``
    use, given as ``{"used": n, ...}`` or a plain count; None where it is not given."""
    r = (resources or {}).get(kind)
    if r is None:
        return None
    return int(r["used"] if isinstance(r, dict) else r)
