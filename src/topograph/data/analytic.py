"""Analytic 2-D landscapes with known minima, saddles and maxima.

Each landscape is one :class:`AnalyticLandscape` instance: a function ``f: R^2 → R``
written in torch operations (differentiable, broadcasting over leading dimensions), its
stationary points as :class:`CriticalPoint` records, a plotting domain, a default start and
a :meth:`AnalyticLandscape.objective` that wraps it as a
:class:`topograph.core.FunctionObjective`, so curvature, paths, maps and optimizers run on
it exactly as on a network.  They serve tests (known answers), demos and benchmarks.

>>> from topograph.data.analytic import get_landscape
>>> mb = get_landscape("muller-brown")
>>> [m.label for m in mb.minima], round(mb.saddles[0].value, 2)
(['A', 'B', 'C'], -40.66)
>>> obj = mb.objective()          # FunctionObjective started at mb.default_start

Landscapes (``LANDSCAPES``): ``rosenbrock``, ``rastrigin``, ``himmelblau``,
``muller-brown``, ``tilted-double-well``, ``saddle-quartic``, ``four-gaussian-toy``,
``double-well``, ``curved-double-well``.

How the critical points were obtained: ``scipy.optimize.root`` on the autograd gradient
(with the autograd Hessian as Jacobian, ``tol=1e-14``) from a few hundred random starts
over each landscape's domain, then Newton-polished until the gradient was at rounding level;
each point was classified by the signs of its Hessian eigenvalues.  The numbers below are
those results written out to full double precision; ``tests/test_analytic.py`` re-verifies
every one (zero gradient, Hessian signature, value, and an independent scipy search).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from topograph.data.landscape import AnalyticLandscape, CriticalPoint
from topograph.data.landscape import critical_point as _cp
from topograph.errors import UsageError

__all__ = [
    "AnalyticLandscape",
    "CriticalPoint",
    "LANDSCAPES",
    "get_landscape",
    "landscape_names",
]

# ====================================================================== Rosenbrock
def _rosenbrock(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


ROSENBROCK = AnalyticLandscape(
    name="rosenbrock",
    formula=_rosenbrock,
    dim=2,
    minima=(_cp("minimum", "global", 1.0, 1.0, 0.0),),
    saddles=(),
    maxima=(),
    domain=((-2.0, 2.0), (-1.0, 3.0)),
    default_start=(-1.2, 1.0),
    description=(
        "Rosenbrock's banana valley f(x, y) = (a − x)² + b(y − x²)², a = 1, b = 100 "
        "(Rosenbrock 1960, Comput. J. 3:175). Single minimum f(1, 1) = 0 at the end of a "
        "long, curved, flat valley (Hessian eigenvalues 0.40 and 1001.6); classic start (−1.2, 1)."
    ),
)


# ====================================================================== Rastrigin
_RASTRIGIN_A = 10.0
# Stationary points of the 1-D Rastrigin term g(t) = t² − A cos(2πt) + A, i.e. roots of
# g'(t) = 2t + 2πA sin(2πt): minima at 0 and ±_R1_MIN, maxima at ±_R1_MAX (the next maxima,
# ±1.50764, lie just outside [−1.5, 1.5]).
_R1_MIN, _G_R1_MIN = 0.9949586376523348, 0.9949590570932916
_R1_MAX, _G_R1_MAX = 0.5025460365546747, 20.251272990990113


def _rastrigin(p: Tensor) -> Tensor:
    return _RASTRIGIN_A * p.shape[-1] + (p * p - _RASTRIGIN_A * torch.cos(2.0 * math.pi * p)).sum(-1)


def _rastrigin_points() -> tuple[tuple[CriticalPoint, ...], ...]:
    """Products of the 1-D stationary points in [−1.5, 1.5]²: f is separable, so a point
    is a minimum / saddle / maximum when 0 / 1 / 2 of its coordinates are 1-D maxima."""
    mins_1d = [(0.0, 0.0, "0"), (_R1_MIN, _G_R1_MIN, "1"), (-_R1_MIN, _G_R1_MIN, "-1")]
    maxs_1d = [(_R1_MAX, _G_R1_MAX, "0.5"), (-_R1_MAX, _G_R1_MAX, "-0.5")]
    minima, saddles, maxima = [], [], []
    for tx, gx, lx in mins_1d:
        for ty, gy, ly in mins_1d:
            label = "global" if (lx, ly) == ("0", "0") else f"({lx},{ly})"
            minima.append(_cp("minimum", label, tx, ty, gx + gy))
    for tx, gx, lx in mins_1d:
        for ty, gy, ly in maxs_1d:
            saddles.append(_cp("saddle", f"({lx},{ly})", tx, ty, gx + gy))
            saddles.append(_cp("saddle", f"({ly},{lx})", ty, tx, gy + gx))
    for tx, gx, lx in maxs_1d:
        for ty, gy, ly in maxs_1d:
            maxima.append(_cp("maximum", f"({lx},{ly})", tx, ty, gx + gy))
    return tuple(minima), tuple(saddles), tuple(maxima)


_RA_MIN, _RA_SADDLE, _RA_MAX = _rastrigin_points()
RASTRIGIN = AnalyticLandscape(
    name="rastrigin",
    formula=_rastrigin,
    dim=2,
    minima=_RA_MIN,
    saddles=_RA_SADDLE,
    maxima=_RA_MAX,
    domain=((-1.5, 1.5), (-1.5, 1.5)),
    default_start=(1.3, 0.7),
    description=(
        "Rastrigin function f(x) = A·d + Σᵢ (xᵢ² − A cos 2πxᵢ), A = 10, d = 2 (Rastrigin 1974; "
        "Mühlenbein et al. 1991). Global minimum 0 at the origin on an egg-crate of local minima. "
        "Listed: ALL stationary points in [−1.5, 1.5]² (separable, so they are the products of "
        "the 1-D ones): 9 minima labelled by their nearest lattice point '(i,j)' (0.99496 off "
        "each non-zero integer, f = 0.99496 per non-zero coordinate), 12 saddles between "
        "neighbouring minima (one coordinate at ±0.50255), 4 maxima."
    ),
)


# ====================================================================== Himmelblau
def _himmelblau(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


HIMMELBLAU = AnalyticLandscape(
    name="himmelblau",
    formula=_himmelblau,
    dim=2,
    minima=(
        _cp("minimum", "A", 3.0, 2.0, 0.0),
        _cp("minimum", "B", -2.805118086952745, 3.131312518250573, 0.0),
        _cp("minimum", "C", -3.779310253377747, -3.2831859912861696, 0.0),
        _cp("minimum", "D", 3.5844283403304917, -1.8481265269644036, 0.0),
    ),
    saddles=(
        _cp("saddle", "A-B", 0.08667750455539634, 2.884254701174776, 67.71915008752613),
        _cp("saddle", "B-C", -3.0730257507643897, -0.08135304428796751, 104.01516291755811),
        _cp("saddle", "C-D", -0.12796134673068005, -1.9537149802445766, 178.33723920192745),
        _cp("saddle", "D-A", 3.385154183607021, 0.07385187983774928, 13.311926270405587),
    ),
    maxima=(_cp("maximum", "max", -0.2708445906673476, -0.9230385564799813, 181.6165215225827),),
    domain=((-5.0, 5.0), (-5.0, 5.0)),
    default_start=(0.0, 0.0),
    description=(
        "Himmelblau's function f(x, y) = (x² + y − 11)² + (x + y² − 7)² (Himmelblau 1972, "
        "Applied Nonlinear Programming). Four minima of value 0 (A = (3, 2), B, C, D "
        "counter-clockwise), one local maximum f = 181.617 at (−0.2708, −0.9230), and four "
        "saddles on the ring between neighbouring minima, labelled by the pair they join "
        "(each saddle's unstable direction descends into those two minima). These nine are "
        "all the stationary points of f."
    ),
)


# ====================================================================== Müller–Brown
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_X0 = (1.0, 0.0, -0.5, -1.0)
_MB_Y0 = (0.0, 0.5, 1.5, 1.0)


def _muller_brown(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    total = torch.zeros_like(x)
    for A, a, b, c, x0, y0 in zip(_MB_A, _MB_a, _MB_b, _MB_c, _MB_X0, _MB_Y0):
        dx, dy = x - x0, y - y0
        total = total + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return total


MULLER_BROWN = AnalyticLandscape(
    name="muller-brown",
    formula=_muller_brown,
    dim=2,
    minima=(
        _cp("minimum", "A", -0.5582236346330243, 1.4417258418046688, -146.69951720995402),
        _cp("minimum", "B", 0.6234994049308765, 0.028037758528685668, -108.16672411685236),
        _cp("minimum", "C", -0.05001082299820607, 0.4666941048719721, -80.76781812965903),
    ),
    saddles=(
        _cp("saddle", "A-C", -0.8220015587327322, 0.6243128028148713, -40.6648435086574),
        _cp("saddle", "C-B", 0.21248658200066198, 0.2929883251073678, -72.24894011232522),
    ),
    maxima=(),
    domain=((-1.5, 1.2), (-0.5, 2.0)),
    default_start=(0.0, 1.0),
    description=(
        "Müller–Brown potential V(x, y) = Σₖ Aₖ exp(aₖ(x − x⁰ₖ)² + bₖ(x − x⁰ₖ)(y − y⁰ₖ) + "
        "cₖ(y − y⁰ₖ)²), A = (−200, −100, −170, 15), a = (−1, −1, −6.5, 0.7), b = (0, 0, 11, 0.6), "
        "c = (−10, −10, −6.5, 0.7), x⁰ = (1, 0, −0.5, −1), y⁰ = (0, 0.5, 1.5, 1) (Müller & Brown "
        "1979, Theor. Chim. Acta 53:75). Minima A (−146.70), B (−108.17), C (−80.77); the "
        "minimum-energy path A→C→B crosses saddles A-C (−40.66, the A→B barrier) and C-B "
        "(−72.25). The straight segment A→B peaks at 12.68: the path curves."
    ),
)


# ====================================================================== tilted double well
_TILT = 0.3


def _tilted_double_well(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return x**4 - 2.0 * x * x + _TILT * x + y * y


TILTED_DOUBLE_WELL = AnalyticLandscape(
    name="tilted-double-well",
    formula=_tilted_double_well,
    dim=2,
    minima=(
        _cp("minimum", "global", -1.0355787140888537, 0.0, -1.305428483743916),
        _cp("minimum", "local", 0.9601495555191055, 0.0, -0.7058535189717372),
    ),
    saddles=(_cp("saddle", "barrier", 0.07542915856974822, 0.0, 0.011282002715653128),),
    maxima=(),
    domain=((-2.0, 2.0), (-1.5, 1.5)),
    default_start=(1.5, 1.0),
    description=(
        "Tilted double well f(x, y) = x⁴ − 2x² + 0.3x + y²: the 1-D global-search test of "
        "Guided Exploration (seed 000) with y² added, so the 1-D "
        "stationary points (roots of 4x³ − 4x + 0.3) become a global minimum x = −1.0356 "
        "(f = −1.3054), a local minimum x = 0.9601 (f = −0.7059) and an index-1 saddle at the "
        "barrier top x = 0.0754 (f = 0.0113), all at y = 0 with the 1-D values. These three are "
        "all its stationary points. The default start lies in the local (shallower) basin."
    ),
)


# ====================================================================== strict saddle
def _saddle_quartic(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return x * x - y * y + 0.5 * y**4


SADDLE_QUARTIC = AnalyticLandscape(
    name="saddle-quartic",
    formula=_saddle_quartic,
    dim=2,
    minima=(
        _cp("minimum", "upper", 0.0, 1.0, -0.5),
        _cp("minimum", "lower", 0.0, -1.0, -0.5),
    ),
    saddles=(_cp("saddle", "origin", 0.0, 0.0, 0.0),),
    maxima=(),
    domain=((-1.5, 1.5), (-1.5, 1.5)),
    default_start=(1.0, 1e-6),
    description=(
        "Strict-saddle function f(x, y) = x² − y² + y⁴/2 (the "
        "saddle-escape test of Guided Exploration): saddle at the origin (Hessian eigenvalues "
        "−2, 2), minima f = −0.5 at (0, ±1); these three are all its stationary points. The "
        "default start (1, 1e-6) is the documented test: plain GD (η = 0.05) needs 146 steps "
        "to reach f < −0.4 from it."
    ),
)


# ====================================================================== 4-Gaussian toy
_TOY_OFFSET = 1.0190055296306975  # the constant C of the authors' toy notebook


def _four_gaussian_toy(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]

    def bump(cx: float, cy: float, width: float) -> Tensor:
        return torch.exp(-width * ((x - cx) ** 2 + (y - cy) ** 2))

    return (
        -bump(-0.5, -0.5, 3.0) - bump(0.5, 0.0, 3.0) + bump(-0.2, -0.4, 15.0) + bump(0.0, 0.3, 15.0)
        + _TOY_OFFSET
    )


FOUR_GAUSSIAN_TOY = AnalyticLandscape(
    name="four-gaussian-toy",
    formula=_four_gaussian_toy,
    dim=2,
    minima=(
        _cp("minimum", "A", -0.6138016125151484, -0.5354155250543252, 0.1087071678864151),
        _cp("minimum", "B", 0.48810021800732817, -0.02225546063184095, -3.090423056284486e-05),
    ),
    saddles=(
        _cp("saddle", "lowest", -0.16472654854043778, -0.06991718206187822, 0.6243933471869937),
        _cp("saddle", "second", 0.05288953025371499, -0.6881582077713639, 0.6372572376560084),
        _cp("saddle", "third", -0.2927095998594377, 0.7436239301641692, 0.9960671956794482),
    ),
    maxima=(
        _cp("maximum", "d1", -0.17521006993433239, -0.3978614473682515, 1.145515253485343),
        _cp("maximum", "d2", -0.027590409788822826, 0.33207184543070306, 1.6169211677929758),
    ),
    domain=((-1.2, 1.2), (-1.2, 1.2)),
    default_start=(-0.62, -0.54),
    description=(
        "4-Gaussian toy of Yu & Morozov (arXiv 2602.21276, Fig. 3; paper 001) used to test "
        "FourierPathFinder: f(r) = −e^{−3|r−c₁|²} − e^{−3|r−c₂|²} + e^{−15|r−d₁|²} + "
        "e^{−15|r−d₂|²} + C, c₁ = (−0.5, −0.5), c₂ = (0.5, 0), d₁ = (−0.2, −0.4), d₂ = (0, 0.3), "
        "C = 1.0190055296306975 (the authors' toy notebook). "
        "Minima A (near the paper's endpoint w₁ = (−0.62, −0.54), f(w₁) = 0.10906) and B (near "
        "w₂ = (0.49, −0.02)); all three saddles join A and B: 'lowest' (0.62439 = the true A→B "
        "barrier), 'second' (0.63726, below d₁), 'third' (0.99607, around d₂); maxima at the "
        "bumps d₁, d₂. The straight segment w₁→w₂ peaks at 1.102. All stationary points in the "
        "domain [−1.2, 1.2]² are listed (multi-start search)."
    ),
)


# ====================================================================== double wells
def _double_well(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return (x * x - 1.0) ** 2 + y * y


DOUBLE_WELL = AnalyticLandscape(
    name="double-well",
    formula=_double_well,
    dim=2,
    minima=(
        _cp("minimum", "left", -1.0, 0.0, 0.0),
        _cp("minimum", "right", 1.0, 0.0, 0.0),
    ),
    saddles=(_cp("saddle", "barrier", 0.0, 0.0, 1.0),),
    maxima=(),
    domain=((-2.0, 2.0), (-1.5, 1.5)),
    default_start=(-1.5, 0.5),
    description=(
        "Symmetric double well f(x, y) = (x² − 1)² + y² (a "
        "path-tool test): minima (±1, 0) with f = 0, saddle (0, 0) with barrier exactly 1, "
        "reached by the straight segment; these three are all its stationary points."
    ),
)


def _curved_double_well(p: Tensor) -> Tensor:
    x, y = p[..., 0], p[..., 1]
    return (x * x - 1.0) ** 2 + 2.0 * (y - 0.8 * (1.0 - x * x)) ** 2


CURVED_DOUBLE_WELL = AnalyticLandscape(
    name="curved-double-well",
    formula=_curved_double_well,
    dim=2,
    minima=(
        _cp("minimum", "left", -1.0, 0.0, 0.0),
        _cp("minimum", "right", 1.0, 0.0, 0.0),
    ),
    saddles=(_cp("saddle", "barrier", 0.0, 0.8, 1.0),),
    maxima=(),
    domain=((-1.8, 1.8), (-1.5, 1.5)),
    default_start=(-1.5, 0.5),
    description=(
        "Curved double well f(x, y) = (x² − 1)² + 2(y − 0.8(1 − x²))²: "
        "minima (±1, 0), f = 0; the minimum-energy path follows the arc y = 0.8(1 − x²) over "
        "the saddle (0, 0.8) with barrier exactly 1, while the straight segment peaks at 2.28. "
        "These three are all its stationary points."
    ),
)


LANDSCAPES: dict[str, AnalyticLandscape] = {
    ls.name: ls
    for ls in (
        ROSENBROCK,
        RASTRIGIN,
        HIMMELBLAU,
        MULLER_BROWN,
        TILTED_DOUBLE_WELL,
        SADDLE_QUARTIC,
        FOUR_GAUSSIAN_TOY,
        DOUBLE_WELL,
        CURVED_DOUBLE_WELL,
    )
}


def landscape_names() -> tuple[str, ...]:
    """The registered landscape names, in registry order."""
    return tuple(LANDSCAPES)


def get_landscape(name: str) -> AnalyticLandscape:
    """The landscape called ``name`` (case-insensitive; ``_`` and ``-`` are interchangeable,
    ``müller`` may be spelled ``muller``)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-").replace("ü", "u")
    try:
        return LANDSCAPES[key]
    except KeyError:
        raise UsageError(
            f"unknown landscape {name!r}; allowed: {', '.join(LANDSCAPES)}"
        ) from None
