"""Extreme eigenpairs of a symmetric operator by the Lanczos method with full reorthogonalisation.

Lanczos (1950; Golub & Van Loan, *Matrix Computations*, §10.1) builds an orthonormal basis
Q_m = [q_1 … q_m] of the Krylov space K_m(A, q_1) = span{q_1, A q_1, …, A^{m−1} q_1} with the
three-term recurrence

    β_j q_{j+1} = A q_j − α_j q_j − β_{j−1} q_{j−1},   α_j = q_jᵀ A q_j,

so that Q_mᵀ A Q_m = T_m is tridiagonal (α on the diagonal, β off it).  The eigenpairs (θ_i, s_i)
of T_m give Ritz pairs (θ_i, Q_m s_i), whose residual is exactly ‖A Q_m s_i − θ_i Q_m s_i‖ =
|β_m s_{m,i}|; for symmetric A some eigenvalue lies within that distance of θ_i (and within
β_m² s_{m,i}² / gap, which is far smaller once the Ritz value has separated).  The extreme
eigenvalues converge first and fast — far faster than power iteration, whose error decays like
(λ_2/λ_1)^{2t}, against a Chebyshev-accelerated rate for Lanczos (Kaniel–Paige–Saad theory).

In floating point the q_j lose orthogonality as Ritz values converge; we re-orthogonalise each
new vector against all previous ones, twice ("twice is enough", classical Gram–Schmidt), which
costs O(n m) per step — negligible next to a Hessian-vector product for m ≲ 100.

A single start vector sees each eigenspace through one direction only, so an eigenvalue of
multiplicity r is returned once (the next entries are the next *distinct* eigenvalues) — the
usual limitation of single-vector Lanczos; block methods would be needed to count multiplicities.

Stopping: after every step the Ritz pairs of the wanted end(s) are checked; the run stops when
each wanted residual satisfies |β_m s_{m,i}| ≤ tol · max(|θ_i|, 10⁻¹²·‖T_m‖), i.e. a relative
residual test as in ARPACK (``criterion="residual"``, the default: a guaranteed bound).  With
``criterion="gap"`` the test uses the a-posteriori eigenvalue-error estimate
min(r_i, r_i²/δ_i) (Parlett, *The Symmetric Eigenvalue Problem*, §11.7), δ_i the distance from
θ_i to the nearest other Ritz value — far fewer steps for the same eigenvalue accuracy, but an
estimate, not a bound (δ_i can overstate the true gap before the spectrum's top is resolved).
With ``criterion="change"`` the run stops when no wanted Ritz value moved by more than
tol·|θ_i| in the last step — the relative-change rule PyHessian applies to its power iteration,
here applied to Lanczos' much faster-converging Ritz values (a heuristic, like PyHessian's).
On an invariant subspace (β_m ≈ 0) the Ritz values are exact.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
from torch import Tensor

from topograph.core.linalg import LinearOperator, Tridiagonal, lanczos_tridiagonal
from topograph.core.work import Work
from topograph.curvature._random import generator
from topograph.curvature.results import EigenResult
from topograph.errors import UsageError

Which = Literal["LA", "SA", "both"]
WHICH = ("LA", "SA", "both")
CRITERIA = ("residual", "gap", "change")


def _wanted(m: int, k: int, which: str) -> list[int]:
    """Indices (into ascending eigh order of an m×m T) of the wanted Ritz values."""
    k = min(k, m)
    if which == "LA":
        return list(range(m - 1, m - 1 - k, -1))
    if which == "SA":
        return list(range(k))
    top = list(range(m - 1, m - 1 - k, -1))
    bottom = [i for i in range(k) if i not in top]
    return top + bottom


def _eigh_tridiagonal(alpha: list[float], beta: list[float]) -> tuple[Tensor, Tensor]:
    t = Tridiagonal(torch.tensor(alpha, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64),
                    torch.empty(0), 0).matrix()
    return torch.linalg.eigh(t)


def lanczos(
    op: LinearOperator,
    *,
    k: int = 1,
    which: Which = "LA",
    tol: float = 1e-6,
    max_steps: int | None = None,
    seed: int | None = 0,
    v0: Tensor | None = None,
    criterion: str = "residual",
    start: str = "random",
) -> EigenResult:
    """The k largest (``"LA"``), k smallest (``"SA"``, most negative) or both ends' eigenpairs.

    Parameters
    ----------
    op:
        a symmetric :class:`~topograph.curvature.operators.LinearOperator`.
    k:
        number of eigenpairs at each requested end.
    which:
        ``"LA"`` (largest algebraic), ``"SA"`` (smallest algebraic) or ``"both"``.
    tol:
        relative residual tolerance: stop when every wanted Ritz pair has
        ‖A v − θ v‖ ≤ tol·|θ| (guaranteeing an eigenvalue within tol·|θ| of θ; the actual error is
        usually far smaller, ≈ residual²/gap).
    max_steps:
        largest Krylov dimension (memory: max_steps vectors of length n); default
        min(n, max(40, 4k + 20)).
    seed, v0:
        the start vector is ``v0`` if given, else Gaussian from ``seed``.
    criterion:
        ``"residual"`` (error ≤ residual, guaranteed), ``"gap"`` (error ≈ residual²/gap,
        estimated) or ``"change"`` (Ritz values moved by ≤ tol relative in the last step,
        PyHessian's rule) — see the module docstring.
    start:
        ``"random"`` (Gaussian from ``seed``) or ``"gradient"``: start the Krylov space at the
        loss gradient, which operators with a kept gradient graph (:class:`HessianOperator`)
        give for free.  Gradients concentrate in the top Hessian eigenspace (Gur-Ari, Roberts
        & Dyer 2018, *Gradient descent happens in a tiny subspace*), so the top eigenvalue
        converges in fewer products: on the W3 benchmark, 1e-3 relative error after 6 instead
        of 8 products.  Falls back to random when the gradient is zero (a critical point) or
        unavailable.  Ignored when ``v0`` is given.

    Returns an :class:`EigenResult` (eigenvalues descending, eigenvectors as columns).
    """
    if which not in WHICH:
        raise UsageError(f"which={which!r}; use one of {', '.join(WHICH)}")
    if start not in ("random", "gradient"):
        raise UsageError(f"start={start!r}; use 'random' or 'gradient'")
    if criterion not in CRITERIA:
        raise UsageError(f"criterion={criterion!r}; use one of {', '.join(CRITERIA)}")
    n = op.size
    k = int(k)
    if k < 1 or (k > n if which != "both" else 2 * k > n):
        raise UsageError(f"k={k} must be at least 1 and at most the operator size {n}"
                         + (" (2k for which='both')" if which == "both" else ""))
    if max_steps is None:
        max_steps = min(n, max(40, 4 * k + 20))
    max_steps = min(int(max_steps), n)
    need = k if which != "both" else 2 * k
    if max_steps < need:
        raise UsageError(f"max_steps={max_steps} must be at least the number of wanted pairs {need}")
    t0 = time.perf_counter()
    if v0 is None and start == "gradient" and callable(getattr(op, "gradient", None)):
        grad = op.gradient()
        if bool(torch.isfinite(grad).all()) and float(grad.norm()) > 0:
            v0 = grad
    if v0 is None:
        v0 = torch.randn(n, generator=generator(seed), dtype=torch.float64)
    v0 = v0.to(dtype=op.dtype, device=op.device)

    previous: list[float] = []
    met: list[bool] = []  # the change rule's verdicts, step by step

    def stop(alpha: list[float], beta: list[float]) -> bool:
        m = len(alpha)
        if m < need:
            return False
        theta, s = _eigh_tridiagonal(alpha, beta)
        norm = float(theta.abs().max())
        if criterion == "change":
            now = [float(theta[i]) for i in _wanted(m, k, which)]
            done = len(previous) == len(now) and all(
                abs(a - b) <= tol * max(abs(a), 1e-12 * norm) for a, b in zip(now, previous))
            previous[:] = now
            met.append(done)
            return done
        for i in _wanted(m, k, which):
            res = abs(beta[-1] * float(s[m - 1, i]))
            if criterion == "gap" and m > 1:
                others = torch.cat([theta[:i], theta[i + 1 :]])
                gap = float((others - theta[i]).abs().min())
                res = min(res, res * res / gap) if gap > 0 else res
            if res > tol * max(abs(float(theta[i])), 1e-12 * norm):
                return False
        return True

    tri = lanczos_tridiagonal(op, v0, max_steps, stop=stop)
    m = tri.alpha.shape[0]
    theta, s = torch.linalg.eigh(tri.matrix())
    idx = _wanted(m, k, which)
    idx = sorted(set(idx), key=lambda i: -float(theta[i]))
    vals = theta[idx]
    res = (tri.beta[-1] * s[m - 1, idx]).abs()
    converged = bool(len(idx) >= min(need, n)) and (
        tri.beta[-1] == 0 or (bool(met) and met[-1] if criterion == "change"
                              else stop(tri.alpha.tolist(), tri.beta.tolist())))
    vecs = tri.basis.T @ s[:, idx].to(tri.basis)
    return EigenResult(
        eigenvalues=vals,
        eigenvectors=vecs,
        residuals=res,
        converged=converged,
        work=Work(hvps=tri.matvecs),
        seconds=time.perf_counter() - t0,
        method="lanczos",
        which=which,
        steps=m,
    )


__all__ = ["Tridiagonal", "lanczos", "lanczos_tridiagonal"]
