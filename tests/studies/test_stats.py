"""The studies' statistics helper against scipy, closed forms and a seeded coverage simulation."""

import math

import numpy as np
import pytest
from scipy import stats as st

from topograph.errors import UsageError
from topograph.studies.stats import bootstrap_ci, compare, paired_test, summarize, welch_test


def test_summarize_matches_closed_form():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(math.sqrt(5 / 3))  # sum of squares 5, ddof 1
    assert s.n == 4
    one = summarize([7.0])
    assert one.mean == 7.0 and math.isnan(one.std) and "±" not in str(one)


def test_welch_matches_scipy_and_hand_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.9, 0.01, 6), rng.normal(0.88, 0.03, 5)
    t, p = welch_test(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t_hand = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    assert t == pytest.approx(t_hand)
    assert p == pytest.approx(2 * st.t.sf(abs(t_hand), dof))


def test_paired_matches_scipy_and_one_sample_test_of_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 8)
    a, b = base + 0.3 + rng.normal(0, 0.1, 8), base
    t, p = paired_test(a, b)
    ref = st.ttest_1samp(a - b, 0.0)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    # pairing removes the shared seed effect: Welch cannot see the gain, the paired test can
    assert p < 1e-4 < welch_test(a, b)[1]
    with pytest.raises(UsageError):
        paired_test([1, 2, 3], [1, 2])


def test_bootstrap_ci_coverage_near_nominal():
    """Seeded simulation: the 90 % CI covers the true difference at about the nominal rate."""
    rng = np.random.default_rng(3)
    true_diff, hits, trials = 0.5, 0, 300
    for i in range(trials):
        a, b = rng.normal(0.5, 1.0, 30), rng.normal(0.0, 1.0, 30)
        lo, hi = bootstrap_ci(a, b, confidence=0.9, n_resamples=1000, seed=i)
        hits += lo <= true_diff <= hi
    assert 0.83 <= hits / trials <= 0.96  # percentile bootstrap slightly under-covers at n = 30


def test_bootstrap_is_seeded_and_centred():
    a, b = [3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 2.5, 3.0]
    assert bootstrap_ci(a, b, seed=5) == bootstrap_ci(a, b, seed=5)
    lo, hi = bootstrap_ci(a, b, paired=True, seed=5)
    d = np.subtract(a, b)
    assert lo <= d.mean() <= hi and lo >= d.min() and hi <= d.max()


def test_compare_verdict_says_better_only_when_significant():
    rng = np.random.default_rng(4)
    strong = compare(rng.normal(0.93, 0.002, 5), rng.normal(0.90, 0.002, 5), label_a="GE", label_b="SGD")
    assert strong.significant and "GE better than SGD" in strong.verdict
    assert strong.difference == pytest.approx(strong.a.mean - strong.b.mean)
    assert strong.ci_low < strong.difference < strong.ci_high
    weak = compare([0.91, 0.89, 0.92, 0.88, 0.90], [0.90, 0.91, 0.89, 0.90, 0.88], label_a="GE", label_b="SGD")
    assert not weak.significant and "better" not in weak.verdict and "no significant" in weak.verdict
    loss = compare([0.20, 0.21, 0.19], [0.40, 0.41, 0.39], higher_is_better=False, label_a="x", label_b="y")
    assert loss.significant and "x better than y" in loss.verdict
    single = compare([0.95], [0.90], label_a="x", label_b="y")
    assert math.isnan(single.p_value) and "better" not in single.verdict


def test_no_spread_is_not_testable_rather_than_p_zero():
    from topograph.studies.stats import compare, paired_test, welch_test

    a, b = [0.9, 0.8], [0.85, 0.75]  # identical paired differences up to rounding
    t, p = paired_test(a, b)
    assert math.isnan(p)
    assert math.isnan(welch_test([1.0, 1.0], [2.0, 2.0])[1])
    assert "better" not in compare(a, b, paired=True).verdict
