"""Solution sets as arXiv:2602.21276 builds them: selection, the three readings of a run, Table I
values, random pairs and the barrier cache — against the runs' own metrics and snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pytest
import torch

from topograph.errors import UsageError
from topograph.runs import train_all
from topograph.studies.solution_sets import (
    build_sets,
    draw_pairs,
    loss_minimum,
    select_lowest,
    separation,
    set_barriers,
    solution_set,
    table_one,
)


class _FakeRun:
    def __init__(self, seed, train_losses):
        self.seed = seed
        self._rows = [{"epoch": e, "train_loss": v, "test_loss": 1.0} for e, v in enumerate(train_losses)]

    def metrics(self):
        return self._rows


def test_loss_minimum_takes_the_first_minimum_and_skips_nan():
    rows = [{"epoch": 0, "l": 3.0}, {"epoch": 1, "l": math.nan}, {"epoch": 2, "l": 1.0}, {"epoch": 3, "l": 1.0}]
    assert loss_minimum(rows, "l") == (2, 1.0)
    with pytest.raises(UsageError, match="no finite"):
        loss_minimum([{"epoch": 0, "l": math.nan}], "l")


def test_select_lowest_keeps_the_n_lowest_training_minima_in_seed_order():
    runs = [_FakeRun(s, v) for s, v in [(0, [5, 0.9]), (1, [5, 0.1, 0.3]), (2, [math.nan]), (3, [5, 0.5]),
                                        (4, [0.2, 0.4])]]
    assert [r.seed for r in select_lowest(runs, 3)] == [1, 3, 4]  # minima 0.1, 0.5 (seed 3), 0.2
    assert [r.seed for r in select_lowest(runs, 4)] == [0, 1, 3, 4]  # the diverged run ranks last
    assert [r.seed for r in select_lowest(runs, 0)] == [0, 1, 2, 3, 4]


def test_draw_pairs_is_a_seeded_uniform_draw_without_replacement():
    pairs = draw_pairs(10, 7, seed=3)
    assert len(pairs) == len(set(pairs)) == 7 and all(0 <= i < j < 10 for i, j in pairs)
    assert pairs == draw_pairs(10, 7, seed=3) and pairs != draw_pairs(10, 7, seed=4)
    assert draw_pairs(4, 100, seed=0) == list(combinations(range(4), 2))
    assert draw_pairs(1, 5, seed=0) == [] and draw_pairs(5, 0, seed=0) == []
    # uniform: over 2,000 seeds each of the 15 pairs of 6 is drawn ≈ 2000 × 5/15 times
    counts = {p: 0 for p in combinations(range(6), 2)}
    for s in range(2000):
        for p in draw_pairs(6, 5, seed=s):
            counts[p] += 1
    expected = 2000 * 5 / 15
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in counts.values())


def test_disjoint_pairs_are_a_seeded_uniform_random_matching():
    pairs = draw_pairs(16, 8, seed=5, pairing="disjoint")
    used = [i for p in pairs for i in p]
    assert len(pairs) == 8 and sorted(used) == list(range(16)) and all(i < j for i, j in pairs)
    assert pairs == draw_pairs(16, 8, seed=5, pairing="disjoint") != draw_pairs(16, 8, seed=6, pairing="disjoint")
    assert len(draw_pairs(7, 10, seed=0, pairing="disjoint")) == 3          # at most ⌊n/2⌋ pairs
    few = draw_pairs(10, 2, seed=1, pairing="disjoint")
    assert len(few) == 2 and len({i for p in few for i in p}) == 4
    # uniform: each of the 15 pairs of 6 is in a random perfect matching with probability 1/5
    counts = {p: 0 for p in combinations(range(6), 2)}
    for s in range(3000):
        for p in draw_pairs(6, 3, seed=s, pairing="disjoint"):
            counts[p] += 1
    expected = 3000 / 5
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in counts.values())
    with pytest.raises(UsageError, match="pairing"):
        draw_pairs(6, 3, seed=0, pairing="nearest")


def test_separation_is_cohens_d_per_component():
    scores = np.array([[0.0, 1.0], [2.0, -1.0], [10.0, 1.0], [12.0, -1.0]])
    d = separation(scores, ["a", "a", "b", "b"], "a", "b")
    assert d[0] == pytest.approx(10.0 / math.sqrt(2.0)) and d[1] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny digits runs whose test loss turns up (lr 2): the early-stopped epoch differs
    from the last one, with every-epoch snapshots as an independent record of the weights."""
    out = tmp_path_factory.mktemp("sets")
    doc = {"run": {"name": "s", "epochs": 6, "threads": 1, "seeds": [0, 1, 2]},
           "data": {"name": "digits", "batch_size": 32, "limit_train": 256, "limit_test": 60},
           "model": {"name": "mlp-digits"}, "optimizer": {"name": "sgd", "lr": 2.0},
           "snapshots": {"every_epochs": 1, "best": ["train_loss", "test_loss"]}}
    return train_all(doc, out, progress=False)


