"""``topograph paths``: barriers and low paths between solutions, or maps of a set of runs.

    topograph paths RUN_A RUN_B [--method fourier] [--reduction softmax] [--steps 100] [--out DIR]
    topograph paths --model M --data D --weights A.pt --weights B.pt [--method fourier] [...]
    topograph paths --runs RUN_1 RUN_2 RUN_3 ... [--method linear] [--out DIR]

A and B are run directories or checkpoint files inside runs (``topograph.runs.load_model``); the
data and loss are those of A's run.  Or A and B are two plain weights files of one model, named
with ``--model``/``--data`` or ``--config`` (:mod:`topograph.cli.sources`).  The results go
beside the runs unless ``--out`` says otherwise: ``RUN_A/paths/<B>-<method>/`` for a pair,
``<the runs' common folder>/paths-<method>/`` for a set, ``<A's folder>/paths/<A>-<B>-<method>/``
for two weights files.  With ``--runs`` the command computes the pairwise barrier
matrix (straight line by default), its minimum spanning tree, centroid distances, and kernel PCA
(RBF, γ = 1/N_prm) and linear PCA of the solutions, coloured by optimizer.

Both resume after a kill: a path search checkpoints its state in ``OUT/checkpoints/`` every 10
steps, and the barrier matrix writes each finished pair there; the same command run again goes
on from there and gives the same result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import torch

from topograph.cli.checks import check_writable
from topograph.cli.sources import SourceOptions, WeightsSource, source_options, weights_source
from topograph.core import Objective
from topograph.errors import UsageError
from topograph.io import atomic_write_text
from topograph.paths import solutions as sol
from topograph.paths.plots import plot_barrier_matrix, plot_disconnectivity, plot_embedding
from topograph.paths.report import compare_solutions, make_finder
from topograph.runs import Run, load_model

METHOD_CHOICES = ["fourier", "bezier", "polychain", "neb", "linear"]
#: the folder inside --out where searches and the pairs of a matrix checkpoint (resumed by a rerun)
CHECKPOINTS = "checkpoints"


def _flat(objective, module):
    return objective.spec.flatten({n: p.detach() for n, p in module.named_parameters() if p.requires_grad})


def _same_weights(x, y) -> bool:

    return x.shape == y.shape and bool(torch.equal(x, y))


def _pair_out(a: str, b: str, method: str) -> Path:
    """``RUN_A/paths/<B's run>-seed-<S>[-<file>]-<method>``: the pair's results beside A's run."""

    run_a, run_b = Run.open(a), Run.open(b)
    label = f"{run_b.name}-seed-{run_b.seed}" + (f"-{Path(b).stem}" if Path(b).is_file() else "")
    return run_a.path / "paths" / f"{label}-{method}"


def _set_out(dirs: list, method: str) -> Path:
    """``<the runs' common folder>/paths-<method>`` (if they share none: beside the first run's
    NAME folder, i.e. in the OUT of its ``OUT/NAME/seed-S``)."""
    try:
        common = Path(os.path.commonpath([str(d) for d in dirs]))
    except ValueError:  # relative and absolute paths mixed
        common = Path(os.path.commonpath([str(Path(d).resolve()) for d in dirs]))
    if common == Path(common.anchor) or str(common) in ("", "."):
        common = Path(dirs[0]).parent.parent
    return common / f"paths-{method}"


def _load_pair(a: str, b: str):
    for p in (a, b):
        if not Path(p).exists():
            raise UsageError(f"{p}: no such run directory or checkpoint file")

    objective = Run.open(a).objective()
    model_a, model_b = load_model(a), load_model(b)
    theta_a = _flat(objective, model_a)
    try:
        theta_b = _flat(objective, model_b)
    except UsageError as err:
        raise UsageError(f"{b}: its model does not match {a}'s ({err})") from None
    if _same_weights(theta_a, theta_b):
        raise UsageError(f"{a} and {b} hold the same weights: a path from a solution to itself has no "
                         "barrier; give two different solutions")
    return objective, theta_a, theta_b


def _weights_pair(weights: WeightsSource):
    """The objective (model and data of the first file), and the two solutions' flat vectors."""
    a, b = weights.weights
    objective = Objective(weights.models[0], weights.loss_fn, weights.dataset)
    theta_a, theta_b = (_flat(objective, m) for m in weights.models)
    if _same_weights(theta_a, theta_b):
        raise UsageError(f"--weights {a} and {b} hold the same weights: a path from a solution to itself has "
                         "no barrier; give two different solutions")
    return objective, theta_a, theta_b


@click.command("paths", epilog="""\b
Examples:
  topograph paths runs/sgd/seed-0 runs/adam/seed-0
  topograph paths --model mypkg.nets:resnet20 --data mnist --limit-train 1000 --weights a.pt --weights b.pt
  topograph paths --config model-and-data.toml --weights a.pt --weights b.pt --method linear

Weights files are state_dicts saved with torch.save (loaded with weights_only=True) of the one
model that --model/--data or --config names; the path runs from the first to the second.""")
@click.argument("solutions", metavar="[RUN_A RUN_B | --runs RUN ...]", nargs=-1, type=click.Path())
@click.option("--runs", "runs", is_flag=True, help="Treat the arguments as a set of runs (barrier matrix, kPCA).")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default=None,
              help="Path method (default: fourier for a pair, linear for --runs).")
