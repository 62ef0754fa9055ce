"""The functional core: a model, a loss and data, evaluated at any parameter point.

Every feature of topograph — surfaces, curvature, paths, exploring optimizers — evaluates the
network through an :class:`Objective`.  It binds an ``nn.Module``, a loss function and data and
computes, at a parameter point θ given as a dict of tensors or one flat vector,

* the loss  L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i)  and the accuracy, on a named split (in chunks,
  so memory stays bounded) or on one given batch,
* the gradient ∇L(θ),
* Hessian-vector products H(θ)v,
* the losses of many points at once (``evaluate_many``), the hook of the batched engines,

through :func:`torch.func.functional_call` — the user's module, its parameters and its buffers
are never modified.

Buffers (BatchNorm running statistics) follow one explicit policy, ``buffers=``:

``"eval"`` (default)
    the module runs in eval mode: BatchNorm uses its stored running statistics, dropout is
    off.  This is Li et al.'s convention for loss surfaces.  Deterministic.
``"batch"``
    BatchNorm layers normalise with the statistics of the batch being evaluated (train-mode
    normalisation; the running statistics are *not* updated — they are passed as copies);
    every other layer, dropout included, stays in eval mode.  For full-data evaluation the
    statistics are those of each chunk, so choose ``chunk_size`` accordingly.

HVP implementation.  Two methods sit behind :meth:`Objective.hvp_function`:

``"double_backward"`` (default)
    builds the gradient graph once (``create_graph=True``) and answers each product with one
    reverse pass through it, ``Hv = ∂(∇L·v)/∂θ``  — PyHessian's approach.
``"forward_over_reverse"``
    ``torch.func.jvp(torch.func.grad(L), (θ,), (v,))`` — recomputes forward and backward per
    product.

``benchmarks/hvp.py`` measures both; on 2 CPU cores the reused graph was ≈3× faster (see
``docs/design.md``), hence the default.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call

from topograph.core.params import ParamDict, ParamSpec, named_parameters
from topograph.errors import UsageError

Theta = Tensor | Mapping[str, Tensor]
Batch = tuple[Tensor, Tensor]
BufferPolicy = Literal["eval", "batch"]
HVPMethod = Literal["double_backward", "forward_over_reverse"]
BUFFER_POLICIES = ("eval", "batch")
HVP_METHODS = ("double_backward", "forward_over_reverse")


@dataclass(frozen=True)
class Evaluation:
    """Loss and accuracy of one parameter point on ``n`` samples (accuracy NaN if undefined)."""

    loss: float
    accuracy: float
    n: int


def default_accuracy(output: Tensor, target: Tensor) -> Tensor | None:
    """Number of correct argmax predictions, or ``None`` when the task is not classification."""
    if output.ndim >= 2 and not target.is_floating_point() and target.ndim == output.ndim - 1:
        return (output.argmax(dim=-1) == target).sum()
    return None


#: floats of activations one evaluation chunk may hold (64 MiB of float32)
ACTIVATION_BUDGET = 1 << 24


def suggest_chunk_size(module: nn.Module, example: Tensor, *, budget: int = ACTIVATION_BUDGET,
                       low: int = 64, high: int = 8192) -> int:
    """Samples per evaluation chunk so that the activations of one chunk stay near ``budget`` floats.

    Counts the output elements of every leaf module for ONE sample (``example[:1]``, forward
    hooks, eval mode, no gradient; the module's flags are restored and nothing is written) and
    returns the largest power of two ``c`` with ``c · per_sample ≤ budget``, clipped to
    ``[low, high]``.  Large chunks suit MLPs (GEMM efficiency) but slow convolutional nets
    down: on 2 CPU cores one no-grad pass of ``cnn-small`` (≈ 88k activation floats per
    sample) over 10,000 images took 3.7 s in chunks of 8192 and 1.75–2.15 s in chunks of
    128–256, while ``mlp-fmnist`` is flat from 1024 to 8192.
    """
    counted = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, Tensor):
            counted[0] += output.numel()

    leaves = [m for m in module.modules() if not list(m.children())]
    flags = [(m, m.training) for m in module.modules()]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        module.eval()
        with torch.no_grad():
            module(example[:1])
    finally:
        for h in handles:
            h.remove()
        for m, f in flags:
            m.training = f
    per_sample = max(counted[0], 1)
    fit = max(int(budget) // per_sample, 1)
    return int(min(max(1 << (fit.bit_length() - 1), low), high))


def _as_splits(data: Any) -> dict[str, Batch]:
    """Normalise the accepted data forms to ``{split name: (inputs, targets)}``."""
    if data is None:
        return {}
    splits = getattr(data, "splits", None)
    if splits is not None:  # topograph.data.Dataset
        data = splits
    if isinstance(data, Mapping):
        out = {}
        for k, v in data.items():
            if not (isinstance(v, (tuple, list)) and len(v) == 2):
                raise UsageError(f"data split {k!r} must be an (inputs, targets) pair")
            out[str(k)] = (v[0], v[1])
        return out
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        return {"train": (data[0], data[1])}
    raise UsageError(
        "data must be an (inputs, targets) pair, a dict of such pairs by split name, "
        f"or a topograph.data.Dataset; got {type(data).__name__}"
    )


class Objective:
    """Module + loss + data → loss, accuracy, gradient and HVPs at any parameter point.

    Parameters
    ----------
    module:
        any ``nn.Module``; it is only read, never modified (its train/eval flags are switched
        for the duration of a call and restored).
    loss_fn:
        ``loss_fn(output, target) -> scalar``, mean-reduced over the batch (e.g.
        ``torch.nn.functional.cross_entropy``).  Full-data losses are the sample-weighted mean
        of the chunk means, which equals the mean over all samples.
    data:
        ``(inputs, targets)``, a dict ``{"train": (X, y), "test": (X, y), ...}`` or a
        :class:`topograph.data.Dataset`.  May be omitted if every call passes ``batch=``.
    buffers:
        ``"eval"`` or ``"batch"``: the BatchNorm policy described in the module docstring.
    chunk_size:
        samples per forward pass when evaluating a whole split (bounds memory).
    hvp_method:
        ``"double_backward"`` (default, faster on CPU) or ``"forward_over_reverse"``.
    accuracy_fn:
        ``(output, target) -> number of correct samples`` (returning ``None`` when undefined
        for that batch), or ``None`` for no accuracy at all; defaults to argmax accuracy for
        integer class targets.
    device:
        where data and points are placed for evaluation; defaults to the module's device.

    The ``calls`` counter records how many loss evaluations (``forward``), gradients
    (``backward``) and Hessian-vector products (``hvp``) were requested, in units of one
    pass over the requested data, so that methods can be compared at equal compute.
    """

    def __init__(
        self,
        module: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        data: Any = None,
        *,
        buffers: BufferPolicy = "eval",
        chunk_size: int = 8192,
        hvp_method: HVPMethod = "double_backward",
        accuracy_fn: Callable[[Tensor, Tensor], Tensor | None] | None = default_accuracy,
        device: torch.device | str | None = None,
    ) -> None:
        if buffers not in BUFFER_POLICIES:
            raise UsageError(f"buffers={buffers!r} is not a policy; use 'eval' or 'batch'")
        if hvp_method not in HVP_METHODS:
            raise UsageError(f"hvp_method={hvp_method!r}; use one of {', '.join(HVP_METHODS)}")
        if int(chunk_size) < 1:
            raise UsageError(f"chunk_size must be a positive integer, got {chunk_size}")
        self.module = module
        self.loss_fn = loss_fn
        self.splits = _as_splits(data)
        self.buffers = buffers
        self.chunk_size = int(chunk_size)
        self.hvp_method = hvp_method
        self.accuracy_fn = accuracy_fn
        self.spec = ParamSpec.from_module(module)
        first = next(iter(module.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu")
        )
        self.calls: Counter[str] = Counter()
        self._moved: dict[str, Batch] = {}

    # ------------------------------------------------------------------ points
    def flat_params(self) -> Tensor:
        """The module's current trainable parameters as one flat vector (a detached copy)."""
        with torch.no_grad():
            return self.spec.flatten(named_parameters(self.module)).detach().clone().to(self.device)

    def params(self) -> ParamDict:
        """The module's current trainable parameters as a dict of detached copies."""
        return {n: p.detach().clone() for n, p in named_parameters(self.module).items()}

    @property
    def size(self) -> int:
        """Number of trainable parameters P."""
        return self.spec.size

    def _flat(self, theta: Theta | None) -> Tensor:
        if theta is None:
            return self.flat_params()
        flat = self.spec.as_flat(theta)
        return flat.to(self.device)

    # ------------------------------------------------------------------ data
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.splits)

    def num_samples(self, split: str = "train") -> int:
        return int(self._split(split)[0].shape[0])

    def _split(self, split: str) -> Batch:
        if split not in self.splits:
            known = ", ".join(self.splits) or "none (pass batch=)"
            raise UsageError(f"split {split!r} is not in this objective's data; known: {known}")
        if split not in self._moved:
            x, y = self.splits[split]
            self._moved[split] = (x.to(self.device), y.to(self.device))
        return self._moved[split]

    def chunks(self, split: str = "train", batch: Batch | None = None) -> Iterator[Batch]:
        """The (inputs, targets) chunks that one evaluation runs over."""
        if batch is not None:
            x, y = batch
            yield x.to(self.device), y.to(self.device)
            return
        x, y = self._split(split)
        for i in range(0, x.shape[0], self.chunk_size):
            yield x[i : i + self.chunk_size], y[i : i + self.chunk_size]

    def _n(self, split: str, batch: Batch | None) -> int:
        return int(batch[0].shape[0]) if batch is not None else self.num_samples(split)

    # ------------------------------------------------------------------ module calls
    @contextlib.contextmanager
    def mode(self) -> Iterator[None]:
        """Set the train/eval flags the buffer policy asks for; restore them afterwards."""
        flags = [(m, m.training) for m in self.module.modules()]
        try:
            self.module.eval()
            if self.buffers == "batch":
                for m in self.module.modules():
                    if isinstance(m, nn.modules.batchnorm._NormBase):
                        m.train()
            yield
        finally:
            for m, f in flags:
                m.training = f

    def _buffers(self) -> ParamDict:
        bufs = dict(self.module.named_buffers())
        if self.buffers == "batch":  # train-mode BN writes running stats: give it copies
            bufs = {k: v.clone() for k, v in bufs.items()}
        return bufs

    def forward(self, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """The module's output at ``params`` (dict), without touching the module."""
        return functional_call(self.module, (dict(params), self._buffers()), (inputs,))

    def _chunk_terms(self, params: Mapping[str, Tensor], x: Tensor, y: Tensor):
        out = self.forward(params, x)
        loss = self.loss_fn(out, y)
        correct = self.accuracy_fn(out, y) if self.accuracy_fn is not None else None
        return loss, correct

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(
        self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None
    ) -> Evaluation:
        """Loss and accuracy at θ on a split (in chunks) or on one batch."""
        params = self.spec.unflatten(self._flat(theta))
        n = self._n(split, batch)
        total, correct, has_acc = 0.0, 0, True
        with self.mode():
            for x, y in self.chunks(split, batch):
                loss, c = self._chunk_terms(params, x, y)
                total += float(loss) * x.shape[0]
                if c is None:
                    has_acc = False
                else:
                    correct += int(c)
        self.calls["forward"] += 1
        return Evaluation(total / n, correct / n if has_acc else math.nan, n)

    def loss(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None) -> float:
        """L(θ) on a split or one batch, as a Python float."""
        return self.evaluate(theta, split=split, batch=batch).loss

    def accuracy(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None) -> float:
        """Fraction of correct predictions at θ (NaN when the task is not classification)."""
        return self.evaluate(theta, split=split, batch=batch).accuracy

    @torch.no_grad()
    def evaluate_many(
        self, thetas: Tensor, *, split: str = "train", batch: Batch | None = None
    ) -> tuple[Tensor, Tensor]:
        """Losses and accuracies of K points ``thetas`` (K×P) → two float64 tensors of length K.

        Generic path: for every data chunk, a forward pass per point (the chunk stays in
        cache across points).  Faster engines (e.g. the first-layer precompute of
        :mod:`topograph.landscape`) give the same numbers for the models they support.
        """
        thetas = thetas.to(self.device)
        if thetas.ndim != 2 or thetas.shape[1] != self.size:
            raise UsageError(f"thetas must have shape (K, {self.size}); got {tuple(thetas.shape)}")
        k = thetas.shape[0]
        n = self._n(split, batch)
        losses = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.float64, device=self.device)
        has_acc = True
        points = [self.spec.unflatten(thetas[i]) for i in range(k)]
        with self.mode():
            for x, y in self.chunks(split, batch):
                for i, params in enumerate(points):
                    loss, c = self._chunk_terms(params, x, y)
                    losses[i] += loss.double() * x.shape[0]
                    if c is None:
                        has_acc = False
                    else:
                        correct[i] += c
        self.calls["forward"] += k
        acc = correct / n if has_acc else torch.full_like(correct, math.nan)
        return (losses / n).cpu(), acc.cpu()

    def losses(self, thetas: Tensor, *, split: str = "train", batch: Batch | None = None) -> Tensor:
        """Differentiable losses of K points ``thetas`` (K×P) → a tensor of length K.

        Unlike :meth:`evaluate_many` this keeps the autograd graph, so a loss over many
        points (a path, a set of probes) can be optimised through ``thetas``.
        """
        if thetas.ndim != 2 or thetas.shape[1] != self.size:
            raise UsageError(f"thetas must have shape (K, {self.size}); got {tuple(thetas.shape)}")
        n = self._n(split, batch)
        points = [self.spec.unflatten(thetas[i]) for i in range(thetas.shape[0])]
        out = []
        with self.mode():
            for x, y in self.chunks(split, batch):
                w = x.shape[0] / n
                out.append(torch.stack([self._chunk_terms(p, x, y)[0] * w for p in points]))
        self.calls["forward"] += thetas.shape[0]
        return torch.stack(out).sum(0)

    # ------------------------------------------------------------------ gradients
    def value_and_grad(
        self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None
    ) -> tuple[float, Tensor]:
        """(L(θ), ∇L(θ)); the gradient is flat if θ was flat or None, else a dict."""
        flat = self._flat(theta).detach().requires_grad_(True)
        params = self.spec.unflatten(flat)
        n = self._n(split, batch)
        grad = torch.zeros_like(flat)
        total = 0.0
        with self.mode():
            for x, y in self.chunks(split, batch):
                loss, _ = self._chunk_terms(params, x, y)
                w = x.shape[0] / n
                (g,) = torch.autograd.grad(loss * w, flat)
                grad += g
                total += float(loss.detach()) * w
        self.calls["backward"] += 1
        grad = grad.detach()
        return total, (grad if theta is None or isinstance(theta, Tensor) else self.spec.unflatten(grad))

    def grad(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None):
        """∇L(θ) in the representation of θ (flat for a flat vector or None, else a dict)."""
        return self.value_and_grad(theta, split=split, batch=batch)[1]

    # ------------------------------------------------------------------ curvature
    def hvp_function(
        self,
        theta: Theta | None = None,
        *,
        split: str = "train",
        batch: Batch | None = None,
        params: list[str] | tuple[str, ...] | None = None,
        method: HVPMethod | None = None,
        keep_graph: bool | None = None,
    ) -> tuple[HessianVectorProduct, int]:
        """``(hvp, n)``: a callable ``v ↦ H(θ) v`` over n coordinates, reusing work across calls.

        ``params`` restricts the Hessian to the named tensors (the others stay fixed at θ);
        ``v`` is then a flat vector over those tensors only, in model order.  With the
        default ``double_backward`` method and ``keep_graph`` (default: when the data has at
        most 20,000 samples), the gradient graph of each chunk is built once and every
        product is a single reverse pass through it.  The returned
        :class:`HessianVectorProduct` also offers ``matmat`` (a block of products in one
        batched pass) and ``gradient`` (∇L(θ), a by-product of the kept graph).
        """
        method = method or self.hvp_method
        if method not in HVP_METHODS:
            raise UsageError(f"method={method!r}; use one of {', '.join(HVP_METHODS)}")
        hvp = HessianVectorProduct(self, self._flat(theta).detach(), split=split, batch=batch,
                                   params=params, method=method, keep_graph=keep_graph)
        return hvp, hvp.size

    def hvp(
        self, theta: Theta | None, v: Tensor, *, split: str = "train", batch: Batch | None = None,
        method: HVPMethod | None = None,
    ) -> Tensor:
        """One Hessian-vector product H(θ)v (flat ``v``; flat result)."""
        matvec, _ = self.hvp_function(theta, split=split, batch=batch, method=method, keep_graph=True)
        return matvec(v)


