"""Figures of maps: contour with trajectories, 3-D surface, 1-D curves, batch-size panel.

Built on bare :class:`matplotlib.figure.Figure` objects (no pyplot state, no backend change;
safe in notebooks and worker threads) and saved as PNG and SVG (temp file + rename).  Colour
limits and the log scale are chosen from the data by :func:`color_limits`: the lower limit is
the smallest loss, the upper one the 98th percentile (so a few exploding corners of a grid do
not wash out the basin), and a log scale is used when they span more than a factor of 20 —
Li et al.'s contour plots use fixed levels 0.1…10 for CIFAR; data-driven limits work for any
loss scale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from topograph.errors import UsageError
from topograph.io import save_figure as _save_figure
from topograph.landscape.surface import Surface
from topograph.landscape.trajectory import Trajectory


def color_limits(values: np.ndarray, *, log: bool | None = None) -> tuple[float, float, bool]:
    """(vmin, vmax, log) for a loss grid: min, 98th percentile, log when they span > 20×."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0, False
    lo, hi = float(v.min()), float(np.percentile(v, 98))
    if hi <= lo:
        hi = float(v.max()) if v.max() > lo else lo + 1e-12 + abs(lo) * 1e-6
    if log is None:
        log = lo > 0 and hi / lo > 20
    if log and lo <= 0:
        log = False
    return lo, hi, bool(log)


def save_figure(fig, path: str | os.PathLike) -> list[Path]:
    """Write ``fig`` to ``<stem>.png`` and ``<stem>.svg`` atomically; return both paths."""
    return _save_figure(fig, path, dpi=150)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _axis_labels(surface: Surface) -> tuple[str, str]:
    kind = surface.directions.kind
    ev = surface.directions.explained_variance_ratio
    if kind == "pca" and ev:
        return (f"PC 1 ({100 * ev[0]:.1f} % of variance)",
                f"PC 2 ({100 * ev[1]:.1f} % of variance)" if len(ev) > 1 else "")
    if kind == "interpolation":
        return "t (0: first model, 1: second)", ""
    return "α (direction 1)", "β (direction 2)"


def _title(surface: Surface) -> str:
    s = surface.settings
    data = f"batch of {s['batch_size']}" if s.get("batch_size") else f"{s.get('split', 'train')} split"
    d = surface.directions
    what = d.kind + (f", {d.options.get('norm')}-normalised" if d.options.get("norm") else "")
    return f"loss ({data}; {what} directions)"


def draw_contour(ax, surface: Surface, trajectories: Sequence[Trajectory] = (), *,
                 limits: tuple[float, float, bool] | None = None, levels: int = 30,
                 colorbar: bool = True):
    """Filled contours of a 2-D surface on ``ax`` with trajectories overlaid (labelled)."""
    from matplotlib import colors

    if surface.dim != 2:
        raise UsageError(f"a contour plot needs a 2-D surface; this one is {surface.dim}-D")
    lo, hi, log = limits or color_limits(surface.loss)
    z = np.clip(surface.loss, lo, hi)
    x, y = surface.axes
    if log:
        lv = np.geomspace(lo, hi, levels)
        cs = ax.contourf(x, y, z.T, levels=lv, norm=colors.LogNorm(lo, hi), cmap="viridis")
    else:
        lv = np.linspace(lo, hi, levels)
        cs = ax.contourf(x, y, z.T, levels=lv, cmap="viridis")
    ax.contour(x, y, z.T, levels=lv[::3], colors="white", linewidths=0.4, alpha=0.6)
    if colorbar:
        cb = ax.figure.colorbar(cs, ax=ax, label="loss" + (" (log scale)" if log else ""))
        _readable_ticks(cb, lo, hi, log)
    for i, tr in enumerate(trajectories):
        c = tr.coordinates
        color = f"C{(i + 1) % 10}"
        label = tr.label or f"path {i + 1}"
        if np.isfinite(tr.mean_residual_fraction):
            label += f" (residual {tr.mean_residual_fraction:.2f})"
        ax.plot(c[:, 0], c[:, 1], "-", color=color, lw=1.5, label=label)
        ax.plot(c[0, 0], c[0, 1], "o", color=color, ms=5)
        ax.plot(c[-1, 0], c[-1, 1], "*", color=color, ms=10, mec="k", mew=0.5)
    ax.plot([0], [0], "+", color="red", ms=10, mew=1.5)
    xl, yl = _axis_labels(surface)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    if trajectories:
        ax.legend(loc="best", fontsize=8)
    return cs


