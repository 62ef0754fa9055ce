"""Path searches resume after an interruption to the same result, bitwise on the CPU.

Each test runs a search without interruption (the reference), then the same search with a
checkpoint, stopped by an exception raised from ``on_step`` at some step (as a kill would stop
it, except that here the process survives), then started again with the same checkpoint: the
resumed search must end with exactly the reference's control vectors, history and profiles.
A real SIGKILL of ``topograph paths`` is in tests/cli/test_paths_resume.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, tiny_mlp
from topograph.core import FunctionObjective, Objective
from topograph.errors import UsageError
from topograph.paths import CurveFinder, FourierPathFinder, NEBPathFinder
from topograph.paths.checkpoint import SearchCheckpoint
from topograph.paths.solutions import barrier_matrix


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Killed(Exception):
    """Stands for the kill: raised from ``on_step``."""


def kill_at(k):
    def on_step(step, total):
        if step == k:
            raise Killed(f"step {step} of {total}")
    return on_step


def mlp_problem(seed=0):
    """A tiny MLP, its data, and two trained-ish endpoints (two seeds, a few SGD steps)."""
    x, y = classification_data(n=48, shape=(5,), classes=3, seed=seed)
    ends = []
    for s in (1, 2):
        model = tiny_mlp((5, 6, 3), seed=s)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(20):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        ends.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    objective = Objective(tiny_mlp((5, 6, 3), seed=0), F.cross_entropy, {"train": (x, y), "test": (x[:20], y[:20])})
    return objective, ends[0], ends[1]


def double_well(w):
    return (w[..., 0] ** 2 - 1) ** 2 + 2 * (w[..., 1] - 0.8 * (1 - w[..., 0] ** 2)) ** 2


def analytic_problem():
    obj = FunctionObjective(double_well, 2)
    return obj, torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)


def assert_same_result(resumed, reference):
    torch.testing.assert_close(resumed.path.control, reference.path.control, rtol=0, atol=0)
    assert resumed.history == reference.history
    assert resumed.profiles.keys() == reference.profiles.keys()
    for split, p in reference.profiles.items():
        np.testing.assert_array_equal(resumed.profiles[split].losses, p.losses)
        np.testing.assert_array_equal(resumed.profiles[split].accuracies, p.accuracies)
    assert resumed.height == reference.height and resumed.barrier == reference.barrier
    assert resumed.work == reference.work


FINDERS = {
    # deterministic: full split, fixed grid, keep_best (the best iterate is part of the state)
    "fourier-full": lambda **kw: FourierPathFinder(n_terms=3, points=9, steps=23, lr=0.05, **kw),
    # stochastic: minibatches, random t subsets and gradient noise from the search's generator
    "fourier-stochastic": lambda **kw: FourierPathFinder(n_terms=3, points=9, steps=23, lr=0.05, batch_size=16,
                                                        points_per_step=4, gradient_noise=0.01, **kw),
    "bezier": lambda **kw: CurveFinder(curve="bezier", steps=23, lr=0.05, points_per_step=3, batch_size=16, **kw),
    "polychain-sgd": lambda **kw: CurveFinder(curve="polychain", steps=23, lr=0.05, optimizer="sgd", **kw),
    "neb": lambda **kw: NEBPathFinder(images=4, steps=12, cycles=2, insert_per_cycle=1, momentum=0.5, lr=0.05,
                                      batch_size=16, **kw),
}


@pytest.mark.parametrize("name", sorted(FINDERS))
@pytest.mark.parametrize("kill", [7, 16])
def test_interrupted_search_resumes_to_the_uninterrupted_result(name, kill, tmp_path):
    objective, a, b = mlp_problem()
    make = FINDERS[name]
    reference = make().find(objective, a, b)
    ckpt = tmp_path / "search.pt"
    finder = make(checkpoint=ckpt, checkpoint_every=5)
    with pytest.raises(Killed):
        finder.find(objective, a, b, on_step=kill_at(kill))
    assert ckpt.exists()
    steps_seen = []
    resumed = finder.find(objective, a, b, on_step=lambda k, n: steps_seen.append(k))
    # it went on from the last checkpoint before the kill (steps 5, 10, 15 …), not from zero
    assert steps_seen[0] == 5 * (kill // 5) + 1
    assert_same_result(resumed, reference)
    # the final checkpoint: a third call does no optimisation step and returns the same result
    again = finder.find(objective, a, b, on_step=lambda k, n: pytest.fail("no step should run"))
    assert_same_result(again, reference)


def test_neb_resumes_between_cycles_on_an_analytic_landscape(tmp_path):
    """Killed right at the end of the first cycle: the resume starts the second cycle with the
    inserted pivots (the band changes size between cycles)."""
    objective, a, b = analytic_problem()
    make = lambda **kw: NEBPathFinder(images=3, steps=10, cycles=3, insert_per_cycle=2, momentum=0.3,  # noqa: E731
                                      lr=0.02, **kw)
    reference = make().find(objective, a, b)
    assert reference.path.control.shape[0] == 3 + 2 * 2
    finder = make(checkpoint=tmp_path, checkpoint_every=4)
    with pytest.raises(Killed):
        finder.find(objective, a, b, on_step=kill_at(10))
    seen = []
    resumed = finder.find(objective, a, b, on_step=lambda k, n: seen.append(k))
    assert seen[0] == 11
    assert_same_result(resumed, reference)
    assert len(list(tmp_path.glob("neb-*.pt"))) == 1


def test_checkpoint_every_step_and_kill_at_the_first(tmp_path):
    objective, a, b = analytic_problem()
    reference = FourierPathFinder(n_terms=2, points=7, steps=6, lr=0.05).find(objective, a, b)
    finder = FourierPathFinder(n_terms=2, points=7, steps=6, lr=0.05, checkpoint=tmp_path / "c.pt", checkpoint_every=1)
    with pytest.raises(Killed):
        finder.find(objective, a, b, on_step=kill_at(1))
    assert_same_result(finder.find(objective, a, b), reference)


# ---------------------------------------------------------------- foreign and damaged checkpoints
def _one_line_error(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_a_checkpoint_of_another_search_is_refused(tmp_path):
    objective, a, b = mlp_problem()
    ckpt = tmp_path / "search.pt"
    FourierPathFinder(n_terms=3, points=9, steps=4, checkpoint=ckpt).find(objective, a, b)
    before = ckpt.read_bytes()

    with pytest.raises(UsageError) as e:  # other endpoints
        FourierPathFinder(n_terms=3, points=9, steps=4, checkpoint=ckpt).find(objective, b, a)
    assert "other endpoints" in _one_line_error(e, ckpt)
    with pytest.raises(UsageError) as e:  # other settings: the setting and both values are named
        FourierPathFinder(n_terms=3, points=9, steps=4, lr=0.01, checkpoint=ckpt).find(objective, a, b)
    assert "setting lr = 0.001, this search has 0.01" in _one_line_error(e, ckpt)
    with pytest.raises(UsageError) as e:  # another method
        CurveFinder(steps=4, checkpoint=ckpt).find(objective, a, b)
    assert "method 'fourier', this search is 'bezier'" in _one_line_error(e, ckpt)
    x, y = objective.splits["train"]
    with pytest.raises(UsageError) as e:  # the same endpoints on other data
        other = Objective(objective.module, F.cross_entropy, {"train": (x + 1, y), "test": objective.splits["test"]})
        FourierPathFinder(n_terms=3, points=9, steps=4, checkpoint=ckpt).find(other, a, b)
    assert "other data" in _one_line_error(e, ckpt)
    with pytest.raises(UsageError) as e:  # another model with the same number of parameters
        relu = Objective(tiny_mlp((5, 6, 3), seed=0, activation=torch.nn.ReLU), F.cross_entropy, objective.splits)
        FourierPathFinder(n_terms=3, points=9, steps=4, checkpoint=ckpt).find(relu, a, b)
    assert "other model" in _one_line_error(e, ckpt)
    assert ckpt.read_bytes() == before  # a refusal never overwrites the file
    # progress and the checkpoint cadence are not part of the search: accepted
    FourierPathFinder(n_terms=3, points=9, steps=4, checkpoint=ckpt, checkpoint_every=2,
                      progress=False).find(objective, a, b)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 10, "truncated"])
def test_a_damaged_checkpoint_is_refused_with_one_line(tmp_path, content):
    objective, a, b = analytic_problem()
    ckpt = tmp_path / "search.pt"
    finder = FourierPathFinder(n_terms=2, points=7, steps=3, checkpoint=ckpt)
    finder.find(objective, a, b)
    ckpt.write_bytes(ckpt.read_bytes()[:100] if content == "truncated" else content)
    with pytest.raises(UsageError) as e:
        finder.find(objective, a, b)
    assert "delete it" in _one_line_error(e, ckpt)


def test_a_torch_file_that_is_not_a_search_checkpoint_is_refused(tmp_path):
    objective, a, b = analytic_problem()
    ckpt = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, ckpt)
    with pytest.raises(UsageError) as e:
        FourierPathFinder(n_terms=2, points=7, steps=3, checkpoint=ckpt).find(objective, a, b)
    assert "not a topograph path-search checkpoint" in _one_line_error(e, ckpt)


def test_a_directory_holds_one_file_per_search(tmp_path):
    objective, a, b = analytic_problem()
    c = b + torch.tensor([0.0, 0.5], dtype=torch.float64)
    for end in (b, c):
        FourierPathFinder(n_terms=2, points=7, steps=3, checkpoint=tmp_path).find(objective, a, end)
    FourierPathFinder(n_terms=2, points=7, steps=4, checkpoint=tmp_path).find(objective, a, b)
    assert len(list(tmp_path.glob("fourier-*.pt"))) == 3
    # a new folder given without a suffix is created as a directory
    FourierPathFinder(n_terms=2, points=7, steps=3, checkpoint=tmp_path / "new").find(objective, a, b)
    assert len(list((tmp_path / "new").glob("fourier-*.pt"))) == 1


def test_fingerprint_ignores_cadence_and_progress_but_not_settings():
    objective, a, b = analytic_problem()

    def key(**kw):
        return SearchCheckpoint.for_search("x.pt", method="fourier", settings=kw, objective=objective,
                                           start=a, end=b).fingerprint

    assert key(lr=0.1, progress=True, checkpoint="a", checkpoint_every=3) == key(lr=0.1)
    assert key(lr=0.1) != key(lr=0.2)
    assert key(spring=math.inf) == key(spring=math.inf)
    with pytest.raises(UsageError, match="checkpoint_every"):
        SearchCheckpoint.for_search("x.pt", method="fourier", settings={}, objective=objective, start=a, end=b,
                                    every=0)


# ---------------------------------------------------------------- the barrier matrix
def solution_set():
    objective, a, b = mlp_problem()
    return objective, [a, b, 0.5 * (a + b) + 0.3 * (b - a).flip(0)]


def assert_same_matrix(resumed, reference):
    np.testing.assert_array_equal(resumed.heights, reference.heights)
    np.testing.assert_array_equal(resumed.barriers, reference.barriers)
    assert resumed.method == reference.method
    for pair, r in reference.results.items():
        for split, p in r.profiles.items():
            np.testing.assert_array_equal(resumed.results[pair].profiles[split].losses, p.losses)
        assert resumed.results[pair].history == r.history


def test_barrier_matrix_resumes_after_an_interruption_inside_a_pair(tmp_path):
    """Killed during the search of the second pair: the rerun reads the first pair from its file,
    resumes the second pair's search from its checkpoint and computes the third."""
    objective, sols = solution_set()
    settings = dict(n_terms=2, points=7, steps=12, lr=0.05, checkpoint_every=4)
    reference = barrier_matrix(objective, sols, finder=FourierPathFinder(**settings))
    log: list[tuple[int, int]] = []  # (pair number, first step seen)

    class Interrupted(FourierPathFinder):
        kill_pair: int | None = None

        def find(self, objective, start, end, on_step=None):
            number = len(log)
            seen: list[int] = []

            def step(k, n):
                seen.append(k)
                if len(seen) == 1:
                    log.append((number, k))
                if number == Interrupted.kill_pair and k == 9:
                    raise Killed("pair 1, step 9")

            return super().find(objective, start, end, on_step=step)

    Interrupted.kill_pair = 1
    folder = tmp_path / "matrix"
    with pytest.raises(Killed):
        barrier_matrix(objective, sols, finder=Interrupted(**settings), checkpoint=folder)
    assert len(list(folder.glob("pair-*.json"))) == 1 and len(list(folder.glob("pair-*-search/*.pt"))) == 1
    first_file = next(folder.glob("pair-*.json"))
    written = first_file.stat().st_mtime_ns
    Interrupted.kill_pair = None
    log.clear()
    resumed = barrier_matrix(objective, sols, finder=Interrupted(**settings), checkpoint=folder)
    # pair 0 not searched again; pair 1 resumed after its step-8 checkpoint; pair 2 from the start
    assert log == [(0, 9), (1, 1)]
    assert first_file.stat().st_mtime_ns == written
    assert_same_matrix(resumed, reference)
    assert len(list(folder.glob("pair-*.json"))) == 3 and not list(folder.glob("pair-*-search"))
    # everything is on disk now: a third call computes nothing
    log.clear()
    again = barrier_matrix(objective, sols, finder=Interrupted(**settings), checkpoint=folder)
    assert log == [] and again.results[(0, 1)].path is None
    assert_same_matrix(again, reference)


