"""Figures without pyplot: a bare :class:`matplotlib.figure.Figure` (no global backend change,
safe inside notebooks and threads), saved atomically as PNG and SVG."""

from __future__ import annotations

import os
from pathlib import Path


def new_figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def save_png_svg(fig, path: str | os.PathLike) -> list[Path]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.svg`` (temp file + rename); return the paths."""
    stem = Path(path)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix in (".png", ".svg"):
        target = stem.with_suffix(suffix)
        tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=suffix[1:])
        os.replace(tmp, target)
        out.append(target)
    return out
