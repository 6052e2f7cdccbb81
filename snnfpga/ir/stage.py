"""Stage ids: which spiking stage an event belongs to, one type everywhere.

A stage is the input encoder (``input_coding == "spikes"``) or a weighted layer that fires.
The integer reference keys its spikes by :class:`Stage`, the float SNN its thresholds, the
generated top names its taps ``tap_<stage.name>_*`` and the comparator reports mismatches by
it, so an id read in one place means the same stage in every other.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Stage"]


class Stage(int):
    """The index of the weighted layer whose spikes these are, or :attr:`INPUT` (``-1``).

    An ``int`` (so it sorts, hashes and indexes ``net.layers`` like one) with a name: ``"in"``
    for the input encoder, the layer index as a string otherwise.
    """

    INPUT: ClassVar[Stage]

    def __new__(cls, value: int | str) -> Stage:
        if isinstance(value, str):
            if value == "in":
                value = -1
            elif value.isdigit():
                value = int(value)
            else:
                raise ValueError(f"stage must be 'in' or a layer index, not {value!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"stage must be -1 (input) or a layer index >= 0, not {value!r}")
        return super().__new__(cls, value)

    @property
    def name(self) -> str:
        """``"in"`` or the layer index: the tap name in the Verilog and the key in reports."""
        return "in" if self == -1 else str(int(self))

    @property
    def is_input(self) -> bool:
        return self == -1

    def __repr__(self) -> str:
        return f"Stage({self.name!r})"

    def __str__(self) -> str:
        return self.name


Stage.INPUT = Stage(-1)
