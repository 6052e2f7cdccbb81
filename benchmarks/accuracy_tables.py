"""Markdown tables of accuracy vs T from `snnfpga run` reports (the figures in README.md).

    .venv/bin/python benchmarks/accuracy_tables.py runs/demo runs/mnist10k runs/fashion-mnist
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("sc-ttfs", "ttfs", "rate")


def table(report: dict) -> str:
    ann = report["accuracy"]["float_ann"]["accuracy"]
    n = report["accuracy"]["float_ann"]["images"]
    lines = [f"**{report['dataset']}** ({report['model']['model']} {report['model']['hidden']}, {n} test images): "
             f"float ANN {100 * ann:.2f}%", "",
             "| coding | T | float SNN | integer | Δ vs ANN (pp) | spikes/frame | E TrueNorth | E SpiNNaker |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = sorted(report["runs"], key=lambda r: (ORDER.index(r["coding"]), r["timesteps"]))
    for r in rows:
        e = r["energy_paper"]
        lines.append(f"| {r['coding']} | {r['timesteps']} | {100 * r['float_snn']:.2f}% | {100 * r['int_ref']:.2f}% | "
                     f"{100 * (r['int_ref'] - ann):+.2f} | {r['spikes_per_frame']:.1f} | {e['truenorth']:.1f} | "
                     f"{e['spinnaker']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    for d in argv or ["runs/demo", "runs/mnist10k", "runs/fashion-mnist"]:
        p = Path(d) / "report.json"
        if not p.is_file():
            print(f"{p}: not found (run `snnfpga run --out {d}` first)", file=sys.stderr)
            continue
        print(table(json.loads(p.read_text())))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
