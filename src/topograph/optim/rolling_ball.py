r"""The Rolling Ball Optimizer (RBO) as a ``torch.optim.Optimizer``.

Source: *Rolling Ball Optimizer: Learning by ironing out loss landscape wrinkles* (arXiv
2505.19527, seed 002) and the authors' JAX code (``project_on_graph``, ``ball_trajectory``,
``RollingBallOptimizer``); the update below follows them line by line.

A rigid ball of radius ρ rests on the graph Γ = {(θ, f(θ))} of the minibatch loss f (scaled by
κ, see below).  With g = ∇f(θ_t) and s = √(1 + ‖g‖²) (one global norm over all parameters, as
in the authors' code):

1. contact point p_t = (θ_t, f(θ_t)); upward unit normal ν = (−g, 1)/s;
2. ball centre c_t = p_t + ρν;
3. the centre moves along the *unnormalised* lifted gradient τ = (g, ‖g‖²):
   c̃ = c_t − ητ = (θ̃, ỹ) with θ̃ = θ_t − (ρ/s + η) g and ỹ = f(θ_t) + ρ/s − η‖g‖²;
4. the new contact point is the foot of c̃ on Γ, θ_{t+1} = argmin_φ E(φ) with
   E(φ) = ½‖φ − θ̃‖² + ½(f(φ) − ỹ)², found by K steps of gradient descent on E on the SAME
   minibatch: φ ← φ − γ[(φ − θ̃) + (f(φ) − ỹ)∇f(φ)], started at φ₀ = θ_t (``proj_init=
   "current"``, the authors' code) or at the GD point φ₀ = θ_t − ηg (``proj_init="gd"``);
5. the model holds the contact point θ_{t+1} = φ_K (never the centre).

Known answers (all tested in ``tests/optim/test_rolling_ball.py``):
on a linear loss the exact foot point is θ_t − ηg for every ρ; with ``proj_init="gd"`` the
start point already is that foot point, so RBO equals GD exactly for every ρ and K, and
``proj_steps=0`` is bit-for-bit ``torch.optim.SGD(lr=η)``.  With ``proj_init="current"`` the
K inner steps shrink the step by the factor 1 − (1 − γ(1 + ‖g‖²))^K (≈ 0.27 at the authors'
γ = 1e-3, K = 100, ‖g‖² = 2.18).  Near a critical point the step is ≈ −η(I − ρH)⁻¹g, so a
minimum whose largest Hessian eigenvalue exceeds 1/ρ repels the ball.

Cost per step: (1 + K) forward+backward passes on one minibatch (fewer when ``proj_tol``
stops the inner loop early); memory: two parameter-sized buffers (θ_t and θ̃) plus one
temporary.  The closure is called 1 + K times per step.

Hyperparameters (the authors' values from their code and paper in brackets):
``lr`` η [1.0 in the CIFAR-100 demo, 0.1 JAX default], ``radius`` ρ [10.0 demo, 0.5 JAX
default; "macroscopic" 1–5 reported best], ``proj_lr`` γ [1e-3 demo], ``proj_steps`` K [100
demo, 10–20 on a budget], ``proj_init`` ["current"].  ``loss_scale`` κ (not in the sources,
raised by a reviewer): RBO runs on the graph of κ·f, because the metric of R^(d+1) mixes
parameter units with loss units — RBO is not invariant to rescaling the loss; report κ.

Departures from the paper and the authors' code, and why:

* Per-group hyperparameters.  ``lr`` (η) and ``proj_lr`` (γ) may differ between parameter
  groups (so every LR scheduler works): the centre then moves along the lifted tangent
  (Pg, gᵀPg) with P = diag(η per group), which keeps the linear-loss ⇒ GD property exact.
  ``radius``, ``proj_steps``, ``proj_init``, ``loss_scale`` and ``proj_tol`` must be the same
  in every group (a per-group radius would put the centre off the normal and break that
  property); a mismatch raises :class:`~topograph.errors.UsageError`.  ‖g‖ is always the
  global norm over all groups, as in the authors' code.
* ``proj_tol`` (optional early stop of the inner loop when ‖∇E‖ ≤ tol·(‖φ − θ̃‖ + |f(φ) − ỹ|))
  is ours; it costs one host synchronisation per inner step.  The default ``None`` runs the
  authors' fixed K steps with no synchronisation.
* Dropout: every evaluation of one step runs under the same random seed, so all 1 + K
  evaluations see the same dropout masks and the same function f.  The seed is drawn once per
  step from the caller's global generator (which therefore advances by one draw per step, as a
  training step with dropout would advance it — and so consecutive steps get different masks);
  the evaluations then run inside ``torch.random.fork_rng``, so what they draw leaves the
  caller's generators untouched.  ``same_randomness=False`` turns this off.
* BatchNorm: running statistics are updated by the first evaluation of each step only; the
  K inner evaluations run inside :func:`freeze_bn_stats`, which restores the running
  statistics (and ``num_batches_tracked``) afterwards.  The optimizer only sees parameters,
  so pass the model as ``modules=model`` to enable this (without it, BN statistics are
  updated by all 1 + K evaluations, as a plain closure would).  The authors' models had no BN.
* Diagnostics (``optimizer.diagnostics``): loss and ‖g‖ at θ_t, the projection residual
  ‖∇E‖ at the last evaluated inner iterate, ‖θ_{t+1} − θ_t‖, the effective step ratio
  ‖θ_{t+1} − θ_t‖ / ‖Pg‖ (= ‖θ_{t+1} − θ_t‖/(η‖g‖) with one group), inner steps used, and
  the cumulative forward and backward counts.  They are kept as tensors in the optimizer
  state (no host synchronisation in the step); the property converts them to floats.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from topograph.core import Work, freeze_bn_stats
from topograph.errors import UsageError
from topograph.optim.closure import evaluate_closure, require_closure

PROJ_INITS = ("current", "gd")
_GLOBAL_KEYS = ("radius", "proj_steps", "proj_init", "loss_scale", "proj_tol")


@dataclass(frozen=True)
class RollingBallDiagnostics:
    """Floats describing the last RollingBall step (see the module docstring)."""

    step: int
    loss: float
    grad_norm: float
    proj_residual: float
    step_norm: float
    step_ratio: float
    inner_steps: int


class RollingBall(Optimizer):
    """Rolling Ball Optimizer (arXiv 2505.19527); see the module docstring for the math.

    Args:
        params: parameters or parameter groups.
        lr: η, step of the ball centre along the lifted gradient (per group).
        radius: ρ ≥ 0, the ball radius (same in every group).
        proj_lr: γ, inner gradient-descent step on the projection energy E (per group).
        proj_steps: K ≥ 0, inner steps (same in every group); one forward+backward each.
        proj_init: ``"current"`` (φ₀ = θ_t, the authors' code) or ``"gd"`` (φ₀ = θ_t − ηg).
        loss_scale: κ > 0; RBO runs on the graph of κ·f.
        proj_tol: optional early-stop tolerance of the inner loop (``None`` = fixed K).
        modules: the model (or its modules), only to keep BatchNorm running statistics to one
            update per step; not stored in the state dict.
        same_randomness: run all 1 + K evaluations of a step under one random seed (same
            dropout masks).

    ``step(closure)``: ``closure(backward=True)`` (or a plain ``closure()``) zeroes the
    gradients, computes the loss on THE SAME minibatch every time it is called during one
    step, runs backward and returns the loss.  Returns the loss at θ_t (before the step).
    Cost: (1 + K) forward+backward passes per step.

    >>> model = nn.Linear(4, 1)
    >>> opt = RollingBall(model.parameters(), lr=0.1, radius=1.0, proj_lr=0.01, proj_steps=10)
    >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
    >>> def closure(backward=True):
    ...     opt.zero_grad()
    ...     loss = nn.functional.mse_loss(model(x), y)
    ...     if backward:
    ...         loss.backward()
    ...     return loss
    >>> loss = opt.step(closure)
    >>> opt.work.forward_passes
    11
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        radius: float = 1.0,
        proj_lr: float = 1e-3,
        proj_steps: int = 100,
        proj_init: str = "current",
        loss_scale: float = 1.0,
        proj_tol: float | None = None,
        *,
        modules: nn.Module | Iterable[nn.Module] | None = None,
        same_randomness: bool = True,
    ) -> None:
        _check_hparams(lr=lr, radius=radius, proj_lr=proj_lr, proj_steps=proj_steps, proj_init=proj_init,
                       loss_scale=loss_scale, proj_tol=proj_tol)
        defaults = dict(lr=lr, radius=radius, proj_lr=proj_lr, proj_steps=int(proj_steps), proj_init=proj_init,
                        loss_scale=loss_scale, proj_tol=proj_tol)
        super().__init__(params, defaults)
        self._stat_modules = modules
        self.same_randomness = bool(same_randomness)

    # ------------------------------------------------------------------ helpers
    def _global_hparams(self) -> dict:
        first = self.param_groups[0]
        for group in self.param_groups:
            _check_hparams(**{k: group[k] for k in ("lr", "radius", "proj_lr", "proj_steps", "proj_init",
                                                    "loss_scale", "proj_tol")})
            for key in _GLOBAL_KEYS:
                if group[key] != first[key]:
                    raise UsageError(
                        f"RollingBall: {key} must be the same in every parameter group "
                        f"(got {first[key]!r} and {group[key]!r}); only lr and proj_lr may differ"
                    )
        return {key: first[key] for key in _GLOBAL_KEYS}

    def _global_state(self) -> dict:
        return self.state[self.param_groups[0]["params"][0]]

    @property
    def diagnostics(self) -> RollingBallDiagnostics | None:
        """The last step's diagnostics as floats (``None`` before the first step)."""
        state = self._global_state()
        if "step" not in state:
            return None

        def num(key: str) -> float:
            value = state[key]
            return float(value.item()) if isinstance(value, Tensor) else float(value)

        return RollingBallDiagnostics(
            step=int(state["step"]), loss=num("loss"), grad_norm=num("grad_norm"),
            proj_residual=num("proj_residual"), step_norm=num("step_norm"), step_ratio=num("step_ratio"),
            inner_steps=int(state["inner_steps"]),
        )

    @property
    def work(self) -> Work:
        """Cumulative forward and backward passes (every closure call runs both)."""
        state = self._global_state()
        return Work(int(state.get("forward_passes", 0)), int(state.get("backward_passes", 0)))

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(self, closure=None):
        """One RBO step: 1 + K forward+backward passes of ``closure`` on one minibatch."""
        closure = require_closure(closure, "RollingBall")
        hp = self._global_hparams()
        groups = [[p for p in g["params"] if p.requires_grad] for g in self.param_groups]
        params = [p for ps in groups for p in ps]
        if not params:
            return None
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        seed = int(torch.randint(0, 2**62, (1,)).item()) if self.same_randomness else None
        state = self._global_state()
        evals = 0

        def evaluate() -> Tensor:
            nonlocal evals
            if seed is not None:  # same dropout masks (and any other randomness) every time
                torch.default_generator.manual_seed(seed)
                for index in devices:
                    torch.cuda.default_generators[index].manual_seed(seed)
            loss, _ = evaluate_closure(closure, backward=True, forward_only_ok=False)
            evals += 1
            return loss

        with contextlib.ExitStack() as stack:
            if seed is not None:  # the caller's generators are restored after the step
                stack.enter_context(torch.random.fork_rng(devices=devices))
            return self._rolling_step(evaluate, groups, params, hp, state, lambda: evals)

    def _rolling_step(self, evaluate, groups, params, hp, state, evals_used):  # noqa: C901
        """One RBO update (§1.2 steps 1–5); ``evaluate()`` runs the closure with backward."""
        radius, n_inner, kappa, proj_tol = hp["radius"], hp["proj_steps"], hp["loss_scale"], hp["proj_tol"]

        def grads_of(ps: list[Tensor]) -> list[Tensor]:
            return [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps]

        # 1 F/B at the contact point θ_t (BN running statistics update here only)
        loss0 = evaluate()
        f_dtype = torch.promote_types(loss0.dtype, torch.float32)
        f0 = loss0.to(f_dtype) * kappa
        group_grads = [grads_of(ps) for ps in groups]
        if kappa != 1.0:
            group_grads = [torch._foreach_mul(gs, kappa) for gs in group_grads]
        sq_norms = [_sum_sq(gs, f0) for gs in group_grads]
        g2 = torch.stack(sq_norms).sum()
        s = torch.sqrt(1.0 + g2)
        lifted = sum(g["lr"] * sq for g, sq in zip(self.param_groups, sq_norms))  # gᵀPg
        precond_norm = torch.sqrt(sum(g["lr"] ** 2 * sq for g, sq in zip(self.param_groups, sq_norms)))
        y_target = f0 + radius / s - lifted  # ỹ
        theta0 = [p.clone() for p in params]
        theta_tilde: list[Tensor] = []  # θ̃ = θ_t − (ρ/s + η) g
        for group, ps, gs in zip(self.param_groups, groups, group_grads):
            coeff = (radius / s + group["lr"]).to(ps[0].dtype) if ps else None
            if ps:
                theta_tilde.extend(torch._foreach_sub(ps, torch._foreach_mul(gs, coeff)))
        if hp["proj_init"] == "gd":  # φ₀ = θ_t − ηg (bit-for-bit SGD's update)
            for group, ps, gs in zip(self.param_groups, groups, group_grads):
                if ps:
                    torch._foreach_add_(ps, gs, alpha=-group["lr"])
        del group_grads

        # K F/B: gradient descent on E(φ) = ½‖φ − θ̃‖² + ½(κf(φ) − ỹ)² on the same minibatch
        residual_norm = torch.full((), math.nan, dtype=f_dtype, device=f0.device)
        inner_steps = 0
        with freeze_bn_stats(self._stat_modules):
            for k in range(n_inner):
                loss = evaluate()
                inner_steps += 1
                gap = loss.to(f_dtype) * kappa - y_target  # f(φ) − ỹ
                grads = grads_of(params)
                residual = torch._foreach_sub(params, theta_tilde)
                torch._foreach_add_(residual, torch._foreach_mul(grads, (gap * kappa).to(params[0].dtype)))
                last = k == n_inner - 1
                if proj_tol is not None or last:
                    residual_norm = torch.sqrt(_sum_sq(residual, f0))
                if proj_tol is not None:
                    distance = torch.sqrt(_sum_sq(torch._foreach_sub(params, theta_tilde), f0))
                    if residual_norm.item() <= proj_tol * (distance + gap.abs()).item():
                        break
                start = 0
                for group, ps in zip(self.param_groups, groups):
                    if ps:
                        torch._foreach_add_(ps, residual[start:start + len(ps)], alpha=-group["proj_lr"])
                    start += len(ps)

        step_norm = torch.sqrt(_sum_sq(torch._foreach_sub(params, theta0), f0))
        state["step"] = int(state.get("step", 0)) + 1
        state["loss"] = loss0
        state["grad_norm"] = torch.sqrt(g2)
        state["proj_residual"] = residual_norm
        state["step_norm"] = step_norm
        state["step_ratio"] = step_norm / precond_norm
        state["inner_steps"] = inner_steps
        state["forward_passes"] = int(state.get("forward_passes", 0)) + evals_used()
        state["backward_passes"] = int(state.get("backward_passes", 0)) + evals_used()
        return loss0


