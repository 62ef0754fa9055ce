"""Curvature of the loss at any point: Hessian eigenvalues, trace, spectral density, sharpness.

Operators (:mod:`~topograph.curvature.operators`) expose a matrix through ``matvec``; the
algorithms — :func:`lanczos` (top-k / bottom-k eigenpairs), :func:`power_iteration` (the peers'
baseline), :func:`hutchinson` and :func:`hutchpp` (trace; :func:`exact_trace` for piecewise-linear
networks), :func:`spectral_density` (SLQ) — run
on any operator; :mod:`~topograph.curvature.measures` turns them into sharpness and saddle
measures at a point and :mod:`~topograph.curvature.along` along trajectories and paths.

>>> import torch
>>> from topograph.core import FunctionObjective
>>> from topograph.curvature import HessianOperator, hutchinson, lanczos
>>> quadratic = FunctionObjective(lambda w: 0.5 * (w * torch.tensor([3.0, 2.0, 1.0]) * w).sum(-1), 3)
>>> op = HessianOperator(quadratic)                       # H = diag(3, 2, 1)
>>> [round(v, 6) for v in lanczos(op, k=2).eigenvalues.tolist()]
[3.0, 2.0]
>>> round(hutchinson(op, probes=10).estimate, 6)          # Rademacher probes: exact on a diagonal H
6.0
"""

from topograph.curvature.along import (
    AlongResult,
    measures_along,
    measures_along_trajectory,
    plot_along,
)
from topograph.curvature.density import plot_density, spectral_density
from topograph.curvature.exact_trace import (
    ExactTraceResult,
    exact_trace,
    ggn_trace,
    supports_exact_trace,
)
from topograph.curvature.lanczos import lanczos
from topograph.curvature.measures import (
    EpsilonSharpness,
    LayerCurvature,
    NegativeCurvature,
    PointMeasures,
    curvature_summary,
    epsilon_sharpness,
    estimate_trace,
    layer_curvature,
    measure_point,
    negative_curvature,
    negative_curvature_from_density,
)
from topograph.curvature.operators import (
    GaussNewtonOperator,
    HessianOperator,
    LinearOperator,
    MatrixOperator,
)
from topograph.curvature.power import power_iteration
from topograph.curvature.results import DensityResult, EigenResult, TraceResult
from topograph.curvature.trace import hutchinson, hutchpp

__all__ = [
    "AlongResult", "DensityResult", "EigenResult", "EpsilonSharpness", "ExactTraceResult", "GaussNewtonOperator",
    "HessianOperator", "LayerCurvature", "LinearOperator", "MatrixOperator", "NegativeCurvature",
    "PointMeasures", "TraceResult", "curvature_summary", "epsilon_sharpness", "estimate_trace",
    "hutchinson", "hutchpp", "lanczos", "layer_curvature", "measure_point", "measures_along",
    "measures_along_trajectory", "negative_curvature", "negative_curvature_from_density", "plot_along", "plot_density",
    "power_iteration", "spectral_density", "exact_trace", "ggn_trace", "supports_exact_trace",
]
