"""Run a board at the clock its design closes at: PLL settings, the clock domain, ``--clock``.

A board's oscillator (25 MHz on the ULX3S, 12 MHz on the iCEBreaker) is rarely the speed the
placed design can run at (nextpnr reported 52 and 31 MHz for the digits network). This module

* computes PLL divider settings in Python, as Project Trellis' ``ecppll`` (ECP5 ``EHXPLLL``)
  and icestorm's ``icepll`` (iCE40 ``SB_PLL40_PAD``) do, but for the highest frequency *at or
  below* a target (timing must hold; neither tool guarantees that, both pick the nearest),
  and checks the frequency the dividers give;
* builds the ``sync`` clock domain from that PLL (:class:`ClockGenerator`, passed to
  :class:`~.uart_top.BoardTop` as ``clock``: the UART divisor follows its frequency);
* runs ``--clock auto`` (:func:`build_at_clock`): a first build at the oscillator gives fmax,
  a second one runs the PLL at no more than ``margin × fmax``; if that build misses timing at
  the PLL's frequency, the oscillator build is kept (and said so).

amaranth 0.5 and amaranth-boards have no PLL helper for these families (their platforms only
buffer the oscillator: ``create_missing_domain``), hence the primitives here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth import Elaboratable

from snnfpga.errors import BadOption

from .registry import Board, get_board

__all__ = ["PLLSettings", "ClockPlan", "ClockGenerator", "ecp5_pll", "ice40_pll", "pll_settings",
           "plan_clock", "parse_clock", "build_at_clock", "AUTO_MARGIN", "ECP5_LIMITS", "ICE40_LIMITS"]

#: ``--clock auto`` runs the PLL at no more than this fraction of the first build's fmax:
#: a second placement of the same design lands within a few percent of the first, so 10 %
#: leaves room for that and for temperature/voltage (nextpnr's figure is worst-case already).
AUTO_MARGIN = 0.9
#: within this fraction above the oscillator, a PLL is not worth its lock time and risk
_OSC_IS_CLOSE = 0.05

#: ECP5 EHXPLLL operating ranges, MHz, as ecppll (prjtrellis libtrellis/tools/ecppll.cpp) uses
#: them (Lattice FPGA-DS-02012 "sysCLOCK PLL Timing": f_IN 8-400, f_OUT 3.125-400 (ecppll: 10),
#: f_VCO 400-800, f_PFD 3.125-400); dividers CLKI_DIV 1-128, CLKFB_DIV 1-80, CLKOP_DIV 1-128
ECP5_LIMITS = {"in": (8.0, 400.0), "out": (10.0, 400.0), "vco": (400.0, 800.0), "pfd": (3.125, 400.0),
               "refdiv": 128, "fbdiv": 80, "outdiv": 128}
#: iCE40 SB_PLL40 ranges, MHz, as icepll (icestorm icepll/icepll.cc) uses them (Lattice
#: "iCE40 sysCLOCK PLL Design and Usage Guide", TN1251): f_IN 10-133, f_OUT 16-275, f_VCO
#: 533-1066, f_PFD 10-133; simple feedback: DIVR 0-15, DIVF 0-127, DIVQ 1-6
ICE40_LIMITS = {"in": (10.0, 133.0), "out": (16.0, 275.0), "vco": (533.0, 1066.0), "pfd": (10.0, 133.0),
                "divr": 15, "divf": 127, "divq": (1, 6)}


@dataclass(frozen=True)
class PLLSettings:
    """One PLL configuration: the input, the output it gives, the VCO and PFD it runs at, and
    the family's divider parameters (``params``: names as the primitive's parameters)."""

    family: str
    f_in_mhz: float
    f_out_mhz: float
    f_vco_mhz: float
    f_pfd_mhz: float
    params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Recompute the output from the dividers and check every range (raises ValueError)."""
        lim = ECP5_LIMITS if self.family == "ecp5" else ICE40_LIMITS
        p = self.params
        if self.family == "ecp5":
            pfd = self.f_in_mhz / p["CLKI_DIV"]
            out = pfd * p["CLKFB_DIV"]
            vco = out * p["CLKOP_DIV"]
        else:
            pfd = self.f_in_mhz / (p["DIVR"] + 1)
            vco = pfd * (p["DIVF"] + 1)
            out = vco / 2 ** p["DIVQ"]
        for name, value in (("out", out), ("vco", vco), ("pfd", pfd), ("in", self.f_in_mhz)):
            lo, hi = lim[name]
            if not lo <= value <= hi:
                raise ValueError(f"{self.family} PLL f_{name} {value:.4f} MHz outside [{lo}, {hi}] MHz")
        if not math.isclose(out, self.f_out_mhz, rel_tol=1e-9):
            raise ValueError(f"dividers give {out} MHz, not the {self.f_out_mhz} MHz recorded")


