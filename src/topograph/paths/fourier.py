"""FourierPathFinder: low-height paths between two minima (Yu & Morozov, arXiv:2602.21276).

The path (Eq. 3; see :class:`~topograph.paths.family.FourierPath`)

    ω(t) = (1−t) ω¹ + t ω² + Σ_{n=1}^{N} b_n sin(nπt),   b_n ∈ R^P, b = 0 at the start,

keeps both endpoints fixed for any b.  On M points t_m = m/(M−1) the coefficients minimise

    J(b) = D(l_1, …, l_M) + λ Σ_{m=1}^{M−1} ‖ω(t_{m+1}) − ω(t_m)‖²,   l_m = L(ω(t_m)),

with one of three data terms D (``reduction=``, how the point losses are reduced to one number):

``"sum"``      Σ_m l_m — the paper's Eq. 4 and its NN notebook (faithful).
``"squared"``  Σ_m l_m² — the paper's toy notebook (MSE of f against 0); this is what produced the
               toy figure's heights 0.640–0.652.
``"softmax"``  a smooth maximum (default):

                   S(l) = (1 − w) [ l_max + τ log Σ_m exp((l_m − l_max)/τ) ] + w · mean(l),
                   τ = r · (l_max − l_min),

               with r = ``temperature`` (default 0.05) and w = ``mean_weight`` (default 0.1).
               The temperature is **relative to the spread of the path's losses** at the
               current step (τ is held constant within the step: no gradient flows through
               it), so S is a near-max at any loss scale: a point δ·(l_max − l_min) below the
               maximum gets exp(−δ/r) of the maximum's weight, whether the losses are ~0.01
               (a trained network on digits) or ~100 (an energy landscape).  The gradient
               weights ∂S/∂l_m = (1 − w) softmax_m((l − l_max)/τ) + w/M sum to one, and
               S ≤ l_max + (1 − w) τ log M (equality only for a flat path; S = l for a flat
               path).  The small mean term keeps every point of the path under some pull.
               Shift and scale of the losses (l → a l + c, a > 0) leave the weights unchanged.

Why soft-max is the default (checked by ``tests/paths/test_paths.py``): a
sum or integral trades barrier height against time spent near the minima — it is not a minimax
objective.  On the paper's own 4-Gaussian toy Eq. 4 stops at H ≈ 0.68–0.73 (true saddle 0.6244);
on the Müller–Brown potential it stops 10–25 units above the true barrier −40.66 because the
path cuts across a flank instead of following the curved valley.  The soft-max objective
concentrates the gradient on the highest points and reaches the true barriers (toy ≈ 0.625, MB
≈ −40.2 … −40.6).  A soft-max with a fixed temperature in loss units is not scale-free: at
τ = 0.1 and losses of 0.01–0.06 (digits) its weights are within a few percent of uniform, i.e.
it is the mean loss, not a maximum — hence the relative temperature.  Its weakness — the M
discrete points can straddle the ridge and report a maximum *below* the true barrier — is why
the height reported here is **always re-evaluated on a dense t-grid** (``dense_points``,
default 10 (M−1) + 1) of the full split.

Gradients come from autograd through ω(t) = C(t)·V, which is exactly the paper's Algorithm 2.
All M points of a step are evaluated in one batched pass (:class:`~topograph.paths.PathEvaluator`).
The scalable variant (``batch_size=``, ``points_per_step=``) uses a random minibatch and a random
sorted subset of the grid at each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.errors import UsageError
from topograph.paths.barrier import _flat_point
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.family import FourierPath
from topograph.paths.finder import PathFinderSettings
from topograph.paths.optimize import optimise_path
from topograph.paths.result import PathResult

PathReduction = Literal["softmax", "sum", "squared"]
PATH_REDUCTIONS = ("softmax", "sum", "squared")


def softmax_temperature(losses: Tensor, temperature: float) -> Tensor:
    """τ = ``temperature`` × (max − min of ``losses``), detached; the smallest positive float for a
    flat path (every weight is then equal anyway)."""
    spread = (losses.max() - losses.min()).detach()
    return (float(temperature) * spread).clamp_min(torch.finfo(losses.dtype).tiny)


def path_reduction(kind: str, *, temperature: float = 0.05, mean_weight: float = 0.1):
    """The data term D(l) as a function of the vector of point losses (see module docstring).

    For ``"softmax"``, ``temperature`` is relative: τ = temperature × (max_m l_m − min_m l_m),
    recomputed from the losses at every call and held constant in the gradient.

    >>> import torch
    >>> from topograph.paths import path_reduction
    >>> soft = path_reduction("softmax")
    >>> losses = torch.tensor([0.010, 0.011, 0.014, 0.011, 0.010], requires_grad=True)
    >>> value = soft(losses); value.backward()
    >>> round(value.item(), 4), int(losses.grad.argmax())      # ≈ the maximum 0.014, at point 2
    (0.0137, 2)
    """
    if kind == "sum":
        return lambda losses: losses.sum()
    if kind == "squared":
        return lambda losses: losses.pow(2).sum()
    if kind == "softmax":
        if not temperature > 0:
            raise UsageError(f"temperature must be positive (a fraction of the path's loss spread), got {temperature}")
        if not 0.0 <= mean_weight < 1.0:
            raise UsageError(f"mean_weight must be in [0, 1), got {mean_weight}")
        r, w = float(temperature), float(mean_weight)

        def softmax(losses: Tensor) -> Tensor:
            tau = softmax_temperature(losses, r)
            top = losses.max().detach()
            smooth_max = top + tau * torch.logsumexp((losses - top) / tau, dim=0)
            return (1.0 - w) * smooth_max + w * losses.mean()

        return softmax
    raise UsageError(f"reduction={kind!r} is not known; use one of {', '.join(PATH_REDUCTIONS)}")


@dataclass
class FourierPathFinder(PathFinderSettings):
    """Find a low path between two solutions with FourierPathFinder.

    Settings (scikit-learn style: stored as given, all work happens in :meth:`find`):

    n_terms:        N, the number of sine terms (paper: "typically" 10).
    points:         M, grid points used in the objective (paper NN notebook: 51).
    reduction:      ``"softmax"`` (default), ``"sum"`` (paper Eq. 4) or ``"squared"`` (toy notebook).
    temperature:    r of the soft-max reduction, relative: τ = r × (spread of the path's point
                    losses at each step), so it is a near-max at any loss scale.
    mean_weight:    w, the share of the mean loss in the soft-max reduction.
    reg:            λ of the chord-length regulariser (paper NN: 1e-4).
    lr, steps:      Adam learning rate and number of steps (paper NN: 1e-3, 100).
    batch_size:     ``None``: the full split at every step (faithful); else a random minibatch.
    points_per_step: ``None``: all M grid points; else a random sorted subset of that many.
    split:          the split the path is optimised on.
    dense_points:   t values of the final dense evaluation (default 10 (M−1) + 1).
    eval_splits:    splits of the dense evaluation (default: train and test when present).
    keep_best:      restore the iterate with the lowest value (deterministic runs only).
    gradient_noise: σ of Gaussian noise added to the gradient (the toy notebook used 1).
    batchnorm:      ``None`` (the objective's policy) or ``"eval"``, ``"batch"``, ``"recompute"`` for the
                    dense evaluation (``"recompute"`` between BatchNorm networks; see barrier.py).
    engine:         batched-evaluation engine (``"auto"``, ``"generic"``, ``"first-layer"``).
    seed:           seeds the random t subsets, minibatches and noise.
    progress:       a progress bar (None: when stderr is a terminal).
    checkpoint, checkpoint_every: a file or directory where the search saves its state every
                    that many steps and at the end; a rerun resumes it (see PathFinderSettings).
    """

    n_terms: int = 10
    points: int = 51
    reduction: PathReduction = "softmax"
    temperature: float = 0.05
    mean_weight: float = 0.1
    reg: float = 1e-4
    lr: float = 1e-3
    steps: int = 100
    points_per_step: int | None = None
    keep_best: bool = True
    gradient_noise: float = 0.0

    def _check(self) -> None:
        if self.reduction not in PATH_REDUCTIONS:
            raise UsageError(f"reduction={self.reduction!r} is not known; use one of {', '.join(PATH_REDUCTIONS)}")
        if int(self.points) < 3:
            raise UsageError(f"points must be at least 3, got {self.points}")
        if int(self.n_terms) < 1:
            raise UsageError(f"n_terms must be a positive integer, got {self.n_terms}")
        if self.reg < 0:
            raise UsageError(f"reg must be non-negative, got {self.reg}")
        if self.points_per_step is not None and not 1 <= int(self.points_per_step) <= int(self.points):
            raise UsageError(f"points_per_step must be between 1 and points={self.points}, got {self.points_per_step}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise UsageError(f"batch_size must be a positive integer, got {self.batch_size}")

    def find(self, objective: ObjectiveLike, start: Tensor, end: Tensor, *,
             on_step: Callable[[int, int], None] | None = None) -> PathResult:
        """Optimise a Fourier path from ``start`` to ``end`` (flat vectors or parameter dicts).

        ``on_step(k, steps)`` is called after each optimisation step k (after its checkpoint).
        """
        self._check()
        t0 = time.perf_counter()
        work0 = objective.work.copy()
        start = _flat_point(objective, start, "start")
        end = _flat_point(objective, end, "end")
        path = FourierPath(start, end, n_terms=self.n_terms)
        checkpoint = self._checkpoint("fourier", objective, start, end)
        evaluator = PathEvaluator(objective, engine=self.engine)
        grid = torch.linspace(0, 1, int(self.points), dtype=start.dtype, device=start.device)
        sampler = None
        if self.points_per_step is not None and int(self.points_per_step) < int(self.points):
            k = int(self.points_per_step)

            def sampler(gen: torch.Generator) -> Tensor:
                idx = torch.randperm(int(self.points), generator=gen)[:k].sort().values
                return grid.cpu()[idx]

        reduce = path_reduction(self.reduction, temperature=self.temperature, mean_weight=self.mean_weight)
        history = optimise_path(
            path, objective, evaluator, reduce=reduce, grid=grid, steps=self.steps, lr=self.lr,
            reg=self.reg, t_sampler=sampler, batch_size=self.batch_size, split=self.split,
            gradient_noise=self.gradient_noise, keep_best=self.keep_best, seed=self.seed,
            progress=self.progress, description=f"FourierPathFinder ({self.reduction})",
            checkpoint=checkpoint, on_step=on_step, work0=work0,
        )
        dense = int(self.dense_points or 10 * (int(self.points) - 1) + 1)
        return self._result(objective, path, dense, evaluator, method="fourier", history=history, started=t0,
                            work0=work0, counts={"optimisation_steps": int(self.steps), "dense_points": dense})


__all__ = ["PATH_REDUCTIONS", "FourierPathFinder", "path_reduction", "softmax_temperature"]
