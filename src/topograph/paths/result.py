"""The result type shared by every path method: a dense loss profile and the barrier it implies.

Barrier definitions:

* the **height** H = max_t L(ω(t)) — what FourierPathFinder (arXiv:2602.21276, Eq. 5),
  Garipov et al. 2018 and AutoNEB report;
* the **barrier** ΔH = H − max(L(ω(0)), L(ω(1))), the rise above the higher endpoint.

Both are always read off a *dense* t-grid of the full split, never off the few points an
optimiser used: a path optimised on M points can straddle a ridge between two of them.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from topograph.core.work import Work
from topograph.errors import UsageError
from topograph.io import atomic_open, atomic_write_text


@dataclass
class PathProfile:
    """Loss and accuracy along a path on one split, at the t values ``t``."""

    split: str
    t: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray

    @property
    def height(self) -> float:
        """H = max_t L(ω(t))."""
        return float(np.max(self.losses))

    @property
    def endpoint_losses(self) -> tuple[float, float]:
        return float(self.losses[0]), float(self.losses[-1])

    @property
    def barrier(self) -> float:
        """ΔH = H − max(L(ω¹), L(ω²))."""
        return self.height - max(self.endpoint_losses)

    @property
    def argmax_t(self) -> float:
        """The t at which the maximum is reached."""
        return float(self.t[int(np.argmax(self.losses))])

    @property
    def min_accuracy(self) -> float:
        return float(np.min(self.accuracies)) if np.isfinite(self.accuracies).any() else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "split": self.split, "height": self.height, "barrier": self.barrier,
            "argmax_t": self.argmax_t, "endpoint_losses": list(self.endpoint_losses),
            "min_accuracy": self.min_accuracy, "points": int(len(self.t)),
        }


@dataclass
class PathResult:
    """What a path method found, evaluated densely.

    Attributes
    ----------
    method:
        ``"straight"``, ``"fourier"``, ``"bezier"``, ``"polychain"`` or ``"neb"``.
    profiles:
        dense :class:`PathProfile` per split; the first is the split the path was optimised on.
    batchnorm:
        the BatchNorm policy the profiles were computed with (:mod:`topograph.core.batchnorm`):
        ``"eval"``, ``"batch"`` or ``"recompute"``; ``None`` when the model has no BatchNorm.
    path:
        the path itself (a :class:`~topograph.paths.family.LinearPath`; ``path.points(t)``).
    history:
        per optimisation step: ``value`` (the optimised quantity) and ``max_loss`` (the
        highest loss among the points used in that step).
    work:
        the forward passes, backward passes and HVPs the whole call spent
        (:class:`~topograph.core.Work`; a path point evaluated over the data is one forward pass).
    counts:
        ``optimisation_steps``, ``dense_points`` (and ``pivots`` for NEB).
    settings:
        the method's settings, for the record.
    seconds:
        wall time of the whole call.
    """

    method: str
    profiles: dict[str, PathProfile]
    batchnorm: str | None = None
    path: nn.Module | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    work: Work = field(default_factory=Work)
    counts: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    # the main (optimisation) split
    @property
    def profile(self) -> PathProfile:
        return next(iter(self.profiles.values()))

    @property
    def t(self) -> np.ndarray:
        return self.profile.t

    @property
    def losses(self) -> np.ndarray:
        return self.profile.losses

    @property
    def height(self) -> float:
        """H on the main split, from the dense profile."""
        return self.profile.height

    @property
    def barrier(self) -> float:
        """ΔH on the main split, from the dense profile."""
        return self.profile.barrier

    @property
    def argmax_t(self) -> float:
        return self.profile.argmax_t

    @property
    def coefficients(self):
        """The trained control vectors (Fourier coefficients b_n, Bézier/NEB control points)."""
        return None if self.path is None else self.path.control.detach()

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no arrays)."""
        return {
            "method": self.method, "batchnorm": self.batchnorm,
            "height": self.height, "barrier": self.barrier, "argmax_t": self.argmax_t,
            "profiles": {k: p.summary() for k, p in self.profiles.items()},
            "work": self.work.as_dict(), "counts": dict(self.counts), "settings": _jsonable(self.settings),
            "seconds": self.seconds,
            "final_value": self.history["value"][-1] if self.history.get("value") else None,
        }

    def save(self, directory: str | os.PathLike, name: str | None = None) -> Path:
        """Write ``<name>.json`` (summary) and ``<name>.npz`` (profiles, history) atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        name = name or f"path-{self.method}"
        arrays: dict[str, np.ndarray] = {}
        for split, p in self.profiles.items():
            arrays[f"{split}_t"] = p.t
            arrays[f"{split}_loss"] = p.losses
            arrays[f"{split}_accuracy"] = p.accuracies
        for k, v in self.history.items():
            arrays[f"history_{k}"] = np.asarray(v, dtype=float)
        with atomic_open(directory / f"{name}.npz", "wb") as f:
            np.savez(f, **arrays)
        text = json.dumps(self.summary(), indent=2)
        atomic_write_text(directory / f"{name}.json", text)
        return directory / f"{name}.json"

    @classmethod
    def load(cls, directory: str | os.PathLike, name: str) -> PathResult:
        """Read back ``<name>.json`` and ``<name>.npz`` written by :meth:`save` (without the path
        itself: ``path`` is ``None``); :class:`UsageError` naming the file when one is missing
        or damaged."""
        directory = Path(directory)
        json_path, npz_path = directory / f"{name}.json", directory / f"{name}.npz"
        try:
            summary = json.loads(json_path.read_text(encoding="utf-8"))
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            profiles = {split: PathProfile(split, arrays[f"{split}_t"], arrays[f"{split}_loss"],
                                           arrays[f"{split}_accuracy"]) for split in summary["profiles"]}
            history = {k[len("history_"):]: v.tolist() for k, v in arrays.items() if k.startswith("history_")}
            return cls(method=summary["method"], profiles=profiles, batchnorm=summary.get("batchnorm"),
                       history=history, work=Work.from_dict(summary.get("work", {})),
                       counts=dict(summary.get("counts", {})),
                       settings=dict(summary.get("settings", {})), seconds=float(summary.get("seconds", 0.0)))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
            raise UsageError(f"{json_path}: not a readable path result with its .npz ({reason}); "
                             "delete both files to compute it again") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)



__all__ = ["PathProfile", "PathResult"]
