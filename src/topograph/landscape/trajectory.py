"""Training trajectories projected onto the plane (or line) of a map.

For snapshots θ_t and directions δ_1 … δ_m through the centre θ*, the coordinates are the
least-squares solution (Li et al. 2018, ``projection.project_2D`` with ``proj_method='lstsq'``)

    α_t = argmin_α ‖(θ_t − θ*) − Σ_j α_j δ_j‖²,   i.e.   (DDᵀ) α_t = D (θ_t − θ*),

solved from the m×m normal equations in float64.  Unlike the 'cos' formula this gives
coordinates in the units of the map's axes even when the δ_j are neither unit length nor
orthogonal.  The residual fraction ‖d_t − Dᵀα_t‖ / ‖d_t‖ says how much of the motion the plane
misses: close to 1 on a random plane in high dimension (the captured share of ‖d_t‖² is about
m/P), small on the PCA plane of the trajectory itself (Li et al. §7), which is why trajectories
belong on PCA planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topograph.errors import UsageError
from topograph.landscape.directions import Directions


@dataclass
class Trajectory:
    """A projected path.

    Attributes
    ----------
    label: e.g. the optimizer's name.
    coordinates: ``(S, m)`` array; row t holds α_t.
    residual_fraction: ``(S,)`` array of ‖d_t − Dᵀα_t‖/‖d_t‖ (NaN where d_t ≈ 0).
    steps: the snapshots' ``(epoch, step)`` labels, if known.
    """

    label: str
    coordinates: np.ndarray
    residual_fraction: np.ndarray
    steps: list[tuple[float, int]] = field(default_factory=list)

    @property
    def mean_residual_fraction(self) -> float:
        r = self.residual_fraction[np.isfinite(self.residual_fraction)]
        return float(r.mean()) if r.size else float("nan")


def project(snapshots: Tensor, directions: Directions, *, label: str = "",
            steps: list[tuple[float, int]] | None = None) -> Trajectory:
    """Project the rows of ``snapshots`` (S×P) onto ``directions`` by least squares (float64)."""
    snaps = torch.as_tensor(snapshots).detach()
    p = directions.vectors.shape[1]
    if snaps.ndim == 1:
        snaps = snaps.unsqueeze(0)
    if snaps.ndim != 2 or snaps.shape[1] != p:
        raise UsageError(f"snapshots have shape {tuple(snaps.shape)}; they must be S×{p} "
                         "(one flat parameter vector per row)")
    dvec = directions.vectors.detach().to("cpu", torch.float64)           # (m, P)
    d = snaps.to("cpu", torch.float64) - directions.center.detach().to("cpu", torch.float64)
    gram = dvec @ dvec.T                                                  # (m, m)
    if torch.linalg.matrix_rank(gram) < gram.shape[0]:
        raise UsageError("directions are linearly dependent; a projection needs independent directions")
    coords = torch.linalg.solve(gram, dvec @ d.T).T                       # (S, m)
    resid = (d - coords @ dvec).norm(dim=1)
    norms = d.norm(dim=1)
    # a snapshot at the centre (up to rounding of the centre to the model's dtype) has no
    # direction of motion: its residual fraction is undefined (NaN)
    tiny = 1e-6 * float(norms.max()) if norms.numel() else 0.0
    frac = torch.where(norms > tiny, resid / norms.clamp_min(1e-300), torch.full_like(norms, float("nan")))
    return Trajectory(label, coords.numpy(), frac.numpy(), list(steps or []))


def as_snapshot_stack(source: Any) -> tuple[list[tuple[float, int]], Tensor]:
    """Accept an S×P tensor or a list of flat vectors (a run's come from ``Run.snapshots()``)."""
    if isinstance(source, Tensor):
        return [], source
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], Tensor):
        return [], torch.stack([s.reshape(-1) for s in source])
    raise UsageError("a trajectory must be an S×P tensor or a list of flat vectors (for a run: "
                     "topograph.runs.Run.open(path).snapshots())")


__all__ = ["Trajectory", "as_snapshot_stack", "project"]


def covering_range(trajectories: Sequence[Trajectory], *, margin: float = 0.15) -> list[tuple[float, float]]:
    """Per-axis (LO, HI) holding every projected path and the centre, widened by ``margin``
    of the span on each side — the window a map needs so that the paths lie on it."""
    pts = np.concatenate([np.asarray(t.coordinates) for t in trajectories]
                         + [np.zeros((1, np.asarray(trajectories[0].coordinates).shape[1]))])
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, 1e-3)
    return [(float(lo[i] - margin * span[i]), float(hi[i] + margin * span[i])) for i in range(pts.shape[1])]
