"""What each of GuidedExploration's optimisations pays: GE(SGD) / SGD per epoch with each one
switched off (or a candidate switched on) in turn, in one process (interleaved in blocks of 10 steps, medians over epochs and
rounds).

Workload: ``benchmarks/optimizers.py``'s mini-batch case — mlp-fmnist, 10,000 Fashion-MNIST
images, batch 128, SGD lr 0.05, GE at its defaults, a ``MinibatchClosure``.  The rule (issue
"one evaluation engine"): an optimisation stays only if switching it off costs at least 5 % of
GE's time.

    python benchmarks/ge_ablation.py [REPEATS ROUNDS]                 # the current code
    git worktree add /tmp/old-ge ffaaa51
    python benchmarks/ge_ablation.py --old /tmp/old-ge [REPEATS ROUNDS]  # the earlier code

The switches patch module attributes of the code under test (a benchmark's business, never the
library's); ``--old`` imports topograph from the given checkout instead of the installed one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def signature_every_call(closure, *, backward: bool, forward_only_ok=None):
    """evaluate_closure as it was: the closure's signature read on every call, backward ones too."""
    from topograph.optim.closure import accepts_backward, evaluate_closure

    if backward and accepts_backward(closure):
        with torch.enable_grad():
            return closure(backward=True).detach(), True
    return evaluate_closure(closure, backward=backward, forward_only_ok=forward_only_ok)


def per_tensor_norms(grads) -> torch.Tensor:
    """‖g‖ from one norm per tensor, stacked (instead of torch.nn.utils.get_total_norm's fused call)."""
    return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]), dtype=torch.float64)


def switches(old: bool):
    """{name: function(patch)} — each changes one thing through ``patch(obj, attr, value)``: on the
    earlier code it switches one of its optimisations off; on the current code it tries a
    candidate (+) or undoes a choice (−)."""
    from topograph.optim import guided

    if not old:
        return {
            "- closure signature read on backward calls too (before 2026-12-05)":
                lambda patch: patch(guided, "evaluate_closure", signature_every_call),
            "- ‖g‖ by per-tensor norms, not one get_total_norm call":
                lambda patch: patch(torch.nn.utils, "get_total_norm", per_tensor_norms),
        }
    from topograph.optim.closure import accepts_backward  # the earlier code's module layout

    return {
        "- directions drawn for blocks of seeds at once": lambda patch: patch(guided, "SEED_BLOCK", 1),
        "- accepts_backward cached per closure object":
            lambda patch: patch(guided.GuidedExploration, "_accepts_backward", lambda self, c: accepts_backward(c)),
        "- skip Optimizer.step's hook and profiler wrapper": lambda patch: patch(guided, "_hooks_or_profiler",
                                                                                lambda opt: True),
        "- own zero_grad override": lambda patch: patch(guided.GuidedExploration, "zero_grad",
                                                        torch.optim.Optimizer.zero_grad),
        "- gradient norms kept pending between events": lambda patch: patch(guided, "PENDING_NORMS_MAX", 1),
    }


def epoch_ratio(x, y, switch_off, *, repeats: int, old: bool, batch: int = 128, block: int = 10) -> float:
    from topograph.models import build_model
    from topograph.optim.guided import GuidedExploration

    if old:
        from topograph.optim.span import MinibatchClosure
    else:
        from topograph.optim import MinibatchClosure
    undo = []

    def patch(obj, attr, value):
        undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    if switch_off is not None:
        switch_off(patch)
    try:
        runs = {}
        for kind in ("SGD", "GE"):
            model = build_model("mlp-fmnist", seed=0)
            base = torch.optim.SGD(model.parameters(), lr=0.05)
            ge = GuidedExploration(base, modules=model, prefetch_directions=False) if old else GuidedExploration(base)
            runs[kind] = (MinibatchClosure(model, F.cross_entropy), base if kind == "SGD" else ge)
        n = x.shape[0]
        steps = n // batch
        generator = torch.Generator().manual_seed(0)
        ratios = []
        for epoch in range(repeats + 1):  # epoch 0 warms up
            perm = torch.randperm(n, generator=generator)
            spent = dict.fromkeys(runs, 0.0)
            for b0 in range(0, steps, block):
                for kind, (closure, opt) in runs.items():
                    t0 = time.perf_counter()
                    for i in range(b0, min(b0 + block, steps)):
                        idx = perm[i * batch:(i + 1) * batch]
                        closure.batch = (x[idx], y[idx])
                        opt.step(closure)
                    spent[kind] += time.perf_counter() - t0
            if epoch:
                ratios.append(spent["GE"] / spent["SGD"])
        return statistics.median(ratios)
    finally:
        for obj, attr, value in reversed(undo):
            setattr(obj, attr, value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repeats", nargs="?", type=int, default=5, help="timed epochs per measurement")
    ap.add_argument("rounds", nargs="?", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--old", default=None, help="a checkout of commit ffaaa51 (the earlier GE)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.old:
        sys.path.insert(0, f"{args.old}/src")
    torch.set_num_threads(args.threads)
    from topograph.data import load_dataset

    ds = load_dataset("fashion-mnist", flatten=True, limit_train=10_000, limit_test=100)
    x, y = ds.splits["train"]
    cases = {"as is": None, **switches(bool(args.old))}
    results: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds):
        for name, switch_off in cases.items():
            results[name].append(epoch_ratio(x, y, switch_off, repeats=args.repeats, old=bool(args.old)))
            print(f"round {r}: {name:62s} GE/SGD {results[name][-1]:.3f}", flush=True)
    base = statistics.median(results["as is"])
    print(f"\n{'earlier (' + args.old + ')' if args.old else 'current'} GuidedExploration, "
          f"{args.rounds} rounds x {args.repeats} epochs, torch threads {torch.get_num_threads()}")
    for name in cases:
        med = statistics.median(results[name])
        note = "" if name == "as is" else f"  {100 * (med - base) / base:+.1f} % of GE's time"
        print(f"{name:62s} GE/SGD {med:.3f}{note}")


if __name__ == "__main__":
    main()