def _readable_ticks(cb, lo: float, hi: float, log: bool) -> None:
    """Six colour-bar ticks spread over the limits, printed with 3 significant digits."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ticks = np.geomspace(lo, hi, 6) if log else np.linspace(lo, hi, 6)
    cb.set_ticks(ticks)
    cb.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())


def contour_plot(surface: Surface, trajectories: Sequence[Trajectory] = (), *,
                 path: str | os.PathLike | None = None, log: bool | None = None, title: str | None = None):
    """Contour map of a 2-D surface with optional trajectory overlay; saved when ``path``."""
    fig = _figure(6.4, 5.2)
    ax = fig.add_subplot()
    draw_contour(ax, surface, trajectories, limits=color_limits(surface.loss, log=log))
    ax.set_title(title or _title(surface), fontsize=10)
    if path is not None:
        fig.paths = save_figure(fig, path)
    return fig


def surface_3d_plot(surface: Surface, *, path: str | os.PathLike | None = None, log: bool | None = None,
                    title: str | None = None):
    """3-D view of a 2-D surface (log10 of the loss when the limits call for a log scale)."""
    if surface.dim != 2:
        raise UsageError(f"a 3-D plot needs a 2-D surface; this one is {surface.dim}-D")
    lo, hi, log = color_limits(surface.loss, log=log)
    fig = _figure(6.4, 5.2)
    ax = fig.add_subplot(projection="3d")
    xx, yy = np.meshgrid(*surface.axes, indexing="ij")
    z = np.clip(surface.loss, lo, hi)
    z = np.log10(z) if log else z
    ax.plot_surface(xx, yy, z, cmap="viridis", linewidth=0, antialiased=True)
    xl, yl = _axis_labels(surface)
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_zlabel("log10 loss" if log else "loss")
    ax.set_title(title or _title(surface), fontsize=10)
    if path is not None:
        fig.paths = save_figure(fig, path)
    return fig


def draw_curve(ax, surface: Surface, *, label: str = "", color: str = "C0", accuracy: bool = True,
               log: bool | None = None):
    """Loss (left axis) and accuracy (right axis, dashed) of a 1-D surface on ``ax``."""
    if surface.dim != 1:
        raise UsageError(f"a curve needs a 1-D surface; this one is {surface.dim}-D")
    x = surface.axes[0]
    _, _, log = color_limits(surface.loss, log=log)
    ax.plot(x, surface.loss, "-", color=color, label=f"{label} loss".strip())
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_labels(surface)[0])
    ax.set_ylabel("loss")
    twin = None
    if accuracy and np.isfinite(surface.accuracy).any():
        twin = ax.twinx()
        twin.plot(x, 100 * surface.accuracy, "--", color=color, alpha=0.8, label=f"{label} accuracy".strip())
        twin.set_ylabel("accuracy (%)")
        twin.set_ylim(0, 100)
    return twin


def curve_plot(surface: Surface, *, path: str | os.PathLike | None = None, log: bool | None = None,
               title: str | None = None):
    """1-D curve of loss and accuracy along a direction (twin axes)."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    twin = draw_curve(ax, surface, log=log)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper center", fontsize=8)
    ax.set_title(title or _title(surface).replace("loss", "loss and accuracy", 1), fontsize=10)
    if path is not None:
        fig.paths = save_figure(fig, path)
    return fig


def batch_size_panel(surfaces: Mapping[str, Surface], *, path: str | os.PathLike | None = None,
                     log: bool | None = None, title: str | None = None):
    """Seed 003, Fig. 1: the same directions evaluated on batches of several sizes and on the
    full data, side by side with shared colour limits (2-D) or on one axis (1-D)."""
    if not surfaces:
        raise UsageError("batch_size_panel needs at least one surface")
    items = list(surfaces.items())
    dims = {s.dim for _, s in items}
    if len(dims) != 1:
        raise UsageError("batch_size_panel: all surfaces must have the same dimension")
    if dims == {1}:
        fig = _figure(6.4, 4.2)
        ax = fig.add_subplot()
        for i, (label, s) in enumerate(items):
            draw_curve(ax, s, label=label, color=f"C{i}", accuracy=False, log=log)
        ax.legend(fontsize=8)
    else:
        allv = np.concatenate([s.loss.reshape(-1) for _, s in items])
        limits = color_limits(allv, log=log)
        fig = _figure(3.4 * len(items) + 1.0, 3.4)
        axes = fig.subplots(1, len(items), sharex=True, sharey=True, squeeze=False)[0]
        cs = None
        for ax, (label, s) in zip(axes, items):
            cs = draw_contour(ax, s, limits=limits, colorbar=False)
            ax.set_title(label, fontsize=10)
        cb = fig.colorbar(cs, ax=list(axes), label="loss" + (" (log scale)" if limits[2] else ""))
        _readable_ticks(cb, *limits)
    if title:
        fig.suptitle(title, fontsize=11)
    if path is not None:
        fig.paths = save_figure(fig, path)
    return fig


__all__ = ["batch_size_panel", "color_limits", "contour_plot", "curve_plot", "draw_contour", "draw_curve",
           "save_figure", "surface_3d_plot"]
