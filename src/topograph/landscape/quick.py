"""The quickstart's map: the loss surface around one solution with several optimizers' paths.

:func:`trajectory_map` is what ``topograph quickstart`` calls after training SGD, momentum and
Adam on digits: it centres the map on one run's final point (Adam's by default), takes the PCA
plane of all the runs' offsets from that point (Li et al. 2018, §7 — a random plane would miss
almost all of the motion), projects every path onto it by least squares, computes the surface
over a window that holds all paths, and draws the contour map with the paths overlaid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.errors import UsageError
from topograph.landscape.directions import pca_directions, random_directions
from topograph.landscape.plots import contour_plot
from topograph.landscape.surface import Surface, compute_surface
from topograph.landscape.trajectory import Trajectory, covering_range, project


@dataclass
class TrajectoryMap:
    """The surface, the projected paths and the figure files of :func:`trajectory_map`."""

    surface: Surface
    trajectories: list[Trajectory]
    figures: list[Path] = field(default_factory=list)


def trajectory_map(
    objective: ObjectiveLike,
    trajectories: list[tuple[str, Tensor]],
    *,
    path: str | Path | None = None,
    center_label: str | None = "adam",
    plane: str = "pca",
    resolution: int = 25,
    margin: float = 0.15,
    split: str = "train",
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
) -> TrajectoryMap:
    """Map around the final point of run ``center_label`` (default the last one given) with all
    ``trajectories`` — ``[(label, S×P snapshots), …]`` — projected and overlaid.

    ``plane="pca"`` (default) spans the two principal directions of all the paths' offsets from
    the centre; ``"random"`` two filter-normalised random directions (seeded), over [-1, 1]².
    The figure goes to ``path`` (PNG and SVG) when given; ``out`` keeps the HDF5 grid.
    """
    if not trajectories:
        raise UsageError("trajectories: give at least one (label, snapshots) pair")
    labels = [lab for lab, _ in trajectories]
    stacks = [torch.as_tensor(s).detach().reshape(len(s), -1) for _, s in trajectories]
    centre_idx = labels.index(center_label) if center_label in labels else len(labels) - 1
    center = stacks[centre_idx][-1].to(objective.flat_params())
    if plane == "pca":
        d = pca_directions(objective, torch.cat(stacks), center=center)
    elif plane == "random":
        d = random_directions(objective, center=center, seed=seed)
    else:
        raise UsageError(f"plane={plane!r}; use 'pca' or 'random'")
    projected = [project(s, d, label=lab) for lab, s in zip(labels, stacks)]
    if plane == "pca":
        rng = covering_range(projected, margin=margin)
    else:
        rng = [(-1.0, 1.0), (-1.0, 1.0)]
    surf = compute_surface(objective, d, range=rng, resolution=resolution, split=split, out=out,
                           progress=progress)
    figs = []
    if path is not None:
        fig = contour_plot(surf, projected, title=f"loss around the {labels[centre_idx]} solution, "
                                                  "PCA plane of the paths" if plane == "pca" else None,
                           path=path)
        figs = list(fig.paths)
    return TrajectoryMap(surf, projected, figs)


__all__ = ["TrajectoryMap", "trajectory_map"]
