"""``topograph quickstart``: the whole toolkit on scikit-learn's digits, in well under 2 minutes.

1. trains SGD, SGD + momentum and Adam (:func:`topograph.runs.quickstart.run_quickstart`);
2. draws the loss surface around the Adam solution in the PCA plane of the three trajectories,
   with the three paths overlaid (:func:`topograph.landscape.trajectory_map`);
3. measures the top Hessian eigenvalue and the trace at each solution
   (:func:`topograph.curvature.curvature_summary`);
4. measures the barrier between the SGD and Adam solutions on the straight line and along a
   FourierPathFinder path, and plots both (:func:`topograph.paths.report.compare_solutions`).

Every step writes under the output directory and is skipped when its result is already there,
so re-running is cheap and a killed quickstart resumes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from topograph.curvature import curvature_summary
from topograph.io import atomic_write_text
from topograph.landscape import trajectory_map
from topograph.paths.report import compare_solutions
from topograph.runs.quickstart import DEFAULT_OUT, QuickstartResult, quickstart_configs, run_quickstart
from topograph.runs.store import CHECKPOINT_FILE, SUMMARY_FILE


@dataclass
class QuickstartReport:
    """Everything the quickstart computed, with the files it wrote."""

    training: QuickstartResult
    curvature: dict[str, dict[str, float]] = field(default_factory=dict)
    barrier: dict[str, dict[str, float]] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


#: the analysis files a re-run reuses, by what they hold
ANALYSIS_FILES = {"map": "surface.png", "curvature": "curvature.json", "barrier": "barrier.json"}


def earlier_results(out_dir: str | Path = DEFAULT_OUT) -> str:
    """What an earlier quickstart left under ``out_dir`` that a new one reuses, in words
    (e.g. ``"3 finished runs and the map, curvature, barrier"``); ``""`` when nothing."""
    out_dir = Path(out_dir)
    finished = interrupted = 0
    for name, cfg in quickstart_configs().items():
        run_dir = out_dir / name / f"seed-{cfg.run.seeds[0]}"
        if (run_dir / SUMMARY_FILE).exists():
            finished += 1
        elif (run_dir / CHECKPOINT_FILE).exists():
            interrupted += 1
    parts = []
    if finished:
        parts.append(f"{finished} finished run{'s' if finished > 1 else ''}")
    if interrupted:
        parts.append(f"{interrupted} interrupted run{'s' if interrupted > 1 else ''} (resumed)")
    done = [what for what, name in ANALYSIS_FILES.items() if (out_dir / "analysis" / name).exists()]
    if done:
        parts.append("the " + ", ".join(done))
    return " and ".join(parts)


def _cached(path: Path, compute) -> Any:
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):  # damaged (e.g. edited): computed again
            pass
    value = compute()
    atomic_write_text(path, json.dumps(value, indent=2))
    return value


def run(out_dir: str | Path = DEFAULT_OUT, *, progress: bool = True, analyses: bool = True) -> QuickstartReport:
    """Run the quickstart under ``out_dir``; ``analyses=False`` stops after training."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    report = QuickstartReport(training=run_quickstart(out_dir, progress=progress))
    report.seconds["training"] = time.perf_counter() - t0
    if not analyses:
        return report
    # The digits MLP has 2,410 weights: one thread avoids the threading overhead that dominates
    # such small products (measured: the barrier step 11.8 s on 1 thread, 19.5 s on 2).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _analyse(report, out_dir, progress)
    finally:
        torch.set_num_threads(threads)
    return report


def _analyse(report: QuickstartReport, out_dir: Path, progress: bool) -> None:
    runs = {r.name: r for r in report.training.runs}
    analysis = out_dir / "analysis"
    analysis.mkdir(parents=True, exist_ok=True)
    data = runs["adam"].dataset()  # one load serves every run's objective (same config data)
    objectives = {name: r.objective(data) for name, r in runs.items()}
    objective = objectives["adam"]

    # 2. the map with the three trajectories
    t = time.perf_counter()
    figure = analysis / "surface.png"
    if not figure.exists():
        trajectories = [(name, run.snapshots()[1]) for name, run in runs.items()]
        trajectory_map(objective, trajectories, path=figure, center_label="adam",
                       resolution=25, out=analysis / "surface.h5", progress=progress)
    report.figures.append(figure)
    report.seconds["surface"] = time.perf_counter() - t

    # 3. curvature at each solution (full training split)
    t = time.perf_counter()

    def curvature() -> dict[str, dict[str, float]]:
        out = {}
        for name, obj in objectives.items():
            s = curvature_summary(obj, trace_probes=30)
            out[name] = {"top_eigenvalue": s["top_eigenvalue"], "trace": s["trace"],
                         "trace_std_error": s["trace_std_error"], "hvps": s["work"]["hvps"]}
        return out

    report.curvature = _cached(analysis / "curvature.json", curvature)
    report.seconds["curvature"] = time.perf_counter() - t

    # 4. barrier between the SGD and Adam solutions
    t = time.perf_counter()

    def barrier() -> dict[str, dict[str, float]]:
        a = objectives["sgd"].flat_params()
        b = objective.flat_params()
        results = compare_solutions(objective, a, b, analysis / "paths", steps=150, points=31,
                                    title="digits: SGD → Adam solution", progress=False)
        return {name: {"H": float(r.height), "dH": float(r.barrier), "argmax_t": float(r.argmax_t)}
                for name, r in results.items()}

    report.barrier = _cached(analysis / "barrier.json", barrier)
    report.figures.append(analysis / "paths" / "paths.png")
    report.seconds["barrier"] = time.perf_counter() - t


def analysis_table(report: QuickstartReport):
    """A rich table: per solution, test accuracy/loss, top Hessian eigenvalue and trace."""
    from rich.table import Table

    table = Table(title="solutions: accuracy and curvature (train split)")
    for col in ("run", "test acc", "test loss", "λ_max", "trace"):
        table.add_column(col, justify="left" if col == "run" else "right", no_wrap=True)
    for row in report.training.rows:
        c = report.curvature.get(row.name, {})
        table.add_row(row.name, f"{100 * row.test_acc:.2f}%", f"{row.test_loss:.4f}",
                      f"{c.get('top_eigenvalue', math.nan):.4f}", f"{c.get('trace', math.nan):.3f}")
    return table


__all__ = ["QuickstartReport", "analysis_table", "earlier_results", "run"]
