"""The k largest-magnitude eigenpairs by power iteration with deflation — the peers' method.

PyHessian (Yao et al. 2020, "PyHessian: Neural networks through the lens of the Hessian") and
hessian-eigenthings compute top eigenvalues this way; topograph keeps it as a baseline for
:func:`topograph.curvature.lanczos`, which reaches the same accuracy in far fewer products.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from topograph.core.work import Work
from topograph.curvature._random import generator
from topograph.curvature.operators import LinearOperator
from topograph.curvature.results import EigenResult
from topograph.errors import UsageError


def power_iteration(
    op: LinearOperator,
    *,
    k: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int | None = 0,
) -> EigenResult:
    """The k largest-magnitude eigenpairs by power iteration with deflation (the peers' method).

    As PyHessian (Yao et al. 2020) does: for each pair, start from a Gaussian vector, and repeat
    v ← A v/‖A v‖ after orthogonalising v against the pairs already found (Gram–Schmidt
    deflation), with the Rayleigh quotient λ = vᵀ A v; stop when |Δλ| / (|λ| + 10⁻⁶) < tol or after
    ``max_iter`` products (``tol < 0`` forces ``max_iter``).  The eigenvalue error decays like
    (λ_2/λ_1)^{2t}: slow when the top of the spectrum is clustered — see :func:`lanczos`.
    """
    n = op.size
    if int(k) < 1 or int(k) > n:
        raise UsageError(f"k={k} must be between 1 and the operator size {n}")
    if int(max_iter) < 1:
        raise UsageError(f"max_iter must be a positive integer, got {max_iter}")
    start = time.perf_counter()
    gen = generator(seed)
    vals: list[float] = []
    vecs: list[Tensor] = []
    res: list[float] = []
    iters: list[int] = []
    matvecs = 0
    converged = True
    for _ in range(int(k)):
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype=op.dtype, device=op.device)
        lam = math.nan
        ok = False
        it = 0
        for it in range(1, int(max_iter) + 1):
            for u in vecs:
                v = v - torch.dot(u, v) * u
            v = v / v.norm()
            w = op.matvec(v).to(v)
            matvecs += 1
            new = float(torch.dot(w, v))
            resid = float((w - new * v).norm())
            done = not math.isnan(lam) and abs(new - lam) / (abs(lam) + 1e-6) < tol
            lam = new
            if done:
                ok = True
                break
            v = w
        converged &= ok
        vals.append(lam)
        vecs.append(v / v.norm())
        res.append(resid)
        iters.append(it)
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    return EigenResult(
        eigenvalues=torch.tensor([vals[i] for i in order], dtype=torch.float64),
        eigenvectors=torch.stack([vecs[i] for i in order], dim=1),
        residuals=torch.tensor([res[i] for i in order], dtype=torch.float64),
        converged=converged,
        work=Work(hvps=matvecs),
        seconds=time.perf_counter() - start,
        method="power",
        which="LM",
        steps=[iters[i] for i in order],
    )


__all__ = ["power_iteration"]
