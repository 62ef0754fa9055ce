r"""Sharpness-Aware Minimization (SAM) and its adaptive variant (ASAM), in one ``step(closure)``.

Sources: P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, *Sharpness-Aware Minimization for
Efficiently Improving Generalization*, ICLR 2021 (SAM); J. Kwon, J. Kim, H. Park, I. K. Choi,
*ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural
Networks*, ICML 2021 (ASAM).

SAM minimises the worst loss in a ball around θ, min_θ max_{‖ε‖ ≤ ρ} L(θ + ε), with the
first-order solution of the inner problem, ε̂ = ρ g/‖g‖, and the gradient of L at θ + ε̂ (the
second-order term dε̂/dθ dropped, as in the paper, Eq. 3).  One step on one minibatch:

1. g = ∇L(θ)                         — ``closure(backward=True)`` at θ (1 F/B);
2. ε = ρ g/‖g‖  (SAM),  or  ε = ρ T²g/‖Tg‖ with T = diag(|θ| + η)  (ASAM, ``adaptive=True``;
   the norm ball is taken in the scale-invariant coordinates T⁻¹θ);  ‖·‖ is the Euclidean
   norm over ALL trained parameters together;
3. g_SAM = ∇L(θ + ε)                 — ``closure(backward=True)`` at θ + ε (1 F/B);
4. θ is restored EXACTLY from a copy (``copy_``, no floating-point add/subtract);
5. the base optimizer steps with g_SAM in ``p.grad`` (SGD, momentum, Adam, … alike).

So a step costs 2 forward/backward passes on the same minibatch and one extra copy of θ
(alive only during the step).  With ``rho=0``, or when g = 0 (no ascent direction), the step is
the base optimizer's own on g: 1 F/B, parameters bit for bit those of the base.

Unlike the widely used two-call ``first_step()``/``second_step()`` API (davda54/sam on
GitHub), this is one ``step(closure)``, as ``torch.optim.LBFGS``, so it fits any
training loop, ``torch.optim.lr_scheduler`` and checkpointing unchanged.  The wrapper shares
the base's ``param_groups`` (a scheduler attached to the wrapper sets the base's learning
rate) and ``state``; ``state_dict()`` is ``{"base": base.state_dict(), "sam": counters}``.

BatchNorm: with ``modules=model``, the second pass (at θ + ε) runs with the running
statistics frozen (restored afterwards), so they are updated once per step, at θ — the
"updated twice" complaint (davda54/sam #17).  Dropout draws fresh masks in the second pass,
as in the reference implementations.  The closure convention is topograph's
``closure(backward: bool = True)`` (:mod:`topograph.optim.closure`); a plain closure works.

The step returns the loss at θ (the first evaluation).  Base optimizers that evaluate the
closure more than once (Rolling Ball, QuasiNewton) get g_SAM on their first call and the real
closure on further calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from topograph.core import Work, freeze_bn_stats
from topograph.errors import UsageError
from topograph.optim.closure import accepts_backward, evaluate_closure, require_closure
from topograph.optim.wrapper import WrappingOptimizer

__all__ = ["SAM", "SAMCounts"]


@dataclass(frozen=True)
class SAMCounts:
    """Cumulative counters of a :class:`SAM` optimizer (for equal-compute comparisons).

    ``work`` counts every forward and backward pass made through the wrapper (its own and the
    base optimizer's); ``perturbed_steps`` the steps that took the ascent
    step (``rho > 0`` and g ≠ 0); ``last_eps_norm`` the Euclidean norm of the last ε.
    """

    steps: int
    perturbed_steps: int
    work: Work
    last_eps_norm: float


class SAM(WrappingOptimizer):
    """Sharpness-Aware Minimization (Foret et al. 2021) around ``base_optimizer``.

    Args:
        base_optimizer: any ``torch.optim.Optimizer`` built over the parameters to train; the
            wrapper shares its ``param_groups`` and ``state``.
        rho: ρ ≥ 0, the radius of the neighbourhood (0.05 as in the paper; ASAM typically
            uses larger values, e.g. 0.5–2).
        adaptive: ASAM (Kwon et al. 2021): ε = ρ T²g/‖Tg‖, T = |θ| + η, element-wise.
        eta: η ≥ 0 of ASAM's T (0 as in davda54/sam; Kwon et al. use 0.01).
        modules: the model (or modules) whose BatchNorm running statistics the second pass
            must not change; not stored in the state dict.

    ``step(closure)``: ``closure(backward=True)`` zeroes the gradients, computes the loss on the
    CURRENT minibatch (the same one for both calls), runs backward only if asked and returns
    the loss.  Returns the loss at θ.

    >>> model = nn.Linear(4, 1)
    >>> opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
    >>> def closure(backward=True):
    ...     opt.zero_grad()
    ...     loss = nn.functional.mse_loss(model(x), y)
    ...     if backward:
    ...         loss.backward()
    ...     return loss
    >>> for _ in range(3):
    ...     _ = opt.step(closure)
    >>> opt.work.backward_passes
    6
    """

    STATE_KEY = "sam"

    def __init__(
        self,
        base_optimizer: Optimizer,
        *,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.0,
        modules: nn.Module | Iterable[nn.Module] | None = None,
    ) -> None:
        for name, value in (("rho", rho), ("eta", eta)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise UsageError(f"SAM: {name} must be a finite number >= 0, got {value!r}")
        if not isinstance(adaptive, bool):
            raise UsageError(f"SAM: adaptive must be true or false, got {adaptive!r}")
        self.rho = float(rho)
        self.adaptive = adaptive
        self.eta = float(eta)
        self._modules = modules
        super().__init__(base_optimizer)

    def __repr__(self) -> str:
        return (f"SAM(base={type(self.base_optimizer).__name__}, rho={self.rho}, adaptive={self.adaptive}, "
                f"eta={self.eta})")

    def _fresh_state(self) -> dict:
        return {"step": 0, "perturbed_steps": 0, "forward_passes": 0, "backward_passes": 0, "last_eps_norm": 0.0}

    @property
    def counts(self) -> SAMCounts:
        """Cumulative counters."""
        s = self.own_state
        return SAMCounts(steps=int(s["step"]), perturbed_steps=int(s["perturbed_steps"]), work=self.work,
                         last_eps_norm=float(s["last_eps_norm"]))

    @property
    def work(self) -> Work:
        """Forward and backward passes made through the wrapper."""
        return Work(int(self.own_state["forward_passes"]), int(self.own_state["backward_passes"]))

    # ------------------------------------------------------------------ the step
    def _call(self, closure: Callable, *, backward: bool, fwd_ok: bool) -> Tensor:
        loss, did_backward = evaluate_closure(closure, backward=backward, forward_only_ok=fwd_ok)
        self.own_state["forward_passes"] += 1
        self.own_state["backward_passes"] += int(did_backward)
        return loss

    def perturbation(self, params: list[Tensor], grads: list[Tensor]) -> list[Tensor] | None:
        """ε for the parameters and their gradients at θ (``None`` when ρ = 0 or g = 0).

        SAM: ε = ρ g/‖g‖;  ASAM: ε = ρ T²g/‖Tg‖, T = |θ| + η (norms over all tensors together).
        """
        if self.rho == 0.0:
            return None
        with torch.no_grad():
            if self.adaptive:
                scales = [p.detach().abs().add(self.eta) for p in params]
                scaled = [t * g for t, g in zip(scales, grads)]
            else:
                scales, scaled = None, grads
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s.to(torch.float64))
                                                         for s in scaled]))
            if not float(norm) > 0.0:
                return None
            if self.adaptive:
                return [(self.rho / norm).to(g.dtype) * t * s for t, s, g in zip(scales, scaled, grads)]
            return [(self.rho / norm).to(g.dtype) * g for g in grads]

    def step(self, closure=None):
        """One SAM step: gradient at θ, ascent to θ + ε, gradient there, restore θ, base step."""
        closure = require_closure(closure, "SAM")
        fwd_ok = accepts_backward(closure)
        st = self.own_state
        st["step"] += 1
        loss = self._call(closure, backward=True, fwd_ok=fwd_ok)  # g = ∇L(θ), 1 F/B
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        eps = self.perturbation(params, [p.grad for p in params]) if params else None
        if eps is None:  # ρ = 0 or g = 0: exactly the base optimizer on g
            st["last_eps_norm"] = 0.0
            self.base_optimizer.step(self._cached(closure, fwd_ok, loss))
            return loss
        with torch.no_grad():
            saved = [p.detach().clone() for p in params]
            st["last_eps_norm"] = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(e.to(torch.float64)) for e in eps])))
            for p, e in zip(params, eps):
                p.add_(e)
        try:
            with freeze_bn_stats(self._modules):
                self._call(closure, backward=True, fwd_ok=fwd_ok)  # g_SAM = ∇L(θ + ε), 1 F/B
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)  # exact restore
        st["perturbed_steps"] += 1
        self.base_optimizer.step(self._cached(closure, fwd_ok, loss))
        return loss

    def _cached(self, closure, fwd_ok, loss):
        """A closure whose first backward call returns ``loss`` (the step's gradient already in p.grad)."""
        first = [True]

        def cached(backward: bool = True):
            if first[0] and backward:
                first[0] = False
                return loss
            first[0] = False
            if fwd_ok:
                out = closure(backward=backward)
            else:
                out, backward = closure(), True
            self.own_state["forward_passes"] += 1
            self.own_state["backward_passes"] += int(backward)
            return out

        return cached
