r"""Guided Exploration (GE): a landscape-probing add-on around any ``torch.optim`` optimizer.

Source: A. Pare, *Improving Gradient Descent Optimization through Guided Exploration of Loss
Landscape* (seed 000), Algorithm 1: sample the vicinity of θ, identify critical points from
finite differences or Hessian information, and step with an "effective gradient" ∇_e biased
toward promising regions.  The paper gives no more than that; this is one concrete reading.

Every ``explore_every`` = k steps (an *exploration event*), on the SAME minibatch as the step:

1. **Probe directions.**  n = ``n_dirs`` directions u_i, u_i a float32 Gaussian draw of P numbers
   from a CPU generator seeded with s + i, s the event's direction seed (the same on every device
   and reproducible from (``seed``, event)).  ``filter_norm=True``: filter-normalised against θ
   (Li et al. 2018, :func:`topograph.core.directions.normalize_directions`; 1-D tensors zeroed
   when ``ignore_1d``), so σ is relative to the weights.  ``filter_norm=False``: u_i scaled onto
   the sphere of radius √P, so σ is absolute, every probe lies at distance σ√P and E[uuᵀ] = I.
2. **Loss map.**  L₀ = L(θ) and L_i^± = L(θ ± σu_i): 1 + 2n forward passes without backward,
   all under one random seed per event (the same dropout masks, the caller's RNG untouched),
   BatchNorm running statistics frozen (pass ``modules=model``), θ restored exactly.  With a
   :class:`~topograph.optim.MinibatchClosure` on a network whose first layer allows it, the
   1 + 2n points are one batched pass of the core's first-layer shortcut instead.
3. **Finite differences** (exact on quadratics):
   slope_i = (L_i^+ − L_i^−)/(2σ) ≈ gᵀu_i,  curv_i = (L_i^+ − 2L₀ + L_i^−)/σ² ≈ u_iᵀHu_i,
   κ_i = curv_i/‖u_i‖².  The Gaussian-smoothing gradient ĝ_ES = (1/n) Σ slope_i u_i is available
   from :meth:`GuidedExploration.es_gradient` (a diagnostic; the update does not use it).
4. **Optional Hessian information** (``hvp_iters`` = m > 0): m Lanczos steps on the minibatch
   Hessian at θ (one graph, m Hessian-vector products, warm-started from the previous event's
   v_min) give λ_min, v_min, λ_max.
5. **Classification**, with ḡ the EMA (decay 0.9) of ‖g‖ over the steps so far:
   stationary ⇔ ‖g‖ < max(τ_g ḡ, 1e-8);  SADDLE ⇔ stationary and (min_i κ_i < −τ_c or
   λ_min < −τ_c|λ_max|);  MINIMUM ⇔ stationary and not SADDLE;  SLOPE otherwise.
6. **Action.**  Let P = {(i, ±): L_i^± < L₀ − margin} (improving probes).
   * SLOPE: if P ≠ ∅, d = Σ_P w (±u_i), w ∝ exp(−(L_i^± − L₀)/T) (softmin, T = ``temperature``
     or the std of the 2n probe losses), ∇_e = g − β‖g‖ d/‖d‖; else ∇_e = g.
     ``bias="random"`` (a control topograph adds; the paper has none: "GE with β > 0 but random d"):
     d is a fresh random direction of the same kind, drawn from (``seed``, event) and
     independent of the probe losses — the same probes, classification and bias size, so the
     comparison isolates what the probe *information* adds beyond noise.
   * SADDLE: with Lanczos information, move to the better of θ ± σ r v_min (r the mean ‖u_i‖,
     the same filter-relative size; 2 more forward passes) if it improves on L₀; otherwise to
     the better of θ ± σu_j, j = argmin κ_j, if that improves on L₀.  A negative κ_j makes one of
     the pair improve (L_j^+ + L_j^− < 2L₀); a saddle seen only by Lanczos need not have one, and
     then no jump is taken.
   * MINIMUM: jump to the best probe if it improves on L₀ by more than ``margin``; otherwise
     widen σ ← min(σ·``sigma_growth``, ``sigma_max``) for the next event.
   * σ returns to its initial value after a jump and at SLOPE events.
   * GE-LA (``lookahead_alpha`` = α > 0, SLOPE with P ≠ ∅): one gradient at the best probe θ*,
     g ← (1 − α)g(θ) + αg(θ*) before the bias (the "gradient at θ + Δθ" of Algorithm 1, line 5).
   ∇_e is written into ``p.grad`` and the base optimizer steps.  Between events the step is the
   base optimizer's own.

Cost per step (F = forward pass, F/B = forward and backward): the base optimizer's cost plus, per
event, (1 + 2n) F [+ 1 F/B + m HVPs + 2 F with ``hvp_iters``] [+ 1 F/B with GE-LA]; at the
defaults (n = 4, k = 10) 0.9 F per step ≈ 0.3 F/B.  Memory at events: the n directions (n·P
floats), θ and a copy of the gradient.

The base optimizer sees ∇_e through the closure it is given: its first call returns the loss
already computed, with ∇_e in ``p.grad``; further calls (Rolling Ball's inner steps, a line
search) run the real closure.  So GE wraps SGD, Adam, RollingBall, QuasiNewton or torch's LBFGS
alike.  The wrapper shares the base's ``param_groups`` (an LR scheduler attached to it acts on the
base) and ``state``; ``state_dict()`` holds the base's state dict and GE's own (σ, ḡ, counters,
the Lanczos warm start); directions and dropout seeds derive from (``seed``, event), so a resumed
run continues identically.  With ``enabled=False``, or β = 0 and no jump, every parameter is
bit-for-bit the base optimizer's.

Departures from a literal reading, and why: ``filter_norm=False`` draws on the sphere (a hard probe
radius: a Gaussian |u| > 1.5 would teleport with σ = 1 on the double-well test); σ also resets at
SLOPE events (a wide σ carried into slopes would bias steps toward far probes); the events happen
every k steps (the paper's stall trigger is not implemented).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from topograph.core import Work, freeze_bn_stats
from topograph.core.linalg import lanczos_tridiagonal
from topograph.core.params import ParamSpec
from topograph.errors import UsageError
from topograph.optim.closure import accepts_backward, closure_span, evaluate_closure, require_closure
from topograph.optim.guided_settings import BIAS_KINDS, check_settings
from topograph.optim.probes import (
    MinibatchHessian,
    ProbeResult,
    draw_directions,
    loss_map,
    probe_coefficients,
    probe_point,
    set_grads,
    write_flat,
)
from topograph.optim.wrapper import WrappingOptimizer

__all__ = ["BIAS_KINDS", "MODES", "GuidedCounts", "GuidedExploration", "ProbeResult"]

MODES = ("slope", "saddle", "minimum")
#: decay of the exponential moving average ḡ of ‖g‖
EMA_DECAY = 0.9
#: absolute floor of the stationarity test (an exact critical point counts as stationary)
GRAD_FLOOR = 1e-8


@dataclass(frozen=True)
class GuidedCounts:
    """Cumulative counters of a :class:`GuidedExploration`: ``work`` (every forward pass, backward
    pass and HVP made through the wrapper, the base optimizer's included), the probe forward
    passes among them, the events per mode, the jumps, and the current σ and ḡ."""

    steps: int
    events: int
    work: Work
    probe_forwards: int
    jumps: int
    mode_counts: dict[str, int]
    sigma: float
    grad_norm_ema: float
    last_mode: str | None


class GuidedExploration(WrappingOptimizer):
    """Guided Exploration (seed 000) around ``base_optimizer``; the math is in the module docstring.

    Args:
        base_optimizer: any ``torch.optim.Optimizer`` built over the parameters to train.
        explore_every: k ≥ 1, steps between exploration events (the first step explores).
        n_dirs: n ≥ 1 probe directions per event (2n probes).
        sigma: σ₀ > 0, the probe radius (relative to the filters with ``filter_norm``).
        beta: β ≥ 0, relative strength of the bias toward improving probes (0 = none).
        margin: a probe "improves" when L < L₀ − margin.
        temperature: softmin temperature T (``None``: the std of the probe losses).
        tau_g: stationarity threshold, ‖g‖ < τ_g ḡ.
        tau_c: negative-curvature threshold, κ < −τ_c.
        sigma_growth, sigma_max: widening of σ at minima without an improving probe.
        filter_norm: filter-normalised directions (else uniform on the sphere of radius √P).
        ignore_1d: with ``filter_norm``, zero the direction on 1-D tensors (biases, BN).
        hvp_iters: m ≥ 0 Lanczos steps per event; needs ``closure(backward=False)`` to return the
            loss attached to the graph when gradients are enabled.
        lookahead_alpha: α ∈ [0, 1], the GE-LA look-ahead weight (0 = off).
        bias: ``"probes"`` (the method) or ``"random"`` (the noise-only ablation).
        seed: seed of the probe directions and of the probes' dropout masks.
        enabled: ``False`` makes the wrapper exactly its base optimizer.
        modules: the model, whose BatchNorm running statistics the probes must not change.

    ``step(closure)``: ``closure(backward=True)`` zeroes the gradients, computes the loss on the
    CURRENT minibatch (the same for every call during one ``step``), runs backward only if asked
    and returns the loss.  Returns the loss at θ_t.

    >>> model = nn.Linear(4, 1)
    >>> opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1), explore_every=5)
    >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
    >>> def closure(backward=True):
    ...     opt.zero_grad()
    ...     loss = nn.functional.mse_loss(model(x), y)
    ...     if backward:
    ...         loss.backward()
    ...     return loss
    >>> for _ in range(10):
    ...     _ = opt.step(closure)
    >>> opt.counts.events, opt.counts.probe_forwards
    (2, 18)
    """

    STATE_KEY = "guided"

    def __init__(self, base_optimizer: Optimizer, *, explore_every: int = 10, n_dirs: int = 4,
                 sigma: float = 0.02, beta: float = 0.3, margin: float = 0.0, temperature: float | None = None,
                 tau_g: float = 0.1, tau_c: float = 0.0, sigma_growth: float = 2.0, sigma_max: float = 0.5,
                 filter_norm: bool = True, ignore_1d: bool = True, hvp_iters: int = 0,
                 lookahead_alpha: float = 0.0, bias: str = "probes", seed: int = 0, enabled: bool = True,
                 modules: nn.Module | Iterable[nn.Module] | None = None) -> None:
        check_settings(explore_every=explore_every, n_dirs=n_dirs, hvp_iters=hvp_iters, seed=seed, sigma=sigma,
                        sigma_max=sigma_max, sigma_growth=sigma_growth, beta=beta, margin=margin, tau_g=tau_g,
                        tau_c=tau_c, temperature=temperature, lookahead_alpha=lookahead_alpha, bias=bias)
        self.explore_every, self.n_dirs, self.hvp_iters, self.seed = int(explore_every), int(n_dirs), \
            int(hvp_iters), int(seed)
        self.sigma, self.beta, self.margin = float(sigma), float(beta), float(margin)
        self.temperature = None if temperature is None else float(temperature)
        self.tau_g, self.tau_c = float(tau_g), float(tau_c)
        self.sigma_growth, self.sigma_max = float(sigma_growth), float(sigma_max)
        self.filter_norm, self.ignore_1d = bool(filter_norm), bool(ignore_1d)
        self.lookahead_alpha, self.bias, self.enabled = float(lookahead_alpha), str(bias), bool(enabled)
        self.modules = modules
        self.last_probe: ProbeResult | None = None
        super().__init__(base_optimizer)

    def _fresh_state(self) -> dict:
        return {"step": 0, "events": 0, "sigma": self.sigma, "grad_norm_ema": None,
                "forward_passes": 0, "backward_passes": 0, "hvps": 0, "probe_forwards": 0, "jumps": 0,
                "mode_counts": {m: 0 for m in MODES}, "last_mode": None, "lanczos_v0": None}

    def __repr__(self) -> str:
        return (f"GuidedExploration(base={type(self.base_optimizer).__name__}, explore_every={self.explore_every}, "
                f"n_dirs={self.n_dirs}, sigma={self.sigma}, beta={self.beta}, bias={self.bias!r}, "
                f"enabled={self.enabled})")

    @property
    def work(self) -> Work:
        """Forward passes, backward passes and HVPs made through the wrapper."""
        s = self.own_state
        return Work(int(s["forward_passes"]), int(s["backward_passes"]), int(s["hvps"]))

    @property
    def counts(self) -> GuidedCounts:
        """Cumulative counters and the current σ and ḡ (floats)."""
        s = self.own_state
        return GuidedCounts(steps=int(s["step"]), events=int(s["events"]), work=self.work,
                            probe_forwards=int(s["probe_forwards"]), jumps=int(s["jumps"]),
                            mode_counts=dict(s["mode_counts"]), sigma=float(s["sigma"]),
                            grad_norm_ema=math.nan if s["grad_norm_ema"] is None else float(s["grad_norm_ema"]),
                            last_mode=s["last_mode"])

    # ------------------------------------------------------------------ seeds and directions
    def event_seeds(self, event: int) -> tuple[int, int]:
        """(dropout seed, direction seed) of an event: ``numpy.random.SeedSequence((seed, event))``."""
        a, b = np.random.SeedSequence((self.seed, int(event))).generate_state(2, dtype=np.uint64)
        return int(a) % (2**63 - 1), int(b) % (2**63 - 1)

    def random_bias_seed(self, event: int) -> int:
        """Seed of an event's ``bias="random"`` direction (independent of the probes' seeds)."""
        (a,) = np.random.SeedSequence((self.seed, int(event), 1)).generate_state(1, dtype=np.uint64)
        return int(a) % (2**63 - 1)

    def directions(self, theta: Tensor, seeds: list[int]) -> Tensor:
        """The (n, P) directions drawn from ``seeds`` at the flat point ``theta`` (module docstring, 1)."""
        return draw_directions(self._spec(), theta, seeds, filter_norm=self.filter_norm, ignore_1d=self.ignore_1d)

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _spec(self) -> ParamSpec:
        return ParamSpec.from_tensors({str(i): p for i, p in enumerate(self._params())})

    # ------------------------------------------------------------------ the step
    def step(self, closure=None):
        """One step of the base optimizer on ∇_e; every ``explore_every`` steps an exploration event."""
        if not self.enabled:
            return self.base_optimizer.step(None if closure is None else self._counted(closure))
        closure = require_closure(closure, "GuidedExploration")
        st = self.own_state
        loss = self._call(closure, backward=True)  # g = ∇L(θ_t), 1 F/B
        params = self._params()
        if params:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            grad_norm = float(torch.nn.utils.get_total_norm(grads))  # ‖g‖ over all the tensors
            ema = st["grad_norm_ema"]
            st["grad_norm_ema"] = grad_norm if ema is None else ema + (1.0 - EMA_DECAY) * (grad_norm - ema)
            if st["step"] % self.explore_every == 0:
                self._explore(closure, params, grads, grad_norm)
            st["step"] += 1
        first = [True]

        def cached(backward: bool = True):  # the base's first call gets the loss with ∇_e in p.grad
            if first[0] and backward:
                first[0] = False
                return loss
            first[0] = False
            return self._call(closure, backward=backward)

        self.base_optimizer.step(cached)
        return loss

    def _counted(self, closure):
        def counted(backward: bool = True):
            return self._call(closure, backward=backward)

        return counted

    def _call(self, closure: Callable, *, backward: bool) -> Tensor:
        loss, did_backward = evaluate_closure(closure, backward=backward)
        self.own_state["forward_passes"] += 1
        self.own_state["backward_passes"] += int(did_backward)
        return loss

    def _explore(self, closure, params: list[Tensor], grads: list[Tensor], grad_norm: float) -> None:
        st = self.own_state
        theta0 = torch.cat([p.detach().reshape(-1) for p in params])
        saved = [g.detach().clone() for g in grads]  # the probes' closure calls zero the gradients
        result, dirs = self._probe(closure, params, theta0)
        event = result.event
        v_min = None
        if self.hvp_iters > 0:
            lam_min, v_min, lam_max = self._lanczos(closure, params, theta0)
            result = replace(result, lanczos_min=lam_min, lanczos_max=lam_max)
            self.last_probe = result
        set_grads(params, saved)
        stationary = grad_norm < max(self.tau_g * st["grad_norm_ema"], GRAD_FLOOR)
        neg_lanczos = v_min is not None and result.lanczos_min < -self.tau_c * abs(result.lanczos_max)
        saddle = min(result.kappas) < -self.tau_c or neg_lanczos
        mode = "slope" if not stationary else ("saddle" if saddle else "minimum")
        st["mode_counts"][mode] += 1
        st["last_mode"] = mode
        # (loss, k) of the 2n probes, k = 2i for θ + σu_i and 2i + 1 for θ − σu_i: ties go to the first
        probes = [(v, k) for k, v in enumerate(x for pair in zip(result.loss_plus, result.loss_minus) for x in pair)]
        if mode == "saddle":
            moved = neg_lanczos and self._jump_along(closure, params, theta0, v_min, result, event)
            j = int(np.argmin(result.kappas))
            value, k = min(probes[2 * j:2 * j + 2])
            if not moved and value < result.loss0:
                self._jump(params, probe_point(theta0, dirs, k, result.sigma))
        elif mode == "minimum":
            value, k = min(probes)
            if value < result.loss0 - self.margin:
                self._jump(params, probe_point(theta0, dirs, k, result.sigma))
            else:
                st["sigma"] = min(result.sigma * self.sigma_growth, self.sigma_max)
        else:
            st["sigma"] = self.sigma
            improving = [(v, k) for v, k in probes if v < result.loss0 - self.margin]
            if improving and (self.beta > 0.0 or self.lookahead_alpha > 0.0):
                self._bias_gradient(closure, params, theta0, saved, grad_norm, result, dirs, improving, probes)

    def _bias_gradient(self, closure, params, theta0, saved, grad_norm, result, dirs, improving, probes) -> None:
        """SLOPE: ∇_e = g' − β‖g'‖ d/‖d‖, g' = g or GE-LA's (1 − α)g(θ) + αg(θ*), written into p.grad."""
        if self.bias == "random":  # noise-only ablation: d and the look-ahead point ignore the losses
            d = self.directions(theta0, [self.random_bias_seed(result.event)])[0]
            lookahead = theta0 + result.sigma * d
        else:
            temp = self.temperature if self.temperature is not None else float(np.std([v for v, _ in probes]))
            low = min(v for v, _ in improving)
            weights = [math.exp(-(v - low) / temp) if temp > 0 and math.isfinite(temp) else 1.0 for v, _ in improving]
            coef = torch.zeros(self.n_dirs, dtype=torch.float64)
            for w, (_, k) in zip(weights, improving):  # d = Σ_P w (±u_i)
                coef[k // 2] += (-w if k % 2 else w) / sum(weights)
            d = coef.to(dirs) @ dirs
            lookahead = probe_point(theta0, dirs, min(improving)[1], result.sigma)
        g_norm = grad_norm
        if self.lookahead_alpha > 0.0:
            with self._probe_context(params, result.event) as reseed:
                set_grads(params, [None] * len(params))  # a closure zeroing in place must not touch g
                try:
                    write_flat(params, lookahead)
                    reseed()
                    self._call(closure, backward=True)
                    g_star = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
                finally:
                    write_flat(params, theta0)
            saved = [g.lerp(gs, self.lookahead_alpha) for g, gs in zip(saved, g_star)]  # (1 − α)g(θ) + αg(θ*)
            g_norm = float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in saved]), dtype=torch.float64))
        d_norm = float(torch.linalg.vector_norm(d))
        if self.beta > 0.0 and d_norm > 0:
            scale = -self.beta * g_norm / d_norm
            saved = [g + scale * part.view_as(g) for g, part in zip(saved, torch.split(d, [g.numel() for g in saved]))]
        set_grads(params, saved)

    def _jump(self, params: list[Tensor], point: Tensor) -> None:
        write_flat(params, point)
        self.own_state["jumps"] += 1
        self.own_state["sigma"] = self.sigma

    def _jump_along(self, closure, params, theta0, v_min: Tensor, result: ProbeResult, event: int) -> bool:
        """SADDLE with Lanczos: move to the better of θ ± σ r v_min if it improves on L₀."""
        radius = result.sigma * float(np.mean(np.sqrt(result.direction_sq_norms)))
        candidates = []
        saved = [p.grad for p in params]
        with self._probe_context(params, event) as reseed:
            try:
                for sign in (1.0, -1.0):
                    write_flat(params, theta0 + sign * radius * v_min)
                    reseed()
                    candidates.append((float(self._call(closure, backward=False)), -sign))
            finally:
                write_flat(params, theta0)
                set_grads(params, saved)
        self.own_state["probe_forwards"] += 2
        value, sign = min(candidates)  # (loss, −sign): a tie goes to +
        sign = -sign
        if value < result.loss0:
            self._jump(params, theta0 + sign * radius * v_min)
            return True
        return False

    # ------------------------------------------------------------------ probing
    @contextlib.contextmanager
    def _probe_context(self, params: list[Tensor], event: int) -> Iterator[Callable[[], None]]:
        """Fork the RNG (the caller's generators restored), freeze BN statistics; yields ``reseed()``
        which seeds every generator with the event's dropout seed."""
        dropout_seed = self.event_seeds(event)[0]
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})

        def reseed() -> None:  # only the generators fork_rng restores
            torch.default_generator.manual_seed(dropout_seed)
            for index in devices:
                torch.cuda.default_generators[index].manual_seed(dropout_seed)

        with torch.random.fork_rng(devices=devices), freeze_bn_stats(self.modules), torch.no_grad():
            yield reseed

    def probe(self, closure: Callable, *, return_directions: bool = False) -> tuple[ProbeResult, Tensor | None]:
        """Map the vicinity of θ now (one event's probes, no step): 1 + 2n forward passes.
        The parameters are restored exactly; the event counter advances."""
        closure = require_closure(closure, "GuidedExploration")
        params = self._params()
        result, dirs = self._probe(closure, params, torch.cat([p.detach().reshape(-1) for p in params]))
        return result, (dirs if return_directions else None)

    def _probe(self, closure, params: list[Tensor], theta0: Tensor) -> tuple[ProbeResult, Tensor]:
        """The event's loss map at ``theta0`` and its (n, P) directions; advances the event counter."""
        st = self.own_state
        event, sigma = int(st["events"]), float(st["sigma"])
        dir_seed = self.event_seeds(event)[1]
        dirs = self.directions(theta0, [dir_seed + i for i in range(self.n_dirs)])
        sq_norms = torch.linalg.vector_norm(dirs, dim=1).square().double().cpu().tolist()
        span = closure_span(closure, theta0, dirs, params)
        if span is not None:  # all 1 + 2n points in one batched pass (the first-layer shortcut)
            values = span.losses(probe_coefficients(self.n_dirs, sigma)).tolist()
            st["forward_passes"] += len(values)
        else:
            values = []
            with self._probe_context(params, event) as reseed:
                try:
                    for k in range(-1, 2 * self.n_dirs):  # θ, then θ + σu_1, θ − σu_1, θ + σu_2, …
                        write_flat(params, theta0 if k < 0 else probe_point(theta0, dirs, k, sigma))
                        reseed()
                        values.append(float(self._call(closure, backward=False)))
                finally:
                    write_flat(params, theta0)
        st["probe_forwards"] += len(values)
        st["events"] += 1
        self.last_probe = loss_map(event, sigma, values, sq_norms)
        return self.last_probe, dirs

    def es_gradient(self, result: ProbeResult, theta: Tensor | None = None) -> Tensor:
        """ĝ_ES = (1/n) Σ_i slope_i u_i for a probe result taken at the current point (flat)."""
        if theta is None:
            theta = torch.cat([p.detach().reshape(-1) for p in self._params()])
        seed = self.event_seeds(result.event)[1]
        dirs = self.directions(theta, [seed + i for i in range(len(result.slopes))])
        return torch.tensor(result.slopes, dtype=dirs.dtype, device=dirs.device) @ dirs / len(result.slopes)

    def _lanczos(self, closure, params: list[Tensor], theta0: Tensor) -> tuple[float, Tensor, float]:
        """(λ_min, v_min, λ_max) of the minibatch Hessian by ``hvp_iters`` Lanczos steps."""
        if not accepts_backward(closure):
            raise UsageError("GuidedExploration: hvp_iters > 0 needs closure(backward=False) support")
        event = int(self.own_state["events"]) - 1
        with self._probe_context(params, event) as reseed, torch.enable_grad():
            reseed()
            loss = closure(backward=False)
            if not (isinstance(loss, Tensor) and loss.requires_grad):
                raise UsageError("GuidedExploration: hvp_iters > 0 needs closure(backward=False) to return the loss "
                                 "attached to the autograd graph when gradients are enabled")
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            hessian = MinibatchHessian(params, [g if g is not None else torch.zeros_like(p)
                                                 for g, p in zip(grads, params)], self.own_state)
            self.own_state["forward_passes"] += 1
            self.own_state["backward_passes"] += 1
            v0 = self.own_state["lanczos_v0"]
            if not (isinstance(v0, Tensor) and v0.shape == theta0.shape):
                v0 = torch.randn(theta0.numel(), generator=torch.Generator().manual_seed(self.event_seeds(event)[0]))
            tri = lanczos_tridiagonal(hessian, v0.to(theta0), self.hvp_iters)
        evals, evecs = torch.linalg.eigh(tri.matrix())
        v_min = tri.basis.T @ evecs[:, 0].to(tri.basis)
        self.own_state["lanczos_v0"] = v_min.detach().clone()
        return float(evals[0]), v_min / v_min.norm().clamp_min(1e-30), float(evals[-1])


