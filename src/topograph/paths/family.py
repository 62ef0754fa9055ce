"""Paths between two parameter points, all written as ω(t) = C(t) · V.

Every path family in :mod:`topograph.paths` is *linear in its vectors*: the stack
``V = [ω¹; ω²; c_1; …; c_J]`` (two fixed endpoints and J trainable control vectors, each a
full flat parameter vector of length P) is combined with coefficients ``C(t)`` that depend on
t only:

=====================  ==============================================================  =========
family                 ω(t)                                                            source
=====================  ==============================================================  =========
:class:`StraightPath`  (1−t) ω¹ + t ω²                                                 —
:class:`FourierPath`   (1−t) ω¹ + t ω² + Σ_{n=1..N} b_n sin(nπt)                        [1] Eq. 3
:class:`BezierPath`    Σ_{j=0..J+1} binom(J+1, j) t^j (1−t)^{J+1−j} w_j, w_0=ω¹, w_{J+1}=ω²  [2]
:class:`PolylinePath`  piecewise linear through ω¹, c_1, …, c_J, ω² at knots 0<τ_1<…<1     [2], [3]
=====================  ==============================================================  =========

Endpoints never move: every family's coefficients satisfy C(0) = e_1 and C(1) = e_2 exactly
(sin(nπ·0) = sin(nπ·1) = 0; Bernstein and hat functions interpolate their end control points).

Writing paths this way makes a batch of K path points one ``(K × (J+2)) @ ((J+2) × P)`` product,
gives gradients to the control vectors by autograd (for the Fourier family this is exactly the
paper's Algorithm 2), and lets an evaluator precompute work that is linear in ω — e.g. the first
layer of an MLP — once per vector instead of once per point.

[1] Yu & Morozov, *Neural network optimization strategies and the topography of the loss
    landscape*, arXiv:2602.21276 (FourierPathFinder).
[2] Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, *Loss Surfaces, Mode Connectivity, and Fast
    Ensembling of DNNs*, NeurIPS 2018 (Bezier and PolyChain curves).
[3] Draxler, Veschgini, Salmhofer, Hamprecht, *Essentially No Barriers in Neural Network Energy
    Landscape*, ICML 2018 (AutoNEB: a polyline through pivots).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from topograph.errors import UsageError


def _as_t(t: Tensor | float | list, like: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1)


class LinearPath(nn.Module):
    """Base class: ω(t) = C(t) · [ω¹; ω²; control], endpoints fixed (buffers), control trainable.

    Subclasses implement :meth:`basis` returning C(t) of shape ``(K, 2 + J)``.
    """

    kind = "linear"

    def __init__(self, start: Tensor, end: Tensor, control: Tensor | None = None) -> None:
        super().__init__()
        start = torch.as_tensor(start).detach().reshape(-1)
        end = torch.as_tensor(end).detach().reshape(-1).to(start)
        if start.shape != end.shape:
            raise UsageError(
                f"the two endpoints have different sizes ({start.numel()} and {end.numel()}); "
                "both must be flat parameter vectors of the same model"
            )
        self.register_buffer("start", start.clone())
        self.register_buffer("end", end.clone())
        if control is None:
            control = start.new_zeros(0, start.numel())
        self.control = nn.Parameter(control.detach().clone().to(start))

    @property
    def size(self) -> int:
        """P, the number of parameters of the model the path lives in."""
        return self.start.numel()

    @property
    def vectors(self) -> Tensor:
        """V = [ω¹; ω²; control] of shape ``(2 + J, P)`` (differentiable in the control rows)."""
        return torch.cat([self.start[None], self.end[None], self.control], dim=0)

    def basis(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def points(self, t: Tensor | float | list) -> Tensor:
        """ω(t) for a vector of K values of t → ``(K, P)``."""
        t = _as_t(t, self.start)
        return self.basis(t) @ self.vectors

    def forward(self, t: Tensor) -> Tensor:
        return self.points(t)

    def length(self, points: int = 1001) -> float:
        """Euclidean length of the path, ∫‖ω'(t)‖dt, by a dense polyline."""
        with torch.no_grad():
            w = self.points(torch.linspace(0, 1, points, dtype=self.start.dtype, device=self.start.device))
            return float((w[1:] - w[:-1]).norm(dim=1).sum())


class StraightPath(LinearPath):
    """The straight segment ω(t) = (1−t) ω¹ + t ω²."""

    kind = "straight"

    def basis(self, t: Tensor) -> Tensor:
        return torch.stack([1 - t, t], dim=1)