def test_barrier_matrix_of_straight_lines_resumes_and_keys_pairs_by_what_they_are(tmp_path):
    objective, sols = solution_set()
    reference = barrier_matrix(objective, sols, points=11)
    partial = barrier_matrix(objective, sols, points=11, pairs=[(0, 2)], checkpoint=tmp_path)
    assert np.isnan(partial.heights[0, 1]) and len(list(tmp_path.glob("pair-*.json"))) == 1
    resumed = barrier_matrix(objective, sols, points=11, checkpoint=tmp_path)
    assert_same_matrix(resumed, reference)
    assert len(list(tmp_path.glob("pair-*.json"))) == 3
    # another grid or another order of the solutions is another set of pairs, not a stale read
    other = barrier_matrix(objective, sols, points=13, checkpoint=tmp_path)
    assert len(list(tmp_path.glob("pair-*.json"))) == 6
    assert_same_matrix(other, barrier_matrix(objective, sols, points=13))
    swapped = barrier_matrix(objective, sols[::-1], points=11, checkpoint=tmp_path)
    assert_same_matrix(swapped, barrier_matrix(objective, sols[::-1], points=11))
    # a damaged pair file is named, with what to do
    victim = next(tmp_path.glob("pair-*.npz"))
    victim.write_bytes(b"not a zip")
    with pytest.raises(UsageError) as e:
        barrier_matrix(objective, sols, points=11, checkpoint=tmp_path)
    assert "delete both files" in str(e.value) and "\n" not in str(e.value)
