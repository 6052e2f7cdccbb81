"""The network top: pixels in, result beats out, counters and per-stage event taps.

Ports are pinned by docs/hardware.md. Stages are chained stream to stream, so any stage may
stall; each hidden stage's output handshake is copied to ``tap_<stage>_*``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from snnfpga.ir import Network, validate, weighted_layers

from .encoder import InputEncoder
from .events import index_bits, pixel_shape, result_signature, time_bits
from .layer_common import check_lanes, check_supported
from .layer_rate import RateDenseLayer
from .layer_ttfs import TTFSDenseLayer

__all__ = ["NetworkTop", "stages"]


def stages(net: Network) -> list[tuple[str | int, int]]:
    """The spiking stages in order: ``("in", n)`` for an input encoder, then ``(l, n_out)``."""
    out: list[tuple[str | int, int]] = []
    if net.input.input_coding == "spikes":
        out.append(("in", net.input.size))
    out += [(i, layer.n_out) for i, layer in enumerate(net.layers)
            if layer.weighted and layer is not weighted_layers(net)[-1]]
    return out


class NetworkTop(wiring.Component):
    """A dense SNN as hardware; members as in docs/hardware.md.

    Members
    -------
    pixels : ``In(stream.Signature(pixel))``
    result : ``Out(stream.Signature(ResultLayout))``
    stat_cycles, stat_events, stat_frames : ``Out(32)``
    tap_<s>_valid, tap_<s>_neuron, tap_<s>_time, tap_<s>_kind, tap_<s>_done : ``Out(...)``
    """

    def __init__(self, net: Network, *, lanes: int = 1):
        try:
            self.lanes = check_lanes(lanes)
            if not isinstance(net, Network):
                raise TypeError(f"net must be a snnfpga.ir.Network, not {net!r}")
            validate(net)
            check_supported(net)
        except Exception:
            self._MustUse__silence = True  # rejected before use: no "never used" warning
            raise
        self.net = net
        self.tb = time_bits(net.timesteps)
        out = net.output_layer
        self.out_acc_bits = out.acc_bits
        self.cls_bits = index_bits(net.n_classes)
        self.stages = stages(net)
        members = {
            "pixels": In(stream.Signature(pixel_shape(net.input.bits, net.input.signed))),
            "result": Out(result_signature(self.out_acc_bits, self.cls_bits)),
            "stat_cycles": Out(32), "stat_events": Out(32), "stat_frames": Out(32),
        }
        for s, n in self.stages:
            members[f"tap_{s}_valid"] = Out(1)
            members[f"tap_{s}_neuron"] = Out(index_bits(n))
            members[f"tap_{s}_time"] = Out(self.tb)
            members[f"tap_{s}_kind"] = Out(1)
            members[f"tap_{s}_done"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        net = self.net
        layer_cls = RateDenseLayer if net.coding == "rate" else TTFSDenseLayer
        upstream = self.pixels
        taps = []
        if net.input.input_coding == "spikes":
            m.submodules.enc_in = enc = InputEncoder(net)
            wiring.connect(m, wiring.flipped(self.pixels), enc.pixels)
            upstream = enc.o_events
            taps.append(("in", enc.o_events))
        first = True
        for i, layer in enumerate(net.layers):
            if not layer.weighted:
                continue
            core = layer_cls(net, i, lanes=self.lanes)
            m.submodules[f"layer{i}"] = core
            if first and net.input.input_coding == "direct":
                wiring.connect(m, wiring.flipped(self.pixels), core.i_stream)
            else:
                wiring.connect(m, upstream, core.i_stream)
            first = False
            if core.is_output:
                wiring.connect(m, core.result, wiring.flipped(self.result))
            else:
                upstream = core.o_events
                taps.append((i, core.o_events))

        events_now = []
        for s, st in taps:
            fire = st.valid & st.ready
            ev = Signal(name=f"ev_{s}")
            m.d.comb += [
                ev.eq(fire & ~st.payload.end),
                getattr(self, f"tap_{s}_valid").eq(ev),
                getattr(self, f"tap_{s}_neuron").eq(st.payload.neuron),
                getattr(self, f"tap_{s}_time").eq(st.payload.time),
                getattr(self, f"tap_{s}_kind").eq(st.payload.kind),
            ]
            done = fire & st.payload.end
            if net.coding == "rate":
                done = done & (st.payload.time == net.timesteps - 1)
            m.d.comb += getattr(self, f"tap_{s}_done").eq(done)
            events_now.append(ev)
        m.d.sync += self.stat_cycles.eq(self.stat_cycles + 1)
        if events_now:
            total = events_now[0]
            for ev in events_now[1:]:
                total = total + ev
            m.d.sync += self.stat_events.eq(self.stat_events + total)
        r = self.result
        with m.If(r.valid & r.ready & r.payload.last):
            m.d.sync += self.stat_frames.eq(self.stat_frames + 1)
        return m
