"""Small linear algebra that several layers share: the linear-operator protocol and the Lanczos
tridiagonalisation (Lanczos 1950; Golub & Van Loan, *Matrix Computations*, §10.1).

Algorithms see a symmetric operator through its products (``matvec``), never a model — the
Hessian of an objective is one operator among others (the lesson of hessian-eigenthings).
:func:`lanczos_tridiagonal` builds the orthonormal Krylov basis Q_m and the tridiagonal
T_m = Q_mᵀ A Q_m with full reorthogonalisation; the curvature package turns it into eigenvalues
and spectral densities, Guided Exploration into the extreme curvature of a minibatch Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class LinearOperator(Protocol):
    """A symmetric n×n matrix known through its products: ``matvec(v) = A v`` for v ∈ Rⁿ."""

    @property
    def size(self) -> int: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def matvec(self, v: Tensor) -> Tensor: ...


@dataclass
class Tridiagonal:
    """The output of a Lanczos run: T_m's diagonal ``alpha`` (m,), off-diagonal ``beta`` (m,)
    (``beta[-1]`` is the residual coupling β_m) and the basis ``basis`` (m, n) as rows."""

    alpha: Tensor
    beta: Tensor
    basis: Tensor
    matvecs: int

    def matrix(self) -> Tensor:
        m = self.alpha.shape[0]
        t = torch.diag(self.alpha)
        if m > 1:
            off = self.beta[: m - 1]
            t += torch.diag(off, 1) + torch.diag(off, -1)
        return t


def lanczos_tridiagonal(
    op: LinearOperator,
    v0: Tensor,
    steps: int,
    *,
    stop=None,
) -> Tridiagonal:
    """Run up to ``steps`` Lanczos steps from ``v0`` with full reorthogonalisation.

    ``stop(alpha, beta)`` (float64 lists) is called after each step and ends the run when it
    returns True.  The run also ends on breakdown (β_j ≤ 10⁻¹⁰ · max|α, β| — an invariant
    subspace was found).
    """
    n = op.size
    steps = max(1, min(int(steps), n))
    basis = torch.empty(steps, n, dtype=v0.dtype, device=v0.device)
    q = v0 / v0.norm()
    alpha: list[float] = []
    beta: list[float] = []
    scale = 0.0
    matvecs = 0
    for j in range(steps):
        basis[j] = q
        w = op.matvec(q).to(q)
        matvecs += 1
        a = float(torch.dot(w, q))
        w = w - a * q
        if j > 0:
            w = w - beta[-1] * basis[j - 1]
        qj = basis[: j + 1]
        for _ in range(2):  # classical Gram–Schmidt, twice
            w = w - qj.T @ (qj @ w)
        b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        scale = max(scale, abs(a), b)
        if b <= 1e-10 * max(scale, 1e-300):
            beta[-1] = 0.0
            break
        if stop is not None and stop(alpha, beta):
            break
        q = w / b
    m = len(alpha)
    return Tridiagonal(
        torch.tensor(alpha, dtype=torch.float64),
        torch.tensor(beta, dtype=torch.float64),
        basis[:m],
        matvecs,
    )



__all__ = ["LinearOperator", "Tridiagonal", "lanczos_tridiagonal"]
