"""The functional core: a model, a loss and data, evaluated at any parameter point.

Every feature of topograph — surfaces, curvature, paths, exploring optimizers — evaluates the
network through an :class:`Objective`.  It binds an ``nn.Module``, a loss function and data and
computes, at a parameter point θ given as a dict of tensors or one flat vector,

* the loss  L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i)  and the accuracy, on a named split (in chunks,
  so memory stays bounded) or on one given batch,
* the gradient ∇L(θ) and Hessian-vector products H(θ)v (:mod:`topograph.core.hvp`),
* the losses of many points at once (``evaluate_many``, ``losses``),

through :func:`torch.func.functional_call` — the user's module, its parameters and its buffers
are never modified (only its train/eval flags are switched for the duration of a call, as the
BatchNorm policy asks, and restored).  Points of a line, plane or path are evaluated many at a
time by :class:`topograph.core.SubspaceEvaluator`.

Targets may be anything the loss takes: class labels, regression targets, or the inputs
themselves (an autoencoder trained on ``(x, x)``); inputs may be images, vectors or sequences.

Evaluation chunks.  A whole split is evaluated in chunks of ``chunk_size`` samples.  By default
(``chunk_size=None``) the size is chosen from the model's activations: the largest power of two
whose chunk holds at most 2²⁵ activation floats (:func:`topograph.core.modules.chunk_size_for`),
so a conv net's layers work in cache while an MLP gets large GEMMs.  Under
``batchnorm="batch"`` the chunk is also the batch whose statistics normalise it, so the default
there is a fixed 8192 (set it explicitly to choose the statistics).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from topograph.core.allocator import keep_freed_memory
from topograph.core.batchnorm import BatchNormPolicy, check_policy, policy_flags, recomputed_statistics
from topograph.core.hvp import HVP_METHODS, HessianVectorProduct, HVPMethod
from topograph.core.modules import activations_per_sample, batchnorm_layers, chunk_size_for, has_convolutions
from topograph.core.params import ParamDict, ParamSpec, named_parameters
from topograph.core.shortcut import FirstLayer, find_first_layer
from topograph.core.work import Work
from topograph.errors import UsageError

Theta = Tensor | Mapping[str, Tensor]
Batch = tuple[Tensor, Tensor]
#: chunk size under ``batchnorm="batch"`` when none is given (the chunk is the BN batch)
BATCH_POLICY_CHUNK = 8192


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
        any ``nn.Module``; it is only read, never modified.
    loss_fn:
        ``loss_fn(output, target) -> scalar``, mean-reduced over the batch (e.g.
        ``torch.nn.functional.cross_entropy``).  Full-data losses are the sample-weighted mean
        of the chunk means, which equals the mean over all samples.
    data:
        ``(inputs, targets)``, a dict ``{"train": (X, y), "test": (X, y), ...}`` or a
        :class:`topograph.data.Dataset`.  May be omitted if every call passes ``batch=``.
    batchnorm:
        ``"eval"`` (default), ``"batch"`` or ``"recompute"``: the BatchNorm policy
        (:mod:`topograph.core.batchnorm`).
    stats_split:
        the split whose data re-estimate the statistics under ``"recompute"``.
    chunk_size:
        samples per forward pass over a split (``None``: chosen from the model's activations).
    hvp_method:
        ``"double_backward"`` (default, faster on CPU) or ``"forward_over_reverse"``.
    accuracy_fn:
        ``(output, target) -> number of correct samples`` (``None`` when undefined for that
        batch), or ``None`` for no accuracy; defaults to argmax accuracy for integer targets.
    device:
        where data and points are placed for evaluation; defaults to the module's device.

    ``work`` (:class:`~topograph.core.Work`) counts the forward passes, backward passes and
    Hessian-vector products asked of the objective, each over the data it was asked about.

    >>> import torch.nn.functional as F
    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    >>> objective = Objective(model, F.cross_entropy, (x, y))
    >>> loss, grad = objective.value_and_grad()
    >>> grad.shape, objective.work.backward_passes
    (torch.Size([8]), 1)
    """

    def __init__(
        self,
        module: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        data: Any = None,
        *,
        batchnorm: BatchNormPolicy = "eval",
        stats_split: str = "train",
        chunk_size: int | None = None,
        hvp_method: HVPMethod = "double_backward",
        accuracy_fn: Callable[[Tensor, Tensor], Tensor | None] | None = default_accuracy,
        device: torch.device | str | None = None,
    ) -> None:
        check_policy(batchnorm)
        if hvp_method not in HVP_METHODS:
            raise UsageError(f"hvp_method={hvp_method!r}; use one of {', '.join(HVP_METHODS)}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
            raise UsageError(f"chunk_size must be a positive integer or None (automatic), got {chunk_size!r}")
        self.module = module
        self.loss_fn = loss_fn
        self.splits = _as_splits(data)
        self.batchnorm = batchnorm
        self.stats_split = stats_split
        self.hvp_method = hvp_method
        self.accuracy_fn = accuracy_fn
        self.spec = ParamSpec.from_module(module)
        first = next(iter(module.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu"))
        self.work = Work()
        self._chunk_size = None if chunk_size is None else int(chunk_size)
        self._moved: dict[str, Batch] = {}
        self._channels_last = self.device.type == "cpu" and has_convolutions(module)
        self._first_layer: tuple[FirstLayer | None, str] | None = None

    def with_batchnorm(self, batchnorm: BatchNormPolicy) -> Objective:
        """The same model, loss and data under another BatchNorm policy (shares the data and
        the work counter)."""
        check_policy(batchnorm)
        other = object.__new__(Objective)
        other.__dict__.update(self.__dict__)
        other.batchnorm = batchnorm
        return other

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
        return self.spec.as_flat(theta).to(self.device)

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
            self._moved[split] = (self.layout(x.to(self.device)), y.to(self.device))
        return self._moved[split]

    def layout(self, x: Tensor) -> Tensor:
        """Images of a conv net in the channels-last layout on the CPU (oneDNN's convolutions
        read it without a reorder; see ``benchmarks/surface.py``).  ``.to`` and not
        ``.contiguous``: with one channel both layouts describe the same tensor and
        ``.contiguous`` keeps the default strides, so the first convolution would run in the
        default layout (2.5× slower on ``cnn-small``)."""
        if self._channels_last and x.ndim == 4 and x.is_floating_point():
            return x.to(memory_format=torch.channels_last)
        return x

    @property
    def chunk_size(self) -> int:
        """Samples per forward pass over a split (chosen from the activations on first use)."""
        if self._chunk_size is None:
            if self.batchnorm == "batch":
                self._chunk_size = BATCH_POLICY_CHUNK
            elif self.splits:
                example = next(iter(self.splits.values()))[0][:1].to(self.device)
                self._chunk_size = chunk_size_for(activations_per_sample(self.module, example))
            else:
                return BATCH_POLICY_CHUNK
        return self._chunk_size

    def chunks(self, split: str = "train", batch: Batch | None = None) -> Iterator[Batch]:
        """The (inputs, targets) chunks that one evaluation runs over."""
        if self._channels_last:  # a conv net on the CPU: freed activation buffers are reused
            keep_freed_memory()
        if batch is not None:
            x, y = batch
            yield self.layout(x.to(self.device)), y.to(self.device)
            return
        x, y = self._split(split)
        size = self.chunk_size
        for i in range(0, x.shape[0], size):
            yield x[i:i + size], y[i:i + size]

    def samples(self, split: str = "train", batch: Batch | None = None) -> int:
        """How many samples a call on ``split`` (or on ``batch``) averages over."""
        return int(batch[0].shape[0]) if batch is not None else self.num_samples(split)

    def first_layer(self, *, split: str = "train", batch: Batch | None = None) -> tuple[FirstLayer | None, str]:
        """The model's first layer if the first-layer shortcut applies (:mod:`topograph.core.shortcut`),
        else ``(None, why not)``; found once, on a few rows of ``batch`` or ``split``."""
        if self.batchnorm == "recompute":
            return None, "batchnorm='recompute' re-estimates the statistics point by point"
        if self.batchnorm == "batch" and batchnorm_layers(self.module):
            return None, "batchnorm='batch' normalises each chunk with its own statistics"
        if self._first_layer is None:
            example = batch[0] if batch is not None else (self._split(split)[0] if self.splits else None)
            if example is None:
                return None, "there is no data to look at the model with"
            with self.mode():
                self._first_layer = find_first_layer(self.module, self.spec, self.layout(example[:2].to(self.device)))
        return self._first_layer

    # ------------------------------------------------------------------ module calls
    def mode(self):
        """A context in which the module's flags are those the BatchNorm policy asks for."""
        return policy_flags(self.module, "batch" if self.batchnorm == "batch" else "eval")

    def buffers_at(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The buffers a forward pass at ``params`` uses under the policy: the module's own
        (``"eval"``), copies that train-mode BatchNorm may update (``"batch"``), or running
        statistics re-estimated at ``params`` on ``stats_split`` (``"recompute"``)."""
        bufs = dict(self.module.named_buffers())
        if self.batchnorm == "batch":
            return {k: v.clone() for k, v in bufs.items()}
        if self.batchnorm == "recompute":
            return recomputed_statistics(self.module, self.layout_params(params), bufs, self.chunks(self.stats_split))
        return bufs

    def layout_params(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``params`` with the conv kernels in the data's memory layout (channels-last on the CPU)."""
        if not self._channels_last:
            return dict(params)
        return {k: (v.to(memory_format=torch.channels_last) if v.ndim == 4 else v) for k, v in params.items()}

    def forward(self, params: Mapping[str, Tensor], inputs: Tensor, buffers: Mapping[str, Tensor] | None = None) -> Tensor:
        """The module's output at ``params`` (dict), without touching the module."""
        bufs = self.buffers_at(params) if buffers is None else buffers
        return functional_call(self.module, (self.layout_params(params), dict(bufs)), (inputs,))

    def terms(self, params: Mapping[str, Tensor], x: Tensor, y: Tensor,
              buffers: Mapping[str, Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        """(mean loss, number correct or None) of one chunk at ``params``."""
        out = self.forward(params, x, buffers)
        loss = self.loss_fn(out, y)
        correct = self.accuracy_fn(out, y) if self.accuracy_fn is not None else None
        return loss, correct

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None) -> Evaluation:
        """Loss and accuracy at θ on a split (in chunks) or on one batch."""
        losses, accs = self.evaluate_many(self._flat(theta).unsqueeze(0), split=split, batch=batch)
        return Evaluation(float(losses[0]), float(accs[0]), self.samples(split, batch))

    def loss(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None) -> float:
        """L(θ) on a split or one batch, as a Python float."""
        return self.evaluate(theta, split=split, batch=batch).loss

    def accuracy(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None) -> float:
        """Fraction of correct predictions at θ (NaN when the task is not classification)."""
        return self.evaluate(theta, split=split, batch=batch).accuracy

    @torch.no_grad()
    def evaluate_many(self, thetas: Tensor, *, split: str = "train", batch: Batch | None = None
                      ) -> tuple[Tensor, Tensor]:
        """Losses and accuracies of K points ``thetas`` (K×P) → two float64 CPU tensors of length K.

        For every data chunk, a forward pass per point (the chunk stays in cache across points).
        """
        thetas = self._check_points(thetas).to(self.device)
        k, n = thetas.shape[0], self.samples(split, batch)
        losses = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.float64, device=self.device)
        has_acc = True
        points = [self.layout_params(self.spec.unflatten(thetas[i])) for i in range(k)]  # laid out once
        with self.mode():
            buffers = [self.buffers_at(p) for p in points]
            for x, y in self.chunks(split, batch):
                for i, params in enumerate(points):
                    loss, c = self.terms(params, x, y, buffers[i])
                    losses[i] += loss.double() * x.shape[0]
                    if c is None:
                        has_acc = False
                    else:
                        correct[i] += c
        self.work.add(forward_passes=k)
        acc = correct / n if has_acc else torch.full_like(correct, math.nan)
        return (losses / n).cpu(), acc.cpu()

    def losses(self, thetas: Tensor, *, split: str = "train", batch: Batch | None = None) -> Tensor:
        """Differentiable losses of K points ``thetas`` (K×P) → a tensor of length K."""
        thetas = self._check_points(thetas)
        n = self.samples(split, batch)
        points = [self.spec.unflatten(thetas[i]) for i in range(thetas.shape[0])]
        out = []
        with self.mode():
            buffers = [self.buffers_at(p) for p in points]
            for x, y in self.chunks(split, batch):
                w = x.shape[0] / n
                out.append(torch.stack([self.terms(p, x, y, b)[0] * w for p, b in zip(points, buffers)]))
        self.work.add(forward_passes=thetas.shape[0])
        return torch.stack(out).sum(0)

    def _check_points(self, thetas: Tensor) -> Tensor:
        if thetas.ndim != 2 or thetas.shape[1] != self.size:
            raise UsageError(f"thetas must have shape (K, {self.size}); got {tuple(thetas.shape)}")
        return thetas

    # ------------------------------------------------------------------ gradients
    def value_and_grad(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None
                       ) -> tuple[float, Tensor | ParamDict]:
        """(L(θ), ∇L(θ)); the gradient is flat if θ was flat or None, else a dict."""
        flat = self._flat(theta).detach().requires_grad_(True)
        params = self.spec.unflatten(flat)
        n = self.samples(split, batch)
        grad = torch.zeros_like(flat)
        total = 0.0
        with self.mode():
            bufs = self.buffers_at({k: v.detach() for k, v in params.items()})
            for x, y in self.chunks(split, batch):
                loss, _ = self.terms(params, x, y, bufs)
                w = x.shape[0] / n
                (g,) = torch.autograd.grad(loss * w, flat)
                grad += g
                total += float(loss.detach()) * w
        self.work.add(forward_passes=1, backward_passes=1)
        grad = grad.detach()
        return total, (grad if theta is None or isinstance(theta, Tensor) else self.spec.unflatten(grad))

    def grad(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None):
        """∇L(θ) in the representation of θ (flat for a flat vector or None, else a dict)."""
        return self.value_and_grad(theta, split=split, batch=batch)[1]

    # ------------------------------------------------------------------ curvature
    def hvp_function(self, theta: Theta | None = None, *, split: str = "train", batch: Batch | None = None,
                     params: list[str] | tuple[str, ...] | None = None, method: HVPMethod | None = None,
                     keep_graph: bool | None = None) -> tuple[HessianVectorProduct, int]:
        """``(hvp, n)``: a callable ``v ↦ H(θ) v`` over n coordinates, reusing work across calls.

        ``params`` restricts the Hessian to the named tensors (the others stay fixed at θ);
        ``v`` is then a flat vector over those tensors only, in model order.  With the
        default ``double_backward`` method and ``keep_graph`` (default: when the data has at
        most 20,000 samples), the gradient graph of each chunk is built once and every
        product is a single reverse pass through it.  The returned
        :class:`~topograph.core.hvp.HessianVectorProduct` also offers ``matmat`` (a block of
        products in one batched pass) and ``gradient`` (∇L(θ), a by-product of the kept graph).
        """
        method = method or self.hvp_method
        if method not in HVP_METHODS:
            raise UsageError(f"method={method!r}; use one of {', '.join(HVP_METHODS)}")
        hvp = HessianVectorProduct(self, self._flat(theta).detach(), split=split, batch=batch,
                                   params=params, method=method, keep_graph=keep_graph)
        return hvp, hvp.size

    def hvp(self, theta: Theta | None, v: Tensor, *, split: str = "train", batch: Batch | None = None,
            method: HVPMethod | None = None) -> Tensor:
        """One Hessian-vector product H(θ)v (flat ``v``; flat result)."""
        matvec, _ = self.hvp_function(theta, split=split, batch=batch, method=method, keep_graph=True)
        return matvec(v)


__all__ = ["BATCH_POLICY_CHUNK", "Evaluation", "Objective", "default_accuracy"]
