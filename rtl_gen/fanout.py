"""Fan-out: one stream read by several consumers (a graph IR: a stage, the input or a max pool
read by more than one layer, e.g. a residual block's input feeding its first conv and its
shortcut).

Each consumer takes each beat exactly once; the source advances when every consumer has
taken the current beat. Consumers that took it early see ``valid`` low until the others
catch up, so nothing is duplicated or lost whatever the consumers' stalls, and the
broadcast adds no register on the data path (no latency). It adds no deadlock either: a
consumer that stalls holds back only beats the others have not yet been offered.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Broadcast"]


class Broadcast(wiring.Component):
    """Copies every beat of ``i_stream`` to ``n`` outputs, each taking it exactly once.

    Parameters
    ----------
    signature : stream.Signature
        The streams' signature (events or pixels).
    n : int
        Consumers, at least 2.

    Members
    -------
    i_stream : ``In(signature)``
    o_<k> : ``Out(signature)``, ``k < n``
    """

    def __new__(cls, signature: stream.Signature, n: int):
        # refuse bad parameters before the object exists (no "created but never used" warning)
        if not isinstance(signature, stream.Signature):
            raise TypeError(f"signature must be a stream.Signature, not {signature!r}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise TypeError(f"n must be an integer >= 2, not {n!r}")
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, signature: stream.Signature, n: int):
        self.n = n
        super().__init__({"i_stream": In(signature), **{f"o_{k}": Out(signature) for k in range(n)}})

    @property
    def outputs(self) -> list:
        return [getattr(self, f"o_{k}") for k in range(self.n)]

    def elaborate(self, platform) -> Module:
        m = Module()
        i = self.i_stream
        dones = []
        for k, o in enumerate(self.outputs):
            taken = Signal(name=f"taken{k}")       # consumer k has this beat already
            done = Signal(name=f"done{k}")
            m.d.comb += [o.payload.eq(i.payload), o.valid.eq(i.valid & ~taken), done.eq(taken | o.ready)]
            with m.If(i.valid & ~i.ready):
                m.d.sync += taken.eq(done)
            with m.Elif(i.valid & i.ready):
                m.d.sync += taken.eq(0)
            dones.append(done)
        ready = dones[0]
        for d in dones[1:]:
            ready = ready & d
        m.d.comb += i.ready.eq(ready)
        return m
