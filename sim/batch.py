"""Many networks in one simulator build: random-network RTL checks at a feasible cost.

A Verilator model costs seconds to tens of seconds to build whatever its size, so checking
hundreds of random networks one build each is mostly compiling. Here several generated
``NetworkTop``s sit side by side in one Verilog top (:class:`MultiTop`): network ``k``'s ports
are ``n<k>__<port>`` and it has its own synchronous reset ``n<k>_rst`` (or-ed with ``rst``) so
one network can be reset mid-frame while the others run. The cocotb testbench
(:mod:`sim.tb_network`) drives them all concurrently on one clock; each network is then
compared with the integer reference exactly as a single one is (:func:`sim.report`: every
spike event of every stage, the output membranes, the class, the counters, the stream protocol).

:func:`make_case` turns a few drawn parameters (kind, coding, T, seed) into a small random
network and its stress options, so a hypothesis test and the soak (``benchmarks/soak_rtl.py``)
draw the same kind of case.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snnfpga.ir import Network, validate
from snnfpga.ir.network import max_timesteps as ir_max_timesteps

from . import SimulationReport, report, runner

__all__ = ["Case", "Outcome", "BatchResult", "KINDS", "CODINGS", "max_timesteps", "make_case", "generate", "build",
           "run", "check"]

KINDS = ("dense", "conv", "residual")
#: above this T, :func:`make_case` draws smaller networks
LARGE_T = 256
CODINGS = ("rate", "ttfs", "sc-ttfs")


def max_timesteps(coding: str) -> int:
    """The largest T the IR allows for ``coding`` (:func:`snnfpga.ir.network.max_timesteps`)."""
    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {CODINGS}, not {coding!r}")
    return ir_max_timesteps(coding)


@dataclass
class Case:
    """One network to check, its frames and how the testbench stresses it (phase 3)."""

    net: Network
    frames: np.ndarray
    lanes: int = 1
    seed: int = 0
    gaps: bool = True
    backpressure: bool = True
    long_gaps: bool = False
    #: probability of a long result stall when a beat is offered (0: none)
    stalls: float = 0.0
    #: frame indices preceded by a reset in the middle of a thrown-away frame
    resets: tuple[int, ...] = ()
    latency_frames: int = 1
    label: str = ""
    #: generate the hardware from this network instead (to prove a corrupted one is caught)
    rtl_net: Network | None = None
    #: a fault put into the harness's wrapper, to prove the checks can fail: ``"unsteady"``
    #: flips a bit of a result beat's payload once it has waited two cycles for ``ready``
    fault: str | None = None


@dataclass
class Outcome:
    """What the hardware did with one :class:`Case`."""

    case: Case
    report: SimulationReport | None
    obs: dict[str, Any] = field(default_factory=dict)
    #: reference spike events compared (all stages, all frames)
    events: int = 0
    #: everything wrong: mismatches, protocol and counter errors, a missing run
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def make_case(kind: str, coding: str, timesteps: int, *, seed: int, frames: int = 4, input_coding: str | None = None,
              lanes: int | None = None, stress: bool = True, resets: int = 1) -> Case:
    """A small random network (smaller above T = ``LARGE_T``) of ``kind`` (``dense``, ``conv`` (with a max pool now and then
    in TTFS) or ``residual``) in ``coding`` with T = ``timesteps``, ``frames`` random frames and,
    with ``stress``, input gaps (short and long), result back-pressure, long result stalls
    and ``resets`` mid-frame resets. Shapes, input coding and lanes come from ``seed`` unless given."""
    from snnfpga.testing import (random_conv_network, random_frames, random_maxpool_network, random_network,
                                 random_residual_network)

    from .tb_network import phases

    rng = np.random.default_rng(seed)
    # cost grows with T × neurons (rate: T steps a frame; (SC-)TTFS: T comparators a lane):
    # above T = LARGE_T the networks are smaller
    big = int(timesteps) > LARGE_T
    if input_coding is None:
        input_coding = ("direct", "spikes")[int(rng.integers(0, 2))]
    if lanes is None:
        lanes = int(rng.integers(1, 5))
    T = int(timesteps)
    label = f"{kind} {coding} {input_coding} T={T} lanes={lanes} seed={seed}"
    if kind == "dense":
        sizes = tuple(int(x) for x in rng.integers(1, 4 if big else 9, size=int(rng.integers(2, 4 if big else 5))))
        net = random_network(coding, sizes, timesteps=T, input_coding=input_coding,
                             weight_bits=int(rng.integers(2, 9)), input_bits=int(rng.integers(1, 9)),
                             extreme=bool(rng.random() < 0.2), seed=seed)
        label += f" sizes={sizes}"
    elif kind == "conv":
        in_shape = (1, 3, 3) if big else (int(rng.integers(1, 3)), int(rng.integers(3, 6)), int(rng.integers(3, 6)))
        n_classes = int(rng.integers(1, 4))
        if coding == "ttfs" and rng.random() < 0.3:
            k = int(rng.integers(2, 4))
            spec = (("conv2d", int(rng.integers(1, 3)), 3, 1, 1), ("maxpool2d", k, int(rng.integers(1, k + 1)), 0))
            net = random_maxpool_network(in_shape, spec, input_coding=input_coding, timesteps=T,
                                         n_classes=n_classes, seed=seed)
            label += " maxpool"
        else:
            net = random_conv_network(coding, in_shape, timesteps=T, input_coding=input_coding,
                                      n_classes=n_classes, seed=seed)
        label += f" in={in_shape}"
    elif kind == "residual":
        if rng.random() < 0.5:
            in_shape: tuple[int, ...] = (int(rng.integers(2, 4 if big else 9)),)
            blocks: tuple[tuple, ...] = (("dense", int(rng.integers(2, 4 if big else 7)), None),)
            stem = 0
            if coding == "rate" and input_coding == "direct":
                input_coding = "spikes"  # a rate add cannot read direct pixels
        else:
            c = 1 if big else int(rng.integers(1, 3))
            in_shape = (c, 3, 3) if big else (c, int(rng.integers(3, 5)), int(rng.integers(3, 5)))
            stem = 2 if coding == "rate" and input_coding == "direct" else 0
            # an identity shortcut keeps the channels of what the block reads (the stem's, if any)
            blocks = (("conv", stem or c, 1, "identity") if rng.random() < 0.5
                      else ("conv", int(rng.integers(1, 3)), 1, "conv"),)
        net = random_residual_network(coding, in_shape, blocks, stem=stem, input_coding=input_coding,
                                      timesteps=T, n_classes=int(rng.integers(1, 4)), seed=seed)
        label = f"{kind} {coding} {input_coding} T={T} lanes={lanes} seed={seed} in={in_shape}"
    else:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    validate(net)
    n = int(frames)
    x = random_frames(net, n, seed=seed + 1)
    # one latency frame, then streamed frames, then the stress phase (as the testbench splits them)
    k_lat, n_stream, _ = phases({"latency_frames": 1 if n >= 3 else 0, "gaps": stress}, n)
    reset_at: tuple[int, ...] = ()
    if stress and resets and n > k_lat + n_stream:  # resets go in the stress phase
        reset_at = tuple(sorted({int(i) for i in rng.integers(k_lat + n_stream, n, size=resets)}))
    return Case(net=net, frames=x, lanes=lanes, seed=seed, gaps=stress, backpressure=stress, long_gaps=stress,
                stalls=0.35 if stress else 0.0, resets=reset_at, latency_frames=k_lat, label=label)


def _multi_top(cases: list[Case]):
    """The Amaranth top holding every case's ``NetworkTop`` (ports ``n<k>__…``, reset ``n<k>_rst``)."""
    from amaranth.hdl import Module, Mux, ResetInserter, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from snnfpga.rtl_gen.top import NetworkTop

    class MultiTop(wiring.Component):
        def __init__(self, tops):
            self.tops = tops
            members = {}
            for k, top in enumerate(tops):
                members[f"n{k}"] = Out(top.signature)
                members[f"n{k}_rst"] = In(1)
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            for k, (top, case) in enumerate(zip(self.tops, cases)):
                m.submodules[f"n{k}"] = ResetInserter({"sync": getattr(self, f"n{k}_rst")})(top)
                outer = getattr(self, f"n{k}")
                if case.fault is None:
                    wiring.connect(m, wiring.flipped(outer), top)
                elif case.fault == "unsteady":
                    _connect_unsteady(m, outer, top)
                else:
                    raise ValueError(f"fault must be None or 'unsteady', not {case.fault!r}")
            return m

    def _connect_unsteady(m, outer, top):
        for name, member in top.signature.members.items():
            if name == "result":
                o, i = outer.result, top.result
                waited = Signal(2)
                with m.If(i.valid & ~i.ready):
                    m.d.sync += waited.eq(Mux(waited == 3, 3, waited + 1))
                with m.Else():
                    m.d.sync += waited.eq(0)
                m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready),
                             o.payload.eq(i.payload.as_value() ^ (waited >= 2))]
            elif member.is_port and member.flow == Out:
                m.d.comb += getattr(outer, name).eq(getattr(top, name))
            else:
                wiring.connect(m, wiring.flipped(getattr(outer, name)), getattr(top, name))

    tops = [NetworkTop(c.rtl_net if c.rtl_net is not None else c.net, lanes=c.lanes) for c in cases]
    return MultiTop(tops), tops


