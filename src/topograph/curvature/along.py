"""Curvature measures along the landscape: at every snapshot of a training trajectory and at the
points of a path between minima, with a plot of the measures against epoch / path position.

Each point gets :func:`topograph.curvature.measures.measure_point` (loss, top eigenvalue, trace,
ε-sharpness, saddle indicator) through the same objective; the points are any K×P stack of flat
parameter vectors.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.curvature.measures import PointMeasures, measure_point
from topograph.errors import UsageError
from topograph.io import new_figure, save_figure

PLOTTED = ("loss", "top_eigenvalue", "trace", "epsilon_sharpness", "negative_fraction")
LABELS = {
    "loss": "loss",
    "top_eigenvalue": "λ_max(H)",
    "trace": "tr(H)",
    "epsilon_sharpness": "ε-sharpness (%)",
    "negative_fraction": "negative eigenvalue fraction",
    "lambda_min": "λ_min (Ritz)",
    "saddle_ratio": "|λ_min| / λ_max",
}


@dataclass
class AlongResult:
    """Measures at K points.

    ``positions`` (K,) float64: the x coordinate of each point (epoch, step, or path position in
    [0, 1] by arc length); ``labels``: per point, e.g. ``(epoch, step)`` of a snapshot or its index;
    ``measures``: one :class:`PointMeasures` per point; ``xlabel`` names the x coordinate.
    """

    positions: Tensor
    labels: list
    measures: list[PointMeasures]
    xlabel: str

    def column(self, name: str) -> Tensor:
        """One measure at every point as a float64 tensor (K,)."""
        return torch.tensor([m.as_dict()[name] for m in self.measures], dtype=torch.float64)

    def as_dict(self) -> dict:
        return {
            "xlabel": self.xlabel,
            "positions": self.positions.tolist(),
            "labels": [list(lb) if isinstance(lb, tuple) else lb for lb in self.labels],
            "measures": [m.as_dict() for m in self.measures],
        }


def arc_length_positions(points: Tensor) -> Tensor:
    """Cumulative Euclidean length along the polyline of ``points`` (K×P), scaled to [0, 1]."""
    if points.shape[0] < 2:
        return torch.zeros(points.shape[0], dtype=torch.float64)
    seg = (points[1:] - points[:-1]).double().norm(dim=1)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), seg.cumsum(0)])
    return cum / cum[-1] if float(cum[-1]) > 0 else torch.linspace(0, 1, points.shape[0], dtype=torch.float64)


def measures_along(
    objective: ObjectiveLike,
    points: Tensor,
    *,
    positions: Tensor | list[float] | None = None,
    labels: list | None = None,
    xlabel: str = "path position",
    progress: bool | None = None,
    **measure_kwargs: Any,
) -> AlongResult:
    """:func:`measure_point` at every row of ``points`` (K×P).

    ``positions`` default to the arc-length position in [0, 1] (a path); ``measure_kwargs`` go to
    :func:`measure_point` (``split``, ``batch``, ``k``, ``trace_probes``, ``epsilon``, ...).
    """
    if not isinstance(points, Tensor) or points.ndim != 2 or points.shape[1] != objective.size:
        shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise UsageError(f"points must be a K×{objective.size} tensor of flat parameter vectors; got {shape}")
    k = points.shape[0]
    pos = arc_length_positions(points) if positions is None else torch.as_tensor(positions, dtype=torch.float64)
    if pos.shape != (k,):
        raise UsageError(f"positions must have one entry per point ({k}); got {tuple(pos.shape)}")
    labels = list(range(k)) if labels is None else list(labels)
    if progress is None:
        progress = sys.stderr.isatty()
    from rich.progress import Progress

    measures = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("curvature along points", total=k)
        for i in range(k):
            measures.append(measure_point(objective, points[i], **measure_kwargs))
            bar.advance(task)
    return AlongResult(pos, labels, measures, xlabel)


def snapshot_positions(snapshots: list[tuple[int, int]]) -> tuple[Tensor, str]:
    """Epochs as x if they are distinct, else steps."""
    epochs = [float(e) for e, _ in snapshots]
    if len(set(epochs)) == len(epochs):
        return torch.tensor(epochs, dtype=torch.float64), "epoch"
    return torch.tensor([float(s) for _, s in snapshots], dtype=torch.float64), "step"


def measures_along_trajectory(
    run: Any,
    *,
    objective: ObjectiveLike = None,
    progress: bool | None = None,
    **measure_kwargs: Any,
) -> AlongResult:
    """:func:`measure_point` at every snapshot of a training run.

    ``run`` is a :class:`topograph.runs.Run` (``Run.open(path)``) or anything with its two
    calls: ``snapshots()`` gives the (epoch, step) labels and the S×P stack of points,
    ``objective()`` the objective (unless one is passed).
    """
    snaps, points = run.snapshots()
    if len(snaps) == 0:
        raise UsageError("the run has no snapshots: train with snapshots enabled")
    objective = run.objective() if objective is None else objective
    pos, xlabel = snapshot_positions([tuple(s) for s in snaps])
    return measures_along(objective, points, positions=pos, labels=[tuple(s) for s in snaps],
                          xlabel=xlabel, progress=progress, **measure_kwargs)


def plot_along(
    result: AlongResult,
    path: str | os.PathLike,
    *,
    measures: tuple[str, ...] = PLOTTED,
    title: str | None = None,
) -> list[Path]:
    """One panel per measure against ``result.positions``; saved as PNG and SVG.

    Measures that are NaN everywhere (not computed) are left out.
    """
    cols = [(m, result.column(m)) for m in measures]
    cols = [(m, c) for m, c in cols if not bool(torch.isnan(c).all())]
    if not cols:
        raise UsageError("nothing to plot: every requested measure is NaN")
    fig = new_figure(6.0, 1.9 * len(cols) + 0.6)
    axes = fig.subplots(len(cols), 1, sharex=True, squeeze=False)[:, 0]
    x = result.positions.numpy()
    for ax, (name, col) in zip(axes, cols):
        ax.plot(x, col.numpy(), marker="o", ms=3)
        ax.set_ylabel(LABELS.get(name, name), fontsize=8)
        ax.grid(alpha=0.3)
        if name == "top_eigenvalue" and bool((col > 0).all()) and float(col.max() / col.min()) > 30:
            ax.set_yscale("log")
    axes[-1].set_xlabel(result.xlabel)
    fig.suptitle(title or f"curvature along {result.xlabel.split()[0]} ({len(result.measures)} points)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=150)


__all__ = ["AlongResult", "arc_length_positions", "measures_along", "measures_along_trajectory",
           "plot_along", "snapshot_positions"]

