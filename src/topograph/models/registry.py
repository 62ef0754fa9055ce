"""Models by name: the registry :data:`MODELS` and :func:`build_model`.

Every built-in factory takes keyword arguments only, with defaults; :func:`build_model`
checks the keywords it is given against the factory's signature (one UsageError line naming
the unknown keyword and the accepted ones) and builds the model under a fixed seed, so a
name, a seed and keywords always give the same initial weights.  Names ``torchvision:<model>``
go to :mod:`topograph.models.torchvision`.  Users may add their own factories to
:data:`MODELS`, or name one of their own modules with :func:`build_factory_model`
(``"pkg.module:fn"``, see :mod:`topograph.factories`), as ``[model] factory`` and
``topograph surface --model`` do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from topograph.errors import UsageError
from topograph.factories import call_factory
from topograph.models import torchvision as tv
from topograph.models.autoencoder import Autoencoder
from topograph.models.cnn import LeNet5, SmallCNN
from topograph.models.mlp import FCP, MLP
from topograph.models.recurrent import SequenceLSTM
from topograph.models.resnet import resnet6, resnet8, resnet20, resnet56, resnet110
from topograph.models.vgg import vgg9


def _mlp_cifar(*, num_classes: int = 10) -> MLP:
    return MLP([3072, 64, 64, 32, num_classes])


def _mlp_fmnist(*, num_classes: int = 10) -> MLP:
    return MLP([784, 64, 64, 32, num_classes])


def _mlp_benchmark(*, num_classes: int = 10) -> MLP:
    return MLP([784, 128, 64, num_classes])


def _mlp_ge_control(*, num_classes: int = 10) -> MLP:
    return MLP([784, 256, 128, 64, num_classes])


def _mlp_digits(*, num_classes: int = 10) -> MLP:
    return MLP([64, 32, num_classes])


def _cnn_small(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
               dropout: float = 0.3) -> SmallCNN:
    return SmallCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size, dropout=dropout)


def _resnet(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def factory(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                shortcut: str = "A") -> nn.Module:
        return builder(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                       shortcut=shortcut)

    factory.__doc__ = builder.__doc__
    return factory


def _vgg9(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> nn.Module:
    return vgg9(in_channels=in_channels, image_size=image_size, num_classes=num_classes)


#: model name → factory taking keyword arguments (see the table in :mod:`topograph.models`)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp-cifar": _mlp_cifar,
    "mlp-fmnist": _mlp_fmnist,
    "mlp-784-128-64-10": _mlp_benchmark,
    "mlp-784-256-128-64-10": _mlp_ge_control,
    "mlp-digits": _mlp_digits,
    "cnn-small": _cnn_small,
    "fcp": FCP,
    "lenet5": LeNet5,
    "autoencoder": Autoencoder,
    "lstm": SequenceLSTM,
    "resnet6": _resnet(resnet6),
    "resnet8": _resnet(resnet8),
    "resnet20": _resnet(resnet20),
    "resnet56": _resnet(resnet56),
    "resnet110": _resnet(resnet110),
    "vgg9": _vgg9,
}


def is_model_name(name: object) -> bool:
    """Whether ``name`` is a registered model or a ``torchvision:<model>`` name."""
    return isinstance(name, str) and (name in MODELS or (name.startswith(tv.PREFIX) and len(name) > len(tv.PREFIX)))


def model_keywords(name: str) -> tuple[str, ...] | None:
    """The keyword arguments model ``name`` accepts, or ``None`` when they are not known in
    advance (torchvision models, user factories taking ``**kwargs``)."""
    if name not in MODELS:
        if is_model_name(name):
            return None
        raise UsageError(f"model {name!r} is unknown; choose one of {', '.join(MODELS)} or torchvision:<model>")
    try:
        parameters = inspect.signature(MODELS[name]).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: not introspectable
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters
                 if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def build_model(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Instantiate a model by name; ``seed`` makes its initialisation reproducible.

    ``name`` is a key of :data:`MODELS` or ``"torchvision:<model>"``; ``kwargs`` go to the
    factory (e.g. ``in_channels=1, image_size=28`` for MNIST).  The global torch random state
    is left as it was: the model is built inside ``torch.random.fork_rng`` seeded with ``seed``.
    """
    if not is_model_name(name):
        raise UsageError(f"model {name!r} is unknown; choose one of {', '.join(MODELS)} or torchvision:<model>")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UsageError(f"build_model seed={seed!r}: must be an int (or None)")
    allowed = model_keywords(name)
    if allowed is not None:
        for key in kwargs:
            if key not in allowed:
                takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
                raise UsageError(f"model {name!r} has no keyword argument {key!r}; {takes}")

    def make() -> nn.Module:
        return tv.build(name, **kwargs) if name not in MODELS else MODELS[name](**kwargs)

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make()


def build_factory_model(factory: str, *, seed: int | None = None, label: str = "model factory",
                        how: str = "keyword arguments of the factory", **kwargs) -> nn.Module:
    """The model your factory ``"pkg.module:fn"`` (or ``"path/to/file.py:fn"``) returns for
    ``fn(**kwargs)``, initialised under ``seed`` as :func:`build_model` does.

    ``label`` names where the factory came from (``"model.factory"``, ``"--model"``) and ``how``
    where its keyword arguments are given, in the one-line :class:`UsageError` that every
    failure becomes (see :func:`topograph.factories.call_factory`); so is a factory that returns
    something other than an ``nn.Module``.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UsageError(f"build_factory_model seed={seed!r}: must be an int (or None)")
    if seed is None:
        model = call_factory(factory, kwargs, label=label, how=how)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = call_factory(factory, kwargs, label=label, how=how)
    if not isinstance(model, nn.Module):
        raise UsageError(f"{label} {factory!r} returned a {type(model).__name__}, not a torch.nn.Module; "
                         "return the model itself (an nn.Module instance)")
    return model


__all__ = ["MODELS", "build_factory_model", "build_model", "is_model_name", "model_keywords"]
