"""Benchmark: the landscape-aware optimizers against their bases on the Fashion-MNIST MLP.

Workload: model ``mlp-fmnist`` (784-64-64-32-10), a seeded subset of
``--limit`` Fashion-MNIST training images (default 10,000), cross-entropy.  Measured in the
same run, each optimizer next to its base:

* mini-batch (batch ``--batch``, one epoch = limit/batch steps, ``--repeats`` epochs each,
  interleaved in blocks of 10 steps, the median epoch and the median per-epoch ratio
  reported): GE(SGD) vs SGD, GE(Adam) vs Adam, RollingBall vs
  SGD (``--rbo-steps`` inner steps, default 10; the authors' K = 100 costs ≈ 10× more;
  timed on the first ``--rbo-max-steps`` steps of each epoch and scaled to the epoch);
  GE at its defaults (k = 10, n = 4: 9 forward-only probes every 10 steps);
* full batch on the subset: QuasiNewton (golden-section line search) vs ``torch.optim.LBFGS``
  at equal history (m = 10), time per iteration over ``--iters`` iterations; LBFGS both
  without line search and with its strong-Wolfe search.

Forward and backward passes are counted by the closure.  Targets: GE at
defaults ≤ 1.5× its base per epoch; QuasiNewton's time per iteration within 1.3× of
torch.optim.LBFGS.  Timing needs a quiet machine; the ratios are what to read.

    python benchmarks/optimizers.py            # ≈ 1.5 minutes on 2 idle cores
    python benchmarks/optimizers.py --quick    # a smoke check
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from topograph.data import load_dataset
from topograph.models import build_model
from topograph.optim.guided import GuidedExploration
from topograph.optim.quasi_newton import QuasiNewton
from topograph.optim.rolling_ball import RollingBall
from topograph.optim.closure import MinibatchClosure


def data_root() -> Path:
    env = os.environ.get("TOPOGRAPH_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fashion-mnist"


def load_train(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = load_dataset("fashion-mnist", root=data_root(), flatten=True, limit_train=n, limit_test=1000)
    return ds.splits["train"]


class PlainClosure(MinibatchClosure):
    """The same closure without the ``span`` fast path: what a hand-written closure gives the
    optimizers (each probe or trial step is one forward pass through the module)."""

    span = None


def make_closure(kind: str, model):
    """``"plain"``: :class:`PlainClosure`; ``"span"``: topograph's :class:`MinibatchClosure`."""
    return (PlainClosure if kind == "plain" else MinibatchClosure)(model, F.cross_entropy)


MINIBATCH = {  # name: (base, closure kind, factory)
    "SGD": (None, "span", lambda m: torch.optim.SGD(m.parameters(), lr=0.05)),
    "GE(SGD)": ("SGD", "span", lambda m: GuidedExploration(torch.optim.SGD(m.parameters(), lr=0.05), modules=m)),
    "GE(SGD), plain closure": ("SGD", "plain",
                               lambda m: GuidedExploration(torch.optim.SGD(m.parameters(), lr=0.05), modules=m)),
    "Adam": (None, "span", lambda m: torch.optim.Adam(m.parameters(), lr=1e-3)),
    "GE(Adam)": ("Adam", "span",
                 lambda m: GuidedExploration(torch.optim.Adam(m.parameters(), lr=1e-3), modules=m)),
}


def minibatch_table(x, y, *, batch: int, repeats: int, rbo_steps: int, rbo_max_steps: int,
                    block: int = 10) -> list[dict]:
    """Epoch times, interleaved in blocks of ``block`` steps (one GE event each at the defaults):
    every optimizer runs block b before any runs block b + 1, so a burst of machine load hits
    all alike; each epoch's ratio is GE's summed block time over its base's, and the median
    over the timed epochs is reported (RollingBall: its first ``rbo_max_steps`` steps per epoch,
    scaled to the epoch)."""
    setups = dict(MINIBATCH)
    setups[f"RollingBall(K={rbo_steps})"] = ("SGD", "span", lambda m: RollingBall(
        m.parameters(), lr=0.05, radius=1.0, proj_lr=1e-3, proj_steps=rbo_steps, proj_init="gd", modules=m))
    state = {}
    for name, (_, kind, make) in setups.items():
        model = build_model("mlp-fmnist", seed=0)
        opt_box = [make(model)]
        state[name] = {"model": model, "opt": opt_box, "closure": make_closure(kind, model),
                       "epochs": []}
    n = x.shape[0]
    steps = n // batch
    gen = torch.Generator().manual_seed(0)
    for _ in range(repeats + 1):  # the first epoch is a warm-up
        perm = torch.randperm(n, generator=gen)
        spent = {name: [0.0, 0, 0, 0] for name in setups}  # seconds, steps, forwards, backwards
        for b0 in range(0, steps, block):
            for name in setups:
                st = state[name]
                limit = min(steps, rbo_max_steps) if name.startswith("RollingBall") else steps
                b1 = min(b0 + block, limit)
                if b1 <= b0:
                    continue
                closure, opt = st["closure"], st["opt"][0]
                st["model"].train()
                f0, k0 = closure.work.forward_passes, closure.work.backward_passes
                t0 = time.perf_counter()
                for i in range(b0, b1):
                    idx = perm[i * batch:(i + 1) * batch]
                    closure.batch = (x[idx], y[idx])
                    opt.step(closure)
                rec = spent[name]
                rec[0] += time.perf_counter() - t0
                rec[1] += b1 - b0
                rec[2] += closure.work.forward_passes - f0
                rec[3] += closure.work.backward_passes - k0
        for name, (sec, done, fwd, bwd) in spent.items():
            scale = steps / done
            state[name]["epochs"].append((sec * scale, fwd / done, bwd / done))
    rows = []
    for name, (base, _, _) in setups.items():
        epochs = state[name]["epochs"][1:]
        row = {"optimizer": name, "base": base, "epoch_s": statistics.median(e[0] for e in epochs),
               "fwd": epochs[-1][1], "bwd": epochs[-1][2], "ratio": None}
        row["step_ms"] = 1e3 * row["epoch_s"] / steps
        if base:
            base_epochs = state[base]["epochs"][1:]
            row["ratio"] = statistics.median(e[0] / b[0] for e, b in zip(epochs, base_epochs))
        rows.append(row)
    return rows


