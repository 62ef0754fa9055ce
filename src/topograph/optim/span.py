r"""Many minibatch losses at once along a few directions: the fast path of probes and line searches.

Guided Exploration's probes evaluate L at θ₀ and θ₀ ± σu_i, and quasi-Newton's line search at
θ₀ − t·r̂ for a handful of t: points of a low-dimensional *span* {θ₀ + Σ_j a_j v_j} on the
batch of the current step.  Through a plain closure each point costs a full forward pass with
the parameters written into the module.  For a network whose first layer is ``nn.Linear``
(an ``nn.Sequential``, optionally after ``nn.Flatten``) the first layer's pre-activations are
affine in the coefficients,

    X (W₀ + Σ_j a_j D_j)ᵀ + (b₀ + Σ_j a_j e_j) = G₀ + Σ_j a_j G_j,   G_j = X D_jᵀ + e_j,

so :class:`SpanLosses` computes the 1 + m products G_j once (one pass over the batch) and every point then
costs only the layers after the first, several points per batched GEMM.  This is the maps'
engine (:class:`topograph.landscape.PlaneEvaluator`, first-layer path) applied to a minibatch;
nothing is written into the module.  The same products also give the loss *and gradient* at
one point of the span (:meth:`SpanLosses.value_and_grad`: the later layers forward and
backward, then ∂L/∂W₁ = δᵀX) — what quasi-Newton uses at the step its line search accepted.

A training closure offers the fast path by carrying an attribute ``span(center, vectors)``
(and a keyword ``params``, the optimizer's parameters in the flat order) that returns a
:class:`SpanLosses` — or ``None`` when it does not apply, and the optimizer
falls back to calling the closure.  :class:`MinibatchClosure` is such a closure for your own
training loop; topograph's trainer gives its closure one too.  It applies only when the
model's output cannot depend on train/eval mode (every module a known mode-free type: no
dropout, no BatchNorm, no custom modules), so both paths compute the same function; the
values agree to float rounding (tests compare them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from topograph.core.objective import Objective
from topograph.errors import UsageError

__all__ = ["MinibatchClosure", "SpanLosses", "SpanSource", "closure_span", "mode_free"]

#: modules whose forward does not depend on ``training`` (containers, layers, activations)
_MODE_FREE_TYPES: tuple[type, ...] = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.Linear, nn.Bilinear, nn.Flatten, nn.Unflatten,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LayerNorm, nn.Embedding,
    nn.Identity, nn.Softmax, nn.LogSoftmax,
)


def mode_free(model: nn.Module) -> bool:
    """True when every submodule is a known type whose forward ignores ``model.training``
    (or a subclass of one that keeps its ``forward``, such as topograph's ``MLP(nn.Sequential)``)."""
    from topograph.core.first_layer import ELEMENTWISE

    allowed = _MODE_FREE_TYPES + tuple(ELEMENTWISE)

    def free(m: nn.Module) -> bool:  # a listed type, or a subclass that keeps its forward
        return any(isinstance(m, t) and type(m).forward is t.forward for t in allowed)

    return all(free(m) for m in model.modules())


class SpanLosses:
    """Losses on one minibatch at the points ``center + A @ vectors`` (K×m coefficients A).

    ``span(A)`` returns a float64 CPU tensor of the K mean losses.  The first call computes
    the first-layer products of the centre and the m directions (one pass over the batch);
    they are kept, so further calls — a line search's successive trial steps — cost only the
    layers after the first.  :meth:`value_and_grad` gives the loss and gradient at one point
    of the span from the same products.  ``on_forward(k)`` is told of every k points evaluated
    and ``on_backward()`` of every gradient (for pass counters).  ``points``: how many points
    one batched pass holds (more are evaluated in several passes); the whole batch is one row
    tile of at most 2²⁶ floats.
    ``plan``: the model's :class:`~topograph.core.first_layer.FirstLayerPlan`, if known.
    """

    def __init__(self, objective, batch: tuple[Tensor, Tensor], center: Tensor, vectors: Tensor, *,
                 on_forward: Callable[[int], None] | None = None,
                 on_backward: Callable[[], None] | None = None, points: int = 16, plan=None) -> None:
        from topograph.landscape.directions import Directions
        from topograph.landscape.engine import PlaneEvaluator

        if vectors.ndim != 2 or vectors.shape[1] != center.numel():
            raise UsageError(f"span: vectors must be m×{center.numel()}, got {tuple(vectors.shape)}")
        self.batch = batch
        self.on_forward = on_forward
        self.on_backward = on_backward
        # one tile over the whole batch and all ``points`` at once: a minibatch (or a full batch
        # of a few thousand rows) is small enough, and per-tile overheads would dominate
        rows = int(batch[0].shape[0])
        self._evaluator = PlaneEvaluator(objective, Directions(center.detach(), vectors.detach(), kind="user"),
                                         engine="first-layer", points_per_pass=points,
                                         tile_elements=min(max(points * rows * 1024, 1 << 20), 1 << 26),
                                         workers=1, plan=plan)

    def carry_to(self, following: SpanLosses, shift) -> None:
        """Give ``following`` (a span on the same batch, centred at this centre + shift·vectors)
        this span's first-layer products moved by ``shift``, so it skips the centre's GEMM."""
        if following.batch[0] is not self.batch[0] or following.batch[1] is not self.batch[1]:
            return
        products = self._evaluator.centre_products(torch.as_tensor(shift, dtype=torch.float64))
        if products is not None:
            following._evaluator.set_centre_products(products)

    def __call__(self, coefficients) -> Tensor:
        coef = torch.as_tensor(coefficients, dtype=torch.float64)
        if coef.ndim == 1:
            coef = coef.unsqueeze(0)
        losses, _ = self._evaluator.evaluate(coef, batch=self.batch)
        if self.on_forward is not None:
            self.on_forward(int(coef.shape[0]))
        return losses

    def value_and_grad(self, coefficients) -> tuple[Tensor, Tensor]:
        """Loss (float64, 0-d) and flat gradient (the centre's layout) at the one point
        ``center + a @ vectors``: one forward and backward pass that skips the first layer's
        forward GEMM (:meth:`topograph.landscape.PlaneEvaluator.loss_and_gradient`).  A
        quasi-Newton iteration takes the gradient at its accepted step this way, on the line
        whose products it already holds."""
        loss, grad = self._evaluator.loss_and_gradient(coefficients, batch=self.batch)
        if self.on_forward is not None:
            self.on_forward(1)
        if self.on_backward is not None:
            self.on_backward()
        return loss, grad


class _ModeFreeObjective(Objective):
    """An Objective over a :func:`mode_free` model: switching its train/eval flags (18 attribute
    writes a call on a small MLP) changes nothing, so :meth:`mode` leaves them alone."""

    @contextlib.contextmanager
    def mode(self):
        yield


class SpanSource:
    """Builds :class:`SpanLosses` for one model and loss: ``source(batch, center, vectors)``.

    Returns ``None`` when the fast path does not apply — the model's output may depend on its
    train/eval mode (:func:`mode_free`), its first operation is not ``nn.Linear``, or the
    parameters handed to the optimizer are not exactly the model's trainable parameters in
    order (``params``).  Nothing is computed at construction.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self._objective = None
        self._plan = None
        self._param_ids: list[int] = []
        self._applies: bool | None = None

    def applies(self) -> bool:
        """Whether the model qualifies at all (checked once)."""
        if self._applies is None:
            from topograph.core.first_layer import first_layer_plan

            ok = mode_free(self.model)
            if ok:
                self._objective = _ModeFreeObjective(self.model, self.loss_fn, None, buffers="eval",
                                                     accuracy_fn=None)
                self._plan = first_layer_plan(self._objective)[0]
                ok = self._plan is not None
                trainable = [p for p in self.model.parameters() if p.requires_grad]
                self._param_ids = [id(p) for p in trainable]
            self._applies = ok
        return self._applies

    def __call__(self, batch: tuple[Tensor, Tensor], center: Tensor, vectors: Tensor, *,
                 params: list[Tensor], on_forward: Callable[[int], None] | None = None,
                 on_backward: Callable[[], None] | None = None) -> SpanLosses | None:
        """``params``: the optimizer's parameters in the order of ``center``'s layout."""
        if not self.applies():
            return None
        if [id(p) for p in params] != self._param_ids:  # another set or order than the model's
            return None
        if not self._plan.flattens and batch[0].ndim != 2:
            return None
        return SpanLosses(self._objective, batch, center, vectors, on_forward=on_forward, on_backward=on_backward,
                          plan=self._plan)


class MinibatchClosure:
    """The training closure ``closure(backward=True)`` for a model, a loss and the current batch.

    ``loss_fn(output, target)`` is mean-reduced over the batch, as for
    :class:`topograph.core.Objective`.  Set ``closure.batch = (inputs, targets)`` before each
    ``optimizer.step(closure)``.  A call
    zeroes the model's gradients, computes ``loss_fn(model(inputs), targets)``, runs backward
    if asked and returns the detached loss.  It also offers ``span(center, vectors)`` (see the
    module docstring), with which :class:`~topograph.optim.GuidedExploration` probes and
    :class:`~topograph.optim.QuasiNewton` line-searches several times faster on MLPs.
    ``forward_evals``/``backward_evals`` count the passes (a span point counts as a forward).

    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> closure = MinibatchClosure(model, nn.functional.cross_entropy)
    >>> closure.batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> loss = opt.step(closure)
    >>> closure.forward_evals, closure.backward_evals
    (1, 1)
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.batch: tuple[Tensor, Tensor] | None = None
        self.forward_evals = 0
        self.backward_evals = 0
        self._spans = SpanSource(model, loss_fn)

    def __call__(self, backward: bool = True) -> Tensor:
        if self.batch is None:
            raise UsageError("MinibatchClosure: set closure.batch = (inputs, targets) before optimizer.step(closure)")
        x, y = self.batch
        self.model.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(backward or torch.is_grad_enabled()):
            loss = self.loss_fn(self.model(x), y)
        self.forward_evals += 1
        if backward:
            loss.backward()
            self.backward_evals += 1
        return loss.detach()

    def _count(self, k: int) -> None:
        self.forward_evals += k

    def _count_backward(self) -> None:
        self.backward_evals += 1

    def span(self, center: Tensor, vectors: Tensor, *, params: list[Tensor]) -> SpanLosses | None:
        """:class:`SpanLosses` on the current batch, or ``None`` where the fast path does not apply.

        ``params`` are the optimizer's parameters, in the order of ``center``'s flat layout; the
        fast path applies only when they are the model's trainable parameters in module order.
        """
        if self.batch is None:
            return None
        return self._spans(self.batch, center, vectors, params=params, on_forward=self._count,
                           on_backward=self._count_backward)


def closure_span(closure, center: Tensor, vectors: Tensor | None, params: list[Tensor]) -> SpanLosses | None:
    """The closure's fast span evaluator at ``center`` along ``vectors``, or ``None`` (the closure
    has no ``span``, no vectors were given, or the fast path does not apply): what optimizers call."""
    make = getattr(closure, "span", None)
    if make is None or vectors is None:
        return None
    return make(center, vectors, params=params)
