"""topograph.curvature.exact_trace against the trace of the dense Hessian
(torch.autograd.functional.hessian of the loss of the flat vector through functional_call) and,
for smooth activations, against the dense Gauss–Newton matrix built from the network Jacobian."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, dense_hessian, flat_params, loss_of_flat, regression_data
from topograph.core import FunctionObjective, Objective, ParamSpec
from topograph.curvature import (
    HessianOperator,
    estimate_trace,
    exact_trace,
    ggn_trace,
    layer_curvature,
    supports_exact_trace,
)
from topograph.errors import UsageError

pytestmark = pytest.mark.usefixtures("one_thread")
DT = torch.float64


def data(n=23, shape=(6,), k=3, seed=0, regression=False):
    """float64 inputs with ``k`` class labels, or ``k`` float targets (regression)."""
    if regression:
        return regression_data(n, shape, k, seed, dtype=DT)
    return classification_data(n, shape, k, seed, dtype=DT)


def model(*layers, seed=0):
    # exact_trace's support depends on the layer types, so each test names its own layers
    torch.manual_seed(seed)
    return nn.Sequential(*layers).double().eval()  # the dense references run dropout off, as the Objective


def hessian(module, loss_fn, x, y):
    """The dense Hessian of ``loss_fn`` at the module's parameters (independent reference)."""
    return dense_hessian(loss_of_flat(module, x, y, loss_fn), flat_params(module))


def dense_ggn_trace(module, x, y):
    """tr((1/N) Σ_n J_nᵀ (diag p − ppᵀ) J_n) from the full Jacobian of the logits."""
    spec = ParamSpec.from_module(module)
    flat = spec.flatten(dict(module.named_parameters())).detach()
    out_fn = lambda v: torch.func.functional_call(module, spec.unflatten(v), (x,))  # noqa: E731
    jac = torch.autograd.functional.jacobian(out_fn, flat)  # N×C×P
    p = torch.softmax(out_fn(flat), dim=1)
    h_l = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    return float(torch.einsum("ncp,ncd,ndp->", jac, h_l, jac)) / x.shape[0]


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


MODELS = {
    "relu": lambda: model(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)),
    "flatten-leaky": lambda: model(nn.Flatten(), nn.Linear(6, 5), nn.LeakyReLU(0.1), nn.Dropout(0.5),
                                   nn.Linear(5, 3)),
    "nested-inplace": lambda: model(nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True)),
                                    nn.Identity(), nn.Linear(5, 4), nn.Hardtanh(-0.5, 0.5), nn.Linear(4, 3)),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("loss_fn", [F.cross_entropy, nn.CrossEntropyLoss(label_smoothing=0.1)],
                         ids=["F", "module-smoothing"])
def test_cross_entropy_matches_dense_hessian_trace(name, loss_fn):
    net = MODELS[name]()
    x, y = data(shape=(2, 3) if name == "flatten-leaky" else (6,))
    h = hessian(net, loss_fn, x, y)  # eval mode: dropout off
    net.train()  # the Objective evaluates in eval mode and restores the flags
    res = exact_trace(Objective(net, loss_fn, (x, y)))
    assert net.training and all(m.training for m in net.modules())
    assert rel(res.estimate, float(h.trace())) < 1e-8
    assert res.std_error == 0.0 and res.work.hvps == 0 and res.method == "exact-ggn"
    assert res.backward_passes == 3
    assert rel(sum(res.per_param.values()), res.estimate) < 1e-12


@pytest.mark.parametrize("loss_fn", [F.mse_loss, nn.MSELoss()], ids=["F", "module"])
def test_mse_matches_dense_hessian_trace(loss_fn):
    net = MODELS["relu"]()
    x, y = data(regression=True)
    h = hessian(net, loss_fn, x, y)
    res = exact_trace(Objective(net, loss_fn, (x, y)))
    assert rel(res.estimate, float(h.trace())) < 1e-8


