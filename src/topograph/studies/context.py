"""What a study's analyses see: :class:`StudyContext` (the spec, the runs of every arm, the
tuning results) and the compute measure that compares arms at equal cost (:func:`fb_cost`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topograph.runs.store import Run
from topograph.studies.spec import StudySpec
from topograph.studies.tuning import TuningResult

#: a forward-only pass counted as this fraction of a forward+backward pass (a backward pass costs
#: about two forward passes)
FORWARD_FRACTION = 1.0 / 3.0


def fb_equivalents(backward_passes: float, forward_passes: float) -> float:
    """Forward+backward-equivalents of ``backward_passes`` forward+backward passes among
    ``forward_passes`` forward passes in all (:class:`topograph.core.Work`'s counts): B + (F − B)/3."""
    return backward_passes + FORWARD_FRACTION * max(forward_passes - backward_passes, 0.0)


def fb_cost(summary: dict[str, Any]) -> float:
    """Compute of a run in forward+backward-equivalents (:func:`fb_equivalents` of its totals)."""
    return fb_equivalents(float(summary.get("backward_passes", 0)), float(summary.get("forward_passes", 0)))


@dataclass
class StudyContext:
    """What analyses see: the spec, where things are, the runs of every arm, tuning results."""

    spec: StudySpec
    study_dir: Path
    runs: dict[str, list[Run]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tuning: dict[str, TuningResult] = field(default_factory=dict)
    progress: bool = False
    notes: list[str] = field(default_factory=list)

    def values(self, arm: str, metric: str, *, where: str = "final") -> list[float]:
        """One number per seed: a final metric (``test_acc``…), ``seconds``, ``fb_cost``…"""
        out = []
        for r in self.runs.get(arm, []):
            s = r.summary
            if metric == "fb_cost":
                out.append(fb_cost(s))
            elif metric in s and not isinstance(s[metric], dict):
                out.append(float(s[metric]))
            else:
                v = s.get(where, {}).get(metric)
                out.append(float(v) if v is not None else math.nan)
        return out


__all__ = ["FORWARD_FRACTION", "StudyContext", "fb_cost", "fb_equivalents"]
