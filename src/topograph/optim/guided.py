r"""Guided Exploration (GE): a landscape-probing add-on around any ``torch.optim`` optimizer.

Source: A. Pare, *Improving Gradient Descent Optimization through Guided Exploration of Loss
Landscape* (seed 000), Algorithm 1: sample the vicinity of θ, identify critical points from
finite differences or Hessian information, and step with an "effective gradient" ∇_e biased
toward promising regions.  The paper gives no more than that; this module implements the
concrete instantiation of ``algorithms.md`` §2.3–2.6.

Every ``explore_every`` = k steps (an *exploration event*), on the SAME minibatch as the step:

1. **Probe directions.**  n = ``n_dirs`` directions u_i; u_i is a float32 Gaussian draw of P
   numbers (P = number of parameters) from a CPU generator seeded with s + i, s the event's
   direction seed (so the same on every device and reproducible from (``seed``, event)).
   ``filter_norm=True``: filter-normalised against θ exactly as
   :func:`topograph.core.random_direction` does with that seed (Li et al. 2018; one definition
   of "filter" for the package; 1-D tensors zeroed when ``ignore_1d``), so σ is relative to the
   weights; the n draws are normalised together, one reduction per tensor for all n (tested
   against the core function).  ``filter_norm=False``: u_i scaled onto the sphere of radius
   √P, so σ is absolute, every probe lies exactly at distance σ√P and E[u uᵀ] = I (see the
   departures below).
2. **Loss map.**  L₀ = L(θ) and L_i^± = L(θ ± σu_i): 1 + 2n forward passes without backward
   (``closure(backward=False)`` under ``torch.no_grad()``), all under one random seed per event
   (``torch.random.fork_rng``: the same dropout masks, the caller's RNG untouched), BatchNorm
   running statistics frozen (pass ``modules=model``).  θ is restored EXACTLY afterwards from
   a copy (``copy_``, no floating-point add/subtract).
3. **Finite differences** (exact on quadratics):
   slope_i = (L_i^+ − L_i^−)/(2σ) ≈ gᵀu_i,  curv_i = (L_i^+ − 2L₀ + L_i^−)/σ² ≈ u_iᵀHu_i,
   κ_i = curv_i/‖u_i‖².  The Gaussian-smoothing (ES) gradient ĝ_ES = (1/n) Σ slope_i u_i is
   available from :meth:`GuidedExploration.es_gradient` (diagnostic; not used by the update).
4. **Optional Hessian information** (``hvp_iters`` = m > 0): m Lanczos steps on the minibatch
   Hessian at θ (double backprop, one graph build + m Hessian-vector products, warm-started
   from the previous event's v_min) give λ_min, v_min, λ_max (:mod:`topograph.curvature.lanczos`).
5. **Classification**, with ḡ the EMA (decay 0.9) of ‖g‖ over the steps so far:
   stationary ⇔ ‖g‖ < max(τ_g ḡ, 1e-8);
   SADDLE ⇔ stationary and (min_i κ_i < −τ_c or λ_min < −τ_c|λ_max|);
   MINIMUM ⇔ stationary and not SADDLE;  SLOPE otherwise.
6. **Action.**  Let P = {(i, ±): L_i^± < L₀ − margin} (improving probes).
   * SLOPE: if P ≠ ∅, d = Σ_P w (±u_i), w ∝ exp(−(L_i^± − L₀)/T) (softmin, T = ``temperature``
     or the std of the 2n probe losses), ∇_e = g − β‖g‖ d/‖d‖; else ∇_e = g.
     **Random-bias ablation** (``bias="random"``, control (b) of ``algorithms.md`` §2.7: "GE
     with β > 0 but random d"): d is instead a fresh random direction r of the same kind as
     the probes (filter-normalised, or uniform on the sphere), drawn from (``seed``, event)
     and independent of the probe losses.  Everything else is unchanged — the same probes
     (same cost), the same classification, the bias applied at the same events (P ≠ ∅) with
     the same size β‖g‖ — so the comparison with ``bias="probes"`` isolates what the probe
     *information* contributes beyond noise of the same size.  With GE-LA the look-ahead
     point is θ + σr instead of the best probe.  The saddle/minimum jumps still use the
     probes (the ablation targets the slope bias, through which GE mostly acts on networks).
   * SADDLE: jump to the better of θ ± σu_j, j = argmin κ_j (exact tie: +); with Lanczos
     information, to the better of θ ± σ r v_min (r = the mean ‖u_i‖, i.e. the same
     filter-relative size) when that one improves on L₀ (2 more forward passes); ∇_e = g.
   * MINIMUM: if the best probe improves on L₀ by more than ``margin``, jump to it; otherwise
     widen the search radius σ ← min(σ·``sigma_growth``, ``sigma_max``) for the next event.
   * σ returns to its initial value after a jump and at SLOPE events.
   * GE-LA (``lookahead_alpha`` = α > 0, SLOPE with P ≠ ∅): one extra gradient at the best
     probe θ*, g ← (1 − α)g(θ) + αg(θ*) before the bias (the "gradient at θ + Δθ" of
     Algorithm 1 line 5; unlike SAM it looks at the *best* nearby point).
   ∇_e is written into ``p.grad`` and the base optimizer steps.  Between events the step is
   the base optimizer's own.

Cost per step (F = forward pass, F/B = forward+backward on one minibatch): the base
optimizer's cost (1 F/B for SGD/Adam) plus, per event, (1 + 2n) F [+ 1 F/B + m HVPs (≈ 2 F/B
each) + 2 F if ``hvp_iters``] [+ 1 F/B if GE-LA]; at the defaults (n = 4, k = 10)
0.9 F per step ≈ 0.3 F/B, i.e. ≈ 1.3× SGD.  Memory: at events only, one parameter copy (θ),
one gradient copy, two flat temporaries and the n directions while n·P ≤ 2²⁴ (above that
they are regenerated from their seeds instead of stored).  Overhead outside the forward passes
is kept to the random draws (≈ 4 ns per number on one CPU core, n·P numbers per event), one
normalisation pass, and two fused copies per probe (θ ± σu_i into the parameters, θ back).  Counts are kept in the state
(:attr:`GuidedExploration.counts`) for equal-compute comparisons.

The base optimizer sees ∇_e through the closure it is given: its first evaluation returns the
loss already computed with ∇_e in ``p.grad``; further evaluations (Rolling Ball's inner
steps, quasi-Newton's line search) run the real closure.  So GE wraps SGD, Adam, RollingBall,
QuasiNewton or torch's LBFGS alike.  The wrapper shares the base's ``param_groups`` (an LR
scheduler attached to it acts on the base) and its ``state``; ``state_dict()`` holds both the
base's state dict and GE's own (σ, ḡ, step and event counters, Lanczos warm start); the probe
directions and dropout seeds are derived from (``seed``, event number), so a resumed run
continues identically.  With ``enabled=False``, or β = 0 with no jumps, every parameter is
bit-for-bit the base optimizer's (tested against SGD and Adam).

Departures from ``algorithms.md`` §2.3, and why:

* ``filter_norm=False`` draws directions uniformly on the sphere of radius √P instead of raw
  Gaussians: the probe radius is then exactly σ√P (the §2.8 double-well test needs a hard
  radius — a Gaussian |u| > 1.5 would teleport with σ = 1), and E[uuᵀ] = I keeps ĝ_ES
  unbiased on quadratics.
* σ returns to σ₀ at SLOPE events as well as after jumps (§2.3 resets only after a jump):
  the widening belongs to one stay in a minimum; a wide σ carried into slopes would bias the
  step toward far-away probes.
* A saddle jump along a Lanczos v_min is taken only if it improves on L₀ (the FD jump always
  improves: a negative κ_j means L_j^+ + L_j^− < 2L₀).
* ``stall_patience`` of the §2.4 sketch is not implemented: events happen every k steps only.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim import optimizer as _torch_optimizer

from topograph.core.params import ParamSpec
from topograph.errors import UsageError
from topograph.optim.rolling_ball import freeze_bn_stats
from topograph.optim.closure import accepts_backward, evaluate_closure, require_closure
from topograph.optim.span import closure_span

__all__ = ["GuidedExploration", "ProbeResult", "GuidedCounts", "MODES", "BIAS_KINDS"]

MODES = ("slope", "saddle", "minimum")
#: where the slope bias d comes from: the improving probes, or a random direction (ablation)
BIAS_KINDS = ("probes", "random")
#: decay of the exponential moving average ḡ of ‖g‖
EMA_DECAY = 0.9
#: absolute floor ε_g of the stationarity test (an exact critical point counts as stationary)
GRAD_FLOOR = 1e-8
#: keep an event's directions in memory (instead of regenerating them) up to n·P entries
KEEP_DIRECTIONS_MAX = 1 << 24
#: events whose seeds are derived together (:meth:`GuidedExploration._event_seeds`)
SEED_BLOCK = 16
#: gradient norms kept between events before they are folded into ḡ anyway
PENDING_NORMS_MAX = 64
#: the ε of filter normalisation, d_f ← d_f ‖θ_f‖/(‖d_f‖ + ε), the same as :mod:`topograph.core.directions`
FILTER_EPS = 1e-10


@dataclass(frozen=True)
class _Layout:
    """Where the parameter tensors lie in the flat vector; computed once per parameter layout.

    ``filters`` holds ``(start, stop, rows, cols)`` of every tensor with dim ≥ 2 (its filters are
    the ``rows`` slices along dim 0, ``cols`` entries each); ``vectors`` ``(start, stop)`` of the
    1-D (and 0-D) tensors.
    """

    shapes: tuple[torch.Size, ...]
    spec: ParamSpec
    filters: tuple[tuple[int, int, int, int], ...]
    vectors: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, shapes: tuple[torch.Size, ...]) -> _Layout:
        spec = ParamSpec.from_tensors({str(i): torch.empty(s, device="meta") for i, s in enumerate(shapes)})
        filters, vectors = [], []
        for _, shape, sl in spec.items():
            if len(shape) <= 1:
                vectors.append((sl.start, sl.stop))
            elif sl.stop > sl.start:
                filters.append((sl.start, sl.stop, shape[0], (sl.stop - sl.start) // shape[0]))
        return cls(shapes, spec, tuple(filters), tuple(vectors))


@dataclass(frozen=True)
class ProbeResult:
    """The loss map of one exploration event (floats; directions are regenerated on demand).

    Attributes
    ----------
    event: the event number (0, 1, …); with the optimizer's ``seed`` it fixes the directions.
    sigma: the probe radius σ used.
    loss0: L(θ) re-evaluated under the event's random seed.
    loss_plus, loss_minus: L(θ + σu_i), L(θ − σu_i), one per direction.
    slopes: (L⁺ − L⁻)/(2σ) ≈ gᵀu_i.
    curvatures: (L⁺ − 2L₀ + L⁻)/σ² ≈ u_iᵀHu_i.
    direction_sq_norms: ‖u_i‖².
    kappas: curvatures/‖u_i‖² (Rayleigh quotients).
    lanczos_min, lanczos_max: extreme Ritz values of the minibatch Hessian (``hvp_iters`` > 0).
    """

    event: int
    sigma: float
    loss0: float
    loss_plus: tuple[float, ...]
    loss_minus: tuple[float, ...]
    slopes: tuple[float, ...]
    curvatures: tuple[float, ...]
    direction_sq_norms: tuple[float, ...]
    kappas: tuple[float, ...]
    lanczos_min: float | None = None
    lanczos_max: float | None = None


@dataclass(frozen=True)
class GuidedCounts:
    """Cumulative counters of a :class:`GuidedExploration` (for equal-compute comparisons).

    ``forward_evals``/``backward_evals`` count every closure call made through the wrapper
    (its own and the base optimizer's); ``probe_forwards`` the forward-only probe calls;
    ``hvps`` the Hessian-vector products; ``mode_counts`` the events per mode; ``jumps`` the
    parameter jumps taken.
    """

    steps: int
    events: int
    forward_evals: int
    backward_evals: int
    probe_forwards: int
    hvps: int
    jumps: int
    mode_counts: dict[str, int]
    sigma: float
    grad_norm_ema: float
    last_mode: str | None


class GuidedExploration(Optimizer):
    """Guided Exploration (seed 000, ``algorithms.md`` §2.3) around ``base_optimizer``.

    Args:
        base_optimizer: any ``torch.optim.Optimizer`` (SGD, Adam, RollingBall, QuasiNewton, …)
            built over the parameters to train; the wrapper shares its ``param_groups``.
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
        hvp_iters: m ≥ 0 Lanczos steps (HVPs) per event; needs a closure that returns the loss
            attached to the graph when called with ``backward=False`` and gradients enabled.
        lookahead_alpha: α ∈ [0, 1], the GE-LA look-ahead weight (0 = off).
        bias: ``"probes"`` (the method: d from the improving probes) or ``"random"`` (the
            noise-only ablation: d a random direction of the same kind, same probes and cost).
        seed: seed of the probe directions and of the probes' dropout masks.
        enabled: ``False`` makes the wrapper exactly its base optimizer.
        modules: the model (or modules) whose BatchNorm running statistics the probes must not
            change; not stored in the state dict.
        prefetch_directions: draw the next event's Gaussian directions on a background
            thread while the steps between events run (the same numbers either way).
            ``None`` (default): only where a CPU core is free for it — the parameters live on
            a GPU, or torch's intra-op threads leave a core unused; ``True``/``False``: always
            / never (draw in place at the event).

    ``step(closure)``: ``closure(backward=True)`` zeroes the gradients, computes the loss on
    the CURRENT minibatch (the same one for every call during one ``step``), runs backward
    only if asked and returns the loss.  Returns the loss at θ_t.

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

    def __init__(
        self,
        base_optimizer: Optimizer,
        *,
        explore_every: int = 10,
        n_dirs: int = 4,
        sigma: float = 0.02,
        beta: float = 0.3,
        margin: float = 0.0,
        temperature: float | None = None,
        tau_g: float = 0.1,
        tau_c: float = 0.0,
        sigma_growth: float = 2.0,
        sigma_max: float = 0.5,
        filter_norm: bool = True,
        ignore_1d: bool = True,
        hvp_iters: int = 0,
        lookahead_alpha: float = 0.0,
        bias: str = "probes",
        seed: int = 0,
        enabled: bool = True,
        modules: nn.Module | Iterable[nn.Module] | None = None,
        prefetch_directions: bool | None = None,
    ) -> None:
        if not isinstance(base_optimizer, Optimizer):
            raise UsageError(
                f"GuidedExploration: base_optimizer must be a torch.optim.Optimizer, got {type(base_optimizer).__name__}"
            )
        if isinstance(base_optimizer, GuidedExploration):
            raise UsageError("GuidedExploration: base_optimizer is already a GuidedExploration; wrap a plain optimizer")
        _check_int("explore_every", explore_every, 1)
        _check_int("n_dirs", n_dirs, 1)
        _check_int("hvp_iters", hvp_iters, 0)
        _check_int("seed", seed, 0)
        _check_number("sigma", sigma, positive=True)
        _check_number("sigma_max", sigma_max, positive=True)
        _check_number("sigma_growth", sigma_growth, positive=True)
        if sigma_growth < 1:
            raise UsageError(f"GuidedExploration: sigma_growth must be >= 1, got {sigma_growth!r}")
        for name, value in (("beta", beta), ("margin", margin), ("tau_g", tau_g), ("tau_c", tau_c)):
            _check_number(name, value)
        if temperature is not None:
            _check_number("temperature", temperature, positive=True)
        _check_number("lookahead_alpha", lookahead_alpha)
        if lookahead_alpha > 1:
            raise UsageError(f"GuidedExploration: lookahead_alpha must lie in [0, 1], got {lookahead_alpha!r}")
        if bias not in BIAS_KINDS:
            raise UsageError(f"GuidedExploration: bias must be one of {', '.join(map(repr, BIAS_KINDS))}, "
                             f"got {bias!r}")
        # torch.optim.Optimizer's own machinery (hooks, step patching); the groups are then
        # replaced by the base's so that schedulers, zero_grad and add_param_group act on it
        super().__init__([{"params": list(g["params"])} for g in base_optimizer.param_groups],
                         dict(base_optimizer.defaults))
        self.base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults
        self.state = base_optimizer.state
        self.explore_every = int(explore_every)
        self.n_dirs = int(n_dirs)
        self.sigma = float(sigma)
        self.beta = float(beta)
        self.margin = float(margin)
        self.temperature = None if temperature is None else float(temperature)
        self.tau_g = float(tau_g)
        self.tau_c = float(tau_c)
        self.sigma_growth = float(sigma_growth)
        self.sigma_max = float(sigma_max)
        self.filter_norm = bool(filter_norm)
        self.ignore_1d = bool(ignore_1d)
        self.hvp_iters = int(hvp_iters)
        self.lookahead_alpha = float(lookahead_alpha)
        self.bias = str(bias)
        self.seed = int(seed)
        self.enabled = bool(enabled)
        self.prefetch_directions = None if prefetch_directions is None else bool(prefetch_directions)
        self._modules = modules
        self.ge_state: dict = self._fresh_state()
        self.last_probe: ProbeResult | None = None

    # ------------------------------------------------------------------ torch.optim contract
    def add_param_group(self, param_group: dict) -> None:
        if "base_optimizer" in self.__dict__:
            self.base_optimizer.add_param_group(param_group)
        else:  # during Optimizer.__init__ only
            super().add_param_group(param_group)

    def state_dict(self) -> dict:
        """``{"base": base_optimizer.state_dict(), "guided": GE's own state}``."""
        self._fold_grad_norms()
        own = {k: (v.clone() if isinstance(v, Tensor) else (dict(v) if isinstance(v, dict) else v))
               for k, v in self.ge_state.items()}
        return {"base": self.base_optimizer.state_dict(), "guided": own}

    def load_state_dict(self, state_dict: dict) -> None:
        if not isinstance(state_dict, dict) or "base" not in state_dict or "guided" not in state_dict:
            raise UsageError("GuidedExploration.load_state_dict: expected a dict with keys 'base' and 'guided' "
                             "(from GuidedExploration.state_dict())")
        self.base_optimizer.load_state_dict(state_dict["base"])
        self.state = self.base_optimizer.state
        fresh = self._fresh_state()
        unknown = set(state_dict["guided"]) - set(fresh)
        if unknown:
            raise UsageError(f"GuidedExploration.load_state_dict: unknown key {sorted(unknown)[0]!r} in 'guided'")
        fresh.update({k: (v.clone() if isinstance(v, Tensor) else (dict(v) if isinstance(v, dict) else v))
                      for k, v in state_dict["guided"].items()})
        self.ge_state = fresh
        self._pending_norms = []

    def __repr__(self) -> str:
        return (f"GuidedExploration(base={type(self.base_optimizer).__name__}, explore_every={self.explore_every}, "
                f"n_dirs={self.n_dirs}, sigma={self.sigma}, beta={self.beta}, bias={self.bias!r}, "
                f"enabled={self.enabled})")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As :meth:`torch.optim.Optimizer.zero_grad`; ``set_to_none=True`` is a plain loop.

        Every probe's closure calls it, so it skips the base class's profiler bookkeeping
        (≈ 10–30 µs a call) when it only has to set the gradients to ``None``.
        """
        if not set_to_none:
            super().zero_grad(set_to_none=False)
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _fresh_state(self) -> dict:
        return {
            "step": 0, "events": 0, "sigma": self.sigma, "grad_norm_ema": None,
            "forward_evals": 0, "backward_evals": 0, "probe_forwards": 0, "hvps": 0, "jumps": 0,
            "mode_counts": {m: 0 for m in MODES}, "last_mode": None, "lanczos_v0": None,
        }

    @property
    def counts(self) -> GuidedCounts:
        """Cumulative counters and the current σ and ḡ (floats)."""
        self._fold_grad_norms()
        s = self.ge_state
        ema = s["grad_norm_ema"]
        return GuidedCounts(
            steps=int(s["step"]), events=int(s["events"]), forward_evals=int(s["forward_evals"]),
            backward_evals=int(s["backward_evals"]), probe_forwards=int(s["probe_forwards"]),
            hvps=int(s["hvps"]), jumps=int(s["jumps"]), mode_counts=dict(s["mode_counts"]),
            sigma=float(s["sigma"]), grad_norm_ema=math.nan if ema is None else float(ema),
            last_mode=s["last_mode"],
        )

    @property
    def evaluations(self) -> dict[str, int]:
        """Cumulative ``{"forward": closure calls, "backward": backward passes}``."""
        return {"forward": int(self.ge_state["forward_evals"]), "backward": int(self.ge_state["backward_evals"])}

    # ------------------------------------------------------------------ helpers
    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _layout(self, params: list[Tensor]) -> _Layout:
        """The flat layout of ``params``, cached while the parameter shapes stay the same."""
        shapes = tuple(p.shape for p in params)
        cached = self.__dict__.get("_layout_cache")
        if cached is None or cached.shapes != shapes:
            cached = self._layout_cache = _Layout.of(shapes)
        return cached

    def _spec(self, params: list[Tensor]) -> ParamSpec:
        return self._layout(params).spec

    def _accepts_backward(self, closure: Callable) -> bool:
        """:func:`accepts_backward`, cached per code object for plain functions.

        Training loops usually build a new closure every step from the same ``def``; its
        parameter names (all that :func:`accepts_backward` looks at) live in the code object
        (for a closure object, in its class's ``__call__``).  Wrapped or re-signed callables
        are inspected every time.
        """
        if hasattr(closure, "__wrapped__") or hasattr(closure, "__signature__"):
            return accepts_backward(closure)
        if type(closure) is types.FunctionType:
            key = closure.__code__
        elif type(closure).__call__ is not None and not isinstance(closure, types.MethodType) \
                and type(type(closure).__call__) is types.FunctionType:
            key = type(closure).__call__.__code__  # an object whose class defines __call__
        else:
            return accepts_backward(closure)
        cached = self.__dict__.get("_accepts_backward_cache")
        if cached is not None and cached[0] is key:
            return cached[1]
        ok = accepts_backward(closure)
        self._accepts_backward_cache = (key, ok)
        return ok

    def _event_seeds(self, event: int) -> tuple[int, int]:
        """(dropout seed, direction seed) of an event, from (seed, event) alone.

        Derived by ``numpy.random.SeedSequence((seed, event))``; the seeds of the next
        ``SEED_BLOCK`` events are derived together (the same values): one call costs ≈ 7 µs in
        a loop but ≈ 130 µs right after the training step's kernels have left numpy's code
        cold, so one cold call per block instead of one per event.
        """
        event = int(event)
        cache = self.__dict__.get("_event_seeds_cache")
        if cache is None or cache[0] != self.seed or event not in cache[1]:
            seeds = {}
            for e in range(event, event + SEED_BLOCK):
                a, b = np.random.SeedSequence((self.seed, e)).generate_state(2, dtype=np.uint64)
                seeds[e] = (int(a) % (2**63 - 1), int(b) % (2**63 - 1))
            cache = self._event_seeds_cache = (self.seed, seeds)
        return cache[1][event]

    def _random_bias_seed(self, event: int) -> int:
        """Seed of the ``bias="random"`` direction of an event (independent of the probes' seeds)."""
        (a,) = np.random.SeedSequence((self.seed, int(event), 1)).generate_state(1, dtype=np.uint64)
        return int(a) % (2**63 - 1)

    def direction(self, spec: ParamSpec, theta: Tensor, seed: int) -> Tensor:
        """The flat probe direction drawn from ``seed`` at the flat point ``theta``."""
        layout = self.__dict__.get("_layout_cache")
        if layout is None or layout.spec.shapes != spec.shapes:
            layout = _Layout.of(spec.shapes)
        return self._directions(layout, theta, [seed])[0]

    def _directions(self, layout: _Layout, theta: Tensor, seeds: list[int]) -> Tensor:
        """The probe directions of ``seeds`` at the flat point ``theta``, as an (n, P) tensor.

        Row i is a float32 Gaussian draw of P numbers from a CPU generator seeded with
        ``seeds[i]`` (so the same seed gives the same direction on every device), moved to
        θ's device and dtype, then, with ``filter_norm``, filter-normalised exactly as
        :func:`topograph.core.random_direction` does (d_f ← d_f ‖θ_f‖/(‖d_f‖ + 1e-10) per
        filter, 1-D tensors zeroed or set to θ): the same numbers, but one normalisation for
        all n rows per tensor instead of one per direction and tensor.  Without
        ``filter_norm`` each row is scaled to norm √P.
        """
        n, size = len(seeds), layout.spec.size
        u = self._gaussians(size, seeds).to(device=theta.device, dtype=theta.dtype)
        if not self.filter_norm:
            return u.mul_(math.sqrt(size) / torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-30))
        for start, stop, rows, cols in layout.filters:
            d = u[:, start:stop].view(n, rows, cols)
            w_norm = torch.linalg.vector_norm(theta[start:stop].view(rows, cols), dim=1, keepdim=True)
            d.mul_(w_norm / (torch.linalg.vector_norm(d, dim=2, keepdim=True) + FILTER_EPS))
        for start, stop in layout.vectors:
            if self.ignore_1d:
                u[:, start:stop] = 0.0
            else:
                u[:, start:stop] = theta[start:stop]
        return u

    def _gaussians(self, size: int, seeds: list[int]) -> Tensor:
        """The raw (n, P) float32 draws of ``seeds``: the prefetched ones when they match."""
        pending = self.__dict__.get("_pending_draw")
        if pending is not None and pending[0] == (size, tuple(seeds)):
            self._pending_draw = None
            return pending[1].result()
        return _draw_gaussians(size, seeds)

    def _prefetching(self, theta: Tensor) -> bool:
        """Whether the next event's draws go to the background thread (``prefetch_directions``).

        ``None`` decides by where a core is free: with the parameters on a GPU the CPU waits for
        it anyway; on the CPU only when torch's intra-op threads leave a core unused.  On a
        machine whose cores torch keeps busy the thread competes with the training steps
        (their OpenMP threads spin between parallel regions) and slowed them by more than it
        saved: GE(SGD) on the benchmark MLP, batch 128, 2 cores, 2 threads, measured 1.55, 1.59,
        1.54× SGD with the thread and 1.49, 1.50, 1.50× without, in the same processes.
        """
        if self.prefetch_directions is not None:
            return self.prefetch_directions
        if theta.device.type != "cpu":
            return True
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not on Linux
            cores = os.cpu_count() or 1
        return torch.get_num_threads() < cores

    def _prefetch(self, size: int, seeds: list[int]) -> None:
        """Start drawing the next event's raw directions on a background thread.

        The draws depend only on their seeds, so the numbers are the same as drawn in place;
        the Gaussian generator (≈ 4 ns a number, n·P numbers an event) then runs beside the
        steps between events instead of on the training thread — a gain where a core is idle
        (GPU training, more cores than torch's threads).  Where torch keeps every core busy it
        loses (:meth:`_prefetching`; at the lowest thread priority it was starved and the
        events got slower, so it runs at normal priority).
        """
        pool = self.__dict__.get("_draw_pool")
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = self._draw_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ge-directions")
        self._pending_draw = ((size, tuple(seeds)), pool.submit(_draw_gaussians, size, list(seeds)))

    def wait_background(self) -> None:
        """Block until the background work — the next event's direction draws — is done.

        Training never needs this; a timing loop that interleaves several optimizers calls it
        at the end of each timed block, so that the draws are charged to this optimizer and do
        not run on during the others' blocks.
        """
        pending = self.__dict__.get("_pending_draw")
        if pending is not None:
            pending[1].result()

    def _count(self, did_backward: bool) -> None:
        self.ge_state["forward_evals"] += 1
        self.ge_state["backward_evals"] += int(did_backward)

    def _call(self, closure: Callable, *, backward: bool, fwd_ok: bool) -> Tensor:
        loss, did_backward = evaluate_closure(closure, backward=backward, forward_only_ok=fwd_ok)
        self._count(did_backward)
        return loss

    @contextlib.contextmanager
    def _probe_context(self, params: list[Tensor], dropout_seed: int) -> Iterator[Callable[[], None]]:
        """Fork the RNG (caller's generators restored), freeze BN statistics; yields ``reseed()``."""
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})

        def reseed() -> None:
            torch.default_generator.manual_seed(dropout_seed)
            for index in devices:
                torch.cuda.default_generators[index].manual_seed(dropout_seed)

        with torch.random.fork_rng(devices=devices), freeze_bn_stats(self._modules):
            yield reseed

    # ------------------------------------------------------------------ probing
    def probe(self, closure: Callable, *, return_directions: bool = False) -> tuple[ProbeResult, Tensor | None]:
        """Map the vicinity of θ now (one event's probes, no step): 1 + 2n forward passes.

        Returns the :class:`ProbeResult` and, if asked, the directions as an (n, P) tensor.
        The parameters are restored exactly; the event counter advances.
        """
        closure = require_closure(closure, "GuidedExploration")
        params = self._params()
        with torch.no_grad():
            theta0 = torch.cat([p.detach().reshape(-1) for p in params])
        result, dirs, _ = self._probe(closure, params, theta0, self._accepts_backward(closure), keep=return_directions)
        self.ge_state["events"] += 1
        return result, (dirs if return_directions else None)

    def es_gradient(self, result: ProbeResult, theta: Tensor | None = None) -> Tensor:
        """ĝ_ES = (1/n) Σ_i slope_i u_i for a probe result taken at the current point (flat).

        With E[uuᵀ] = I this is an unbiased estimate of the gradient of the Gaussian- (or
        sphere-) smoothed loss; on a quadratic, of the gradient itself.
        """
        params = self._params()
        spec = self._spec(params)
        if theta is None:
            theta = torch.cat([p.detach().reshape(-1) for p in params])
        _, dir_seed = self._event_seeds(result.event)
        out = torch.zeros_like(theta)
        for i, slope in enumerate(result.slopes):
            out += slope * self.direction(spec, theta, dir_seed + i)
        return out / len(result.slopes)

    def _probe(self, closure, params, theta0, fwd_ok, *, keep=False, grads=None):
        """The event's loss map at the flat point ``theta0``; returns (result, (n, P) directions or
        None, gradients): ``grads`` as given when the fast span took the probes (no closure call),
        else copies taken before the closure calls (which zero the gradients).

        The directions are drawn all at once while n·P ≤ ``KEEP_DIRECTIONS_MAX`` (or when
        ``keep`` asks for them), else one at a time from their seeds.
        """
        st = self.ge_state
        event = int(st["events"])
        sigma = float(st["sigma"])
        dropout_seed, dir_seed = self._event_seeds(event)
        layout = self._layout(params)
        seeds = [dir_seed + i for i in range(self.n_dirs)]
        batched = keep or self.n_dirs * theta0.numel() <= KEEP_DIRECTIONS_MAX
        dirs = self._directions(layout, theta0, seeds) if batched else None
        if batched and not keep and self._prefetching(theta0):  # drawn once this event's step is done
            self._prefetch_after_step = (layout.spec.size, event + 1)
        sq_norms: list[Tensor] = []
        span = closure_span(closure, theta0, dirs, params)
        if span is not None:  # all 1 + 2n points in one batched pass (first-layer trick)
            vals = span(_probe_coefficients(self.n_dirs, sigma)).tolist()
            st["forward_evals"] += len(vals)
        else:
            if grads is not None:
                grads = [g.detach().clone() for g in grads]
            values = self._probe_with_closure(closure, params, theta0, dirs, seeds, layout, sigma, dropout_seed,
                                              fwd_ok, sq_norms)
            vals = torch.stack([v.reshape(()) for v in values]).to(torch.float64).cpu().tolist()
        st["probe_forwards"] += 1 + 2 * self.n_dirs
        norms_t = torch.linalg.vector_norm(dirs, dim=1).square() if dirs is not None else torch.stack(sq_norms)
        norms = norms_t.to(torch.float64).cpu().tolist()
        if any(n == 0.0 for n in norms):
            raise UsageError(
                "GuidedExploration: a probe direction is zero (with filter_norm=True and ignore_1d=True every "
                "1-D parameter tensor is left out); use filter_norm=False or ignore_1d=False"
            )
        l0, lp, lm = vals[0], vals[1::2], vals[2::2]
        slopes = [(a - b) / (2.0 * sigma) for a, b in zip(lp, lm)]
        curvs = [(a - 2.0 * l0 + b) / sigma**2 for a, b in zip(lp, lm)]
        kappas = [c / n for c, n in zip(curvs, norms)]
        result = ProbeResult(event, sigma, l0, tuple(lp), tuple(lm), tuple(slopes), tuple(curvs), tuple(norms),
                             tuple(kappas))
        self.last_probe = result
        return result, dirs, grads

    def _probe_with_closure(self, closure, params, theta0, dirs, seeds, layout, sigma, dropout_seed, fwd_ok,
                            sq_norms):
        """The 1 + 2n probe losses through the closure: each point written into the parameters
        (fixed views, one fused copy), the same dropout seed for every call, θ restored exactly."""
        numels = layout.spec.numels
        point = torch.empty_like(theta0)  # θ0 ± σu_i, written into the parameters through fixed views
        point_parts, theta_parts = _param_views(point, params, numels), _param_views(theta0, params, numels)
        values: list[Tensor] = []
        try:
            with torch.no_grad(), self._probe_context(params, dropout_seed) as reseed:
                reseed()
                values.append(self._call(closure, backward=False, fwd_ok=fwd_ok))
                for i in range(self.n_dirs):
                    u = dirs[i] if dirs is not None else self._directions(layout, theta0, seeds[i:i + 1])[0]
                    if dirs is None:
                        sq_norms.append(torch.linalg.vector_norm(u).square())
                    for sign in (1.0, -1.0):
                        _shifted(theta0, u, sign * sigma, out=point)
                        torch._foreach_copy_(params, point_parts)
                        reseed()
                        values.append(self._call(closure, backward=False, fwd_ok=fwd_ok))
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, theta_parts)  # exact restore
        return values

    def _lanczos(self, closure, params, theta0, fwd_ok, dropout_seed):
        """(λ_min, v_min, λ_max) of the minibatch Hessian by ``hvp_iters`` Lanczos steps."""
        from topograph.curvature.lanczos import lanczos_tridiagonal  # lazy: optional feature

        if not fwd_ok:
            raise UsageError("GuidedExploration: hvp_iters > 0 needs closure(backward=False) support")
        with self._probe_context(params, dropout_seed) as reseed, torch.enable_grad():
            reseed()
            loss = closure(backward=False)
            self._count(False)
            if not (isinstance(loss, Tensor) and loss.requires_grad):
                raise UsageError(
                    "GuidedExploration: hvp_iters > 0 needs closure(backward=False) to return the loss attached to "
                    "the autograd graph when gradients are enabled"
                )
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]
            self.ge_state["backward_evals"] += 1
            numels = [p.numel() for p in params]
            ge = self

            class _Hessian:
                size = theta0.numel()
                dtype = theta0.dtype
                device = theta0.device

                def matvec(self, v: Tensor) -> Tensor:
                    parts = [c.view_as(p) for c, p in zip(torch.split(v, numels), params)]
                    hv = torch.autograd.grad(grads, params, grad_outputs=parts, retain_graph=True, allow_unused=True)
                    ge.ge_state["hvps"] += 1
                    return torch.cat([(h if h is not None else torch.zeros_like(p)).reshape(-1)
                                      for h, p in zip(hv, params)]).detach()

            v0 = self.ge_state["lanczos_v0"]
            if not (isinstance(v0, Tensor) and v0.shape == theta0.shape):
                gen = torch.Generator().manual_seed(dropout_seed)
                v0 = torch.randn(theta0.numel(), generator=gen, dtype=torch.float32)
            v0 = v0.to(theta0)
            tri = lanczos_tridiagonal(_Hessian(), v0, self.hvp_iters)
        evals, evecs = torch.linalg.eigh(tri.matrix())
        v_min = tri.basis.T @ evecs[:, 0].to(tri.basis)
        self.ge_state["lanczos_v0"] = v_min.detach().clone()
        return float(evals[0]), v_min / v_min.norm().clamp_min(1e-30), float(evals[-1])

    # ------------------------------------------------------------------ the step
    def step(self, closure=None):
        """One step of the base optimizer on ∇_e; every ``explore_every`` steps an exploration event.

        Step hooks (``register_step_pre_hook``/``post_hook``, global ones) and the profiler's
        record of the step run as for any ``torch.optim`` optimizer, but only when a hook is
        registered or the profiler is on: the base class's wrapper costs ≈ 20 µs a call, which
        on a small model is several percent of a step (the base optimizer's own step keeps it).
        """
        if _hooks_or_profiler(self):
            return self._hooked_step(closure)
        return self._step(closure)

    step.hooked = True  # torch.optim.Optimizer must not wrap it again

    def _step(self, closure=None):
        if not self.enabled:
            if closure is None:
                return self.base_optimizer.step()
            return self.base_optimizer.step(self._counting(closure, self._accepts_backward(closure)))
        closure = require_closure(closure, "GuidedExploration")
        fwd_ok = self._accepts_backward(closure)
        st = self.ge_state
        loss = self._call(closure, backward=True, fwd_ok=fwd_ok)  # g = ∇L(θ_t), 1 F/B
        params = self._params()
        if not params:
            return loss
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        # ‖g‖ per tensor now (no host sync); ‖g‖ and the EMA ḡ are folded in at the next event
        pending = self.__dict__.setdefault("_pending_norms", [])
        pending.append(torch._foreach_norm(grads))
        is_event = st["step"] % self.explore_every == 0
        if len(pending) >= PENDING_NORMS_MAX and not is_event:  # long intervals: bounded memory
            self._fold_grad_norms()
        st["step"] += 1
        if is_event:
            grad_norm = self._fold_grad_norms()
            self._explore(closure, params, grads, grad_norm, float(st["grad_norm_ema"]), fwd_ok, loss)
        self.base_optimizer.step(self._cached(closure, fwd_ok, loss))
        following = self.__dict__.get("_prefetch_after_step")
        if following is not None:  # the next event's draws run beside the steps up to it, not beside the probes
            self._prefetch_after_step = None
            next_seed = self._event_seeds(following[1])[1]
            self._prefetch(following[0], [next_seed + i for i in range(self.n_dirs)])
        return loss

    _hooked_step = Optimizer.profile_hook_step(_step)  # the base class's hooks + profiler record

    def _fold_grad_norms(self) -> float:
        """Fold the steps' pending gradient norms into ḡ ← ḡ + (1 − decay)(‖g‖ − ḡ); return the last ‖g‖.

        The per-tensor norms of every step are kept as tensors and reduced here, once per event
        (or when the state is read), instead of three reductions and a host sync every step.
        """
        pending = self.__dict__.get("_pending_norms") or []
        if not pending:
            return math.nan
        self._pending_norms = []
        per_step = torch.linalg.vector_norm(torch.stack([t for n in pending for t in n]).view(len(pending), -1),
                                            dim=1, dtype=torch.float64).cpu().tolist()
        ema = self.ge_state["grad_norm_ema"]
        value = None if ema is None else float(ema)
        for g in per_step:
            value = g if value is None else value + (1.0 - EMA_DECAY) * (g - value)
        self.ge_state["grad_norm_ema"] = value
        return per_step[-1]

    def _counting(self, closure, fwd_ok):
        def counted(backward: bool = True):
            if fwd_ok:
                out = closure(backward=backward)
            else:
                out = closure()
                backward = True
            self._count(backward)
            return out

        return counted

    def _cached(self, closure, fwd_ok, loss):
        """A closure whose first backward call returns ``loss`` (∇_e already in p.grad)."""
        first = [True]
        counted = self._counting(closure, fwd_ok)

        def cached(backward: bool = True):
            if first[0] and backward:
                first[0] = False
                return loss
            first[0] = False
            return counted(backward=backward)

        return cached

    def _explore(self, closure, params, grads, grad_norm, ema, fwd_ok, loss) -> None:  # noqa: C901
        st = self.ge_state
        with torch.no_grad():
            theta0 = torch.cat([p.detach().reshape(-1) for p in params])
        event = int(st["events"])
        dropout_seed, dir_seed = self._event_seeds(event)
        # ``saved``: g, copied first wherever the closure is called (it may zero gradients in place)
        result, kept, saved = self._probe(closure, params, theta0, fwd_ok, grads=grads)
        st["events"] += 1
        lam_min = lam_max = v_min = None
        if self.hvp_iters > 0:
            if saved is grads:
                saved = [g.detach().clone() for g in grads]
            lam_min, v_min, lam_max = self._lanczos(closure, params, theta0, fwd_ok, dropout_seed)
            result = ProbeResult(**{**result.__dict__, "lanczos_min": lam_min, "lanczos_max": lam_max})
            self.last_probe = result
        with torch.no_grad():
            for p, g in zip(params, saved):  # the probes' closure calls zeroed the gradients
                p.grad = g
        layout = self._layout(params)
        spec, numels = layout.spec, layout.spec.numels

        def direction(i: int) -> Tensor:  # kept, or regenerated from its seed
            return kept[i] if kept is not None else self._directions(layout, theta0, [dir_seed + i])[0]

        sigma = result.sigma
        l0 = result.loss0
        probe_losses = [v for pair in zip(result.loss_plus, result.loss_minus) for v in pair]  # (i,+), (i,−)
        stationary = grad_norm < max(self.tau_g * ema, GRAD_FLOOR)
        neg_fd = min(result.kappas) < -self.tau_c
        neg_lanczos = lam_min is not None and lam_min < -self.tau_c * abs(lam_max)
        mode = "slope" if not stationary else ("saddle" if (neg_fd or neg_lanczos) else "minimum")
        st["mode_counts"][mode] += 1
        st["last_mode"] = mode

        def jump_to_probe(k: int) -> None:
            i, sign = divmod(k, 2)
            with torch.no_grad():
                _write_flat(params, _shifted(theta0, direction(i), (-1.0 if sign else 1.0) * sigma), numels)
            st["jumps"] += 1
            st["sigma"] = self.sigma

        if mode == "saddle":
            jumped = False
            if neg_lanczos:
                radius = sigma * float(np.mean(np.sqrt(result.direction_sq_norms)))
                cands = []
                with torch.no_grad(), self._probe_context(params, dropout_seed) as reseed:
                    try:
                        for sign in (1.0, -1.0):
                            _write_flat(params, _shifted(theta0, v_min, sign * radius), numels)
                            reseed()
                            cands.append(float(self._call(closure, backward=False, fwd_ok=fwd_ok)))
                    finally:
                        _write_flat(params, theta0, numels)
                st["probe_forwards"] += 2
                with torch.no_grad():
                    for p, g in zip(params, saved):
                        p.grad = g
                best = 0 if cands[0] <= cands[1] else 1
                if cands[best] < l0:
                    with torch.no_grad():
                        _write_flat(params, _shifted(theta0, v_min, (1.0 if best == 0 else -1.0) * radius), numels)
                    st["jumps"] += 1
                    st["sigma"] = self.sigma
                    jumped = True
            if not jumped:
                j = int(np.argmin(result.kappas))
                jump_to_probe(2 * j if result.loss_plus[j] <= result.loss_minus[j] else 2 * j + 1)
            return
        if mode == "minimum":
            k = int(np.argmin(probe_losses))
            if probe_losses[k] < l0 - self.margin:
                jump_to_probe(k)
            else:
                st["sigma"] = min(sigma * self.sigma_growth, self.sigma_max)
            return
        # SLOPE: bias the gradient toward the improving probes (softmin-weighted)
        st["sigma"] = self.sigma
        improving = [k for k, v in enumerate(probe_losses) if v < l0 - self.margin]
        if not improving or (self.beta == 0.0 and self.lookahead_alpha == 0.0):
            return
        deltas = [probe_losses[k] - l0 for k in improving]
        if self.bias == "random":  # noise-only ablation: d (and the look-ahead point) ignore the probe losses
            d = self.direction(spec, theta0, self._random_bias_seed(event))
            lookahead_step = sigma * d
        else:
            temp = self.temperature if self.temperature is not None else _population_std(probe_losses)
            low = min(deltas)
            if temp > 0 and math.isfinite(temp):
                w = [math.exp(-(v - low) / temp) for v in deltas]
            else:
                w = [1.0] * len(deltas)
            total = sum(w)
            coef = [0.0] * self.n_dirs  # d = Σ_i coef_i u_i
            for k, wk in zip(improving, w):
                i, sign = divmod(k, 2)
                coef[i] += -wk / total if sign else wk / total
            if kept is not None:
                d = torch.as_tensor(coef, dtype=kept.dtype).to(kept.device) @ kept
            else:
                d = torch.zeros_like(theta0)
                for i, c in enumerate(coef):
                    if c != 0.0:
                        d.add_(direction(i), alpha=c)
            best_i, best_sign = divmod(improving[deltas.index(low)], 2)
            lookahead_step = ((-1.0 if best_sign else 1.0) * sigma) * direction(best_i) \
                if self.lookahead_alpha > 0.0 else None
        with torch.no_grad():  # ∇_e written in place into the saved gradients (already p.grad)
            if self.lookahead_alpha > 0.0:
                for p in params:  # a closure zeroing in place must not touch the saved gradients
                    p.grad = None
                try:
                    with self._probe_context(params, dropout_seed) as reseed:
                        _write_flat(params, theta0 + lookahead_step, numels)
                        reseed()
                        self._call(closure, backward=True, fwd_ok=fwd_ok)
                        g_star = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                finally:
                    _write_flat(params, theta0, numels)
                    for p, g in zip(params, saved):
                        p.grad = g
                torch._foreach_lerp_(saved, g_star, self.lookahead_alpha)  # (1 − α)g(θ) + αg(θ*)
                g_norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(saved)),
                                                        dtype=torch.float64))
            else:
                g_norm = grad_norm
            if self.beta > 0.0:
                d_norm = float(torch.linalg.vector_norm(d))
                if d_norm > 0:
                    torch._foreach_add_(saved, _param_views(d, params, numels),
                                        alpha=-self.beta * g_norm / d_norm)


