"""Training closures: calling one with or without the backward pass, and the minibatch closure.

topograph's optimizers call ``closure(backward: bool = True)``: the closure zeroes the
gradients, computes the loss on the current batch, runs ``loss.backward()`` only if asked and
returns the loss.  A call that wants the backward pass is a plain ``closure()`` (torch.optim's
contract, so the default must be ``True``); only a forward-only call passes ``backward=False``.
Plain ``torch.optim``-style closures with no argument work too; they always
run backward, so a forward-only evaluation of such a closure still pays for a backward pass
(and is counted as a backward pass).

:class:`MinibatchClosure` is such a closure for a model, a loss and the current batch; it counts
its work and offers the optimizers a fast :class:`Span` of many points on the same batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from topograph.core import Objective, SubspaceEvaluator
from topograph.core.shortcut import ELEMENTWISE
from topograph.errors import UsageError


def accepts_backward(closure: Callable) -> bool:
    """True when ``closure`` takes a ``backward`` keyword (or ``**kwargs``)."""
    try:
        parameters = inspect.signature(closure).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "backward" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def require_closure(closure: Callable | None, optimizer: str) -> Callable:
    """Raise a one-line :class:`UsageError` when ``step`` was called without a closure."""
    if closure is None or not callable(closure):
        raise UsageError(
            f"{optimizer}.step needs a closure: closure(backward=True) zeroes the gradients, "
            "computes the loss on the batch, calls loss.backward() if asked and returns the loss"
        )
    return closure


def evaluate_closure(closure: Callable, *, backward: bool, forward_only_ok: bool | None = None) -> tuple[Tensor, bool]:
    """Run the closure; return ``(loss, did_backward)``.

    With ``backward=True`` the closure is called as ``closure()``: torch.optim's contract for a
    call that computes the loss and its gradients, whatever keywords the closure takes.  With
    ``backward=False`` and a closure that accepts ``backward``, it runs under
    ``torch.no_grad()`` as ``closure(backward=False)``; a closure that does not accept it runs
    with gradients enabled and performs its backward pass.  ``forward_only_ok`` is
    :func:`accepts_backward` of the closure, when the caller knows it already (it is read from
    the signature otherwise, only for a forward-only call).
    """
    if backward:
        with torch.enable_grad():
            return _as_tensor(closure()), True
    if forward_only_ok is None:
        forward_only_ok = accepts_backward(closure)
    if forward_only_ok:
        with torch.no_grad():
            loss = closure(backward=False)
        return _as_tensor(loss), False
    with torch.enable_grad():
        loss = closure()
    return _as_tensor(loss), True


def _as_tensor(loss) -> Tensor:
    if isinstance(loss, Tensor):
        return loss.detach()
    if isinstance(loss, (int, float)):
        return torch.tensor(float(loss))
    raise UsageError(f"closure must return the loss as a tensor or a float, got {type(loss).__name__}")


# ---------------------------------------------------------------------- the minibatch closure
#: modules whose forward does not depend on ``training`` (containers, layers, activations)
MODE_FREE_TYPES: tuple[type, ...] = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Linear, nn.Bilinear, nn.Flatten, nn.Unflatten,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LayerNorm, nn.Embedding,
    nn.Identity, nn.Softmax, nn.LogSoftmax, *ELEMENTWISE,
)


def mode_free(model: nn.Module) -> bool:
    """True when every submodule is a known type whose forward ignores ``model.training``
    (or a subclass of one that keeps its ``forward``, such as topograph's ``MLP(nn.Sequential)``)."""

    def free(m: nn.Module) -> bool:
        return any(isinstance(m, t) and type(m).forward is t.forward for t in MODE_FREE_TYPES)

    return all(free(m) for m in model.modules())


@dataclass
class Span:
    """Losses on one minibatch at the points ``centre + A @ vectors``: the probes of Guided
    Exploration and the trial steps of a line search, evaluated by the core's
    :class:`~topograph.core.SubspaceEvaluator` with the first-layer shortcut (the products of the
    centre and the directions are formed once; every further point costs the later layers)."""

    evaluator: SubspaceEvaluator
    batch: tuple[Tensor, Tensor]
    closure: MinibatchClosure | None = None  # whose backward_samples its gradients add to

    def losses(self, coefficients) -> Tensor:
        """The K mean losses (float64, CPU) at the points of the K×m ``coefficients``."""
        return self.evaluator.evaluate(coefficients, batch=self.batch)[0]

    def value_and_grad(self, coefficients) -> tuple[Tensor, Tensor]:
        """Loss and flat gradient at one point of the span, from the kept first-layer products."""
        if self.closure is not None:
            self.closure.backward_samples += int(self.batch[1].shape[0])
        return self.evaluator.value_and_grad(coefficients, batch=self.batch)

    def carry_to(self, following: Span, shift) -> None:
        """Give ``following`` (on the same batch, centred at this centre + shift·vectors) this
        span's first-layer products moved by ``shift``, so it skips the centre's product."""
        if following.batch[0] is self.batch[0] and following.batch[1] is self.batch[1]:
            products = self.evaluator.centre_products(shift)
            if products is not None:
                following.evaluator.use_centre_products(products)


class MinibatchClosure:
    """The training closure ``closure(backward=True)`` for a model, a loss and the current batch.

    Set ``closure.batch = (inputs, targets)`` before each ``optimizer.step(closure)``.  A call
    zeroes the model's gradients, computes ``loss_fn(model(inputs), targets)`` (mean-reduced),
    runs backward if asked and returns the loss (detached, except for a forward-only call with
    gradients enabled, which gets it attached to its graph); ``first_loss`` keeps the loss of the
    first call on the current batch (what a training loop reports for the step).  ``work``
    counts every forward and backward pass, those of the span included, and
    ``backward_samples`` the samples the backward passes saw.

    It also offers ``span(centre, vectors, params=...)``: the fast path on which
    :class:`~topograph.optim.GuidedExploration` probes and :class:`~topograph.optim.QuasiNewton`
    line-searches, offered when the model's output cannot depend on its train/eval mode
    (:func:`mode_free`: no dropout, no BatchNorm, no custom modules — so the span's eval-mode
    passes compute what the closure computes) and the first-layer shortcut applies (with later
    layers that run batched over the points, or a first layer whose products pay).

    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> closure = MinibatchClosure(model, nn.functional.cross_entropy)
    >>> closure.batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> loss = opt.step(closure)
    >>> closure.work.forward_passes, closure.work.backward_passes
    (1, 1)
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.objective = Objective(model, loss_fn, accuracy_fn=None)
        self.work = self.objective.work
        self.backward_samples = 0
        self.first_loss: Tensor | None = None
        self._batch: tuple[Tensor, Tensor] | None = None
        self._param_ids = [id(p) for p in model.parameters() if p.requires_grad]
        self._mode_free = mode_free(model)

    @property
    def batch(self) -> tuple[Tensor, Tensor] | None:
        return self._batch

    @batch.setter
    def batch(self, value: tuple[Tensor, Tensor] | None) -> None:
        self._batch = value
        self.first_loss = None

    def __call__(self, backward: bool = True) -> Tensor:
        if self._batch is None:
            raise UsageError("MinibatchClosure: set closure.batch = (inputs, targets) before optimizer.step(closure)")
        x, y = self._batch
        self.model.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(backward or torch.is_grad_enabled()):
            loss = self.loss_fn(self.model(x), y)
        if backward:
            loss.backward()
            self.backward_samples += int(y.shape[0])
        self.work.add(forward_passes=1, backward_passes=int(backward))
        if self.first_loss is None:
            self.first_loss = loss.detach()
        # a forward-only call with gradients enabled gets the loss attached to its graph
        # (GuidedExploration's Lanczos differentiates it twice); otherwise a plain number
        return loss if (not backward and loss.requires_grad) else loss.detach()

    def span(self, centre: Tensor, vectors: Tensor, *, params: list[Tensor]) -> Span | None:
        """A :class:`Span` on the current batch, or ``None`` where the fast path does not apply.

        ``params`` are the optimizer's parameters, in the order of ``centre``'s flat layout; the
        fast path applies only when they are the model's trainable parameters in module order.
        """
        if self._batch is None or not self._mode_free or [id(p) for p in params] != self._param_ids:
            return None
        first, _ = self.objective.first_layer(batch=self._batch)
        if first is None or not (first.stacked or first.pays(vectors.shape[0])):
            return None
        # one tile over the whole batch and all the points of a call: per-tile overheads would dominate
        evaluator = SubspaceEvaluator(self.objective, centre, vectors, engine="first-layer", points_per_pass=16,
                                      workers=1, tile_elements=min(max(16 * int(self._batch[0].shape[0]) * 1024,
                                                                       1 << 20), 1 << 26))
        return Span(evaluator, self._batch, self)


def closure_span(closure, centre: Tensor, vectors: Tensor | None, params: list[Tensor]) -> Span | None:
    """The closure's :class:`Span` at ``centre`` along ``vectors``, or ``None`` (the closure has no
    ``span``, no vectors were given, or the fast path does not apply): what optimizers call."""
    make = getattr(closure, "span", None)
    if make is None or vectors is None:
        return None
    return make(centre, vectors, params=params)
