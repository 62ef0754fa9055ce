"""W1 of perf-baseline.md: a 31×31 filter-normalised loss surface of MLP 784-128-64-10 on
10,000 samples × 784 features (961 full-data evaluations), in one process:

* ``loss-landscapes`` 3.0.6 (PyPI) ``random_plane`` — filter normalisation, distance=0.5 (its
  plane then spans [-1, 1]² in Li et al.'s units, perf-baseline §7), deepcopy_model=True;
* a plain ``torch.func.functional_call`` loop (one forward per point, loss and accuracy);
* topograph's :class:`PlaneEvaluator` without the first-layer trick (``engine="generic"``);
* the full engine (first-layer products computed once per plane, tiles of 16 points).

Rounds are interleaved and medians reported (perf-baseline §5).  Printed: seconds, points/s,
ratios as ``N x`` on a line naming the baseline, and the achieved GFLOP/s (FLOPs of each
algorithm / time) against this machine's float32 matmul rate measured in the same run on the
10000×784 @ 784×128 GEMM.  Also checked: the max relative difference between the engine and
the loop on a sub-grid.

Run:  python benchmarks/surface.py [--quick] [--rounds R] [--device cuda]
      [--threads T] [--skip-peer]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch.func import functional_call

from topograph.core import Objective
from topograph.landscape import PlaneEvaluator, random_directions
from topograph.models import build_model

warnings.filterwarnings("ignore")
SIZES = (784, 128, 64, 10)
N = 10_000


def workload(device: str):
    torch.manual_seed(0)
    model = build_model("mlp-784-128-64-10")
    torch.manual_seed(0)
    x = torch.randn(N, 784)
    y = torch.randint(0, 10, (N,))
    model = model.to(device)
    obj = Objective(model, F.cross_entropy, (x.to(device), y.to(device)), chunk_size=N)
    return model, x.to(device), y.to(device), obj


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, seconds: float = 0.6) -> float:
    """GFLOP/s of the 10000×784 @ 784×128 float32 GEMM (the first layer's shape), best of 3."""
    a = torch.randn(N, 784, device=device)
    b = torch.randn(784, 128, device=device)
    flop = 2 * N * 784 * 128
    best = 0.0
    for _ in range(3):
        torch.mm(a, b)
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            torch.mm(a, b)
            reps += 1
        sync(device)
        best = max(best, reps * flop / (time.perf_counter() - t0) / 1e9)
    return best


def flops(points: int, dims: int = 2) -> tuple[float, float]:
    """(naive, first-layer) FLOPs of the grid (perf-baseline §3)."""
    per_point = 2 * N * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    first = 2 * N * SIZES[0] * SIZES[1]
    return points * per_point, (1 + dims) * first + points * (per_point - first)


def grid(steps: int) -> torch.Tensor:
    g = torch.linspace(-1, 1, steps, dtype=torch.float64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], 1)


def run_loop(obj, d, coef, x, y):
    """One functional_call forward per point (the reference loop of perf-baseline)."""
    model = obj.module
    model.eval()
    spec = obj.spec
    out = torch.empty(coef.shape[0], dtype=torch.float64)
    acc = torch.empty(coef.shape[0], dtype=torch.float64)
    cf = coef.to(d.vectors)
    with torch.no_grad():
        for i in range(coef.shape[0]):
            theta = d.center + cf[i] @ d.vectors
            logits = functional_call(model, spec.unflatten(theta), (x,))
            out[i] = float(F.cross_entropy(logits, y))
            acc[i] = float((logits.argmax(1) == y).float().mean())
    return out, acc


