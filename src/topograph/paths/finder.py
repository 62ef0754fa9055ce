"""What every path finder (FourierPathFinder, CurveFinder, NEBPathFinder) shares: the data and
evaluation settings, and the last step — the dense re-evaluation of the found path on the
requested splits, packed into a :class:`~topograph.paths.result.PathResult`."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor

from topograph.core import ObjectiveLike, Work
from topograph.paths.barrier import batchnorm_used, policy_objective, profile_path
from topograph.paths.checkpoint import SearchCheckpoint
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.result import PathResult


@dataclass
class PathFinderSettings:
    """Settings common to the path finders.

    batch_size: minibatch size of each optimisation step (``None``: the full split);
    split: the split the path is optimised on; dense_points: size of the t grid of the final
    re-evaluation (each finder has its own default); eval_splits: splits of that re-evaluation
    (default: the optimisation split); batchnorm: ``None`` (the objective's policy) or a policy
    for the final re-evaluation (``"recompute"`` between BatchNorm networks, see
    :mod:`topograph.paths.barrier`); engine: ``"auto"``, ``"first-layer"`` or ``"generic"``
    (:class:`~topograph.core.SubspaceEvaluator`); seed; progress (``None``: a bar when stderr is
    a terminal).

    checkpoint: ``None`` (default), a file (``search.pt``) or a directory: the search saves its
    state there every ``checkpoint_every`` steps and at the end, and a search started again with
    the same ``checkpoint`` resumes from it and ends with the same result (bitwise on the CPU) as
    an uninterrupted one; a checkpoint of another search (other endpoints, settings, model or
    data) is refused with one line.  In a directory each search has its own file
    (``<method>-<fingerprint>.pt``).  See :mod:`topograph.paths.checkpoint`.
    """

    batch_size: int | None = None
    split: str = "train"
    dense_points: int | None = None
    eval_splits: tuple[str, ...] | None = None
    batchnorm: str | None = None
    engine: str = "auto"
    seed: int = 0
    progress: bool | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 10

    def _checkpoint(self, method: str, objective: ObjectiveLike, start: Tensor, end: Tensor) -> SearchCheckpoint | None:
        """The search's checkpoint (``None`` without ``checkpoint``), fingerprinted by its settings."""
        return SearchCheckpoint.for_search(self.checkpoint, method=method, settings=asdict(self), objective=objective,
                                           start=start, end=end, every=self.checkpoint_every)

    def _result(self, objective: ObjectiveLike, path: Any, t: int | Tensor, evaluator: PathEvaluator, *,
                method: str, history: Any, started: float, work0: Work, counts: dict[str, Any]) -> PathResult:
        """Re-evaluate ``path`` densely on ``t`` (a count or the values) and build the result;
        ``work0``: the objective's work counts when the search began."""
        final = policy_objective(objective, self.batchnorm)
        profiles = profile_path(final, path, t, splits=self.eval_splits, evaluator=evaluator)
        return PathResult(
            method=method, profiles=profiles, batchnorm=batchnorm_used(final), path=path, history=history,
            work=objective.work - work0, counts=counts,
            settings={**asdict(self), "engine": evaluator.resolved_engine(path.vectors, self.split)},
            seconds=time.perf_counter() - started,
        )


__all__ = ["PathFinderSettings"]
