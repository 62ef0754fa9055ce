"""Benchmark: one FourierPathFinder optimisation between two Fashion-MNIST MLP solutions.

Workload: model ``mlp-fmnist`` (784-64-64-32-10), the first 10,000 training images of
Fashion-MNIST, two solutions = two random initialisations (seeds 0 and 1) each trained for ONE
epoch of plain SGD (lr 0.1, batch 64) on those 10,000 images; FourierPathFinder with N = 10 terms,
M = 51 points, 100 Adam steps (lr 1e-3), λ = 1e-4, soft-max reduction, full batch.

Compared in the same run, per optimisation step (each step costs the same: full batch):

* ``point-by-point loop`` — the baseline: for each of the 51 points one
  ``Objective.value_and_grad`` call (the way the authors' notebook accumulates Algorithm 2),
  then ∂J/∂b_n = Σ_m w_m g_m sin(nπt_m) + regulariser; run for ``--baseline-steps`` steps;
* ``batched, generic engine`` — all 51 points per data chunk through ``Objective.losses``;
* ``batched, first-layer engine`` — the first layer's pre-activations computed once per chunk
  for the 12 path vectors (ω¹, ω², b_1..b_10) instead of once per point.

Prints a table and ``N x`` ratios naming the baseline, and checks that the first steps' objective
values agree between the baseline and the batched engines.

    python benchmarks/paths.py            # the workload above
    python benchmarks/paths.py --quick    # 10 steps, for a smoke check
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from topograph.core import Objective
from topograph.data import load_dataset
from topograph.models import build_model
from topograph.paths import FourierPath, FourierPathFinder, path_reduction


def data_root() -> Path:
    env = os.environ.get("TOPOGRAPH_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"


def load_train(n: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` Fashion-MNIST training images (flat, normalised) and labels."""
    try:
        ds = load_dataset("fashion-mnist", root=data_root(), flatten=True, limit_train=n, limit_test=n)
        return ds.splits["train"]
    except ImportError:  # the loader is not there yet: read the official IDX files directly
        import gzip

        import numpy as np

        root = data_root()
        with gzip.open(root / "train-images-idx3-ubyte.gz") as f:
            imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:n]
        with gzip.open(root / "train-labels-idx1-ubyte.gz") as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
        x = torch.tensor(imgs, dtype=torch.float32) / 255.0
        return (x - x.mean()) / x.std(), torch.tensor(labels, dtype=torch.long)


def train_one_epoch(seed: int, x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    model = build_model("mlp-fmnist", seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    for i in range(0, x.shape[0], 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def naive_fpf(objective, a, b, *, steps, points=51, n_terms=10, lr=1e-3, reg=1e-4, temperature=0.05):
    """FourierPathFinder with a per-point loop (value_and_grad at each point), soft-max objective."""
    path = FourierPath(a, b, n_terms=n_terms)
    opt = torch.optim.Adam([path.control], lr=lr)
    t = torch.linspace(0, 1, points)
    sines = torch.sin(math.pi * t[:, None] * torch.arange(1, n_terms + 1)[None])
    reduce = path_reduction("softmax", temperature=temperature)
    history = []
    for _ in range(steps):
        with torch.no_grad():
            pts = path.points(t)
        losses, grads = [], []
        for m in range(points):
            val, g = objective.value_and_grad(pts[m])
            losses.append(val)
            grads.append(g)
        lo = torch.tensor(losses, requires_grad=True)
        value = reduce(lo)
        (w,) = torch.autograd.grad(value, lo)
        grad_b = sines.T @ (w.float()[:, None] * torch.stack(grads))
        opt.zero_grad()
        pts = path.points(t)
        penalty = reg * (pts[1:] - pts[:-1]).pow(2).sum()
        penalty.backward()
        path.control.grad += grad_b
        opt.step()
        history.append(float(value.detach()) + float(penalty.detach()))
    return history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 steps instead of 100")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--baseline-steps", type=int, default=10,
                    help="steps of the point-by-point baseline (per-step time is compared)")
    args = ap.parse_args()
    steps = 10 if args.quick else args.steps
    base_steps = min(args.baseline_steps, steps)

    x, y = load_train(10_000)
    t0 = time.perf_counter()
    models = [train_one_epoch(s, x, y) for s in (0, 1)]
    print(f"trained two solutions (1 epoch plain SGD, seeds 0/1) in {time.perf_counter() - t0:.1f} s")
    objective = Objective(models[0], F.cross_entropy, {"train": (x, y)})
    a = objective.flat_params()
    b = Objective(models[1], F.cross_entropy).flat_params()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, P = {a.numel()}, "
          f"N = {x.shape[0]}, M = 51, N_F = 10, steps = {steps} (baseline {base_steps})")

    rows = []
    t0 = time.perf_counter()
    base_hist = naive_fpf(objective, a, b, steps=base_steps)
    base_per_step = (time.perf_counter() - t0) / base_steps
    rows.append(("point-by-point loop (baseline)", base_per_step, None, None))
    for engine in ("generic", "first-layer"):
        finder = FourierPathFinder(points=51, steps=steps, lr=1e-3, reg=1e-4, reduction="softmax",
                                   engine=engine, dense_points=51, eval_splits=("train",), keep_best=False,
                                   progress=False)
        t0 = time.perf_counter()
        res = finder.find(objective, a, b)
        total = time.perf_counter() - t0
        per_step = total / (steps + 1)  # +1: the 51-point dense evaluation costs < one step
        agree = max(abs(p - q) / max(abs(q), 1e-12) for p, q in zip(res.history["value"], base_hist))
        rows.append((f"batched, {engine} engine", per_step, res, agree))

    print(f"\n{'method':<34}{'s/step':>10}{'100 steps (s)':>15}{'H (dense)':>11}{'rel. diff':>11}")
    for name, per, res, agree in rows:
        h = f"{res.height:.4f}" if res is not None else "-"
        d = f"{agree:.1e}" if agree is not None else "-"
        print(f"{name:<34}{per:>10.3f}{per * 100:>15.1f}{h:>11}{d:>11}")
    print()
    straight = rows[-1][2]
    for name, per, _, _ in rows[1:]:
        print(f"{name}: {base_per_step / per:.1f} x faster than the point-by-point loop (baseline)")
    print(f"found path H = {straight.height:.4f} (ΔH = {straight.barrier:.4f}) after {steps} steps")


if __name__ == "__main__":
    main()