def ecp5_pll(f_in_mhz: float, f_max_mhz: float) -> PLLSettings:
    """``EHXPLLL`` settings for the highest CLKOP at or below ``f_max_mhz`` from ``f_in_mhz``.

    CLKOP feeds back (``FEEDBK_PATH="CLKOP"``), so ``f_out = f_in / CLKI_DIV × CLKFB_DIV`` and
    ``f_vco = f_out × CLKOP_DIV``; ties go to the VCO nearest 600 MHz (mid-range, as ecppll).
    ``CLKOP_CPHASE = CLKOP_DIV − 1`` is phase 0 (as Lattice's Clarity writes it).
    """
    lim = ECP5_LIMITS
    _check_in(f_in_mhz, f_max_mhz, lim, "ecp5")
    best = None
    for refdiv in range(1, lim["refdiv"] + 1):
        pfd = f_in_mhz / refdiv
        if not lim["pfd"][0] <= pfd <= lim["pfd"][1]:
            continue
        for fbdiv in range(1, lim["fbdiv"] + 1):
            out = pfd * fbdiv
            if out > f_max_mhz * (1 + 1e-12) or not lim["out"][0] <= out <= lim["out"][1]:
                continue
            outdiv = _outdiv_near_600(out, lim)
            if outdiv is None:
                continue
            vco = out * outdiv
            key = (out, -abs(vco - 600.0))
            if best is None or key > best[0]:
                best = (key, refdiv, fbdiv, outdiv, pfd, vco)
    if best is None:
        raise BadOption(f"no ECP5 PLL setting gives {lim['out'][0]}..{f_max_mhz} MHz from {f_in_mhz} MHz")
    _, refdiv, fbdiv, outdiv, pfd, vco = best
    s = PLLSettings("ecp5", f_in_mhz, f_in_mhz / refdiv * fbdiv, vco, pfd,
                    {"CLKI_DIV": refdiv, "CLKFB_DIV": fbdiv, "CLKOP_DIV": outdiv, "CLKOP_CPHASE": outdiv - 1,
                     "CLKOP_FPHASE": 0})
    s.check()
    return s


def _outdiv_near_600(out: float, lim) -> int | None:
    ok = [d for d in range(1, lim["outdiv"] + 1) if lim["vco"][0] <= out * d <= lim["vco"][1]]
    return min(ok, key=lambda d: abs(out * d - 600.0)) if ok else None


