"""Write a :class:`~deepkedi.analysis.experiments.Reproduction` as Markdown, self-contained HTML, CSV, JSON, PNG.

Layout of the output folder::

    report.md          verdicts, tables and figures (PNG files beside it)
    report.html        the same, self-contained (figures embedded as data URIs)
    results.json       every table, the attack matrix and the run's metadata
    <table key>.csv    one per table
    <figure key>.png   one per figure

Both reports read in one order: what the run is and the paper it reproduces [1]_; the
verdicts (which attacks broke which scheme) with the attack matrix; the paper's Tables 1–6;
the attack evidence, one row per scheme and attack; the figures; the references. Their
prose is Markdown (code spans, bold, italic, links), which the HTML renders through
:func:`inline_markdown_html` rather than showing literally. In the HTML, number cells are
right-aligned and text cells left-aligned.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI: Deep learning-based zigzag generative
   adversarial network for encryption and decryption of medical images", *Technology and
   Health Care* 32(5), 3231–3251 (2024). doi:10.3233/THC-231927
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from deepkedi.analysis.experiments import Reproduction, Table
from deepkedi.fileio import atomic_output, make_output_folder

__all__ = [
    "REFERENCES",
    "broken_by",
    "format_value",
    "inline_markdown_html",
    "results_document",
    "write_report",
]


def format_value(value: Any) -> str:
    """A cell as text: floats to 4 decimals (∞ for bit-exact, — for missing), the rest as is."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4f}"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def results_document(result: Reproduction) -> dict[str, Any]:
    """The JSON-safe content of ``results.json``."""
    attacks: dict[str, dict[str, str]] = {}
    evidence: dict[str, dict[str, Any]] = {}
    for r in result.attacks:
        attacks.setdefault(r.scheme, {})[r.attack] = r.verdict
        evidence.setdefault(r.scheme, {})[r.attack] = {"summary": r.summary, **r.evidence}
    return {
        "meta": result.meta,
        "images": [
            {"name": i.name, "group": i.group, "shape": list(i.pixels.shape), "bits": i.bits, "note": i.note}
            for i in result.images
        ],
        "skipped": list(result.skipped),
        "tables": {
            t.key: {
                "title": t.title,
                "columns": t.columns,
                "note": t.note,
                "rows": [[_json_value(v) for v in row] for row in t.rows],
            }
            for t in result.tables
        },
        "attacks": attacks,
        "attack_evidence": json.loads(json.dumps(evidence, default=_json_value)),
        "figures": {f.key: {"title": f.title, "file": f"{f.key}.png", "caption": f.caption} for f in result.figures},
    }


def _markdown_table(table: Table) -> list[str]:
    def cell(value: Any) -> str:
        return format_value(value).replace("|", "\\|").replace("\n", " ")

    rule = "|" + "".join("---:|" if flag else "---|" for flag in _numeric_columns(table))
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |", rule]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return [*lines, ""]


#: The works the report cites, in the order of their numbers ([1] … [4]) in its text.
REFERENCES: tuple[str, ...] = (
    (
        "K. Selvakumar and S. Lokesh, “Deep-KEDI: Deep learning-based zigzag generative adversarial network for "
        "encryption and decryption of medical images”, *Technology and Health Care* 32(5), 3231–3251 (2024), "
        "[doi:10.3233/THC-231927](https://doi.org/10.3233/THC-231927). The paper reproduced here; the source of "
        "every row marked as quoted."
    ),
    (
        "Y. Wu, J. P. Noonan and S. Agaian, “NPCR and UACI randomness tests for image encryption”, *Cyber "
        "Journals: Journal of Selected Areas in Telecommunications (JSAT)*, April 2011, 31–38. The critical values "
        "of NPCR and UACI (Tables 2, 4 and 5, the differential attack)."
    ),
    (
        "G. A. Miller, “Note on the bias of information estimates”, in H. Quastler (ed.), *Information Theory in "
        "Psychology: Problems and Methods*, Free Press, 1955, 95–100. Why the entropy of n random words falls short "
        "of its maximum (Table 3)."
    ),
    (
        "M. Preishuber, T. Hütter, S. Katzenbeisser and A. Uhl, “Depreciating motivation and empirical security "
        "analysis of chaos-based image and video encryption”, *IEEE Transactions on Information Forensics and "
        "Security* 13(9), 2137–2150 (2018), "
        "[doi:10.1109/TIFS.2018.2812080](https://doi.org/10.1109/TIFS.2018.2812080). "
        "Why statistical scores are not evidence of security."
    ),
)

#: The figure shown with the verdicts, and the table given after the paper's tables.
_VERDICT_FIGURE = "attack_matrix"
_ATTACK_TABLE = "table7_attacks"

# ----------------------------------------------------------------------------- inline markdown

# The subset of Markdown the report's prose uses: `code`, **bold**, *italic*, [text](url).
_INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|\*\*(?P<strong>[^*]+?)\*\*"
    r"|(?<![\w*])\*(?P<em>[^*\s](?:[^*]*?[^*\s])?)\*(?![\w*])"
    r"|\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)"
)
_SAFE_URL = re.compile(r"^(https?://|#|[\w./-]+$)", re.IGNORECASE)


