"""Rules the test suite keeps, checked over its own source, so that a green run means the checks ran.

- No test turns an arbitrary exception into a skip (``except Exception: pytest.skip(...)``
  hides a real failure as "not applicable").
- No test skips when one of the project's own modules fails to import
  (``pytest.importorskip("deepkedi...")``): a broken import is a failure.
- External programs are found only through ``external_tools.require_tool``, which fails
  under ``CI=true`` instead of skipping.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from external_tools import require_tool, unavailable

TESTS = Path(__file__).resolve().parent
SOURCES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)

_SKIPPERS = {"skip", "importorskip", "xfail"}
_BROAD = {"Exception", "BaseException"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(TESTS.parent)}:{getattr(node, 'lineno', '?')}"


def _catches_anything(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return handler.type is None or any(_name(kind) in _BROAD for kind in kinds)


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _broad_skips(tree: ast.AST) -> list[ast.AST]:
    """Skip calls inside an ``except`` that catches anything (bare, Exception, BaseException)."""
    handlers = [n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and _catches_anything(n)]
    return [call for h in handlers for call in _calls(h) if _name(call.func) in _SKIPPERS | {"unavailable"}]


def _own_importorskips(tree: ast.AST) -> list[ast.AST]:
    """``importorskip`` of a deepkedi module, or of a name the scan cannot read."""
    return [
        call
        for call in _calls(tree)
        if _name(call.func) == "importorskip"
        and call.args
        and (not isinstance(call.args[0], ast.Constant) or str(call.args[0].value).split(".")[0] == "deepkedi")
    ]


def _which_calls(tree: ast.AST) -> list[ast.AST]:
    return [call for call in _calls(tree) if _name(call.func) == "which"]


def _scan(rule, *, skip: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    return [
        _where(path, node)
        for path in SOURCES
        if path.name != skip
        for node in rule(ast.parse(path.read_text(encoding="utf-8")))
    ]


def test_the_scan_sees_the_suite() -> None:
    assert len(SOURCES) > 50 and TESTS / "conftest.py" in SOURCES


def test_the_rules_catch_what_they_forbid() -> None:
    bad = ast.parse(
        "import pytest, shutil\n"
        "try:\n    run()\nexcept Exception:\n    pytest.skip('flaky')\n"
        "try:\n    run()\nexcept:\n    pytest.xfail('x')\n"
        "try:\n    run()\nexcept (OSError, BaseException):\n    unavailable('x')\n"
        "pytest.importorskip('deepkedi.keygen')\n"
        "shutil.which('dcmdump')\n"
    )
    assert len(_broad_skips(bad)) == 3
    assert len(_own_importorskips(bad)) == 1
    assert len(_which_calls(bad)) == 1
    fine = ast.parse(
        "try:\n    import torch\nexcept ImportError:\n    pytest.skip('no torch')\npytest.importorskip('skimage')\n"
    )
    assert _broad_skips(fine) == [] and _own_importorskips(fine) == []


def test_no_broad_exception_becomes_a_skip() -> None:
    found = _scan(_broad_skips)
    assert not found, "a broad except turns failures into skips at: " + ", ".join(found)


def test_no_skip_on_the_projects_own_modules() -> None:
    found = _scan(_own_importorskips)
    assert not found, "importorskip of deepkedi (or of a computed name) at: " + ", ".join(found)


def test_external_programs_are_found_only_through_require_tool() -> None:
    found = _scan(_which_calls, skip="external_tools.py")
    assert not found, "use external_tools.require_tool (fails under CI=true), not shutil.which, at: " + ", ".join(found)


_MISSING = "kedi-test-no-such-program"


def test_a_missing_tool_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=_MISSING):
        require_tool(_MISSING, install="nothing")


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=_MISSING):
        require_tool(_MISSING, install="nothing")
    with pytest.raises(pytest.fail.Exception, match="psycopg"):
        unavailable("psycopg is not installed")


def test_a_present_tool_is_its_path() -> None:
    assert Path(require_tool("sh", install="a POSIX shell")).name == "sh"
