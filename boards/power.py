"""Power and energy estimates: static power per device + activity-based dynamic power.

No board is attached, so frames per watt is an *estimate*. Every constant below carries its
source (see ../shared/POWER.md); where no figure was found the value is an **assumption**,
named as such in the code and returned in ``assumptions`` by :func:`estimate`, so a report
always prints what it rests on.

Model (per frame, then × fps; the clock terms × f_clk)::

    static_w   = device static power (core + aux supplies, datasheet typical)
    memories_w = fps · (memory_reads · E_bram_read + memory_writes · E_bram_write)
    logic_w    = f_clk · (E_clock_base + LUT_used · E_toggle · idle_toggle)          (clocked logic)
               + fps · (accumulator_updates · acc_bits + events · event_bits) · E_toggle
               + fps · multiplies · E_dsp
    io_w       = fps · uart_bits_per_frame · E_io_toggle
    total_w    = static_w + memories_w + logic_w + io_w;  fps_per_w = fps / total_w

What the figures rest on comes from one place each: synaptic events from
:mod:`snnfpga.metrics.activity`, accumulator widths and multipliers from the generator's
description (:func:`snnfpga.rtl_gen.describe`), UART bytes from :class:`.protocol.Protocol`,
a board's device from the board registry (``Board.power_device``), the paper's energy from
:mod:`snnfpga.metrics.energy`.

This module imports neither amaranth, cocotb nor torch (the generator's description is read
inside :func:`activity_from_reference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from snnfpga.errors import BadOption
from snnfpga.metrics.energy import PLATFORMS as PAPER_CONSTANTS
from snnfpga.metrics.energy import paper_energy_record as paper_energy

from .protocol import Protocol
from .registry import BOARDS, Board, resource_used

__all__ = ["Device", "DEVICES", "estimate", "energy_split", "paper_energy", "activity_from_reference",
           "PAPER_CONSTANTS", "ACTIVITY_KEYS", "device_for"]


# --------------------------------------------------------------------------- constants
# iCE40 UP5K core current measurements, tinyvision-ai-inc/ice40_power (README), core at 1.219 V:
#   28-cell counter at 6 / 12 / 24 / 48 MHz: 388 / 645 / 1162 / 2184 uA
#   32 vs 228 logic cells at 12 MHz: 613.5 vs 641.3 uA
#   a multiply in logic vs in one DSP at 12 MHz: 996 vs 882 uA
_ICE40_MEAS_V = 1.219
#: energy per clock cycle of a clocked near-empty design (clock tree, global buffer, counter):
#: slope of the counter measurement, (2184 - 388) uA / (48 - 6) MHz × 1.219 V = 52.1 pJ/cycle.
E_CLOCK_BASE_ICE40 = (2184e-6 - 388e-6) / (48e6 - 6e6) * _ICE40_MEAS_V
#: energy per logic-cell toggle: (641.3 - 613.5) uA / (228 - 32) cells at 12 MHz × 1.219 V
#: = 14.4 fJ. ASSUMPTION: the extra cells of that measurement toggled once per clock.
E_TOGGLE_ICE40 = (641.3e-6 - 613.5e-6) / (228 - 32) / 12e6 * _ICE40_MEAS_V
#: energy of one DSP multiply: DSP design minus the 12 MHz counter baseline, (882 - 645) uA at
#: 12 MHz × 1.219 V = 24.1 pJ. ASSUMPTION: the DSP multiplied on every clock in that test.
E_DSP_ICE40 = (882e-6 - 645e-6) / 12e6 * _ICE40_MEAS_V
#: Xilinx 28 nm, Zynq power spreadsheet as quoted by D. J. Greaves (Cambridge course notes):
#: 23 pJ per DSP multiply; RAMB18x2 (36 Kbit) read 8.5 pJ, write about 10 % less.
E_DSP_XILINX28 = 23e-12
E_BRAM_READ_XILINX28 = 8.5e-12
E_BRAM_WRITE_XILINX28 = 0.9 * 8.5e-12
#: AMD XPE's default toggle rate ("one transition every eight cycles"), used as the background
#: activity of the clocked logic that the simulation's counts do not cover.
IDLE_TOGGLE = 0.125
#: ASSUMPTION: an output pin with ~10 pF load (pin + trace + the FTDI input) at 3.3 V draws
#: C·V² = 109 pJ per 0→1 transition from VCCIO (physics: E = C·V² per charge/discharge pair);
#: a UART bit has on average 1/2 rising transition.
E_IO_TOGGLE = 10e-12 * 3.3 ** 2 * 0.5
#: ASSUMPTION: bits that switch per event (neuron index + time + kind + handshake), a typical
#: event width of the generated streams.
EVENT_BITS = 16


@dataclass(frozen=True)
class Device:
    """Per-device power figures; ``assumptions`` lists the ones that are not sourced figures."""

    name: str
    static_w: float
    e_clock_base: float
    e_toggle: float
    e_dsp: float
    e_bram_read: float
    e_bram_write: float
    assumptions: tuple[str, ...] = ()
    #: the constant behind ``static_w``, as :func:`estimate` names it when static power dominates
    static_source: str = "static_w"


# iCE40 UltraPlus datasheet FPGA-DS-02008, Table 4.6: core standby current ICCSTDBY 75 uA typ at
# VCC 1.2 V, 25 C (measured blank design: 85.6 uA at 1.219 V, tinyvision-ai-inc/ice40_power).
_ICE40_STATIC = 75e-6 * 1.2
# Lattice ECP5 datasheet, "Supply Current (Static)": LFE5U-25F ICC 77.0 mA typ (VCC 1.1 V),
# ICCAUX 16.0 mA (VCCAUX 2.5 V), ICCIO 0.5 mA per bank (3.3 V).
_ECP5_25F_STATIC = 77.0e-3 * 1.1 + 16.0e-3 * 2.5
_ECP5_ICCIO_BANK = 0.5e-3 * 3.3
# ASSUMPTION: the LFE5U-85F core static current is the 25F's scaled by LUT count (83640 / 24288),
# aux current unscaled; the 85F row of the same table was not found.
_ECP5_85F_STATIC = 77.0e-3 * 1.1 * (83640 / 24288) + 16.0e-3 * 2.5
# Xilinx DS181, Table 7 (quoted by a third party: verify): XC7A35T ICCINTQ 95 mA typ at 85 C
# junction (VCCINT 1.0 V), ICCAUXQ 22 mA (VCCAUX 1.8 V), ICCBRAMQ 2 mA (VCCBRAM 1.0 V).
_XC7A35T_STATIC = 95e-3 * 1.0 + 22e-3 * 1.8 + 2e-3 * 1.0

DEVICES: dict[str, Device] = {
    "ice40up5k": Device(
        name="Lattice iCE40 UltraPlus UP5K", static_w=_ICE40_STATIC,
        static_source="_ICE40_STATIC (UP5K ICCSTDBY 75 uA x 1.2 V, datasheet)",
        e_clock_base=E_CLOCK_BASE_ICE40, e_toggle=E_TOGGLE_ICE40, e_dsp=E_DSP_ICE40,
        e_bram_read=E_BRAM_READ_XILINX28, e_bram_write=E_BRAM_WRITE_XILINX28,
        assumptions=(
            "iCE40 EBR read/write energy taken from Xilinx 28 nm RAMB36 figures (8.5 / 7.65 pJ, "
            "Greaves); no Lattice per-access figure was found",
            "logic-cell toggle energy 14.4 fJ assumes the cells of the tinyvision 32-vs-228-cell "
            "measurement toggled once per clock",
        )),
    "ecp5-85f": Device(
        name="Lattice ECP5 LFE5U-85F", static_w=_ECP5_85F_STATIC + 7 * _ECP5_ICCIO_BANK,
        static_source="_ECP5_85F_STATIC (25F core ICC 77 mA scaled by LUT count x3.44, an assumption)",
        # ASSUMPTION: ECP5 and iCE40 UltraPlus are both 40 nm; per-cycle and per-toggle energies
        # are the iCE40 measurements scaled by (1.1 V / 1.219 V)^2.
        e_clock_base=E_CLOCK_BASE_ICE40 * (1.1 / _ICE40_MEAS_V) ** 2,
        e_toggle=E_TOGGLE_ICE40 * (1.1 / _ICE40_MEAS_V) ** 2,
        e_dsp=E_DSP_ICE40 * (1.1 / _ICE40_MEAS_V) ** 2,
        e_bram_read=E_BRAM_READ_XILINX28, e_bram_write=E_BRAM_WRITE_XILINX28,
        assumptions=(
            "ECP5 LFE5U-85F static power: the LFE5U-25F datasheet core current (77 mA) scaled by "
            "LUT count (x3.44) plus ICCAUX 16 mA and 7 banks x ICCIO 0.5 mA; the 85F figure was not found",
            "ECP5 clock, logic-toggle and DSP energies: iCE40 UP5K measurements (same 40 nm node) "
            "scaled by (1.1 V / 1.219 V)^2",
            "ECP5 EBR read/write energy taken from Xilinx 28 nm RAMB36 figures (8.5 / 7.65 pJ, Greaves)",
        )),
    "xc7a35t": Device(
        name="Xilinx Artix-7 XC7A35T", static_w=_XC7A35T_STATIC,
        static_source="_XC7A35T_STATIC (DS181 ICCINTQ 95 mA + ICCAUXQ 22 mA)",
        # ASSUMPTION: clock-base and toggle energies are the iCE40 figures scaled by (1.0/1.219)^2.
        e_clock_base=E_CLOCK_BASE_ICE40 * (1.0 / _ICE40_MEAS_V) ** 2,
        e_toggle=E_TOGGLE_ICE40 * (1.0 / _ICE40_MEAS_V) ** 2,
        e_dsp=E_DSP_XILINX28, e_bram_read=E_BRAM_READ_XILINX28, e_bram_write=E_BRAM_WRITE_XILINX28,
        assumptions=(
            "XC7A35T static figures are DS181 Table 7 as quoted by a third party (typ at 85 C junction)",
            "Artix-7 clock-base and logic-toggle energies: iCE40 UP5K measurements scaled by "
            "(1.0 V / 1.219 V)^2 (no 28 nm per-cell figure found)",
        )),
}

# The SC-TTFS paper's normalised energy (PAPER_CONSTANTS, paper_energy) is computed only in
# snnfpga.metrics.energy; it is re-exported here for the callers of this module.

#: per-frame activity counts :func:`estimate` reads (missing ones count as 0 and are reported)
ACTIVITY_KEYS = ("memory_reads", "memory_writes", "accumulator_updates", "events", "multiplies",
                 "uart_bits")


# --------------------------------------------------------------------------- model
def device_for(device) -> Device:
    """The :class:`Device` for a Device, a :data:`DEVICES` key, or a board (a
    :class:`~snnfpga.boards.registry.Board`, its name or its FPGA's name), resolved through
    the board registry's ``power_device`` (the one place a board names its power model)."""
    if isinstance(device, Device):
        return device
    if isinstance(device, Board):
        if device.power_device in DEVICES:
            return DEVICES[device.power_device]
        device = device.name
    key = str(device).strip().lower()
    if key in DEVICES:
        return DEVICES[key]
    for board in BOARDS.values():
        if key in (board.name, board.device.lower()) and board.power_device in DEVICES:
            return DEVICES[board.power_device]
    raise BadOption(f"unknown power device {device!r}; known: {', '.join(sorted(DEVICES))} "
                    f"or a board: {', '.join(sorted(BOARDS))}")


def estimate(device, resources: Mapping | None, activity: Mapping[str, float], fmax_mhz: float,
             fps: float, *, acc_bits: int = 16) -> dict:
    """Power breakdown for ``device`` running at ``fmax_mhz`` (the clock actually used) and ``fps``.

    Parameters
    ----------
    device : str, Board or Device
        ``"ice40up5k"``, ``"ecp5-85f"``, ``"xc7a35t"``, or a board (see :func:`device_for`).
    resources : mapping or None
        ``{"LUT": {"used": n, …}, …}`` from the build (or plain counts); used LUTs set the
        background logic power.
    activity : mapping
        Per-frame counts (see :data:`ACTIVITY_KEYS`), e.g. from simulation or
        :func:`activity_from_reference`. ``acc_bits`` in it (or the argument) is the mean
        accumulator width.
    fmax_mhz : float
        Clock frequency the design runs at, MHz.
    fps : float
        Frames per second.

    Returns
    -------
    dict
        ``static_w, memories_w, logic_w, io_w, total_w, fps_per_w, energy_per_frame_j,
        assumptions`` (every assumption the figures rest on), and the static / dynamic split
        of :func:`energy_split` (``fps_per_w_static``, ``fps_per_w_dynamic``,
        ``dynamic_energy_per_frame_nj``, ``dominant``, ...).
    """
    dev = device_for(device)
    if fps < 0 or fmax_mhz < 0:
        raise ValueError(f"fps and fmax_mhz must be non-negative, not {fps!r} / {fmax_mhz!r}")
    f_clk = fmax_mhz * 1e6
    assumptions = list(dev.assumptions)
    missing = [k for k in ACTIVITY_KEYS if k not in activity]
    if missing:
        assumptions.append(f"activity counts not given, taken as 0: {', '.join(missing)}")
    a = {k: float(activity.get(k, 0)) for k in ACTIVITY_KEYS}
    acc_bits = int(activity.get("acc_bits", acc_bits))
    luts = resource_used(resources, "LUT") or 0
    if not resources:
        assumptions.append("no resource counts: background logic power left out")

    static_w = dev.static_w
    memories_w = fps * (a["memory_reads"] * dev.e_bram_read + a["memory_writes"] * dev.e_bram_write)
    clock_w = f_clk * (dev.e_clock_base + luts * dev.e_toggle * IDLE_TOGGLE)
    # a build that placed no DSP block multiplies in logic cells (yosys' DSP rule left the products
    # there, boards.fit.product_blocks): no per-multiply figure of that is sourced, so the DSP's
    # stands in, and the term says so
    in_logic = a["multiplies"] > 0 and resource_used(resources, "DSP") == 0
    mul_term = "E_dsp (multiplies, in logic cells here: the DSP figure stands in)" if in_logic else "E_dsp (multiplies)"
    if in_logic:
        assumptions.append("the multiplies are in logic cells (no DSP block built); each is charged E_dsp, "
                           "the measured energy of a DSP multiply (the iCE40 test's logic multiplier drew "
                           "1.5x more, but for an unstated width)")
    compute_w = fps * ((a["accumulator_updates"] * acc_bits + a["events"] * EVENT_BITS) * dev.e_toggle
                       + a["multiplies"] * dev.e_dsp)
    logic_w = clock_w + compute_w
    io_w = fps * a["uart_bits"] * E_IO_TOGGLE
    total_w = static_w + memories_w + logic_w + io_w
    assumptions += [
        f"background toggle rate of clocked logic {IDLE_TOGGLE:.1%} (AMD XPE default)",
        f"{EVENT_BITS} bits switch per spike event; an accumulator update switches acc_bits={acc_bits} cells",
        "UART pin load 10 pF at 3.3 V (E = C V^2 per rising edge)",
    ]
    terms = {  # watts per constant: what each figure below is most sensitive to
        dev.static_source: static_w,
        "E_clock_base (clock tree and counters, per cycle)": f_clk * dev.e_clock_base,
        "E_toggle x IDLE_TOGGLE (background toggling of the used LUTs)": f_clk * luts * dev.e_toggle * IDLE_TOGGLE,
        "E_toggle (accumulator and event bits switched per frame)":
            fps * (a["accumulator_updates"] * acc_bits + a["events"] * EVENT_BITS) * dev.e_toggle,
        mul_term: fps * a["multiplies"] * dev.e_dsp,
        "E_bram_read (memory reads)": fps * a["memory_reads"] * dev.e_bram_read,
        "E_bram_write (memory writes)": fps * a["memory_writes"] * dev.e_bram_write,
        "E_IO_TOGGLE (UART pin)": io_w,
    }
    split = energy_split(terms, static_key=dev.static_source, fps=fps)
    return {
        **split,
        "device": dev.name,
        "clock_mhz": fmax_mhz,
        "fps": fps,
        "static_w": static_w,
        "memories_w": memories_w,
        "logic_w": logic_w,
        "logic_clock_w": clock_w,
        "logic_compute_w": compute_w,
        "io_w": io_w,
        "total_w": total_w,
        "fps_per_w": fps / total_w if total_w > 0 else math.inf,
        "energy_per_frame_j": total_w / fps if fps > 0 else math.inf,
        "dynamic_energy_per_frame_j": (total_w - static_w) / fps if fps > 0 else math.inf,
        "assumptions": assumptions,
    }


def energy_split(terms: Mapping[str, float], *, static_key: str, fps: float) -> dict:
    """Frames per joule with the static and dynamic parts apart, and the dynamic energy per frame.

    ``terms`` are watts per constant (``static_key`` the static one). Published SNN accelerator
    figures are usually dynamic only (e.g. nJ/image), so the split is what compares with them;
    each figure names the constant whose term is largest in it (``dominant``), the first one to
    check when the figure matters.

    Returns ``dynamic_w`` (W), ``fps_per_w_static`` (frames/J were the static power the only
    draw), ``fps_per_w_dynamic`` (frames/J of the dynamic power alone), ``static_energy_per_frame_nj``,
    ``dynamic_energy_per_frame_nj`` (nJ), ``power_terms_w`` (``terms``) and ``dominant``:
    ``{figure: constant}`` for ``fps_per_w``, ``fps_per_w_static``, ``fps_per_w_dynamic`` and
    ``dynamic_energy_per_frame_nj``.
    """
    static_w = float(terms[static_key])
    dynamic = {k: float(v) for k, v in terms.items() if k != static_key}
    dynamic_w = sum(dynamic.values())
    top_dynamic = max(dynamic, key=dynamic.get) if dynamic else static_key
    top_total = max(terms, key=lambda k: float(terms[k]))

    def per_j(w: float) -> float:
        return fps / w if w > 0 else math.inf

    def nj(w: float) -> float:
        return 1e9 * w / fps if fps > 0 else math.inf

    return {"dynamic_w": dynamic_w, "fps_per_w_static": per_j(static_w), "fps_per_w_dynamic": per_j(dynamic_w),
            "static_energy_per_frame_nj": nj(static_w), "dynamic_energy_per_frame_nj": nj(dynamic_w),
            "power_terms_w": {k: float(v) for k, v in terms.items()},
            "dominant": {"fps_per_w": top_total, "fps_per_w_static": static_key,
                         "fps_per_w_dynamic": top_dynamic, "dynamic_energy_per_frame_nj": top_dynamic}}


def activity_from_reference(net, result=None, *, lanes: int = 1, frames=None, decode: str = "auto") -> dict:
    """Per-frame activity counts estimated from the IR and the reference's spikes.

    ``result`` is a :class:`snnfpga.reference.Result` (spike counts per stage) and ``frames``
    the frames it ran (a direct first layer counts only its non-zero pixels, as the hardware
    does); without ``result`` every neuron is assumed to fire once per frame, without
    ``frames`` every direct pixel is counted (assumptions returned under ``"assumptions"``).
    Synaptic events come from :mod:`snnfpga.metrics.activity`. Event-driven accumulation: each
    synaptic event reads a weight (``lanes`` weights a word) and read-modify-writes a partial
    sum; it is multiplied only in a layer whose hardware multiplies per synapse (the direct
    first layer's ``W·x``, and with ``decode="arrival"`` each ``W·dec`` unless the decode LUT
    is powers of two, then a shift); the encode pass reads each membrane once per frame (per step for
    rate coding). Accumulator widths and multipliers are the generator's
    (:func:`snnfpga.rtl_gen.describe`); the UART bytes are :class:`~.protocol.Protocol`'s.
    Returns the :data:`ACTIVITY_KEYS` counts plus ``acc_bits``, ``synaptic_events`` and
    ``assumptions``.
    """
    from snnfpga.metrics.activity import event_counts, synaptic_events_from_counts

    assumptions = []
    if result is None:
        assumptions.append("no reference run: every neuron assumed to fire once per frame")
    elif frames is None and net.input.input_coding == "direct":
        assumptions.append("no frames given: every direct pixel counted as non-zero (the hardware "
                           "skips zero pixels)")
    inputs, stage = event_counts(net, frames, result)
    per_layer = synaptic_events_from_counts(net, inputs, stage).mean(axis=0)
    events = sum(float(c.sum(axis=1).mean()) for c in stage.values())
    if net.input.input_coding == "spikes":
        events += float(inputs.sum(axis=1).mean())
    steps = net.timesteps if net.coding == "rate" else 1
    layers, note = _hardware_layers(net, lanes, decode)
    if note:
        assumptions.append(note)
    syn = reads = writes = mults = acc_weighted = 0.0
    for hw, s in zip(layers, per_layer):
        s = float(s)
        syn += s
        reads += s / lanes + s  # weight words (lanes weights per word) + partial-sum read
        writes += s
        reads += hw["encode_neurons"] * steps  # encode pass
        if net.coding == "rate":
            writes += hw["encode_neurons"] * steps
        if hw["multiplies_per_synapse"]:
            mults += s
        acc_weighted += s * hw["acc_bits"]
    proto = Protocol.for_network(net)
    assumptions.append("activity from the reference model's spike counts, not from RTL simulation")
    return {"memory_reads": reads, "memory_writes": writes,
            "accumulator_updates": syn, "events": events, "multiplies": mults,
            "uart_bits": 10 * (proto.request_bytes + proto.response_bytes), "synaptic_events": syn,
            "acc_bits": int(round(acc_weighted / syn)) if syn else 16, "assumptions": assumptions}


def _hardware_layers(net, lanes: int, decode: str = "auto") -> tuple[list[dict], str | None]:
    """Per weighted layer of ``net`` (residual branches included, in order): ``n_out``,
    ``acc_bits``, whether it multiplies per synapse (fed direct pixels, or scaling on arrival,
    with multipliers: ``W·x``, ``W·dec``) and ``encode_neurons``, the membranes its core's
    encode pass reads (an add core's once, with its first branch), from the generator's
    description; and an assumption to report where the generator does not build ``net`` (then
    from the IR)."""
    from snnfpga.errors import Unsupported

    weighted = [i for i, layer in enumerate(net.layers) if layer.weighted]
    core_of = {i: (net.branch_of(i) if net.branch_of(i) is not None else i) for i in weighted}
    first = {}
    for i in weighted:
        first.setdefault(core_of[i], i)
    try:
        from snnfpga.rtl_gen import describe

        hw = describe(net, lanes=lanes, decode=decode)
    except Unsupported as e:
        out = [{"n_out": net.layers[i].n_out, "acc_bits": net.layers[i].acc_bits,
                "multiplies_per_synapse": _reads_pixels(net, i) and net.input.input_coding == "direct",
                "encode_neurons": net.layers[i].n_out if first[core_of[i]] == i else 0} for i in weighted]
        return out, (f"no hardware description ({e}): accumulator widths from the IR, a direct "
                     "first layer assumed to multiply per synapse")
    cores = {layer.index: layer for layer in hw.layers}
    out = []
    for i in weighted:
        core = cores[core_of[i]]
        direct = _reads_pixels(net, i) and hw.input_coding == "direct"
        out.append({"n_out": net.layers[i].n_out, "acc_bits": core.acc_bits,
                    "multiplies_per_synapse": core.multipliers > 0 and (direct or core.decode == "arrival"),
                    "encode_neurons": core.n_out if first[core_of[i]] == i else 0})
    return out, None


def _reads_pixels(net, index: int) -> bool:
    """Whether weighted layer ``index`` reads the input (through wiring only)."""
    src = net.sources(index)[0]
    while src != -1 and not (net.layers[src].weighted or net.layers[src].kind == "add"):
        src = net.sources(src)[0]
    return src == -1
