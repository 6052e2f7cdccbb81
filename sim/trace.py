"""Read the lines :class:`sim.harness.Harness` printed into the observations :mod:`sim.tb_network` writes.

Host side (no cocotb, no amaranth): :func:`sim.runner.run` calls :func:`observations` on the
simulator's log once the run is over. Every line of the trace must parse and every count must
agree with the harness' own counters; anything else is reported, never guessed around.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BEGIN", "TOPLEVEL", "RING_FRAMES", "MAX_WORD_BITS", "KIND_BITS", "TIME_BITS", "word_pixels",
           "observations"]

#: printed by :mod:`sim.tb_harness` just before the clock starts: the trace follows it
BEGIN = "@BEGIN"
#: the harness module, the simulation model's toplevel
TOPLEVEL = "snn_harness"
#: frames the harness' ring holds: loading one costs a few cycles, so a few frames ahead suffice
RING_FRAMES = 16
#: the widest word of the ring (bits): wide enough that loading costs a few cycles a frame
MAX_WORD_BITS = 512


#: an event in the trace: ``neuron << (TIME_BITS + KIND_BITS) | time << KIND_BITS | kind``, in hex
KIND_BITS, TIME_BITS = 4, 16


def _event(packed: int) -> list[int]:
    """``[neuron, time, kind]`` of a packed event."""
    return [packed >> (TIME_BITS + KIND_BITS), (packed >> KIND_BITS) & ((1 << TIME_BITS) - 1),
            packed & ((1 << KIND_BITS) - 1)]


def word_pixels(summary: dict) -> int:
    """Pixels in a word of the ring (the harness and cocotb both lay frames out this way)."""
    inp = summary["input"]
    return max(1, min(int(inp["size"]), MAX_WORD_BITS // int(inp["bits"])))


def observations(log: str, summary: dict, meta: dict, n: int, phase: list[str]) -> dict[str, Any]:
    """The observations of ``n`` frames (phases ``phase``) from the simulator's ``log`` text and
    the testbench's ``meta`` (error, counter values, cycles)."""
    acc_bits, cls_bits = int(summary["out_acc_bits"]), int(summary["cls_bits"])
    acc_mask, sign, cls_mask = (1 << acc_bits) - 1, 1 << (acc_bits - 1), (1 << cls_bits) - 1
    n_classes = int(summary["n_classes"])
    taps = summary["taps"]
    stage = [str(t["stage"]) for t in taps]
    per_tap: list[list[list[list[int]]]] = [[] for _ in taps]
    current: list[list[list[int]]] = [[] for _ in taps]
    done_cycles: list[list[int]] = [[] for _ in taps]
    records: list[dict[str, Any]] = [{"image": i, "phase": ph} for i, ph in enumerate(phase)]
    results: list[dict[str, Any]] = []
    beats: list[int] = []
    errors: list[str] = []
    events = 0
    lines = log.splitlines()
    begin = max((i for i, s in enumerate(lines) if s.strip() == BEGIN), default=None)
    if begin is None:
        raise ValueError("the simulator's log holds no trace (no @BEGIN line)")
    bad = 0
    for raw in lines[begin + 1:]:
        line = raw.strip()
        if not line.startswith("@"):
            continue
        f = line[1:].split()
        try:
            kind = f[0]
            if kind == "X":
                v = [int(f[1])]
            else:  # an event's fields are packed in hex (@E's second, @D's fourth field)
                v = [int(x, 16) if (kind, j) in (("E", 1), ("D", 3)) else int(x) for j, x in enumerate(f[1:])]
        except (ValueError, IndexError):
            bad += 1
            continue
        if kind == "E" and len(v) == 2:
            current[v[0]].append(_event(v[1]))
            events += 1
        elif kind == "D" and len(v) == 4:
            i, cyc, valid, packed = v
            if valid:
                current[i].append(_event(packed))
                events += 1
            per_tap[i].append(current[i])
            done_cycles[i].append(cyc)
            current[i] = []
        elif kind == "R" and len(v) == 2:
            cyc, word = v
            m = word & acc_mask
            beats.append(m - (1 << acc_bits) if m & sign else m)
            if (word >> (acc_bits + cls_bits)) & 1:
                results.append({"membranes": beats, "cls": (word >> acc_bits) & cls_mask,
                                "beats": len(beats), "last_result": cyc})
                if len(beats) != n_classes:
                    errors.append(f"frame {len(results) - 1}: {len(beats)} result beats, expected {n_classes}")
                beats = []
            elif len(beats) >= n_classes:
                errors.append(f"frame {len(results)}: beat {len(beats) - 1} without last (n_classes = {n_classes})")
        elif kind == "P" and len(v) == 3:
            if v[0] < n:
                records[v[0]].update(first_pixel=v[1], last_pixel=v[2])
        elif kind == "X":
            errors.append(f"harness at cycle {v[0]}: {f[2] if len(f) > 2 else '?'}")
        else:
            bad += 1
    if bad:
        errors.append(f"{bad} trace lines of the harness did not parse")
    values = meta.get("values", {})
    stats = {k: values.get(k) for k in ("stat_cycles", "stat_events", "stat_frames")}
    for i, res in enumerate(results[:n]):
        records[i].update(res)
    g = {"count": values.get("gap_count", 0), "cycles": values.get("gap_cycles", 0),
         "longest": values.get("gap_longest", 0)}
    none = {"count": 0, "cycles": 0, "longest": 0}
    return {
        "sent": list(range(n)),
        "phase": phase,
        "frames": records,
        "stages": {s: fr for s, fr in zip(stage, per_tap)},
        "pending_events": {s: cur for s, cur in zip(stage, current) if cur},
        "done_cycles": {s: d for s, d in zip(stage, done_cycles)},
        "tap_events": events,
        "extra_results": max(0, len(results) - n),
        "stats": stats,
        "protocol_errors": errors,
        "error": meta.get("error"),
        "cycles": meta.get("cycles"),
        #: wall and CPU seconds and cycles from the harness' start to ``finished``: the simulator's own rate
        "run": meta.get("run"),
        "stress": {"gaps": g, "long_gaps": none, "stalls": dict(none), "resets": [],
                   "refused_cycles": values.get("refused", 0)},
    }
