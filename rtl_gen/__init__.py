"""Amaranth hardware for the Network IR: dense SNN layer cores, the network top, Verilog.

Imports amaranth (not torch, not cocotb). See docs/hardware.md for the generated ports.
"""

from .emit import generate, summary
from .top import NetworkTop

__all__ = ["NetworkTop", "generate", "summary"]
