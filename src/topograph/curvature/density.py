"""Eigenvalue spectral density by stochastic Lanczos quadrature (SLQ), and its plot.

Ghorbani, Krishnan & Xiao (2019), "An investigation into neural net optimization via Hessian
eigenvalue density" (after Lin, Saad & Yang 2016).  The spectral density of a symmetric n×n A is
φ(t) = (1/n) Σ_i δ(t − λ_i); broadened by a Gaussian g_σ it is φ_σ(t) = (1/n) Σ_i g_σ(t − λ_i)
= (1/n) tr g_σ(t·I − A).  For a unit random vector v (uniform direction), E[vᵀ f(A) v] = tr f(A)/n,
and m Lanczos steps from v give the Gauss quadrature vᵀ f(A) v ≈ Σ_j τ_j f(θ_j) with nodes θ_j,
the eigenvalues of T_m, and weights τ_j = s_{1j}², the squared first components of its
eigenvectors (exact for polynomials f of degree ≤ 2m − 1).  Averaging over ``runs`` start vectors:

    φ_σ(t) ≈ (1/runs) Σ_r Σ_j τ_rj g_σ(t − θ_rj).

The weights of each run sum to 1, so φ_σ integrates to 1; the grid extends 5σ beyond the
extreme nodes so the numerical integral on it is 1 to ~10⁻⁶.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from topograph.core.work import Work
from topograph.curvature._random import generator
from topograph.curvature._random import probes as draw_probes
from topograph.curvature.lanczos import lanczos_tridiagonal
from topograph.curvature.operators import LinearOperator
from topograph.curvature.results import DensityResult
from topograph.errors import UsageError
from topograph.io import new_figure, save_figure


def gaussian_density(nodes: Tensor, weights: Tensor, grid: Tensor, sigma: float) -> Tensor:
    """(1/runs) Σ_r Σ_j τ_rj g_σ(t − θ_rj) evaluated at every t of ``grid``."""
    diff = grid[:, None] - nodes.reshape(-1)[None, :]
    kernel = torch.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return kernel @ weights.reshape(-1) / nodes.shape[0]


def spectral_density(
    op: LinearOperator,
    *,
    steps: int = 60,
    runs: int = 1,
    sigma: float | None = None,
    grid_points: int = 1000,
    seed: int | None = 0,
) -> DensityResult:
    """The Gaussian-broadened eigenvalue density of ``op`` by SLQ (``runs × steps`` products).

    Parameters
    ----------
    steps:
        Lanczos steps per run (nodes per run); Ghorbani et al. use ~90.
    runs:
        independent random start vectors (Rademacher, normalised) averaged.
    sigma:
        Gaussian broadening; default 1 % of the span of the nodes (at least 10⁻¹² ·max|θ|).
    grid_points:
        points of the returned grid.
    """
    steps, runs = int(steps), int(runs)
    if steps < 1 or runs < 1:
        raise UsageError(f"steps and runs must be positive integers, got steps={steps}, runs={runs}")
    if sigma is not None and not sigma > 0:
        raise UsageError(f"sigma must be positive, got {sigma}")
    start = time.perf_counter()
    gen = generator(seed)
    n = op.size
    steps = min(steps, n)
    nodes = torch.zeros(runs, steps, dtype=torch.float64)
    weights = torch.zeros(runs, steps, dtype=torch.float64)
    matvecs = 0
    for r in range(runs):
        v = draw_probes(n, 1, gen=gen, dtype=op.dtype, device=op.device)[0]
        tri = lanczos_tridiagonal(op, v, steps)
        matvecs += tri.matvecs
        theta, s = torch.linalg.eigh(tri.matrix())
        m = theta.shape[0]
        nodes[r, :m] = theta
        weights[r, :m] = s[0] ** 2  # zero weight pads an early (exact) stop
    span = float(nodes.max() - nodes.min())
    if sigma is None:
        sigma = max(0.01 * span, 1e-12 * float(nodes.abs().max()), 1e-30)
    lo, hi = float(nodes.min()) - 5 * sigma, float(nodes.max()) + 5 * sigma
    grid = torch.linspace(lo, hi, int(grid_points), dtype=torch.float64)
    density = gaussian_density(nodes, weights, grid, sigma)
    return DensityResult(
        grid=grid, density=density, nodes=nodes, weights=weights, sigma=float(sigma), size=n,
        work=Work(hvps=matvecs), seconds=time.perf_counter() - start,
    )


def plot_density(
    result: DensityResult,
    path: str | os.PathLike,
    *,
    log: bool = True,
    title: str | None = None,
) -> list[Path]:
    """Plot φ_σ (log-scaled y by default, as Ghorbani et al.) to ``path`` as PNG and SVG.

    ``path`` is a file stem or a name with either suffix; returns the two written paths.
    """
    fig = new_figure()
    ax = fig.add_subplot()
    dens = result.density.numpy()
    if log:
        floor = max(float(dens.max()) * 1e-8, 1e-300)
        ax.semilogy(result.grid.numpy(), dens.clip(min=floor))
    else:
        ax.plot(result.grid.numpy(), dens)
    ax.axvline(0.0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)" if log else "density")
    ax.set_title(title or f"Hessian eigenvalue density (SLQ, {result.nodes.shape[0]} runs × "
                 f"{result.nodes.shape[1]} steps, σ={result.sigma:.2g})")
    return save_figure(fig, path, dpi=150)


__all__ = ["gaussian_density", "plot_density", "spectral_density"]
