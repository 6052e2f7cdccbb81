# amaranth: UnusedElaboratable=no
# (the stage cores made in __init__ are used exactly when the top is)
"""The network top: pixels in, result beats out, counters and per-stage event taps.

Ports are pinned by docs/hardware.md. Stages are connected stream to stream by the IR's
``inputs`` (a chain or a graph); a stream read by several layers goes through a
:class:`.fanout.Broadcast`, so any stage may stall; each spiking stage's output handshake
(before any broadcast) is copied to ``tap_<stage>_*``. The stage cores
(and their memories) exist from construction on, so :meth:`NetworkTop.description` describes
the hardware without elaborating it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from snnfpga.errors import BadOption
from snnfpga.ir import INPUT, Network, Stage, validate

from .description import HardwareDescription, describe_top
from .encoder import InputEncoder
from .events import index_bits, pixel_shape, result_signature, time_bits
from .fanout import Broadcast
from .layer_common import DenseLayerBase, check_decode, check_lanes, check_supported, producer
from .layer_maxpool import MaxPoolStage, maxpool_stage
from .layer_rate import RateDenseLayer
from .layer_ttfs import TTFSDenseLayer

__all__ = ["NetworkTop", "stages", "check_single_bank"]


def stages(net: Network) -> list[tuple[Stage, int]]:
    """The spiking stages in order: ``(Stage.INPUT, n)`` for an input encoder, then
    ``(Stage(l), n_out)`` for every layer ``l`` that fires (a hidden weighted layer with a
    neuron, or an ``add``; a residual branch charges its add and has no tap)."""
    out: list[tuple[Stage, int]] = []
    if net.input.input_coding == "spikes":
        out.append((Stage.INPUT, net.input.size))
    out += [(Stage(i), layer.n_out) for i, layer in enumerate(net.layers) if net.spiking(i)]
    return out


def _check(net: object, lanes: object, decode: object = "auto") -> int:
    lanes = check_lanes(lanes)
    if not isinstance(net, Network):
        raise TypeError(f"net must be a snnfpga.ir.Network, not {net!r}")
    validate(net)
    check_decode(decode)
    check_supported(net, decode)
    return lanes


def check_single_bank(net: Network, single_bank) -> tuple[int, ...]:
    """The sorted layer indices of ``single_bank``; :class:`BadOption` naming any that is not a
    weighted layer with partial sums of its own (a residual branch's or an add's)."""
    try:
        out = tuple(sorted({int(i) for i in single_bank}))
    except (TypeError, ValueError) as e:
        raise BadOption(f"single_bank must be layer indices, not {single_bank!r}") from e
    for i in out:
        if not 0 <= i < len(net.layers):
            what = f"there is no layer {i} (0..{len(net.layers) - 1})"
        elif net.branch_of(i) is not None:
            what = f"layer {i} is a branch of the add {net.branch_of(i)}"
        elif not net.layers[i].weighted:
            what = f"layer {i} is {net.layers[i].kind!r}"
        else:
            continue
        raise BadOption(f"single_bank: {what}; one bank of partial sums needs a dense or conv2d layer "
                        f"that fires (or the output layer)")
    return out


def _stream_signature(port) -> stream.Signature:
    """The (unflipped) stream signature of a reader's input port."""
    sig = port.signature
    return sig.flip() if isinstance(sig, wiring.FlippedSignature) else sig