def run_peer(model, x, y, steps):
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(F.cross_entropy, x, y)
    return loss_landscapes.random_plane(model, metric, distance=0.5, steps=steps,
                                        normalization="filter", deepcopy_model=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="11×11 grid, one round")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, quick 1)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU (default 2)")
    ap.add_argument("--skip-peer", action="store_true", help="do not run loss-landscapes")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    steps = 11 if args.quick else 31
    rounds = args.rounds or (1 if args.quick else 3)
    dev = args.device
    model, x, y, obj = workload(dev)
    d = random_directions(obj, seed=0, norm="filter", ignore_1d=True)
    coef = grid(steps)
    k = coef.shape[0]

    cases = {
        "full engine": lambda: PlaneEvaluator(obj, d).evaluate(coef),
        "engine without first-layer trick": lambda: PlaneEvaluator(obj, d, engine="generic").evaluate(coef),
        "functional_call loop": lambda: run_loop(obj, d, coef, x, y),
    }
    if not args.skip_peer:
        try:
            import loss_landscapes  # noqa: F401

            peer_model = copy.deepcopy(model)
            cases["loss-landscapes random_plane"] = lambda: run_peer(peer_model, x, y, steps)
        except ImportError:
            print("loss-landscapes is not installed (pip install --no-deps loss-landscapes): skipped")

    # warm-up on a small grid
    small = grid(3)
    PlaneEvaluator(obj, d).evaluate(small)
    PlaneEvaluator(obj, d, engine="generic").evaluate(small)
    run_loop(obj, d, small, x, y)
    peak = matmul_peak(dev)

    times: dict[str, list[float]] = {name: [] for name in cases}
    failed: dict[str, str] = {}
    for r in range(rounds):
        for name, fn in cases.items():
            if name in failed:
                continue
            sync(dev)
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as err:  # e.g. the peer on CUDA (its directions are made on the CPU)
                failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
                continue
            sync(dev)
            times[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1}: {name}: {times[name][-1]:.2f} s", flush=True)

    naive_flop, smart_flop = flops(k)
    med = {n: statistics.median(t) for n, t in times.items() if t}
    print()
    print(f"W1: MLP 784-128-64-10, {N} samples, {steps}x{steps} grid = {k} points, device {dev}, "
          f"threads {torch.get_num_threads()}, medians of {rounds} interleaved round(s)")
    print(f"measured float32 matmul peak (10000x784 @ 784x128): {peak:.1f} GFLOP/s")
    print(f"{'case':36s} {'seconds':>9s} {'points/s':>9s} {'GFLOP/s':>9s} {'% peak':>7s}")
    for name, t in med.items():
        fl = smart_flop if name == "full engine" else naive_flop
        rate = fl / t / 1e9
        print(f"{name:36s} {t:9.3f} {k / t:9.1f} {rate:9.1f} {100 * rate / peak:6.0f}%")
    for name, why in failed.items():
        print(f"{name:36s} failed: {why}")
    print(f"(FLOPs: naive {naive_flop / 1e9:.1f} GFLOP = one forward per point; first-layer "
          f"{smart_flop / 1e9:.1f} GFLOP, {naive_flop / smart_flop:.1f}x fewer; bounds at the measured peak "
          f"{naive_flop / peak / 1e9:.2f} s and {smart_flop / peak / 1e9:.2f} s)")
    if "full engine" in med:
        for base in ("loss-landscapes random_plane", "functional_call loop", "engine without first-layer trick"):
            if base in med:
                print(f"full engine vs {base}: {med[base] / med['full engine']:.1f} x faster")

    # correctness on a sub-grid: engine (both paths) against the loop
    sub = coef[:: max(1, k // 25)]
    ref, ref_acc = run_loop(obj, d, sub, x, y)
    for name, engine in (("full engine", "auto"), ("engine without first-layer trick", "generic")):
        lo, ac = PlaneEvaluator(obj, d, engine=engine).evaluate(sub)
        rel = float(((lo - ref).abs() / ref.abs()).max())
        print(f"correctness, {name} vs loop on {sub.shape[0]} points: max relative loss difference "
              f"{rel:.2e}, max accuracy difference {float((ac - ref_acc).abs().max()):.1e}")
    centre = obj.loss()
    print(f"loss at the centre: {centre:.5f}")


if __name__ == "__main__":
    main()
