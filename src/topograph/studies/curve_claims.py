"""Claims read off training curves: "reaches the baseline's accuracy in half the epochs" and
"stays stable at learning rate η" (the rolling-ball paper, arXiv 2505.19527; these statements
are known second-hand, from a transcription of a later version of the paper).  Analysis kinds
``epochs_to_reach`` and ``stability``.

**Epochs to reach a baseline.**  For a run of arm A and the run of baseline B with the same
seed, the *target* is B's value of a metric at its last epoch E_B (its final accuracy, or its
final loss).  A reaches it at

    e_A = min { e : m_A(e) ≥ target }   (accuracies; ≤ for losses),

the first epoch whose full-split metric (``metrics.csv``, one row per epoch; epoch 0 is the
initial point) reaches the target, or ∞ when no epoch does.  The *epoch ratio* is e_A / E_B
and the *compute ratio* is A's forward+backward-equivalents up to e_A over B's up to E_B
(F/B + F/3, as the study runner counts compute).  "A reaches B's accuracy in half the epochs"
holds in a seed when the epoch ratio is ≤ ½.  Epochs are whole: a run that gets there in the
middle of an epoch is counted at the end of it.

**Stability of a run** (:func:`classify_stability`), from its per-epoch training loss L_e
(L_0 = the initial point):

``diverged``  some L_e is not finite (NaN or ±∞) — the run blew up;
``unstable``  every L_e is finite but some L_e (e ≥ 1) exceeds ``rise`` × L_0 (default 1: the loss
              went above where it started) — it moved away from where it started;
``slow``      never above L_0 but L_final > ``progress`` × L_0 (default ½): stable, yet it did
              not halve its loss in the epochs given (a step size too small to learn);
``stable``    never above ``rise`` × L_0 and L_final ≤ ``progress`` × L_0.

Only whole-epoch rows are seen: a spike inside an epoch that the loss recovers from by the
epoch's end is invisible, and a run that the trainer stopped on a non-finite loss has that
loss in its last row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap

from topograph.io import grid_subplots, new_subplots
from topograph.report import Figure, Heading, Note, Table
from topograph.studies.context import StudyContext, fb_equivalents
from topograph.studies.stats import format_mean_std, summarize

#: the classes of :func:`classify_stability`, from worst to best
STABILITY_CLASSES = ("diverged", "unstable", "slow", "stable")
STABILITY_COLOURS = {"diverged": "#7f7f7f", "unstable": "#d62728", "slow": "#ffbf00", "stable": "#2ca02c"}


def _value(row: Mapping[str, Any], metric: str) -> float:
    v = row.get(metric, math.nan)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def epochs_to_reach(rows: Sequence[Mapping[str, Any]], metric: str, target: float, *,
                    higher_is_better: bool) -> float:
    """The first epoch whose ``metric`` reaches ``target`` (≥ it when ``higher_is_better``, ≤
    it otherwise; NaN rows never do), or ``math.inf`` when none does."""
    for r in rows:
        v = _value(r, metric)
        if math.isfinite(v) and (v >= target if higher_is_better else v <= target):
            return float(r["epoch"])
    return math.inf


def fb_at(row: Mapping[str, Any]) -> float:
    """Forward+backward-equivalents spent up to a metrics row: F/B + (F − F/B)/3 from the
    row's running totals (as :func:`topograph.studies.context.fb_cost` counts a whole run)."""
    return fb_equivalents(_value(row, "backward_passes_total"), _value(row, "forward_passes_total"))


def reach_row(arm_rows: Sequence[Mapping[str, Any]], base_rows: Sequence[Mapping[str, Any]], metric: str, *,
              higher_is_better: bool) -> dict[str, float]:
    """For one seed: the baseline's final ``metric`` (the target) and last epoch, the epoch at
    which the arm reaches the target, the epoch ratio and the compute ratio (∞ when it never
    does)."""
    last = base_rows[-1]
    target, e_base = _value(last, metric), float(last["epoch"])
    e_arm = epochs_to_reach(arm_rows, metric, target, higher_is_better=higher_is_better)
    if math.isfinite(e_arm):
        at = next(r for r in arm_rows if float(r["epoch"]) == e_arm)
        compute = fb_at(at) / fb_at(last) if fb_at(last) > 0 else math.nan
    else:
        compute = math.inf
    return {"target": target, "baseline epochs": e_base, "epochs to reach": e_arm,
            "epoch ratio": e_arm / e_base if e_base > 0 else math.nan, "compute ratio": compute}


