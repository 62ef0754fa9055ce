"""build_model, the registry of models: names and classes kept, seeded builds that leave the global
generator alone, one-line errors for unknown names, keywords and bad values, user factories."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from topograph.errors import UsageError
from topograph.models import MLP, MODELS, Autoencoder, SmallCNN, build_model, model_keywords


def test_existing_names_and_classes_are_kept():
    for name in ("mlp-cifar", "mlp-fmnist", "mlp-784-128-64-10", "mlp-digits", "cnn-small"):
        assert name in MODELS
    assert isinstance(build_model("mlp-digits"), MLP) and isinstance(build_model("cnn-small"), SmallCNN)
    assert build_model("mlp-digits", num_classes=4).sizes == (64, 32, 4)
    assert isinstance(build_model("autoencoder"), Autoencoder)


@pytest.mark.parametrize("name", ["resnet8", "lstm", "vgg9", "lenet5", "autoencoder"])
def test_build_model_is_seeded_and_leaves_the_global_rng_alone(name):
    state = torch.get_rng_state()
    a = build_model(name, seed=3, **({"image_size": 28, "in_channels": 1} if name == "vgg9" else {}))
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model(name, seed=3, **({"image_size": 28, "in_channels": 1} if name == "vgg9" else {}))
    c = build_model(name, seed=4, **({"image_size": 28, "in_channels": 1} if name == "vgg9" else {}))
    for (ka, va), (kb, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert any(not torch.equal(va, vc) for va, vc in zip(a.parameters(), c.parameters()))


def test_unknown_keywords_and_bad_values_are_one_line_usage_errors():
    with pytest.raises(UsageError) as info:
        build_model("resnet20", depth=20)
    message = str(info.value)
    assert message == ("model 'resnet20' has no keyword argument 'depth'; it takes in_channels, image_size, "
                       "num_classes, shortcut")
    with pytest.raises(UsageError, match="model 'mlp-digits' has no keyword argument 'in_channels'; it takes num_classes"):
        build_model("mlp-digits", in_channels=1)
    with pytest.raises(UsageError, match="in_channels must be a positive integer, got 0"):
        build_model("lenet5", in_channels=0)
    with pytest.raises(UsageError, match="num_classes must be a positive integer, got 'ten'"):
        build_model("vgg9", num_classes="ten")
    with pytest.raises(UsageError, match="model 'resnet21' is unknown; choose one of .*resnet20.*torchvision:<model>"):
        build_model("resnet21")
    with pytest.raises(UsageError, match="seed"):
        build_model("fcp", seed="0")
    assert model_keywords("fcp") == ("activation", "in_channels", "image_size", "num_classes")
    assert model_keywords("torchvision:resnet18") is None


def test_user_factories_may_join_the_registry(monkeypatch):
    monkeypatch.setitem(MODELS, "mine", lambda **kw: nn.Linear(kw.get("width", 2), 1))
    assert build_model("mine", seed=0, width=3).in_features == 3
