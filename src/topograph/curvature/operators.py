"""Symmetric linear operators given only by their action ``v ↦ A v``.

Every curvature algorithm of :mod:`topograph.curvature` (Lanczos, power iteration, Hutchinson,
Hutch++, stochastic Lanczos quadrature) sees its matrix through the small protocol
:class:`LinearOperator` — ``matvec``, ``size``, ``dtype``, ``device`` — as in
pytorch-hessian-eigenthings v1 (N. Golmant et al., 2018).  So the algorithms are tested on plain matrices
(:class:`MatrixOperator`) and run unchanged on

* :class:`HessianOperator` — H(θ) = ∇²L(θ), the Hessian of the loss at any point, on a whole
  split (in chunks) or one batch, optionally restricted to chosen parameter tensors (the
  diagonal block of a layer: per-layer Hessians).  Each product is one double-backward through
  a gradient graph built once (:meth:`topograph.core.Objective.hvp_function`).
* :class:`GaussNewtonOperator` — the generalised Gauss–Newton matrix G(θ) = Jᵀ H_ℓ J
  (Schraudolph 2002; Martens 2020), with J = ∂f(x;θ)/∂θ the Jacobian of the network outputs
  and H_ℓ = ∂²ℓ/∂f² the Hessian of the loss in the outputs.  G is positive semi-definite for
  convex losses (cross-entropy, squared error) and equals H minus the term
  Σ_c (∂ℓ/∂f_c) ∇²f_c.

Every concrete operator counts its products in ``hvps`` (the algorithms also report the products
*they* used, in their results' ``work``, so a shared operator can serve several algorithms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from topograph.core import Objective, ObjectiveLike
from topograph.core.linalg import LinearOperator
from topograph.errors import UsageError


class MatrixOperator:
    """A dense symmetric matrix as an operator (tests, small problems, reference answers).

    ``check_symmetric`` raises a :class:`UsageError` when ‖A − Aᵀ‖_max > 1e-6·‖A‖_max.
    """

    def __init__(self, matrix: Tensor | Any, *, check_symmetric: bool = True) -> None:
        self.matrix = torch.as_tensor(matrix)
        self.check_symmetric = check_symmetric
        self.hvps = 0

    def _validated(self) -> Tensor:
        a = self.matrix
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise UsageError(f"matrix must be square (n×n); got shape {tuple(a.shape)}")
        if self.check_symmetric:
            scale = float(a.abs().max()) if a.numel() else 0.0
            if float((a - a.T).abs().max()) > 1e-6 * max(scale, 1e-30):
                raise UsageError("matrix must be symmetric (A = Aᵀ); pass check_symmetric=False to skip")
        return a

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def matvec(self, v: Tensor) -> Tensor:
        if self.hvps == 0:
            self._validated()
        self.hvps += 1
        return self.matrix @ v.to(self.matrix)


class HessianOperator:
    """The Hessian H(θ) = ∇²L(θ) of an objective's loss at θ, as an operator.

    Parameters
    ----------
    objective:
        a :class:`topograph.core.Objective` (network + loss + data) or a
        :class:`topograph.core.FunctionObjective` (analytic landscape).
    theta:
        the point (flat vector or dict); ``None`` = the module's current parameters.
    split, batch:
        the data the loss is averaged over: a named split (in chunks) or one ``(x, y)`` batch.
    params:
        names of parameter tensors to restrict to: the operator is then the diagonal block
        ∂²L/∂θ_S² of those tensors (the others held at θ), on vectors over those tensors only.
    method:
        HVP method of the core (``"double_backward"`` or ``"forward_over_reverse"``); default:
        the objective's.

    Nothing is computed at construction; the gradient graph is built at the first product and
    reused by every later one (one double-backward per product).
    """

    def __init__(
        self,
        objective: ObjectiveLike,
        theta: Tensor | dict | None = None,
        *,
        split: str = "train",
        batch: tuple[Tensor, Tensor] | None = None,
        params: Sequence[str] | None = None,
        method: str | None = None,
    ) -> None:
        self.objective = objective
        self.theta = theta
        self.split = split
        self.batch = batch
        self.params = None if params is None else tuple(params)
        self.method = method
        self.hvps = 0
        self._fn = None
        self._size: int | None = None

    def _build(self) -> None:
        if self._fn is None:
            kwargs: dict[str, Any] = {"split": self.split, "batch": self.batch}
            if self.params is not None:
                kwargs["params"] = list(self.params)
            if self.method is not None:
                kwargs["method"] = self.method
            self._fn, self._size = self.objective.hvp_function(self.theta, **kwargs)

    @property
    def size(self) -> int:
        if self._size is None:
            if self.params is None:
                self._size = int(self.objective.size)
            else:
                self._size = int(self.objective.spec.restrict(list(self.params)).size)
        return self._size

    @property
    def dtype(self) -> torch.dtype:
        if self.theta is not None and isinstance(self.theta, Tensor):
            return self.theta.dtype
        return self.objective.flat_params().dtype

    @property
    def device(self) -> torch.device:
        return torch.device(self.objective.device)

    def matvec(self, v: Tensor) -> Tensor:
        self._build()
        self.hvps += 1
        return self._fn(v)

    def matmat(self, vectors: Tensor) -> Tensor:
        """H applied to each row of ``vectors`` (b×n) → b×n; counts b products.

        For a network :class:`~topograph.core.Objective` with the double-backward method, all b
        products are one batched reverse pass through a kept gradient graph
        (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. vmap over the backward): the
        same FLOPs as b single products, in wider matrix products with less per-call overhead.
        Otherwise, a loop over :meth:`matvec`.
        """
        if vectors.ndim != 2 or vectors.shape[1] != self.size:
            raise UsageError(f"vectors must have shape (b, {self.size}); got {tuple(vectors.shape)}")
        self._build()
        self.hvps += vectors.shape[0]
        return self._fn.matmat(vectors)

    def gradient(self) -> Tensor:
        """∇L(θ) on the operator's coordinates — a free by-product of the kept gradient graph."""
        self._build()
        return self._fn.gradient