def _text(text: str) -> str:
    """Text escaped for an HTML text node (quotes need no escaping outside attributes)."""
    return html.escape(text, quote=False)


def inline_markdown_html(text: str) -> str:
    """HTML for one line of the report's Markdown: code spans, bold, italic and links; the rest escaped.

    Only that subset is recognised; anything else (``<script>``, ``&``, a lone ``*``) comes
    out as escaped text. Links keep ``http(s)://``, ``#anchor`` and relative targets; any
    other scheme (``javascript:``) leaves the link as plain text.

    Examples
    --------
    >>> inline_markdown_html("`kedi` is *not* <b>safe</b> & **fast**")
    '<code>kedi</code> is <em>not</em> &lt;b&gt;safe&lt;/b&gt; &amp; <strong>fast</strong>'
    """
    parts: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(_text(text[position : match.start()]))
        position = match.end()
        if match["code"] is not None:
            parts.append(f"<code>{_text(match['code'])}</code>")
        elif match["strong"] is not None:
            parts.append(f"<strong>{inline_markdown_html(match['strong'])}</strong>")
        elif match["em"] is not None:
            parts.append(f"<em>{inline_markdown_html(match['em'])}</em>")
        elif _SAFE_URL.match(match["url"]):
            parts.append(f'<a href="{html.escape(match["url"])}">{inline_markdown_html(match["text"])}</a>')
        else:
            parts.append(_text(match[0]))
    parts.append(_text(text[position:]))
    return "".join(parts)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading, so that one link works in report.md and report.html."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


# ----------------------------------------------------------------------------- numbers in cells

# A cell that reads as a number: 12.5, −3, ≥ 99.5, 3/7, 256×256, 4095/255, [33.28, 33.64], ∞, —.
_NUMBER = r"(?:[−\-+]?\d[\d.,]*|∞|−∞|—)"
_NUMERIC_CELL = re.compile(rf"^[≥≤<>≈]?\s?\[?{_NUMBER}(?:\s?[×/,–]\s?{_NUMBER})*\]?\s?%?$")


