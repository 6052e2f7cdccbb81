"""Event-by-event comparison of testbench observations with the integer reference.

Per frame sent: for every spiking stage, the sorted list of events ``(neuron, time, kind)``
must equal :meth:`snnfpga.reference.LayerSpikes.events`; the output membranes must equal
``Result.output`` and the class the hardware sent must equal ``Result.classes``. Stages are
checked in network order, so the first mismatch reported is the earliest stage that differs.

Observations are the dict :mod:`sim.tb_network` writes (``sent``, ``frames``, ``stages``,
``error``); :func:`observations_from_reference` builds a perfect one (for tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnfpga import reference
from snnfpga.ir import Network, Stage

__all__ = ["Comparison", "compare", "observations_from_reference", "sort_events"]


def sort_events(events) -> list[tuple[int, int, int]]:
    """``(neuron, time, kind)`` tuples sorted by (time, kind, neuron), like the reference."""
    return sorted((tuple(int(x) for x in e) for e in events), key=lambda e: (e[1], e[2], e[0]))


def _fmt(e: tuple[int, int, int] | None) -> str:
    if e is None:
        return "none"
    kind = {0: "enc", 1: "cal"}.get(e[2], str(e[2]))
    return f"(neuron {e[0]}, t {e[1]}, {kind})"


def _stage_label(stage: Stage) -> str:
    return "stage in (input encoder)" if stage.is_input else f"stage {stage.name} (layer {stage.name})"


def _event_diff(got: list, want: list) -> str:
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    g = got[i] if i < len(got) else None
    w = want[i] if i < len(want) else None
    missing = sorted(set(want) - set(got), key=lambda e: (e[1], e[2], e[0]))
    extra = sorted(set(got) - set(want), key=lambda e: (e[1], e[2], e[0]))
    detail = []
    if missing:
        detail.append(f"first missing {_fmt(missing[0])}")
    if extra:
        detail.append(f"first extra {_fmt(extra[0])}")
    return (f"first differing event #{i} (sorted by time, kind, neuron): RTL {_fmt(g)} vs reference "
            f"{_fmt(w)}; RTL {len(got)} events, reference {len(want)}"
            + (f" ({', '.join(detail)})" if detail else ""))


@dataclass
class Comparison:
    images: int
    mismatching_images: int
    first_mismatch: str | None
    #: per frame sent: None when equal, else the reason
    per_frame: list[str | None] = field(default_factory=list)
    rtl_classes: list[int | None] = field(default_factory=list)
    reference: Any = None

    @property
    def ok(self) -> bool:
        return self.mismatching_images == 0


def compare(net: Network, frames: np.ndarray, obs: dict, ref: reference.Result | None = None) -> Comparison:
    """Compare observations with the reference run of ``net`` on ``frames``.

    A frame without result or without a done pulse of some stage (a hang) is a mismatch; so is
    a stage the reference has and the hardware does not tap, or the other way round.
    """
    frames = np.asarray(frames)
    if ref is None:
        ref = reference.simulate(net, frames)
    sent = [int(i) for i in obs.get("sent", range(len(frames)))]
    results = obs.get("frames", [])
    stages = obs.get("stages", {})
    # observations name stages as the taps do (Stage.name); compare by Stage
    ref_names = [Stage(k).name for k in sorted(ref.spikes)]
    error = obs.get("error")
    per_frame: list[str | None] = []
    classes: list[int | None] = []
    structural = None
    missing_taps = [s for s in ref_names if s not in stages]
    extra_taps = [s for s in stages if s not in ref_names]
    if missing_taps or extra_taps:
        structural = (f"taps differ from the reference's spiking stages: hardware has "
                      f"{sorted(stages)}, reference {ref_names}")
    for j, img in enumerate(sent):
        why = None
        rec = results[j] if j < len(results) else {}
        prefix = f"image {img}" + (f" (frame {j} sent)" if j != img else "")
        if structural:
            why = f"{prefix}: {structural}"
        for name in ref_names:
            if why:
                break
            per = stages.get(name, [])
            if j >= len(per):
                why = (f"{prefix}, {_stage_label(Stage(name))}: no done pulse for this frame"
                       + (f" ({error})" if error else ""))
                break
            got = sort_events(per[j])
            want = ref.spikes[Stage(name)].events(img)
            if got != want:
                why = f"{prefix}, {_stage_label(Stage(name))}: {_event_diff(got, want)}"
        m = rec.get("membranes")
        cls = rec.get("cls")
        classes.append(None if cls is None else int(cls))
        if not why:
            want_m = [int(x) for x in ref.output[img]]
            if m is None:
                why = f"{prefix}: no result" + (f" ({error})" if error else "")
            elif [None if x is None else int(x) for x in m] != want_m:
                if len(m) != len(want_m):
                    why = (f"{prefix}: output membranes: RTL sent {len(m)} values, reference has "
                           f"{len(want_m)}")
                else:
                    diff = [k for k in range(len(m)) if m[k] is None or int(m[k]) != want_m[k]]
                    k = diff[0]
                    got_k = "X" if m[k] is None else int(m[k])
                    why = (f"{prefix}: output membrane {k}: RTL {got_k} vs reference {want_m[k]} "
                           f"({len(diff)} of {len(m)} differ)")
            elif cls is None or int(cls) != int(ref.classes[img]):
                why = f"{prefix}: class: RTL {cls} vs reference {int(ref.classes[img])} (membranes equal)"
        per_frame.append(why)
    bad = [w for w in per_frame if w]
    first = bad[0] if bad else None
    if first is None and error:
        first = f"run error: {error}"
    mism = len(bad) + (1 if not bad and error else 0)
    return Comparison(images=len(sent), mismatching_images=mism, first_mismatch=first,
                      per_frame=per_frame, rtl_classes=classes, reference=ref)


def observations_from_reference(net: Network, frames: np.ndarray, ref: reference.Result | None = None) -> dict:
    """The observations a perfect hardware would produce (events in reference order)."""
    frames = np.asarray(frames)
    if ref is None:
        ref = reference.simulate(net, frames)
    n = len(ref.classes)
    stages = {Stage(k).name: [[list(e) for e in s.events(i)] for i in range(n)] for k, s in ref.spikes.items()}
    recs = [{"image": i, "membranes": [int(x) for x in ref.output[i]], "cls": int(ref.classes[i]),
             "beats": int(ref.output.shape[1])} for i in range(n)]
    return {"sent": list(range(n)), "frames": recs, "stages": stages, "error": None,
            "protocol_errors": []}
