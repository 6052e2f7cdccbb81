"""``report.json``: written here, and only here, from the typed results of :mod:`snnfpga.flow`.

The schema, every field with its unit and the step that fills it, is docs/report.md;
:data:`TOP_LEVEL_KEYS` lists the top-level keys in the order they are written. Readers check
``report_version`` (:data:`REPORT_VERSION`), which changes when a field changes meaning or goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .flow import ConversionRow, Report

__all__ = ["REPORT_VERSION", "TOP_LEVEL_KEYS", "BIT_EXACT_COMPARED", "to_json", "write", "format_rows"]

#: version of the report.json schema (docs/report.md)
REPORT_VERSION = 1

#: every top-level key of report.json, in order, and the flow step that fills it (docs/report.md);
#: ``plot`` needs the T sweep, the ``simulate`` keys the hardware steps, the ``build`` keys a board
TOP_LEVEL_KEYS: dict[str, str] = {
    "report_version": "report",
    "name": "convert",
    "dataset": "data",
    "model": "train",
    "ir": "convert",
    "accuracy": "evaluate",  # accuracy.rtl: simulate
    "latency": "evaluate",  # timesteps; the cycle counts: simulate
    "spikes_per_frame": "evaluate",
    "energy_paper": "evaluate",
    "runs": "evaluate",
    "plot": "evaluate",
    "bit_exact": "simulate",
    "hardware": "simulate",
    "board": "build",
    "fmax_mhz": "build",
    "clock_mhz": "build",
    "clock": "build",
    "resources": "build",
    "bitstream": "build",
    "fps": "build",
    "power_w": "build",
    "fps_per_w": "build",
    "power": "build",
    "fps_uart_limited": "build",
    "power_uart_limited": "build",
    "seconds": "report",
    "seconds_per_step": "report",
}

#: what the bit-exact check compares (``bit_exact.compared``)
BIT_EXACT_COMPARED = "every spike event (stage, neuron, time, kind) and the final output membranes"


def to_json(report: Report) -> dict[str, Any]:
    """The report.json document of one run (see docs/report.md)."""
    conv, ev, main = report.convert, report.evaluate, report.evaluate.main
    arch = report.train.arch
    n = ev.test_images
    net = conv.main_net
    doc: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "name": net.name,
        "dataset": report.dataset,
        "model": {k: arch[k] for k in ("model", "hidden", "in_shape")},
        "ir": str(conv.main_ir),
        "accuracy": {
            "float_ann": {"accuracy": main.float_ann, "images": n},
            "float_snn": {"accuracy": main.float_snn, "images": n},
            "int_ref": {"accuracy": main.int_ref, "images": n},
        },
        "latency": {"timesteps": main.timesteps},
        "spikes_per_frame": main.spikes_per_frame,
        "energy_paper": main.energy_paper,
        "runs": [row.to_json() for row in ev.rows],
    }
    if ev.plot is not None:
        doc["plot"] = str(ev.plot)
    if report.simulate is not None:
        s, rep = report.simulate, report.simulate.report
        doc["accuracy"]["rtl"] = {"accuracy": s.rtl_accuracy, "images": rep.images,
                                  "int_ref_same_images": s.int_ref_accuracy}
        cpf = (rep.cycles_per_frame or {}).get("mean")
        bound = rep.event_bound_cycles
        doc["latency"] = {"timesteps": net.timesteps, "cycles_per_frame": cpf,
                          "frame_interval_cycles": rep.frame_interval_cycles, "event_bound_cycles": bound,
                          "ratio_to_event_bound": cpf / bound if bound and cpf is not None else None,
                          "lanes": report.options.lanes}
        doc["bit_exact"] = {"images": rep.images, "mismatching_images": rep.mismatching_images,
                            "compared": BIT_EXACT_COMPARED, "first_mismatch": rep.first_mismatch,
                            "simulator": rep.simulator}
        doc["hardware"] = {k: v for k, v in rep.to_json().items() if k != "rtl_classes"}
    if report.build is not None:
        b, perf = report.build, report.build.performance
        pw = perf.power or {}
        doc.update({
            "board": b.board, "fmax_mhz": b.fmax_mhz, "clock_mhz": perf.clock_mhz, "clock": b.clock or None,
            "resources": b.resources,
            "bitstream": str(b.bitstream) if b.bitstream else None, "fps": perf.fps,
            "power_w": pw.get("total_w"), "fps_per_w": pw.get("fps_per_w"), "power": pw,
            "fps_uart_limited": perf.fps_uart, "power_uart_limited": perf.power_uart,
        })
    doc["seconds"] = report.seconds
    doc["seconds_per_step"] = dict(report.seconds_per_step)
    return doc


def write(report: Report, path: str | Path) -> Path:
    """Write ``report.json``; numpy scalars become JSON numbers."""
    path = Path(path)
    path.write_text(json.dumps(to_json(report), indent=1, default=float) + "\n")
    return path


def format_rows(rows: Iterable[ConversionRow]) -> str:
    """The accuracy table ``snnfpga run`` and ``snnfpga convert`` print."""
    lines = [f"{'coding':8} {'T':>3} {'float ANN':>9} {'float SNN':>9} {'integer':>8} {'spikes/frame':>12}"]
    for r in rows:
        lines.append(f"{r.coding:8} {r.timesteps:>3} {100 * r.float_ann:>8.2f}% {100 * r.float_snn:>8.2f}% "
                     f"{100 * r.int_ref:>7.2f}% {r.spikes_per_frame:>12.1f}")
    return "\n".join(lines)
