"""Sets of solutions built the way Yu & Morozov (arXiv:2602.21276, §III.A, Table I) build them.

Each optimizer ("arm") is trained from N random initialisations (the seeds).  Per run the
per-epoch metrics give two loss curves, ⟨l(x^train, ω)⟩ and ⟨l(x^test, ω)⟩, both averaged over
the whole split, and three parameter vectors:

``train``  ω^train — the parameters at the minimum of the run's **training**-loss curve (for a
           monotone optimizer such as L-BFGS with a line search: the last iterate);
``test``   ω^test — the parameters at the minimum of the run's **test**-loss curve: the paper's
           "early stopping at the minimum of test loss" (model selection on the test set, as the
           paper does; it is the paper's definition, not a recommendation);
``final``  the last iterate (what a run without early stopping returns).

**Selection ("n lowest of N").**  Of the N runs, the n with the lowest ⟨l(x^train, ω^train)⟩
form every set of that arm (the paper: 48 of 75); the same n runs give the train, test and
final sets, so the sets differ only in the epoch at which each run is read.

The paper's Table I lists, per optimizer, the mean over the n runs of

* ⟨l(x^train, ω^train)⟩ — the minimum of each run's training-loss curve, and
* ⟨l(x^test, ω^test)⟩ — the minimum of each run's test-loss curve,

which :func:`table_one` computes from the runs' ``metrics.csv`` (one row per epoch), next to
the final-iterate losses.  The vectors ω^train and ω^test come from the runs'
``best/train_loss.pt`` and ``best/test_loss.pt`` (``snapshots.best``), or from an every-epoch
snapshot at that epoch.

Barriers between random pairs of a set (:func:`draw_pairs`, :func:`set_barriers`) are cached
per pair on disk, so a killed study redoes only the missing pairs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from topograph.errors import UsageError
from topograph.io import atomic_write_text
from topograph.runs.store import Run

#: the three ways of reading one run (see the module docstring)
KINDS = ("train", "test", "final")


def loss_minimum(rows: Sequence[dict[str, Any]], metric: str) -> tuple[int, float]:
    """``(epoch, value)`` of the first minimum of ``metric`` over the rows (NaN rows skipped)."""
    best_epoch, best = -1, math.inf
    for r in rows:
        v = float(r.get(metric, math.nan))
        if math.isfinite(v) and v < best:
            best_epoch, best = int(r["epoch"]), v
    if best_epoch < 0:
        raise UsageError(f"no finite {metric} in the run's metrics; the run diverged or has no {metric} column")
    return best_epoch, best


def select_lowest(runs: Sequence[Run], n: int, *, by: str = "train_loss") -> list[Run]:
    """The ``n`` runs with the lowest minimum of ``by`` along training (the paper: 48 of 75 by
    training loss), in seed order; ``n <= 0`` or ``n >= len(runs)`` keeps every run.  Runs
    whose ``by`` is never finite (diverged) rank last."""
    runs = list(runs)
    if n <= 0 or n >= len(runs):
        return sorted(runs, key=lambda r: r.seed)

    def key(r: Run) -> tuple[float, int]:
        try:
            return loss_minimum(r.metrics(), by)[1], r.seed
        except UsageError:
            return math.inf, r.seed

    return sorted(sorted(runs, key=key)[: int(n)], key=lambda r: r.seed)


@dataclass
class SolutionSet:
    """The solutions of one arm read at one ``kind`` (``"train"``, ``"test"``, ``"final"``).

    ``epochs[i]`` is the epoch at which run i is read; ``train_loss[i]`` and ``test_loss[i]``
    are the full-split losses there (from ``metrics.csv``).
    """

    arm: str
    kind: str
    runs: list[Run]
    epochs: list[int]
    train_loss: np.ndarray
    test_loss: np.ndarray
    _vectors: Tensor | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.arm}/{self.kind}"

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def vectors(self) -> Tensor:
        """The flat parameter vectors, one row per run (loaded once)."""
        if self._vectors is None:
            self._vectors = torch.stack([_vector(r, self.kind, e, self.arm) for r, e in zip(self.runs, self.epochs)])
        return self._vectors


def _vector(run: Run, kind: str, epoch: int, arm: str) -> Tensor:
    if kind == "final":
        return torch.cat([p.detach().reshape(-1) for p in run.model().parameters()])
    metric = f"{kind}_loss"
    try:
        best = run.best_snapshot(metric)
    except UsageError:
        best = None
    if best is not None:
        if int(best["epoch"]) != epoch:
            raise UsageError(f"arm {arm} seed {run.seed}: best/{metric}.pt is from epoch {best['epoch']} but "
                             f"metrics.csv has the minimum at epoch {epoch}; the run directory is inconsistent")
        return best["params"]
    labels, snaps = run.snapshots()
    for (e, _), v in zip(labels, snaps):
        if e == float(epoch):
            return v
    raise UsageError(f"arm {arm} seed {run.seed}: no parameters saved at epoch {epoch} (the minimum of {metric}); "
                     f"train with snapshots.best = [\"{metric}\"] (or snapshots every epoch)")


def solution_set(arm: str, runs: Sequence[Run], kind: str) -> SolutionSet:
    """Read ``runs`` (already selected) at ``kind``."""
    if kind not in KINDS:
        raise UsageError(f"solution-set kind {kind!r} is not known; use one of {', '.join(KINDS)}")
    epochs, tr, te = [], [], []
    for r in runs:
        rows = r.metrics()
        if not rows:
            raise UsageError(f"arm {arm} seed {r.seed}: the run has no metrics.csv rows")
        if kind == "final":
            row = rows[-1]
        else:
            epoch, _ = loss_minimum(rows, f"{kind}_loss")
            row = next(x for x in rows if int(x["epoch"]) == epoch)
        epochs.append(int(row["epoch"]))
        tr.append(float(row["train_loss"]))
        te.append(float(row.get("test_loss", math.nan)))
    return SolutionSet(arm, kind, list(runs), epochs, np.asarray(tr), np.asarray(te))


def build_sets(runs_by_arm: dict[str, Sequence[Run]], arms: Sequence[str], *, select: int = 0,
               by: str = "train_loss", kinds: Sequence[str] = KINDS) -> dict[str, SolutionSet]:
    """``{"ARM/KIND": SolutionSet}`` for every arm and kind, after the n-lowest-of-N selection."""
    out = {}
    for arm in arms:
        if arm not in runs_by_arm:
            raise UsageError(f"solution sets: no runs for arm {arm!r}; arms with runs: {', '.join(runs_by_arm)}")
        chosen = select_lowest(runs_by_arm[arm], select, by=by)
        for kind in kinds:
            s = solution_set(arm, chosen, kind)
            out[s.name] = s
    return out


def table_one(sets: dict[str, SolutionSet], arm: str) -> dict[str, np.ndarray]:
    """The per-run values behind one arm's Table I row and its final-iterate twin:
    ``train@train`` = ⟨l(x^train, ω^train)⟩, ``test@test`` = ⟨l(x^test, ω^test)⟩ (the paper's two
    columns), ``test@train`` (the test loss of the training-loss minimum), ``train@final`` and
    ``test@final``, and the epochs of the two minima."""
    tr, te, fi = sets[f"{arm}/train"], sets[f"{arm}/test"], sets[f"{arm}/final"]
    return {"train@train": tr.train_loss, "test@test": te.test_loss, "test@train": tr.test_loss,
            "train@final": fi.train_loss, "test@final": fi.test_loss,
            "epoch@train": np.asarray(tr.epochs, float), "epoch@test": np.asarray(te.epochs, float),
            "epoch@final": np.asarray(fi.epochs, float)}


# ---------------------------------------------------------------------- pairs and barriers


#: how the pairs of a set are drawn (see :func:`draw_pairs`)
PAIRINGS = ("random", "disjoint")


def draw_pairs(n: int, k: int, seed: int, *, pairing: str = "random") -> list[tuple[int, int]]:
    """``k`` distinct unordered pairs (i < j) of ``range(n)``, drawn with
    ``numpy.random.default_rng(seed)``.

    ``pairing="random"`` (the paper's "random pairs"): uniformly without replacement among the
    n(n−1)/2 pairs (all pairs, in order, when k ≥ n(n−1)/2).  Pairs then share endpoints, so
    the heights of one set are not independent observations.

    ``pairing="disjoint"``: min(k, ⌊n/2⌋) pairs of a uniformly random permutation taken two by
    two — no index appears twice, so each pair's height is an independent observation (two
    sets of different runs can then be compared with an ordinary two-sample test).
    """
    if pairing not in PAIRINGS:
        raise UsageError(f"pairing={pairing!r} is not known; use one of {', '.join(PAIRINGS)}")
    if n < 2 or k <= 0:
        return []
    rng = np.random.default_rng(int(seed))
    if pairing == "disjoint":
        perm = rng.permutation(n)
        pairs = [tuple(sorted((int(perm[2 * m]), int(perm[2 * m + 1])))) for m in range(min(int(k), n // 2))]
        return sorted(pairs)
    total = n * (n - 1) // 2
    every = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if k >= total:
        return every
    idx = rng.choice(total, size=int(k), replace=False)
    return sorted(every[int(t)] for t in idx)


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def set_barriers(objective, sset: SolutionSet, pairs: Sequence[tuple[int, int]], *, finder, landscape: str,
                 cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Path heights between the given pairs of ``sset`` on the ``landscape`` split, one dict per
    pair: ``seeds``, ``height`` H = max of the dense profile (Eq. 5), ``barrier`` ΔH,
    ``endpoint_losses``.  ``finder`` is a path finder (its ``split``/``eval_splits`` are set to
    ``landscape`` here).  With ``cache_dir`` each pair's result is a small JSON file named by a
    hash of the finder's settings, the landscape and both endpoints (run directory and epoch —
    so sets that share a vector, e.g. ω^train and the final iterate of a run whose training
    loss fell to the end, share the search): a rerun reads it instead of searching again."""
    finder = replace(finder, split=landscape, eval_splits=(landscape,))
    settings = {k: v for k, v in asdict(finder).items() if k not in ("progress",)}
    vectors = sset.vectors()
    out = []
    for i, j in pairs:
        # the same run at the same epoch is the same vector whatever the set's kind: shared cache
        ends = [(str(sset.runs[x].path.resolve()), sset.epochs[x]) for x in (i, j)]
        key = _key({"finder": type(finder).__name__, "settings": settings, "landscape": landscape, "ends": ends})
        path = Path(cache_dir) / f"{sset.seeds[i]}-{sset.seeds[j]}-{key}.json" if cache_dir is not None else None
        if path is not None and path.exists():
            out.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        res = finder.find(objective, vectors[i], vectors[j])
        rec = {"seeds": [sset.seeds[i], sset.seeds[j]], "landscape": landscape,
               "height": res.height, "barrier": res.barrier, "endpoint_losses": list(res.profile.endpoint_losses),
               "argmax_t": res.argmax_t, "seconds": res.seconds}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(rec))
        out.append(rec)
    return out


# ---------------------------------------------------------------------- kernel PCA separation


def separation(scores: np.ndarray, groups: Sequence[str], a: str, b: str) -> list[float]:
    """Per component k: |mean_a − mean_b| / √((var_a + var_b)/2) of the scores (Cohen's d, sample
    variances) — how far apart two sets lie along each principal component."""
    s = np.asarray(scores, float)
    g = np.asarray(groups)
    out = []
    for k in range(s.shape[1]):
        x, y = s[g == a, k], s[g == b, k]
        pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2) if len(x) > 1 and len(y) > 1 else math.nan
        out.append(abs(x.mean() - y.mean()) / pooled if pooled > 0 else math.nan)
    return out


__all__ = ["KINDS", "PAIRINGS", "SolutionSet", "build_sets", "draw_pairs", "loss_minimum", "select_lowest",
           "separation", "set_barriers", "solution_set", "table_one"]