def _is_numeric(value: Any) -> bool:
    """Whether a cell is a number (right-aligned, so that digits line up) rather than text (left-aligned)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        return True
    return bool(_NUMERIC_CELL.match(str(value).strip()))


def _numeric_columns(table: Table) -> list[bool]:
    """Per column: do most of its non-empty cells read as numbers?"""
    flags = []
    for index in range(len(table.columns)):
        cells = [row[index] for row in table.rows if index < len(row) and format_value(row[index]).strip()]
        flags.append(bool(cells) and 2 * sum(_is_numeric(c) for c in cells) > len(cells))
    return flags


# ----------------------------------------------------------------------------- the document

# The report as a sequence of blocks, rendered once as Markdown and once as HTML, so that the two
# keep the same order: ("h1" | "h2" | "h3", text), ("p", markdown), ("list", [markdown, ...]),
# ("table", Table), ("figure", Figure).
_Block = tuple[str, Any]


def broken_by(result: Reproduction) -> dict[str, list[str]]:
    """``{scheme: [attacks that broke it]}`` for every scheme the attack suite ran, in its order."""
    verdicts: dict[str, list[str]] = {}
    for r in result.attacks:
        verdicts.setdefault(r.scheme, [])
        if r.verdict == "broken":
            verdicts[r.scheme].append(r.attack)
    return verdicts


def _verdict_line(scheme: str, attacks: list[str]) -> str:
    if not attacks:
        return f"`{scheme}`: resisted every attack of the suite"
    return f"`{scheme}`: **broken** by " + ", ".join(attacks)


def _document(result: Reproduction) -> list[_Block]:
    meta = result.meta
    tables = {t.key: t for t in result.tables}
    figures = {f.key: f for f in result.figures}
    sections = ["Verdicts", "The paper's tables", "Attack evidence", "Figures", "References"]
    blocks: list[_Block] = [
        ("h1", "Deep-KEDI reproduced"),
        (
            "p",
            (
                "This report re-runs the experiments of Selvakumar and Lokesh, “Deep-KEDI: Deep learning-based zigzag "
                "generative adversarial network for encryption and decryption of medical images” (*Technology and "
                "Health Care*, 2024) [1], for the paper's scheme, an authenticated hybrid and four classic baselines, "
                "and plays an attack suite against each."
            ),
        ),
        (
            "p",
            (
                f"deepkedi {meta.get('package_version', '?')}; {meta.get('images', 0)} images in "
                f"{len(meta.get('groups', []))} groups; seed {meta.get('seed')}; "
                f"{'quick run' if meta.get('quick') else 'full run'}; {meta.get('seconds', '?')} s. Every number below "
                "was computed by this run except rows marked *quoted from the paper*."
            ),
        ),
        (
            "p",
            (
                "Schemes: `paper` (Deep-KEDI as published: speckle → zigzag → XOR with a ZZ-GAN key image → DRT "
                "despeckling; research only, not secure), `hybrid` (ZZ-GAN + OS key material → HKDF → AES-256-GCM), "
                "and the baselines `xor-fixed-key`, `logistic-map`, `arnold-cat-xor`, `aes-ctr-reused-nonce`."
            ),
        ),
    ]
    if result.skipped:
        blocks.append(("p", "Skipped: " + "; ".join(result.skipped) + "."))
    blocks.append(("p", "Contents: " + " · ".join(f"[{s}](#{_slug(s)})" for s in sections) + "."))

    blocks += [
        ("h2", sections[0]),
        (
            "p",
            (
                "What the attack suite did to each scheme in this run. *Broken* means the attack succeeded; "
                "*resisted* means this attack failed, never that the scheme is secure. Entropy, NPCR and the other "
                "statistics of the paper's tables are not evidence of security [4]."
            ),
        ),
        ("list", [_verdict_line(scheme, attacks) for scheme, attacks in broken_by(result).items()]),
    ]
    if _VERDICT_FIGURE in figures:
        blocks.append(("figure", figures[_VERDICT_FIGURE]))

    blocks.append(("h2", sections[1]))
    blocks += [("table", t) for t in result.tables if t.key != _ATTACK_TABLE]
    blocks.append(("h2", sections[2]))
    if _ATTACK_TABLE in tables:
        blocks.append(("table", tables[_ATTACK_TABLE]))
    blocks.append(("h2", sections[3]))
    blocks += [("figure", f) for f in result.figures if f.key != _VERDICT_FIGURE]
    blocks += [("h2", sections[4]), ("list", [f"[{n}] {text}" for n, text in enumerate(REFERENCES, 1)])]
    return blocks


def _markdown(result: Reproduction) -> str:
    lines: list[str] = []
    for kind, content in _document(result):
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content, ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "list":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "table":
            lines += _markdown_table(content)
        elif kind == "figure":
            lines += [f"### {content.title}", "", f"![{content.title}]({content.key}.png)", ""]
            if content.caption:
                lines += [content.caption, ""]
    return "\n".join(lines)


def _html_table(table: Table) -> list[str]:
    numeric = _numeric_columns(table)
    head = "".join(
        f'<th class="{"num" if flag else "text"}">{_text(c)}</th>'
        for c, flag in zip(table.columns, numeric, strict=True)
    )
    parts = [f'<h3 id="{html.escape(table.key)}">{_text(table.title)}</h3>', f"<table><tr>{head}</tr>"]
    for row in table.rows:
        cells = []
        for value in row:
            text = format_value(value)
            classes = ["num" if _is_numeric(value) else "text"]
            if text in ("broken", "resisted"):
                classes.append(text)
            cells.append(f'<td class="{" ".join(classes)}">{inline_markdown_html(text)}</td>')
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    if table.note:
        parts.append(f'<p class="note">{inline_markdown_html(table.note)}</p>')
    return parts


def _html(result: Reproduction) -> str:
    from deepkedi.analysis.figures import png_data_uri

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Deep-KEDI reproduced</title>',
        (
            "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.4}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
            "td,th{border:1px solid #bbb;padding:3px 8px;vertical-align:top}"
            ".text{text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
            "th{background:#f2f2f2}code{background:#f2f2f2;padding:0 2px}img{max-width:100%}"
            ".note{font-size:90%;color:#333}.caption{font-size:90%;color:#333;margin-top:0}"
            ".broken{background:#f4c7c3}.resisted{background:#c9e7c9}</style></head><body>"
        ),
    ]
    for kind, content in _document(result):
        if kind in ("h1", "h2", "h3"):
            parts.append(f'<{kind} id="{_slug(content)}">{_text(content)}</{kind}>')
        elif kind == "p":
            parts.append(f"<p>{inline_markdown_html(content)}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{inline_markdown_html(item)}</li>" for item in content) + "</ul>")
        elif kind == "table":
            parts += _html_table(content)
        elif kind == "figure":
            parts.append(
                f'<h3 id="{html.escape(content.key)}">{_text(content.title)}</h3>'
                f'<img src="{png_data_uri(content.png)}" alt="{html.escape(content.title)}">'
            )
            if content.caption:
                parts.append(f'<p class="caption">{inline_markdown_html(content.caption)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: Reproduction, out: str | Path, *, force: bool = False) -> list[Path]:
    """Write every output file into ``out`` (created if missing); return their paths.

    Existing files are replaced only with ``force``.
    """
    out = Path(out)
    make_output_folder(out)
    written: list[Path] = []

    def put(name: str, data: bytes) -> None:
        path = out / name
        with atomic_output(path, force=force) as fh:
            fh.write(data)
        written.append(path)

    for figure in result.figures:
        put(f"{figure.key}.png", figure.png)
    for table in result.tables:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(table.columns)
        writer.writerows(
            [
                [format_value(v) if isinstance(v, float) and not math.isfinite(v) else v for v in row]
                for row in table.rows
            ]
        )
        put(f"{table.key}.csv", buffer.getvalue().encode("utf-8"))
    put("results.json", (json.dumps(results_document(result), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    put("report.md", _markdown(result).encode("utf-8"))
    put("report.html", _html(result).encode("utf-8"))
    return written
