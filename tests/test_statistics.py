"""The results pages' statistics against scipy and against Holm's definition, on fixed numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from keras_eqssl.probes.statistics import (
    RULE,
    family_verdicts,
    holm,
    holm_adjusted,
    paired_difference,
    t_interval,
)

A = (0.612, 0.587, 0.655, 0.631, 0.598)  # five seeds of one model
B = (0.541, 0.552, 0.560, 0.602, 0.533)  # the same seeds of its base


def test_t_interval_matches_scipy():
    low, high = t_interval(A)
    ref = stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=stats.sem(A))
    np.testing.assert_allclose((low, high), ref, rtol=1e-12)
    low, high = t_interval(A, confidence=0.9)
    np.testing.assert_allclose((low, high), stats.t.interval(0.9, 4, loc=np.mean(A), scale=stats.sem(A)), rtol=1e-12)


def test_paired_difference_matches_scipy_paired_t_test():
    d = paired_difference(A, B)
    ref = stats.ttest_rel(A, B)
    assert d.n == 5
    np.testing.assert_allclose(d.mean, np.mean(np.subtract(A, B)), rtol=1e-12)
    np.testing.assert_allclose(d.p_value, ref.pvalue, rtol=1e-10)
    np.testing.assert_allclose(d.interval(), tuple(ref.confidence_interval(0.95)), rtol=1e-10)
    assert d.interval()[0] > 0  # this fixed pair is beyond the noise before any correction


def test_a_constant_nonzero_difference_has_p_zero_and_no_difference_p_one():
    assert paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]).p_value == 0.0
    assert paired_difference([1.0, 2.0], [1.0, 2.0]).p_value == 1.0


def test_holm_on_a_textbook_family():
    # m = 4: sorted p 0.01 <= 0.05/4, 0.015 <= 0.05/3, 0.03 > 0.05/2 stops; 0.04 is not rejected either
    p = [0.04, 0.01, 0.03, 0.015]
    assert holm(p) == [False, True, False, True]
    np.testing.assert_allclose(holm_adjusted(p), [0.06, 0.04, 0.06, 0.045])


def _holm_by_definition(p, alpha):
    """Holm's procedure as written: step down the sorted p-values until p_(k) > alpha / (m - k)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = [False] * len(p)
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        rejected[i] = True
    return rejected


def test_holm_matches_its_definition_on_random_families():
    rng = np.random.default_rng(0)
    for m, alpha in itertools.product((1, 2, 5, 30), (0.05, 0.1)):
        for _ in range(50):
            p = list(rng.uniform(0, 0.2, m) ** 2)
            assert holm(p, alpha) == _holm_by_definition(p, alpha), (p, alpha)


def test_holm_rejects_bad_p_values():
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, float("nan")])
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_family_marks_only_what_survives_the_correction():
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.02, 5)
    family = {
        "clear": paired_difference(base + 0.2 + rng.normal(0, 0.005, 5), base),
        "raw p below 0.05 only": paired_difference(base + np.array([0.03, 0.01, 0.05, 0.02, 0.04]), base),
        **{f"noise {i}": paired_difference(base + rng.normal(0, 0.02, 5), base) for i in range(20)},
    }
    verdicts = family_verdicts(family)
    assert verdicts["clear"].marked and verdicts["clear"].text().endswith(" *")
    assert family["raw p below 0.05 only"].p_value < 0.05
    assert not verdicts["raw p below 0.05 only"].marked  # uncorrected it would be starred
    assert verdicts["raw p below 0.05 only"].p_holm > 0.05
    assert not any(v.marked for k, v in verdicts.items() if k.startswith("noise"))


def test_paired_difference_refuses_unpaired_or_non_finite_values():
    with pytest.raises(ValueError, match="same number"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([0.1, float("nan")], [0.1, 0.2])


def test_the_rule_is_stated_in_plain_words():
    assert "Holm" in RULE and "95%" in RULE and "seed" in RULE
