"""The models of the papers (topograph.models): parameter counts against independent formulas
and the published numbers, output shapes for 28×28×1 and 32×32×3 inputs, layouts.  build_model's
names, keywords and seeding are in test_registry.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from topograph.errors import UsageError
from topograph.models import FCP, LeNet5, SequenceLSTM, ShortcutA, build_model

MNIST = (1, 28)
CIFAR = (3, 32)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- independent count formulas
def resnet_count(n: int, widths=(16, 32, 64), channels: int = 3, classes: int = 10,
                 projection: bool = False) -> int:
    """He et al.'s CIFAR ResNet, counted layer by layer: 3×3 convs without bias, BN (γ, β)."""
    total = 9 * channels * widths[0] + 2 * widths[0]            # stem conv + BN
    previous = widths[0]
    for width in widths:
        for _ in range(n):
            total += 9 * previous * width + 2 * width            # conv1 + BN
            total += 9 * width * width + 2 * width               # conv2 + BN
            if projection and previous != width:
                total += previous * width + 2 * width            # option B: 1×1 conv + BN
            previous = width
    return total + widths[-1] * classes + classes                # classifier


def vgg9_count(channels: int, side: int, classes: int = 10) -> int:
    convs = [64, 64, 128, 128, 256, 256, 256]
    total, previous = 0, channels
    for width in convs:
        total += 9 * previous * width + width + 2 * width        # conv + bias + BN
        previous = width
    for _ in range(3):
        side = math.ceil(side / 2)
    total += 256 * side * side * 256 + 256 + 2 * 256             # FC + bias + BN1d
    return total + 256 * classes + classes


def lenet_count(channels: int, side: int, classes: int = 10) -> int:
    maps = ((side + 4 - 4) // 2 - 4) // 2                         # pad 2, 5×5, pool, 5×5, pool
    return ((25 * channels * 6 + 6) + (25 * 6 * 16 + 16) + (16 * maps * maps * 120 + 120)
            + (120 * 84 + 84) + (84 * classes + classes))


def lstm_count(features: int, hidden: int = 48, classes: int = 10) -> int:
    return 4 * hidden * (features + hidden) + 2 * 4 * hidden + hidden * classes


# ---------------------------------------------------------------- counts
@pytest.mark.parametrize("name,n", [("resnet8", 1), ("resnet20", 3), ("resnet56", 9), ("resnet110", 18)])
@pytest.mark.parametrize("shape", [CIFAR, MNIST])
def test_resnet_counts_follow_the_formula(name, n, shape):
    channels, side = shape
    model = build_model(name, in_channels=channels, image_size=side)
    assert n_params(model) == resnet_count(n, channels=channels)
    convs_and_fc = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(convs_and_fc) == 6 * n + 2 == model.depth               # 6n + 2 weighted layers


def test_resnet_counts_match_he_et_al():
    """He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-56 0.85M, ResNet-110 1.7M parameters."""
    assert n_params(build_model("resnet20")) == 269_722
    assert round(n_params(build_model("resnet20")) / 1e6, 2) == 0.27
    assert round(n_params(build_model("resnet56")) / 1e6, 2) == 0.85
    assert round(n_params(build_model("resnet110")) / 1e6, 1) == 1.7


def test_resnet6_is_two_stages_of_one_block():
    for channels, side in (CIFAR, MNIST):
        model = build_model("resnet6", in_channels=channels, image_size=side)
        assert n_params(model) == resnet_count(1, widths=(16, 32), channels=channels)
        assert len([m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]) == 6


def test_option_a_shortcut_has_no_parameters_and_pads_with_zeros():
    model = build_model("resnet20")
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2 and all(n_params(s) == 0 and not list(s.buffers()) for s in shortcuts)
    assert not [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    x = torch.randn(2, 16, 8, 8)
    out = ShortcutA(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()


def test_option_b_adds_the_projections():
    a, b = build_model("resnet20"), build_model("resnet20", shortcut="B")
    assert n_params(b) == resnet_count(3, projection=True) == n_params(a) + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    with pytest.raises(UsageError, match="shortcut must be 'A'"):
        build_model("resnet20", shortcut="C")


@pytest.mark.parametrize("shape", [CIFAR, MNIST])
def test_vgg9_layout_and_count(shape):
    channels, side = shape
    model = build_model("vgg9", in_channels=channels, image_size=side)
    assert n_params(model) == vgg9_count(channels, side)
    kinds = [type(m) for m in model.features]
    assert kinds.count(nn.Conv2d) == 7 and kinds.count(nn.BatchNorm2d) == 7 and kinds.count(nn.MaxPool2d) == 3
    assert [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)] == [64, 64, 128, 128, 256, 256, 256]
    assert isinstance(model.fc[2], nn.BatchNorm1d) and model.fc[1].in_features == 256 * 4 * 4


def test_seed_001_models_have_the_papers_counts():
    """FCP 42,200, LeNet 61,706, autoencoder 52,224, LSTM 15,456 (the paper's N_prm)."""
    assert n_params(build_model("fcp")) == 784 * 50 + 50 * 50 + 50 * 10 == 42_200
    assert n_params(build_model("lenet5")) == lenet_count(1, 28) == 61_706
    assert n_params(build_model("autoencoder")) == 2 * 784 * 32 + 2 * 32 * 32 == 52_224
    assert n_params(build_model("lstm")) == lstm_count(28) == 15_456
    # the 32×32×3 variants
    assert n_params(build_model("fcp", in_channels=3, image_size=32)) == 3072 * 50 + 2500 + 500
    assert n_params(build_model("lenet5", in_channels=3, image_size=32)) == lenet_count(3, 32)
    assert n_params(build_model("autoencoder", in_channels=3, image_size=32)) == 2 * 3072 * 32 + 2 * 32 * 32
    assert n_params(build_model("lstm", in_channels=3, image_size=32)) == lstm_count(96)


def test_no_biases_where_the_paper_has_none():
    for name in ("fcp", "autoencoder"):
        linears = [m for m in build_model(name).modules() if isinstance(m, nn.Linear)]
        assert linears and all(m.bias is None for m in linears)
    lstm = build_model("lstm")
    assert lstm.linear.bias is None and lstm.lstm.bias        # the LSTM keeps its gate biases


# ---------------------------------------------------------------- output shapes
IMAGE_MODELS = ["cnn-small", "fcp", "lenet5", "resnet6", "resnet8", "resnet20", "vgg9"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("resnet20", "vgg9") else n
                                  for n in IMAGE_MODELS])
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_image_models_take_both_input_shapes_as_images_and_flat(name, shape):
    channels, side = shape
    model = build_model(name, seed=0, in_channels=channels, image_size=side, num_classes=7).eval()
    x = torch.randn(3, channels, side, side)
    with torch.no_grad():
        out = model(x)
        flat = model(x.reshape(3, -1))
    assert out.shape == (3, 7)
    torch.testing.assert_close(flat, out)


@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_autoencoder_reconstructs_its_flattened_input_in_0_1(shape):
    channels, side = shape
    model = build_model("autoencoder", seed=0, in_channels=channels, image_size=side)
    x = torch.rand(4, channels, side, side)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, channels * side * side) and bool(((out > 0) & (out < 1)).all())
    with torch.no_grad():
        assert torch.equal(model(x.reshape(4, -1)), out)
    # the layout: softplus after every hidden layer, sigmoid at the end
    kinds = [type(m) for m in model.modules() if not list(m.children())]
    assert kinds == [nn.Flatten, nn.Linear, nn.Softplus, nn.Linear, nn.Softplus,
                     nn.Linear, nn.Softplus, nn.Linear, nn.Sigmoid]
    # its loss against the input: mean over all pixels of the squared reconstruction error
    loss = F.mse_loss(out, x.reshape(4, -1))
    assert float(loss) == pytest.approx(float(((out - x.reshape(4, -1)) ** 2).sum()) / out.numel(), rel=1e-6)