class GaussNewtonOperator:
    """The generalised Gauss–Newton matrix G(θ) = (1/N) Σ_i J_iᵀ H_ℓ,i J_i of a network.

    J_i = ∂f(x_i; θ)/∂θ is the Jacobian of the network output and H_ℓ,i = ∂²ℓ(f, y_i)/∂f² the
    Hessian of the loss in the output (Schraudolph 2002, "Fast curvature matrix-vector
    products").  Each product, per data chunk: a forward-mode ``torch.func.jvp`` gives J v, a
    forward-over-reverse product through ``objective.loss_fn`` gives H_ℓ (J v), and a reverse
    ``torch.func.vjp`` (graph kept across products) gives Jᵀ(H_ℓ J v).  The chunk losses are
    mean-reduced, so chunk c is weighted by n_c / N.  Needs a module :class:`Objective`.
    """

    def __init__(
        self,
        objective: Objective,
        theta: Tensor | dict | None = None,
        *,
        split: str = "train",
        batch: tuple[Tensor, Tensor] | None = None,
    ) -> None:
        self.objective = objective
        self.theta = theta
        self.split = split
        self.batch = batch
        self.hvps = 0
        self._chunks: list | None = None

    @property
    def size(self) -> int:
        return int(self.objective.size)

    @property
    def dtype(self) -> torch.dtype:
        return self._theta().dtype

    @property
    def device(self) -> torch.device:
        return torch.device(self.objective.device)

    def _theta(self) -> Tensor:
        obj = self.objective
        if self.theta is None:
            return obj.flat_params()
        return obj.spec.as_flat(self.theta).detach().to(obj.device)

    def _build(self) -> None:
        if self._chunks is not None:
            return
        obj = self.objective
        if not isinstance(obj, Objective):
            raise UsageError("GaussNewtonOperator needs a network Objective (module + loss); "
                             "use HessianOperator for a FunctionObjective")
        theta = self._theta()
        chunks = list(obj.chunks(self.split, self.batch))
        n = sum(int(x.shape[0]) for x, _ in chunks)
        built = []
        with obj.mode():
            for x, y in chunks:
                def f(t: Tensor, x: Tensor = x) -> Tensor:
                    return obj.forward(obj.spec.unflatten(t), x)

                out, vjp_fn = torch.func.vjp(f, theta)
                built.append((f, x, y, out.detach(), vjp_fn, x.shape[0] / n))
        self._chunks = built
        self._theta_flat = theta

    def matvec(self, v: Tensor) -> Tensor:
        self._build()
        obj = self.objective
        theta = self._theta_flat
        v = v.to(theta)
        result = torch.zeros_like(theta)
        with obj.mode():
            for f, _x, y, out, vjp_fn, w in self._chunks:
                _, jv = torch.func.jvp(f, (theta,), (v,))
                grad_out = torch.func.grad(lambda o, y=y: obj.loss_fn(o, y))
                _, hjv = torch.func.jvp(grad_out, (out,), (jv,))
                (jt,) = vjp_fn(hjv)
                result += w * jt
        self.hvps += 1
        return result.detach()


__all__ = ["GaussNewtonOperator", "HessianOperator", "LinearOperator", "MatrixOperator"]
