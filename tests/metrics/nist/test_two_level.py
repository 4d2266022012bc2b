"""SP 800-22 §4.2: proportion of passing sequences and uniformity of P-values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammaincc

from deepkedi.metrics.nist._common import NistTestResult
from deepkedi.metrics.nist.two_level import (
    MIN_SEQUENCES_FOR_UNIFORMITY,
    p_values_by_test,
    proportion_check,
    two_level_analysis,
    uniformity_check,
)


def test_proportion_range_example_4_2_1() -> None:
    # §4.2.1: α = 0.01, m = 1000 → 0.99 ± 3·√(0.99·0.01/1000) = 0.99 ± 0.0094392.
    check = proportion_check([0.5] * 996 + [0.001] * 4)
    assert check.lower == pytest.approx(0.99 - 0.0094392, abs=1e-7)
    assert check.upper == pytest.approx(0.99 + 0.0094392, abs=1e-7)
    assert (check.n_passed, check.n_sequences, check.proportion) == (996, 1000, 0.996)
    assert check.passed and check.within_range


def test_proportion_below_range_fails_and_above_is_only_out_of_range() -> None:
    low = proportion_check([0.5] * 970 + [0.001] * 30)
    assert not low.passed and not low.within_range
    high = proportion_check([0.5] * 1000)  # 1.0 > 0.99944: STS flags, §4.2.1 does not
    assert high.passed and not high.within_range


def test_alpha_is_inclusive() -> None:
    assert proportion_check([0.01, 0.5], alpha=0.01).n_passed == 2


def test_uniformity_chi_square_by_hand() -> None:
    p = np.repeat((np.arange(10) + 0.5) / 10, [5, 8, 12, 10, 10, 10, 10, 10, 15, 10])
    check = uniformity_check(p)
    assert check.histogram == (5, 8, 12, 10, 10, 10, 10, 10, 15, 10)
    s = 100
    chi2 = sum((f - s / 10) ** 2 / (s / 10) for f in check.histogram)
    assert check.chi_square == pytest.approx(chi2)
    assert check.p_value == pytest.approx(gammaincc(4.5, chi2 / 2))
    assert check.uniform


def test_uniformity_bins_edges() -> None:
    p = [0.0, 0.1, 0.0999999, 0.9, 1.0] * 11  # 55 values
    check = uniformity_check(p)
    assert check.histogram == (22, 11, 0, 0, 0, 0, 0, 0, 0, 22)


def test_uniformity_detects_clustered_p_values() -> None:
    check = uniformity_check([0.42] * 100)
    assert check.applicable and check.uniform is False
    assert check.p_value < 1e-4


def test_uniformity_needs_55_sequences() -> None:
    short = uniformity_check([0.5] * (MIN_SEQUENCES_FOR_UNIFORMITY - 1))
    assert not short.applicable and short.uniform is None and short.p_value is None
    assert short.reason
    assert uniformity_check([0.05 + i / 55 * 0.9 for i in range(55)]).applicable


def test_uniform_p_values_from_random_data_pass() -> None:
    p = np.random.default_rng(7).random(1000)
    (record,) = two_level_analysis({"frequency": p})
    assert record.passed
    assert record.uniformity.uniform


def test_records_follow_input_order_and_pairs_work() -> None:
    rng = np.random.default_rng(8)
    data = [("b", rng.random(60)), ("a", rng.random(60))]
    names = [r.name for r in two_level_analysis(data)]
    assert names == ["b", "a"]
    assert [r.name for r in two_level_analysis(dict(data))] == ["b", "a"]


def test_failure_of_either_check_fails_the_record() -> None:
    (clustered,) = two_level_analysis({"x": [0.42] * 100})
    assert clustered.proportion.passed and not clustered.passed
    (failing,) = two_level_analysis({"x": [0.001] * 10})
    assert not failing.uniformity.applicable and not failing.passed


@pytest.mark.parametrize("bad", [[], [0.5, 1.2], [-0.1], [float("nan")]])
def test_rejects_invalid_p_values(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        two_level_analysis({"x": bad})


def test_p_values_by_test_splits_multi_p_value_tests() -> None:
    results = [
        NistTestResult("serial", (0.2, 0.3)),
        NistTestResult("frequency", (0.4,)),
        NistTestResult("serial", (0.5, 0.6)),
        NistTestResult("random_excursions", (), applicable=False, reason="J < 500"),
    ]
    assert p_values_by_test(results) == {
        "serial[1]": [0.2, 0.5],
        "serial[2]": [0.3, 0.6],
        "frequency": [0.4],
    }
