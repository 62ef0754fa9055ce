"""An objective given by a plain differentiable function f: R^d → R (no module, no data).

:class:`FunctionObjective` answers the same calls as :class:`topograph.core.Objective`
(``evaluate``, ``loss``, ``evaluate_many``, ``value_and_grad``, ``grad``, ``hvp_function``,
``hvp``, ``flat_params``, ``spec``), so curvature, paths, maps and the optimizer demos run
unchanged on the analytic landscapes of :mod:`topograph.data.analytic`.  The ``split`` and
``batch`` arguments are accepted and ignored: there is no data.  Accuracy is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from topograph.core.objective import Evaluation
from topograph.core.params import ParamSpec
from topograph.core.work import Work
from topograph.errors import UsageError


class FunctionObjective:
    """Wrap ``fn`` mapping points of shape ``(..., dim)`` to values of shape ``(...)``.

    ``fn`` must be written with torch operations (so autograd gives exact gradients and
    Hessian-vector products) and must broadcast over leading dimensions, which makes
    :meth:`evaluate_many` a single call.
    """

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        dim: int,
        *,
        x0: Tensor | None = None,
        dtype: torch.dtype = torch.float64,
        name: str = "x",
    ) -> None:
        if int(dim) < 1:
            raise UsageError(f"dim must be a positive integer, got {dim}")
        self.fn = fn
        self.dim = int(dim)
        self.dtype = dtype
        self.x0 = torch.zeros(self.dim, dtype=dtype) if x0 is None else torch.as_tensor(x0, dtype=dtype)
        self.spec = ParamSpec.from_tensors({name: torch.empty(self.dim, device="meta")})
        self.device = torch.device("cpu")
        self.work = Work()

    @property
    def size(self) -> int:
        return self.dim

    def flat_params(self) -> Tensor:
        return self.x0.clone()

    def _flat(self, theta) -> Tensor:
        if theta is None:
            return self.x0.clone()
        return self.spec.as_flat(theta).to(self.dtype)

    def split_names(self) -> tuple[str, ...]:
        return ()

    def num_samples(self, split: str = "train") -> int:
        """1: a function has no data."""
        return 1

    @torch.no_grad()
    def evaluate(self, theta=None, *, split: str = "train", batch=None) -> Evaluation:
        self.work.add(forward_passes=1)
        return Evaluation(float(self.fn(self._flat(theta))), math.nan, 1)

    def loss(self, theta=None, *, split: str = "train", batch=None) -> float:
        return self.evaluate(theta).loss

    def accuracy(self, theta=None, *, split: str = "train", batch=None) -> float:
        return math.nan

    @torch.no_grad()
    def evaluate_many(self, thetas: Tensor, *, split: str = "train", batch=None) -> tuple[Tensor, Tensor]:
        if thetas.ndim != 2 or thetas.shape[1] != self.dim:
            raise UsageError(f"thetas must have shape (K, {self.dim}); got {tuple(thetas.shape)}")
        self.work.add(forward_passes=thetas.shape[0])
        vals = self.fn(thetas.to(self.dtype)).to(torch.float64)
        return vals, torch.full_like(vals, math.nan)

    def losses(self, thetas: Tensor, *, split: str = "train", batch=None) -> Tensor:
        """Differentiable values at K points (K×dim) → tensor of length K."""
        self.work.add(forward_passes=thetas.shape[0])
        return self.fn(thetas.to(self.dtype))

    def value_and_grad(self, theta=None, *, split: str = "train", batch=None) -> tuple[float, Tensor]:
        x = self._flat(theta).detach().requires_grad_(True)
        val = self.fn(x)
        (g,) = torch.autograd.grad(val, x)
        self.work.add(forward_passes=1, backward_passes=1)
        return float(val.detach()), g.detach()

    def grad(self, theta=None, *, split: str = "train", batch=None) -> Tensor:
        return self.value_and_grad(theta)[1]

    def hvp_function(self, theta=None, *, split: str = "train", batch=None, params=None,
                     method=None, keep_graph=None):
        """``(hvp, dim)`` with ``hvp(v) = H v``, ``hvp.matmat(V)`` and ``hvp.gradient``."""
        return _FunctionHVP(self, self._flat(theta)), self.dim

    def hvp(self, theta, v: Tensor, *, split: str = "train", batch=None, method=None) -> Tensor:
        return self.hvp_function(theta)[0](v)

    def hessian(self, theta=None) -> Tensor:
        """The dense d×d Hessian (for small d: tests, saddle classification)."""
        x = self._flat(theta).detach()
        return torch.autograd.functional.hessian(self.fn, x)


class _FunctionHVP:
    """Hessian-vector products of a :class:`FunctionObjective` through one kept gradient graph."""

    def __init__(self, objective: FunctionObjective, x: Tensor) -> None:
        self.objective = objective
        self.size = objective.dim
        self._x = x.detach().requires_grad_(True)
        (self._g,) = torch.autograd.grad(objective.fn(self._x), self._x, create_graph=True)
        self.gradient = self._g.detach()

    def __call__(self, v: Tensor) -> Tensor:
        (hv,) = torch.autograd.grad(self._g, self._x, grad_outputs=v.to(self._x), retain_graph=True)
        self.objective.work.add(hvps=1)
        return hv.detach()

    def matmat(self, vectors: Tensor) -> Tensor:
        return torch.stack([self(v) for v in vectors])
