"""The optimizer demos on the analytic landscapes, drawn and written: trajectories on the contour
map, basin-of-attraction maps, the SGDR escape test (bare matplotlib figures, PNG and SVG) and
the basin fractions as CSV (:func:`run_demo`, what ``topograph demo`` runs)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle
from torch import Tensor

from topograph.data.analytic import get_landscape
from topograph.data.landscape import AnalyticLandscape
from topograph.io import atomic_open, new_figure, save_figure
from topograph.optim.demos import (
    DEMO_LANDSCAPES,
    BasinMap,
    SGDRResult,
    basin_map,
    demo_optimizers,
    label_points,
    run_trajectories,
    settings_for,
    sgdr_escape,
)


def _contour(ax, landscape: AnalyticLandscape, n: int = 200) -> None:
    X, Y, Z = landscape.grid(n)
    z = Z.numpy()
    if landscape.name == "muller-brown":
        z = np.minimum(z, 50.0)  # the potential explodes at the corners
    levels = np.quantile(z, np.linspace(0.0, 1.0, 30) ** 2)
    ax.contour(X.numpy(), Y.numpy(), z, levels=np.unique(levels), colors="0.7", linewidths=0.6)
    for m in landscape.minima:
        ax.plot(*m.point, marker="*", color="k", markersize=9, zorder=5)
        if len(landscape.minima) <= 4:
            ax.annotate(m.label, m.point, textcoords="offset points", xytext=(4, 4), fontsize=8)
    (x0, x1), (y0, y1) = landscape.domain
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")


def plot_trajectories(landscape: AnalyticLandscape, paths: dict[str, Tensor], stem: Path | str) -> list[Path]:
    """Contour map with one path per optimizer; writes ``stem``.png/.svg."""
    fig = new_figure(7, 6)
    ax = fig.subplots()
    _contour(ax, landscape)
    colors = colormaps["tab10"]
    lo = np.array([d[0] for d in landscape.domain]) - 0.5 * np.ptp(np.array(landscape.domain), axis=1)
    hi = np.array([d[1] for d in landscape.domain]) + 0.5 * np.ptp(np.array(landscape.domain), axis=1)
    for i, (label, p) in enumerate(paths.items()):
        q = p.numpy()
        q = q[np.isfinite(q).all(axis=1)]
        q = np.clip(q, lo, hi)
        ax.plot(q[:, 0], q[:, 1], "-", color=colors(i % 10), lw=1.2, label=label)
        ax.plot(q[-1, 0], q[-1, 1], "o", color=colors(i % 10), ms=4)
    start = next(iter(paths.values()))[0].numpy()
    ax.plot(*start, "s", color="k", ms=6, label="start")
    ax.set_title(f"{landscape.name}: trajectories")
    ax.legend(fontsize=7, loc="best")
    out = save_figure(fig, Path(stem))
    return out


def plot_basins(landscape: AnalyticLandscape, basins: BasinMap, stem: Path | str) -> list[Path]:
    """One panel per optimizer, each start coloured by the minimum it reached."""

    labels = list(basins.labels)
    cols = min(4, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = new_figure(3.4 * cols, 3.3 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    cats = list(basins.categories)
    base = colormaps["tab10"]
    colours = [base(i % 10) for i in range(len(cats) - 2)] + [(1, 1, 1, 1), (0.3, 0.3, 0.3, 1)]
    cmap = ListedColormap(colours)
    (x0, x1), (y0, y1) = landscape.domain
    for ax, label in zip(axes.flat, labels):
        n = basins.grids[label]
        idx = np.array([cats.index(c) for c in basins.labels[label]]).reshape(n, n)
        ax.imshow(idx, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=-0.5, vmax=len(cats) - 0.5,
                  interpolation="nearest", aspect="auto")
        _contour(ax, landscape, n=120)
        ax.set_aspect("auto")
        ax.set_title(f"{label} ({n}×{n})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, color=colours[i], ec="k", lw=0.3) for i in range(len(cats))]
    fig.legend(handles, cats, loc="lower center", ncol=min(len(cats), 8), fontsize=8, frameon=False)
    fig.suptitle(f"{landscape.name}: basins of attraction after {basins.steps} steps", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    out = save_figure(fig, Path(stem))
    return out


def plot_sgdr(result: SGDRResult, stem: Path | str) -> list[Path]:
    """Paths on the contour map, loss and learning rate against the step."""
    landscape = get_landscape(result.landscape)
    fig = new_figure(14, 4)
    axes = fig.subplots(1, 3)
    _contour(axes[0], landscape)
    for i, (label, p) in enumerate(result.paths.items()):
        q = np.clip(p.numpy(), -2.5, 2.5)
        axes[0].plot(q[:, 0], q[:, 1], "-", lw=0.8, alpha=0.8, color=f"C{i}",
                     label=f"{label}: deep basin in {result.global_fraction[label]:.0%} of {result.seeds} seeds")
        axes[1].plot(result.losses[label].numpy(), color=f"C{i}", label=label)
        axes[2].plot(result.lrs[label], color=f"C{i}", label=label)
    axes[0].legend(fontsize=7)
    axes[0].set_title("paths")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("f")
    axes[1].set_title("loss")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("learning rate")
    axes[2].set_title("schedule")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{result.landscape}: leaving the shallow minimum with noisy momentum SGD (seed 0 shown)",
                 fontsize=11)
    fig.tight_layout()
    out = save_figure(fig, Path(stem))
    return out


# ---------------------------------------------------------------------------- the whole demo


@dataclass
class DemoReport:
    """What :func:`run_demo` wrote: ``files``, the basin fractions ``rows`` (CSV rows) and the
    SGDR result."""

    files: list[Path]
    rows: list[dict]
    sgdr: SGDRResult | None = None


def run_demo(
    landscapes: Sequence[str] = DEMO_LANDSCAPES,
    *,
    out_dir: Path | str = "demo",
    quick: bool = False,
    progress: bool = False,
    on_part: Callable[[str, int, int], None] | None = None,
) -> DemoReport:
    """Trajectories, basin maps (PNG+SVG) and ``basin_fractions.csv`` for each landscape, plus
    the SGDR escape on the tilted double well.  ``quick``: coarser grids and fewer steps.
    ``on_part(label, done, total)`` is called after each part (a landscape, the SGDR escape):
    progress for logs, where the rich bars of ``progress`` are not shown."""
    out = Path(out_dir)
    files: list[Path] = []
    rows: list[dict] = []
    grid, looped = (15, 5) if quick else (41, 9)
    with_sgdr = "tilted-double-well" in [get_landscape(n).name for n in landscapes]
    parts = len(landscapes) + int(with_sgdr)
    for i, name in enumerate(landscapes):
        ls = get_landscape(name)
        s = settings_for(ls)
        steps = s.steps // 2 if quick else s.steps
        setups = demo_optimizers(ls, sgdr=ls.name == "tilted-double-well")
        paths = run_trajectories(ls, setups, steps=steps)
        files += plot_trajectories(ls, paths, out / f"trajectories_{ls.name}")
        bm = basin_map(ls, setups, grid=grid, looped_grid=looped, steps=steps, progress=progress)
        files += plot_basins(ls, bm, out / f"basins_{ls.name}")
        for label, fr in bm.fractions.items():
            end = label_points(ls, paths[label][-1:])[0]
            for cat, value in fr.items():
                rows.append({"landscape": ls.name, "optimizer": label, "minimum": cat, "fraction": round(value, 6),
                             "starts": bm.grids[label] ** 2, "steps": bm.steps, "trajectory_end": end})
        if on_part is not None:
            on_part(ls.name, i + 1, parts)
    sg = None
    if with_sgdr:
        sg = sgdr_escape(seeds=8 if quick else 20)
        files += plot_sgdr(sg, out / "sgdr_tilted-double-well")
        if on_part is not None:
            on_part("SGDR escape", parts, parts)
    csv_path = out / "basin_fractions.csv"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["landscape", "optimizer", "minimum", "fraction", "starts", "steps",
                                                "trajectory_end"])
        writer.writeheader()
        writer.writerows(rows)
    files.append(csv_path)
    return DemoReport(files, rows, sg)


__all__ = ["DemoReport", "plot_basins", "plot_sgdr", "plot_trajectories", "run_demo"]
