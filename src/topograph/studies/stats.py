"""Honest statistics over seeds: mean ± std, Welch's and paired t-tests, bootstrap CIs.

Every "A is better than B" in a study report goes through :func:`compare`, which returns the
mean difference Δ = mean(a) − mean(b), a bootstrap confidence interval of Δ, the p-value of a
t-test and a verdict string.  The verdict says "better"/"worse" only when p < α; otherwise it
says that no difference was detected — with 5 seeds, small gains are usually not resolved.

Tests used
----------
* Welch's unequal-variance t-test (Welch 1947): t = Δ / sqrt(s_a²/n_a + s_b²/n_b) with the
  Welch–Satterthwaite degrees of freedom; ``scipy.stats.ttest_ind(equal_var=False)``.
* Paired t-test when runs are paired by seed (same initialisation and batch order):
  t = mean(d) / (sd(d)/sqrt(n)), d_i = a_i − b_i; ``scipy.stats.ttest_rel``.
* Percentile bootstrap of Δ (Efron & Tibshirani 1993): resample seeds with replacement (pairs
  together when paired), B resamples from a seeded generator, CI = the (α/2, 1 − α/2)
  quantiles of the resampled Δ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

from topograph.errors import UsageError


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof = 1) and count of one metric over seeds."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return format_mean_std(self.mean, self.std, self.n)


def _clean(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise UsageError(f"{name} must be a 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample std (ddof = 1; NaN for one value) of ``values``; NaNs propagate."""
    arr = _clean(values, "values")
    if arr.size == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return Summary(float(np.mean(arr)), std, int(arr.size))


def format_mean_std(mean: float, std: float, n: int | None = None, *, digits: int = 4) -> str:
    """``"0.9123 ± 0.0040 (n=5)"``; a single value shows no ± part.  A mean too small for
    ``digits`` decimals to show two significant digits (training losses of 1e-8) is written in
    scientific notation with ``digits − 1`` significant digits, its spread alike.

    >>> format_mean_std(0.91234, 0.00401, 5)
    '0.9123 ± 0.0040 (n=5)'
    >>> format_mean_std(3.254e-08, 5.4e-09)
    '3.25e-08 ± 5.40e-09'
    """
    if not math.isfinite(mean):
        return "n/a" if n is None else f"n/a (n={n})"
    small = digits >= 3 and mean != 0 and abs(mean) < 10.0 ** (1 - digits)
    spec = f".{digits - 2}e" if small else f".{digits}f"
    text = f"{mean:{spec}}"
    if std is not None and math.isfinite(std):
        text += f" ± {std:{spec}}"
    return text if n is None else f"{text} (n={n})"


def _no_spread(x: np.ndarray) -> bool:
    """Variance zero up to rounding (relative 1e-12 of the values' scale)."""
    scale = max(float(np.abs(x).max()), 1e-300)
    return float(np.std(x)) <= 1e-12 * scale


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t statistic and two-sided p-value (NaN when either side has < 2 values)."""
    a, b = _clean(a, "a"), _clean(b, "b")
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    if _no_spread(a) and _no_spread(b):  # t is 0/0 or ±∞: no evidence either way
        return math.nan, math.nan
    res = _st.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def paired_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Paired t statistic and two-sided p-value of ``a − b`` (equal lengths, paired by index)."""
    a, b = _clean(a, "a"), _clean(b, "b")
    if a.size != b.size:
        raise UsageError(f"paired test needs equal numbers of values, got {a.size} and {b.size}")
    if a.size < 2:
        return math.nan, math.nan
    d = a - b
    if _no_spread(d):  # identical differences (e.g. 2 seeds): t is 0/0 or ±∞, not testable
        return math.nan, math.nan
    res = _st.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)


def bootstrap_ci(a: Sequence[float], b: Sequence[float], *, paired: bool = False,
                 confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of mean(a) − mean(b); seeds resampled (as pairs when ``paired``)."""
    a, b = _clean(a, "a"), _clean(b, "b")
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must be in (0, 1), got {confidence}")
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    if paired:
        if a.size != b.size:
            raise UsageError(f"paired bootstrap needs equal numbers of values, got {a.size} and {b.size}")
        d = a - b
        idx = rng.integers(0, d.size, size=(n_resamples, d.size))
        deltas = d[idx].mean(axis=1)
    else:
        ia = rng.integers(0, a.size, size=(n_resamples, a.size))
        ib = rng.integers(0, b.size, size=(n_resamples, b.size))
        deltas = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = np.quantile(deltas, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare` (a vs b on one metric)."""

    label_a: str
    label_b: str
    metric: str
    a: Summary
    b: Summary
    difference: float          # mean(a) − mean(b)
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    test: str                  # "paired t" or "Welch t"
    alpha: float
    higher_is_better: bool
    verdict: str

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_value) and self.p_value < self.alpha

    def as_row(self) -> dict:
        d = asdict(self)
        d["a"], d["b"] = str(self.a), str(self.b)
        return d


def compare(a: Sequence[float], b: Sequence[float], *, label_a: str = "a", label_b: str = "b",
            metric: str = "metric", paired: bool = False, alpha: float = 0.05,
            higher_is_better: bool = True, confidence: float = 0.95, n_resamples: int = 10_000,
            seed: int = 0) -> Comparison:
    """Compare a with b: Δ = mean(a) − mean(b), bootstrap CI, t-test p-value and a verdict.

    The verdict reads "A better than B" (or "worse") only when p < ``alpha``; otherwise
    "no significant difference" — and says so explicitly when a test is impossible (< 2 seeds).
    """
    sa, sb = summarize(a), summarize(b)
    _, p = paired_test(a, b) if paired else welch_test(a, b)
    lo, hi = bootstrap_ci(a, b, paired=paired, confidence=confidence, n_resamples=n_resamples, seed=seed)
    diff = sa.mean - sb.mean
    test = "paired t" if paired else "Welch t"
    if not math.isfinite(p):
        verdict = f"not testable (n={sa.n} vs {sb.n}; need ≥ 2 seeds each with some spread)"
    elif p < alpha:
        good = (diff > 0) == higher_is_better
        verdict = f"{label_a} {'better' if good else 'worse'} than {label_b} (p={p:.3g} < {alpha})"
    else:
        verdict = f"no significant difference (p={p:.3g} ≥ {alpha})"
    return Comparison(label_a, label_b, metric, sa, sb, diff, lo, hi, confidence, p, test, alpha,
                      higher_is_better, verdict)


__all__ = ["Comparison", "Summary", "bootstrap_ci", "compare", "format_mean_std", "paired_test",
           "summarize", "welch_test"]
