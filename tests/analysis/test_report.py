"""Tests for deepkedi.analysis.report: the inline Markdown of the HTML report, cell alignment, verdicts."""

from __future__ import annotations

import pytest

from deepkedi.analysis.report import REFERENCES, _is_numeric, _slug, broken_by, inline_markdown_html


@pytest.mark.parametrize(
    "markdown, html",
    [
        ("`kedi reproduce`", "<code>kedi reproduce</code>"),
        ("**broken** by x", "<strong>broken</strong> by x"),
        ("rows marked *quoted from the paper*.", "rows marked <em>quoted from the paper</em>."),
        ("(*quoted*)", "(<em>quoted</em>)"),
        ("**`hybrid` wins**", "<strong><code>hybrid</code> wins</strong>"),
        ("[doi](https://doi.org/10.3233/THC-231927)", '<a href="https://doi.org/10.3233/THC-231927">doi</a>'),
        ("[Verdicts](#verdicts)", '<a href="#verdicts">Verdicts</a>'),
        ("a `*not bold*` b", "a <code>*not bold*</code> b"),
        ("2 * 3 * 4, |r| < 0.5 & p", "2 * 3 * 4, |r| &lt; 0.5 &amp; p"),
        ("a_b_c 2^b − 1", "a_b_c 2^b − 1"),
    ],
)
def test_inline_markdown(markdown: str, html: str) -> None:
    assert inline_markdown_html(markdown) == html


def test_inline_markdown_escapes_everything_else() -> None:
    assert inline_markdown_html("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert inline_markdown_html("`<img src=x onerror=1>`") == "<code>&lt;img src=x onerror=1&gt;</code>"
    # A link to another scheme than http(s), an anchor or a relative path stays text.
    assert "<a" not in inline_markdown_html("[x](javascript:alert(1))")
    assert inline_markdown_html('[x](a.png?x=")') == '[x](a.png?x=")'  # no attribute to break out of


@pytest.mark.parametrize(
    "cell, numeric",
    [
        (0.8449, True),
        (7, True),
        (True, False),
        ("4095/255", True),
        ("256×256", True),
        ("3/7", True),
        ("[33.2824, 33.6447]", True),
        ("∞", True),
        ("—", True),
        ("pass", False),
        ("not stated", False),
        ("≥ 99.5 (*quoted from the paper, not measured here*)", False),
        ("the key cancels between two cipher images: |r| = 1.000", False),
    ],
)
def test_cells_read_as_numbers_or_text(cell: object, numeric: bool) -> None:
    assert _is_numeric(cell) is numeric


def test_slug_matches_githubs_heading_anchors() -> None:
    assert _slug("The paper's tables") == "the-papers-tables"
    assert _slug("Attack evidence") == "attack-evidence"


def test_broken_by_lists_every_scheme_in_order() -> None:
    from types import SimpleNamespace

    from deepkedi.analysis.experiments import Reproduction

    def outcome(scheme: str, attack: str, verdict: str) -> SimpleNamespace:
        return SimpleNamespace(scheme=scheme, attack=attack, verdict=verdict)

    result = Reproduction(
        attacks=[
            outcome("paper", "key-reuse", "broken"),
            outcome("paper", "wrong-key", "resisted"),
            outcome("hybrid", "key-reuse", "resisted"),
            outcome("paper", "tamper", "broken"),
        ]
    )
    assert broken_by(result) == {"paper": ["key-reuse", "tamper"], "hybrid": []}


def test_references_cite_the_paper_and_the_npcr_critical_values() -> None:
    paper, wu = REFERENCES[0], REFERENCES[1]
    assert "Selvakumar" in paper and "Lokesh" in paper and "Technology and Health Care" in paper and "2024" in paper
    assert "Wu" in wu and "Noonan" in wu and "Agaian" in wu and "2011" in wu
    assert not any("REFERENCES.md" in reference for reference in REFERENCES)
