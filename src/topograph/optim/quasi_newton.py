r"""Full-batch quasi-Newton (L-BFGS or dense BFGS) with seed 001's golden-section line search.

Source: Yu & Morozov, *Neural network optimization strategies and the topography of the loss
landscape* (arXiv 2602.21276, seed 001), Algorithm 1, and their notebook
``L-BFGS_GSS_NN.ipynb`` (class ``LBFGS_Brent``).  One iteration:

1. f, g = f(θ_k), ∇f(θ_k)  (one forward+backward pass, normally on the full training set);
2. push the pair s = θ_k − θ_{k−1}, y = g_k − g_{k−1} (keep the newest m = ``history_size``);
   if cos∠(s, y) < 1e-4 or a norm is zero, clear the history (the authors' reset);
3. direction r = H_k g by the two-loop recursion with ρ_i = 1/(y_iᵀs_i + 1e-6) and initial
   scaling H⁰ = γI, γ = s_{k−1}ᵀy_{k−1} / y_{k−1}ᵀy_{k−1} (γ = 1 without history); with
   ``dense=True`` r = H g with the explicit BFGS inverse-Hessian update
   H ← (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ from H = γI (Nocedal & Wright eq. 6.17, 6.20) — for
   small models; a NaN direction falls back to r = g and clears the history;
4. line search on the unit direction r̂ = r/‖r‖: u* ≈ argmin_u f(θ_k − u r̂) by
   :func:`topograph.optim.line_search.bracket_golden_search` (first trial
   ``initial_step · lr · ‖r‖`` = 0.2‖r‖ by default, at most ``line_search_evals`` = 6
   forward-only evaluations, tolerance ``line_search_tol`` = 1e-4);
5. θ_{k+1} = θ_k − u* r̂.

``step(closure)`` runs up to ``max_iter`` iterations, like ``torch.optim.LBFGS``, and returns
the loss at the starting point.  It stops early when max|g| ≤ ``tolerance_grad`` (no step is
taken), when |f_{k+1} − f_k| < ``tolerance_change`` or max|s| < ``tolerance_change``, or
when ``max_eval`` closure calls were spent in this ``step``.

Cost per iteration: 1 forward+backward pass + at most ``line_search_evals`` forward passes
(+1 on an exact tie) — forward-only when the closure accepts ``backward`` (the authors'
notebook ran backward in the line search too; a plain ``closure()`` still does, and is
counted as such).  With a closure that offers ``span`` (:class:`topograph.optim.MinibatchClosure`,
topograph's trainer) and an MLP, the line's first-layer products X·W(θ)ᵀ and X·W(r̂)ᵀ are
computed once per iteration and every trial step costs only the layers after the first
(:class:`topograph.optim.closure.Span`).  Within one ``step`` call the next point θ_{k+1} = θ_k − u*r̂
lies on that line, so its first-layer pre-activations G₀ − u*G_r̂ are already known: step 1 of
the next iteration (f and ∇f) runs the later layers forward and backward from them and closes
with ∂L/∂W₁ = δᵀX (:meth:`~topograph.optim.closure.Span.value_and_grad`, no first-layer
forward GEMM, no closure call), and the next line starts from the same products (no centre
GEMM).  Every ``CARRY_MAX`` + 1 = 9th iteration calls the closure and recomputes them, so
rounding cannot build up.  Each iteration then multiplies the data by r̂ once (forward) and
by δ once (backward) instead of three times.  The counts are the same (f and ∇f at the
accepted point count as one forward+backward pass).  Memory: 2m parameter-sized vectors
(L-BFGS) or d² numbers (dense).
The forward and backward passes are counted in :attr:`QuasiNewton.work`, the iterations and
history resets in :attr:`QuasiNewton.counts`.

Departures from the authors' code, and why:

* ``lr`` (default 1, faithful) multiplies the first trial step, so LR schedulers have a
  meaning; the line search adapts the step from there.  ``line_search=None`` takes the fixed
  step θ − lr·r instead (the first iteration ever scales it by min(1, 1/‖g‖₁) as
  ``torch.optim.LBFGS`` does), for comparisons.
* The stopping tolerances and ``max_eval`` are ours (the authors ran a fixed 1000
  iterations); ``tolerance_grad`` also prevents a division by ‖r‖ = 0.
* The reset only checks the new pair: older pairs passed the same check when they were
  pushed, so this equals the authors' check of every pair.
* ``dense=True`` (not in the authors' code) uses the textbook ρ = 1/yᵀs: the reset already
  guarantees yᵀs > 0, and the absolute 1e-6 guard visibly spoils the finite termination on
  quadratics once the steps get small.
* One parameter group only (as ``torch.optim.LBFGS``): the method is global in θ.

The state dict holds the history as tensors (``old_steps``, ``old_grad_diffs``, or
``inverse_hessian``), the last step and gradient, and the counters, so a resumed run
continues identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.optim import Optimizer

from topograph.core import Work
from topograph.errors import UsageError
from topograph.optim.closure import accepts_backward, closure_span, evaluate_closure, require_closure
from topograph.optim.line_search import bracket_golden_search

LINE_SEARCHES = ("golden", None)
#: guard added to yᵀs in ρ = 1/(yᵀs + eps), as in the authors' code
CURVATURE_EPS = 1e-6
#: the authors' reset threshold on cos∠(s, y)
RESET_COSINE = 1e-4
#: line-search spans in a row whose centre products are carried over before one is recomputed
CARRY_MAX = 8
#: largest parameter count accepted with ``dense=True`` (the matrix has d² entries)
DENSE_MAX_DIM = 20_000


@dataclass(frozen=True)
class QuasiNewtonCounts:
    """Cumulative counters: iterations, the work (forward and backward passes), history resets."""

    iterations: int
    work: Work
    resets: int
    last_step_length: float


class QuasiNewton(Optimizer):
    """L-BFGS (or dense BFGS) with the bracketing + golden-section line search of seed 001.

    Args:
        params: parameters (one group).
        history_size: m, correction pairs kept by L-BFGS (authors: 10).
        max_iter: iterations per ``step`` call (1 = one iteration per call, as the authors'
            training loop).
        line_search: ``"golden"`` (seed 001) or ``None`` (fixed step lr·r).
        lr: scale of the first line-search trial (``"golden"``) or the fixed step (``None``).
        initial_step: first trial = initial_step · lr · ‖r‖ (authors: 0.2).
        line_search_evals: budget of forward evaluations per line search (authors: 6).
        line_search_tol: line-search tolerance on |b − a| and |f(a) − f(b)| (authors: 1e-4).
        tolerance_grad: stop when max|g| ≤ this.
        tolerance_change: stop when |Δf| or max|s| is below this.
        max_eval: most closure calls per ``step`` call (``None``: no limit beyond ``max_iter``).
        dense: keep the dense inverse Hessian instead of the L-BFGS history (d ≤ 20 000).

    ``step(closure)``: ``closure(backward=True)`` zeroes the gradients, computes the loss on
    the full batch, runs backward if asked and returns the loss; a plain ``closure()`` that
    always runs backward works too.

    >>> x = torch.nn.Parameter(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    >>> opt = QuasiNewton([x], max_iter=50, line_search_evals=30, line_search_tol=1e-12)
    >>> def closure(backward=True):
    ...     opt.zero_grad()
    ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    ...     if backward:
    ...         loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)
    >>> bool(torch.allclose(x, torch.ones(2, dtype=torch.float64), atol=1e-4))
    True
    """

    def __init__(
        self,
        params,
        history_size: int = 10,
        max_iter: int = 1,
        line_search: str | None = "golden",
        lr: float = 1.0,
        initial_step: float = 0.2,
        line_search_evals: int = 6,
        line_search_tol: float = 1e-4,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        max_eval: int | None = None,
        dense: bool = False,
    ) -> None:
        _check_int("history_size", history_size, 1)
        _check_int("max_iter", max_iter, 1)
        _check_int("line_search_evals", line_search_evals, 1)
        if max_eval is not None:
            _check_int("max_eval", max_eval, 1)
        if line_search not in LINE_SEARCHES:
            raise UsageError(f"QuasiNewton: line_search must be 'golden' or None, got {line_search!r}")
        for name, value in (("lr", lr), ("initial_step", initial_step), ("line_search_tol", line_search_tol)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise UsageError(f"QuasiNewton: {name} must be a finite number > 0, got {value!r}")
        for name, value in (("tolerance_grad", tolerance_grad), ("tolerance_change", tolerance_change)):
            if not (isinstance(value, (int, float)) and value >= 0):
                raise UsageError(f"QuasiNewton: {name} must be a number >= 0, got {value!r}")
        defaults = dict(
            lr=lr, history_size=int(history_size), max_iter=int(max_iter), line_search=line_search,
            initial_step=initial_step, line_search_evals=int(line_search_evals), line_search_tol=line_search_tol,
            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change, max_eval=max_eval, dense=bool(dense),
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise UsageError("QuasiNewton: one parameter group only (the quasi-Newton model is global in θ)")

    def add_param_group(self, param_group: dict) -> None:
        if getattr(self, "param_groups", None):
            raise UsageError("QuasiNewton: one parameter group only (the quasi-Newton model is global in θ)")
        super().add_param_group(param_group)

    # ------------------------------------------------------------------ flat views
    def _params(self) -> list[Tensor]:
        return [p for p in self.param_groups[0]["params"] if p.requires_grad]

    def _state(self) -> dict:
        state = self.state[self.param_groups[0]["params"][0]]
        if "forward_passes" not in state:
            state.update(
                n_iter=0, forward_passes=0, backward_passes=0, resets=0, last_step_length=0.0, first_iteration=True,
                old_steps=[], old_grad_diffs=[], old_curvatures=[], inverse_hessian=None,
                prev_step=None, prev_flat_grad=None,
            )
        return state

    @staticmethod
    def _flat_grad(params: list[Tensor]) -> Tensor:
        return torch.cat([
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
        ])

    @staticmethod
    def _set_flat(params: list[Tensor], flat: Tensor) -> None:
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n

    @property
    def counts(self) -> QuasiNewtonCounts:
        """Cumulative iterations, work, resets, last step length."""
        s = self._state()
        return QuasiNewtonCounts(iterations=int(s["n_iter"]), work=self.work, resets=int(s["resets"]),
                                 last_step_length=float(s["last_step_length"]))

    @property
    def work(self) -> Work:
        """Cumulative forward and backward passes (closure calls and span points)."""
        s = self._state()
        return Work(int(s["forward_passes"]), int(s["backward_passes"]))

    # ------------------------------------------------------------------ curvature model
    def _push_pair(self, state: dict, s: Tensor, y: Tensor, history_size: int, dense: bool) -> None:
        ys = torch.dot(y, s)
        norms = float(s.norm()) * float(y.norm())
        if norms == 0.0 or not math.isfinite(norms) or float(ys) / norms < RESET_COSINE:
            self._reset(state)
            return
        if dense:
            rho = 1.0 / ys  # the reset guarantees yᵀs > 1e-4 ‖s‖‖y‖ > 0
            H = state["inverse_hessian"]
            if H is None:
                H = torch.eye(s.numel(), dtype=s.dtype, device=s.device) * (ys / torch.dot(y, y))
            Hy = H @ y
            # (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ = H − ρ(s Hyᵀ + Hy sᵀ) + (ρ² yᵀHy + ρ) s sᵀ
            H = H - rho * (torch.outer(s, Hy) + torch.outer(Hy, s)) + (rho * rho * torch.dot(y, Hy) + rho) * torch.outer(s, s)
            state["inverse_hessian"] = H
            return
        if len(state["old_steps"]) == history_size:
            state["old_steps"].pop(0)
            state["old_grad_diffs"].pop(0)
            state["old_curvatures"].pop(0)
        state["old_steps"].append(s)
        state["old_grad_diffs"].append(y)
        state["old_curvatures"].append(ys)

    @staticmethod
    def _reset(state: dict) -> None:
        state["old_steps"], state["old_grad_diffs"], state["old_curvatures"] = [], [], []
        state["inverse_hessian"] = None
        state["resets"] += 1

    @staticmethod
    def _direction(state: dict, g: Tensor, dense: bool) -> Tensor:
        """r ≈ H g (so the step is −u r̂): two-loop recursion or the dense matrix."""
        if dense:
            H = state["inverse_hessian"]
            return g.clone() if H is None else H @ g
        steps, diffs, curv = state["old_steps"], state["old_grad_diffs"], state["old_curvatures"]
        if not steps:
            return g.clone()
        q = g.clone()
        alphas = [None] * len(steps)
        rhos = [1.0 / (c + CURVATURE_EPS) for c in curv]
        for i in range(len(steps) - 1, -1, -1):
            alphas[i] = rhos[i] * torch.dot(steps[i], q)
            q.sub_(diffs[i] * alphas[i])
        r = q.mul_(curv[-1] / torch.dot(diffs[-1], diffs[-1]))
        for i in range(len(steps)):
            beta = rhos[i] * torch.dot(diffs[i], r)
            r.add_(steps[i] * (alphas[i] - beta))
        return r

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(self, closure=None):
        closure = require_closure(closure, "QuasiNewton")
        group = self.param_groups[0]
        params = self._params()
        if not params:
            return None
        state = self._state()
        dense = group["dense"]
        if dense and sum(p.numel() for p in params) > DENSE_MAX_DIM:
            raise UsageError(f"QuasiNewton: dense=True needs at most {DENSE_MAX_DIM} parameters; use dense=False (L-BFGS)")
        calls = _Calls(closure, params, state)
        orig_loss = None
        previous, carries = None, 0  # the last line's span and step: its first-layer products carry over
        for _ in range(group["max_iter"]):
            carry = previous is not None and carries < CARRY_MAX
            loss, g = calls.value_and_grad(previous if carry else None)  # 1. f, ∇f
            orig_loss = loss if orig_loss is None else orig_loss
            f = float(loss)
            if state["prev_step"] is not None:  # 2. the newest pair
                self._push_pair(state, state["prev_step"], g - state["prev_flat_grad"], group["history_size"], dense)
                state["prev_step"] = state["prev_flat_grad"] = None
            g_max = float(g.abs().max())
            if not math.isfinite(g_max) or g_max <= group["tolerance_grad"]:
                break
            r = self._direction(state, g, dense)  # 3. r ≈ H g
            if not bool(torch.isfinite(r).all()):
                self._reset(state)
                r = g.clone()
            theta = torch.cat([p.reshape(-1) for p in params])
            if group["line_search"] == "golden":  # 4. u* ≈ argmin f(θ − u r̂)
                r_norm = float(r.norm())
                unit = r / r_norm
                span = closure_span(closure, theta, unit.unsqueeze(0), params)
                if span is not None and carry:
                    previous[0].carry_to(span, previous[1])  # X·W(θ_k)ᵀ from the last line
                carries = carries + 1 if span is not None and carry else 0
                search = bracket_golden_search(calls.along(theta, unit, span), f,
                                               group["initial_step"] * group["lr"] * r_norm,
                                               max_evals=group["line_search_evals"], tol=group["line_search_tol"])
                u, f_new = search.step, search.value
                step_vec = -u * unit
                previous = (span, [-u]) if span is not None else None
            else:  # the fixed step lr·r (the first iteration ever scaled as torch's LBFGS does)
                t = group["lr"] * (min(1.0, 1.0 / float(g.abs().sum())) if state["first_iteration"] else 1.0)
                step_vec = -t * r
                u, f_new = t * float(r.norm()), math.nan
            self._set_flat(params, theta + step_vec)  # 5. θ_{k+1}
            state.update(prev_step=step_vec, prev_flat_grad=g, first_iteration=False, last_step_length=float(u))
            state["n_iter"] += 1
            if abs(f_new - f) < group["tolerance_change"] or float(step_vec.abs().max()) < group["tolerance_change"]:
                break
            if group["max_eval"] is not None and calls.evals >= group["max_eval"]:
                break
        return orig_loss


class _Calls:
    """The evaluations of one ``step``: the closure, or the last line's span, counted in the state."""

    def __init__(self, closure, params: list[Tensor], state: dict) -> None:
        self.closure, self.params, self.state = closure, params, state
        self.forward_only_ok = accepts_backward(closure)
        self.evals = 0

    def count(self, did_backward: bool) -> None:
        self.evals += 1
        self.state["forward_passes"] += 1
        self.state["backward_passes"] += int(did_backward)

    def value_and_grad(self, previous) -> tuple[Tensor, Tensor]:
        """(f, ∇f) at the current point: from the last line's products when ``previous`` = (span,
        step) is given (no first-layer forward), else by the closure."""
        if previous is not None:
            loss, g = previous[0].value_and_grad(previous[1])
            self.count(True)
            for p, part in zip(self.params, torch.split(g, [p.numel() for p in self.params])):
                p.grad = part.view_as(p).clone()  # as the closure would leave them
            return loss, g
        loss, did_backward = evaluate_closure(self.closure, backward=True, forward_only_ok=self.forward_only_ok)
        self.count(did_backward)
        return loss, QuasiNewton._flat_grad(self.params)

    def along(self, theta: Tensor, unit: Tensor, span) -> Callable[[float], float]:
        """φ(u) = f(θ − u r̂): from the span's kept first-layer products, or by the closure."""

        def phi(u: float) -> float:
            if span is not None:
                self.count(False)
                return float(span.losses([[-u]])[0])
            QuasiNewton._set_flat(self.params, theta - u * unit)
            value, did_backward = evaluate_closure(self.closure, backward=False, forward_only_ok=self.forward_only_ok)
            self.count(did_backward)
            return float(value)

        return phi


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"QuasiNewton: {name} must be an integer >= {minimum}, got {value!r}")
