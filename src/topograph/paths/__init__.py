"""Between minima: barriers, low-height paths and maps of solution sets.

=============================  ==================================================================
:func:`linear_barrier`         loss/accuracy along the straight segment; H, ΔH, argmax t
:class:`FourierPathFinder`     FourierPathFinder (arXiv:2602.21276), soft-max objective by default
:class:`CurveFinder`           Garipov et al. 2018 Bézier / PolyChain curves (integral objective)
:class:`NEBPathFinder`         nudged elastic band / string method, climbing image, AutoNEB insertion
:func:`profile_path`           dense loss profile of any path family
:mod:`~.solutions`             barrier matrices, spanning trees, centroid distances, kernel PCA
=============================  ==================================================================

Every method evaluates through the functional core (:class:`topograph.core.Objective` or
:class:`topograph.core.FunctionObjective`), so it works on any ``nn.Module`` and on analytic
functions alike, and every reported height comes from a dense re-evaluation of the found path.
"""

from topograph.paths.barrier import linear_barrier, profile_path
from topograph.paths.curves import CurveFinder
from topograph.paths.evaluate import PathEvaluator
from topograph.paths.family import BezierPath, FourierPath, LinearPath, PolylinePath, StraightPath
from topograph.paths.fourier import PATH_REDUCTIONS, FourierPathFinder, path_reduction
from topograph.paths.neb import NEBPathFinder
from topograph.paths.result import PathProfile, PathResult

__all__ = [
    "PATH_REDUCTIONS", "BezierPath", "CurveFinder", "FourierPath",
    "FourierPathFinder", "LinearPath", "NEBPathFinder", "PathEvaluator", "PathProfile",
    "PathResult", "PolylinePath", "StraightPath", "linear_barrier",
    "path_reduction", "profile_path",
]