def ice40_pll(f_in_mhz: float, f_max_mhz: float) -> PLLSettings:
    """``SB_PLL40_*`` settings (simple feedback) for the highest PLLOUT at or below ``f_max_mhz``.

    ``f_pfd = f_in / (DIVR + 1)``, ``f_vco = f_pfd × (DIVF + 1)``, ``f_out = f_vco / 2^DIVQ``;
    ``FILTER_RANGE`` from the PFD frequency as icepll picks it.
    """
    lim = ICE40_LIMITS
    _check_in(f_in_mhz, f_max_mhz, lim, "ice40")
    best = None
    for divr in range(lim["divr"] + 1):
        pfd = f_in_mhz / (divr + 1)
        if not lim["pfd"][0] <= pfd <= lim["pfd"][1]:
            continue
        for divf in range(lim["divf"] + 1):
            vco = pfd * (divf + 1)
            if not lim["vco"][0] <= vco <= lim["vco"][1]:
                continue
            for divq in range(lim["divq"][0], lim["divq"][1] + 1):
                out = vco / 2 ** divq
                if out > f_max_mhz * (1 + 1e-12) or not lim["out"][0] <= out <= lim["out"][1]:
                    continue
                key = (out, -divr)  # ties: the higher PFD (less jitter)
                if best is None or key > best[0]:
                    best = (key, divr, divf, divq, pfd, vco)
    if best is None:
        raise BadOption(f"no iCE40 PLL setting gives {lim['out'][0]}..{f_max_mhz} MHz from {f_in_mhz} MHz")
    (out, _), divr, divf, divq, pfd, vco = best
    s = PLLSettings("ice40", f_in_mhz, out, vco, pfd,
                    {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": _ice40_filter_range(pfd)})
    s.check()
    return s


def _ice40_filter_range(pfd_mhz: float) -> int:
    """icepll's loop-filter choice by PFD frequency."""
    for i, edge in enumerate((17, 26, 44, 66, 101)):
        if pfd_mhz < edge:
            return i + 1
    return 6


def _check_in(f_in: float, f_max: float, lim, family: str) -> None:
    if not lim["in"][0] <= f_in <= lim["in"][1]:
        raise BadOption(f"{family} PLL input must be {lim['in'][0]}..{lim['in'][1]} MHz, not {f_in!r}")
    if not (isinstance(f_max, (int, float)) and f_max > 0):
        raise BadOption(f"PLL target must be a positive frequency in MHz, not {f_max!r}")


def pll_settings(family: str, f_in_mhz: float, f_max_mhz: float) -> PLLSettings:
    """The family's PLL settings (:func:`ecp5_pll` or :func:`ice40_pll`)."""
    if family == "ecp5":
        return ecp5_pll(f_in_mhz, f_max_mhz)
    if family == "ice40":
        return ice40_pll(f_in_mhz, f_max_mhz)
    raise BadOption(f"no PLL support for the {family} family (ECP5 and iCE40 only)")


@dataclass(frozen=True)
class ClockPlan:
    """The clock a build runs at: the oscillator (``source="osc"``) or a PLL from it."""

    source: str
    osc_mhz: float
    mhz: float
    pll: PLLSettings | None = None

    @property
    def hz(self) -> float:
        return self.mhz * 1e6

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_clock(board: Board | str, mhz: float | None = None) -> ClockPlan:
    """The oscillator (``mhz`` None) or the PLL setting closest to ``mhz`` from below."""
    if not isinstance(board, Board):
        board = get_board(board)
    osc = board.clock_hz / 1e6
    if mhz is None:
        return ClockPlan("osc", osc, osc)
    pll = pll_settings(board.family, osc, float(mhz))
    return ClockPlan("pll", osc, pll.f_out_mhz, pll)


def parse_clock(text: str) -> str | float:
    """``--clock``'s value: ``"auto"``, ``"osc"`` or a frequency in MHz (a positive number)."""
    t = str(text).strip().lower()
    if t in ("auto", "osc"):
        return t
    try:
        v = float(t.removesuffix("mhz"))
    except ValueError:
        v = float("nan")
    if not (math.isfinite(v) and v > 0):
        raise BadOption(f"--clock must be auto, osc or a frequency in MHz, not {text!r}")
    return v


class ClockGenerator(Elaboratable):
    """The ``sync`` clock domain's clock and reset from the board oscillator through the plan's PLL
    (the domain itself is defined by :class:`~.uart_top.BoardTop`, its user).

    Reset is held until the PLL reports lock and then for 15 µs more (amaranth's iCE40 platform
    holds reset that long after configuration: its block RAMs read zeros for ~3 µs). The
    platform gets a clock constraint at the PLL's frequency, so nextpnr checks timing there.
    ``frequency`` (Hz) is what :class:`~.uart_top.BoardTop` divides for the baud rate.
    """

    def __init__(self, plan: ClockPlan):
        if plan.pll is None:
            raise ValueError("ClockGenerator needs a PLL plan (the oscillator needs no generator)")
        self.plan = plan
        self.frequency = plan.hz

    def elaborate(self, platform):
        from amaranth import ClockDomain, ClockSignal, Const, Instance, Module, ResetSignal, Signal
        from amaranth.lib import io

        m = Module()
        pll = self.plan.pll
        clk_out, lock = Signal(), Signal()
        clk_io = platform.request(platform.default_clk, dir="-")
        if pll.family == "ecp5":
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{pll.f_in_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.f_out_mhz:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_FEEDBK_PATH="CLKOP",
                **{f"p_{k}": v for k, v in pll.params.items()},
                i_CLKI=clk_buf.i, i_CLKFB=clk_out, i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1), i_PHASESTEP=Const(1),
                i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
                o_CLKOP=clk_out, o_LOCK=lock)
        else:
            # the iCEBreaker's oscillator pin (35) is a PLL pad: SB_PLL40_PAD takes it directly
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                p_DIVR=pll.params["DIVR"], p_DIVF=pll.params["DIVF"], p_DIVQ=pll.params["DIVQ"],
                p_FILTER_RANGE=pll.params["FILTER_RANGE"],
                io_PACKAGEPIN=clk_io.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk_out, o_LOCK=lock)
        # "sync" itself is defined by the caller (BoardTop: amaranth 0.6 wants a domain defined
        # at or above its users); this drives its clock and reset
        m.domains.clock_por = cd_por = ClockDomain("clock_por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("sync").eq(clk_out), cd_por.clk.eq(clk_out)]
        delay = max(1, int(15e-6 * self.frequency))
        timer = Signal(range(delay + 1))
        with m.If(~lock):
            m.d.clock_por += timer.eq(0)
        with m.Elif(timer != delay):
            m.d.clock_por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(timer != delay)
        # no add_clock_constraint here: nextpnr derives the output's constraint from the input's
        # and the dividers (its "Derived frequency constraint"), an independent check of them
        # that :func:`.build.build` compares with the plan
        return m


def build_at_clock(net, board: Board | str, out_dir, *, clock: str | float = "auto",
                   margin: float = AUTO_MARGIN, **build_kw) -> dict:
    """:func:`.build.build` at the requested clock: ``"osc"`` (the oscillator), a frequency in
    MHz (the PLL setting nearest it from below), or ``"auto"``.

    ``auto``: build at the oscillator (``<out>/osc``), then, if ``margin × fmax`` is more than
    5 % away from the oscillator, build again with the PLL at the highest setting at or below
    it (``<out>/pll``). That result is returned if its own fmax meets the PLL's frequency;
    otherwise the oscillator build is returned and a note says why. The result's ``clock``
    holds the plan (:class:`ClockPlan`'s JSON) and ``clock_first_build`` (auto only) the first
    build's fmax and clock.
    """
    from .build import build

    if not isinstance(board, Board):
        board = get_board(board)
    if not 0 < margin <= 1:
        raise BadOption(f"margin must be in (0, 1], not {margin!r}")
    out = Path(out_dir)
    if clock == "osc":
        return _with_plan(build(net, board, out, **build_kw), plan_clock(board))
    if clock != "auto":
        plan = plan_clock(board, float(clock))
        return _with_plan(build(net, board, out, clock=plan, **build_kw), plan)
    if board.toolchain != "open" or not build_kw.get("do_build", True):
        r = _with_plan(build(net, board, out, **build_kw), plan_clock(board))
        r["notes"].append("clock auto: no place and route, so no fmax; the oscillator is kept")
        return r
    first = _with_plan(build(net, board, out / "osc", **build_kw), plan_clock(board))
    osc = first["clock_mhz"]
    fmax = first.get("fmax_mhz")
    summary = {"clock_mhz": osc, "fmax_mhz": fmax, "out_dir": first["out_dir"]}
    if not fmax:
        first["notes"].append("clock auto: nextpnr gave no fmax; the oscillator is kept")
        return first
    target = margin * fmax
    if osc <= target <= osc * (1 + _OSC_IS_CLOSE):
        first["notes"].append(f"clock auto: {margin:g} x fmax = {target:.2f} MHz is within "
                              f"{_OSC_IS_CLOSE:.0%} of the oscillator; no PLL")
        first["clock_first_build"] = summary
        return first
    try:
        plan = plan_clock(board, target)
    except BadOption as e:
        first["notes"].append(f"clock auto: {e}; the oscillator is kept")
        first["clock_first_build"] = summary
        return first
    second = _with_plan(build(net, board, out / "pll", clock=plan, **build_kw), plan)
    second["clock_first_build"] = summary
    if second.get("fmax_mhz") and second["fmax_mhz"] >= plan.mhz:
        second["notes"].append(f"clock auto: PLL at {plan.mhz:.3f} MHz (<= {margin:g} x fmax {fmax} MHz of the "
                               f"oscillator build); this build's fmax {second['fmax_mhz']} MHz meets it")
        return second
    first["clock_first_build"] = summary
    first["notes"].append(f"clock auto: the PLL build at {plan.mhz:.3f} MHz reached only "
                          f"{second.get('fmax_mhz')} MHz; the oscillator build is kept ({second['out_dir']})")
    return first


def _with_plan(result: dict, plan: ClockPlan) -> dict:
    result["clock"] = plan.to_json()
    return result
