"""Sharpness and critical-point measures of a loss at one parameter point.

* **largest eigenvalue** λ_max(H) — Lanczos (:func:`topograph.curvature.lanczos`);
* **trace** tr(H) — Hutch++ or Hutchinson (:mod:`topograph.curvature.trace`), or exactly for
  piecewise-linear networks (:mod:`topograph.curvature.exact_trace`);
* **ε-sharpness** (Keskar et al. 2017, "On large-batch training for deep learning: generalization
  gap and sharp minima", Metric 2.1) — :func:`epsilon_sharpness`;
* **negative curvature / saddle indicator** — the fraction of the spectrum below zero (SLQ
  density) and the most negative eigenvalue relative to the largest — :func:`negative_curvature`;
* **per-layer breakdown** — top eigenvalue and trace of each layer's diagonal Hessian block —
  :func:`layer_curvature`;
* :func:`curvature_summary` — top eigenvalue and trace in one fast call (a dict), and
  :func:`measure_point` — all of the above that apply, sharing one Hessian operator.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.core.linalg import LinearOperator
from topograph.core.work import Work
from topograph.curvature._random import generator
from topograph.curvature.density import spectral_density
from topograph.curvature.exact_trace import exact_trace, supports_exact_trace
from topograph.curvature.lanczos import lanczos
from topograph.curvature.operators import HessianOperator
from topograph.curvature.results import DensityResult, EigenResult, TraceResult
from topograph.curvature.trace import hutchinson, hutchpp
from topograph.errors import UsageError

TRACE_METHODS = ("hutch++", "hutchinson", "exact", "auto")


def _flat_theta(objective: ObjectiveLike, theta: Any) -> Tensor:
    if theta is None:
        return objective.flat_params()
    return objective.spec.as_flat(theta).detach().to(objective.device)


def estimate_trace(op: Any, *, probes: int = 30, method: str = "hutch++", seed: int | None = 0) -> TraceResult:
    """tr(op) with ``probes`` products by ``"hutch++"`` (needs ≥ 3) or ``"hutchinson"``;
    ``"exact"``: :func:`~topograph.curvature.exact_trace.exact_trace` (a :class:`HessianOperator`
    of a piecewise-linear network, no probes); ``"auto"``: exact when supported, else Hutch++."""
    if method in ("exact", "auto"):
        objective = op.objective if isinstance(op, HessianOperator) else None
        ok, why = (supports_exact_trace(objective) if objective is not None
                   else (False, "the operator is not a HessianOperator of a network Objective"))
        if ok:
            return exact_trace(objective, op.theta, split=op.split, batch=op.batch, params=op.params)
        if method == "exact":
            raise UsageError(f"trace method 'exact' does not apply: {why}")
        method = "hutch++"
    if method == "hutch++":
        return hutchpp(op, hvps=probes, seed=seed)
    if method == "hutchinson":
        return hutchinson(op, probes=probes, seed=seed)
    raise UsageError(f"trace method {method!r}; use one of {', '.join(TRACE_METHODS)}")


# ---------------------------------------------------------------------------- ε-sharpness
@dataclass
class EpsilonSharpness:
    """Keskar et al.'s ε-sharpness at θ.

    ``value`` = 100 · (max_{δ∈C_ε} L(θ+δ) − L(θ)) / (1 + L(θ)) (their Metric 2.1, in percent);
    ``increase`` = max L(θ+δ) − L(θ) (the raw ascent); ``max_loss`` the best L(θ+δ) found;
    ``work`` the forward and backward passes spent.
    """

    value: float
    increase: float
    loss: float
    max_loss: float
    epsilon: float
    steps: int
    work: Work
    seconds: float


def epsilon_sharpness(
    objective: ObjectiveLike,
    theta: Any = None,
    *,
    epsilon: float = 1e-3,
    steps: int = 10,
    step_size: float = 0.25,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    seed: int | None = 0,
) -> EpsilonSharpness:
    """ε-sharpness (Keskar et al. 2017, Metric 2.1, full space A = I) at θ.

    The box is C_ε = {δ : |δ_i| ≤ b_i}, b_i = ε(|θ_i| + 1).  Keskar et al. maximise L(θ+δ) over
    C_ε with 10 iterations of L-BFGS-B.  Here the maximisation is ``steps`` iterations of
    projected sign-gradient ascent (steepest ascent for the ℓ∞ geometry of the box, as in PGD):

        δ_0 = b ⊙ u, u ~ Uniform[−1, 1]ⁿ (seeded; a start at δ = 0 stalls where ∇L(θ) = 0),
        δ_{t+1} = clip(δ_t + step_size · b ⊙ sign ∇L(θ+δ_t), −b, b),

    keeping the largest L(θ+δ_t) seen (t = 0 … steps).  Each iteration is one gradient on the
    same data (``steps + 1`` gradients in all, plus one loss at θ).  Any ascent method yields a
    lower bound on the true maximum; a maximum at a vertex of the box (typical of a locally
    quadratic loss) is reached exactly by sign steps.
    """
    if not epsilon > 0:
        raise UsageError(f"epsilon must be positive, got {epsilon}")
    if int(steps) < 0:
        raise UsageError(f"steps must be a non-negative integer, got {steps}")
    start = time.perf_counter()
    x = _flat_theta(objective, theta)
    base = objective.loss(x, split=split, batch=batch)
    bound = epsilon * (x.abs() + 1)
    u = torch.rand(x.shape, generator=generator(seed), dtype=torch.float64) * 2 - 1
    delta = bound * u.to(bound)
    best = -math.inf
    grads = 0
    for t in range(int(steps) + 1):
        val, g = objective.value_and_grad(x + delta, split=split, batch=batch)
        grads += 1
        best = max(best, float(val))
        if t < int(steps):
            delta = torch.maximum(torch.minimum(delta + step_size * bound * torch.sign(g), bound), -bound)
    increase = best - base
    return EpsilonSharpness(
        value=100.0 * increase / (1.0 + base), increase=increase, loss=base, max_loss=best,
        epsilon=float(epsilon), steps=int(steps), work=Work(forward_passes=1 + grads, backward_passes=grads),
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------- negative curvature
@dataclass
class NegativeCurvature:
    """A saddle indicator from one SLQ estimate of the spectrum.

    ``negative_fraction``: quadrature estimate of the fraction of eigenvalues < −threshold·λ_max;
    ``negative_mass``: of (1/n) Σ_{λ<0} |λ| (how much negative curvature);
    ``lambda_min``, ``lambda_max``: the extreme Ritz values (inside the spectrum, so λ_min is an
    upper bound on the true smallest eigenvalue and λ_max a lower bound on the largest);
    ``ratio`` = |λ_min| / λ_max when λ_min < 0, else 0 (≈ 0 at a minimum, O(1) at a saddle).
    """

    negative_fraction: float
    negative_mass: float
    lambda_min: float
    lambda_max: float
    ratio: float
    work: Work
    seconds: float
    density: DensityResult | None = field(default=None, repr=False)


def negative_curvature_from_density(density: DensityResult, *, threshold: float = 0.0) -> NegativeCurvature:
    """Read the saddle indicator off an SLQ density (see :class:`NegativeCurvature`)."""
    nodes, weights = density.nodes, density.weights
    used = weights > 0
    lam_max = float(nodes[used].max())
    lam_min = float(nodes[used].min())
    cut = -threshold * abs(lam_max)
    frac = float((weights * (nodes < cut)).sum(1).mean())
    mass = float((weights * nodes.clamp(max=0).abs()).sum(1).mean())
    ratio = abs(lam_min) / lam_max if lam_min < 0 and lam_max > 0 else (math.inf if lam_min < 0 else 0.0)
    return NegativeCurvature(frac, mass, lam_min, lam_max, ratio, density.work, density.seconds, density)


def negative_curvature(
    op_or_objective: LinearOperator | ObjectiveLike,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    steps: int = 40,
    runs: int = 1,
    threshold: float = 0.0,
    seed: int | None = 0,
) -> NegativeCurvature:
    """The fraction and magnitude of negative eigenvalues of the Hessian at θ (saddle indicator).

    One SLQ estimate (``runs × steps`` products; :func:`spectral_density`) gives both the
    spectral mass below zero and the extreme Ritz values.  Accepts an operator or an objective.
    """
    op = op_or_objective if isinstance(op_or_objective, LinearOperator) else HessianOperator(
        op_or_objective, theta, split=split, batch=batch)
    return negative_curvature_from_density(
        spectral_density(op, steps=steps, runs=runs, seed=seed), threshold=threshold)


# ---------------------------------------------------------------------------- per layer
@dataclass
class LayerCurvature:
    """Top eigenvalue(s) and trace of one layer's diagonal Hessian block ∂²L/∂θ_S²."""

    name: str
    params: tuple[str, ...]
    size: int
    top_eigenvalues: list[float]
    trace: float
    trace_std_error: float
    work: Work
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def default_layer_groups(objective: ObjectiveLike) -> dict[str, list[str]]:
    """Parameter tensors grouped by the module that owns them (``fc.weight`` + ``fc.bias``)."""
    groups: dict[str, list[str]] = {}
    for name in objective.spec.names:
        owner = name.rsplit(".", 1)[0] if "." in name else name
        groups.setdefault(owner, []).append(name)
    return groups


