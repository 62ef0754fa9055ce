"""Random directions in parameter space and their normalisation (Li et al. 2018).

One definition of "filter" for the whole package: maps, Guided Exploration probes and paths
all call :func:`normalize_directions` / :func:`random_direction`.

Filter normalisation (Li, Xu, Taylor, Studer, Goldstein, *Visualizing the Loss Landscape of
Neural Nets*, NeurIPS 2018, §4; reference code ``net_plotter.normalize_direction``): for each
tensor with ``dim >= 2`` and each output filter ``f`` (a slice along dim 0),

    d_f ← d_f · ‖θ_f‖ / (‖d_f‖ + 1e-10),

so that every filter of the direction has the norm of the matching filter of the weights.
``norm="layer"`` uses one scale per tensor; ``norm="none"`` leaves the Gaussian draw as it is.
One-dimensional tensors (biases, BatchNorm affine parameters) are handled by ``ignore_1d``:
``True`` (the reference's ``ignore='biasbn'``) sets them to zero; ``False`` sets them equal
to the weights themselves (``d = θ``, the reference's behaviour without ``ignore``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from topograph.core.params import ParamSpec
from topograph.errors import UsageError

Norm = Literal["filter", "layer", "none"]
NORMS = ("filter", "layer", "none")
_EPS = 1e-10


def normalize_directions(
    spec: ParamSpec,
    directions: Tensor,
    weights: Tensor,
    *,
    norm: Norm = "filter",
    ignore_1d: bool = True,
) -> Tensor:
    """Rescale each row of ``directions`` (n×P) against the flat ``weights`` (a new tensor).

    One pass per parameter tensor for all n rows: filter norms of the rows as an (n, f, ·)
    view, the weights' filter norms once.
    """
    if norm not in NORMS:
        raise UsageError(f"norm={norm!r} is not supported; use one of {', '.join(NORMS)}")
    if directions.ndim != 2 or weights.shape != (spec.size,) or directions.shape[1] != spec.size:
        raise UsageError(
            f"directions have shape {tuple(directions.shape)}, weights {tuple(weights.shape)}; "
            f"they must be n×{spec.size} and a flat vector of length {spec.size}"
        )
    n = directions.shape[0]
    out = directions.clone()
    for _, shape, sl in spec.items():
        d, w = out[:, sl], weights[sl]
        if len(shape) <= 1:
            d.copy_(torch.zeros_like(w).expand(n, -1) if ignore_1d else w.expand(n, -1))
        elif norm == "filter":
            d3 = d.view(n, shape[0], -1)
            w_norm = w.view(shape[0], -1).norm(dim=1, keepdim=True)
            d3.mul_(w_norm / (d3.norm(dim=2, keepdim=True) + _EPS))
        elif norm == "layer":
            d.mul_(w.norm() / (d.norm(dim=1, keepdim=True) + _EPS))
    return out


def normalize_direction(
    spec: ParamSpec,
    direction: Tensor,
    weights: Tensor,
    *,
    norm: Norm = "filter",
    ignore_1d: bool = True,
) -> Tensor:
    """Rescale a flat ``direction`` against flat ``weights`` (returns a new flat vector)."""
    if direction.shape != weights.shape:
        raise UsageError(
            f"direction has shape {tuple(direction.shape)}, weights {tuple(weights.shape)}; "
            f"both must be flat vectors of length {spec.size}"
        )
    return normalize_directions(spec, direction.unsqueeze(0), weights, norm=norm, ignore_1d=ignore_1d)[0]


def random_direction(
    spec: ParamSpec,
    weights: Tensor,
    *,
    norm: Norm = "filter",
    ignore_1d: bool = True,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Tensor:
    """A Gaussian direction, normalised against ``weights`` (flat, same dtype/device).

    Pass ``seed`` (or a ``generator``) for a reproducible draw; the draw is made on the CPU
    in float32 and then moved, so the same seed gives the same direction on every device.
    """
    if generator is None:
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else int(seed))
    raw = torch.randn(spec.size, generator=generator, dtype=torch.float32)
    raw = raw.to(device=weights.device, dtype=weights.dtype)
    return normalize_direction(spec, raw, weights, norm=norm, ignore_1d=ignore_1d)
