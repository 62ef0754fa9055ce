"""Surfaces: topograph's engine against loss-landscapes, a plain loop and this machine's bound.

Workloads (``--case``, default all), each a filter-normalised random plane, measured in one
process with the cases interleaved (rounds, medians):

``mlp``     W1: MLP 784-128-64-10 on 10,000 Gaussian samples, a 31×31 grid (961 points).
``cnn``     ``cnn-small`` (conv32-pool-conv64-pool-fc128-fc10) on 2,000 images 1×28×28, 7×7.
``resnet``  CIFAR ResNet-20 with BatchNorm (eval mode) on 1,000 images 3×32×32, 5×5.

Baselines for every case:

* ``loss-landscapes`` 3.0.6 (PyPI) ``random_plane`` — filter normalisation, distance 0.5
  (its plane then spans [-1, 1]² in Li et al.'s units), deepcopy_model=True; a crash is printed
  as such (it divides by zero in its filter normalisation of BatchNorm's 1-D tensors);
* a plain ``torch.func.functional_call`` loop: one point at a time, the data in batches of
  128 (what Li et al.'s code does with its DataLoader); for the MLP, the whole data at once;
* the bound: this machine's best forward throughput for the model, measured here — the
  fastest of several chunk sizes and both memory layouts, × points × samples.  An engine
  that evaluates every point by a forward pass cannot beat it; the first-layer shortcut can.

Printed: seconds, points/s, the ratios on lines naming the baseline, and a correctness check
(the engine's losses against the loop's on a few points).

On a GPU (``--device cuda``) the engine evaluates the points in vmap-ed groups (grouped
convolutions over 64 points at a time): the way to check that path's speed where one is lent.

Run:  python benchmarks/surface.py [--case mlp|cnn|resnet] [--quick] [--rounds R] [--skip-peer]
      [--device cuda]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from topograph.core import Objective, SubspaceEvaluator
from topograph.landscape import random_directions
from topograph.models import build_model

warnings.filterwarnings("ignore")


@dataclass
class Case:
    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    steps: int           # grid points per axis
    loop_batch: int      # the plain loop's batch size


def sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def make_case(name: str, quick: bool) -> Case:
    torch.manual_seed(0)
    if name == "mlp":
        n = 2000 if quick else 10_000
        return Case("W1: MLP 784-128-64-10", build_model("mlp-784-128-64-10", seed=0), torch.randn(n, 784),
                    torch.randint(0, 10, (n,)), 11 if quick else 31, n)
    if name == "cnn":
        n = 500 if quick else 2000
        return Case("cnn-small", build_model("cnn-small", seed=0), torch.randn(n, 1, 28, 28),
                    torch.randint(0, 10, (n,)), 3 if quick else 7, 128)
    n = 200 if quick else 1000
    model = build_model("resnet20", seed=0)
    model.train()
    with torch.no_grad():  # running statistics of real batches, not the initial 0/1
        for _ in range(3):
            model(torch.randn(64, 3, 32, 32))
    return Case("ResNet-20 (BatchNorm, eval mode)", model.eval(), torch.randn(n, 3, 32, 32),
                torch.randint(0, 10, (n,)), 3 if quick else 5, 128)


def grid(steps: int) -> torch.Tensor:
    g = torch.linspace(-1, 1, steps, dtype=torch.float64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], 1)


@torch.no_grad()
def run_loop(case: Case, d, coef) -> torch.Tensor:
    """One point at a time, ``functional_call`` on batches of ``loop_batch`` samples."""
    model = case.model.eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    out = torch.empty(coef.shape[0], dtype=torch.float64)
    for i, c in enumerate(coef.to(d.vectors)):
        theta = d.center + c @ d.vectors
        params = dict(zip(names, (t.view(s) for t, s in zip(torch.split(theta, [s.numel() for s in shapes]), shapes))))
        total = 0.0
        for j in range(0, case.x.shape[0], case.loop_batch):
            xb, yb = case.x[j:j + case.loop_batch], case.y[j:j + case.loop_batch]
            total += float(F.cross_entropy(functional_call(model, (params, buffers), (xb,)), yb)) * xb.shape[0]
        out[i] = total / case.x.shape[0]
    return out


def run_peer(case: Case, steps: int):
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(F.cross_entropy, case.x, case.y)
    return loss_landscapes.random_plane(copy.deepcopy(case.model), metric, distance=0.5, steps=steps,
                                        normalization="filter", deepcopy_model=True)


@torch.no_grad()
def forward_rate(case: Case, seconds: float = 1.5) -> tuple[float, str]:
    """Samples per second of the best-chunked no-grad forward pass (chunk sizes × memory layouts)."""
    model = case.model.eval()
    best, how = 0.0, ""
    layouts = [False, True] if case.x.ndim == 4 else [False]
    for chunk in (32, 64, 128, 256, 512, case.x.shape[0]):
        for channels_last in layouts:
            m = copy.deepcopy(model).to(memory_format=torch.channels_last) if channels_last else model
            x = case.x.to(memory_format=torch.channels_last) if channels_last else case.x
            m(x[:chunk])  # warm-up
            sync(x)
            done, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / (6 * len(layouts)):
                for j in range(0, x.shape[0], chunk):
                    m(x[j:j + chunk])
                done += x.shape[0]
            sync(x)
            rate = done / (time.perf_counter() - t0)
            if rate > best:
                best, how = rate, f"chunks of {min(chunk, x.shape[0])}, {'channels-last' if channels_last else 'contiguous'}"
    return best, how


def measure(case: Case, rounds: int, skip_peer: bool) -> None:
    obj = Objective(case.model, F.cross_entropy, (case.x, case.y))
    d = random_directions(obj, seed=0, norm="filter", ignore_1d=True)
    coef = grid(case.steps)
    k = coef.shape[0]
    cases: dict[str, Callable[[], object]] = {
        "topograph (engine auto)": lambda: SubspaceEvaluator(obj, d.center, d.vectors).evaluate(coef),
        "topograph, generic engine": lambda: SubspaceEvaluator(obj, d.center, d.vectors,
                                                               engine="generic").evaluate(coef),
        f"functional_call loop (batches of {case.loop_batch})": lambda: run_loop(case, d, coef),
    }
    if not skip_peer:
        cases["loss-landscapes random_plane"] = lambda: run_peer(case, case.steps)
    engine = SubspaceEvaluator(obj, d.center, d.vectors).resolved_engine()
    small = grid(2)
    SubspaceEvaluator(obj, d.center, d.vectors).evaluate(small)  # warm-up
    rate, how = forward_rate(case)
    times: dict[str, list[float]] = {name: [] for name in cases}
    failed: dict[str, str] = {}
    for r in range(rounds):
        for name, fn in cases.items():
            if name in failed:
                continue
            t0 = time.perf_counter()
            try:
                fn()
                sync(case.x)
            except Exception as err:  # the peer's crash is a result, printed below
                failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:90] if str(err) else ''}"
                continue
            times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1}: {name}: {times[name][-1]:.2f} s", flush=True)
    bound = k * case.x.shape[0] / rate
    med = {n: statistics.median(t) for n, t in times.items() if t}
    print(f"\n{case.name}: {case.x.shape[0]} samples {tuple(case.x.shape[1:])}, {case.steps}x{case.steps} grid = {k} "
          f"points, {torch.get_num_threads()} threads, medians of {rounds} interleaved round(s); engine auto = {engine}")
    print(f"bound: best forward {rate:,.0f} samples/s ({how}) -> {bound:.2f} s for the grid")
    print(f"{'case':44s} {'seconds':>8s} {'points/s':>9s} {'% of bound':>10s}")
    for name, t in med.items():
        print(f"{name:44s} {t:8.2f} {k / t:9.2f} {100 * bound / t:9.0f}%")
    for name, why in failed.items():
        print(f"{name:44s} failed: {why}")
    ours = med.get("topograph (engine auto)")
    if ours:
        for base in cases:
            if base in med and base != "topograph (engine auto)":
                print(f"topograph vs {base}: {med[base] / ours:.1f} x faster")
    sub = coef[:: max(1, k // 5)]
    ref = run_loop(case, d, sub)
    got, _ = SubspaceEvaluator(obj, d.center, d.vectors).evaluate(sub)
    print(f"correctness: max relative difference to the loop on {sub.shape[0]} points "
          f"{float(((got - ref).abs() / ref.abs()).max()):.1e}\n", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=("mlp", "cnn", "resnet"), action="append",
                    help="workload(s) to run (repeatable; default all)")
    ap.add_argument("--quick", action="store_true", help="small grids and data, one round")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--skip-peer", action="store_true", help="do not run loss-landscapes")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 3)
    for name in args.case or ("mlp", "cnn", "resnet"):
        case = make_case(name, args.quick)
        case.model, case.x, case.y = case.model.to(args.device), case.x.to(args.device), case.y.to(args.device)
        measure(case, rounds, args.skip_peer)


if __name__ == "__main__":
    main()
