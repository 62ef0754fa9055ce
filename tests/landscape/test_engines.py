"""The evaluation engines on planes of map directions: the first-layer shortcut, the vmapped and
the per-point generic paths and worker threads give the same losses and accuracies; the shortcut
refused where it cannot apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import ReshapingCNN, classification_data, tiny_mlp
from topograph.core import Objective, SubspaceEvaluator
from topograph.errors import UsageError
from topograph.landscape import random_directions

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models
#: the shared tiny models on 6 inputs and 3 classes: an MLP, one with BatchNorm, a conv net
MODELS = {"mlp": lambda: tiny_mlp((6, 5, 4, 3)), "bn-mlp": lambda: tiny_mlp((6, 5, 3), batchnorm=True),
          "cnn": ReshapingCNN}


def plane(obj, d, **settings) -> SubspaceEvaluator:
    """The core evaluator of the plane of directions ``d``."""
    return SubspaceEvaluator(obj, d.center, d.vectors, **settings)


@pytest.mark.parametrize("make", ["mlp", "bn-mlp"])
def test_first_layer_engine_equals_generic(make):
    module = MODELS[make]()
    x, y = classification_data(70, (6,))
    obj = Objective(module, F.cross_entropy, (x, y), chunk_size=32)
    d = random_directions(obj, seed=0, norm="layer", ignore_1d=False)  # bias directions non-zero
    coef = torch.randn(23, 2, generator=torch.Generator().manual_seed(0))
    fast = plane(obj, d, engine="first-layer", tile_elements=40, points_per_pass=4)
    slow = plane(obj, d, engine="generic")
    assert fast.resolved_engine() == "first-layer" and slow.resolved_engine() == "generic"
    lf, af = fast.evaluate(coef)
    lg, ag = slow.evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag, rtol=0, atol=1e-12)


def test_first_layer_engine_with_a_custom_loss_and_frozen_layer():
    module = tiny_mlp((6, 5, 4, 3))
    module[3].weight.requires_grad_(False)  # a frozen later layer stays constant
    x, y = classification_data(30, (6,))

    def loss_fn(out, target):  # not cross_entropy: goes through vmap
        return ((out.softmax(-1) - F.one_hot(target, 3).float()) ** 2).sum(-1).mean()

    obj = Objective(module, loss_fn, (x, y))
    d = random_directions(obj, seed=4)
    coef = torch.rand(7, 2) * 2 - 1
    lf, af = plane(obj, d, engine="first-layer").evaluate(coef)
    lg, ag = plane(obj, d, engine="generic").evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag)


def test_first_layer_shortcut_on_a_conv_net_that_reshapes_its_input():
    obj = Objective(ReshapingCNN(), F.cross_entropy, classification_data(48, (6,)))  # a custom forward: view, pad, then the conv
    assert obj.first_layer()[0].name == "conv"
    d = random_directions(obj, seed=2, norm="layer", ignore_1d=False)
    coef = torch.rand(5, 2) * 2 - 1
    lf, af = plane(obj, d, engine="first-layer").evaluate(coef)
    lg, ag = plane(obj, d, engine="generic").evaluate(coef)
    torch.testing.assert_close(lf, lg, rtol=1e-5, atol=0)
    torch.testing.assert_close(af, ag)


def test_first_layer_requested_where_it_cannot_apply_is_a_usage_error():
    module = tiny_mlp((6, 4, 3))
    module[1].weight.requires_grad_(False)  # a frozen first weight: no directions along it
    obj = Objective(module, F.cross_entropy, classification_data(48, (6,)))
    with pytest.raises(UsageError, match="first-layer.*frozen"):
        plane(obj, random_directions(obj), engine="first-layer").evaluate(torch.zeros(1, 2))


@pytest.mark.parametrize("make", ["mlp", "cnn"])
def test_vmapped_generic_path_equals_per_point_path(make):
    module = MODELS[make]()
    obj = Objective(module, F.cross_entropy, classification_data(30, (6,)), chunk_size=16)
    d = random_directions(obj, seed=6)
    coef = torch.rand(9, 2) * 2 - 1
    lv, av = plane(obj, d, engine="generic", vectorize=True, points_per_pass=4).evaluate(coef)
    lp, ap = plane(obj, d, engine="generic", vectorize=False).evaluate(coef)
    torch.testing.assert_close(lv, lp, rtol=1e-5, atol=0)
    torch.testing.assert_close(av, ap)


def test_worker_threads_give_the_same_values_and_restore_threads():
    module = tiny_mlp((6, 5, 4, 3))
    obj = Objective(module, F.cross_entropy, classification_data(90, (6,)), chunk_size=50)
    d = random_directions(obj, seed=9)
    coef = torch.rand(11, 2) * 2 - 1
    one = plane(obj, d, engine="first-layer", workers=1, tile_elements=64, points_per_pass=4).evaluate(coef)
    threads = torch.get_num_threads()
    two = plane(obj, d, engine="first-layer", workers=2, tile_elements=64, points_per_pass=4).evaluate(coef)
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(one[0], two[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(one[1], two[1])


def test_linear_on_the_last_axis_of_3d_inputs():
    torch.manual_seed(0)  # no Flatten: the first Linear acts on the last axis of 3-D inputs
    module = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))

    def loss_fn(out, target):  # out (N, T, 3): mean over tokens
        return F.cross_entropy(out.reshape(-1, 3), target.reshape(-1))

    x = torch.randn(10, 2, 4)
    y = torch.randint(0, 3, (10, 2))
    obj = Objective(module, loss_fn, (x, y))
    d = random_directions(obj, seed=0)
    ev = plane(obj, d, engine="first-layer")
    lo, _ = ev.evaluate(torch.tensor([[0.0, 0.0], [0.3, -0.2]]))
    assert lo[0].item() == pytest.approx(obj.loss(), rel=1e-6)
    assert lo[1].item() == pytest.approx(obj.loss(d.point([0.3, -0.2])), rel=1e-6)
