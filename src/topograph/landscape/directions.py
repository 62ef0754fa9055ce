"""Directions of a map: the centre θ* and the m vectors δ_1 … δ_m spanning a line or plane.

A surface is f(α) = L(θ* + Σ_j α_j δ_j) over a grid of coefficients α.  This module makes the
:class:`Directions` of every kind the maps support, each seeded and carrying its options:

``random_directions``
    Gaussian draws normalised against θ* by :func:`topograph.core.random_direction` (filter,
    layer or none; 1-D tensors zeroed or kept — Li, Xu, Taylor, Studer & Goldstein,
    *Visualizing the Loss Landscape of Neural Nets*, NeurIPS 2018, §4).
``interpolation_directions``
    the line through two points, θ(t) = θ_a + t (θ_b − θ_a) (Goodfellow et al. 2015; Li §3).
``plane_directions``
    the plane through three points: centre θ_0 and δ_j = θ_j − θ_0.
``pca_directions``
    the first principal components of a trajectory's offsets θ_i − θ_n from its final point
    (Li et al. §7): ``sklearn.decomposition.PCA`` on the rows θ_i − θ_n (1-D entries zeroed
    when ``ignore_1d``); the components are unit vectors and the explained-variance ratios
    are kept.
``user_directions``
    vectors the user supplies (flat tensors or name → tensor dicts), shape-checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topograph.core import ObjectiveLike
from topograph.core.directions import NORMS, random_direction
from topograph.core.params import ParamSpec
from topograph.errors import UsageError


@dataclass
class Directions:
    """A centre and ``m`` direction vectors (flat, on the objective's device).

    Attributes
    ----------
    center: θ*, shape ``(P,)``.
    vectors: δ_1 … δ_m stacked, shape ``(m, P)``.
    kind: ``"random"``, ``"interpolation"``, ``"plane"``, ``"pca"`` or ``"user"``.
    seed: the seed of a random draw (``None`` for deterministic kinds).
    options: the settings that made them (norm, ignore_1d, …), JSON-serialisable.
    explained_variance_ratio: for PCA directions, the fraction of the trajectory's variance
        each component explains (else ``None``).
    """

    center: Tensor
    vectors: Tensor
    kind: str
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    explained_variance_ratio: tuple[float, ...] | None = None

    @property
    def dim(self) -> int:
        """m, the number of directions (1 for a line, 2 for a plane)."""
        return int(self.vectors.shape[0])

    def point(self, coefficients: Sequence[float] | Tensor) -> Tensor:
        """θ* + Σ_j α_j δ_j for one coefficient vector α (flat)."""
        a = torch.as_tensor(coefficients, dtype=self.vectors.dtype, device=self.vectors.device)
        return self.center + a @ self.vectors

    def points(self, coefficients: Tensor) -> Tensor:
        """The K points θ* + A δ for a ``(K, m)`` coefficient matrix A → ``(K, P)``."""
        a = coefficients.to(dtype=self.vectors.dtype, device=self.vectors.device)
        return torch.addmm(self.center.unsqueeze(0), a, self.vectors)

    def metadata(self) -> dict[str, Any]:
        """What is saved with every result: kind, seed, options, explained variance."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "options": dict(self.options),
            "explained_variance_ratio": (
                list(self.explained_variance_ratio) if self.explained_variance_ratio else None
            ),
            "dim": self.dim,
        }


def _spec_center(objective: ObjectiveLike, center: Tensor | Mapping[str, Tensor] | None) -> tuple[ParamSpec, Tensor]:
    spec = objective.spec
    if center is None:
        return spec, objective.flat_params().detach()
    return spec, _as_flat_point(spec, center, "center", objective)


def _as_flat_point(spec: ParamSpec, value: Any, name: str, objective: ObjectiveLike) -> Tensor:
    """A flat point of the model from a flat tensor or a name → tensor dict (shape-checked)."""
    if isinstance(value, Mapping):
        missing = [n for n in spec.names if n not in value]
        if missing:
            raise UsageError(f"{name} lacks the parameters {', '.join(missing[:3])}; it must cover "
                             f"all {len(spec.names)} trainable tensors of the model")
        for n, s in zip(spec.names, spec.shapes):
            if tuple(value[n].shape) != tuple(s):
                raise UsageError(f"{name}: parameter {n!r} has shape {tuple(value[n].shape)}, "
                                 f"the model's is {tuple(s)}")
        flat = torch.cat([value[n].detach().reshape(-1) for n in spec.names])
    else:
        flat = torch.as_tensor(value).detach()
        if flat.ndim != 1 or flat.shape[0] != spec.size:
            raise UsageError(f"{name} has shape {tuple(flat.shape)}; it must be a flat vector of "
                             f"length {spec.size} (the model's parameter count) or a dict of tensors")
    ref = objective.flat_params()
    return flat.to(device=ref.device, dtype=ref.dtype)


