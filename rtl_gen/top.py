# amaranth: UnusedElaboratable=no
# (the stage cores made in __init__ are used exactly when the top is)
"""The network top: pixels in, result beats out, counters and per-stage event taps.

Ports are pinned by docs/hardware.md. Stages are chained stream to stream, so any stage may
stall; each hidden stage's output handshake is copied to ``tap_<stage>_*``. The stage cores
(and their memories) exist from construction on, so :meth:`NetworkTop.description` describes
the hardware without elaborating it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from snnfpga.ir import Network, Stage, validate, weighted_layers

from .description import HardwareDescription, describe_top
from .encoder import InputEncoder
from .events import index_bits, pixel_shape, result_signature, time_bits
from .layer_common import DenseLayerBase, check_decode, check_lanes, check_supported
from .layer_maxpool import MaxPoolStage, maxpool_stage
from .layer_rate import RateDenseLayer
from .layer_ttfs import TTFSDenseLayer

__all__ = ["NetworkTop", "stages"]


def stages(net: Network) -> list[tuple[Stage, int]]:
    """The spiking stages in order: ``(Stage.INPUT, n)`` for an input encoder, then
    ``(Stage(l), n_out)`` for every hidden weighted layer ``l``."""
    out: list[tuple[Stage, int]] = []
    if net.input.input_coding == "spikes":
        out.append((Stage.INPUT, net.input.size))
    out += [(Stage(i), layer.n_out) for i, layer in enumerate(net.layers)
            if layer.weighted and layer is not weighted_layers(net)[-1]]
    return out


def _check(net: object, lanes: object) -> int:
    lanes = check_lanes(lanes)
    if not isinstance(net, Network):
        raise TypeError(f"net must be a snnfpga.ir.Network, not {net!r}")
    validate(net)
    check_supported(net)
    return lanes


class NetworkTop(wiring.Component):
    """An SNN as hardware; members as in docs/hardware.md.

    Parameters
    ----------
    net : Network
        A valid IR of dense and conv2d layers (flatten, one avgpool2d between weighted layers,
        maxpool2d in TTFS, a dense output layer).
    lanes : int
        Weights read per cycle in every layer.
    decode : str
        Where (SC-)TTFS layers apply the decode LUT of their input spikes: ``"slots"``,
        ``"arrival"`` or ``"auto"`` (:func:`.layer_common.resolve_decode`; docs/hardware.md).

    Attributes
    ----------
    stages : list of ``(Stage, neurons)``
        The tapped stages, in order.
    encoder : :class:`.encoder.InputEncoder` or None
        Submodule ``enc_in`` (``input_coding == "spikes"``).
    cores : tuple of :class:`.layer_common.DenseLayerBase`
        Submodules ``layer<l>``, one per weighted layer ``l``.
    pools : dict of int to :class:`.layer_maxpool.MaxPoolStage`
        Submodules ``pool<l>``, one per ``maxpool2d`` layer ``l`` (no tap: not a spiking stage).

    Members
    -------
    pixels : ``In(stream.Signature(pixel))``
    result : ``Out(stream.Signature(ResultLayout))``
    stat_cycles, stat_events, stat_frames : ``Out(32)``
    tap_<s>_valid, tap_<s>_neuron, tap_<s>_time, tap_<s>_kind, tap_<s>_done : ``Out(...)``
    """

    def __new__(cls, net: Network, *, lanes: int = 1, decode: str = "auto"):
        # Reject a bad network before the object exists: every Elaboratable is registered for
        # Amaranth's "created but never used" warning as it is created. ``src_loc_at=1`` points
        # that warning at our caller, not at this line.
        _check(net, lanes)
        check_decode(decode)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, net: Network, *, lanes: int = 1, decode: str = "auto"):
        self.lanes = check_lanes(lanes)    # the network was checked by __new__
        self.decode = decode
        self.net = net
        self.tb = time_bits(net.timesteps)
        self.out_acc_bits = net.output_layer.acc_bits
        self.cls_bits = index_bits(net.n_classes)
        self.stages = stages(net)
        self.encoder = InputEncoder(net) if net.input.input_coding == "spikes" else None
        layer_cls = RateDenseLayer if net.coding == "rate" else TTFSDenseLayer
        self.cores: tuple[DenseLayerBase, ...] = tuple(
            layer_cls(net, i, lanes=self.lanes, decode=decode) for i, layer in enumerate(net.layers) if layer.weighted)
        self.pools: dict[int, MaxPoolStage] = {
            i: maxpool_stage(net, i) for i, layer in enumerate(net.layers) if layer.kind == "maxpool2d"}
        members = {
            "pixels": In(stream.Signature(pixel_shape(net.input.bits, net.input.signed))),
            "result": Out(result_signature(self.out_acc_bits, self.cls_bits)),
            "stat_cycles": Out(32), "stat_events": Out(32), "stat_frames": Out(32),
        }
        for s, n in self.stages:
            members[f"tap_{s.name}_valid"] = Out(1)
            members[f"tap_{s.name}_neuron"] = Out(index_bits(n))
            members[f"tap_{s.name}_time"] = Out(self.tb)
            members[f"tap_{s.name}_kind"] = Out(1)
            members[f"tap_{s.name}_done"] = Out(1)
        super().__init__(members)

    @property
    def parts(self) -> dict[str, wiring.Component]:
        """The stage cores by submodule name: ``enc_in``, then ``layer<l>``, then ``pool<l>``."""
        parts: dict[str, wiring.Component] = {}
        if self.encoder is not None:
            parts["enc_in"] = self.encoder
        parts.update((f"layer{core.index}", core) for core in self.cores)
        parts.update((f"pool{i}", pool) for i, pool in self.pools.items())
        return parts

    def description(self, name: str = "snn_top") -> HardwareDescription:
        """What this top is made of (memories, multipliers, widths), read from its cores."""
        return describe_top(self, name)

    def elaborate(self, platform) -> Module:
        m = Module()
        net = self.net
        for name, part in self.parts.items():
            m.submodules[name] = part
        upstream = wiring.flipped(self.pixels)
        outputs = {}               # stage -> its event stream
        if self.encoder is not None:
            wiring.connect(m, upstream, self.encoder.pixels)
            upstream = outputs[Stage.INPUT] = self.encoder.o_events
        cores = {core.index: core for core in self.cores}
        for i in range(len(net.layers)):
            if i in self.pools:    # a max pool sits between its source and the next stage
                wiring.connect(m, upstream, self.pools[i].i_stream)
                upstream = self.pools[i].o_stream
                continue
            if i not in cores:
                continue
            core = cores[i]
            wiring.connect(m, upstream, core.i_stream)
            if core.is_output:
                wiring.connect(m, core.result, wiring.flipped(self.result))
            else:
                upstream = outputs[Stage(core.index)] = core.o_events

        events_now = []
        for s, _n in self.stages:
            st = outputs[s]
            fire = st.valid & st.ready
            ev = Signal(name=f"ev_{s.name}")
            m.d.comb += [
                ev.eq(fire & ~st.payload.end),
                getattr(self, f"tap_{s.name}_valid").eq(ev),
                getattr(self, f"tap_{s.name}_neuron").eq(st.payload.neuron),
                getattr(self, f"tap_{s.name}_time").eq(st.payload.time),
                getattr(self, f"tap_{s.name}_kind").eq(st.payload.kind),
            ]
            done = fire & st.payload.end
            if net.coding == "rate":
                done = done & (st.payload.time == net.timesteps - 1)
            m.d.comb += getattr(self, f"tap_{s.name}_done").eq(done)
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