def layer_curvature(
    objective: ObjectiveLike,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    groups: dict[str, list[str]] | None = None,
    k: int = 1,
    tol: float = 1e-3,
    trace_probes: int = 30,
    trace_method: str = "auto",
    seed: int | None = 0,
) -> list[LayerCurvature]:
    """Per-layer Hessian blocks: top-k eigenvalues (Lanczos) and trace of each block.

    ``groups`` maps a label to parameter names (default: :func:`default_layer_groups`).  A block
    small enough (size ≤ ``trace_probes``) gets its exact trace from unit vectors instead.
    """
    groups = default_layer_groups(objective) if groups is None else groups
    x = _flat_theta(objective, theta)
    out = []
    for label, names in groups.items():
        start = time.perf_counter()
        work0 = objective.work.copy()
        op = HessianOperator(objective, x, split=split, batch=batch, params=list(names))
        n = op.size
        eig = lanczos(op, k=min(k, n), which="LA", tol=tol, seed=seed)
        if n <= trace_probes:
            eye = torch.eye(n, dtype=op.dtype, device=op.device)
            tr_val = float(sum(float(op.matvec(eye[i])[i]) for i in range(n)))
            tr = TraceResult(tr_val, 0.0, torch.zeros(0), Work(hvps=n), 0.0, "exact")
        else:
            tr = estimate_trace(op, probes=trace_probes, method=trace_method, seed=seed)
        out.append(LayerCurvature(
            name=label, params=tuple(names), size=n,
            top_eigenvalues=[float(v) for v in eig.eigenvalues],
            trace=tr.estimate, trace_std_error=tr.std_error, work=objective.work - work0,
            seconds=time.perf_counter() - start,
        ))
    return out


