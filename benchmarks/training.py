"""One Fashion-MNIST epoch: topograph's training loop vs a plain PyTorch DataLoader loop.

Workload: Fashion-MNIST train (60,000 images, normalised), model ``mlp-fmnist``
(784-64-64-32-10, seed 003's twin), SGD lr 0.01, batch 64, one epoch (938 steps).

* **topograph** — ``topograph.runs.train`` with one epoch: data as tensors, batches by index
  from a seeded ``randperm``; ``train_seconds`` is the epoch's optimizer steps alone (as timed
  by the loop), ``epoch_seconds`` adds the full train/test evaluation and the run-directory
  writes (metrics, snapshot, checkpoint).
* **baseline** — ``DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)`` and the
  textbook ``zero_grad / loss.backward() / step`` loop on the same model, data and threads.

The two are interleaved for ``--rounds`` rounds in one process and the medians are reported.
Data: ``--root``, else ``$TOPOGRAPH_DATA_DIR``, else ``<repo>/../shared/data/fashion-mnist``.

    python benchmarks/training.py            # ~1 minute on 2 cores
    python benchmarks/training.py --quick    # 10,000 samples, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, TensorDataset

from topograph.data import load_dataset
from topograph.models import build_model
from topograph.runs import train

REPO = Path(__file__).resolve().parents[1]


def data_root(arg: str | None) -> str:
    if arg:
        return arg
    env = os.environ.get("TOPOGRAPH_DATA_DIR")
    if env:
        return env
    return str(REPO.parent / "shared" / "data" / "fashion-mnist")


def topograph_epoch(root: str, limit: int, lr: float, batch: int, seed: int) -> tuple[float, float]:
    """(train_seconds, epoch_seconds) of one epoch through topograph.runs.train."""
    config = {
        "run": {"name": "bench", "epochs": 1, "seeds": [seed]},
        "data": {"name": "fashion-mnist", "root": root, "batch_size": batch, "limit_train": limit},
        "model": {"name": "mlp-fmnist"},
        "optimizer": {"name": "sgd", "lr": lr},
        "snapshots": {"every_epochs": 1},
    }
    with tempfile.TemporaryDirectory() as tmp:
        row = train(config, tmp, progress=False).metrics()[1]
    return row["train_seconds"], row["epoch_seconds"]


def dataloader_epoch(x: torch.Tensor, y: torch.Tensor, lr: float, batch: int, seed: int) -> float:
    """Seconds of one epoch of the textbook DataLoader loop (same model, data, optimizer)."""
    torch.manual_seed(seed)
    model = build_model("mlp-fmnist", seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    t0 = time.perf_counter()
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="Fashion-MNIST folder (IDX .gz files)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 samples, 2 rounds")
    args = parser.parse_args()
    root = data_root(args.root)
    limit = 10_000 if args.quick else 0
    rounds = 2 if args.quick else args.rounds
    lr, batch = 0.01, 64

    data = load_dataset("fashion-mnist", root=root, limit_train=limit or None)
    x, y = data.splits["train"]
    console = Console()
    console.print(f"Fashion-MNIST train {tuple(x.shape)}, mlp-fmnist, SGD lr {lr}, batch {batch}, "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds")

    topo_train, topo_epoch, base = [], [], []
    for r in range(rounds):
        tt, te = topograph_epoch(root, limit, lr, batch, seed=r)
        topo_train.append(tt)
        topo_epoch.append(te)
        base.append(dataloader_epoch(x, y, lr, batch, seed=r))
        console.print(f"round {r + 1}: topograph {tt:.2f} s (with eval {te:.2f} s), DataLoader {base[-1]:.2f} s")

    med_base = statistics.median(base)
    table = Table(title=f"one epoch, {x.shape[0]:,} samples, median of {rounds}")
    table.add_column("loop")
    table.add_column("s / epoch", justify="right")
    table.add_column("speed-up vs DataLoader", justify="right")
    for name, values in (("topograph (optimizer steps)", topo_train),
                         ("topograph (+ full train/test eval, writes)", topo_epoch),
                         ("baseline: DataLoader(TensorDataset) loop", base)):
        med = statistics.median(values)
        table.add_row(name, f"{med:.3f}", f"{med_base / med:.2f} x")
    console.print(table)
    console.print(f"topograph epoch is {med_base / statistics.median(topo_train):.2f} x faster than "
                  "the plain PyTorch DataLoader loop (baseline)")


if __name__ == "__main__":
    main()