def classify_stability(rows: Sequence[Mapping[str, Any]], *, progress: float = 0.5, rise: float = 1.0,
                       metric: str = "train_loss") -> str:
    """``"diverged"``, ``"unstable"``, ``"slow"`` or ``"stable"`` (see the module docstring) from
    a run's per-epoch ``metric`` (row 0 = the initial point)."""
    values = [_value(r, metric) for r in rows]
    if not values:
        raise ValueError("no metrics rows to classify")
    if not all(math.isfinite(v) for v in values):
        return "diverged"
    start, later = values[0], values[1:]
    if any(v > rise * start for v in later):
        return "unstable"
    if values[-1] > progress * start:
        return "slow"
    return "stable"



# ---------------------------------------------------------------------- report sections


def epochs_to_reach_section(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """``kind = "epochs_to_reach"``: does ``arm`` reach each baseline's final value of each metric
    in at most ``claim_ratio`` (default ½) of the baseline's epochs?

    Options: ``arm``; ``baselines`` (arm names); ``metrics`` (default ``["test_acc",
    "train_acc", "train_loss"]``; ``*_loss`` metrics count lower as better); ``claim_ratio``;
    ``paper`` (the claim, quoted with its source); ``title``."""
    arm, baselines = opts["arm"], list(opts.get("baselines", []))
    metrics = list(opts.get("metrics", ["test_acc", "train_acc", "train_loss"]))
    ratio = float(opts.get("claim_ratio", 0.5))
    title = opts.get("title", f"Epochs for {arm} to reach each baseline's final value")
    out: list[Any] = [Heading(title)]
    if opts.get("paper"):
        out.append(Note(f"Paper: {opts['paper']}", "info"))
    out.append(Note(f"Per seed: the target is the baseline's value at its last epoch; {arm} reaches it at the first "
                    f"epoch whose full-split value is at least as good (accuracies ≥, losses ≤). The claim holds in a "
                    f"seed when that epoch is ≤ {ratio:g} × the baseline's epochs. The compute ratio divides {arm}'s "
                    "forward+backward-equivalents up to that epoch by the baseline's for its whole run.", "info"))
    by_seed = {r.seed: r for r in ctx.runs.get(arm, [])}
    per_seed, summary = [], []
    for base in baselines:
        for metric in metrics:
            hib = not metric.endswith("loss")
            ratios, computes = [], []
            for b in ctx.runs.get(base, []):
                a = by_seed.get(b.seed)
                if a is None:
                    continue
                rec = reach_row(a.metrics(), b.metrics(), metric, higher_is_better=hib)
                ratios.append(rec["epoch ratio"])
                computes.append(rec["compute ratio"])
                per_seed.append({"baseline": base, "metric": metric, "seed": b.seed, **rec,
                                 "holds": rec["epoch ratio"] <= ratio})
            held = sum(r <= ratio for r in ratios)
            verdict = ("no runs" if not ratios else "holds in every seed" if held == len(ratios)
                       else "holds in no seed" if held == 0 else f"holds in {held} of {len(ratios)} seeds")
            summary.append({"baseline": base, "metric": metric, "seeds": len(ratios),
                            "median epoch ratio": float(np.median(ratios)) if ratios else math.nan,
                            "median compute ratio": float(np.median(computes)) if computes else math.nan,
                            f"seeds with ratio ≤ {ratio:g}": held, "verdict": verdict})
    out.append(_reach_figure(ctx, arm, baselines, metrics[0]))
    out.append(Table(f"epochs-to-reach-{arm}", f"Does {arm} reach the baselines' final values in ≤ {ratio:g} of "
                     "their epochs?", ["baseline", "metric", "seeds", "median epoch ratio", "median compute ratio",
                                       f"seeds with ratio ≤ {ratio:g}", "verdict"], summary,
                     caption="epoch ratio = epochs the arm needs / the baseline's epochs (∞: never reached); "
                     "compute ratio = the same in forward+backward-equivalents"))
    out.append(Table(f"epochs-to-reach-{arm}-seeds", "Per seed", ["baseline", "metric", "seed", "target",
                     "baseline epochs", "epochs to reach", "epoch ratio", "compute ratio", "holds"], per_seed))
    return out


def _reach_figure(ctx: StudyContext, arm: str, baselines: list[str], metric: str) -> Figure:
    fig, ax = new_subplots(figsize=(6.4, 3.6))
    for name in [arm, *baselines]:
        runs = ctx.runs.get(name, [])
        if not runs:
            continue
        rows = [r.metrics() for r in runs]
        n = min(len(r) for r in rows)
        xs = [float(rows[0][i]["epoch"]) for i in range(n)]
        ys = np.array([[_value(r[i], metric) for i in range(n)] for r in rows])
        line, = ax.plot(xs, np.nanmean(ys, 0), marker=".", label=name)
        if name != arm:
            ax.axhline(float(np.nanmean(ys[:, -1])), color=line.get_color(), ls=":", lw=1)
            ax.axvline(xs[-1] / 2, color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric.endswith("loss"):
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure(f"{metric} along training (mean over seeds)", fig,
                  "dotted: each baseline's final value (the target); dashed: half of the baseline's epochs")


def stability_section(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """``kind = "stability"``: every run of a two-key sweep classified by
    :func:`classify_stability`, drawn as a grid, with the cells named by ``focus`` (e.g.
    ``{"optimizer.lr" = 100}``) tabled against the paper's claim.

    Options: ``sweep``, ``x``, ``y`` (swept keys), ``focus`` (a table key → value), ``progress``,
    ``rise``, ``paper``, ``title``, ``caption``."""
    name, kx, ky = opts.get("sweep"), opts["x"], opts["y"]
    progress, rise = float(opts.get("progress", 0.5)), float(opts.get("rise", 1.0))
    title = opts.get("title", f"Stability over {ky.split('.')[-1]} × {kx.split('.')[-1]}")
    cells = [a for a in ctx.spec.arms if a.sweep == name and a.name in ctx.runs]
    if not cells:
        return [Heading(title), Note(f"sweep {name!r} has no runs", "warning")]
    xs = sorted({a.sweep_values[kx] for a in cells})
    ys = sorted({a.sweep_values[ky] for a in cells})
    rank = {c: k for k, c in enumerate(STABILITY_CLASSES)}
    worst = np.full((len(ys), len(xs)), np.nan)
    rows, focus_rows = [], []
    focus = dict(opts.get("focus", {}))
    for a in cells:
        classes = [classify_stability(r.metrics(), progress=progress, rise=rise) for r in ctx.runs[a.name]]
        i, j = ys.index(a.sweep_values[ky]), xs.index(a.sweep_values[kx])
        worst[i, j] = min(rank[c] for c in classes)
        acc = summarize([_value(r.metrics()[-1], "test_acc") for r in ctx.runs[a.name]])
        row = {ky.split(".")[-1]: a.sweep_values[ky], kx.split(".")[-1]: a.sweep_values[kx], "seeds": len(classes),
               **{c: classes.count(c) for c in STABILITY_CLASSES},
               "classes (by seed)": ", ".join(classes), "test_acc": format_mean_std(acc.mean, acc.std)}
        rows.append(row)
        if focus and all(a.sweep_values.get(k) == v for k, v in focus.items()):
            focus_rows.append({**row, "verdict": "stable in every seed" if classes.count("stable") == len(classes)
                               else "not stable in every seed"})
    fig, ax = grid_subplots(xs, ys, kx.split(".")[-1], ky.split(".")[-1])
    cmap = ListedColormap([STABILITY_COLOURS[c] for c in STABILITY_CLASSES])
    ax.imshow(np.ma.masked_invalid(worst), origin="lower", cmap=cmap, vmin=-0.5, vmax=len(STABILITY_CLASSES) - 0.5,
              aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(worst[i, j]):
                ax.text(j, i, STABILITY_CLASSES[int(worst[i, j])], ha="center", va="center", fontsize=6, color="k")
    fig.tight_layout()
    cols = [ky.split(".")[-1], kx.split(".")[-1], "seeds", *STABILITY_CLASSES, "classes (by seed)", "test_acc"]
    out: list[Any] = [Heading(title)]
    if opts.get("paper"):
        out.append(Note(f"Paper: {opts['paper']}", "info"))
    out += [Note(f"Each run is classified from its per-epoch training loss L_e (L_0: the initial point): diverged "
                 f"(a non-finite loss), unstable (some L_e > {rise:g} × L_0), slow (never above, but the last "
                 f"L_e > {progress:g} × L_0), stable (never above, last L_e ≤ {progress:g} × L_0). Whole-epoch rows "
                 "only: a spike the loss recovers from within an epoch is not seen.", "info"),
            Figure(f"Worst class over the seeds of each cell ({name})", fig, opts.get("caption", "")),
            Table(f"stability-{name}", f"Stability of every cell of {name}", cols,
                  sorted(rows, key=lambda r: (r[cols[0]], r[cols[1]])))]
    if focus:
        where = ", ".join(f"{k.split('.')[-1]} = {v:g}" for k, v in focus.items())
        out.append(Table(f"stability-{name}-focus", f"The claim's cells ({where})", [*cols, "verdict"],
                         sorted(focus_rows, key=lambda r: (r[cols[0]], r[cols[1]]))))
    return out


__all__ = ["STABILITY_CLASSES", "classify_stability", "epochs_to_reach", "epochs_to_reach_section", "fb_at",
           "reach_row", "stability_section"]
