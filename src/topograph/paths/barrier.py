"""Loss and accuracy along a path, densely; the straight-line barrier between two solutions.

:func:`profile_path` evaluates any :class:`~topograph.paths.family.LinearPath` on a dense
t-grid, on one or more splits, with all points of the grid batched through
:class:`~topograph.paths.evaluate.PathEvaluator`.  :func:`linear_barrier` does it for the
straight segment ω(t) = (1−t)ω¹ + tω² — the classic "linear interpolation" barrier (Goodfellow
et al. 2015; Garipov et al. 2018 use it as the baseline their curves beat).

BatchNorm policy (``batchnorm=``)
---------------------------------
``"frozen"`` (default)
    use the objective's own buffer policy: with ``Objective(buffers="eval")`` every point uses
    the running statistics stored in the module (Li et al.'s convention); with
    ``buffers="batch"`` each chunk's own statistics.  Points far from both endpoints then see
    statistics that belong to neither — barriers can come out too high.
``"recompute"``
    Garipov et al.'s ``update_bn``: at every t, a private deep copy of the module (the user's
    module is never touched) runs in train mode over the whole training split with fresh
    running statistics (cumulative average weighted by chunk size), then the point is evaluated
    in eval mode with those statistics.  One extra forward pass over the training data per
    point, point by point.  For models without BatchNorm this equals ``"frozen"``.

The result states which policy was used (``PathResult.buffers``; ``"none"`` for a model
without buffers or an analytic function).
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from topograph.errors import UsageError
from topograph.paths.evaluate import Engine, PathEvaluator
from topograph.paths.family import LinearPath, StraightPath
from topograph.paths.result import PathProfile, PathResult

BatchNormPolicy = Literal["frozen", "recompute"]
BATCHNORM_POLICIES = ("frozen", "recompute")


def _has_buffers(objective) -> bool:
    module = getattr(objective, "module", None)
    return module is not None and any(True for _ in module.buffers())


def _batchnorm_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def buffers_policy(objective, batchnorm: str) -> str:
    """The policy name a result reports: ``none``, ``eval``, ``batch`` or ``recompute``."""
    if not _has_buffers(objective):
        return "none"
    if batchnorm == "recompute" and _batchnorm_layers(objective.module):
        return "recompute"
    return str(getattr(objective, "buffers", "eval"))


def eval_splits(objective, splits) -> tuple[str, ...]:
    """The requested splits that the objective has (all of them for a function: ``train``)."""
    if not hasattr(objective, "splits"):
        return ("train",)
    have = objective.split_names()
    if splits is None:
        return tuple(s for s in ("train", "test") if s in have) or have[:1]
    missing = [s for s in splits if s not in have]
    if missing:
        raise UsageError(f"split {missing[0]!r} is not in the objective's data; known: {', '.join(have)}")
    return tuple(splits)


@torch.no_grad()
def _recompute_evaluate(objective, thetas: Tensor, splits: tuple[str, ...], stats_split: str):
    """Per point: re-estimate BN statistics on ``stats_split`` (private copy), then evaluate."""
    module = copy.deepcopy(objective.module)
    bns = _batchnorm_layers(module)
    spec = objective.spec
    out = {s: (np.zeros(thetas.shape[0]), np.zeros(thetas.shape[0])) for s in splits}
    base_buffers = dict(module.named_buffers())
    n_stats = objective.num_samples(stats_split)
    for k in range(thetas.shape[0]):
        params = spec.unflatten(thetas[k].to(objective.device))
        bufs = {name: b.clone() for name, b in base_buffers.items()}
        for bn_name, bn in module.named_modules():
            if bn in bns:
                pre = f"{bn_name}." if bn_name else ""
                if bn.track_running_stats:
                    bufs[pre + "running_mean"].zero_()
                    bufs[pre + "running_var"].fill_(1.0)
                    bufs[pre + "num_batches_tracked"].zero_()
        module.eval()
        for bn in bns:
            bn.train()
        seen = 0
        for x, _ in objective.chunks(stats_split):
            for bn in bns:
                bn.momentum = x.shape[0] / (seen + x.shape[0])  # exact size-weighted average
            functional_call(module, (params, bufs), (x,))
            seen += x.shape[0]
        assert seen == n_stats
        module.eval()
        for s in splits:
            n = objective.num_samples(s)
            total, correct, has_acc = 0.0, 0.0, True
            for x, y in objective.chunks(s):
                o = functional_call(module, (params, bufs), (x,))
                total += float(objective.loss_fn(o, y)) * x.shape[0]
                c = objective.accuracy_fn(o, y)
                if c is None:
                    has_acc = False
                else:
                    correct += float(c)
            out[s][0][k] = total / n
            out[s][1][k] = correct / n if has_acc else np.nan
    objective.calls["forward"] += thetas.shape[0] * (1 + len(splits))
    return out


def profile_path(
    objective,
    path: LinearPath,
    t: Tensor | np.ndarray | int = 101,
    *,
    splits: tuple[str, ...] | list[str] | None = None,
    batchnorm: BatchNormPolicy = "frozen",
    stats_split: str = "train",
    engine: Engine = "auto",
    evaluator: PathEvaluator | None = None,
) -> dict[str, PathProfile]:
    """Dense loss/accuracy profiles of ``path`` at ``t`` (an int: that many equally spaced t).

    Returns ``{split: PathProfile}`` in the order of ``splits`` (default: train, then test when
    the objective has it).
    """
    if batchnorm not in BATCHNORM_POLICIES:
        raise UsageError(f"batchnorm={batchnorm!r}; use one of {', '.join(BATCHNORM_POLICIES)}")
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
        if buffers_policy(objective, batchnorm) == "recompute":
            res = _recompute_evaluate(objective, coeffs @ vectors, splits, stats_split)
            return {s: PathProfile(s, t_np, res[s][0], res[s][1]) for s in splits}
        evaluator = evaluator or PathEvaluator(objective, engine=engine)
        out = {}
        for s in splits:
            lo, ac = evaluator.evaluate(coeffs, vectors, split=s)
            out[s] = PathProfile(s, t_np, lo.numpy(), ac.numpy())
        return out


def linear_barrier(
    objective,
    start: Tensor,
    end: Tensor,
    *,
    points: int = 101,
    splits: tuple[str, ...] | list[str] | None = None,
    batchnorm: BatchNormPolicy = "frozen",
    engine: Engine = "auto",
) -> PathResult:
    """Loss and accuracy along the straight segment from ``start`` to ``end``.

    ``points`` equally spaced t values (default 101) are evaluated in one batched pass per split.
    Returns a :class:`PathResult` with ``method="straight"``: ``.height`` = H = max_t L,
    ``.barrier`` = ΔH = H − max(L(ω¹), L(ω²)), ``.argmax_t``, per-split ``.profiles``.
    """
    t0 = time.perf_counter()
    start = _flat_point(objective, start, "start")
    end = _flat_point(objective, end, "end")
    path = StraightPath(start, end)
    evaluator = PathEvaluator(objective, engine=engine)
    profiles = profile_path(objective, path, int(points), splits=splits, batchnorm=batchnorm,
                            evaluator=evaluator)
    return PathResult(
        method="straight", profiles=profiles, buffers=buffers_policy(objective, batchnorm), path=path,
        evaluations={"point_evaluations": evaluator.point_evaluations, "dense_points": int(points)},
        settings={"points": int(points), "batchnorm": batchnorm, "engine": evaluator.resolved_engine},
        seconds=time.perf_counter() - t0,
    )


def _flat_point(objective, theta, name: str) -> Tensor:
    """Accept a flat vector or a parameter dict; return the flat vector in the objective's dtype."""
    if isinstance(theta, nn.Module):
        theta = {n: p.detach() for n, p in theta.named_parameters() if p.requires_grad}
    if not isinstance(theta, Tensor):
        theta = objective.spec.as_flat(theta)
    theta = torch.as_tensor(theta).detach().reshape(-1)
    if theta.numel() != objective.size:
        raise UsageError(f"{name} has {theta.numel()} parameters; the objective's model has {objective.size}")
    dtype = getattr(objective, "dtype", None)
    if dtype is None:
        dtype = objective.flat_params().dtype
    return theta.to(dtype=dtype, device=objective.device)


__all__ = ["BATCHNORM_POLICIES", "buffers_policy", "linear_barrier", "profile_path"]