def _sum_sq(tensors: list[Tensor], like: Tensor) -> Tensor:
    """Σ‖t_i‖² in the dtype/device of ``like`` (a 0-dim tensor)."""
    if not tensors:
        return torch.zeros((), dtype=like.dtype, device=like.device)
    norms = torch._foreach_norm(tensors)
    return torch.stack([n.to(like.dtype) for n in norms]).square().sum()


def _check_hparams(*, lr, radius, proj_lr, proj_steps, proj_init, loss_scale, proj_tol) -> None:
    if not (isinstance(lr, (int, float)) and lr >= 0):
        raise UsageError(f"RollingBall: lr must be a number >= 0, got {lr!r}")
    if not (isinstance(radius, (int, float)) and radius >= 0):
        raise UsageError(f"RollingBall: radius must be a number >= 0, got {radius!r}")
    if not (isinstance(proj_lr, (int, float)) and proj_lr >= 0):
        raise UsageError(f"RollingBall: proj_lr must be a number >= 0, got {proj_lr!r}")
    if isinstance(proj_steps, bool) or not isinstance(proj_steps, int) or proj_steps < 0:
        raise UsageError(f"RollingBall: proj_steps must be an integer >= 0, got {proj_steps!r}")
    if proj_init not in PROJ_INITS:
        raise UsageError(f"RollingBall: proj_init must be one of {', '.join(PROJ_INITS)}, got {proj_init!r}")
    if not (isinstance(loss_scale, (int, float)) and loss_scale > 0):
        raise UsageError(f"RollingBall: loss_scale must be a number > 0, got {loss_scale!r}")
    if proj_tol is not None and not (isinstance(proj_tol, (int, float)) and proj_tol > 0):
        raise UsageError(f"RollingBall: proj_tol must be None or a number > 0, got {proj_tol!r}")
