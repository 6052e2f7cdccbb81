"""The fit check's DSP count against every board build cached under ``runs/``.

Reads each build result JSON (``snnfpga build --json``, ``boards.build.build``'s summaries, the
estimate benchmark's cache) that names its network, lanes, decode and single-banked layers,
finds the network's IR beside it or in a folder above, and compares
``boards.fit.dsp_blocks`` with the DSP blocks nextpnr placed. Prints one row per build and the
count of mismatches (exit status 1 if any).

    .venv/bin/python benchmarks/bench_dsp_builds.py [runs]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _ir_for(result: Path, network: str, root: Path) -> Path | None:
    folder = result.parent
    while True:
        hits = sorted(folder.rglob(f"{network}.snn.json")) if folder != root else []
        if hits or folder in (root, folder.parent):
            return hits[0] if hits else None
        folder = folder.parent


def main(argv: list[str] | None = None) -> int:
    from snnfpga import ir
    from snnfpga.boards.fit import dsp_blocks
    from snnfpga.boards.registry import get_board
    from snnfpga.rtl_gen import describe

    root = Path((argv or sys.argv[1:] or ["runs"])[0])
    rows = misses = 0
    for path in sorted(root.rglob("*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not (isinstance(result, dict) and isinstance(result.get("resources"), dict)
                and isinstance(result["resources"].get("DSP"), dict) and "network" in result and "lanes" in result):
            continue
        source = _ir_for(path, result["network"], root)
        if source is None:
            continue
        hw = describe(ir.load(source), lanes=result["lanes"], decode=result.get("decode", "auto"),
                      single_bank=tuple(result.get("single_bank") or ()))
        family = result.get("family") or get_board(result["board"]).family
        estimated, built = dsp_blocks(hw, family), result["resources"]["DSP"]["used"]
        rows += 1
        misses += estimated != built
        print(f"{'ok  ' if estimated == built else 'MISS'} {family:6s} lanes {result['lanes']:2d}  "
              f"estimated {estimated:3d}  built {built:3d}  ({hw.multipliers} multipliers)  {path}")
    print(f"{rows} builds, {misses} mismatching")
    return 1 if misses or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