# ---------------------------------------------------------------------------- all at a point
def curvature_summary(
    objective: ObjectiveLike,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    k: int = 1,
    trace_probes: int = 30,
    trace_method: str = "auto",
    tol: float = 1e-3,
    seed: int | None = 0,
) -> dict:
    """Top-k Hessian eigenvalues (Lanczos, relative residual ``tol``) and the trace, as a dict.

    Keys: ``top_eigenvalues`` (list, descending), ``top_eigenvalue``, ``trace``,
    ``trace_std_error``, ``work`` (the forward passes, backward passes and Hessian-vector
    products spent, as a dict), ``seconds``.  One gradient graph serves every product.
    """
    start = time.perf_counter()
    work0 = objective.work.copy()
    op = HessianOperator(objective, theta, split=split, batch=batch)
    eig = lanczos(op, k=k, which="LA", tol=tol, seed=seed, start="gradient" if k == 1 else "random")
    tr = estimate_trace(op, probes=trace_probes, method=trace_method, seed=seed)
    return {
        "top_eigenvalues": [float(v) for v in eig.eigenvalues],
        "top_eigenvalue": float(eig.eigenvalues[0]),
        "trace": tr.estimate,
        "trace_std_error": tr.std_error,
        "work": (objective.work - work0).as_dict(),
        "seconds": time.perf_counter() - start,
    }


@dataclass
class PointMeasures:
    """The curvature measures at one point (NaN for those not requested)."""

    loss: float
    top_eigenvalues: list[float]
    trace: float
    trace_std_error: float
    epsilon_sharpness: float
    negative_fraction: float
    lambda_min: float
    saddle_ratio: float
    work: Work
    seconds: float

    @property
    def top_eigenvalue(self) -> float:
        return self.top_eigenvalues[0] if self.top_eigenvalues else math.nan

    def as_dict(self) -> dict:
        d = asdict(self)
        d["top_eigenvalue"] = self.top_eigenvalue
        return d


def measure_point(
    objective: ObjectiveLike,
    theta: Any = None,
    *,
    split: str = "train",
    batch: tuple[Tensor, Tensor] | None = None,
    k: int = 1,
    tol: float = 1e-3,
    trace_probes: int = 30,
    trace_method: str = "auto",
    epsilon: float | None = 1e-3,
    sharpness_steps: int = 10,
    density_steps: int | None = 30,
    seed: int | None = 0,
) -> PointMeasures:
    """Loss, top-k eigenvalues, trace, ε-sharpness (``epsilon=None`` skips) and the saddle
    indicator (``density_steps=None`` skips) at θ, sharing one Hessian operator."""
    start = time.perf_counter()
    work0 = objective.work.copy()
    x = _flat_theta(objective, theta)
    loss = objective.loss(x, split=split, batch=batch)
    op = HessianOperator(objective, x, split=split, batch=batch)
    eig: EigenResult = lanczos(op, k=k, which="LA", tol=tol, seed=seed)
    tr = estimate_trace(op, probes=trace_probes, method=trace_method, seed=seed)
    neg_frac = lam_min = ratio = math.nan
    if density_steps:
        nc = negative_curvature(op, steps=density_steps, seed=seed)
        neg_frac, lam_min, ratio = nc.negative_fraction, nc.lambda_min, nc.ratio
    eps = math.nan
    if epsilon is not None:
        eps = epsilon_sharpness(objective, x, epsilon=epsilon, steps=sharpness_steps, split=split,
                                batch=batch, seed=seed).value
    return PointMeasures(
        loss=loss, top_eigenvalues=[float(v) for v in eig.eigenvalues], trace=tr.estimate,
        trace_std_error=tr.std_error, epsilon_sharpness=eps, negative_fraction=neg_frac,
        lambda_min=lam_min, saddle_ratio=ratio, work=objective.work - work0,
        seconds=time.perf_counter() - start,
    )


__all__ = [
    "EpsilonSharpness", "LayerCurvature", "NegativeCurvature", "PointMeasures",
    "curvature_summary", "default_layer_groups", "epsilon_sharpness", "estimate_trace",
    "layer_curvature", "measure_point", "negative_curvature", "negative_curvature_from_density",
]
