"""One call for the common question "is there a barrier between these two solutions?".

:func:`compare_solutions` computes the straight-line barrier and a low path found by a path
method (FourierPathFinder with the soft-max reduction by default), both densely evaluated on
train and test data, saves the plot of the loss along both paths and a JSON/NPZ record, and
returns the two results.  ``topograph quickstart`` and ``topograph paths`` use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.errors import UsageError
from topograph.io import atomic_write_text
from topograph.paths.barrier import linear_barrier
from topograph.paths.curves import CurveFinder
from topograph.paths.fourier import FourierPathFinder
from topograph.paths.neb import NEBPathFinder
from topograph.paths.plots import plot_profiles
from topograph.paths.result import PathResult

METHODS = ("fourier", "bezier", "polychain", "neb", "linear")


def make_finder(method: str, *, steps: int = 100, points: int = 51, reduction: str = "softmax",
                lr: float | None = None, progress: bool | None = None, **kwargs: Any):
    """A path finder by name with the settings a CLI exposes (``None`` for ``"linear"``)."""
    if method == "fourier":
        return FourierPathFinder(steps=steps, points=points, reduction=reduction, lr=lr or 1e-3,
                                 progress=progress, **kwargs)
    if method in ("bezier", "polychain"):
        return CurveFinder(curve=method, steps=steps, lr=lr or 1e-3, progress=progress, **kwargs)
    if method == "neb":
        return NEBPathFinder(steps=steps, images=max(1, points - 2), lr=lr or 1e-2, progress=progress, **kwargs)
    if method == "linear":
        return None
    raise UsageError(f"method={method!r} is not known; use one of {', '.join(METHODS)}")


def compare_solutions(
    objective: ObjectiveLike,
    start: Tensor,
    end: Tensor,
    out_dir: str | os.PathLike | None = None,
    *,
    method: str = "fourier",
    steps: int = 200,
    points: int = 51,
    reduction: str = "softmax",
    lr: float | None = None,
    straight_points: int = 101,
    title: str | None = None,
    progress: bool | None = None,
    **finder_kwargs: Any,
) -> dict[str, PathResult]:
    """Straight-line barrier and a found path between two solutions of the same model.

    Returns ``{"straight": PathResult, method: PathResult}``.  With ``out_dir``, writes
    ``paths.png``/``paths.svg`` (loss along the found path vs the straight line),
    ``path-<method>.json/.npz`` per result and ``paths.json`` (both summaries).
    """
    results = {"straight": linear_barrier(objective, start, end, points=straight_points)}
    finder = make_finder(method, steps=steps, points=points, reduction=reduction, lr=lr,
                         progress=progress, **finder_kwargs)
    if finder is not None:
        results[method] = finder.find(objective, start, end)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for r in results.values():
            r.save(out)
        plot_profiles(list(results.values()), out / "paths", title=title)
        text = json.dumps({k: r.summary() for k, r in results.items()}, indent=2)
        atomic_write_text(out / "paths.json", text)
    return results


__all__ = ["METHODS", "compare_solutions", "make_finder"]
