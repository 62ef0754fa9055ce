"""torchvision's models by name, ``"torchvision:<name>"``, when the optional extra is installed.

``build_model("torchvision:resnet18", num_classes=10)`` calls
``torchvision.models.get_model("resnet18", weights=None, num_classes=10)``: a freshly
initialised model (seeded by :func:`topograph.models.build_model`), never downloaded weights —
load pretrained weights yourself (``torch.load(..., weights_only=True)``) if you want them.
torchvision is optional: ``pip install "topograph[vision]"``; topograph imports it only when
such a name is asked for.  Its classification models expect 3-channel images; the ResNets
and most others pool globally, so 32×32 CIFAR-10 inputs work (with small maps).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from torch import nn

from topograph.errors import UsageError

PREFIX = "torchvision:"
INSTALL = 'pip install "topograph[vision]"'


def split_name(name: str) -> str | None:
    """``"torchvision:resnet18"`` → ``"resnet18"``; ``None`` for a name without the prefix."""
    if not name.startswith(PREFIX):
        return None
    model = name[len(PREFIX):].strip()
    if not model:
        raise UsageError(f"model {name!r}: name a torchvision model after the colon, e.g. 'torchvision:resnet18'")
    return model


def import_torchvision(name: str) -> ModuleType:
    """The ``torchvision`` module, or one UsageError line saying how to install it."""
    try:
        return importlib.import_module("torchvision")
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] != "torchvision":
            raise UsageError(f"model {name!r}: torchvision failed to import ({err}); {INSTALL}") from None
        raise UsageError(f"model {name!r} needs torchvision, which is not installed: {INSTALL}") from None
    except Exception as err:  # noqa: BLE001 - installed but broken, e.g. built for another torch
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"model {name!r}: torchvision is installed but failed to import ({type(err).__name__}: "
            f"{first}); install the release that pairs with your torch: {INSTALL}"
        ) from None


def build(name: str, **kwargs) -> nn.Module:
    """A freshly initialised torchvision model from ``"torchvision:<model>"`` and its keywords."""
    model = split_name(name)
    if model is None:
        raise UsageError(f"model {name!r} is not a torchvision name ({PREFIX}<model>)")
    if "weights" in kwargs or "weights_backbone" in kwargs:
        raise UsageError(f"model {name!r}: build_model makes freshly initialised models; drop 'weights' "
                         "and load a weights file with torch.load(..., weights_only=True)")
    torchvision = import_torchvision(name)
    available = list(torchvision.models.list_models())
    if model not in available:
        close = sorted(n for n in available if n.startswith(model[:3]))[:6] or sorted(available)[:6]
        raise UsageError(f"model {name!r}: torchvision {torchvision.__version__} has no model {model!r} "
                         f"(e.g. {', '.join(close)}; see torchvision.models.list_models())")
    try:
        return torchvision.models.get_model(model, weights=None, **kwargs)
    except (TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"model {name!r}: bad keyword arguments {sorted(kwargs)}: {first}") from None


__all__ = ["INSTALL", "PREFIX", "build", "import_torchvision", "split_name"]
