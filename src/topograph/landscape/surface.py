"""Loss and accuracy surfaces: f(α) = L(θ* + Σ_j α_j δ_j) on a 1-D or 2-D grid.

:func:`compute_surface` evaluates a grid of coefficients along :class:`Directions` (Li et al.
2018, §4–5: f(α, β) = L(θ* + αδ + βη)) through the core's batched :class:`~topograph.core.SubspaceEvaluator`, on a named
split or on one fixed batch of ``batch_size`` samples drawn with ``batch_seed`` (seed 003,
Fig. 1, compares batch sizes 1, 64 and 256 with the full data).

Resumable: with ``out=FILE.h5`` the grid is computed in blocks and each block is written to the
file as soon as it is done (see :mod:`topograph.landscape.storage`); running the same call
again computes only the points not yet done, and the result equals an uninterrupted run.

Distributed: when a ``torch.distributed`` process group is initialised (e.g. under
``torchrun``), every rank evaluates a slice of each block, the slices are gathered on every
rank and rank 0 writes the file.  The returned :class:`Surface` is the same on every rank.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from topograph.core import Objective, ObjectiveLike, Work
from topograph.core.subspace import SubspaceEvaluator
from topograph.errors import UsageError
from topograph.landscape import storage
from topograph.landscape.directions import Directions


@dataclass
class Surface:
    """A computed (or partly computed) surface.

    Attributes
    ----------
    axes: the coordinates along each direction (``axes[0]`` for δ_1, ``axes[1]`` for δ_2).
    loss, accuracy: grids of shape ``(len(axes[0]),)`` or ``(len(axes[0]), len(axes[1]))``;
        ``loss[i, j]`` is at α = axes[0][i], β = axes[1][j]; NaN where not computed.
    done: boolean grid, True where computed.
    directions: the :class:`Directions` (centre, vectors, seed, options).
    settings: everything that defines the result (grid, split, batch, directions metadata).
    engine: ``"first-layer"`` or ``"generic"``.
    path: the HDF5 file, if any.
    seconds: wall time of this call; work: what this call spent (a grid point is one forward pass
        over the data, :class:`~topograph.core.Work`).
    """

    axes: list[np.ndarray]
    loss: np.ndarray
    accuracy: np.ndarray
    done: np.ndarray
    directions: Directions
    settings: dict[str, Any]
    engine: str = "generic"
    path: Path | None = None
    seconds: float = 0.0
    work: Work = field(default_factory=Work)
    model_fingerprint: str = ""
    data_fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.axes)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def value_at(self, *coefficients: float) -> tuple[float, float]:
        """(loss, accuracy) at the grid point nearest to ``coefficients``."""
        idx = tuple(int(np.abs(a - c).argmin()) for a, c in zip(self.axes, coefficients))
        return float(self.loss[idx]), float(self.accuracy[idx])

    @classmethod
    def load(cls, path: str | Path) -> Surface:
        """Read a surface file written by :func:`compute_surface`."""
        data = storage.read(Path(path))
        meta = data["settings"]["directions"]
        d = Directions(data["center"], data["vectors"], meta["kind"], meta["seed"], meta["options"],
                       tuple(meta["explained_variance_ratio"]) if meta["explained_variance_ratio"] else None)
        return cls(data["axes"], data["loss"], data["accuracy"], data["done"], d, data["settings"],
                   data["engine"] or "generic", Path(path),
                   model_fingerprint=data["model_fingerprint"], data_fingerprint=data["data_fingerprint"],
                   extra={"versions": data["versions"]})


# ---------------------------------------------------------------------- grid and data
def grid_axes(dim: int, range: Any = (-1.0, 1.0), resolution: Any = 31) -> list[np.ndarray]:
    """The coordinate axes: ``range`` (lo, hi) or one pair per axis; ``resolution`` points
    per axis (an int or one per axis).  Raises :class:`UsageError` for bad input."""
    ranges = list(range) if range is not None else [-1.0, 1.0]
    if len(ranges) == 2 and all(isinstance(r, (int, float, np.floating, np.integer)) for r in ranges):
        ranges = [tuple(ranges)] * dim
    if len(ranges) != dim or any(len(r) != 2 for r in ranges):
        raise UsageError(f"range={range!r}: give (lo, hi) or {dim} such pairs")
    res = resolution if isinstance(resolution, (list, tuple)) else [resolution] * dim
    if len(res) != dim:
        raise UsageError(f"resolution={resolution!r}: give one integer or {dim} integers")
    axes = []
    for (lo, hi), n in zip(ranges, res):
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise UsageError(f"range=({lo}, {hi}): the bounds must be finite numbers")
        if not lo < hi:
            raise UsageError(f"range=({lo}, {hi}) is inverted or empty: the lower bound must be below "
                             "the upper bound")
        if int(n) != n or int(n) < 1:
            raise UsageError(f"resolution={n}: must be a positive integer (points per axis)")
        axes.append(np.linspace(lo, hi, int(n)))
    return axes


def fixed_batch(objective: ObjectiveLike, batch_size: int, *, split: str = "train", seed: int = 0):
    """``batch_size`` samples of ``split`` drawn without replacement with ``seed``."""
    if int(batch_size) < 1:
        raise UsageError(f"batch_size={batch_size}: must be a positive integer")
    splits = objective.splits if isinstance(objective, Objective) else {}
    x, y = splits[split] if split in splits else (None, None)
    if x is None:
        known = ", ".join(splits) or "none"
        raise UsageError(f"split {split!r} is not in the objective's data; known: {known}")
    n = x.shape[0]
    if int(batch_size) > n:
        raise UsageError(f"batch_size={batch_size} exceeds the {n} samples of split {split!r}")
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    idx = torch.randperm(n, generator=gen)[: int(batch_size)]
    return x[idx], y[idx]


def _data_digest(objective: ObjectiveLike, split: str, batch) -> str:
    if batch is not None:
        return storage.tensor_digest(*batch)
    if isinstance(objective, Objective) and split in objective.splits:
        return storage.tensor_digest(*objective.splits[split])
    return "no-data"


def _process_group():
    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _progress(enabled: bool, total: int):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("surface"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeRemainingColumn(), disable=not (enabled and sys.stderr.isatty()),
                    transient=True)


# ---------------------------------------------------------------------- the grid
def compute_surface(
    objective: ObjectiveLike,
    directions: Directions,
    *,
    range: Any = (-1.0, 1.0),
    resolution: Any = 31,
    split: str = "train",
    batch_size: int | None = None,
    batch_seed: int = 0,
    out: str | Path | None = None,
    engine: str = "auto",
    block_size: int = 128,
    memory_budget: int = 512 * 2**20,
    progress: bool = True,
    max_blocks: int | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> Surface:
    """Loss and accuracy on a grid along ``directions`` (1-D or 2-D, by ``directions.dim``).

    Parameters
    ----------
    range, resolution:
        the grid: (lo, hi) (or one pair per axis) and points per axis (int or one per axis).
    split, batch_size, batch_seed:
        evaluate on the whole ``split``, or — with ``batch_size=b`` — on one fixed batch of b
        samples of it drawn with ``batch_seed``.
    out:
        an HDF5 file: created if missing, resumed if it holds the same model, data and
        settings (else :class:`UsageError` naming it).
    engine:
        ``"auto"``, ``"first-layer"`` or ``"generic"`` (see :class:`~topograph.core.SubspaceEvaluator`).
    block_size:
        points per block: the unit of work between writes (per rank).
    max_blocks, on_block:
        stop after ``max_blocks`` blocks (the surface is then incomplete), and a callback
        ``on_block(points_done, points_total)`` after each block — used to test resumption.

    The value at the origin (0, …, 0) of a grid that contains it is L(θ*).
    """
    if directions.dim not in (1, 2):
        raise UsageError(f"directions have {directions.dim} vectors; a surface needs 1 or 2")
    if int(block_size) < 1:
        raise UsageError(f"block_size={block_size}: must be a positive integer")
    t0 = time.perf_counter()
    axes = grid_axes(directions.dim, range, resolution)
    shape = tuple(len(a) for a in axes)
    mesh = np.meshgrid(*axes, indexing="ij")
    coef = torch.from_numpy(np.stack([m.reshape(-1) for m in mesh], axis=1))  # (G, m) row-major
    batch = None if batch_size is None else fixed_batch(objective, batch_size, split=split, seed=batch_seed)
    if batch is None and isinstance(objective, Objective) and split not in objective.splits:
        known = ", ".join(objective.splits) or "none"
        raise UsageError(f"split {split!r} is not in the objective's data; known: {known}")
    evaluator = SubspaceEvaluator(objective, directions.center, directions.vectors, engine=engine,
                                  memory_budget=memory_budget)
    resolved = evaluator.resolved_engine(split, batch)
    settings = {
        "grid": {"range": [[float(a[0]), float(a[-1])] for a in axes], "resolution": list(shape)},
        "split": split,
        "batch_size": None if batch_size is None else int(batch_size),
        "batch_seed": None if batch_size is None else int(batch_seed),
        "directions": directions.metadata(),
        "batchnorm": objective.batchnorm if isinstance(objective, Objective) else None,
    }
    model_fp = storage.model_fingerprint(objective, directions.center)
    data_fp = _data_digest(objective, split, batch)
    dist, rank, world = _process_group()
    path = Path(out) if out is not None else None
    done = _open_grid(path, rank, dist, shape, axes=axes, directions=directions, settings=settings,
                      model_fp=model_fp, data_fp=data_fp, engine=resolved)

    loss = np.full(int(np.prod(shape)), np.nan)
    acc = np.full(int(np.prod(shape)), np.nan)
    pending = np.flatnonzero(~done.reshape(-1))
    per_round = int(block_size) * world
    computed = 0
    with _progress(progress and rank == 0, len(pending)) as bar:
        task = bar.add_task("surface", total=len(pending))
        for b, start in enumerate(np.arange(0, len(pending), per_round)):
            if max_blocks is not None and b >= max_blocks:
                break
            idx = pending[start:start + per_round]
            mine = idx[rank::world]
            lo, ac = evaluator.evaluate(coef[mine], split=split, batch=batch)
            parts = [(mine, lo.numpy(), ac.numpy())]
            if dist is not None:
                parts = [None] * world
                dist.all_gather_object(parts, (mine, lo.numpy(), ac.numpy()))
            for m_idx, m_lo, m_ac in parts:
                loss[m_idx], acc[m_idx] = m_lo, m_ac
            block_idx = np.concatenate([p[0] for p in parts])
            if path is not None and rank == 0:
                storage.write_block(path, block_idx, loss[block_idx], acc[block_idx])
            computed += len(idx)
            bar.update(task, advance=len(idx))
            if on_block is not None:
                on_block(computed, len(pending))

    done_flat = done.reshape(-1).copy()
    if path is not None:
        if rank == 0:
            data = storage.read(path)
            loss, acc, done_flat = data["loss"].reshape(-1), data["accuracy"].reshape(-1), data["done"].reshape(-1)
        if dist is not None:
            box = [(loss, acc, done_flat)]
            dist.broadcast_object_list(box, src=0)
            loss, acc, done_flat = box[0]
    else:
        done_flat[pending[:computed]] = True
    return Surface(axes, loss.reshape(shape), acc.reshape(shape), done_flat.reshape(shape), directions,
                   settings, resolved, path, time.perf_counter() - t0, Work(forward_passes=computed), model_fp, data_fp)


def _open_grid(path: Path | None, rank: int, dist, shape: tuple[int, ...], *, axes, directions: Directions,
               settings: dict[str, Any], model_fp: str, data_fp: str, engine: str) -> np.ndarray:
    """The grid's done-mask: from the file (created, or checked to hold the same computation) on
    rank 0, broadcast to every rank."""
    done = np.zeros(shape, dtype=bool)
    if path is not None and rank == 0:
        if path.exists():
            storage.check(path, settings=settings, model_fp=model_fp, data_fp=data_fp, vectors=directions.vectors)
        else:
            storage.create(path, axes=axes, center=directions.center, vectors=directions.vectors,
                           settings=settings, model_fp=model_fp, data_fp=data_fp, engine=engine)
        done = storage.read_done(path)
    if dist is not None:
        box = [done]
        dist.broadcast_object_list(box, src=0)
        done = box[0]
    return done


__all__ = ["Surface", "compute_surface", "fixed_batch", "grid_axes"]
