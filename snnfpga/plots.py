"""Plots people would rather look at than tables (PNG, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["plot_accuracy_vs_timesteps"]


def _field(row: Any, key: str) -> Any:
    return row[key] if isinstance(row, Mapping) else getattr(row, key)


def plot_accuracy_vs_timesteps(sweep: Iterable[Any], float_ann: float, path: Path, title: str) -> Path:
    """Integer (solid) and float SNN (dashed) accuracy against T, one colour per coding.

    ``sweep``: :class:`snnfpga.flow.ConversionRow` s (or dicts with their keys: coding,
    timesteps, int_ref, float_snn)."""
    import matplotlib

    sweep = list(sweep)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    colours = {"sc-ttfs": "tab:blue", "ttfs": "tab:orange", "rate": "tab:green"}
    for coding in ("sc-ttfs", "ttfs", "rate"):
        rows = sorted((r for r in sweep if _field(r, "coding") == coding), key=lambda r: _field(r, "timesteps"))
        if not rows:
            continue
        ts = [_field(r, "timesteps") for r in rows]
        ax.plot(ts, [100 * _field(r, "int_ref") for r in rows], "o-", color=colours[coding],
                label=f"{coding} integer")
        ax.plot(ts, [100 * _field(r, "float_snn") for r in rows], "x--", color=colours[coding], alpha=0.6,
                label=f"{coding} float SNN")
    ax.axhline(100 * float_ann, color="black", lw=1, ls=":", label=f"float ANN {100 * float_ann:.2f}%")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
