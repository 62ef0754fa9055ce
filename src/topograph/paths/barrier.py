"""Loss and accuracy along a path, densely; the straight-line barrier between two solutions.

:func:`profile_path` evaluates any :class:`~topograph.paths.family.LinearPath` on a dense
t-grid, on one or more splits, with all points of the grid batched through
:class:`~topograph.paths.evaluate.PathEvaluator`.  :func:`linear_barrier` does it for the
straight segment ω(t) = (1−t)ω¹ + tω² — the classic "linear interpolation" barrier (Goodfellow
et al. 2015; Garipov et al. 2018 use it as the baseline their curves beat).

BatchNorm.  Every function here takes ``batchnorm=``: ``None`` (default) evaluates under the
objective's own policy; ``"eval"``, ``"batch"`` or ``"recompute"`` override it for this call
(:mod:`topograph.core.batchnorm`).  Between two BatchNorm networks use ``"recompute"``
(Garipov et al. 2018's ``update_bn``): with the stored statistics a point half way between two
solutions is normalised with statistics that belong to neither, and barriers come out too high.
The result states the policy used (``PathResult.batchnorm``; ``None`` for a model without
BatchNorm or an analytic function).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn

from topograph.core import Objective, ObjectiveLike
from topograph.core.batchnorm import check_policy
from topograph.core.modules import batchnorm_layers
from topograph.errors import UsageError
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.family import LinearPath, StraightPath
from topograph.paths.result import PathProfile, PathResult


def policy_objective(objective: ObjectiveLike, batchnorm: str | None) -> ObjectiveLike:
    """``objective`` under the BatchNorm policy ``batchnorm`` (``None``: its own)."""
    if batchnorm is None or not isinstance(objective, Objective):
        if batchnorm is not None:
            check_policy(batchnorm)
        return objective
    check_policy(batchnorm)
    return objective if objective.batchnorm == batchnorm else objective.with_batchnorm(batchnorm)


def batchnorm_used(objective: ObjectiveLike) -> str | None:
    """The policy a result reports: the objective's, or ``None`` when the model has no BatchNorm."""
    if not isinstance(objective, Objective) or not batchnorm_layers(objective.module):
        return None
    return objective.batchnorm


def eval_splits(objective: ObjectiveLike, splits) -> tuple[str, ...]:
    """The requested splits that the objective has (all of them for a function: ``train``)."""
    if not isinstance(objective, Objective):
        return ("train",)
    have = objective.split_names()
    if splits is None:
        return tuple(s for s in ("train", "test") if s in have) or have[:1]
    missing = [s for s in splits if s not in have]
    if missing:
        raise UsageError(f"split {missing[0]!r} is not in the objective's data; known: {', '.join(have)}")
    return tuple(splits)


def profile_path(
    objective: ObjectiveLike,
    path: LinearPath,
    t: Tensor | np.ndarray | int = 101,
    *,
    splits: tuple[str, ...] | list[str] | None = None,
    batchnorm: str | None = None,
    engine: str = "auto",
    evaluator: PathEvaluator | None = None,
) -> dict[str, PathProfile]:
    """Dense loss/accuracy profiles of ``path`` at ``t`` (an int: that many equally spaced t).

    Returns ``{split: PathProfile}`` in the order of ``splits`` (default: train, then test when
    the objective has it).
    """
    objective = policy_objective(objective, batchnorm)
    splits = eval_splits(objective, splits)
    if isinstance(t, int):
        if t < 2:
            raise UsageError(f"points must be at least 2 (both endpoints), got {t}")
        t = torch.linspace(0, 1, t, dtype=torch.float64)
    t = torch.as_tensor(t, dtype=path.start.dtype, device=path.start.device).reshape(-1)
    t_np = t.detach().cpu().double().numpy()
    with torch.no_grad():
        coeffs = path.basis(t)
        vectors = path.vectors.detach()
        if evaluator is None or evaluator.objective is not objective:
            evaluator = PathEvaluator(objective, engine=evaluator.engine if evaluator is not None else engine)
        out = {}
        for s in splits:
            lo, ac = evaluator.evaluate(coeffs, vectors, split=s)
            out[s] = PathProfile(s, t_np, lo.numpy(), ac.numpy())
        return out


def linear_barrier(
    objective: ObjectiveLike,
    start: Tensor,
    end: Tensor,
    *,
    points: int = 101,
    splits: tuple[str, ...] | list[str] | None = None,
    batchnorm: str | None = None,
    engine: str = "auto",
) -> PathResult:
    """Loss and accuracy along the straight segment from ``start`` to ``end``.

    ``points`` equally spaced t values (default 101) are evaluated in one batched pass per split.
    Returns a :class:`PathResult` with ``method="straight"``: ``.height`` = H = max_t L,
    ``.barrier`` = ΔH = H − max(L(ω¹), L(ω²)), ``.argmax_t``, per-split ``.profiles``.
    """
    t0 = time.perf_counter()
    objective = policy_objective(objective, batchnorm)
    work0 = objective.work.copy()
    start = _flat_point(objective, start, "start")
    end = _flat_point(objective, end, "end")
    path = StraightPath(start, end)
    evaluator = PathEvaluator(objective, engine=engine)
    profiles = profile_path(objective, path, int(points), splits=splits, evaluator=evaluator)
    return PathResult(
        method="straight", profiles=profiles, batchnorm=batchnorm_used(objective), path=path,
        work=objective.work - work0, counts={"dense_points": int(points)},
        settings={"points": int(points), "engine": evaluator.resolved_engine(path.vectors)},
        seconds=time.perf_counter() - t0,
    )


def _flat_point(objective: ObjectiveLike, theta, name: str) -> Tensor:
    """Accept a flat vector or a parameter dict; return the flat vector in the objective's dtype."""
    if isinstance(theta, nn.Module):
        theta = {n: p.detach() for n, p in theta.named_parameters() if p.requires_grad}
    if not isinstance(theta, Tensor):
        theta = objective.spec.as_flat(theta)
    theta = torch.as_tensor(theta).detach().reshape(-1)
    if theta.numel() != objective.size:
        raise UsageError(f"{name} has {theta.numel()} parameters; the objective's model has {objective.size}")
    dtype = objective.flat_params().dtype
    return theta.to(dtype=dtype, device=objective.device)


__all__ = ["batchnorm_used", "linear_barrier", "policy_objective", "profile_path"]
