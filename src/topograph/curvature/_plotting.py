"""Figures without pyplot: a bare :class:`matplotlib.figure.Figure` (no global backend change,
safe inside notebooks and threads); :func:`topograph.io.save_figure` writes them."""

from __future__ import annotations


def new_figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))