class NetworkTop(wiring.Component):
    """An SNN as hardware; members as in docs/hardware.md.

    Parameters
    ----------
    net : Network
        A valid IR of dense and conv2d layers (flatten, one avgpool2d between weighted layers,
        maxpool2d in TTFS, a dense output layer); a graph with residual ``add`` layers (one
        core each, decoding both branches) and values read by several layers (broadcast).
    lanes : int
        Weights read per cycle in every layer.
    decode : str
        Where (SC-)TTFS layers apply the decode LUT of their input spikes: ``"slots"``,
        ``"arrival"`` or ``"auto"`` (:func:`.layer_common.resolve_decode`; docs/hardware.md).
    single_bank : iterable of int
        IR indices of weighted layers (not residual branches or adds) whose partial sums get one
        bank instead of two: half their memory, and their decode waits while they encode (for a
        layer faster than the busiest one this costs no frame rate; docs/hardware.md).

    Attributes
    ----------
    stages : list of ``(Stage, neurons)``
        The tapped stages, in order.
    encoder : :class:`.encoder.InputEncoder` or None
        Submodule ``enc_in`` (``input_coding == "spikes"``).
    cores : tuple of :class:`.layer_common.DenseLayerBase`
        Submodules ``layer<l>``, one per weighted layer ``l`` that is no add's branch and one
        per ``add`` layer ``l`` (its branches' decode sides are inside it).
    pools : dict of int to :class:`.layer_maxpool.MaxPoolStage`
        Submodules ``pool<l>``, one per ``maxpool2d`` layer ``l`` (no tap: not a spiking stage).

    Members
    -------
    pixels : ``In(stream.Signature(pixel))``
    result : ``Out(stream.Signature(ResultLayout))``
    stat_cycles, stat_events, stat_frames : ``Out(32)``
    tap_<s>_valid, tap_<s>_neuron, tap_<s>_time, tap_<s>_kind, tap_<s>_done : ``Out(...)``
    """

    def __new__(cls, net: Network, *, lanes: int = 1, decode: str = "auto", single_bank=()):
        # Reject a bad network before the object exists: every Elaboratable is registered for
        # Amaranth's "created but never used" warning as it is created. ``src_loc_at=1`` points
        # that warning at our caller, not at this line.
        _check(net, lanes, decode)
        check_single_bank(net, single_bank)
        return super().__new__(cls, src_loc_at=1)

    def __init__(self, net: Network, *, lanes: int = 1, decode: str = "auto", single_bank=()):
        self.lanes = check_lanes(lanes)    # the network was checked by __new__
        self.decode = decode
        self.single_bank = check_single_bank(net, single_bank)
        self.net = net
        self.tb = time_bits(net.timesteps)
        self.out_acc_bits = net.output_layer.acc_bits
        self.cls_bits = index_bits(net.n_classes)
        self.stages = stages(net)
        self.encoder = InputEncoder(net) if net.input.input_coding == "spikes" else None
        layer_cls = RateDenseLayer if net.coding == "rate" else TTFSDenseLayer
        # one core per weighted layer that owns its membrane, and one per add (which decodes
        # its two branches itself)
        self.cores: tuple[DenseLayerBase, ...] = tuple(
            layer_cls(net, i, lanes=self.lanes, decode=decode, single_bank=i in self.single_bank)
            for i, layer in enumerate(net.layers)
            if (layer.weighted and net.branch_of(i) is None) or layer.kind == "add")
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
        # every stream source (the input, a spiking stage, a max pool) and the inputs that read
        # it; flattens and sum pools are address remaps inside the readers' decode
        outputs: dict[int, object] = {INPUT: wiring.flipped(self.pixels)}
        if self.encoder is not None:
            wiring.connect(m, wiring.flipped(self.pixels), self.encoder.pixels)
            outputs[INPUT] = self.encoder.o_events
        readers: dict[int, list] = {}
        cores = {core.index: core for core in self.cores}
        for i, layer in enumerate(net.layers):
            if i in self.pools:
                readers.setdefault(producer(net, i), []).append(self.pools[i].i_stream)
                outputs[i] = self.pools[i].o_stream
            elif layer.weighted:
                add = net.branch_of(i)
                port = getattr(cores[add], f"i_branch{i}") if add is not None else cores[i].i_stream
                readers.setdefault(producer(net, i), []).append(port)
            if i in cores and not cores[i].is_output:
                outputs[i] = cores[i].o_events
            elif i in cores:
                wiring.connect(m, cores[i].result, wiring.flipped(self.result))
        for src, ports in readers.items():
            if len(ports) == 1:
                wiring.connect(m, outputs[src], ports[0])
                continue
            fan = Broadcast(_stream_signature(ports[0]), len(ports))
            m.submodules[f"fanout_{Stage(src).name}"] = fan
            wiring.connect(m, outputs[src], fan.i_stream)
            for o, port in zip(fan.outputs, ports):
                wiring.connect(m, o, port)
        outputs = {Stage(k): v for k, v in outputs.items() if k == INPUT or net.spiking(k)}

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
