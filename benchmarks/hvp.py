"""One Hessian-vector product on W3 (MLP 784-128-64-10, 2,000 samples): double-backward through a
kept gradient graph vs torch.func forward-over-reverse, both through
``Objective.hvp_function(method=...)``, plus a batch of 25 products through the kept graph
(``HessianOperator.matmat``).  Interleaved rounds, medians, torch.set_num_threads(2).

Run:  python benchmarks/hvp.py [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from topograph.core import Objective
from topograph.curvature import HessianOperator
from topograph.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model("mlp-784-128-64-10")
    torch.manual_seed(0)
    x, y = torch.randn(10000, 784)[:2000], torch.randint(0, 10, (10000,))[:2000]
    obj = Objective(model, F.cross_entropy, (x, y))
    v = torch.randn(obj.size)
    db, _ = obj.hvp_function(method="double_backward")
    fr, _ = obj.hvp_function(method="forward_over_reverse")
    op = HessianOperator(obj)
    block = torch.randn(25, obj.size)
    err = float((db(v) - fr(v)).abs().max() / db(v).abs().max())
    op.matmat(block)
    cases = {"double-backward, kept graph": lambda: db(v),
             "forward-over-reverse (torch.func)": lambda: fr(v),
             "double-backward, 25 batched (per HVP)": lambda: op.matmat(block)}
    per = {"double-backward, 25 batched (per HVP)": 25}
    times = {n: [] for n in cases}
    for _ in range(args.rounds):
        for n, f in cases.items():
            t = time.perf_counter()
            f()
            times[n].append((time.perf_counter() - t) / per.get(n, 1))
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"one HVP, W3, {args.rounds} interleaved rounds, medians (relative difference of the two "
          f"methods' results: {err:.1e})")
    for n, t in med.items():
        print(f"  {n:40s} {t * 1e3:8.2f} ms")
    base = med["double-backward, kept graph"]
    print(f"forward-over-reverse / double-backward = {med['forward-over-reverse (torch.func)'] / base:.2f}")
    print(f"batched speed-up per HVP = {base / med['double-backward, 25 batched (per HVP)']:.2f} x")


if __name__ == "__main__":
    main()
