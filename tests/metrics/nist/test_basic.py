"""SP 800-22 rev 1a tests 1–8 against the document's worked examples and Appendix B.

Appendix B lists, for the first 10⁶ bits of e, π, √2 and √3 (NIST's ``data.*``
files), the P-value of each test with the defaults block frequency M = 128,
non-overlapping template m = 9 (first template 000000001), overlapping template m = 9.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepkedi.metrics import nist
from deepkedi.metrics.nist import basic
from deepkedi.metrics.nist.basic import (
    OVERLAPPING_PROBABILITIES_HAMANO_KANEKO,
    aperiodic_templates,
    block_frequency,
    dft,
    frequency,
    longest_run,
    non_overlapping_template,
    overlapping_template,
    rank,
    runs,
)


def bits_of(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")


# ----------------------------------------------------------------- Section 2 examples

#: §2.4.8: the 128-bit example of the longest-run test.
LONGEST_RUN_EXAMPLE = (
    "11001100000101010110110001001100111000000000001001"
    "00110101010001000100111101011010000000110101111100"
    "1100111001101101100010110010"
)


def test_frequency_example_2_1_4() -> None:
    result = frequency(bits_of("1011010101"))
    assert result.name == "frequency"
    assert result.p_value == pytest.approx(0.527089, abs=5e-7)
    assert result.details["s_n"] == 2


def test_block_frequency_example_2_2_4() -> None:
    result = block_frequency(bits_of("0110011010"), block_size=3)
    assert result.name == "block_frequency"
    assert result.details["chi2"] == pytest.approx(1.0)
    assert result.p_value == pytest.approx(0.801252, abs=5e-7)


def test_runs_example_2_3_4() -> None:
    result = runs(bits_of("1001101011"))
    assert result.name == "runs"
    assert result.details["v_obs"] == 7
    assert result.p_value == pytest.approx(0.147232, abs=5e-7)


def test_longest_run_example_2_4_8() -> None:
    result = longest_run(bits_of(LONGEST_RUN_EXAMPLE))
    assert result.name == "longest_run"
    assert result.details["block_size"] == 8
    assert result.details["counts"] == [4, 9, 3, 0]
    assert result.details["chi2"] == pytest.approx(4.882457, abs=5e-7)
    assert result.p_value == pytest.approx(0.180609, abs=5e-7)


def test_rank_example_2_5_4() -> None:
    # The document's 3×3 example plugs in the rounded 32×32 probabilities.
    result = rank(
        bits_of("01011001001010101101"),
        matrix_rows=3,
        matrix_cols=3,
        probabilities=(0.2888, 0.5776, 0.1336),
    )
    assert result.name == "rank"
    assert result.details["counts"] == [1, 1, 0]
    assert result.details["chi2"] == pytest.approx(0.596953, abs=5e-7)
    assert result.p_value == pytest.approx(0.741948, abs=5e-7)


def test_rank_example_2_5_8_first_100000_bits_of_e(nist_expansion) -> None:
    result = rank(nist_expansion("e")[:100_000])
    assert result.details["matrices"] == 97
    assert result.details["counts"] == [23, 60, 14]
    assert result.details["chi2"] == pytest.approx(1.2619656, abs=5e-7)
    assert result.p_value == pytest.approx(0.532069, abs=5e-7)


def test_non_overlapping_template_example_2_7_4() -> None:
    result = non_overlapping_template(bits_of("10100100101110010110"), template="001", blocks=2)
    assert result.name == "non_overlapping_template"
    assert result.details["templates"] == ["001"]
    assert result.p_value == pytest.approx(0.344154, abs=5e-7)


def test_overlapping_template_example_2_8_8_e(nist_expansion) -> None:
    result = overlapping_template(nist_expansion("e"))
    assert result.name == "overlapping_template"
    assert result.details["blocks"] == 968
    assert result.details["counts"] == [329, 164, 150, 111, 78, 136]
    assert result.details["chi2"] == pytest.approx(8.965859, abs=5e-7)
    assert result.p_value == pytest.approx(0.110434, abs=5e-7)


@pytest.mark.parametrize(
    ("test", "kwargs", "expected"),
    [
        (frequency, {}, 0.109599),  # §2.1.8
        (block_frequency, {"block_size": 10}, 0.706438),  # §2.2.8
        (runs, {}, 0.500798),  # §2.3.8
    ],
)
def test_examples_on_first_100_bits_of_pi(nist_expansion, test, kwargs, expected) -> None:
    # The 100-bit ε of §2.x.8 is the start of π's expansion, 11.0010010000111111…₂.
    eps = nist_expansion("pi")[:100]
    assert "".join(map(str, eps[:20])) == "11001001000011111101"
    assert test(eps, **kwargs).p_value == pytest.approx(expected, abs=5e-7)


# ----------------------------------------------------------------- Appendix B

APPENDIX_B = {
    "frequency": {"e": 0.953749, "pi": 0.578211, "sqrt2": 0.811881, "sqrt3": 0.610051},
    "block_frequency": {
        "e": 0.211072,
        "pi": 0.380615,
        "sqrt2": 0.833222,
        "sqrt3": 0.473961,
    },
    "runs": {"e": 0.561917, "pi": 0.419268, "sqrt2": 0.313427, "sqrt3": 0.261123},
    "longest_run": {
        "e": 0.718945,
        "pi": 0.024390,
        "sqrt2": 0.012117,
        "sqrt3": 0.446726,
    },
    "rank": {"e": 0.306156, "pi": 0.083553, "sqrt2": 0.823810, "sqrt3": 0.314498},
    "dft": {"e": 0.847187, "pi": 0.010186, "sqrt2": 0.581909, "sqrt3": 0.776046},
    "non_overlapping_template": {
        "e": 0.078790,
        "pi": 0.165757,
        "sqrt2": 0.569461,
        "sqrt3": 0.532235,
    },
    "overlapping_template": {
        "e": 0.110434,
        "pi": 0.296897,
        "sqrt2": 0.791982,
        "sqrt3": 0.082716,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("constant", ["e", "pi", "sqrt2", "sqrt3"])
@pytest.mark.parametrize("name", list(APPENDIX_B))
def test_appendix_b(nist_expansion, name: str, constant: str) -> None:
    result = nist.BASIC_TESTS[name](nist_expansion(constant))
    assert result.name == name
    assert result.applicable
    # Non-overlapping template: Appendix B quotes the first template, 000000001.
    assert round(result.p_values[0], 6) == pytest.approx(APPENDIX_B[name][constant], abs=1e-9)


def test_non_overlapping_template_runs_all_148_templates(nist_expansion) -> None:
    result = non_overlapping_template(nist_expansion("e"))
    assert len(result.p_values) == 148
    assert result.details["templates"][0] == "000000001"
    assert result.details["templates"][-1] == "111111110"
    assert result.details["block_size"] == 125_000
    assert all(0.0 <= p <= 1.0 for p in result.p_values)


def test_hamano_kaneko_probabilities_are_an_option(nist_expansion) -> None:
    eps = nist_expansion("e")
    default = overlapping_template(eps)
    corrected = overlapping_template(eps, probabilities=OVERLAPPING_PROBABILITIES_HAMANO_KANEKO)
    assert default.details["counts"] == corrected.details["counts"]
    assert default.details["probabilities"][0] == pytest.approx(np.exp(-1.0))
    assert corrected.p_value == pytest.approx(0.159032, abs=5e-7)


# ----------------------------------------------------------------- building blocks


def _reference_gf2_rank(matrix: np.ndarray) -> int:
    """Textbook Gaussian elimination over GF(2), one matrix at a time."""
    m = matrix.copy() % 2
    r = 0
    for col in range(m.shape[1]):
        pivots = np.nonzero(m[r:, col])[0]
        if pivots.size == 0:
            continue
        p = r + pivots[0]
        m[[r, p]] = m[[p, r]]
        others = np.nonzero(m[:, col])[0]
        others = others[others != r]
        m[others] ^= m[r]
        r += 1
        if r == m.shape[0]:
            break
    return r


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("rows", "cols"), [(32, 32), (3, 3), (5, 8), (8, 5)])
def test_gf2_rank_matches_reference(seed: int, rows: int, cols: int) -> None:
    rng = np.random.default_rng(seed)
    matrices = rng.integers(0, 2, size=(200, rows, cols), dtype=np.uint8)
    # Low-rank cases: duplicate rows, zero matrices, sparse matrices.
    matrices[:20, 1] = matrices[:20, 0]
    matrices[20:25] = 0
    matrices[25:60] &= rng.integers(0, 2, size=(35, rows, cols), dtype=np.uint8) & rng.integers(
        0, 2, size=(35, rows, cols), dtype=np.uint8
    )
    weights = np.uint64(1) << np.arange(cols - 1, -1, -1, dtype=np.uint64)
    packed = (matrices.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
    ranks = basic._gf2_ranks(packed, cols)
    expected = [_reference_gf2_rank(m) for m in matrices]
    assert ranks.tolist() == expected


def test_rank_probabilities_for_32_by_32() -> None:
    # STS 2.1.2's values; the document rounds them to 0.2888, 0.5776, 0.1336.
    p32, p31, p30 = basic._rank_probabilities(32, 32)
    assert (round(p32, 6), round(p31, 6), round(p30, 6)) == (
        0.288788,
        0.577576,
        0.133636,
    )


@pytest.mark.parametrize(
    ("length", "count"),
    [(2, 2), (3, 4), (4, 6), (5, 12), (6, 20), (7, 40), (8, 74), (9, 148), (10, 284)],
)
def test_aperiodic_template_counts(length: int, count: int) -> None:
    # The sizes of STS 2.1.2's templates/template2 … template10 files (§2.7.7).
    templates = aperiodic_templates(length)
    assert len(templates) == count
    assert list(templates) == sorted(templates)


def _greedy_count(block: np.ndarray, template: np.ndarray) -> int:
    """§2.7.4 step 2 literally: slide, and on a match jump past the template."""
    m, i, count = template.size, 0, 0
    while i <= block.size - m:
        if np.array_equal(block[i : i + m], template):
            count += 1
            i += m
        else:
            i += 1
    return count


def test_non_overlapping_counts_match_the_scan_of_the_document() -> None:
    rng = np.random.default_rng(7)
    eps = rng.integers(0, 2, size=4000, dtype=np.uint8)
    for value in aperiodic_templates(4):
        template = np.array([int(c) for c in format(value, "04b")], dtype=np.uint8)
        result = non_overlapping_template(eps, template=template, blocks=4)
        m = result.details["block_size"]
        counts = [_greedy_count(eps[j * m : (j + 1) * m], template) for j in range(4)]
        mu, sigma2 = result.details["mu"], result.details["sigma2"]
        chi2 = sum((w - mu) ** 2 for w in counts) / sigma2
        from scipy.special import gammaincc

        assert result.p_value == pytest.approx(gammaincc(2.0, chi2 / 2.0), rel=1e-12)


def test_periodic_template_is_refused() -> None:
    with pytest.raises(ValueError, match="aperiodic"):
        non_overlapping_template(bits_of("0101010101"), template="0101", blocks=1)


def test_longest_run_per_row() -> None:
    blocks = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1]], dtype=np.uint8)
    assert basic._longest_run_per_row(blocks).tolist() == [0, 4, 2, 2]


# ----------------------------------------------------------------- edge cases and API


@pytest.mark.parametrize(
    ("test", "kwargs"),
    [
        (block_frequency, {"block_size": 128}),
        (longest_run, {}),
        (rank, {}),
        (non_overlapping_template, {}),
        (overlapping_template, {}),
    ],
)
def test_too_short_is_not_applicable(test, kwargs) -> None:
    result = test(bits_of("0110100110"), **kwargs)
    assert not result.applicable
    assert result.p_values == ()
    assert result.reason
    assert result.passed is None


def test_dft_of_one_bit_is_not_applicable() -> None:
    assert not dft([1]).applicable


def test_runs_prerequisite_gives_zero() -> None:
    result = runs(np.ones(1000, dtype=np.uint8))
    assert result.p_values == (0.0,)
    assert result.details["prerequisite_failed"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool])
def test_input_dtypes_agree(dtype) -> None:
    eps = np.random.default_rng(3).integers(0, 2, size=20_000)
    for name, test in nist.BASIC_TESTS.items():
        assert test(eps.astype(dtype)).p_values == test(eps.astype(np.uint8)).p_values, name


def test_run_all_order_and_names() -> None:
    eps = np.random.default_rng(5).integers(0, 2, size=50_000, dtype=np.uint8)
    results = nist.run_all(eps)
    names = list(results)
    assert names[:8] == list(nist.TEST_NAMES[:8])
    assert names == [n for n in nist.TEST_NAMES if n in names]
    for name, result in results.items():
        assert result.name == name


def test_random_bits_pass() -> None:
    eps = np.random.default_rng(11).integers(0, 2, size=200_000, dtype=np.uint8)
    for name in nist.BASIC_TESTS:
        result = nist.BASIC_TESTS[name](eps)
        assert result.applicable
        # 148 templates at α = 0.01: allow the expected handful of failures.
        failures = sum(p < result.alpha for p in result.p_values)
        assert failures <= max(1, len(result.p_values) // 20), name


def test_public_api() -> None:
    for name in (
        "NistTestResult",
        "as_bits",
        "bits_from_bytes",
        "run_all",
        "TEST_NAMES",
    ):
        assert name in nist.__all__
    assert len(nist.TEST_NAMES) == 15
    assert set(nist.BASIC_TESTS) == set(nist.TEST_NAMES[:8])


def _exact_longest_run_probabilities(m: int, first: int, k: int) -> list[float]:
    """P(longest run of ones in m fair bits falls in each class), by dynamic programming."""
    cdf = []
    for limit in range(first, first + k):
        # state[r]: probability that the current trailing run is r and no run exceeded limit.
        state = np.zeros(limit + 1)
        state[0] = 1.0
        for _ in range(m):
            state = np.concatenate(([state.sum() / 2], state[:-1] / 2))
        cdf.append(state.sum())
    return [cdf[0], *np.diff(cdf), 1.0 - cdf[-1]]


@pytest.mark.parametrize(("m", "first"), [(8, 1), (128, 4)])
def test_longest_run_probabilities_are_exact(m: int, first: int) -> None:
    (table,) = [t for t in basic._LONGEST_RUN_TABLES if t[1] == m]
    probabilities = table[3]
    exact = _exact_longest_run_probabilities(m, first, len(probabilities) - 1)
    assert probabilities == pytest.approx(exact, abs=1e-9)


def test_longest_run_probabilities_for_10000_are_nists_approximation() -> None:
    # Kept as published because Appendix B depends on them; documented deviation.
    (table,) = [t for t in basic._LONGEST_RUN_TABLES if t[1] == 10_000]
    exact = _exact_longest_run_probabilities(10_000, 10, 6)
    assert table[3] == pytest.approx(exact, abs=2e-3)


def test_run_all_runs_the_fifteen_tests_in_order() -> None:
    eps = np.random.default_rng(5).integers(0, 2, size=20_000, dtype=np.uint8)
    results = nist.run_all(eps)
    assert list(results) == list(nist.TEST_NAMES) and len(results) == 15
    assert all(name == result.name for name, result in results.items())


def test_tests_registry_lists_every_available_test() -> None:
    tests = nist.TESTS
    assert list(tests) == list(nist.TEST_NAMES)
    assert tests["rank"] is rank


def test_dft_worked_example_first_100_bits_of_e(nist_expansion) -> None:
    """SP 800-22 §2.6.8: the first 100 bits of e give N1 = 46 and P = 0.168669.

    (The 10-bit walk-through in §2.6.4 cannot be reproduced: all five moduli of
    1001010011 fall below T = 5.47, so N1 = 5, not the 4 the text states.)
    """
    result = dft(nist_expansion("e")[:100])
    assert result.details["n1"] == 46
    assert result.p_values[0] == pytest.approx(0.168669, abs=1e-6)


def test_familywise_p_value_is_the_bonferroni_bound() -> None:
    assert nist.NistTestResult("serial", (0.004, 0.3)).familywise_p_value == pytest.approx(0.008)
    assert nist.NistTestResult("frequency", (0.2,)).familywise_p_value == 0.2
    assert nist.NistTestResult("serial", (0.6, 0.9)).familywise_p_value == 1.0
    with pytest.raises(ValueError, match="not applicable"):
        _ = nist.NistTestResult("random_excursions", (), applicable=False, reason="J < 500").familywise_p_value


def test_familywise_rejections_separate_good_and_broken_sequences(nist_expansion) -> None:
    """The verdict `kedi demo` uses on keystream bits: no test of the 15 rejects the first
    10⁶ bits of π at family-wise α = 0.001, while a stream that repeats one random
    16-byte block (ECB of a constant) is rejected by most of them."""

    def rejected(bits: np.ndarray) -> list[str]:
        results = nist.run_all(bits)
        return [name for name, r in results.items() if r.applicable and r.familywise_p_value < 0.001]

    assert rejected(nist_expansion("pi")) == []
    block = np.random.default_rng(5).integers(0, 256, 16, dtype=np.uint8).tobytes()
    assert len(rejected(nist.bits_from_bytes(block * 62_500))) >= 8


def test_passes_over_chunks_give_the_one_pass_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # Memory is bounded by working on about 2²⁰ bits at a time; a small chunk forces many
    # passes (and uneven last ones) and must not change a single statistic.
    bits = np.random.default_rng(7).integers(0, 2, 300_001, dtype=np.uint8)
    tests = (longest_run, rank, non_overlapping_template, overlapping_template)
    whole = [t(bits) for t in tests]
    monkeypatch.setattr(basic, "_CHUNK_BITS", 5_000)
    for test, expected in zip(tests, whole, strict=True):
        assert test(bits) == expected, test.__name__
