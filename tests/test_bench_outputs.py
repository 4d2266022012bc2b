"""Benchmarks never rewrite tracked files: their output goes under the ignored ``bench/out/``.

The measurement pages committed under ``docs/`` (``zzgan_keys.md``, ``zzgan_ablation.md``,
``despeckle_comparison.*``) change only through ``make bench-docs``, which passes ``--out``
explicitly. Checked over the scripts' source, since running them takes minutes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


def _make_recipe(target: str) -> list[str]:
    """The command lines of one Makefile target."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def _paths_into_docs(tree: ast.AST) -> list[int]:
    """Lines holding a string ``docs`` or ``docs/…`` that is not a docstring: a path built into docs/."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and re.fullmatch(r"docs(/.*)?", node.value)
        ):
            found.append(node.lineno)
    return found


def test_the_scan_sees_the_benchmarks() -> None:
    names = {path.name for path in SCRIPTS}
    assert {"bench_zzgan.py", "ablation_zzgan.py", "compare_despeckle.py", "bench_cipher.py"} <= names


def test_no_benchmark_script_writes_into_docs_by_default() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in SCRIPTS
        for line in _paths_into_docs(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == [], "a benchmark builds a path into docs/; write under bench/out/ and let --out choose"


def test_the_scan_would_catch_the_old_defaults() -> None:
    old = 'p.add_argument("--out", default=Path(__file__).resolve().parents[1] / "docs" / "zzgan_keys.md")\n'
    assert _paths_into_docs(ast.parse(old)) == [1]
    assert _paths_into_docs(ast.parse('"""Writes docs/x.md."""\nOUT = ROOT / "bench" / "out"\n')) == []


def test_default_outputs_are_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/bench/out/" in ignored
    for name in ("bench_zzgan.py", "ablation_zzgan.py"):
        assert 'Path(__file__).resolve().parent / "out" /' in (ROOT / "bench" / name).read_text(encoding="utf-8")
    assert 'ROOT / "bench" / "out" / "despeckle"' in (ROOT / "bench" / "compare_despeckle.py").read_text(
        encoding="utf-8"
    )


def test_make_bench_leaves_docs_alone_and_bench_docs_regenerates_every_page() -> None:
    bench = _make_recipe("bench")
    assert bench and not [line for line in bench if "docs" in line]
    regenerate = " ".join(_make_recipe("bench-docs"))
    for page in ("docs/zzgan_keys.md", "docs/zzgan_ablation.md", "docs/service_bench.md"):
        assert f"--out {page}" in regenerate
        assert (ROOT / page).is_file()
    assert "bench/compare_despeckle.py --out docs" in regenerate
    assert (ROOT / "docs" / "despeckle_comparison.md").is_file()
