"""`kedi reproduce --quick` on a tiny data folder: structure and invariants of the report."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from deepkedi.datasets import phantom

SCHEMES = ("paper", "hybrid", "xor-fixed-key", "logistic-map", "arnold-cat-xor", "aes-ctr-reused-nonce")
ATTACKS = ("known-plaintext", "key-reuse", "differential", "tamper", "wrong-key")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from typer.testing import CliRunner

    from deepkedi.cli import app

    data = tmp_path_factory.mktemp("data")
    (data / "brain").mkdir()
    (data / "lung").mkdir()
    np.save(data / "brain" / "mr.npy", phantom("brain", "MR", seed=2, shape=(48, 48)).pixels)
    ct = phantom("lung", "CT", seed=2, shape=(40, 56)).pixels
    np.save(data / "lung" / "ct.npy", ct)
    (data / "lung" / "notes.txt").write_text("not an image")
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--data", str(data), "--out", str(out), "--force"])
    assert result.exit_code == 0, result.stdout + str(result.exception)
    return out, result


def test_every_output_is_written(report: tuple[Path, object]) -> None:
    out, _ = report
    for name in (
        "report.md",
        "report.html",
        "results.json",
        "table1_quality.csv",
        "table6_timing.csv",
        "fig6_pipeline.png",
        "fig10_wrong_keys.png",
        "attack_matrix.png",
    ):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 6  # self-contained: figures embedded
    assert '<img src="fig' not in html
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for title in (
        "Table 1",
        "Table 2",
        "Table 3",
        "Table 4",
        "Table 5",
        "Table 6",
        "Fig. 6",
        "Fig. 7",
        "Fig. 8",
        "Fig. 9",
        "Fig. 10",
        "Attack",
    ):
        assert title in markdown, title


def test_every_figure_is_a_distinct_png_linked_and_embedded(report: tuple[Path, object]) -> None:
    out, _ = report
    figures = json.loads((out / "results.json").read_text(encoding="utf-8"))["figures"]
    assert {"fig6_pipeline", "fig10_wrong_keys", "attack_matrix"} <= set(figures)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    embedded = [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    digests = set()
    for key, entry in figures.items():
        data = (out / entry["file"]).read_bytes()
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            assert picture.format == "PNG" and picture.width >= 200 and picture.height >= 100, key
            grey = np.asarray(picture.convert("L"))
            assert grey.min() < 100 and grey.max() > 200, key  # dark marks drawn on a light page
        assert f"]({entry['file']})" in markdown, key  # report.md shows the file beside it
        assert data in embedded, key  # report.html carries the same picture
        digests.add(hashlib.sha256(data).hexdigest())
    assert len(digests) == len(figures) == len(embedded)  # no figure is another's copy


def test_attack_matrix_places_the_schemes(report: tuple[Path, object]) -> None:
    out, _ = report
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    attacks = results["attacks"]
    assert set(attacks) == set(SCHEMES)
    for scheme in SCHEMES:
        assert set(ATTACKS) <= set(attacks[scheme])
        assert set(attacks[scheme].values()) <= {"resisted", "broken"}
    assert all(attacks["hybrid"][a] == "resisted" for a in ATTACKS)
    for scheme in ("paper", "xor-fixed-key"):
        assert attacks[scheme]["known-plaintext"] == "broken"
        assert attacks[scheme]["key-reuse"] == "broken"
    assert attacks["aes-ctr-reused-nonce"]["key-reuse"] == "broken"
    for scheme in SCHEMES:
        if scheme != "hybrid":
            assert attacks[scheme]["tamper"] == "broken"  # nothing else authenticates


def test_tables_hold_computed_numbers(report: tuple[Path, object]) -> None:
    out, _ = report
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["meta"]["groups"] == ["brain", "lung"]
    assert any("notes.txt" in s for s in results["skipped"])
    quality = results["tables"]["table1_quality"]
    rows = {(r[0], r[2]): r for r in quality["rows"]}
    for group in ("brain", "lung"):
        assert rows[(group, "hybrid")][6] == "inf"  # bit-exact: PSNR ∞
        assert rows[(group, "hybrid")][4] == 1.0 and rows[(group, "hybrid")][5] == 0.0
        assert 10 < rows[(group, "paper")][6] < 60  # lossy, finite
    quoted = [r for r in quality["rows"] if "quoted" in str(r[2])]
    assert len(quoted) == 1 and quoted[0][6] == 25.32
    with open(out / "table6_timing.csv", newline="", encoding="utf-8") as fh:
        timing = list(csv.DictReader(fh))
    measured = [r for r in timing if "quoted" not in r["scheme"]]
    assert {r["scheme"] for r in measured} == set(SCHEMES)
    assert all(float(r["encrypt ms"]) > 0 and float(r["decrypt ms"]) > 0 for r in measured)


def test_an_existing_report_is_not_replaced_without_force(report: tuple[Path, object], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deepkedi.cli import app

    out, _ = report
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--out", str(out)])
    assert result.exit_code == 2


def _prose(html: str) -> str:
    """The HTML without its embedded figures (base64) and its style sheet."""
    html = re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', html)
    return re.sub(r"<style>.*?</style>", "", html, flags=re.S)


def test_html_renders_markdown_instead_of_showing_it(report: tuple[Path, object]) -> None:
    out, _ = report
    html = _prose((out / "report.html").read_text(encoding="utf-8"))
    assert "`" not in html and "**" not in html
    assert "*quoted" not in html and "here*" not in html  # italic markers rendered, not shown
    assert "<code>hybrid</code>" in html and "<em>quoted from the paper, not measured here</em>" in html
    assert "<strong>broken</strong>" in html
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "`hybrid`" in markdown and "*quoted from the paper" in markdown  # report.md stays Markdown


def test_verdicts_and_attack_matrix_come_before_the_tables(report: tuple[Path, object]) -> None:
    out, _ = report
    html = (out / "report.html").read_text(encoding="utf-8")
    verdicts, matrix, first_table = html.index('id="verdicts"'), html.index('id="attack_matrix"'), html.index("<table")
    assert verdicts < matrix < first_table
    section = html[verdicts:first_table]
    for scheme in SCHEMES:
        assert f"<code>{scheme}</code>" in section
    assert "resisted every attack" in section  # hybrid
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown.index("## Verdicts") < markdown.index("](attack_matrix.png)") < markdown.index("\n| ")
    # The attack evidence follows the paper's tables; the figures and references come last.
    headings = re.findall(r"^(#{2,3} .+)$", markdown, flags=re.M)
    order = [h for h in headings if h.startswith("## ")]
    assert order == ["## Verdicts", "## The paper's tables", "## Attack evidence", "## Figures", "## References"]
    assert markdown.index("### Table 6") < markdown.index("### Attack suite") < markdown.index("### Fig. 6")


def test_text_cells_are_left_aligned_and_numbers_right_aligned(report: tuple[Path, object]) -> None:
    out, _ = report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert ".text{text-align:left}" in html and ".num{text-align:right" in html
    evidence = re.findall(r'<td class="text">((?:second image|the key cancels|every modification)[^<]*)</td>', html)
    assert evidence  # evidence sentences are text cells
    assert not re.search(r'<td class="num[^"]*">[^<]*[a-z]{4}', html)  # no word sits in a number cell
    assert re.search(r'<td class="num">\d+\.\d{4}</td>', html)  # measured numbers do


def test_the_report_cites_its_sources_and_no_missing_file(report: tuple[Path, object]) -> None:
    out, _ = report
    for path in out.iterdir():
        if path.suffix in (".md", ".html", ".json", ".csv"):
            assert "REFERENCES.md" not in path.read_text(encoding="utf-8"), path.name
    html = (out / "report.html").read_text(encoding="utf-8")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for text in (html, markdown):
        assert "Selvakumar and S. Lokesh" in text and "Technology and Health Care" in text
        assert "3231–3251 (2024)" in text and "10.3233/THC-231927" in text
        assert "Y. Wu, J. P. Noonan and S. Agaian" in text and "2011" in text
    assert '<a href="https://doi.org/10.3233/THC-231927">' in html


def test_histogram_figures_span_the_data_range_in_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figs. 8-9 of a CT: the plain image's histogram axis ends at 2^(its stored bits), the 16-bit cipher's at 65536."""
    from deepkedi.analysis import experiments, figures

    axes_seen: list[tuple[str, tuple[float, float]]] = []
    real = figures._png_bytes

    def record(figure, dpi: int) -> bytes:  # type: ignore[no-untyped-def]
        if any(not a.images for a in figure.axes) and any(a.images for a in figure.axes):
            titles = [a.get_title() for a in figure.axes if a.images]
            limits = [a.get_xlim() for a in figure.axes if not a.images]
            axes_seen.extend(zip(titles, limits, strict=True))
        return real(figure, dpi)

    monkeypatch.setattr(figures, "_png_bytes", record)
    ct = phantom("brain", "CT", seed=0, shape=(48, 48)).pixels
    plane, _ = experiments.to_plane(ct)
    image = experiments.ExperimentImage("ct", "brain, CT", plane)
    stored = 2.0**image.stored_bits
    assert image.bits == 16 and stored <= 4096  # a CT's 11-12 bits in 16-bit words
    experiments.paper_figures(image, seed=0, step=lambda _: None)
    limits = dict(axes_seen)
    assert limits["input"] == (0.0, stored)
    assert limits["speckled plain"] in ((0.0, stored), (0.0, 2 * stored))  # speckle may add a bit, no more
    assert limits["key A"] == (0.0, 65536.0) and limits["encrypted"] == (0.0, 65536.0)