def generate(cases: list[Case], out_dir: str | Path, *, name: str = "snn_batch") -> tuple[Path, dict]:
    """Write ``out_dir/<name>.v`` holding every case's network; return it and its summary
    (``top``, and per network its ``prefix``, ``rst`` and the generator's own summary)."""
    from snnfpga.rtl_gen import emit

    multi, tops = _multi_top(cases)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = emit.convert(multi, name=name)  # portable: the same bytes (and build cache key) anywhere
    v = out_dir / f"{name}.v"
    v.write_text(text)
    summary = {"top": name, "networks": [
        {"prefix": f"n{k}__", "rst": f"n{k}_rst", "summary": top.description("snn_top").summary()}
        for k, top in enumerate(tops)]}
    v.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    return v, summary


def build(cases: list[Case], *, build_root: str | Path | None = None, opt: str | None = "-O0") -> runner.Build:
    """Generate and compile (Verilator) one model of every case (reused when already built)."""
    runner.prepare_simulator("verilator")
    with tempfile.TemporaryDirectory(prefix="snnfpga-batch-") as tmp:
        v, summary = generate(cases, tmp)
        return runner.build(v, summary, simulator="verilator", build_root=build_root, opt=opt)


def run(b: runner.Build, cases: list[Case], *, run_dir: str | Path | None = None,
        progress: bool = False) -> list[dict | None]:
    """Run the testbench on a model from :func:`build`; per case its observations (None: none written)."""

    nets = b.summary["networks"]
    if len(nets) != len(cases):
        raise ValueError(f"the model holds {len(nets)} networks, not {len(cases)}")
    run_dir = Path(run_dir) if run_dir is not None else b.directory / "runs" / uuid.uuid4().hex[:12]
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    specs = []
    for k, (case, spec) in enumerate(zip(cases, nets)):
        frames = np.asarray(case.frames).reshape(len(case.frames), -1).astype(np.int64)
        np.save(run_dir / f"frames{k}.npy", frames, allow_pickle=False)
        out = run_dir / f"observations{k}.json"
        if out.exists():
            out.unlink()
        specs.append({"prefix": spec["prefix"], "rst": spec["rst"], "summary": spec["summary"],
                      "frames": str(run_dir / f"frames{k}.npy"), "output": str(out), "seed": case.seed,
                      "gaps": case.gaps, "backpressure": case.backpressure, "long_gaps": case.long_gaps,
                      "stalls": case.stalls, "resets": list(case.resets),
                      "latency_frames": case.latency_frames, "timeout_cycles": None})
    config = {"networks": specs, "clock_period_ns": runner.CLOCK_PERIOD_NS, "progress": str(run_dir / "progress")}
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    log = run_dir / "sim.log"
    failure, elapsed = runner.run_testbench(b, run_dir, seed=cases[0].seed if cases else 0,
                                            frames=sum(len(c.frames) for c in cases), progress=progress)
    out: list[dict | None] = []
    for spec in specs:
        p = Path(spec["output"])
        if not p.is_file():
            out.append(None)
            continue
        obs = json.loads(p.read_text())
        obs["run_dir"], obs["sim_seconds"] = str(run_dir), elapsed
        out.append(obs)
    if failure:
        if all(o is None for o in out):
            raise runner.SimulationError(
                f"{b.simulator} simulation of {b.verilog} failed ({failure}); "
                f"log {log}:\n{runner._log_tail(log)}")
        for o in out:
            if o is not None and not o.get("error"):
                o["error"] = f"the simulation failed: {failure or 'cocotb test failed'} (log {log})"
    return out


