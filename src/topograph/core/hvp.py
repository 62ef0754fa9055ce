"""Hessian-vector products of an :class:`~topograph.core.Objective` at a fixed point.

Two implementations sit behind :meth:`Objective.hvp_function`:

``"double_backward"`` (default)
    builds the gradient graph g_c = ∇(w_c L_c)(θ) of every data chunk c once (w_c = the chunk's
    share of the samples; ``create_graph=True``) and answers each product with one reverse pass
    through it, Hv = Σ_c ∂(g_c·v)/∂θ (Pearlmutter 1994, "Fast Exact Multiplication by the
    Hessian"; the approach of PyHessian, Yao et al. 2020).
``"forward_over_reverse"``
    ``torch.func.jvp(torch.func.grad(L), (θ,), (v,))`` — recomputes forward and backward per
    product.

``benchmarks/hvp.py`` times both: on 2 CPU cores the kept graph answered a product ≈ 3× faster
(the table is in ``benchmarks/README.md``), hence the default.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from topograph.core.params import ParamDict
from topograph.core.protocol import DataObjective

HVPMethod = Literal["double_backward", "forward_over_reverse"]
HVP_METHODS = ("double_backward", "forward_over_reverse")
#: samples up to which the per-chunk gradient graphs are kept between products by default
KEEP_GRAPH_SAMPLES = 20_000


class HessianVectorProduct:
    """Products with the Hessian H(θ) of an objective at θ: ``hvp(v)``, ``hvp.matmat(V)``,
    ``hvp.gradient``; built by :meth:`Objective.hvp_function`.

    With ``keep_graph=False`` the graphs are rebuilt for every product (bounded memory).  Under
    ``batchnorm="recompute"`` the statistics are re-estimated at θ once and then held fixed.
    """

    def __init__(self, objective: DataObjective, theta: Tensor, *, split: str, batch, params, method: HVPMethod,
                 keep_graph: bool | None) -> None:
        self.objective = objective
        self.split, self.batch, self.method = split, batch, method
        spec = objective.spec
        self._theta = theta
        self._index = None
        if params is not None:
            sub = spec.restrict(tuple(params))
            self._index = torch.cat([
                torch.arange(spec.slice_of(nm).start, spec.slice_of(nm).stop) for nm in sub.names
            ]).to(theta.device)
            self.size = sub.size
        else:
            self.size = spec.size
        self.n = int(batch[0].shape[0]) if batch is not None else objective.num_samples(split)
        self.keep_graph = self.n <= KEEP_GRAPH_SAMPLES if keep_graph is None else bool(keep_graph)
        self._graphs: list[tuple[Tensor, Tensor]] | None = None
        self._gradient: Tensor | None = None
        with objective.mode():
            self._buffers = objective.buffers_at(spec.unflatten(theta))

    # -- parameter handling ------------------------------------------------------------
    def _point(self) -> Tensor:
        return self._theta if self._index is None else self._theta[self._index]

    def _params(self, sub_flat: Tensor) -> ParamDict:
        whole = sub_flat if self._index is None else self._theta.index_put((self._index,), sub_flat)
        return self.objective.spec.unflatten(whole)

    def _chunk_gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        obj = self.objective
        leaf = self._point().clone().requires_grad_(True)
        with obj.mode():
            loss, _ = obj.terms(self._params(leaf), x, y, self._buffers)
        (g,) = torch.autograd.grad(loss * (x.shape[0] / self.n), leaf, create_graph=True)
        return leaf, g

    def _pairs(self):
        chunks = self.objective.chunks(self.split, self.batch)
        if not self.keep_graph:
            return (self._chunk_gradient(x, y) for x, y in chunks)
        if self._graphs is None:
            self._graphs = [self._chunk_gradient(x, y) for x, y in chunks]
            self._gradient = sum(g.detach() for _, g in self._graphs)
            self.objective.work.add(forward_passes=1, backward_passes=1)
        return self._graphs

    # -- products ----------------------------------------------------------------------
    def __call__(self, v: Tensor) -> Tensor:
        """H v for one flat vector v."""
        point = self._point()
        v = v.to(point)
        if self.method == "forward_over_reverse":
            out = self._forward_over_reverse(v)
        else:
            out = torch.zeros_like(point)
            for leaf, g in self._pairs():
                (hv,) = torch.autograd.grad(g, leaf, grad_outputs=v, retain_graph=self.keep_graph)
                out += hv
        self.objective.work.add(hvps=1)
        return out.detach()

    def matmat(self, vectors: Tensor) -> Tensor:
        """H applied to every row of ``vectors`` (b×n → b×n).

        With the kept double-backward graph, all b products are one batched reverse pass
        (``is_grads_batched=True``: vmap over the backward) — the same FLOPs as b single
        products, in wider matrix products.  Otherwise a loop of single products.
        """
        if self.method != "double_backward" or not self.keep_graph:
            return torch.stack([self(v) for v in vectors])
        vectors = vectors.to(self._point())
        out = None
        for leaf, g in self._pairs():
            (hv,) = torch.autograd.grad(g, leaf, grad_outputs=vectors, retain_graph=True, is_grads_batched=True)
            out = hv if out is None else out + hv
        self.objective.work.add(hvps=vectors.shape[0])
        return out.detach()

    @property
    def gradient(self) -> Tensor:
        """∇L(θ) over the operator's coordinates (free once the kept graph exists)."""
        if self._gradient is None:
            if self.method == "double_backward" and self.keep_graph:
                self._pairs()
            else:
                self._gradient = sum(g.detach() for _, g in (self._chunk_gradient(x, y) for x, y
                                     in self.objective.chunks(self.split, self.batch)))
        return self._gradient

    def _forward_over_reverse(self, v: Tensor) -> Tensor:
        obj = self.objective

        def chunk_loss(sub_flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
            return obj.terms(self._params(sub_flat), x, y, self._buffers)[0] * (x.shape[0] / self.n)

        out = torch.zeros_like(self._point())
        with obj.mode():
            for x, y in obj.chunks(self.split, self.batch):
                g = torch.func.grad(chunk_loss)
                out += torch.func.jvp(lambda t: g(t, x, y), (self._point(),), (v,))[1]
        return out


__all__ = ["HVP_METHODS", "HVPMethod", "HessianVectorProduct", "KEEP_GRAPH_SAMPLES"]
