"""Stochastic trace estimation: Hutchinson and Hutch++.

Hutchinson (1989): for probes z with E[z zᵀ] = I (Rademacher ±1 entries here),
E[zᵀ A z] = tr(A), so tr(A) ≈ (1/m) Σ_i z_iᵀ A z_i with m products.  With Rademacher probes the
variance of one sample is 2 Σ_{i≠j} A_ij² ≤ 2‖A‖_F².

Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: Optimal stochastic trace estimation"):
spend m/3 products on a sketch A S, take its orthonormal basis Q (the dominant range of A),
compute tr(QᵀAQ) exactly (m/3 products) and estimate the trace of the deflated remainder
(I − QQᵀ) A (I − QQᵀ) with Hutchinson on m/3 projected probes.  Unbiased; the variance falls from
O(‖A‖_F²/m) to O(‖A − A_k‖_F²/m) — much lower when the spectrum is dominated by a few large
eigenvalues, as Hessians of trained networks are (Ghorbani et al. 2019; Papyan 2020).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from topograph.core.work import Work
from topograph.curvature._random import generator
from topograph.curvature._random import probes as draw_probes
from topograph.curvature.operators import LinearOperator
from topograph.curvature.results import TraceResult
from topograph.errors import UsageError


def apply_rows(op: LinearOperator, vectors: Tensor, block: int | None) -> Tensor:
    """A applied to every row of ``vectors``: batched blocks through ``op.matmat`` when the
    operator has one and ``block`` > 1, else one ``matvec`` per row."""
    matmat = getattr(op, "matmat", None)
    if matmat is None or block is None or block <= 1:
        return torch.stack([op.matvec(v).to(v) for v in vectors])
    return torch.cat([matmat(vectors[i : i + block]).to(vectors) for i in range(0, vectors.shape[0], block)])


def _std_error(samples: Tensor) -> float:
    m = samples.numel()
    return float(samples.std(unbiased=True) / math.sqrt(m)) if m > 1 else math.nan


def hutchinson(
    op: LinearOperator,
    *,
    probes: int = 50,
    seed: int | None = 0,
    distribution: str = "rademacher",
    block: int | None = 25,
) -> TraceResult:
    """tr(A) ≈ (1/m) Σ_i z_iᵀ A z_i with ``probes`` = m seeded probes (m products).

    ``block`` probes at a time go through the operator's ``matmat`` when it has one (batched
    Hessian-vector products); ``None`` or 1 forces one ``matvec`` per probe.
    """
    m = int(probes)
    if m < 1:
        raise UsageError(f"probes must be a positive integer, got {probes}")
    start = time.perf_counter()
    z = draw_probes(op.size, m, gen=generator(seed), dtype=op.dtype, device=op.device,
               distribution=distribution)
    samples = (z * apply_rows(op, z, block)).sum(dim=1).to(torch.float64).cpu()
    return TraceResult(
        estimate=float(samples.mean()),
        std_error=_std_error(samples),
        samples=samples,
        work=Work(hvps=m),
        seconds=time.perf_counter() - start,
        method="hutchinson",
    )


def hutchpp(
    op: LinearOperator,
    *,
    hvps: int = 60,
    seed: int | None = 0,
    distribution: str = "rademacher",
    block: int | None = 25,
) -> TraceResult:
    """tr(A) by Hutch++ with ``hvps`` products (split into three equal thirds).

    With s = ⌊hvps/3⌋ (the sketch and the basis) and g = hvps − 2s Hutchinson probes:
    S, G seeded probe matrices; Q = orth(A S); tr(A) ≈ tr(QᵀAQ) + (1/g) Σ_i g_iᵀ(I−QQᵀ)A(I−QQᵀ)g_i.
    ``std_error`` covers the random second term only (the first is exact given Q).  ``block``
    as in :func:`hutchinson`.
    """
    m = int(hvps)
    if m < 3:
        raise UsageError(f"hvps must be at least 3 for Hutch++, got {hvps}")
    start = time.perf_counter()
    s = m // 3
    g = m - 2 * s
    gen = generator(seed)
    kw = dict(gen=gen, dtype=op.dtype, device=op.device, distribution=distribution)
    sketch = draw_probes(op.size, s, **kw)
    gauss = draw_probes(op.size, g, **kw)
    a_s = apply_rows(op, sketch, block).T  # n×s
    q, _ = torch.linalg.qr(a_s)  # n×s, orthonormal columns
    a_q = apply_rows(op, q.T.contiguous(), block).T
    exact = float(torch.sum(q * a_q))  # tr(QᵀAQ)
    w = gauss - (gauss @ q) @ q.T  # rows (I − QQᵀ) g_i
    samples = (w * apply_rows(op, w, block)).sum(dim=1).to(torch.float64).cpu()
    rand = float(samples.mean())
    return TraceResult(
        estimate=exact + rand,
        std_error=_std_error(samples),
        samples=samples,
        work=Work(hvps=2 * s + g),
        seconds=time.perf_counter() - start,
        method="hutch++",
        exact_part=exact,
    )


__all__ = ["hutchinson", "hutchpp"]