class HessianVectorProduct:
    """Products with the Hessian H(θ) of an :class:`Objective` at a fixed point θ.

    Built by :meth:`Objective.hvp_function`.  With ``method="double_backward"`` the gradient
    graph g_c = ∇(w_c L_c)(θ) of every data chunk c (w_c = chunk share of the samples) is built
    once — lazily, at the first product — and each product is one reverse pass,
    Hv = Σ_c ∂(g_c·v)/∂θ (Pearlmutter 1994; the trick that makes PyHessian fast).  With
    ``keep_graph=False`` the graphs are rebuilt for every product (bounded memory).  With
    ``method="forward_over_reverse"`` each product is ``torch.func.jvp`` of ``torch.func.grad``.
    """

    def __init__(self, objective: Objective, theta: Tensor, *, split: str, batch: Batch | None,
                 params, method: HVPMethod, keep_graph: bool | None) -> None:
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
        self.n = objective._n(split, batch)
        self.keep_graph = self.n <= 20_000 if keep_graph is None else bool(keep_graph)
        self._graphs: list[tuple[Tensor, Tensor]] | None = None
        self._gradient: Tensor | None = None

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
            loss, _ = obj._chunk_terms(self._params(leaf), x, y)
        (g,) = torch.autograd.grad(loss * (x.shape[0] / self.n), leaf, create_graph=True)
        return leaf, g

    def _pairs(self):
        chunks = self.objective.chunks(self.split, self.batch)
        if not self.keep_graph:
            return (self._chunk_gradient(x, y) for x, y in chunks)
        if self._graphs is None:
            self._graphs = [self._chunk_gradient(x, y) for x, y in chunks]
            self._gradient = sum(g.detach() for _, g in self._graphs)
            self.objective.calls["backward"] += 1
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
        self.objective.calls["hvp"] += 1
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
            (hv,) = torch.autograd.grad(g, leaf, grad_outputs=vectors, retain_graph=True,
                                        is_grads_batched=True)
            out = hv if out is None else out + hv
        self.objective.calls["hvp"] += vectors.shape[0]
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
            return obj._chunk_terms(self._params(sub_flat), x, y)[0] * (x.shape[0] / self.n)

        out = torch.zeros_like(self._point())
        with obj.mode():
            for x, y in obj.chunks(self.split, self.batch):
                g = torch.func.grad(chunk_loss)
                out += torch.func.jvp(lambda t: g(t, x, y), (self._point(),), (v,))[1]
        return out
