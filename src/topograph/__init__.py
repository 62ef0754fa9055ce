"""topograph: map, measure and navigate neural-network loss landscapes with PyTorch."""

from topograph.core import FunctionObjective, Objective, ParamSpec
from topograph.errors import UsageError

__version__ = "0.1.0"
__all__ = ["FunctionObjective", "Objective", "ParamSpec", "UsageError", "__version__"]
