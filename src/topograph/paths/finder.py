"""What every path finder (FourierPathFinder, CurveFinder, NEBPathFinder) shares: the data and
evaluation settings, and the last step — the dense re-evaluation of the found path on the
requested splits, packed into a :class:`~topograph.paths.result.PathResult`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor

from topograph.paths.barrier import buffers_policy, profile_path
from topograph.paths.evaluate import Engine, PathEvaluator
from topograph.paths.result import PathResult


@dataclass
class PathFinderSettings:
    """Settings common to the path finders.

    batch_size: minibatch size of each optimisation step (``None``: the full split);
    split: the split the path is optimised on; dense_points: size of the t grid of the final
    re-evaluation (each finder has its own default); eval_splits: splits of that re-evaluation
    (default: the optimisation split); batchnorm: ``"frozen"`` or ``"recompute"`` (see
    :func:`~topograph.paths.barrier.linear_barrier`); engine: the
    :class:`~topograph.paths.evaluate.PathEvaluator` engine; seed; progress (``None``: a bar when
    stderr is a terminal).
    """

    batch_size: int | None = None
    split: str = "train"
    dense_points: int | None = None
    eval_splits: tuple[str, ...] | None = None
    batchnorm: str = "frozen"
    engine: Engine = "auto"
    seed: int = 0
    progress: bool | None = None

    def _result(self, objective: Any, path: Any, t: int | Tensor, evaluator: PathEvaluator, *,
                method: str, history: Any, started: float, evaluations: dict[str, Any]) -> PathResult:
        """Re-evaluate ``path`` densely on ``t`` (a count or the values) and build the result."""
        profiles = profile_path(objective, path, t, splits=self.eval_splits, batchnorm=self.batchnorm,
                                evaluator=evaluator)
        return PathResult(
            method=method, profiles=profiles, buffers=buffers_policy(objective, self.batchnorm), path=path,
            history=history,
            evaluations={"point_evaluations": evaluator.point_evaluations, **evaluations},
            settings={**asdict(self), "engine": evaluator.resolved_engine},
            seconds=time.perf_counter() - started,
        )


__all__ = ["PathFinderSettings"]
