"""Training trajectories drawn on loss maps, figure by figure (seed 003's Figs 3–6): analysis kind
``trajectories``.

Each figure of the config names its runs — regular arms (``arms = [...]``), or the cells of a
sweep that vary one key with the others fixed (``sweep``, ``vary``, ``fixed``) — and every run
(its first seed) is drawn on two planes through its **final** model θ* (the last snapshot with
finite parameters and training loss), on the training loss:

``random``  the seed's own construction: two filter-normalised random directions δ, η (Li et al.
            2018, seeded), the map f(α, β) = L(θ* + αδ + βη) over [−1, 1]², and the snapshots
            θ_t placed at their least-squares coordinates (α_t, β_t) = argmin ‖θ_t − θ* − αδ − βη‖.
            In P dimensions a random plane holds about 2/P of a motion's squared length, so the
            trajectory sits near the origin and the **residual fraction**
            ‖θ_t − θ* − α_tδ − β_tη‖ / ‖θ_t − θ*‖ is close to 1 — it is drawn next to each map;
``pca``     the plane of the first two principal components of the run's own snapshots (Li et al.
            §7), where the residual is small; the map covers the projected path.

Snapshots come from the runs (``snapshots.per_epoch`` gives the same density at every batch
size).  Maps are computed with :func:`topograph.landscape.compute_surface` into HDF5 files
under ``STUDY/surfaces/`` (resumable).  A run that diverged (e.g. lr 2) is drawn up to its last
snapshot with a finite training loss, and marked.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from topograph.io import new_subplots
from topograph.landscape import compute_surface
from topograph.landscape.directions import pca_directions, random_directions
from topograph.landscape.trajectory import covering_range, project
from topograph.report import Figure, Heading, Note, Table
from topograph.studies.context import StudyContext


def _runs_of(ctx: StudyContext, spec: dict[str, Any]) -> list[tuple[str, Any]]:
    """``[(label, run)]`` of a figure spec: listed arms, or the matching cells of a sweep."""
    if "arms" in spec:
        return [(a, ctx.runs[a][0]) for a in spec["arms"] if ctx.runs.get(a)]
    vary, fixed = spec["vary"], dict(spec.get("fixed", {}))
    cells = []
    for arm in ctx.spec.arms:
        if arm.sweep != spec["sweep"] or not ctx.runs.get(arm.name):
            continue
        values = arm.sweep_values
        if all(k in values and _same(values[k], v) for k, v in fixed.items()):
            cells.append((values[vary], f"{vary.split('.')[-1]}={values[vary]}", ctx.runs[arm.name][0]))
    return [(label, run) for _, label, run in sorted(cells, key=lambda c: c[0])]


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def _finite_prefix(obj, labels, snaps) -> tuple[list[tuple[float, int]], torch.Tensor]:
    """The snapshots up to (not including) the first whose parameters or training loss are not
    finite: after it the run has diverged and has no place on a map."""
    if snaps.numel() == 0:
        return [], snaps
    ok = torch.isfinite(snaps).all(dim=1)
    n = next((i for i in range(len(labels)) if not bool(ok[i])), len(labels))
    if n:
        losses, _ = obj.evaluate_many(snaps[:n].to(obj.flat_params().dtype), split="train")
        n = next((i for i in range(n) if not math.isfinite(float(losses[i]))), n)
    return labels[:n], snaps[:n]


def _objective(run, datasets: dict[str, Any]):
    """The run's objective, loading each distinct data config once (the grid's cells share it)."""
    key = json.dumps(run.config["data"], sort_keys=True, default=str)
    if key not in datasets:
        datasets[key] = run.dataset()
    return run.objective(datasets[key])


def _surface(ctx, run, obj, dirs, window, n: int, tag: str):
    key = hashlib.sha256(json.dumps([str(run.path.resolve()), tag, window, n], default=str).encode()).hexdigest()[:12]
    out = ctx.study_dir / "surfaces" / f"{run.name}-seed{run.seed}-{tag}-{key}.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    surf = compute_surface(obj, dirs, range=window, resolution=n, split="train", out=out, progress=False)
    return surf


def trajectories(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """One figure per configured figure: runs × (random plane, PCA plane, residual fraction)."""
    n = int(opts.get("points", 15))
    seed = int(opts.get("plane_seed", 0))
    planes = list(opts.get("planes", ["random", "pca"]))
    out: list[Any] = [Heading(opts.get("title", "Trajectories on loss maps")),
                      Note("Each run is drawn on the training loss around its final model θ*: 'random' = the seed's "
                           f"α–β plane of two filter-normalised random directions (seed {seed}) over [−1, 1]², the "
                           "snapshots at their least-squares coordinates; 'pca' = the plane of the run's own first "
                           "two principal components. The residual fraction ‖θ_t − θ* − α_tδ − β_tη‖/‖θ_t − θ*‖ is "
                           "the share of each step's offset the plane cannot show: near 1 on a random plane (the "
                           "trajectory then hugs the origin), small on the PCA plane.", "info")]
    rows = []
    datasets: dict[str, Any] = {}
    for spec in opts.get("figures", []):
        runs = _runs_of(ctx, spec)
        name = spec.get("name", "figure")
        if not runs:
            out.append(Note(f"{name}: no runs match {spec}; nothing drawn", "warning"))
            continue
        cols = len(planes) + 1
        fig, axes = new_subplots(len(runs), cols + 1, figsize=(4.0 * (cols + 1), 3.3 * len(runs)), squeeze=False)
        for r, (label, run) in enumerate(runs):
            drawn = _draw_run(ctx, fig, axes[r], label, run, _objective(run, datasets), planes, seed, n)
            rows += [{"figure": name, **row} for row in drawn]
        fig.tight_layout()
        out.append(Figure(f"{name}: {spec.get('title', '')}".strip(": "), fig,
                          spec.get("caption", "") + f" ({len(runs)} run(s), one seed each; log10 training loss; "
                          "red: the trajectory, white star: θ*; right: residual fraction per snapshot and the loss "
                          "curves)"))
    out.append(Table("trajectories", "Trajectories: snapshots, projection residuals and PCA explained variance",
                     ["figure", "run", "seed", "plane", "snapshots", "mean residual fraction", "initial-point residual",
                      "explained variance", "diverged"], rows,
                     caption="the initial point's offset from θ* is the longest the plane must show; residual "
                             "fractions are undefined (NaN) at θ* itself"))
    return out


def _draw_run(ctx: StudyContext, fig, axes, label: str, run, obj, planes: list[str], seed: int,
              n: int) -> list[dict[str, Any]]:
    """One row of a figure: the run on each plane, its residual fractions and its loss curves;
    the table rows (one per plane)."""
    all_steps, all_snaps = run.snapshots()
    steps, snaps = _finite_prefix(obj, all_steps, all_snaps)
    diverged = len(steps) < len(all_steps)
    _loss_curves(axes[-1], run.metrics(), label)
    if snaps.shape[0] < 3:
        for ax in axes[:-1]:
            ax.set_axis_off()
        axes[0].text(0.05, 0.5, f"{label}: fewer than 3 finite snapshots\n(diverged or none saved)",
                     fontsize=8, transform=axes[0].transAxes)
        return [{"run": label, "seed": run.seed, "plane": "—", "snapshots": snaps.shape[0],
                 "mean residual fraction": math.nan, "initial-point residual": math.nan,
                 "explained variance": "", "diverged": diverged}]
    center = snaps[-1]
    ax_res = axes[len(planes)]
    rows = []
    for c, plane in enumerate(planes):
        if plane == "random":
            dirs = random_directions(obj, center, dim=2, seed=seed)
        else:
            dirs = pca_directions(obj, snaps, center, dim=2)
        traj = project(snaps, dirs, steps=steps)
        window = [(-1.0, 1.0), (-1.0, 1.0)] if plane == "random" else covering_range([traj])
        surf = _surface(ctx, run, obj, dirs, window, n, plane)
        _plane_panel(fig, axes[c], surf, traj, dirs, label, plane, diverged)
        ax_res.plot([e for e, _ in steps], traj.residual_fraction, marker=".", label=plane)
        finite = traj.residual_fraction[np.isfinite(traj.residual_fraction)]
        ev = dirs.explained_variance_ratio
        rows.append({"run": label, "seed": run.seed, "plane": plane,
                     "snapshots": int(snaps.shape[0]), "mean residual fraction": traj.mean_residual_fraction,
                     "initial-point residual": float(finite[0]) if finite.size else math.nan,
                     "explained variance": ", ".join(f"{e:.1%}" for e in ev) if ev else "",
                     "diverged": diverged})
    ax_res.set_ylim(0, 1.05)
    ax_res.xaxis.set_major_locator(MaxNLocator(4))
    ax_res.set_xlabel("epoch")
    ax_res.set_title(f"{label}: residual fraction", fontsize=8)
    ax_res.legend(fontsize=6)
    return rows


def _loss_curves(ax, metrics: list[dict[str, Any]], label: str) -> None:
    ax.plot([x["epoch"] for x in metrics], [x["train_loss"] for x in metrics], marker=".", label="train")
    ax.plot([x["epoch"] for x in metrics], [x["test_loss"] for x in metrics], marker=".", label="test")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlabel("epoch")
    ax.set_title(f"{label}: loss", fontsize=8)
    ax.legend(fontsize=6)


def _plane_panel(fig, ax, surf, traj, dirs, label: str, plane: str, diverged: bool) -> None:
    """The log10 training loss on the plane, the projected trajectory and θ*.  Few tick labels:
    text layout dominates the drawing time of many small panels."""
    z = np.log10(np.clip(np.ma.masked_invalid(surf.loss.T), 1e-12, None))
    cs = ax.contourf(surf.axes[0], surf.axes[1], z, levels=20, cmap="viridis")
    cb = fig.colorbar(cs, ax=ax, shrink=0.8)
    cb.locator = MaxNLocator(4)
    cb.update_ticks()
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    xy = traj.coordinates
    ax.plot(xy[:, 0], xy[:, 1], "-o", color="red", ms=2, lw=1)
    ax.plot(xy[-1, 0], xy[-1, 1], "*", color="white", ms=8)
    ev = dirs.explained_variance_ratio
    span = float(np.abs(xy).max())
    ax.set_title(f"{label}: {plane} plane" + (f" (PCA {ev[0]:.0%}, {ev[1]:.0%})" if ev else
                                                f"; the path spans ±{span:.2g}")
                 + (" — diverged later" if diverged else ""), fontsize=8)
    ax.set_xlabel("α" if plane == "random" else "PC1")
    ax.set_ylabel("β" if plane == "random" else "PC2")


__all__ = ["trajectories"]