def _problems(case: Case, obs: dict | None, r: SimulationReport | None) -> list[str]:
    if obs is None or r is None:
        return [f"{case.label}: no observations (the simulation stopped early)"]
    out = []
    if r.first_mismatch:
        out.append(f"{r.mismatching_images} of {r.images} frames differ; first: {r.first_mismatch}")
    out += [f"protocol: {e}" for e in r.protocol_errors]
    out += [f"counters: {e}" for e in r.stat_errors]
    if obs.get("error"):
        out.append(f"run: {obs['error']}")
    if obs.get("extra_results"):
        out.append(f"{obs['extra_results']} result frames more than frames sent")
    if obs.get("pending_events"):
        out.append(f"events after the last done pulse: {obs['pending_events']}")
    done = [x["before"] for x in obs.get("stress", {}).get("resets", [])]
    if sorted(done) != sorted(case.resets):
        out.append(f"resets asked before frames {list(case.resets)}, done before {done}")
    return [f"{case.label}: {p}" for p in out]


@dataclass
class BatchResult:
    """The outcome of every case of one build, and where the time went."""

    outcomes: list[Outcome]
    build_dir: Path
    #: wall seconds: ``generate_build``, ``simulate``, ``compare``
    seconds: dict[str, float]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def check(cases: list[Case], *, build_root: str | Path | None = None, opt: str | None = "-O0",
          progress: bool = False) -> BatchResult:
    """Build one model of ``cases``, run it, compare every case with the integer reference."""
    from snnfpga import reference

    t0 = time.perf_counter()
    b = build(cases, build_root=build_root, opt=opt)
    t1 = time.perf_counter()
    obs = run(b, cases, progress=progress)
    t2 = time.perf_counter()
    outcomes = []
    for case, o in zip(cases, obs):
        frames = np.asarray(case.frames).reshape(len(case.frames), -1)
        ref = reference.simulate(case.net, frames)
        r = None
        if o is not None:
            r = report(case.net, frames, o, simulator="verilator", lanes=case.lanes, build=b, ref=ref)
        events = int(sum(int(s.count().sum()) for s in ref.spikes.values()))
        outcomes.append(Outcome(case=case, report=r, obs=o or {}, events=events, problems=_problems(case, o, r)))
    t3 = time.perf_counter()
    return BatchResult(outcomes=outcomes, build_dir=b.directory,
                       seconds={"generate_build": t1 - t0, "simulate": t2 - t1, "compare": t3 - t2})