def test_chunks_batch_point_and_params_block():
    net = MODELS["relu"]()
    x, y = data(n=31)
    obj = Objective(net, F.cross_entropy, {"train": (x, y), "test": (x[:9], y[:9])}, chunk_size=7)
    h, spec = hessian(net, F.cross_entropy, x, y), obj.spec
    res = exact_trace(obj)  # 5 chunks of ≤ 7 samples
    assert rel(res.estimate, float(h.trace())) < 1e-8
    assert res.backward_passes == 3 * 5

    h9 = hessian(net, F.cross_entropy, x[:9], y[:9])
    assert rel(exact_trace(obj, batch=(x[:9], y[:9])).estimate, float(h9.trace())) < 1e-8
    assert rel(exact_trace(obj, split="test").estimate, float(h9.trace())) < 1e-8

    names = ["2.weight", "4.bias"]
    idx = torch.cat([torch.arange(spec.slice_of(n).start, spec.slice_of(n).stop) for n in names])
    block = exact_trace(obj, params=names)
    assert rel(block.estimate, float(h[idx][:, idx].trace())) < 1e-8
    assert set(block.per_param) == set(names)
    for n in spec.names:  # per-tensor diagonal blocks
        sl = spec.slice_of(n)
        assert rel(res.per_param[n], float(h[sl, sl].trace())) < 1e-8

    # another point θ (flat), the module's own weights untouched
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    theta = obj.flat_params() + 0.3 * torch.randn(obj.size, generator=gen, dtype=DT)
    net2 = MODELS["relu"]()
    torch.nn.utils.vector_to_parameters(theta, net2.parameters())
    h2 = hessian(net2, F.cross_entropy, x, y)
    assert rel(exact_trace(obj, theta).estimate, float(h2.trace())) < 1e-8
    assert rel(exact_trace(obj, spec.unflatten(theta)).estimate, float(h2.trace())) < 1e-8
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_smooth_activation_refused_and_ggn_differs_from_hessian():
    net = model(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = data()
    obj = Objective(net, F.cross_entropy, (x, y))
    ok, why = supports_exact_trace(obj)
    assert not ok and "Tanh" in why and "piecewise linear" in why
    with pytest.raises(UsageError, match="Tanh"):
        exact_trace(obj)
    g = ggn_trace(obj)
    assert rel(g.estimate, dense_ggn_trace(net, x, y)) < 1e-8
    h = hessian(net, F.cross_entropy, x, y)
    assert rel(g.estimate, float(h.trace())) > 1e-3  # the dropped term matters off piecewise-linear


def test_ggn_equals_dense_gauss_newton_for_relu_too():
    net = MODELS["relu"]()
    x, y = data()
    res = ggn_trace(Objective(net, F.cross_entropy, (x, y)))
    assert res.method == "ggn" and rel(res.estimate, dense_ggn_trace(net, x, y)) < 1e-8


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("build, loss_fn, match", [
    (lambda: Custom().double(), F.cross_entropy, "plain nn.Sequential"),
    (lambda: model(nn.Linear(6, 3), nn.BatchNorm1d(3)), F.cross_entropy, "BatchNorm1d"),
    (lambda: model(nn.Linear(6, 3)), F.nll_loss, "nll_loss is not supported"),
    (lambda: model(nn.Linear(6, 3)), nn.CrossEntropyLoss(reduction="sum"), "reduction='mean'"),
    (lambda: model(nn.Linear(6, 3)), nn.CrossEntropyLoss(weight=torch.ones(3)), "weight=None"),
])
def test_unsupported_models_and_losses(build, loss_fn, match):
    x, y = data()
    obj = Objective(build(), loss_fn, (x, y))
    ok, why = supports_exact_trace(obj)
    assert not ok
    with pytest.raises(UsageError, match=match) as err:
        exact_trace(obj)
    assert "\n" not in str(err.value)


def test_shared_layer_function_objective_and_bad_params():
    lin = nn.Linear(4, 4)
    obj = Objective(model(lin, nn.ReLU(), lin), F.mse_loss, data(shape=(4,), k=4, regression=True))
    with pytest.raises(UsageError, match="used twice"):
        exact_trace(obj)
    assert not supports_exact_trace(FunctionObjective(lambda v: (v**2).sum(-1), dim=2))[0]
    x, y = data(shape=(2, 3))
    with pytest.raises(UsageError, match="add nn.Flatten"):
        exact_trace(Objective(model(nn.Linear(3, 3)), F.cross_entropy, (x, y)))
    with pytest.raises(UsageError, match="nope"):
        exact_trace(Objective(MODELS["relu"](), F.cross_entropy, data()), params=["nope"])


def test_estimate_trace_dispatch_and_per_layer():
    net = MODELS["relu"]()
    x, y = data()
    obj = Objective(net, F.cross_entropy, (x, y))
    h, spec = hessian(net, F.cross_entropy, x, y), obj.spec
    for method in ("exact", "auto"):
        res = estimate_trace(HessianOperator(obj), method=method)
        assert res.method == "exact-ggn" and rel(res.estimate, float(h.trace())) < 1e-8
    layers = layer_curvature(obj, trace_method="exact", trace_probes=3)
    for layer in layers:
        idx = torch.cat([torch.arange(spec.slice_of(n).start, spec.slice_of(n).stop)
                         for n in layer.params])
        assert rel(layer.trace, float(h[idx][:, idx].trace())) < 1e-8 and layer.trace_std_error == 0.0

    smooth = Objective(model(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)), F.cross_entropy, (x, y))
    assert estimate_trace(HessianOperator(smooth), method="auto", probes=9).method == "hutch++"
    with pytest.raises(UsageError, match="'exact' does not apply.*Tanh"):
        estimate_trace(HessianOperator(smooth), method="exact")
