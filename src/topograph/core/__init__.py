"""The functional core: parameter points, directions, the first-layer plan and the :class:`Objective`."""

from topograph.core.directions import normalize_direction, random_direction
from topograph.core.first_layer import FirstLayerPlan, first_layer_plan
from topograph.core.function import FunctionObjective
from topograph.core.objective import Evaluation, Objective, default_accuracy
from topograph.core.params import ParamSpec, filter_norms, named_parameters

__all__ = [
    "Evaluation",
    "FirstLayerPlan",
    "FunctionObjective",
    "Objective",
    "ParamSpec",
    "default_accuracy",
    "filter_norms",
    "first_layer_plan",
    "named_parameters",
    "normalize_direction",
    "random_direction",
]
