"""An analytic landscape: a function f: R² → R in torch operations, its critical points, a
plotting domain and a default start — see :mod:`topograph.data.analytic` for the catalogue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from topograph.core.function import FunctionObjective
from topograph.errors import UsageError

CriticalKind = Literal["minimum", "saddle", "maximum"]
Domain = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class CriticalPoint:
    """A stationary point ∇f(point) = 0 of an analytic landscape.

    Attributes
    ----------
    point: coordinates (x, y).
    value: f(point).
    kind: ``"minimum"`` (Hessian positive definite), ``"saddle"`` (exactly one negative
        Hessian eigenvalue: an index-1 saddle, the top of a minimum-energy path) or
        ``"maximum"`` (negative definite).
    label: a short name, e.g. ``"A"``, ``"global"``, ``"A-C"`` (a saddle between A and C).
    """

    point: tuple[float, ...]
    value: float
    kind: CriticalKind
    label: str

    def as_tensor(self, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """The point as a 1-D tensor (float64 by default)."""
        return torch.tensor(self.point, dtype=dtype)


@dataclass(frozen=True)
class AnalyticLandscape:
    """One analytic landscape f: R^dim → R with its known stationary points.

    Attributes
    ----------
    name: registry name (lower case, hyphenated).
    formula: the function on a tensor of shape ``(..., dim)``; use :meth:`f`, which checks
        the shape first.
    dim: number of coordinates (2 for all built-in landscapes).
    minima, saddles, maxima: the listed :class:`CriticalPoint` s (see each description for
        which stationary points are listed).
    domain: ``((xmin, xmax), (ymin, ymax))``, the box used for plots and searches.
    default_start: a non-stationary starting point for optimizer demos.
    description: the formula and its source.
    """

    name: str
    formula: Callable[[Tensor], Tensor] = field(repr=False, compare=False)
    dim: int
    minima: tuple[CriticalPoint, ...]
    saddles: tuple[CriticalPoint, ...]
    maxima: tuple[CriticalPoint, ...]
    domain: Domain
    default_start: tuple[float, ...]
    description: str = field(repr=False)

    # ------------------------------------------------------------------ evaluation
    def f(self, points: Tensor | Sequence[float]) -> Tensor:
        """f at ``points`` of shape ``(..., dim)`` → values of shape ``(...)``.

        Differentiable (autograd) and broadcasting over any leading dimensions.  Floating
        tensors keep their dtype; anything else is converted to float64.
        """
        if not isinstance(points, Tensor) or not points.is_floating_point():
            points = torch.as_tensor(points, dtype=torch.float64)
        if points.ndim == 0 or points.shape[-1] != self.dim:
            raise UsageError(
                f"points must have shape (..., {self.dim}) for landscape {self.name!r}; "
                f"got shape {tuple(points.shape)}"
            )
        return self.formula(points)

    __call__ = f

    @property
    def critical_points(self) -> tuple[CriticalPoint, ...]:
        """All listed stationary points: minima, then saddles, then maxima."""
        return self.minima + self.saddles + self.maxima

    @property
    def global_minimum(self) -> CriticalPoint:
        """The listed minimum with the lowest value."""
        return min(self.minima, key=lambda p: p.value)

    def critical_point(self, label: str) -> CriticalPoint:
        """The listed stationary point called ``label`` (e.g. ``"A"``)."""
        for p in self.critical_points:
            if p.label == label:
                return p
        labels = ", ".join(p.label for p in self.critical_points)
        raise UsageError(f"label {label!r} is not a critical point of {self.name!r}; allowed: {labels}")

    # ------------------------------------------------------------------ adapters
    def objective(self, x0: Tensor | Sequence[float] | None = None) -> FunctionObjective:
        """This landscape as a :class:`~topograph.core.FunctionObjective` (float64).

        ``x0`` is the objective's current point (default: :attr:`default_start`).
        """
        start = torch.as_tensor(self.default_start if x0 is None else x0, dtype=torch.float64)
        if start.shape != (self.dim,):
            raise UsageError(
                f"x0 must have {self.dim} coordinates for landscape {self.name!r}; "
                f"got shape {tuple(start.shape)}"
            )
        return FunctionObjective(self.f, self.dim, x0=start, dtype=torch.float64)

    def grid(self, n: int = 201, *, domain: Domain | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``X, Y, Z`` of shape ``(n, n)`` over ``domain`` (default :attr:`domain`).

        ``meshgrid`` in ``"xy"`` indexing, so ``plt.contour(X, Y, Z)`` works directly
        (``Z[i, j] = f(X[i, j], Y[i, j])``, rows follow y).  float64 tensors.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise UsageError(f"n must be an integer >= 2, got {n!r}")
        if self.dim != 2:
            raise UsageError(f"grid() needs a 2-D landscape; {self.name!r} has dim {self.dim}")
        (x0, x1), (y0, y1) = self.domain if domain is None else domain
        if not (x0 < x1 and y0 < y1):
            raise UsageError(f"domain must be ((xmin, xmax), (ymin, ymax)) with min < max, got {domain!r}")
        xs = torch.linspace(x0, x1, n, dtype=torch.float64)
        ys = torch.linspace(y0, y1, n, dtype=torch.float64)
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            Z = self.f(torch.stack((X, Y), dim=-1))
        return X, Y, Z


def critical_point(kind: CriticalKind, label: str, x: float, y: float, value: float) -> CriticalPoint:
    return CriticalPoint((float(x), float(y)), float(value), kind, label)


__all__ = ["AnalyticLandscape", "CriticalKind", "CriticalPoint", "Domain", "critical_point"]
