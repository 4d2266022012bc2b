"""The command line has no container logic of its own: it calls deepkedi.api (issue: one container seam)."""

from __future__ import annotations

import ast
from pathlib import Path

import deepkedi.cli

CLI = Path(deepkedi.cli.__file__).parent
#: What only the library may do: parse DICOM, read container headers, tell container kinds apart.
FORBIDDEN_MODULES = ("pydicom", "deepkedi.cipher.dicom_native", "deepkedi.cipher.format")
FORBIDDEN_NAMES = {
    "parse_header",
    "read_header_from",
    "is_dicom_native",
    "open_dicom_native",
    "read_dicom_native_header",
    "decrypt_dicom_native",
    "encrypt_dicom_native",
    "Suite",
}


def _imports(path: Path) -> list[tuple[str, set[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, set()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {alias.name for alias in node.names}))
    return found


def test_no_header_parsing_or_dicom_in_the_cli() -> None:
    offences = []
    for path in sorted(CLI.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "65536" in text:
            offences.append(f"{path.name}: reads a header with a magic size")
        for module, names in _imports(path):
            if module.startswith(FORBIDDEN_MODULES):
                offences.append(f"{path.name}: imports {module}")
            if names & FORBIDDEN_NAMES:
                offences.append(f"{path.name}: imports {sorted(names & FORBIDDEN_NAMES)} from {module}")
    assert not offences, "\n".join(offences)


def test_the_check_sees_an_offence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from deepkedi.cipher.format import parse_header\nimport pydicom\n", encoding="utf-8")
    modules = [m for m, _ in _imports(bad)]
    assert any(m.startswith(FORBIDDEN_MODULES) for m in modules)
    assert {"parse_header"} & set().union(*(n for _, n in _imports(bad)))