def random_directions(
    objective: ObjectiveLike,
    center: Tensor | Mapping[str, Tensor] | None = None,
    *,
    dim: int = 2,
    norm: str = "filter",
    ignore_1d: bool = True,
    seed: int = 0,
) -> Directions:
    """``dim`` Gaussian directions normalised against the centre (Li et al. 2018, §4).

    One ``torch.Generator`` seeded with ``seed`` draws δ_1, …, δ_m in turn (on the CPU in
    float32, so the same seed gives the same directions on every device).  ``norm`` is
    ``"filter"`` (each output filter of δ gets the norm of the matching filter of θ*),
    ``"layer"`` or ``"none"``; ``ignore_1d`` zeroes biases/BatchNorm entries (the reference
    code's ``biasbn``) or, when False, sets them equal to θ*.
    """
    if norm not in NORMS:
        raise UsageError(f"norm={norm!r} is not supported; use one of {', '.join(NORMS)}")
    if int(dim) < 1:
        raise UsageError(f"dim must be a positive integer (1 for a line, 2 for a plane), got {dim}")
    spec, c = _spec_center(objective, center)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    vecs = torch.stack([
        random_direction(spec, c, norm=norm, ignore_1d=ignore_1d, generator=gen) for _ in range(int(dim))
    ])
    return Directions(c, vecs, "random", int(seed), {"norm": norm, "ignore_1d": bool(ignore_1d)})


def interpolation_directions(objective: ObjectiveLike, theta_a: Any, theta_b: Any) -> Directions:
    """The line θ(t) = θ_a + t (θ_b − θ_a): t = 0 is θ_a, t = 1 is θ_b."""
    spec = objective.spec
    a = _as_flat_point(spec, theta_a, "theta_a", objective)
    b = _as_flat_point(spec, theta_b, "theta_b", objective)
    return Directions(a, (b - a).unsqueeze(0), "interpolation", None, {})


def plane_directions(objective: ObjectiveLike, theta_0: Any, theta_1: Any, theta_2: Any) -> Directions:
    """The plane through three points: centre θ_0, δ_1 = θ_1 − θ_0, δ_2 = θ_2 − θ_0.

    (0, 0), (1, 0) and (0, 1) are the three models.
    """
    spec = objective.spec
    p0 = _as_flat_point(spec, theta_0, "theta_0", objective)
    p1 = _as_flat_point(spec, theta_1, "theta_1", objective)
    p2 = _as_flat_point(spec, theta_2, "theta_2", objective)
    return Directions(p0, torch.stack([p1 - p0, p2 - p0]), "plane", None, {})


def pca_directions(
    objective: ObjectiveLike,
    snapshots: Tensor,
    center: Tensor | Mapping[str, Tensor] | None = None,
    *,
    dim: int = 2,
    ignore_1d: bool = True,
) -> Directions:
    """The ``dim`` principal directions of a trajectory (Li et al. 2018, §7).

    Rows d_i = θ_i − θ_c (θ_c = ``center``, default the last snapshot), with the entries of
    1-D tensors zeroed when ``ignore_1d``; ``sklearn.decomposition.PCA(n_components=dim)``
    (which mean-centres the rows) gives unit components; their explained-variance ratios are
    stored in :attr:`Directions.explained_variance_ratio`.
    """
    from sklearn.decomposition import PCA

    spec = objective.spec
    snaps = torch.as_tensor(snapshots).detach()
    if snaps.ndim != 2 or snaps.shape[1] != spec.size:
        raise UsageError(f"snapshots have shape {tuple(snaps.shape)}; they must be S×{spec.size} "
                         "(one flat parameter vector per row)")
    if snaps.shape[0] <= dim:
        raise UsageError(f"snapshots: {snaps.shape[0]} rows cannot give {dim} principal directions; "
                         f"record at least {dim + 1}")
    c = snaps[-1] if center is None else _as_flat_point(spec, center, "center", objective).cpu()
    rows = (snaps.to(torch.float64).cpu() - c.to(torch.float64).cpu())
    if ignore_1d:
        for _, shape, sl in spec.items():
            if len(shape) <= 1:
                rows[:, sl] = 0.0
    pca = PCA(n_components=int(dim))
    pca.fit(rows.numpy())
    ref = objective.flat_params()
    comps = torch.from_numpy(np.ascontiguousarray(pca.components_)).to(device=ref.device, dtype=ref.dtype)
    ratios = tuple(float(r) for r in pca.explained_variance_ratio_)
    return Directions(c.to(device=ref.device, dtype=ref.dtype), comps, "pca", None,
                      {"ignore_1d": bool(ignore_1d), "snapshots": int(snaps.shape[0])}, ratios)


def user_directions(
    objective: ObjectiveLike,
    vectors: Sequence[Any] | Tensor,
    center: Tensor | Mapping[str, Tensor] | None = None,
) -> Directions:
    """Directions the user supplies: flat vectors (a list or an ``m×P`` tensor) or dicts.

    A vector whose length or tensor shapes do not match the model raises :class:`UsageError`.
    """
    spec, c = _spec_center(objective, center)
    if isinstance(vectors, Tensor):
        if vectors.ndim == 1:
            vectors = [vectors]
        elif vectors.ndim == 2:
            vectors = list(vectors)
        else:
            raise UsageError(f"directions have shape {tuple(vectors.shape)}; pass an m×{spec.size} "
                             "tensor or a list of flat vectors or dicts")
    if len(vectors) < 1:
        raise UsageError("directions: give at least one direction")
    vecs = torch.stack([_as_flat_point(spec, v, f"direction {i + 1}", objective)
                        for i, v in enumerate(vectors)])
    return Directions(c, vecs, "user", None, {})


__all__ = [
    "Directions", "interpolation_directions", "pca_directions", "plane_directions",
    "random_directions", "user_directions",
]
