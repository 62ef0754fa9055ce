"""Result records of the curvature algorithms: plain dataclasses with clear attributes.

Every result records the work it used in ``work`` (:class:`topograph.core.Work`: the operator
products as ``hvps`` — Hessian-vector products for a Hessian operator) and the wall-clock
``seconds``, so that methods can be compared at equal cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from topograph.core.work import Work


@dataclass
class EigenResult:
    """Eigenpairs of a symmetric operator.

    Attributes
    ----------
    eigenvalues:
        float64 tensor (m,), in descending order.
    eigenvectors:
        tensor (n, m): column ``i`` is the unit eigenvector of ``eigenvalues[i]`` (sign arbitrary).
    residuals:
        float64 tensor (m,): ‖A v_i − λ_i v_i‖ (for Lanczos the Ritz residual |β_m s_{m,i}|); for a
        symmetric A some eigenvalue lies within this distance of λ_i.
    converged:
        whether every requested pair met the tolerance.
    method, which:
        ``"lanczos"`` or ``"power"``; ``"LA"``, ``"SA"``, ``"both"`` or ``"LM"`` (power iteration
        finds the largest-magnitude eigenvalues).
    steps:
        Krylov dimension reached (Lanczos) or iterations per eigenpair (power).
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: bool
    work: Work
    seconds: float
    method: str
    which: str
    steps: int | list[int] = 0

    @property
    def top(self) -> float:
        """The largest eigenvalue found."""
        return float(self.eigenvalues[0])

    @property
    def bottom(self) -> float:
        """The smallest (most negative) eigenvalue found."""
        return float(self.eigenvalues[-1])


@dataclass
class TraceResult:
    """A stochastic estimate of tr(A).

    ``std_error`` is the estimated standard deviation of ``estimate`` (sample standard deviation
    of the random part divided by √(number of probes)); ``samples`` are the per-probe values of
    the random part (zᵀ A z for Hutchinson; of the deflated remainder for Hutch++), and
    ``exact_part`` the deterministic part (tr(QᵀAQ) for Hutch++, 0 for Hutchinson).
    """

    estimate: float
    std_error: float
    samples: Tensor
    work: Work
    seconds: float
    method: str
    exact_part: float = 0.0


@dataclass
class DensityResult:
    """Eigenvalue spectral density by stochastic Lanczos quadrature.

    Attributes
    ----------
    grid, density:
        float64 tensors (G,): the Gaussian-broadened density φ_σ(t) on ``grid``; ∫φ_σ = 1.
    nodes, weights:
        float64 tensors (runs, steps): Ritz values θ_j and Gauss-quadrature weights τ_j = s_{1j}²
        of each run (each row of weights sums to 1).  The quadrature estimates
        (1/n) Σ_i g(λ_i) ≈ (1/runs) Σ_r Σ_j τ_rj g(θ_rj).
    sigma:
        the Gaussian broadening width.
    size:
        n, the dimension of the operator.
    """

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor
    sigma: float
    size: int
    work: Work
    seconds: float
    extra: dict = field(default_factory=dict)

    def moment(self, p: int) -> float:
        """The quadrature estimate of the p-th spectral moment (1/n) Σ_i λ_i^p = tr(A^p)/n."""
        return float((self.weights * self.nodes**p).sum(dim=1).mean())

    def negative_fraction(self, threshold: float = 0.0) -> float:
        """Quadrature estimate of the fraction of eigenvalues below ``-threshold``."""
        return float((self.weights * (self.nodes < -threshold)).sum(dim=1).mean())

    def trace(self) -> float:
        """The quadrature estimate of tr(A) = n × first moment."""
        return self.size * self.moment(1)


def as_float64_cpu(x: Tensor | list | float) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float64).detach().cpu()
