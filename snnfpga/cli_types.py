"""Typed, range-checked command-line options, shared by every ``snnfpga`` subcommand's parser.

Each is an ``argparse`` ``type=``: a bad value fails at parse time with
``snnfpga <command>: error: argument --images: must be >= 1, not -5`` and exit status 2, before
any work starts. The ranges come from the IR's limits (:mod:`snnfpga.ir.network`) where the
IR has one. Imports nothing heavier than numpy.
"""

from __future__ import annotations

import argparse
from typing import Callable

from .ir.network import MAX_INPUT_BITS, MAX_TIMESTEPS

__all__ = ["int_range", "count", "non_negative", "timesteps", "input_bits", "weight_bits", "act_bits", "hidden",
           "lanes", "baud", "seed", "window", "non_empty", "MAX_LANES", "MAX_CONVERT_BITS", "MAX_HIDDEN", "MAX_BAUD",
           "MAX_SEED"]

#: most weights a generated core reads per cycle (a wider core multiplies its adders and memory ports)
MAX_LANES = 64
#: widest weight and decoded spike value the converter quantizes to (``--weight-bits``, ``--act-bits``:
#: 2..16, :func:`snnfpga.convert.quantize.quantize`; the IR itself admits weights up to 32 bits)
MAX_CONVERT_BITS = 16
#: widest hidden layer / most channels a model is built with (a 65536-wide dense layer on a
#: 784-pixel input already holds 51 M float weights)
MAX_HIDDEN = 65536
#: fastest UART line rate the board tops accept (the divisor of their clock must stay >= 1)
MAX_BAUD = 12_000_000
#: largest seed (numpy and torch both take any seed in 0..2**32-1)
MAX_SEED = 2**32 - 1


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``lo..hi`` (no upper bound when ``hi`` is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < lo or hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, not {value}" if hi is not None
                                             else f"must be >= {lo}, not {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def non_empty(text: str) -> str:
    """An ``argparse`` type: a non-empty string (a serial port, a path)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must not be empty, not {text!r}")
    return text


#: images, frames, requests: at least one
count = int_range(1)
#: epochs: zero allowed (no training / no fine-tuning)
non_negative = int_range(0)
timesteps = int_range(1, MAX_TIMESTEPS)
input_bits = int_range(1, MAX_INPUT_BITS)
weight_bits = int_range(2, MAX_CONVERT_BITS)
act_bits = int_range(2, MAX_CONVERT_BITS)
hidden = int_range(1, MAX_HIDDEN)
lanes = int_range(1, MAX_LANES)
baud = int_range(300, MAX_BAUD)
seed = int_range(0, MAX_SEED)
#: UART requests in flight
window = int_range(1, 256)


#: ``--clock`` of ``snnfpga build`` and ``snnfpga run`` (parsed by ``boards.clock.parse_clock``)
CLOCK_HELP = ("osc (board oscillator, default), a PLL frequency in MHz, or auto: build at the oscillator, "
              "then again with a PLL at <= 0.9 x that fmax (kept if it meets timing; boards/clock.py)")
