"""One-dimensional minimisers: golden-section search and seed 001's bracketing line search.

Two routines live here, both on plain Python callables ``phi(u) -> float``:

* :func:`golden_section_search` — the textbook golden-section search (Kiefer 1953) of a
  unimodal function on a given interval ``[a, b]``.  Each evaluation shrinks the bracket by
  the factor ``1/φ = (√5 − 1)/2 ≈ 0.618``, so reaching a bracket of width ``tol`` from a width
  ``w`` costs about ``2 + log(tol / w) / log(0.618)`` evaluations.  The returned point is the
  best point evaluated, which lies inside the final bracket, so it is within ``tol`` of the
  minimiser whenever the function is unimodal on ``[a, b]``.

* :func:`bracket_golden_search` — the line search of Yu & Morozov, *Neural network
  optimization strategies and the topography of the loss landscape* (arXiv 2602.21276,
  seed 001), exactly as their notebook ``L-BFGS_GSS_NN.ipynb`` (class ``LBFGS_Brent``)
  runs it.  It minimises ``phi(u)`` for ``u ≥ 0`` (``u`` is a
  distance along a unit direction) knowing ``phi(0)``:

  1. First trial ``u₁ = first_step``.
  2. If ``phi(u₁) < phi(0)``: expanding phase with trials ``first_step · 2^k`` for
     ``k = 2, 3, …`` (the authors' counter is incremented twice before the second trial, so the
     trials are 1×, 4×, 8×, 16× … the first step) while the value keeps falling; the first rise
     closes the bracket ``(a, x, b)``.
  3. If ``phi(u₁) > phi(0)``: shrinking phase on ``[0, b]`` with interior trials
     ``a + 0.382 (b − a)`` until one is below ``phi(0)``; on a rise ``b`` moves in.
  4. Golden-section phase on the bracket ``(a, x, b)``: the trial ``a + 0.382 (b − a)`` if the
     right part is longer, else ``b − 0.382 (b − a)``; the bracket is updated as usual.
  5. Stops when ``max_evals`` evaluations were spent, or ``|b − a| < tol`` or
     ``|phi(a) − phi(b)| < tol``.  An exact tie between two trials returns their midpoint
     (evaluated once more).

  Faithful details kept on purpose (each visible in the result): the tolerance on function
  values is absolute; when the shrinking phase stops without finding a decrease, the step
  returned is the last ``b`` (a step that does *not* decrease ``phi``; it is at most ``tol``
  long or changes ``phi`` by less than ``tol``), and ``result.decreased`` is ``False``.
  When the shrinking phase finds a decrease at ``x = a + 0.382 (b − a)``, the first golden
  trial is that same point again, so the authors' search ends there with ``x``: the line
  search returns the first decreasing trial.  The only departure: we skip that duplicate
  evaluation (the authors' code spends one call on it and gets an exact tie) — same step,
  one evaluation less.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from topograph.errors import UsageError

#: 1/φ = (√5 − 1)/2, the golden-section shrink factor per evaluation.
INV_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
#: The authors' rounded interior fraction 1 − 1/φ ≈ 0.382 (seed 001's code uses 0.382).
SEED001_FRACTION = 0.382


@dataclass(frozen=True)
class GoldenSectionResult:
    """Result of :func:`golden_section_search`.

    Attributes: ``x`` the best point evaluated, ``fun`` its value, ``n_evals`` the number of
    evaluations of ``f``, ``bracket`` the final ``(a, b)`` (contains ``x``), ``converged``
    whether ``b − a ≤ tol`` was reached within ``max_evals``.
    """

    x: float
    fun: float
    n_evals: int
    bracket: tuple[float, float]
    converged: bool


@dataclass(frozen=True)
class LineSearchResult:
    """Result of :func:`bracket_golden_search`.

    Attributes: ``step`` the distance ``u`` chosen along the direction, ``value``
    ``phi(step)``, ``n_evals`` evaluations of ``phi`` spent (``phi(0)`` is given, not counted),
    ``decreased`` whether ``value < phi(0)``, ``phase`` where it stopped (``"expand"``,
    ``"shrink"``, ``"golden"`` or ``"tie"``).
    """

    step: float
    value: float
    n_evals: int
    decreased: bool
    phase: str


def golden_section_search(
    f: Callable[[float], float],
    a: float,
    b: float,
    *,
    tol: float = 1e-8,
    max_evals: int = 200,
) -> GoldenSectionResult:
    """Minimise a unimodal ``f`` on ``[a, b]`` by golden-section search.

    Keeps two interior points ``c = b − (b − a)/φ`` and ``d = a + (b − a)/φ``; the one with the
    larger value closes its side of the bracket and the other is reused, so every new
    evaluation shrinks the bracket by ``1/φ``.  Stops when ``b − a ≤ tol`` or after
    ``max_evals`` evaluations.  ``f`` may return a Python float or a 0-dim tensor.

    >>> r = golden_section_search(lambda x: (x - 2.0) ** 2, 0.0, 5.0, tol=1e-6)
    >>> abs(r.x - 2.0) < 1e-6
    True
    """
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise UsageError(f"golden_section_search: need finite a < b, got a={a}, b={b}")
    if not tol > 0:
        raise UsageError(f"golden_section_search: tol must be > 0, got {tol}")
    if int(max_evals) < 2:
        raise UsageError(f"golden_section_search: max_evals must be >= 2, got {max_evals}")

    def value(x: float) -> float:
        return float(f(x))

    c = b - INV_GOLDEN * (b - a)
    d = a + INV_GOLDEN * (b - a)
    fc, fd = value(c), value(d)
    n_evals = 2
    while b - a > tol and n_evals < max_evals:
        if fc <= fd:  # minimiser in [a, d]
            b, d, fd = d, c, fc
            c = b - INV_GOLDEN * (b - a)
            fc = value(c)
        else:  # minimiser in [c, b]
            a, c, fc = c, d, fd
            d = a + INV_GOLDEN * (b - a)
            fd = value(d)
        n_evals += 1
    x, fx = (c, fc) if fc <= fd else (d, fd)
    return GoldenSectionResult(x=x, fun=fx, n_evals=n_evals, bracket=(a, b), converged=b - a <= tol)


def bracket_golden_search(
    phi: Callable[[float], float],
    phi0: float,
    first_step: float,
    *,
    max_evals: int = 6,
    tol: float = 1e-4,
) -> LineSearchResult:
    """Seed 001's bracketing + golden-section line search of ``phi`` on ``u ≥ 0``.

    ``phi0 = phi(0)`` is known; ``first_step`` is the first trial (the authors use
    ``0.2 · ‖r‖`` for an L-BFGS direction ``r``).  See the module docstring for the phases.
    Cost: at most ``max_evals`` evaluations, plus one for an exact tie.
    """
    if not (math.isfinite(first_step) and first_step > 0):
        raise UsageError(f"bracket_golden_search: first_step must be finite and > 0, got {first_step}")
    if int(max_evals) < 1:
        raise UsageError(f"bracket_golden_search: max_evals must be >= 1, got {max_evals}")
    if not tol > 0:
        raise UsageError(f"bracket_golden_search: tol must be > 0, got {tol}")

    search = _Search(phi, float(phi0), int(max_evals), tol)
    outcome = search.bracket(float(first_step))
    return outcome if outcome is not None else search.golden()


class _Search:
    """The state of one :func:`bracket_golden_search`: the bracket (a, x, b) with its values and
    the evaluations spent; one method per phase of the module docstring."""

    def __init__(self, phi: Callable[[float], float], phi0: float, max_evals: int, tol: float) -> None:
        self.phi, self.phi0, self.max_evals, self.tol = phi, phi0, max_evals, tol
        self.n_evals = 0
        self.a, self.fa = 0.0, phi0
        self.x = self.fx = self.b = self.fb = math.nan

    def value(self, u: float) -> float:
        self.n_evals += 1
        return float(self.phi(u))

    def result(self, u: float, fu: float, phase: str) -> LineSearchResult:
        return LineSearchResult(step=u, value=fu, n_evals=self.n_evals, decreased=fu < self.phi0, phase=phase)

    def tie(self, u_new: float) -> LineSearchResult:
        u = 0.5 * (self.a + u_new)
        return self.result(u, self.value(u), "tie")

    def spent(self) -> bool:
        return self.n_evals >= self.max_evals

    def bracket(self, first_step: float) -> LineSearchResult | None:
        """The first trial, then the expanding or the shrinking phase; a result when the search
        ends there, ``None`` when a bracket (a, x, b) with φ(x) < φ(a), φ(b) was found."""
        f1 = self.value(first_step)
        if f1 < self.fa:
            return self.expand(first_step, f1)
        if f1 > self.fa:
            return self.shrink(first_step, f1)
        return self.tie(first_step)

    def expand(self, first_step: float, f1: float) -> LineSearchResult | None:
        """Doubling steps u₁2^k while φ keeps falling."""
        self.x, self.fx = first_step, f1
        k = 1
        while True:
            k += 1
            u = first_step * 2.0**k
            fu = self.value(u)
            if fu < self.fx:
                self.a, self.fa, self.x, self.fx = self.x, self.fx, u, fu
                if self.spent():
                    return self.result(self.x, self.fx, "expand")
            elif fu > self.fx:
                self.b, self.fb = u, fu
                return self.result(self.x, self.fx, "expand") if self.spent() else None
            else:
                return self.tie(u)

    def shrink(self, first_step: float, f1: float) -> LineSearchResult | None:
        """Seed 001's shrinking on [0, b] until a point below φ(0) is found."""
        self.b, self.fb = first_step, f1
        while True:
            if abs(self.b - self.a) < self.tol or abs(self.fa - self.fb) < self.tol:
                return self.result(self.b, self.fb, "shrink")
            u = self.a + SEED001_FRACTION * (self.b - self.a)
            fu = self.value(u)
            if fu < self.fa:
                self.x, self.fx = u, fu
                return self.result(self.x, self.fx, "shrink") if self.spent() else None
            if fu > self.fa:
                self.b, self.fb = u, fu
                if self.spent():
                    return self.result(self.b, self.fb, "shrink")
            else:
                return self.tie(u)

    def golden(self) -> LineSearchResult:
        """Golden-section steps on the bracket (a, x, b) while evaluations and width remain."""
        while not self.spent():
            if abs(self.b - self.a) < self.tol or abs(self.fa - self.fb) < self.tol:
                break
            d = (self.b - self.a) * SEED001_FRACTION
            u = self.a + d if (self.b - self.x) > (self.x - self.a) else self.b - d
            if u == self.x:  # the authors re-evaluate x here, find a tie and stop; same result, one call less
                break
            fu = self.value(u)
            if fu < self.fx:
                if u >= self.x:
                    self.a, self.fa = self.x, self.fx
                else:
                    self.b, self.fb = self.x, self.fx
                self.x, self.fx = u, fu
            elif fu > self.fx:
                if u < self.x:
                    self.a, self.fa = u, fu
                elif u > self.x:
                    self.b, self.fb = u, fu
            else:
                break
        return self.result(self.x, self.fx, "golden")