def _hooks_or_profiler(opt: Optimizer) -> bool:
    """Whether a step hook is registered (on ``opt`` or globally) or the autograd profiler is on."""
    return bool(opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks
                or getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
                or getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
                or torch.autograd._profiler_enabled())



@functools.lru_cache(maxsize=8)
def _probe_coefficients(n: int, sigma: float) -> Tensor:
    """The (1 + 2n)×n span coefficients of an event's probe points: rows 0, +σe_1, −σe_1, +σe_2, …."""
    coef = torch.zeros(1 + 2 * n, n, dtype=torch.float64)
    index = torch.arange(n)
    coef[1 + 2 * index, index] = sigma
    coef[2 + 2 * index, index] = -sigma
    return coef


def _population_std(values: list[float]) -> float:
    """The standard deviation (ddof = 0, as ``np.std``) of a few floats, without numpy's call overhead."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _draw_gaussians(size: int, seeds: list[int]) -> Tensor:
    """(n, size) float32 standard normals, row i from a CPU generator seeded with ``seeds[i]``."""
    raw = torch.empty(len(seeds), size, dtype=torch.float32)
    gen = torch.Generator()
    for row, seed in zip(raw, seeds):
        row.normal_(generator=gen.manual_seed(int(seed)))
    return raw


def _shifted(theta: Tensor, direction: Tensor, step: float, *, out: Tensor | None = None) -> Tensor:
    """θ + step·u in one kernel; probes and jumps both use it, so a jump lands exactly on its probe."""
    return torch.add(theta, direction, alpha=step, out=out)


def _param_views(flat: Tensor, params: list[Tensor], numels: tuple[int, ...]) -> list[Tensor]:
    """Views of the flat vector shaped like the parameters (no copy)."""
    return [part.view_as(p) for part, p in zip(torch.split(flat, numels), params)]


def _write_flat(params: list[Tensor], flat: Tensor, numels: tuple[int, ...]) -> None:
    """Copy the flat vector into the parameters (exact for the same dtype), one fused copy."""
    torch._foreach_copy_(params, _param_views(flat, params, numels))


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"GuidedExploration: {name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    if not ok:
        raise UsageError(f"GuidedExploration: {name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