@click.option("--reduction", "path_reduction", type=click.Choice(["softmax", "sum", "squared"]), default="softmax",
              show_default=True, help="FourierPathFinder objective.")
@click.option("--steps", type=click.IntRange(min=0), default=100, show_default=True, help="Optimisation steps.")
@click.option("--points", type=click.IntRange(min=3), default=51, show_default=True, help="Path points per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output directory [default: beside the runs: RUN_A/paths/<B>-<method> for a pair, "
                   "<the runs' common folder>/paths-<method> for --runs, <A's folder>/paths/<A>-<B>-<method> "
                   "for two --weights].")
@source_options
def command(solutions, runs, method, path_reduction, steps, points, lr, out, sources: SourceOptions):
    """Barrier and low-height path between two solutions (two runs, or two --weights files with
    --model/--data or --config), or maps of a set of runs."""
    if out is not None:
        check_writable(out, label="--out")
    if runs and sources.given():
        raise UsageError(f"--runs maps a set of run directories; {sources.given()[0]} is for a pair of weights "
                         "files (two --weights): leave out one or the other")
    if runs:
        _run_set(list(solutions), method or "linear", path_reduction, steps, points, lr,
                 Path(out) if out is not None else None)
        return
    weights = weights_source(sources, list(solutions), count=2, command="paths")
    if weights is None and len(solutions) != 2:
        raise UsageError(f"give exactly two solutions (run directories or checkpoints, or two --weights files "
                         f"with --model/--data), got {len(solutions)}; use --runs for a set")

    if weights is not None:
        objective, a, b = _weights_pair(weights)
        if out is None:
            wa, wb = weights.weights
            out = wa.parent / "paths" / f"{wa.stem}-{wb.stem}-{method or 'fourier'}"
            check_writable(out, label="the default --out (beside the first weights file; choose another with --out)")
    else:
        objective, a, b = _load_pair(*solutions)
        if out is None:
            out = _pair_out(*solutions, method or "fourier")
            check_writable(out, label="the default --out (beside the runs; choose another with --out)")
    results = compare_solutions(objective, a, b, out, method=method or "fourier", steps=steps, points=points,
                                reduction=path_reduction, lr=lr, checkpoint=Path(out) / CHECKPOINTS)
    for name, r in results.items():
        tests = r.profiles.get("test")
        extra = f", test H = {tests.height:.4g}" if tests is not None else ""
        click.echo(f"{name:>10}: H = {r.height:.4g}, ΔH = {r.barrier:.4g} at t = {r.argmax_t:.3f}{extra}")
    click.echo(f"wrote {Path(out) / 'paths.png'} and {Path(out) / 'paths.json'}")


def _run_set(dirs, method, path_reduction, steps, points, lr, out: Path | None) -> None:
    if len(dirs) < 2:
        raise UsageError(f"--runs needs at least two run directories, got {len(dirs)}")
    for d in dirs:
        if not Path(d).exists():
            raise UsageError(f"{d}: no such run directory")

    runs = [Run.open(d) for d in dirs]
    if out is None:
        out = _set_out([r.path for r in runs], method)
        check_writable(out, label="the default --out (beside the runs; choose another with --out)")
    objective = runs[0].objective()
    vectors, labels, groups = [], [], []
    for r in runs:
        try:
            vectors.append(_flat(objective, r.model()))
        except UsageError as err:
            raise UsageError(f"{r.path}: its model does not match {runs[0].path}'s ({err})") from None
        for j, earlier in enumerate(vectors[:-1]):
            if _same_weights(earlier, vectors[-1]):
                raise UsageError(f"{runs[j].path} and {r.path} hold the same weights (the same run twice?); "
                                 "give each solution once")
        groups.append(str(r.config.get("optimizer", {}).get("name", "?")))
        labels.append(f"{r.name}:{r.seed}")
    finder = make_finder(method, steps=steps, points=points, reduction=path_reduction, lr=lr)
    matrix = sol.barrier_matrix(objective, vectors, finder=finder, labels=labels, checkpoint=out / CHECKPOINTS)
    out.mkdir(parents=True, exist_ok=True)
    plot_barrier_matrix(matrix.heights, out / "barrier-matrix", labels=labels)
    plot_disconnectivity(matrix.heights, out / "disconnectivity", labels=labels)
    summary = matrix.summary()
    summary["groups"] = groups
    summary["centroid_distances"] = sol.centroid_distances(vectors, groups)["distances"].tolist()
    summary["weights"] = sol.weight_statistics(vectors)
    if len(vectors) >= 3:
        kp = sol.kernel_pca(vectors)
        lin = sol.linear_pca(vectors)
        plot_embedding(kp, out / "kpca", groups=groups)
        plot_embedding(lin, out / "pca", groups=groups, title="linear PCA")
        summary["kpca"], summary["pca"] = kp.tolist(), lin.tolist()
    text = json.dumps(summary, indent=2)
    atomic_write_text(out / "solutions.json", text)
    tree = ", ".join(f"{labels[i]}–{labels[j]} {h:.4g}" for i, j, h in summary["spanning_tree"])
    click.echo(f"mean H = {summary['mean_height']:.4g}, mean ΔH = {summary['mean_barrier']:.4g} ({matrix.method})")
    click.echo(f"spanning tree: {tree}")
    click.echo(f"wrote {out / 'solutions.json'} and plots in {out}")
