"""Garipov et al. 2018 mode-connecting curves: quadratic Bézier and PolyChain.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, *Loss Surfaces, Mode Connectivity, and Fast
Ensembling of DNNs*, NeurIPS 2018.  The curve φ_θ(t) has fixed endpoints and trainable bends θ:

* ``curve="bezier"``:    φ(t) = (1−t)² ω¹ + 2t(1−t) θ + t² ω²  (``bends=1``; more bends give the
  Bernstein curve of higher degree, as ``num_bends`` in the reference code);
* ``curve="polychain"``: the polyline ω¹ → θ → ω² with the bend at t = 0.5.

Training objective: the integral ∫₀¹ L(φ_θ(t)) dt, estimated at each step by sampling t ~ U(0,1)
(the reference samples one t per minibatch; ``points_per_step`` draws several, evaluated in one
batched pass); bends start on the segment (``init_linear``).  Weight decay on the curve points,
used in the reference for CIFAR, is not applied.  The reported height is the maximum of the
dense re-evaluation, like every method in :mod:`topograph.paths`.

Unlike the reference code, no model has to be rewritten with curve layers: the curve is a path
in the flat parameter space of *any* module, evaluated through the functional core.
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
from topograph.paths.family import BezierPath, PolylinePath
from topograph.paths.finder import PathFinderSettings
from topograph.paths.optimize import optimise_path
from topograph.paths.result import PathResult

CURVES = ("bezier", "polychain")


@dataclass
class CurveFinder(PathFinderSettings):
    """Train a Garipov et al. curve between two solutions on the integral objective.

    curve:           ``"bezier"`` or ``"polychain"``.
    bends:           trainable control points (1: quadratic Bézier / one-bend PolyChain).
    points_per_step: t values sampled uniformly per step.
    steps, lr:       Adam steps and learning rate (``optimizer="sgd"`` for momentum SGD).
    reg:             optional chord-length regulariser on a 51-point grid (0: none, as in the paper).
    batch_size, split, dense_points (default 201), eval_splits, batchnorm, engine, seed,
    progress, checkpoint, checkpoint_every: as in :class:`~topograph.paths.FourierPathFinder`.
    """

    curve: Literal["bezier", "polychain"] = "bezier"
    bends: int = 1
    points_per_step: int = 8
    steps: int = 200
    lr: float = 1e-3
    optimizer: str = "adam"
    reg: float = 0.0

    def find(self, objective: ObjectiveLike, start: Tensor, end: Tensor, *,
             on_step: Callable[[int, int], None] | None = None) -> PathResult:
        """Train the curve from ``start`` to ``end``; ``on_step(k, steps)`` after each step k."""
        if self.curve not in CURVES:
            raise UsageError(f"curve={self.curve!r}; use one of {', '.join(CURVES)}")
        if int(self.points_per_step) < 1:
            raise UsageError(f"points_per_step must be a positive integer, got {self.points_per_step}")
        t0 = time.perf_counter()
        work0 = objective.work.copy()
        start = _flat_point(objective, start, "start")
        end = _flat_point(objective, end, "end")
        cls = BezierPath if self.curve == "bezier" else PolylinePath
        path = cls(start, end, bends=self.bends)
        checkpoint = self._checkpoint(self.curve, objective, start, end)
        evaluator = PathEvaluator(objective, engine=self.engine)
        grid = torch.linspace(0, 1, 51, dtype=start.dtype, device=start.device)
        k = int(self.points_per_step)

        def sampler(gen: torch.Generator) -> Tensor:
            return torch.rand(k, generator=gen, dtype=torch.float64).sort().values

        history = optimise_path(
            path, objective, evaluator, reduce=lambda lo: lo.mean(), grid=grid, steps=self.steps,
            lr=self.lr, reg=self.reg, t_sampler=sampler, batch_size=self.batch_size, split=self.split,
            optimizer=self.optimizer, keep_best=False, seed=self.seed, progress=self.progress,
            description=f"{self.curve} curve", checkpoint=checkpoint, on_step=on_step, work0=work0,
        )
        dense = int(self.dense_points or 201)
        return self._result(objective, path, dense, evaluator, method=self.curve, history=history, started=t0,
                            work0=work0, counts={"optimisation_steps": int(self.steps), "dense_points": dense})


__all__ = ["CURVES", "CurveFinder"]
