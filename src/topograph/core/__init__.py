"""The functional core: parameter points, the :class:`Objective`, and the one evaluation engine.

Every feature of topograph evaluates a model through these pieces:

* :class:`Objective` — a module, a loss and data, evaluated at any parameter point through
  ``torch.func.functional_call`` (loss, accuracy, gradient, Hessian-vector products);
  :class:`FunctionObjective` — the same calls for a plain differentiable function;
  :class:`ObjectiveLike` — the protocol both implement;
* :class:`SubspaceEvaluator` — many points of a line, plane, path or probe set at once, with the
  first-layer shortcut (:mod:`topograph.core.shortcut`);
* parameter-space helpers: :class:`ParamSpec` (dict ↔ flat vector), filter norms and
  filter-normalised random directions (Li et al. 2018);
* :mod:`~topograph.core.batchnorm` (one BatchNorm policy vocabulary), :class:`Work` (one set of
  work counters), :mod:`~topograph.core.linalg` (the operator protocol, Lanczos).
"""

from topograph.core.batchnorm import BATCHNORM_POLICIES, freeze_bn_stats
from topograph.core.directions import normalize_direction, random_direction
from topograph.core.function import FunctionObjective
from topograph.core.objective import Evaluation, Objective, default_accuracy
from topograph.core.params import ParamSpec, filter_norms, named_parameters
from topograph.core.protocol import ObjectiveLike
from topograph.core.shortcut import FirstLayer
from topograph.core.subspace import ENGINES, SubspaceEvaluator
from topograph.core.work import Work

__all__ = [
    "BATCHNORM_POLICIES",
    "ENGINES",
    "Evaluation",
    "FirstLayer",
    "FunctionObjective",
    "Objective",
    "ObjectiveLike",
    "ParamSpec",
    "SubspaceEvaluator",
    "Work",
    "default_accuracy",
    "filter_norms",
    "freeze_bn_stats",
    "named_parameters",
    "normalize_direction",
    "random_direction",
]