class FourierPath(LinearPath):
    """FourierPathFinder's path (arXiv:2602.21276, Eq. 3, orientation as in the code):

        ω(t) = (1−t) ω¹ + t ω² + Σ_{n=1}^{N} b_n sin(nπt),   b_n ∈ R^P,

    with ``control`` = the N coefficient vectors b_n (zeros: the straight line).
    """

    kind = "fourier"

    def __init__(self, start: Tensor, end: Tensor, n_terms: int = 10, coefficients: Tensor | None = None) -> None:
        if int(n_terms) < 1:
            raise UsageError(f"n_terms must be a positive integer, got {n_terms}")
        start = torch.as_tensor(start).reshape(-1)
        if coefficients is None:
            coefficients = start.new_zeros(int(n_terms), start.numel())
        elif coefficients.shape != (int(n_terms), start.numel()):
            raise UsageError(
                f"coefficients have shape {tuple(coefficients.shape)}; expected ({n_terms}, {start.numel()})"
            )
        super().__init__(start, end, coefficients)
        self.n_terms = int(n_terms)

    @property
    def coefficients(self) -> Tensor:
        return self.control

    def basis(self, t: Tensor) -> Tensor:
        n = torch.arange(1, self.n_terms + 1, dtype=t.dtype, device=t.device)
        sines = torch.sin(math.pi * t[:, None] * n[None])
        # sin(nπ) is ~1e-16 in floating point: make the endpoints exact
        sines = torch.where(((t == 0) | (t == 1))[:, None], torch.zeros_like(sines), sines)
        return torch.cat([(1 - t)[:, None], t[:, None], sines], dim=1)


class BezierPath(LinearPath):
    """Bézier curve of degree J+1 with J trainable control points (Garipov et al. 2018).

    ``bends=1`` is the quadratic curve φ(t) = (1−t)² ω¹ + 2t(1−t) θ + t² ω².  Control points are
    initialised on the segment (Garipov's ``init_linear``) unless given.
    """

    kind = "bezier"

    def __init__(self, start: Tensor, end: Tensor, bends: int = 1, control: Tensor | None = None) -> None:
        if int(bends) < 1:
            raise UsageError(f"bends must be a positive integer, got {bends}")
        start = torch.as_tensor(start).reshape(-1)
        end = torch.as_tensor(end).reshape(-1).to(start)
        if control is None:
            s = torch.arange(1, int(bends) + 1, dtype=start.dtype) / (int(bends) + 1)
            control = (1 - s)[:, None] * start[None] + s[:, None] * end[None]
        super().__init__(start, end, control)
        self.bends = int(bends)

    def basis(self, t: Tensor) -> Tensor:
        deg = self.bends + 1
        j = torch.arange(deg + 1, dtype=t.dtype, device=t.device)
        binom = torch.tensor([math.comb(deg, int(k)) for k in range(deg + 1)], dtype=t.dtype, device=t.device)
        bern = binom * t[:, None] ** j * (1 - t[:, None]) ** (deg - j)  # (K, deg+1), w_0 … w_deg
        return torch.cat([bern[:, :1], bern[:, -1:], bern[:, 1:-1]], dim=1)


class PolylinePath(LinearPath):
    """Piecewise-linear path through ω¹, c_1, …, c_J, ω² placed at knots 0 < τ_1 < … < τ_J < 1.

    With one bend at τ = 0.5 this is Garipov et al.'s PolyChain; with many pivots it is the
    band of NEB / AutoNEB (Draxler et al. 2018).  Default knots are equally spaced.
    """

    kind = "polyline"

    def __init__(self, start: Tensor, end: Tensor, bends: int = 1, control: Tensor | None = None,
                 knots: Tensor | None = None) -> None:
        start = torch.as_tensor(start).reshape(-1)
        end = torch.as_tensor(end).reshape(-1).to(start)
        if control is None:
            if int(bends) < 1:
                raise UsageError(f"bends must be a positive integer, got {bends}")
            s = torch.arange(1, int(bends) + 1, dtype=start.dtype) / (int(bends) + 1)
            control = (1 - s)[:, None] * start[None] + s[:, None] * end[None]
        super().__init__(start, end, control)
        j = self.control.shape[0]
        if knots is None:
            knots = torch.arange(1, j + 1, dtype=start.dtype) / (j + 1)
        knots = torch.as_tensor(knots, dtype=start.dtype).reshape(-1)
        if knots.numel() != j or (j and (knots.min() <= 0 or knots.max() >= 1 or (knots.diff() <= 0).any())):
            raise UsageError(f"knots must be {j} strictly increasing values inside (0, 1)")
        self.register_buffer("knots", knots.clone())
        self.bends = j

    def basis(self, t: Tensor) -> Tensor:
        full = torch.cat([t.new_zeros(1), self.knots.to(t), t.new_ones(1)])  # τ_0=0 … τ_{J+1}=1
        idx = torch.clamp(torch.searchsorted(full, t, right=True) - 1, 0, full.numel() - 2)
        lo, hi = full[idx], full[idx + 1]
        frac = ((t - lo) / (hi - lo)).clamp(0, 1)
        hat = t.new_zeros(t.numel(), full.numel())  # order w_0 … w_{J+1}
        rows = torch.arange(t.numel(), device=t.device)
        hat[rows, idx] = 1 - frac
        hat[rows, idx + 1] = frac
        return torch.cat([hat[:, :1], hat[:, -1:], hat[:, 1:-1]], dim=1)


__all__ = ["BezierPath", "FourierPath", "LinearPath", "PolylinePath", "StraightPath"]
