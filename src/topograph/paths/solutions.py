"""Sets of solutions: pairwise barriers, spanning trees, centroid distances, weights, kernel PCA.

Following Yu & Morozov (arXiv:2602.21276, §§ on barriers, centroids and kPCA) and Draxler et al.
2018 (a minimum spanning tree over minima with the saddle loss as edge weight):

* :func:`barrier_matrix` — H_ij (and ΔH_ij) for every pair, by the straight line or any path
  finder (``FourierPathFinder``, ``CurveFinder``, ``NEBPathFinder``);
* :func:`spanning_tree` — the minimum spanning tree over the heights
  (``scipy.sparse.csgraph.minimum_spanning_tree``): its edge between two groups is the lowest
  height at which they connect; the same merge heights give a single-linkage, disconnectivity-
  style dendrogram (:func:`topograph.paths.plots.plot_disconnectivity`);
* :func:`centroid_distances` — ‖ω_i − ω̄‖ with ω̄ the mean of the group centroids (the paper's
  ω̄ = ½(ω̄_BFGS + ω̄_SGD) for two groups);
* :func:`weight_statistics` — norm, mean, standard deviation of all weights and per-tensor norms;
* :func:`kernel_pca` — scikit-learn ``KernelPCA``; the paper's RBF kernel
  k(x, x') = exp(−‖x − x'‖² / 2σ²) with 2σ² = N_prm, i.e. ``gamma = 1 / N_prm``; ``kernel="linear"``
  gives ordinary PCA scores (up to sign) for contrast.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.errors import UsageError
from topograph.paths.barrier import _flat_point, linear_barrier
from topograph.paths.checkpoint import data_digest, fingerprint_key, search_fingerprint
from topograph.paths.result import PathResult


def stack_solutions(solutions: Sequence[Tensor] | Tensor | np.ndarray) -> np.ndarray:
    """Stack flat parameter vectors into an ``(N, P)`` float64 array (checks equal sizes)."""
    if isinstance(solutions, (Tensor, np.ndarray)) and np.ndim(solutions) == 2:
        arr = solutions.detach().cpu().double().numpy() if isinstance(solutions, Tensor) else np.asarray(solutions, float)
        return arr
    rows = []
    for i, s in enumerate(solutions):
        v = s.detach().cpu().double().reshape(-1).numpy() if isinstance(s, Tensor) else np.asarray(s, float).reshape(-1)
        if rows and v.size != rows[0].size:
            raise UsageError(f"solution {i} has {v.size} parameters, solution 0 has {rows[0].size}; all must match")
        rows.append(v)
    if len(rows) < 1:
        raise UsageError("solutions is empty; give at least one flat parameter vector")
    return np.stack(rows)


@dataclass
class BarrierMatrix:
    """Pairwise path heights between N solutions.

    heights[i, j] = H of the path between i and j (diagonal: the solution's own loss);
    barriers[i, j] = ΔH; results[(i, j)] the :class:`PathResult` of each pair (i < j).
    """

    heights: np.ndarray
    barriers: np.ndarray
    method: str
    labels: list[str] = field(default_factory=list)
    results: dict[tuple[int, int], PathResult] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        iu = np.triu_indices(len(self.heights), 1)
        return {
            "method": self.method, "labels": self.labels,
            "heights": self.heights.tolist(), "barriers": self.barriers.tolist(),
            "mean_height": float(self.heights[iu].mean()) if iu[0].size else float("nan"),
            "mean_barrier": float(self.barriers[iu].mean()) if iu[0].size else float("nan"),
            "spanning_tree": [list(e) for e in spanning_tree(self.heights)],
        }


def barrier_matrix(
    objective: ObjectiveLike,
    solutions: Sequence[Tensor],
    *,
    finder=None,
    points: int = 51,
    splits: tuple[str, ...] | None = None,
    labels: Sequence[str] | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> BarrierMatrix:
    """Heights and barriers for all pairs (or the given ``pairs``; others stay NaN).

    ``finder=None`` uses the straight line (``points`` t values); otherwise any object with
    ``find(objective, a, b) -> PathResult`` (e.g. ``FourierPathFinder(steps=100)``).

    ``checkpoint``: a directory that makes the matrix resumable.  Each pair's result is written
    there (``pair-<fingerprint>.json`` / ``.npz``, atomically) as soon as it is computed, and a
    rerun reads the pairs it finds and computes only the missing ones; the fingerprint names
    the method, its settings, the two solutions in their order, the model and the data, so a
    changed setting or solution is computed afresh.  A finder of :mod:`topograph.paths` without
    a checkpoint of its own checkpoints each pair's search in ``pair-<fingerprint>-search/``
    there (removed once the pair's result is written), so a pair killed half way resumes from
    its last checkpoint.  Results read back have no ``path``.
    """
    n = len(solutions)
    if n < 2:
        raise UsageError(f"need at least two solutions for a barrier matrix, got {n}")
    labels = list(labels) if labels is not None else [str(i) for i in range(n)]
    if len(labels) != n:
        raise UsageError(f"labels has {len(labels)} entries for {n} solutions")
    heights = np.full((n, n), np.nan)
    barriers = np.full((n, n), np.nan)
    results: dict[tuple[int, int], PathResult] = {}
    todo = pairs if pairs is not None else [(i, j) for i in range(n) for j in range(i + 1, n)]
    folder = Path(checkpoint) if checkpoint is not None else None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"checkpoint={str(checkpoint)!r}: a barrier matrix checkpoints into a directory, "
                             "and this is a file")
        folder.mkdir(parents=True, exist_ok=True)
        own_searches = finder is not None and is_dataclass(finder) and getattr(finder, "checkpoint", "-") is None
        if finder is None:
            method, settings = "straight", {"points": int(points), "splits": splits}
        else:
            method = type(finder).__name__
            settings = asdict(finder) if is_dataclass(finder) else {"finder": repr(finder)}
        data = data_digest(objective)
    for i, j in todo:
        i, j = min(i, j), max(i, j)
        name = None
        if folder is not None:
            a = _flat_point(objective, solutions[i], f"solution {i}")
            b = _flat_point(objective, solutions[j], f"solution {j}")
            parts = search_fingerprint(method, settings, objective, a, b, data=data)
            name = f"pair-{fingerprint_key(parts)}"
        if name is not None and (folder / f"{name}.json").exists():
            res = PathResult.load(folder, name)
            # a kill between saving the pair and removing its search checkpoint leaves the latter
            shutil.rmtree(folder / f"{name}-search", ignore_errors=True)
        elif finder is None:
            res = linear_barrier(objective, solutions[i], solutions[j], points=points, splits=splits)
            if name is not None:
                res.save(folder, name)
        elif name is not None and own_searches:
            # the pair's search checkpoints in its own folder, removed once the pair's result is saved
            search = folder / f"{name}-search"
            search.mkdir(exist_ok=True)
            res = replace(finder, checkpoint=search).find(objective, solutions[i], solutions[j])
            res.save(folder, name)
            shutil.rmtree(search, ignore_errors=True)
        else:
            res = finder.find(objective, solutions[i], solutions[j])
            if name is not None:
                res.save(folder, name)
        results[(i, j)] = res
        heights[i, j] = heights[j, i] = res.height
        barriers[i, j] = barriers[j, i] = res.barrier
        heights[i, i], heights[j, j] = res.profile.endpoint_losses
        barriers[i, i] = barriers[j, j] = 0.0
    method = "straight" if finder is None else next(iter(results.values())).method
    return BarrierMatrix(heights, barriers, method, labels, results)


def spanning_tree(heights: np.ndarray) -> list[tuple[int, int, float]]:
    """Edges ``(i, j, H_ij)`` of the minimum spanning tree over the pairwise heights.

    Uses ``scipy.sparse.csgraph.minimum_spanning_tree``.  Heights are shifted to be positive
    first (csgraph treats zero as "no edge"); NaN pairs are missing edges.
    """
    from scipy.sparse.csgraph import minimum_spanning_tree

    h = np.asarray(heights, dtype=float)
    n = h.shape[0]
    iu = np.triu_indices(n, 1)
    finite = np.isfinite(h[iu])
    if not finite.any():
        return []
    shift = 1.0 - np.nanmin(h[iu])
    w = np.zeros_like(h)
    w[iu] = np.where(finite, h[iu] + shift, 0.0)
    tree = minimum_spanning_tree(w).tocoo()
    edges = [(int(min(i, j)), int(max(i, j)), float(h[i, j])) for i, j in zip(tree.row, tree.col)]
    return sorted(edges, key=lambda e: e[2])


def centroid_distances(solutions, groups: Sequence[str] | None = None) -> dict[str, Any]:
    """‖ω_i − ω̄‖ with ω̄ the mean of the group centroids (all one group when ``groups`` is None).

    Returns ``{"centroid": ω̄, "distances": array (N,), "by_group": {group: array}}``.
    """
    x = stack_solutions(solutions)
    groups = list(groups) if groups is not None else ["all"] * len(x)
    if len(groups) != len(x):
        raise UsageError(f"groups has {len(groups)} entries for {len(x)} solutions")
    names = list(dict.fromkeys(groups))
    g = np.asarray(groups)
    centroid = np.mean([x[g == name].mean(axis=0) for name in names], axis=0)
    d = np.linalg.norm(x - centroid, axis=1)
    return {"centroid": centroid, "distances": d, "by_group": {name: d[g == name] for name in names}}


def weight_statistics(solutions, spec=None) -> list[dict[str, Any]]:
    """Per solution: ‖ω‖, mean, std, max |ω| and (with a ParamSpec) the norm of each tensor."""
    x = stack_solutions(solutions)
    out = []
    for v in x:
        row: dict[str, Any] = {"norm": float(np.linalg.norm(v)), "mean": float(v.mean()),
                               "std": float(v.std()), "max_abs": float(np.abs(v).max())}
        if spec is not None:
            row["tensor_norms"] = {name: float(np.linalg.norm(v[sl])) for name, _, sl in spec.items()}
        out.append(row)
    return out


def kernel_pca(solutions, *, kernel: str = "rbf", gamma: float | None = None, n_components: int = 2,
               **kwargs) -> np.ndarray:
    """Scores of the solutions on the first ``n_components`` kernel principal components.

    ``kernel="rbf"`` with ``gamma=None`` uses the paper's γ = 1/N_prm (2σ² = N_prm).  Other
    scikit-learn kernels (``"linear"``, ``"poly"``, ``"sigmoid"``, ``"cosine"``) are passed through.
    """
    from sklearn.decomposition import KernelPCA

    x = stack_solutions(solutions)
    if not 1 <= n_components <= len(x):
        raise UsageError(f"n_components must be between 1 and the number of solutions ({len(x)}), got {n_components}")
    if kernel == "rbf" and gamma is None:
        gamma = 1.0 / x.shape[1]
    kpca = KernelPCA(n_components=n_components, kernel=kernel, gamma=gamma, **kwargs)
    return kpca.fit_transform(x)


def linear_pca(solutions, *, n_components: int = 2) -> np.ndarray:
    """Ordinary PCA scores (scikit-learn ``PCA``), for contrast with the RBF kernel."""
    from sklearn.decomposition import PCA

    x = stack_solutions(solutions)
    return PCA(n_components=min(n_components, len(x))).fit_transform(x)


__all__ = [
    "BarrierMatrix", "barrier_matrix", "centroid_distances", "kernel_pca", "linear_pca",
    "spanning_tree", "stack_solutions", "weight_statistics",
]
