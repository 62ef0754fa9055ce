"""Guided Exploration's probes: the directions around θ, the loss map, and the minibatch Hessian.

An exploration event of :class:`~topograph.optim.GuidedExploration` (seed 000) evaluates the loss
at θ and θ ± σu_i for n directions u_i and reads slopes and curvatures off finite differences:

    slope_i = (L_i^+ − L_i^−)/(2σ) ≈ gᵀu_i,   curv_i = (L_i^+ − 2L₀ + L_i^−)/σ² ≈ u_iᵀHu_i,

exact on quadratics.  This module holds what an event is made of: the seeded, filter-normalised
directions (Li et al. 2018, :func:`topograph.core.directions.normalize_directions`), the
:class:`ProbeResult` of one event, the probe points, and the minibatch Hessian as a linear
operator for Lanczos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from topograph.core.directions import normalize_directions
from topograph.core.params import ParamSpec
from topograph.errors import UsageError


@dataclass(frozen=True)
class ProbeResult:
    """The loss map of one exploration event (directions are regenerated from the event).

    ``loss0`` = L(θ); ``loss_plus``/``loss_minus`` = L(θ ± σu_i); ``slopes`` ≈ gᵀu_i;
    ``curvatures`` ≈ u_iᵀHu_i; ``direction_sq_norms`` = ‖u_i‖²; ``kappas`` = curvatures/‖u_i‖²;
    ``lanczos_min``/``lanczos_max``: extreme Ritz values of the minibatch Hessian (``hvp_iters``).
    """

    event: int
    sigma: float
    loss0: float
    loss_plus: tuple[float, ...]
    loss_minus: tuple[float, ...]
    slopes: tuple[float, ...]
    curvatures: tuple[float, ...]
    direction_sq_norms: tuple[float, ...]
    kappas: tuple[float, ...]
    lanczos_min: float | None = None
    lanczos_max: float | None = None


def draw_directions(spec: ParamSpec, theta: Tensor, seeds: list[int], *, filter_norm: bool,
                    ignore_1d: bool) -> Tensor:
    """(n, P) directions at the flat point ``theta``: row i a float32 Gaussian draw of P numbers
    from a CPU generator seeded with ``seeds[i]`` (the same numbers on every device), moved to θ's
    device and dtype, then filter-normalised against θ (``filter_norm``) or scaled onto the sphere
    of radius √P."""
    raw = torch.empty(len(seeds), spec.size, dtype=torch.float32)
    gen = torch.Generator()
    for row, seed in zip(raw, seeds):
        row.normal_(generator=gen.manual_seed(int(seed)))
    u = raw.to(device=theta.device, dtype=theta.dtype)
    if not filter_norm:
        return u.mul_(math.sqrt(spec.size) / torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-30))
    return normalize_directions(spec, u, theta, norm="filter", ignore_1d=ignore_1d)


def probe_coefficients(n: int, sigma: float) -> Tensor:
    """The (1 + 2n)×n coefficients of an event's points on the directions: rows 0, +σe_1, −σe_1, …"""
    coef = torch.zeros(1 + 2 * n, n, dtype=torch.float64)
    index = torch.arange(n)
    coef[1 + 2 * index, index], coef[2 + 2 * index, index] = sigma, -sigma
    return coef


def loss_map(event: int, sigma: float, values: list[float], sq_norms: list[float]) -> ProbeResult:
    """The :class:`ProbeResult` of the losses ``values`` = [L₀, L_1^+, L_1^−, L_2^+, …]."""
    if any(n == 0.0 for n in sq_norms):
        raise UsageError("GuidedExploration: a probe direction is zero (with filter_norm=True and ignore_1d=True "
                         "every 1-D parameter tensor is left out); use filter_norm=False or ignore_1d=False")
    l0, lp, lm = values[0], values[1::2], values[2::2]
    curvatures = [(a - 2.0 * l0 + b) / sigma**2 for a, b in zip(lp, lm)]
    return ProbeResult(event, sigma, l0, tuple(lp), tuple(lm), tuple((a - b) / (2.0 * sigma) for a, b in zip(lp, lm)),
                       tuple(curvatures), tuple(sq_norms), tuple(c / n for c, n in zip(curvatures, sq_norms)))


class MinibatchHessian:
    """The minibatch Hessian as a linear operator (one kept gradient graph, double backward)."""

    def __init__(self, params: list[Tensor], grads: list[Tensor], state: dict) -> None:
        self.params, self.grads, self.state = params, grads, state
        self.size = sum(p.numel() for p in params)
        self.dtype, self.device = params[0].dtype, params[0].device

    def matvec(self, v: Tensor) -> Tensor:
        parts = [c.view_as(p) for c, p in zip(torch.split(v, [p.numel() for p in self.params]), self.params)]
        hv = torch.autograd.grad(self.grads, self.params, grad_outputs=parts, retain_graph=True, allow_unused=True)
        self.state["hvps"] += 1
        return torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1)
                          for h, p in zip(hv, self.params)]).detach()


def probe_point(theta: Tensor, dirs: Tensor, k: int, sigma: float) -> Tensor:
    """Probe k's point θ ± σu_i (k = 2i: +, k = 2i + 1: −); probes and jumps both use it, so a
    jump lands exactly on its probe."""
    return torch.add(theta, dirs[k // 2], alpha=-sigma if k % 2 else sigma)


def write_flat(params: list[Tensor], flat: Tensor) -> None:
    """Copy the flat vector into the parameters (exact for the same dtype)."""
    with torch.no_grad():
        for p, part in zip(params, torch.split(flat, [p.numel() for p in params])):
            p.copy_(part.view_as(p))


def set_grads(params: list[Tensor], grads: list[Tensor | None]) -> None:
    for p, g in zip(params, grads):
        p.grad = g


__all__ = ["MinibatchHessian", "ProbeResult", "draw_directions", "loss_map", "probe_coefficients", "probe_point",
           "set_grads", "write_flat"]