def full_batch_table(x, y, *, iters: int, history: int, runs: int) -> list[dict]:
    def lbfgs(search):
        return lambda m: torch.optim.LBFGS(m.parameters(), lr=1.0, history_size=history, max_iter=iters,
                                           tolerance_grad=0, tolerance_change=0, line_search_fn=search)

    def qn(m):
        return QuasiNewton(m.parameters(), history_size=history, max_iter=iters, tolerance_grad=0,
                           tolerance_change=0)

    setups = {  # name: (closure kind, factory)
        "LBFGS (no line search)": ("span", lbfgs(None)),
        "LBFGS (strong Wolfe)": ("span", lbfgs("strong_wolfe")),
        "QuasiNewton, plain closure": ("plain", qn),
        "QuasiNewton (golden)": ("span", qn),
    }
    best: dict[str, dict] = {}
    for _ in range(runs):  # best of `runs`, the optimizers taking turns (load bursts hit all alike)
        for name, (kind, make) in setups.items():
            model = build_model("mlp-fmnist", seed=0)
            opt_box = [make(model)]
            closure = make_closure(kind, model)
            closure.batch = (x, y)
            t0 = time.perf_counter()
            opt_box[0].step(closure)
            elapsed = time.perf_counter() - t0
            opt = opt_box[0]
            n_iter = opt.counts.iterations if isinstance(opt, QuasiNewton) else opt.state[opt._params[0]]["n_iter"]
            with torch.no_grad():
                final = float(F.cross_entropy(model(x), y))
            row = {"optimizer": name, "iters": n_iter, "iter_ms": 1e3 * elapsed / max(n_iter, 1),
                   "fwd": closure.work.forward_passes / max(n_iter, 1),
                   "bwd": closure.work.backward_passes / max(n_iter, 1),
                   "loss": final}
            if name not in best or row["iter_ms"] < best[name]["iter_ms"]:
                best[name] = row
    return [best[name] for name in setups]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=10_000, help="training images used (default 10,000)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9, help="timed epochs per optimizer (after one warm-up)")
    ap.add_argument("--rbo-steps", type=int, default=10, help="RollingBall inner steps K")
    ap.add_argument("--rbo-max-steps", type=int, default=20,
                    help="RollingBall is timed on this many steps per epoch, scaled to the epoch")
    ap.add_argument("--iters", type=int, default=15, help="full-batch quasi-Newton iterations")
    ap.add_argument("--runs", type=int, default=5, help="full-batch runs per optimizer, in turns (best reported)")
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help="2,000 images, 1 repeat, 5 iterations")
    args = ap.parse_args()
    if args.quick:
        args.limit, args.repeats, args.iters = 2000, 1, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = load_train(args.limit)
    print(f"mlp-fmnist on {x.shape[0]} Fashion-MNIST images; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print(f"mini-batch (batch {args.batch}, {x.shape[0] // args.batch} steps/epoch, median of {args.repeats} epochs, "
          "interleaved in blocks of 10 steps)")
    print(f"{'optimizer':<22} {'epoch s':>8} {'step ms':>8} {'F/step':>7} {'B/step':>7}  ratio vs base "
          "(median over epochs)")
    for r in minibatch_table(x, y, batch=args.batch, repeats=args.repeats, rbo_steps=args.rbo_steps,
                            rbo_max_steps=args.rbo_max_steps):
        ratio = f"{r['ratio']:.2f}x {r['base']}" if r["ratio"] is not None else "(base)"
        print(f"{r['optimizer']:<22} {r['epoch_s']:8.3f} {r['step_ms']:8.2f} {r['fwd']:7.2f} {r['bwd']:7.2f}  {ratio}")
    print("  target: GE at defaults <= 1.5x its base per epoch")
    print(f"\nfull batch ({x.shape[0]} images, history {args.history}, {args.iters} iterations, "
          f"best of {args.runs})")
    print(f"{'optimizer':<24} {'iters':>5} {'ms/iter':>8} {'F/iter':>7} {'B/iter':>7} {'final loss':>10}")
    rows = full_batch_table(x, y, iters=args.iters, history=args.history, runs=args.runs)
    for r in rows:
        print(f"{r['optimizer']:<24} {r['iters']:5d} {r['iter_ms']:8.1f} {r['fwd']:7.2f} {r['bwd']:7.2f} "
              f"{r['loss']:10.4f}")
    by_name = {r["optimizer"]: r for r in rows}
    for q in ("QuasiNewton (golden)", "QuasiNewton, plain closure"):
        for base in ("LBFGS (strong Wolfe)", "LBFGS (no line search)"):
            print(f"  {q} / {base}: {by_name[q]['iter_ms'] / by_name[base]['iter_ms']:.2f}x per iteration")
    print("  target: QuasiNewton within 1.3x of torch.optim.LBFGS per iteration")


if __name__ == "__main__":
    main()
