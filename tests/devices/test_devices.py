"""The evaluation engine and the landscape-aware optimizers on an accelerator, against the CPU.

Each test runs the same float64 computation on the CPU and on ``TOPOGRAPH_TEST_DEVICE``
(default ``cuda``) and asks for the same numbers to rounding: the optimizers' state, their
probe directions (drawn on the CPU by design), the first-layer span of the probes and line
searches, the quasi-Newton carry, checkpoints moved between devices, and the trainer.  Where
no GPU is present the module is skipped; ``TOPOGRAPH_TEST_DEVICE=cpu`` runs it on the CPU to
check the tests themselves.  On a GPU machine: ``python -m pytest tests/devices`` (≈ 10 s), then
``python benchmarks/surface.py --device cuda`` for the grouped (vmap-ed) evaluation's speed.
"""

from __future__ import annotations

import copy
import io
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import classification_data, tiny_conv_bn, tiny_mlp
from topograph.core import Objective, SubspaceEvaluator
from topograph.optim.closure import MinibatchClosure
from topograph.optim.guided import GuidedExploration
from topograph.optim.quasi_newton import QuasiNewton
from topograph.optim.rolling_ball import RollingBall
from topograph.runs import RunConfig, train

DEVICE = os.environ.get("TOPOGRAPH_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(),
    reason="no CUDA device here: the device paths run where a GPU is (TOPOGRAPH_TEST_DEVICE=cpu checks these tests)",
)
DT = torch.float64


def mlp() -> nn.Sequential:
    return tiny_mlp((6, 16, 16, 3)).to(DT)


