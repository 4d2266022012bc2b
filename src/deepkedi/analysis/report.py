"""Write a :class:`~deepkedi.analysis.experiments.Reproduction` as Markdown, self-contained HTML, CSV, JSON, PNG.

Layout of the output folder::

    report.md          tables and figures (PNG files beside it)
    report.html        the same, self-contained (figures embedded as data URIs)
    results.json       every table, the attack matrix and the run's metadata
    <table key>.csv    one per table
    <figure key>.png   one per figure
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from deepkedi.analysis.experiments import Reproduction, Table
from deepkedi.fileio import atomic_output, make_output_folder

__all__ = ["format_value", "results_document", "write_report"]


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

    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return [*lines, ""]


def _intro(result: Reproduction) -> list[str]:
    meta = result.meta
    lines = [
        "# Deep-KEDI reproduced",
        "",
        (
            f"deepkedi {meta.get('package_version', '?')}; {meta.get('images', 0)} images in "
            f"{len(meta.get('groups', []))} groups; seed {meta.get('seed')}; "
            f"{'quick run' if meta.get('quick') else 'full run'}; {meta.get('seconds', '?')} s. Every number below "
            "was computed by this run except rows marked *quoted from the paper*."
        ),
        "",
        (
            "Schemes: `paper` (Deep-KEDI as published: speckle → zigzag → XOR with a ZZ-GAN key image → DRT "
            "despeckling; research only, not secure), `hybrid` (ZZ-GAN + OS key material → HKDF → AES-256-GCM), "
            "and the baselines `xor-fixed-key`, `logistic-map`, `arnold-cat-xor`, `aes-ctr-reused-nonce`."
        ),
        "",
    ]
    if result.skipped:
        lines += ["Skipped: " + "; ".join(result.skipped) + ".", ""]
    return lines


def _markdown(result: Reproduction) -> str:
    lines = _intro(result)
    for table in result.tables:
        lines += _markdown_table(table)
    lines += ["## Figures", ""]
    for figure in result.figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.key}.png)", ""]
        if figure.caption:
            lines += [figure.caption, ""]
    return "\n".join(lines)


def _html(result: Reproduction) -> str:
    from deepkedi.analysis.figures import png_data_uri

    def paragraph(text: str) -> str:
        return f"<p>{html.escape(text)}</p>"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Deep-KEDI reproduced</title>',
        (
            "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
            "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
            ".broken{background:#f4c7c3}.resisted{background:#c9e7c9}</style></head><body>"
        ),
    ]
    intro = _intro(result)
    parts.append(f"<h1>{html.escape(intro[0].lstrip('# '))}</h1>")
    parts += [paragraph(line) for line in intro[1:] if line]
    for table in result.tables:
        parts.append(
            f"<h3>{html.escape(table.title)}</h3><table><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
            + "</tr>"
        )
        for row in table.rows:
            cells = []
            for value in row:
                text = format_value(value)
                css = f' class="{text}"' if text in ("broken", "resisted") else ""
                cells.append(f"<td{css}>{html.escape(text)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        if table.note:
            parts.append(paragraph(table.note))
    parts.append("<h2>Figures</h2>")
    for figure in result.figures:
        parts.append(
            f"<h3>{html.escape(figure.title)}</h3>"
            f'<img src="{png_data_uri(figure.png)}" alt="{html.escape(figure.title)}">'
        )
        if figure.caption:
            parts.append(paragraph(figure.caption))
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
