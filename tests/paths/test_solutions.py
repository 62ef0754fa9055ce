"""Solution sets: kernel PCA, spanning trees, centroids, barrier matrices, plots, CLI errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import classification_data, tiny_mlp
from topograph.cli.main import main
from topograph.core import FunctionObjective, Objective
from topograph.paths import linear_barrier
from topograph.paths import solutions as sol
from topograph.paths.plots import plot_barrier_matrix, plot_disconnectivity, plot_embedding
from topograph.paths.report import compare_solutions


def test_linear_kernel_pca_equals_pca_scores():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 30)) @ np.diag(np.linspace(3, 0.1, 30))
    kp = sol.kernel_pca(x, kernel="linear", n_components=3)
    # reference: SVD of the centred data
    xc = x - x.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    ref = u[:, :3] * s[:3]
    for k in range(3):
        sign = np.sign(kp[:, k] @ ref[:, k])
        np.testing.assert_allclose(sign * kp[:, k], ref[:, k], rtol=1e-7, atol=1e-8)


def test_rbf_kpca_separates_shells_of_different_radii():
    rng = np.random.default_rng(1)
    d = 1000
    def shell(r, n):
        v = rng.normal(size=(n, d))
        return r * v / np.linalg.norm(v, axis=1, keepdims=True)
    x = np.vstack([shell(20.0, 15), shell(40.0, 15)])  # radius² / d of order 1, as for N_prm
    groups = np.array([0] * 15 + [1] * 15)
    def separated(pc1):
        a, b = pc1[groups == 0], pc1[groups == 1]
        return a.max() < b.min() or b.max() < a.min()
    assert separated(sol.kernel_pca(x)[:, 0])          # gamma = 1/N_prm
    assert not separated(sol.linear_pca(x)[:, 0])      # linear PCA sees no radial structure


def _kruskal_weight(h):
    n = len(h)
    parent = list(range(n))
    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i
    total = 0.0
    for w, i, j in sorted((h[i, j], i, j) for i in range(n) for j in range(i + 1, n)):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            total += w
    return total


def test_spanning_tree_is_minimal_and_handles_negative_heights():
    rng = np.random.default_rng(2)
    h = rng.normal(size=(7, 7))
    h = (h + h.T) / 2
    edges = sol.spanning_tree(h)
    assert len(edges) == 6
    assert sum(e[2] for e in edges) == pytest.approx(_kruskal_weight(h))
    assert all(h[i, j] == w for i, j, w in edges)


def test_centroid_distances_and_weight_statistics():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0]])
    out = sol.centroid_distances(x, ["sgd", "sgd", "lbfgs", "lbfgs"])
    np.testing.assert_allclose(out["centroid"], [5.5, 1.0])  # mean of (1,0) and (10,2)
    np.testing.assert_allclose(out["distances"], np.linalg.norm(x - [5.5, 1.0], axis=1))
    stats = sol.weight_statistics([torch.tensor([3.0, 4.0])])
    assert stats[0]["norm"] == pytest.approx(5.0) and stats[0]["std"] == pytest.approx(0.5)


def test_barrier_matrix_matches_pairwise_straight_lines(tmp_path):
    f = lambda w: (w[..., 0] ** 2 - 1) ** 2 + w[..., 1] ** 2  # noqa: E731
    obj = FunctionObjective(f, 2)
    pts = [torch.tensor(p, dtype=torch.float64) for p in ([-1.0, 0.0], [1.0, 0.0], [1.0, 0.5])]
    m = sol.barrier_matrix(obj, pts, points=101)
    for i in range(3):
        for j in range(i + 1, 3):
            r = linear_barrier(obj, pts[i], pts[j], points=101)
            assert m.heights[i, j] == m.heights[j, i] == pytest.approx(r.height)
    assert m.heights[0, 1] == pytest.approx(1.0)
    assert m.heights[2, 2] == pytest.approx(0.25)
    files = plot_barrier_matrix(m.heights, tmp_path / "m") + plot_disconnectivity(m.heights, tmp_path / "d")
    files += plot_embedding(np.array([[0.0, 1], [1, 0], [2, 2]]), tmp_path / "k", groups=["a", "b", "a"])
    assert sorted(p.suffix for p in files) == [".png"] * 3 + [".svg"] * 3
    assert all(p.stat().st_size > 0 for p in files)


def test_compare_solutions_writes_plot_and_records(tmp_path, one_thread):
    x, y = classification_data(64)
    models = []
    for seed in (0, 1):
        m = tiny_mlp((5, 8, 3), seed=seed)
        opt = torch.optim.Adam(m.parameters(), lr=0.05)
        for _ in range(100):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        models.append(m)
    obj = Objective(models[0], F.cross_entropy, {"train": (x, y), "test": (x[:32], y[:32])})
    b = Objective(models[1], F.cross_entropy).flat_params()
    res = compare_solutions(obj, obj.flat_params(), b, tmp_path, steps=30, points=11, lr=0.02, progress=False)
    assert set(res) == {"straight", "fourier"}
    assert res["fourier"].height <= res["straight"].height + 1e-6
    for name in ("paths.png", "paths.svg", "paths.json", "path-fourier.npz", "path-straight.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(res["fourier"].profiles) == {"train", "test"}


def test_cli_paths_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["paths", str(tmp_path / "nope-a"), str(tmp_path / "nope-b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope-a" in err[0]
    assert main(["paths", str(tmp_path)]) == 2
    assert main(["paths", "--runs", str(tmp_path / "x")]) == 2
