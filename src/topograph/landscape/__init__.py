"""Maps: filter-normalised loss/accuracy surfaces, trajectories, and the batched engine.

>>> import torch
>>> from torch import nn
>>> from topograph.core import Objective
>>> from topograph.landscape import random_directions, compute_surface
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
>>> objective = Objective(model, nn.functional.cross_entropy, (torch.randn(200, 20), torch.randint(0, 3, (200,))))
>>> d = random_directions(objective, dim=2, norm="filter", seed=0)
>>> surf = compute_surface(objective, d, range=(-1, 1), resolution=5, progress=False)
>>> surf.loss.shape, surf.work.forward_passes
((5, 5), 25)
>>> bool(abs(surf.loss[2, 2] - objective.loss()) < 1e-6)     # the centre is the model itself
True

``contour_plot(surf, path="surface")`` then writes surface.png and surface.svg; ``out="surface.h5"``
keeps the grid in a resumable file.

Modules: :mod:`~topograph.landscape.directions` (what to plot along),
:mod:`~topograph.landscape.surface` (grids, resumption, torch.distributed),
:mod:`~topograph.landscape.storage` (the HDF5 file), :mod:`~topograph.landscape.trajectory`
(projections), :mod:`~topograph.landscape.plots` (figures), :mod:`~topograph.landscape.quick`
(the quickstart's digits map).  Every point is evaluated by the core's
:class:`~topograph.core.SubspaceEvaluator`.  See docs/maps.md.
"""

from topograph.landscape.directions import (
    Directions,
    interpolation_directions,
    pca_directions,
    plane_directions,
    random_directions,
    user_directions,
)
from topograph.landscape.plots import (
    batch_size_panel,
    color_limits,
    contour_plot,
    curve_plot,
    save_figure,
    surface_3d_plot,
)
from topograph.landscape.quick import TrajectoryMap, trajectory_map
from topograph.landscape.surface import Surface, compute_surface, fixed_batch, grid_axes
from topograph.landscape.trajectory import Trajectory, project

__all__ = [
    "Directions", "Surface", "Trajectory", "TrajectoryMap", "batch_size_panel", "color_limits", "compute_surface",
    "contour_plot", "curve_plot", "save_figure", "surface_3d_plot", "trajectory_map",
    "fixed_batch", "grid_axes", "interpolation_directions", "pca_directions", "plane_directions",
    "project", "random_directions", "user_directions",
]
