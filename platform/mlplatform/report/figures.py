"""The report's plots: matplotlib (Agg, no display) to PNG files beside the Markdown page.
Each function draws numbers it is given (already read from records) and returns a model.Figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlplatform.report.model import Figure  # noqa: E402

# no timestamps or version strings in the files: the same numbers give the same PNG bytes
_META = {"Software": None}


def _save(fig, out: Path, caption: str) -> Figure:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100, metadata=_META)
    plt.close(fig)
    return Figure(file=out.name, caption=caption)


def bars(out: Path, labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
         errors: Sequence[tuple[float, float]] | None = None, highlight: str | None = None) -> Figure:
    """Horizontal bars (one per label), with intervals [lo, hi] when given."""
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.2))
    colors = ["tab:orange" if lab == highlight else "tab:blue" for lab in labels]
    xerr = None
    if errors is not None:
        xerr = [[max(v - lo, 0) for v, (lo, _) in zip(values, errors)],
                [max(hi - v, 0) for v, (_, hi) in zip(values, errors)]]
    ax.barh(list(labels), list(values), color=colors, xerr=xerr, capsize=3)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    ax.invert_yaxis()
    return _save(fig, out, title)


def lines(out: Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str, xlabel: str,
          ylabel: str, vline: tuple[float, str] | None = None, diagonal: bool = False) -> Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), lw=1.5, label=name, marker="o" if len(x) <= 20 else None, ms=3)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    if vline is not None:
        ax.axvline(vline[0], ls=":", c="tab:red", lw=1.2, label=vline[1])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out, title)


def timeline(out: Path, events: Sequence[tuple[float, str]], *, title: str) -> Figure:
    """Events (seconds since start, label) on one time axis, labels staggered to stay readable."""
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(events) + 1.5))
    for i, (t, label) in enumerate(events):
        ax.plot([t], [i], "o", c="tab:blue")
        ax.text(t, i, f"  {label}", va="center", fontsize=8)
    ax.set(title=title, xlabel="seconds since the loop started", yticks=[])
    ax.invert_yaxis()
    ax.set_xlim(0, max((t for t, _ in events), default=1) * 1.35 + 1)
    return _save(fig, out, title)
