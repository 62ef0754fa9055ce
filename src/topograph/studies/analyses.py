"""The analyses of a study, each turning the finished runs into report sections.

Always included: the results table (papers' numbers beside ours, mean ± std over seeds), the
comparisons (paired-by-seed t-test + bootstrap CI, a verdict that never says "better" unless
p < α), tuning, compute, and the exact configs/seeds/versions.  Optional kinds, listed in a
study's ``[[analyses]]``: ``curves``, ``sweep``, ``heatmap`` (a two-key sweep), ``surface`` (plotly 3-D map + trajectory),
``curvature`` (Hessian measures along training), ``epochs_to_reach`` and ``stability`` (claims
read off training curves — :mod:`topograph.studies.curve_claims`), ``trajectories`` (runs on random and PCA
planes, figure by figure — :mod:`topograph.studies.trajectories`), ``loss_curves`` and ``solutions`` (sets of
solutions: Table I, barriers, distances, kernel PCA, weight statistics —
:mod:`topograph.studies.solution_report`), ``basin_maps`` (analytic landscapes).  An analysis whose building block is not
available, or that fails, leaves a visible warning in the report — never made-up numbers.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

import topograph
from topograph.curvature import measures_along_trajectory
from topograph.data.analytic import get_landscape
from topograph.io import grid_subplots, new_subplots
from topograph.landscape.directions import pca_directions, random_directions
from topograph.optim.demo_report import plot_basins, plot_sgdr
from topograph.optim.demos import basin_map, demo_optimizers, sgdr_escape
from topograph.report import Code, Figure, Heading, Image, Note, Plotly, Report, Table
from topograph.studies.context import StudyContext, fb_cost
from topograph.studies.curve_claims import epochs_to_reach_section, stability_section
from topograph.studies.solution_report import loss_curves, solutions
from topograph.studies.stats import compare, format_mean_std, summarize
from topograph.studies.trajectories import trajectories

METRICS = ("test_acc", "test_loss", "train_loss", "train_acc")



# ---------------------------------------------------------------------- always


def results_table(ctx: StudyContext) -> list[Any]:
    rows = []
    for arm in ctx.spec.arms:
        if arm.name not in ctx.runs or arm.sweep:
            continue
        row = {"arm": arm.name, "label": arm.label, "seeds": len(ctx.runs[arm.name])}
        for m in METRICS:
            s = summarize(ctx.values(arm.name, m))
            row[m] = format_mean_std(s.mean, s.std)
            if m in arm.paper:
                row[f"paper {m}"] = arm.paper[m]
        row["epochs"] = format_mean_std(*_ms(ctx.values(arm.name, "epochs")), digits=1)
        row["F/B per run"] = format_mean_std(*_ms(ctx.values(arm.name, "fb_cost")), digits=0)
        rows.append(row)
    cols = ["arm", "label", "seeds"]
    for m in METRICS:
        if any(f"paper {m}" in r for r in rows):
            cols.append(f"paper {m}")
        cols.append(m)
    cols += ["epochs", "F/B per run"]
    return [Heading("Results"), Table("results", "Final metrics: ours (mean ± std over seeds) beside the paper",
                                      cols, rows, caption="final epoch of each run; accuracies are fractions")]


def _ms(v: list[float]) -> tuple[float, float]:
    s = summarize(v)
    return s.mean, s.std


def comparisons_table(ctx: StudyContext) -> list[Any]:
    if not ctx.spec.comparisons:
        return []
    rows = []
    for c in ctx.spec.comparisons:
        metric = c.get("metric", "test_acc")
        hib = bool(c.get("higher_is_better", not metric.endswith("loss")))
        ra, rb = ctx.runs[c["a"]], ctx.runs[c["b"]]
        paired = [r.seed for r in ra] == [r.seed for r in rb]
        cmp = compare(ctx.values(c["a"], metric), ctx.values(c["b"], metric), label_a=c["a"], label_b=c["b"],
                      metric=metric, paired=paired, higher_is_better=hib, seed=0)
        rows.append({"a": c["a"], "b": c["b"], "metric": metric, "a mean ± std": str(cmp.a),
                     "b mean ± std": str(cmp.b), "difference (a − b)": cmp.difference,
                     "95% CI": f"[{cmp.ci_low:.4g}, {cmp.ci_high:.4g}]", "test": cmp.test,
                     "p-value": cmp.p_value, "verdict": cmp.verdict, "paper says": c.get("paper", "")})
    cols = ["a", "b", "metric", "a mean ± std", "b mean ± std", "difference (a − b)", "95% CI", "test",
            "p-value", "verdict", "paper says"]
    return [Heading("Comparisons"),
            Note("Each comparison: difference of means, a percentile-bootstrap 95% CI of it, and the p-value of "
                 "a paired t-test (runs paired by seed: same initialisation and batch order) or Welch's t-test. "
                 "A verdict says 'better' only when p < 0.05.", "info"),
            Table("comparisons", "Comparisons with p-values", cols, rows)]


def tuning_section(ctx: StudyContext) -> list[Any]:
    if not ctx.tuning:
        return [Note("No arm of this study was tuned in this mode (fixed, stated settings).", "info")]
    rows = []
    for arm, t in ctx.tuning.items():
        rows.append({"arm": arm, "best params": json.dumps(t.best_params), "best val acc": t.best_value,
                     "complete": t.n_complete, "pruned": t.n_pruned, "failed": t.n_failed,
                     "interrupted": t.n_interrupted})
    b = ctx.spec.budget
    return [Heading("Tuning"),
            Note(f"Optuna TPE (seeded) + median pruning on validation accuracy; every tuned arm had the same "
                 f"budget of {b.trials} trials × {b.tune_epochs} epochs with a validation split of "
                 f"{b.tune_val_size} of the training set. Final runs use the best setting. 'interrupted' "
                 "counts trials whose worker was killed and that another run finished (same trial, same "
                 "parameters); 'failed' counts trials that raised an error.", "info"),
            Table("tuning", "Tuning results", ["arm", "best params", "best val acc", "complete", "pruned",
                                               "failed", "interrupted"], rows)]


def compute_section(ctx: StudyContext, seconds: float) -> list[Any]:
    rows = []
    for arm, runs in ctx.runs.items():
        for r in runs:
            s = r.summary
            rows.append({"arm": arm, "seed": r.seed, "epochs": s.get("epochs"), "steps": s.get("steps"),
                         "backward passes (F/B)": s.get("backward_passes"),
                         "forward passes (F)": s.get("forward_passes"),
                         "F/B-equivalents": fb_cost(s),
                         "samples through F/B": s.get("backward_samples"), "seconds": s.get("seconds"),
                         "stop": s.get("stop_reason"), "device": s.get("device"), "run dir": str(r.path)})

    versions = {"topograph": topograph.__version__, "python": platform.python_version()}
    for mod in ("torch", "numpy", "scipy", "sklearn", "optuna", "plotly", "matplotlib"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            versions[mod] = "missing"
    import os

    env = {"host": platform.node(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "study seconds (this invocation, incl. reused runs)": round(seconds, 1)}
    configs = "\n\n".join(f"# arm {a}\n" + json.dumps(c, indent=2, default=str) for a, c in ctx.configs.items())
    return [Heading("Compute, configs, seeds and versions"),
            Table("compute", "Compute per run (F/B = forward+backward on one batch; F = every forward "
                  "pass, those of the F/B included; F/B-equivalents = F/B + (F − F/B)/3; a full-batch "
                  "step is one F/B over all samples — compare 'samples through F/B' across batch sizes)",
                  list(rows[0]) if rows else ["arm"], rows),
            Code("versions and machine", json.dumps({**versions, **env}, indent=2)),
            Code("resolved run configs of every arm", configs),
            Code(f"study config ({ctx.spec.source}, version {ctx.spec.version})",
                 (ctx.study_dir / "study.toml").read_text(encoding="utf-8"))]


# ---------------------------------------------------------------------- optional kinds


def curves(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    arms = opts.get("arms") or [a.name for a in ctx.spec.arms if not a.sweep and a.name in ctx.runs]
    metrics = opts.get("metrics", ["test_acc", "train_loss"])
    out = []
    for x_axis in ("epoch", "backward_passes_total"):
        fig, axes = new_subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6))
        axes = np.atleast_1d(axes)
        for arm in arms:
            for ax, m in zip(axes, metrics):
                xs, ys = _stack(ctx.runs[arm], x_axis, m)
                if ys is None:
                    continue
                mean, std = np.nanmean(ys, 0), np.nanstd(ys, 0)
                ax.plot(xs, mean, label=arm)
                ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
        for ax, m in zip(axes, metrics):
            ax.set_xlabel("epoch" if x_axis == "epoch" else "forward+backward passes")
            ax.set_ylabel(m)
            if m.endswith("loss"):
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(Figure(f"Metric curves vs {'epochs' if x_axis == 'epoch' else 'compute (F/B)'}", fig,
                          "mean ± std over seeds"))
    return [Heading("Training curves"), *out]


def _stack(runs, x_key: str, m: str):
    rows = [r.metrics() for r in runs]
    n = min(len(r) for r in rows)
    if n == 0 or m not in rows[0][0]:
        return None, None
    xs = np.array([float(rows[0][i][x_key]) for i in range(n)])
    ys = np.array([[float(r[i][m]) if r[i][m] not in ("", None) else np.nan for i in range(n)] for r in rows])
    return xs, ys


def sweep(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    out = [Heading(f"Sweep: {opts.get('sweep', '')}")]
    arms = [a for a in ctx.spec.arms if a.sweep == opts.get("sweep")]
    if not arms:
        return out + [Note(f"sweep {opts.get('sweep')!r} has no arms", "warning")]
    keys = list(arms[0].sweep_values)
    rows = []
    for a in arms:
        row = {k.split(".")[-1]: v for k, v in a.sweep_values.items()}
        for m in ("test_acc", "test_loss"):
            row[m] = format_mean_std(*_ms(ctx.values(a.name, m)))
        row["seeds"] = len(ctx.runs[a.name])
        row["F/B per run"] = format_mean_std(*_ms(ctx.values(a.name, "fb_cost")), digits=0)
        paper = opts.get("paper", {}).get(a.name)
        if paper is not None:
            row["paper test_acc"] = paper
        rows.append(row)
    cols = [k.split(".")[-1] for k in keys] + (["paper test_acc"] if any("paper test_acc" in r for r in rows)
                                               else []) + ["test_acc", "test_loss", "seeds", "F/B per run"]
    out.append(Table(f"sweep-{opts.get('sweep')}", opts.get("title", "Sweep"), cols, rows,
                     caption=opts.get("caption", "")))
    return out


def heatmap(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """A two-key sweep as a heat map of the mean ``metric`` per cell (e.g. RBO's radius × lr).

    Options: ``sweep``; ``x`` and ``y`` (the swept keys, e.g. ``"optimizer.lr"`` and
    ``"optimizer.radius"``); ``metric`` (default ``test_acc``); ``title``, ``caption``.  A cell
    whose runs ended with a non-finite loss is drawn grey and marked "div."."""
    name, metric = opts.get("sweep"), opts.get("metric", "test_acc")
    kx, ky = opts["x"], opts["y"]
    arms = [a for a in ctx.spec.arms if a.sweep == name and a.name in ctx.runs]
    if not arms:
        return [Heading(opts.get("title", f"Heat map: {name}")), Note(f"sweep {name!r} has no runs", "warning")]
    xs = sorted({a.sweep_values[kx] for a in arms})
    ys = sorted({a.sweep_values[ky] for a in arms})
    grid = np.full((len(ys), len(xs)), np.nan)
    diverged = np.zeros_like(grid, dtype=bool)
    rows = []
    for a in arms:
        i, j = ys.index(a.sweep_values[ky]), xs.index(a.sweep_values[kx])
        vals = ctx.values(a.name, metric)
        losses = ctx.values(a.name, "train_loss")
        div = any(not math.isfinite(v) for v in losses)
        finite = [v for v in vals if math.isfinite(v)]
        grid[i, j] = float(np.mean(finite)) if finite else np.nan
        diverged[i, j] = div
        rows.append({ky.split(".")[-1]: a.sweep_values[ky], kx.split(".")[-1]: a.sweep_values[kx],
                     metric: format_mean_std(*_ms(vals)), "seeds": len(vals),
                     "final train loss": format_mean_std(*_ms(losses)), "diverged": div})
    fig, ax = grid_subplots(xs, ys, kx.split(".")[-1], ky.split(".")[-1])
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto")
    ax.set_facecolor("#bbbbbb")
    fig.colorbar(im, ax=ax, label=metric)
    for i in range(len(ys)):
        for j in range(len(xs)):
            text = "div." if diverged[i, j] else ("" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w")
    fig.tight_layout()
    cols = [ky.split(".")[-1], kx.split(".")[-1], metric, "seeds", "final train loss", "diverged"]
    return [Heading(opts.get("title", f"Heat map: {name}")),
            Figure(f"{metric} over {ky.split('.')[-1]} × {kx.split('.')[-1]}", fig,
                   opts.get("caption", "") + " (mean over seeds; grey 'div.': a run ended with a non-finite loss)"),
            Table(f"heatmap-{name}", f"Heat map cells: {name}", cols,
                  sorted(rows, key=lambda r: (r[cols[0]], r[cols[1]])))]


def surface(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """Loss over the PCA plane of a run's trajectory (Li et al. 2018 §7), with the trajectory."""
    import plotly.graph_objects as go
    import torch


    n = int(opts.get("points", 15))
    out = [Heading(opts.get("title", "Loss maps with trajectories"))]
    for arm in opts.get("arms", []):
        run = ctx.runs[arm][0]
        _, snaps = run.snapshots()
        obj = run.objective()
        split = opts.get("split", "train")
        dirs = pca_directions(obj, snaps, center=snaps[-1], dim=2)
        v = dirs.vectors.double().cpu()
        d = (snaps.double() - dirs.center.double().cpu())
        coef = torch.linalg.lstsq(v.T, d.T).solution.T  # (S, 2) least-squares coordinates
        span = float(coef.abs().max()) * float(opts.get("margin", 1.3)) or 1.0
        grid = torch.linspace(-span, span, n)
        aa, bb = torch.meshgrid(grid, grid, indexing="xy")
        pts = dirs.points(torch.stack([aa.reshape(-1), bb.reshape(-1)], 1).to(dirs.vectors))
        losses, _ = obj.evaluate_many(pts, split=split)
        z = losses.reshape(n, n).numpy()
        traj, _ = obj.evaluate_many(dirs.points(coef.to(dirs.vectors)), split=split)
        fig = go.Figure([go.Surface(x=grid.numpy(), y=grid.numpy(), z=np.log10(z), colorscale="Viridis",
                                    showscale=False, opacity=0.9),
                         go.Scatter3d(x=coef[:, 0].numpy(), y=coef[:, 1].numpy(), z=np.log10(traj.numpy()),
                                      mode="lines+markers", marker={"size": 3, "color": "red"},
                                      line={"color": "red"}, name="trajectory")])
        fig.update_layout(height=520, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                          scene={"xaxis_title": "PC1", "yaxis_title": "PC2", "zaxis_title": "log10 loss"})
        ev = dirs.explained_variance_ratio or ()
        out.append(Plotly(f"{arm} (seed {run.seed}): log10 {split} loss on the trajectory's PCA plane", fig,
                          f"{n}×{n} grid; PCA of the snapshots explains "
                          f"{', '.join(f'{e:.1%}' for e in ev)}; trajectory by least-squares projection."))
    return out


def batch_surfaces(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """The same random-direction plane around one final model, on batches of several sizes."""
    import plotly.graph_objects as go
    import torch
    from plotly.subplots import make_subplots


    arm = opts["arm"]
    run = ctx.runs[arm][0]
    obj = run.objective()
    dirs = random_directions(obj, dim=2, seed=int(opts.get("seed", 0)))
    n = int(opts.get("points", 11))
    grid = torch.linspace(-1, 1, n)
    aa, bb = torch.meshgrid(grid, grid, indexing="xy")
    pts = dirs.points(torch.stack([aa.reshape(-1), bb.reshape(-1)], 1).to(dirs.vectors))
    sizes = list(opts.get("batch_sizes", [1, 64, 256, "full"]))
    ds = run.dataset()
    x, y = ds.splits["train"]
    g = torch.Generator().manual_seed(0)
    fig = make_subplots(rows=1, cols=len(sizes), specs=[[{"type": "surface"}] * len(sizes)],
                        subplot_titles=[f"batch {s}" for s in sizes])
    for j, s in enumerate(sizes):
        if s == "full":
            losses, _ = obj.evaluate_many(pts, split="train")
        else:
            idx = torch.randperm(x.shape[0], generator=g)[: int(s)]
            losses, _ = obj.evaluate_many(pts, batch=(x[idx], y[idx]))
        fig.add_trace(go.Surface(z=np.log10(losses.reshape(n, n).numpy() + 1e-12), x=grid.numpy(),
                                 y=grid.numpy(), showscale=False), row=1, col=j + 1)
    fig.update_layout(height=420, margin={"l": 0, "r": 0, "t": 30, "b": 0})
    return [Heading(opts.get("title", "Per-batch loss surfaces")),
            Plotly(f"{arm}: log10 loss around the final model on one batch of each size", fig,
                   f"filter-normalised random plane (seed {opts.get('seed', 0)}), [-1, 1]², {n}×{n}")]


def curvature(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """Top Hessian eigenvalue and trace at every snapshot of one run per arm."""

    fig, axes = new_subplots(1, 2, figsize=(10, 3.6))
    rows = []
    for arm in opts.get("arms", []):
        run = ctx.runs[arm][0]
        obj = run.objective()
        if opts.get("limit_samples"):
            ds = run.dataset()
            x, y = ds.splits["train"]
            k = int(opts["limit_samples"])
            res = measures_along_trajectory(run, progress=False, batch=(x[:k], y[:k]),
                                            trace_probes=int(opts.get("trace_probes", 10)),
                                            density_steps=None, epsilon=None)
        else:
            res = measures_along_trajectory(run, objective=obj, progress=False,
                                            trace_probes=int(opts.get("trace_probes", 10)),
                                            density_steps=None, epsilon=None)
        pos = res.positions.numpy()
        top = res.column("top_eigenvalue").numpy() if "top_eigenvalue" in res.measures[0].as_dict() else \
            np.array([m.top_eigenvalues[0] for m in res.measures])
        tr = res.column("trace").numpy()
        axes[0].plot(pos, top, marker=".", label=arm)
        axes[1].plot(pos, tr, marker=".", label=arm)
        for p, a, t in zip(pos, top, tr):
            rows.append({"arm": arm, "seed": run.seed, res.xlabel: float(p), "lambda_max": float(a), "trace": float(t)})
    axes[0].set_ylabel("top Hessian eigenvalue")
    axes[1].set_ylabel("Hessian trace (Hutch++)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return [Heading("Curvature along training"),
            Figure("Curvature at the snapshots (training loss)", fig,
                   "Lanczos top eigenvalue; trace by Hutch++" + (
                       f"; on the first {opts['limit_samples']} training samples" if opts.get("limit_samples") else "")),
            Table("curvature", "Curvature along training", ["arm", "seed", "epoch", "lambda_max", "trace"], rows)]


def basin_maps(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """Basin-of-attraction maps and the SGDR escape test on analytic landscapes (seed 004),
    from :mod:`topograph.optim.demos`."""

    fig_dir = ctx.study_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    out = [Heading("Escaping shallow minima on analytic landscapes")]
    only = tuple(opts.get("optimizers", ["GD", "momentum", "SGDR"]))
    for name in opts.get("landscapes", ["tilted-double-well"]):
        land = get_landscape(name)
        bm = basin_map(land, demo_optimizers(land, only=only, sgdr=True), grid=int(opts.get("grid", 21)),
                       steps=opts.get("steps"))
        paths = plot_basins(land, bm, fig_dir / f"basins-{name}")
        png = next(p for p in paths if str(p).endswith(".png"))
        out.append(Image(f"{name}: basins of attraction ({bm.steps} steps per start)", png))
        rows = [{"optimizer": lab, **{k: v for k, v in fr.items()}} for lab, fr in bm.fractions.items()]
        out.append(Table(f"basins-{name}", f"{name}: fraction of starts ending in each minimum",
                         ["optimizer", *bm.categories], rows))
    res = sgdr_escape(seeds=int(opts.get("sgdr_seeds", 20)), steps=int(opts.get("sgdr_steps", 600)),
                      without_momentum=bool(opts.get("sgdr_without_momentum", False)))
    paths = plot_sgdr(res, fig_dir / "sgdr-escape")
    out.append(Image("SGDR escape from the shallow minimum of the tilted double well", next(
        p for p in paths if str(p).endswith(".png"))))
    out.append(Table("sgdr-escape", f"Started at the shallow minimum, noisy gradients, {res.seeds} seeds",
                     ["schedule", "fraction ending in the deep basin", "mean final loss"],
                     [{"schedule": k, "fraction ending in the deep basin": res.global_fraction[k],
                       "mean final loss": res.final_loss[k]} for k in res.global_fraction]))
    return out


ANALYSES: dict[str, Callable[[StudyContext, dict[str, Any]], list[Any]]] = {
    "curves": curves, "sweep": sweep, "heatmap": heatmap, "surface": surface, "batch_surfaces": batch_surfaces,
    "curvature": curvature, "solutions": solutions, "loss_curves": loss_curves, "trajectories": trajectories,
    "basin_maps": basin_maps, "epochs_to_reach": epochs_to_reach_section, "stability": stability_section,
}


def build_report(ctx: StudyContext, *, seconds: float) -> Report:
    """All sections of a study's report, in order."""
    spec = ctx.spec
    rep = Report(f"topograph study: {spec.title} ({spec.mode} mode)")
    rep.add(Note(spec.description, "info"))
    if spec.paper:
        rep.add(Note(f"Paper: {spec.paper}", "info"))
    if spec.mode == "quick":
        rep.add(Note(f"QUICK mode: {len(spec.budget.seeds)} seed(s), tiny data and epoch budgets — a smoke test of "
                     "the pipeline, not evidence for or against the paper.", "warning"))
    for d in spec.differences:
        rep.add(Note(f"Difference from the paper: {d}", "warning"))
    for n in ctx.notes:
        rep.add(Note(n, "info"))
    rep.add(*results_table(ctx), *comparisons_table(ctx))
    for an in spec.analyses:
        kind = an["kind"]
        fn = ANALYSES.get(kind)
        if fn is None:
            rep.add(Note(f"analysis {kind!r} is unknown; skipped", "warning"))
            continue
        if an.get("skip"):
            rep.add(Note(f"analysis {kind!r} skipped in {spec.mode} mode: {an['skip']}", "warning"))
            continue
        try:
            rep.add(*fn(ctx, an))
        except ImportError as err:
            rep.add(Heading(kind), Note(f"analysis {kind!r} skipped: a building block is not available "
                                        f"in this version of topograph ({err}). No numbers are shown for it.",
                                        "warning"))
        except Exception as err:  # noqa: BLE001 - one failing analysis must not lose the others
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            print(f"topograph study: analysis {kind!r} failed: {last}", file=sys.stderr)
            rep.add(Heading(kind), Note(f"analysis {kind!r} failed: {last}. No numbers are shown for it.",
                                        "warning"))
    rep.add(*tuning_section(ctx), *compute_section(ctx, seconds))
    return rep


__all__ = ["ANALYSES", "build_report"]