def batches(n: int = 8, rows: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [classification_data(rows, (6,), 3, seed=1 + i, dtype=DT) for i in range(n)]


def plain_closure(opt, model, box):
    def closure(backward: bool = True):
        opt.zero_grad()
        x, y = box[0]
        with torch.set_grad_enabled(backward or torch.is_grad_enabled()):
            loss = F.cross_entropy(model(x), y)
        if backward:
            loss.backward()
        return loss  # attached to the graph when gradients are on (Lanczos needs it)

    return closure


SETUPS = {  # name: (factory(model) -> optimizer, closure kind, full batch)
    "rolling-ball": (lambda m: RollingBall(m.parameters(), lr=0.1, radius=0.5, proj_lr=0.05, proj_steps=5,
                                           proj_init="gd", modules=m), "plain", False),
    "ge-sgd-closure": (lambda m: GuidedExploration(torch.optim.SGD(m.parameters(), lr=0.1), explore_every=2,
                                                   beta=0.5, modules=m), "plain", False),
    "ge-sgd-span": (lambda m: GuidedExploration(torch.optim.SGD(m.parameters(), lr=0.1), explore_every=2,
                                                beta=0.5, modules=m), "span", False),
    "ge-adam-lanczos-lookahead": (lambda m: GuidedExploration(torch.optim.Adam(m.parameters(), lr=0.01),
                                                              explore_every=3, hvp_iters=4, lookahead_alpha=0.3,
                                                              modules=m), "plain", False),
    "quasi-newton-span": (lambda m: QuasiNewton(m.parameters(), max_iter=12, tolerance_grad=0,
                                                tolerance_change=0), "span", True),
    "quasi-newton-dense": (lambda m: QuasiNewton(m.parameters(), max_iter=4, dense=True, tolerance_grad=0,
                                                 tolerance_change=0), "plain", True),
}


def run(name: str, device: str, steps: int = 6, *, stop_after: int | None = None, resume: dict | None = None):
    """``steps`` optimizer steps of setup ``name`` on ``device``; returns (flat parameters on the
    CPU, the optimizer's state dict, counts).  ``stop_after``: return the state after that many
    steps; ``resume``: the model and optimizer state to start from (and its step count)."""
    make, kind, full = SETUPS[name]
    model = mlp().to(device)
    opt = make(model)
    data = [(x.to(device), y.to(device)) for x, y in batches()]
    if full:
        data = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    first = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        first = resume["step"]
    box = [data[0]]
    closure = MinibatchClosure(model, F.cross_entropy) if kind == "span" else plain_closure(opt, model, box)
    for t in range(first, steps if stop_after is None else stop_after):
        box[0] = data[t % len(data)]
        if kind == "span":
            closure.batch = box[0]
        opt.step(closure)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu()
    state = {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(opt.state_dict()),
             "step": steps if stop_after is None else stop_after}
    return flat, state, getattr(opt, "counts", None)


@pytest.mark.parametrize("name", list(SETUPS))
def test_optimizer_on_the_device_matches_the_cpu(name):
    on_cpu, _, counts_cpu = run(name, "cpu")
    on_device, _, counts_device = run(name, DEVICE)
    assert torch.isfinite(on_device).all()
    assert torch.allclose(on_device, on_cpu, rtol=1e-7, atol=1e-9), (on_device - on_cpu).abs().max()
    if counts_cpu is not None:  # the counters exactly, the float diagnostics to rounding
        for key, value in vars(counts_cpu).items():
            other = vars(counts_device)[key]
            if isinstance(value, float):
                assert other == pytest.approx(value, rel=1e-7, abs=1e-12, nan_ok=True), key
            else:
                assert other == value, key


@pytest.mark.parametrize("name", ["rolling-ball", "ge-sgd-span", "quasi-newton-span"])
def test_a_checkpoint_taken_on_the_device_resumes_identically(name):
    whole, _, _ = run(name, DEVICE, steps=6)
    _, half, _ = run(name, DEVICE, steps=6, stop_after=3)
    buffer = io.BytesIO()  # through a file, as a checkpoint travels, and through the CPU
    torch.save(half, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, map_location="cpu", weights_only=True)
    resumed, _, _ = run(name, DEVICE, steps=6, resume=loaded)
    assert torch.equal(resumed, whole)


def test_probe_directions_are_the_same_numbers_on_the_device():
    model = mlp()
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    opt = GuidedExploration(torch.optim.SGD(model.parameters(), lr=0.1))
    on_cpu = opt.directions(theta, [1234])[0]
    on_device = opt.directions(theta.to(DEVICE), [1234])[0]
    assert on_device.device.type == torch.device(DEVICE).type
    assert torch.allclose(on_device.cpu(), on_cpu, rtol=1e-12, atol=1e-15)


def test_span_losses_and_gradient_on_the_device_match_the_cpu():
    x, y = batches(1, rows=64)[0]
    results = []
    for device in ("cpu", DEVICE):
        model = mlp().to(device)
        params = list(model.parameters())
        closure = MinibatchClosure(model, F.cross_entropy)
        closure.batch = (x.to(device), y.to(device))
        centre = torch.cat([p.detach().reshape(-1) for p in params])
        vectors = torch.randn(2, centre.numel(), generator=torch.Generator().manual_seed(3), dtype=DT).to(device)
        span = closure.span(centre, vectors, params=params)
        assert span is not None
        losses = span.losses(torch.tensor([[0.0, 0.0], [0.1, -0.2], [-0.3, 0.05]], dtype=DT))
        loss, grad = span.value_and_grad(torch.tensor([0.1, -0.2], dtype=DT))
        results.append((losses.cpu(), loss.cpu(), grad.cpu()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer", [
    {"name": "guided-exploration", "explore_every": 4, "base": {"name": "sgd", "lr": 0.1}},
    {"name": "rolling-ball", "lr": 0.1, "radius": 1.0, "proj_steps": 3},
    {"name": "quasi-newton", "history_size": 5},
])
def test_trainer_runs_the_optimizer_on_the_device(tmp_path, optimizer):
    summaries = []
    for device in ("cpu", DEVICE):
        doc = {"run": {"name": f"on-{device.replace(':', '-')}", "epochs": 2, "threads": 1, "device": device},
               "data": {"name": "digits", "batch_size": 64, "limit_train": 256},
               "model": {"name": "mlp-digits"}, "optimizer": optimizer}
        summaries.append(train(RunConfig.from_dict(doc), tmp_path, seed=0, progress=False).summary)
    cpu, dev = summaries
    assert dev["backward_passes"] == cpu["backward_passes"] and dev["forward_passes"] == cpu["forward_passes"]
    for key, value in cpu["final"].items():  # float32 training: the same run to rounding, not bitwise
        if key.endswith("_loss"):  # (an accuracy moves in steps of one sample)
            assert dev["final"][key] == pytest.approx(value, rel=1e-2), key


@pytest.mark.parametrize("engine", ["generic", "first-layer"])
def test_grouped_conv_evaluation_on_the_device_matches_the_cpu(engine):
    """On a GPU the engine evaluates points in vmap-ed groups (grouped convolutions over the points,
    the device default): the same losses as the CPU's point-by-point passes, BatchNorm in eval mode."""
    x, y = classification_data(40, (3, 6, 6), 3)
    results = []
    for device in ("cpu", DEVICE):
        model = tiny_conv_bn(channels=3).to(DT).to(device)
        obj = Objective(model, F.cross_entropy, (x.to(DT), y), chunk_size=16, device=device)
        vectors = torch.randn(2, obj.size, generator=torch.Generator().manual_seed(4), dtype=DT).to(device) * 0.05
        coef = torch.rand(9, 2, generator=torch.Generator().manual_seed(5), dtype=DT)
        losses, accuracies = SubspaceEvaluator(obj, obj.flat_params(), vectors, engine=engine).evaluate(coef)
        results.append((losses, accuracies))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(results[1][1], results[0][1])
