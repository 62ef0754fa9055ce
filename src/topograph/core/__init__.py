"""The functional core: parameter points, directions and the :class:`Objective`."""

from topograph.core.directions import normalize_direction, random_direction
from topograph.core.function import FunctionObjective
from topograph.core.objective import Evaluation, Objective, default_accuracy
from topograph.core.params import ParamSpec, filter_norms, named_parameters

__all__ = [
    "Evaluation",
    "FunctionObjective",
    "Objective",
    "ParamSpec",
    "default_accuracy",
    "filter_norms",
    "named_parameters",
    "normalize_direction",
    "random_direction",
]
