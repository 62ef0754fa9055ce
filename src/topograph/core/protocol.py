"""What an objective offers: the :class:`ObjectiveLike` protocol.

Curvature, paths, maps and the optimizer demos accept anything that answers these calls.  Two
implementations ship with topograph: :class:`~topograph.core.Objective` (a module, a loss and
data) and :class:`~topograph.core.FunctionObjective` (a plain differentiable function, such as
the analytic landscapes of :mod:`topograph.data.analytic`).  Features that need the data
themselves (chunks, splits, the first-layer shortcut) take an ``Objective``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from topograph.core.params import ParamSpec
from topograph.core.work import Work


@runtime_checkable
class ObjectiveLike(Protocol):
    """A scalar function of a flat parameter vector θ ∈ R^P, with its gradient and HVPs."""

    spec: ParamSpec
    device: torch.device
    work: Work

    @property
    def size(self) -> int: ...

    def flat_params(self) -> Tensor: ...

    def split_names(self) -> tuple[str, ...]: ...

    def num_samples(self, split: str = "train") -> int: ...

    def evaluate(self, theta: Any = None, *, split: str = "train", batch: Any = None) -> Any: ...

    def loss(self, theta: Any = None, *, split: str = "train", batch: Any = None) -> float: ...

    def evaluate_many(self, thetas: Tensor, *, split: str = "train", batch: Any = None) -> tuple[Tensor, Tensor]: ...

    def losses(self, thetas: Tensor, *, split: str = "train", batch: Any = None) -> Tensor: ...

    def value_and_grad(self, theta: Any = None, *, split: str = "train", batch: Any = None) -> tuple[float, Any]: ...

    def grad(self, theta: Any = None, *, split: str = "train", batch: Any = None) -> Any: ...

    def hvp_function(self, theta: Any = None, *, split: str = "train", batch: Any = None, params: Any = None,
                     method: Any = None, keep_graph: Any = None) -> tuple[Any, int]: ...

    def hvp(self, theta: Any, v: Tensor, *, split: str = "train", batch: Any = None, method: Any = None) -> Tensor: ...


class DataObjective(ObjectiveLike, Protocol):
    """An objective over a module and data (:class:`~topograph.core.Objective`): what the Hessian
    products, the subspace evaluator and the exact trace use beyond :class:`ObjectiveLike`."""

    module: nn.Module
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    batchnorm: str

    def mode(self) -> AbstractContextManager[None]: ...

    def chunks(self, split: str = "train", batch: Any = None) -> Iterator[tuple[Tensor, Tensor]]: ...

    def buffers_at(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]: ...

    def terms(self, params: Mapping[str, Tensor], x: Tensor, y: Tensor,
              buffers: Mapping[str, Tensor] | None = None) -> tuple[Tensor, Tensor | None]: ...


__all__ = ["DataObjective", "ObjectiveLike"]