def _lstm_by_hand(model: SequenceLSTM, x: torch.Tensor) -> torch.Tensor:
    """The LSTM recurrence written out (PyTorch's gate order i, f, g, o), then the classifier."""
    lstm = model.lstm
    hidden = lstm.hidden_size
    h = torch.zeros(x.shape[0], hidden)
    c = torch.zeros(x.shape[0], hidden)
    for t in range(x.shape[1]):
        gates = x[:, t] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        i, f, g, o = gates.split(hidden, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h @ model.linear.weight.T


def test_lstm_consumes_28_steps_of_28_features():
    model = build_model("lstm", seed=0)
    x = torch.randn(5, 28, 28)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, _lstm_by_hand(model, x), rtol=1e-5, atol=1e-6)
        assert out.shape == (5, 10)
        assert torch.equal(model(x.reshape(5, 784)), out) and torch.equal(model(x.unsqueeze(1)), out)
        # the order of the steps matters: reversing time changes the output
        assert not torch.allclose(model(x.flip(1)), out)
    with pytest.raises(UsageError, match=r"input must be \(N, steps, 28\)"):
        model(torch.randn(2, 28, 30))
    wide = build_model("lstm", seed=0, in_channels=3, image_size=32)
    assert wide(torch.randn(2, 32, 96)).shape == (2, 10)


@pytest.mark.parametrize("cls", [FCP, LeNet5])
def test_softplus_by_default_relu_on_request(cls):
    default = [type(m) for m in cls().modules()]
    relu = [type(m) for m in cls(activation="relu").modules()]
    assert nn.Softplus in default and nn.ReLU not in default
    assert nn.ReLU in relu and nn.Softplus not in relu
    with pytest.raises(UsageError, match="activation must be one of 'softplus', 'relu'"):
        cls(activation="gelu")


def test_lenet_layout():
    model = LeNet5()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(6, (5, 5), (2, 2)), (16, (5, 5), (0, 0))]
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 2
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [120, 84, 10]