@pytest.mark.slow
def test_the_three_readings_of_a_run_match_its_metrics_and_snapshots(runs):
    for kind, col in (("train", "train_loss"), ("test", "test_loss"), ("final", None)):
        s = solution_set("a", runs, kind)
        vecs = s.vectors()
        for r, e, v, tr, te in zip(runs, s.epochs, vecs, s.train_loss, s.test_loss):
            rows = r.metrics()
            expect = len(rows) - 1 if col is None else min(range(len(rows)), key=lambda i: (rows[i][col], i))
            assert e == expect
            labels, snaps = r.snapshots()
            assert torch.equal(v, snaps[[x for x, _ in labels].index(float(e))])
            obj = r.objective()
            assert obj.loss(v, split="train") == pytest.approx(tr, rel=1e-6)
            assert obj.loss(v, split="test") == pytest.approx(te, rel=1e-6)
    assert any(e < 6 for e in solution_set("a", runs, "test").epochs)  # early stopping bites here


def test_table_one_columns_are_the_curve_minima_of_the_selected_runs(runs):
    sets = build_sets({"a": runs, "b": runs}, ["a", "b"], select=2)
    chosen = sorted(runs, key=lambda r: (min(x["train_loss"] for x in r.metrics()), r.seed))[:2]
    assert sets["a/train"].seeds == sorted(r.seed for r in chosen) == sets["a/test"].seeds == sets["a/final"].seeds
    v = table_one(sets, "a")
    by_seed = {r.seed: r.metrics() for r in chosen}
    for i, seed in enumerate(sets["a/train"].seeds):
        rows = by_seed[seed]
        assert v["train@train"][i] == min(x["train_loss"] for x in rows)
        assert v["test@test"][i] == min(x["test_loss"] for x in rows)
        assert v["test@final"][i] == rows[-1]["test_loss"] and v["train@final"][i] == rows[-1]["train_loss"]
    with pytest.raises(UsageError, match="no runs for arm"):
        build_sets({"a": runs}, ["a", "c"])


@dataclass
class _CountingFinder:
    """A stand-in path finder: the straight line's heights, counting its searches."""

    points: int = 11
    split: str = "train"
    eval_splits: tuple | None = None
    progress: bool | None = None
    calls: int = 0

    def find(self, objective, a, b):
        from topograph.paths import linear_barrier

        type(self).calls += 1
        return linear_barrier(objective, a, b, points=self.points, splits=self.eval_splits)


def test_set_barriers_are_cached_per_pair_and_settings(runs, tmp_path):
    from topograph.paths import linear_barrier

    s = solution_set("a", runs, "test")
    obj = runs[0].objective()
    pairs = draw_pairs(3, 2, seed=0)
    _CountingFinder.calls = 0
    first = set_barriers(obj, s, pairs, finder=_CountingFinder(), landscape="test", cache_dir=tmp_path)
    assert _CountingFinder.calls == 2
    for (i, j), rec in zip(pairs, first):
        ref = linear_barrier(obj, s.vectors()[i], s.vectors()[j], points=11, splits=("test",))
        assert rec["height"] == pytest.approx(ref.height) and rec["seeds"] == [s.seeds[i], s.seeds[j]]
    again = set_barriers(obj, s, pairs, finder=_CountingFinder(), landscape="test", cache_dir=tmp_path)
    assert again == first and _CountingFinder.calls == 2          # read back, not searched again
    set_barriers(obj, s, pairs[:1], finder=_CountingFinder(points=21), landscape="test", cache_dir=tmp_path)
    assert _CountingFinder.calls == 3                              # other settings: a new search
