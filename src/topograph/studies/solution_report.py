"""Report sections for sets of solutions (arXiv:2602.21276): analysis kinds ``loss_curves`` and
``solutions``.

``loss_curves`` (the paper's Fig. 2 and S1): training and test loss against epochs of a
representative run per arm (the selected run with the median minimum training loss; the other
selected runs faint), with dashed vertical lines where each curve reaches its minimum — the
epochs at which ω^train and ω^test are read.

``solutions`` (Table I, Figs 4–6, S2–S4, Table S1 and the kernel control), on the sets of
:mod:`topograph.studies.solution_sets` after the n-lowest-of-N selection:

* **Table I** by the paper's definitions — ⟨l(x^train, ω^train)⟩ and ⟨l(x^test, ω^test)⟩, each the
  minimum of a run's curve, mean ± sd over the selected runs — next to the final-iterate losses,
  with Welch tests between the two arms;
* **barrier distributions** (Fig. 4 on the training landscape, Fig. S2 on the test landscape):
  histograms of the path heights H (Eq. 5, the maximum of the densely re-evaluated loss along
  the path FourierPathFinder found) between random pairs of each set, one colour per set, for
  the paper's sum objective (Eq. 4) and the relative soft-max;
* **distances to the common origin** (Fig. 5: BFGS-train and SGD-test; Fig. S3: both test sets):
  histograms of |ω_i − ω̄|, ω̄ = ½(ω̄_A + ω̄_B), dotted line at |ω̄_A − ω̄|;
* **kernel PCA** (Fig. 6 and S4): PC1 and PC2 of the RBF kernel with 2σ² = N_prm, and the
  **kernel control** the paper mentions ("data not shown"): polynomial, sigmoid and linear PCA on
  the same sets, with the separation of the two sets along each component (Cohen's d);
* **weight statistics** (Table S1): mean and standard deviation of all components of each set's
  concatenated vectors W, and the mean ‖ω_i‖.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from topograph.io import new_subplots
from topograph.paths import FourierPathFinder
from topograph.paths.solutions import centroid_distances, kernel_pca, linear_pca, weight_statistics
from topograph.report import Figure, Heading, Note, Table
from topograph.studies.context import StudyContext
from topograph.studies.solution_sets import (
    KINDS,
    build_sets,
    draw_pairs,
    loss_minimum,
    select_lowest,
    separation,
    set_barriers,
    table_one,
)
from topograph.studies.stats import compare, format_mean_std, summarize

#: colours of the paper's Fig. 4 (navy, light blue, light red, gold) for the first and second
#: arm's train and test sets; final-iterate sets in greys
SET_COLOURS = {(0, "train"): "#1f3b73", (0, "test"): "#6fa8dc", (1, "train"): "#f08080", (1, "test"): "#e6b800",
               (0, "final"): "#555555", (1, "final"): "#aaaaaa"}
KERNELS = ("rbf", "poly", "sigmoid", "linear")



def _ms(values) -> str:
    s = summarize(list(values))
    return format_mean_std(s.mean, s.std)


def _colour(arms: list[str], name: str) -> str:
    arm, kind = name.split("/")
    return SET_COLOURS.get((arms.index(arm) if arm in arms else 0, kind), "#333333")


# ---------------------------------------------------------------------- Fig. 2 / S1


def loss_curves(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """Training and test loss against epochs, minima marked (the paper's Figs 2 and S1).

    Options: ``arms``, ``select`` (n of N, as ``solutions``), ``tag`` and ``title`` (see
    :func:`solutions`)."""
    return _tagged(_loss_curves(ctx, opts), opts)


def _loss_curves(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    arms = list(opts.get("arms") or [a.name for a in ctx.spec.arms if not a.sweep and a.name in ctx.runs])
    n_sel = int(opts.get("select", 0))
    fig, axes = new_subplots(1, 2, figsize=(11, 3.8))
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    rows = []
    for c, arm in zip(colours, arms):
        chosen = select_lowest(ctx.runs[arm], n_sel)
        order = sorted(chosen, key=lambda r: loss_minimum(r.metrics(), "train_loss")[1])
        rep = order[len(order) // 2]
        for r in chosen:
            if r is rep:
                continue
            m = r.metrics()
            for ax, col in zip(axes, ("train_loss", "test_loss")):
                ax.plot([x["epoch"] for x in m], [x[col] for x in m], color=c, alpha=0.15, lw=0.7)
        m = rep.metrics()
        for ax, col in zip(axes, ("train_loss", "test_loss")):
            e, v = loss_minimum(m, col)
            ax.plot([x["epoch"] for x in m], [x[col] for x in m], color=c, lw=1.8, label=f"{arm} (seed {rep.seed})")
            ax.axvline(e, color=c, ls="--", lw=1)
            rows.append({"arm": arm, "seed": rep.seed, "curve": col, "minimum epoch": e, "minimum": v,
                         "last epoch": int(m[-1]["epoch"]), "last": float(m[-1][col])})
    for ax, title in zip(axes, ("(a) training loss ⟨l(x_train, ω)⟩", "(b) test loss ⟨l(x_test, ω)⟩")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch (full-batch optimizers: iteration)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return [Heading("Loss curves (the paper's Fig. 2 / S1)"),
            Figure("Training and test loss along training; dashed lines: each curve's minimum", fig,
                   "Bold: the representative run of each arm (the selected run with the median minimum training "
                   "loss); faint: the other selected runs. ω^train is read at the minimum of the training curve, "
                   "ω^test (the paper's early stopping) at the minimum of the test curve."),
            Table("loss-curve-minima", "Where the representative curves reach their minima",
                  ["arm", "seed", "curve", "minimum epoch", "minimum", "last epoch", "last"], rows)]


# ---------------------------------------------------------------------- the sets


def solutions(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    """Table I, barrier distributions, distances, kernel PCA (+ control), weight statistics.

    Options (docs/studies.md): ``arms`` = [A, B], ``select``, ``groups``, ``kernels``,
    ``barrier_sets``, ``landscapes``, ``path_reductions``, ``pairs``, ``pair_seed``, ``pairing``
    (``"random"`` or ``"disjoint"``), ``path_points``, ``path_steps``, ``path_lr``, ``path_reg``,
    ``n_terms``, ``temperature``, ``path_batch`` (a minibatch per path step; default the full
    split), ``threads`` (torch CPU threads of the path searches), ``paper``, ``paper_claims``,
    ``paper_weights``; ``tag`` (suffix of the table names, for several ``solutions`` analyses in
    one study, e.g. one per model) and ``title``."""
    return _tagged(_solutions(ctx, opts), opts)


def _solutions(ctx: StudyContext, opts: dict[str, Any]) -> list[Any]:
    arms = list(opts.get("arms", []))
    if len(arms) != 2:
        return [Heading("Sets of solutions"), Note("analysis 'solutions' needs arms = [A, B] (two arms, e.g. "
                                                   "[\"lbfgs-gss\", \"sgd\"])", "warning")]
    n_sel = int(opts.get("select", 0))
    sets = build_sets(ctx.runs, arms, select=n_sel, by="train_loss", kinds=KINDS)
    out: list[Any] = [Heading("Sets of solutions (arXiv:2602.21276 §III)")]
    sizes = {a: len(ctx.runs[a]) for a in arms}
    chosen = {a: sets[f"{a}/train"].seeds for a in arms}
    out.append(Note(
        "Per run: ω^train = the parameters at the minimum of its training-loss curve, ω^test = at the minimum of "
        "its test-loss curve (the paper's early stopping — selection on the test set, as the paper does), "
        "final = the last iterate; all losses are averages over the whole split. Selection: "
        + "; ".join(f"{a}: the {len(chosen[a])} of {sizes[a]} runs with the lowest ⟨l(x_train, ω^train)⟩ "
                    f"(seeds {', '.join(map(str, chosen[a]))})" for a in arms)
        + (" — every run (no selection configured)." if n_sel <= 0 else "."), "info"))
    out += _table_one(sets, arms, opts)
    out += _weights(sets, arms, opts)
    groups = [tuple(g) for g in opts.get("groups", [[f"{arms[0]}/train", f"{arms[1]}/test"],
                                                     [f"{arms[0]}/test", f"{arms[1]}/test"]])]
    for g in groups:
        for name in g:
            if name not in sets:
                raise KeyError(f"groups: unknown set {name!r}; sets: {', '.join(sets)}")
    out += _distances(sets, arms, groups)
    out += _kpca(sets, arms, groups, opts)
    if int(opts.get("pairs", 0)) > 0:
        with _torch_threads(opts.get("threads")):
            out += _barriers(ctx, sets, arms, opts)
    return out


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (``None``: leave torch's setting), as
    ``run.threads`` does for training: one thread is fastest for small models on a busy machine."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _table_one(sets, arms, opts) -> list[Any]:
    paper = opts.get("paper", {})
    rows, final_rows = [], []
    values = {a: table_one(sets, a) for a in arms}
    for a in arms:
        v, p = values[a], paper.get(a, {})
        rows.append({"arm": a, "n": len(v["train@train"]),
                     "⟨l(x_train, ω^train)⟩": _ms(v["train@train"]), "paper train": p.get("train", ""),
                     "⟨l(x_test, ω^test)⟩": _ms(v["test@test"]), "paper test": p.get("test", ""),
                     "epoch of the train minimum": _ms(v["epoch@train"]),
                     "epoch of the test minimum": _ms(v["epoch@test"])})
        final_rows.append({"arm": a, "n": len(v["train@final"]), "train loss (final)": _ms(v["train@final"]),
                           "test loss (final)": _ms(v["test@final"]), "test loss at ω^train": _ms(v["test@train"]),
                           "last epoch": _ms(v["epoch@final"])})
    cmp_rows = []
    texts = opts.get("paper_claims", {})
    for key, label in (("train@train", "⟨l(x_train, ω^train)⟩ (Table I)"), ("test@test", "⟨l(x_test, ω^test)⟩ (Table I)"),
                       ("test@final", "test loss of the final iterate (not in the paper)")):
        c = compare(values[arms[0]][key], values[arms[1]][key], label_a=arms[0], label_b=arms[1], metric=key,
                    paired=False, higher_is_better=False, seed=0)
        cmp_rows.append({"quantity": label, "a": arms[0], "b": arms[1], "a mean ± sd": str(c.a),
                         "b mean ± sd": str(c.b), "difference (a − b)": c.difference,
                         "95% CI": f"[{c.ci_low:.4g}, {c.ci_high:.4g}]", "test": c.test, "p-value": c.p_value,
                         "verdict": c.verdict, "paper says": texts.get(key, "")})
    t1 = ["arm", "n", "⟨l(x_train, ω^train)⟩", "paper train", "⟨l(x_test, ω^test)⟩", "paper test",
          "epoch of the train minimum", "epoch of the test minimum"]
    return [Heading("Table I by the paper's definitions, and the final iterates", 3),
            Table("table-i", "Table I: ⟨l(x_train, ω^train)⟩ and ⟨l(x_test, ω^test)⟩, mean ± sd over the selected runs",
                  t1, rows, caption="each value is the minimum of one run's full-split loss curve (train column: "
                  "training curve; test column: test curve), as in the paper's Table I"),
            Table("final-iterates", "The same runs at their last epoch (not the paper's quantity)",
                  ["arm", "n", "train loss (final)", "test loss (final)", "test loss at ω^train", "last epoch"],
                  final_rows),
            Table("table-i-comparisons", "Table I compared like with like (Welch t-test over runs; the two arms' "
                  "runs are different selections)",
                  ["quantity", "a", "b", "a mean ± sd", "b mean ± sd", "difference (a − b)", "95% CI", "test",
                   "p-value", "verdict", "paper says"], cmp_rows)]


def _weights(sets, arms, opts) -> list[Any]:
    paper = opts.get("paper_weights", {})
    rows = []
    for name, s in sets.items():
        vec = s.vectors()
        w = weight_statistics([vec.reshape(-1)])[0]  # all components of the concatenated W
        per = weight_statistics(vec)
        rows.append({"set": name, "n": vec.shape[0], "mean of W": w["mean"], "σ of W": w["std"],
                     "paper σ": paper.get(name, {}).get("std", ""), "max |w|": w["max_abs"],
                     "mean ‖ω_i‖": float(np.mean([r["norm"] for r in per]))})
    return [Heading("Weight statistics (the paper's Table S1)", 3),
            Table("weight-statistics", "Mean and standard deviation of all components of each set's concatenated "
                  "vectors W", ["set", "n", "mean of W", "σ of W", "paper σ", "max |w|", "mean ‖ω_i‖"], rows,
                  caption="the paper: BFGS sets have the larger σ (e.g. FCP train sets: SGD 0.139, L-BFGS 0.234)")]


def _distances(sets, arms, groups) -> list[Any]:
    out: list[Any] = [Heading("Distances to the common origin (the paper's Fig. 5 and S3)", 3)]
    rows = []
    for k, (a, b) in enumerate(groups):
        x = np.concatenate([sets[a].vectors().double().numpy(), sets[b].vectors().double().numpy()])
        labels = [a] * len(sets[a].runs) + [b] * len(sets[b].runs)
        cd = centroid_distances(x, groups=labels)
        half = float(np.linalg.norm(x[np.asarray(labels) == a].mean(0) - cd["centroid"]))
        fig, ax = new_subplots(figsize=(6, 3.4))
        for name in (a, b):
            d = np.asarray(cd["by_group"][name])
            ax.hist(d, bins=max(5, min(20, d.size)), alpha=0.6, color=_colour(arms, name), label=name)
            rows.append({"figure": _fig_name(k, "5", "S3"), "set": name, "n": d.size,
                         "|ω_i − ω̄|": format_mean_std(d.mean(), d.std(ddof=1) if d.size > 1 else math.nan),
                         "|ω̄_A − ω̄| = |ω̄_B − ω̄|": half})
        ax.axvline(half, color="k", ls=":", lw=1)
        ax.set_xlabel("|ω_i − ω̄|,  ω̄ = ½(ω̄_A + ω̄_B)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(Figure(f"{_fig_name(k, 'Fig. 5', 'Fig. S3')}: distances of {a} and {b} to their common origin",
                          fig, "dotted line: the distance of either centroid to the common origin"))
    out.append(Table("distances", "Distances to the common origin", ["figure", "set", "n", "|ω_i − ω̄|",
                                                                      "|ω̄_A − ω̄| = |ω̄_B − ω̄|"], rows))
    return out


def _fig_name(k: int, first: str, second: str) -> str:
    return first if k == 0 else second if k == 1 else f"{second} ({k})"


def _kernel_scores(x: np.ndarray, kernel: str) -> tuple[np.ndarray, str]:
    p = x.shape[1]
    if kernel == "linear":
        return np.asarray(linear_pca(x, n_components=2)), "linear PCA"
    if kernel == "rbf":
        return np.asarray(kernel_pca(x, kernel="rbf", n_components=2)), "RBF, 2σ² = N_prm"
    if kernel == "poly":
        return (np.asarray(kernel_pca(x, kernel="poly", gamma=1.0 / p, degree=3, coef0=1.0, n_components=2)),
                "polynomial (xᵀx'/N_prm + 1)³")
    if kernel == "sigmoid":
        return (np.asarray(kernel_pca(x, kernel="sigmoid", gamma=1.0 / p, coef0=1.0, n_components=2)),
                "sigmoid tanh(xᵀx'/N_prm + 1)")
    raise KeyError(f"kernel {kernel!r}; use one of {', '.join(KERNELS)}")


def _kpca(sets, arms, groups, opts) -> list[Any]:
    kernels = list(opts.get("kernels", KERNELS))
    out: list[Any] = [Heading("Kernel PCA (the paper's Fig. 6 and S4) and the kernel control", 3)]
    rows = []
    for k, (a, b) in enumerate(groups):
        x = np.concatenate([sets[a].vectors().double().numpy(), sets[b].vectors().double().numpy()])
        labels = [a] * len(sets[a].runs) + [b] * len(sets[b].runs)
        shown = kernels if k == 0 else ["rbf"]
        fig, axes = new_subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
        for ax, kern in zip(axes[0], shown):
            scores, title = _kernel_scores(x, kern)
            for name in (a, b):
                m = np.asarray(labels) == name
                ax.scatter(scores[m, 0], scores[m, 1], s=14, color=_colour(arms, name), label=name)
            d = separation(scores, labels, a, b)
            ax.set_title(f"{title}\nseparation d: PC1 {d[0]:.2f}, PC2 {d[1]:.2f}", fontsize=8)
            ax.set_xlabel("PC1")
            ax.set_ylabel("PC2")
            ax.legend(fontsize=6)
            rows.append({"figure": _fig_name(k, "6", "S4"), "sets": f"{a} + {b}", "kernel": title,
                         "separation d along PC1": d[0], "separation d along PC2": d[1]})
        fig.tight_layout()
        cap = ("RBF kernel as in the paper; the other panels are the control the paper reports as 'data not shown' "
               "(separation only with RBF)") if k == 0 else "RBF kernel"
        out.append(Figure(f"{_fig_name(k, 'Fig. 6', 'Fig. S4')}: kernel PCA of {a} and {b}", fig, cap))
    out.append(Table("kernel-pca", "Separation of the two sets along each component (|Δmean| / pooled sd)",
                     ["figure", "sets", "kernel", "separation d along PC1", "separation d along PC2"], rows,
                     caption="d ≳ 2: the sets separate along that component; d ≲ 0.5: they overlap"))
    return out


def _barriers(ctx, sets, arms, opts) -> list[Any]:
    names = list(opts.get("barrier_sets", [f"{arms[0]}/train", f"{arms[0]}/test", f"{arms[1]}/train",
                                             f"{arms[1]}/test"]))
    landscapes = list(opts.get("landscapes", ["train", "test"]))
    objectives = list(opts.get("path_reductions", ["sum", "softmax"]))
    k_pairs, seed = int(opts.get("pairs", 300)), int(opts.get("pair_seed", 0))
    pairing = str(opts.get("pairing", "random"))
    batch = opts.get("path_batch")
    base = FourierPathFinder(points=int(opts.get("path_points", 50)), steps=int(opts.get("path_steps", 100)),
                             lr=float(opts.get("path_lr", 1e-3)), reg=float(opts.get("path_reg", 1e-4)),
                             n_terms=int(opts.get("n_terms", 10)), temperature=float(opts.get("temperature", 0.05)),
                             batch_size=int(batch) if batch else None, progress=False, seed=seed)
    objective = ctx.runs[arms[0]][0].objective()
    steps_how = (f"{base.steps} steps on a random minibatch of {base.batch_size} samples of the landscape's split "
                 "each (the paper: full batch)" if base.batch_size else f"{base.steps} full-batch steps")
    pairs_how = (f"{k_pairs} disjoint pairs per set (a random perfect matching of the set's runs, numpy seed {seed}: "
                 "no run is in two pairs, so the heights of a set are independent and two sets of different runs are "
                 "compared with Welch's t-test)" if pairing == "disjoint" else
                 f"{k_pairs} pairs per set drawn at random (numpy seed {seed}) among the set's pairs — pairs share "
                 "endpoints, so the heights of one set are not independent: no p-value is given")
    out: list[Any] = [Heading("Barrier heights between random pairs (the paper's Fig. 4 and S2)", 3),
                      Note(f"FourierPathFinder: N_F = {base.n_terms} sine terms, M = {base.points} points, λ = {base.reg}, "
                           f"Adam lr {base.lr}, {steps_how}; path objective: "
                           + " and ".join({"sum": "the paper's sum (Eq. 4)", "softmax":
                                           f"the soft-max with relative temperature {base.temperature}",
                                           "squared": "the toy notebook's squared sum"}.get(o, o) for o in objectives)
                           + f". Pairs: {pairs_how}. H = the maximum of the loss over the whole split on a dense "
                           "re-evaluation of the found path (Eq. 5).", "info")]
    rows, cmp_rows = [], []
    for landscape in landscapes:
        for obj_kind in objectives:
            finder = replace(base, reduction=obj_kind)
            fig, ax = new_subplots(figsize=(6.4, 3.6))
            all_h = {}
            for name in names:
                s = sets[name]
                pairs = draw_pairs(len(s.runs), k_pairs, seed, pairing=pairing)
                cache = ctx.study_dir / "paths" / landscape / obj_kind
                recs = set_barriers(objective, s, pairs, finder=finder, landscape=landscape, cache_dir=cache)
                h = np.asarray([r["height"] for r in recs], float)
                all_h[name] = h
                rows.append({"landscape": landscape, "objective": obj_kind, "set": name, "pairs": h.size,
                             "H mean ± sd": format_mean_std(h.mean(), h.std(ddof=1) if h.size > 1 else math.nan,
                                                            digits=5) if h.size else "",
                             "H median": float(np.median(h)) if h.size else math.nan,
                             "ΔH mean": float(np.mean([r["barrier"] for r in recs])) if recs else math.nan})
            cmp_rows += _barrier_comparisons(all_h, arms, landscape, obj_kind, pairing)
            finite = np.concatenate([v for v in all_h.values() if v.size]) if any(v.size for v in all_h.values()) else np.array([])
            bins = np.histogram_bin_edges(finite, bins=20) if finite.size else 10
            for name, h in all_h.items():
                if h.size:
                    ax.hist(h, bins=bins, histtype="stepfilled", alpha=0.45, color=_colour(arms, name), label=name)
            ax.set_xlabel(f"path height H on the {landscape} landscape")
            ax.set_ylabel("pairs")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig_name = "Fig. 4" if landscape == "train" else "Fig. S2" if landscape == "test" else landscape
            out.append(Figure(f"{fig_name} ({obj_kind} objective): distribution of path heights, {landscape} landscape",
                              fig, "colours as the paper's Fig. 4: navy/light blue = first arm's train/test sets, "
                              "light red/gold = second arm's train/test sets"))
    out.append(Table("barriers", "Path heights H (dense) between random pairs of each set",
                     ["landscape", "objective", "set", "pairs", "H mean ± sd", "H median", "ΔH mean"], rows))
    if cmp_rows:
        out.append(Table("barrier-comparisons", "Path heights of the two arms' sets read the same way (a − b)",
                         ["landscape", "objective", "sets", "a mean ± sd", "b mean ± sd", "difference (a − b)",
                          "95% CI", "test", "p-value", "verdict", "paper says"], cmp_rows,
                         caption="the paper: SGD solutions are separated by lower barriers than L-BFGS-GSS ones, "
                         "early-stopped (test sets) or not (train sets); the autoencoder is the exception"))
    return out


def _barrier_comparisons(heights: dict[str, np.ndarray], arms: list[str], landscape: str, obj_kind: str,
                         pairing: str) -> list[dict[str, Any]]:
    """One row per kind read by both arms: the first arm's heights against the second's (Welch's
    t-test when the pairs are disjoint; no test when they share endpoints)."""
    rows = []
    for kind in KINDS:
        a, b = f"{arms[0]}/{kind}", f"{arms[1]}/{kind}"
        if a not in heights or b not in heights:
            continue
        c = compare(heights[a], heights[b], label_a=a, label_b=b, metric="H", paired=False,
                    higher_is_better=False, seed=0)
        testable = pairing == "disjoint"
        rows.append({"landscape": landscape, "objective": obj_kind, "sets": f"{a} vs {b}", "a mean ± sd": str(c.a),
                     "b mean ± sd": str(c.b), "difference (a − b)": c.difference,
                     "95% CI": f"[{c.ci_low:.4g}, {c.ci_high:.4g}]" if testable else "",
                     "test": c.test if testable else "none (pairs share endpoints)",
                     "p-value": c.p_value if testable else math.nan,
                     "verdict": c.verdict if testable else "not testable: heights of random pairs are not independent",
                     "paper says": f"{arms[1]} lower (histograms, 300 random pairs per set)"})
    return rows


def _tagged(sections: list[Any], opts: dict[str, Any]) -> list[Any]:
    """With ``tag`` (several analyses of one kind in a study, e.g. one per model): table names
    get ``-TAG`` (their CSV files stay distinct) and the first heading gets ``title``."""
    tag, title = opts.get("tag"), opts.get("title")
    for k, sec in enumerate(sections):
        if tag and isinstance(sec, Table):
            sec.name = f"{sec.name}-{tag}"
        if title and k == 0 and isinstance(sec, Heading):
            sec.text = f"{sec.text}: {title}"
    return sections


__all__ = ["loss_curves", "solutions"]
