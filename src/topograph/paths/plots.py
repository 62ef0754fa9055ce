"""Plots for paths and solution sets (matplotlib, Agg backend; each saved as PNG and SVG).

* :func:`plot_profiles` — loss (and accuracy) along found paths against the straight line;
* :func:`plot_barrier_matrix` — heat map of pairwise heights;
* :func:`plot_disconnectivity` — single-linkage dendrogram over the heights (the merge heights
  are the minimum-spanning-tree edges: a disconnectivity-style summary);
* :func:`plot_embedding` — kernel-PCA / PCA scatter coloured by group (e.g. optimizer).

Every function returns the list of files written; writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import dendrogram, linkage
from scipy.spatial.distance import squareform

from topograph.io import new_figure, save_figure
from topograph.paths.result import PathResult


def plot_profiles(results: Sequence[PathResult], stem: str | os.PathLike, *, split: str | None = None,
                  title: str | None = None, accuracy: bool = True) -> list[Path]:
    """Loss along each path (one line per result; the straight line dashed) on ``split``."""
    has_acc = accuracy and any(
        np.isfinite(r.profiles.get(split or r.profile.split, r.profile).accuracies).any() for r in results)
    fig = new_figure(10 if has_acc else 5.5, 4)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)
    for r in results:
        p = r.profiles.get(split, r.profile) if split else r.profile
        style = "--" if r.method == "straight" else "-"
        label = f"{r.method} (H = {p.height:.4g}, ΔH = {p.barrier:.3g})"
        axes[0, 0].plot(p.t, p.losses, style, label=label)
        if has_acc:
            axes[0, 1].plot(p.t, p.accuracies, style, label=r.method)
    axes[0, 0].set_xlabel("t")
    axes[0, 0].set_ylabel(f"loss ({split or results[0].profile.split})")
    axes[0, 0].legend(fontsize=8)
    if has_acc:
        axes[0, 1].set_xlabel("t")
        axes[0, 1].set_ylabel("accuracy")
    fig.suptitle(title or "loss along the path (dense re-evaluation)")
    return save_figure(fig, stem)


def plot_barrier_matrix(heights: np.ndarray, stem: str | os.PathLike, *, labels: Sequence[str] | None = None,
                        title: str = "pairwise path heights H") -> list[Path]:
    n = len(heights)
    fig = new_figure(1.2 + 0.45 * n + 2, 0.45 * n + 2)
    ax = fig.subplots()
    im = ax.imshow(heights, cmap="viridis")
    fig.colorbar(im, ax=ax, label="H")
    labels = list(labels) if labels is not None else [str(i) for i in range(n)]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_title(title)
    return save_figure(fig, stem)


def plot_disconnectivity(heights: np.ndarray, stem: str | os.PathLike, *, labels: Sequence[str] | None = None,
                         title: str = "disconnectivity (single linkage on H)") -> list[Path]:
    """Dendrogram whose merge heights are the minimum-spanning-tree heights."""
    h = np.array(heights, dtype=float)
    off = h[~np.eye(len(h), dtype=bool)]
    fill = np.nanmax(off) if np.isfinite(off).any() else 1.0
    h = np.where(np.isfinite(h), h, fill)
    h = (h + h.T) / 2
    shift = min(0.0, float(np.min(off[np.isfinite(off)]))) if np.isfinite(off).any() else 0.0
    d = h - shift
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method="single")
    z[:, 2] += shift
    fig = new_figure(max(5, 0.4 * len(h)), 4)
    ax = fig.subplots()
    dendrogram(z, labels=list(labels) if labels is not None else None, ax=ax)
    ax.set_ylabel("path height H")
    ax.set_title(title)
    return save_figure(fig, stem)


def plot_embedding(scores: np.ndarray, stem: str | os.PathLike, *, groups: Sequence[str] | None = None,
                   title: str = "kernel PCA (RBF, γ = 1/N_prm)") -> list[Path]:
    fig = new_figure(5, 4.5)
    ax = fig.subplots()
    groups = list(groups) if groups is not None else ["solutions"] * len(scores)
    g = np.asarray(groups)
    y = scores[:, 1] if scores.shape[1] > 1 else np.zeros(len(scores))
    for name in dict.fromkeys(groups):
        m = g == name
        ax.scatter(scores[m, 0], y[m], label=str(name), s=25)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_figure(fig, stem)


__all__ = ["plot_barrier_matrix", "plot_disconnectivity", "plot_embedding", "plot_profiles"]
