"""The package's import layers: the contract in pyproject.toml, the code against it, the docs beside it.

``[tool.importlinter]`` in pyproject.toml is the one place the layers are listed, top to
bottom; a module may import only from layers below its own. These tests run that contract
through import-linter's Python API over the ``deepkedi`` these tests import, check
that the checker really catches a lower layer importing a higher one (so the real check
cannot pass by checking nothing), that every top-level module of the package sits in a
layer, and that docs/ARCHITECTURE.md shows the same layers in the same order.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
from importlinter import api as _importlinter_api  # noqa: F401 - configures import-linter's adapters
from importlinter.application import use_cases

import deepkedi

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
CONTRACT_ID = "layers"

# The block of docs/ARCHITECTURE.md that lists the layers, one a line, top to bottom.
_DOC_BEGIN = "<!-- layers: begin"
_DOC_END = "<!-- layers: end -->"


def _format_link(link: dict) -> str:
    lines = ", ".join(f"l.{n}" for n in link.get("line_numbers", ()) if n is not None)
    return f"{link['importer']} -> {link['imported']}" + (f" ({lines})" if lines else "")


def _broken_imports(config: Path) -> list[str]:
    """Every import that breaks a contract of ``config``, one line each; empty when all are kept.

    The graph is built afresh (no cache), over the root packages as this interpreter finds them.
    """
    options = use_cases.read_user_options(str(config))
    # What `lint-imports` does before it checks (import-linter is pinned in the test extra):
    # without the built-in contract types registered, create_report knows no "layers".
    use_cases._register_contract_types(options)
    report = use_cases.create_report(options, cache_dir=None)
    assert not report.could_not_run and not report.invalid_contract_options, report.invalid_contract_options
    assert report.contracts, f"{config} declares no contract: nothing would be checked"
    broken = []
    for contract, check in report.get_contracts_and_checks():
        if check.kept:
            continue
        for dependency in check.metadata.get("invalid_dependencies", []):
            for route in dependency["routes"]:
                chain = " -> ".join(_format_link(link) for link in route["chain"])
                extra = [_format_link(link) for link in route.get("extra_firsts", []) + route.get("extra_lasts", [])]
                broken.append(
                    f"{contract.name}: {dependency['importer']} may not import {dependency['imported']}: {chain}"
                    + (f" (also {'; '.join(extra)})" if extra else "")
                )
        for module in sorted(check.metadata.get("undeclared_modules", ())):
            broken.append(f"{contract.name}: {module} is in no layer")
        if not broken:  # broken for a reason this function does not spell out: say so rather than pass
            broken.append(f"{contract.name}: broken ({check.metadata})")
    return sorted(broken)


def _contract_layers(config: Path = PYPROJECT) -> list[str]:
    options = use_cases.read_user_options(str(config))
    contracts = [c for c in options.contracts_options if c.get("id") == CONTRACT_ID]
    assert len(contracts) == 1, f"{config} must hold one contract with id {CONTRACT_ID!r}"
    assert contracts[0]["type"] == "layers"
    assert options.session_options["root_packages"] == ["deepkedi"]
    assert options.session_options.get("exclude_type_checking_imports") == "True"
    layers = contracts[0]["layers"]
    return [layers] if isinstance(layers, str) else list(layers)


def _normalised(layer: str) -> str:
    """``a|  (b)`` and ``a | (b)`` alike; the delimiter (``|`` independent, ``:`` not) is kept."""
    delimiter = "|" if "|" in layer else ":"
    return f" {delimiter} ".join(part.strip() for part in layer.split(delimiter))


def _modules_of(layer: str) -> set[str]:
    return {part.strip().strip("()") for part in re.split(r"[|:]", layer)}


def _documented_layers(text: str) -> list[str]:
    """The layer column of ARCHITECTURE.md's delimited block: first field of each line (fields part at 2+ spaces)."""
    assert text.count(_DOC_BEGIN) == 1 and text.count(_DOC_END) == 1, "ARCHITECTURE.md needs one layers block"
    block = text.split(_DOC_BEGIN, 1)[1].split("-->", 1)[1].split(_DOC_END, 1)[0]
    rows = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("```")]
    return [_normalised(re.split(r"\s{2,}", row.strip())[0]) for row in rows]


def test_the_package_keeps_its_layers() -> None:
    # The graph is of the deepkedi these tests import (this checkout), not of some installed copy.
    assert Path(importlib.util.find_spec("deepkedi").origin).resolve() == Path(deepkedi.__file__).resolve()
    broken = _broken_imports(PYPROJECT)
    assert not broken, "imports that break the layers of pyproject.toml:\n" + "\n".join(broken)


def test_every_top_level_module_sits_in_a_layer() -> None:
    layered = set().union(*(_modules_of(layer) for layer in _contract_layers()))
    modules = {f"deepkedi.{m.name}" for m in pkgutil.iter_modules(deepkedi.__path__)}
    assert modules - layered == set(), "add these to [tool.importlinter]'s layers in pyproject.toml"


def _toy_package(tmp_path: Path, name: str, low_source: str) -> Path:
    """A package ``name`` with modules high, low and base, and a config naming them as layers in that order."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("VALUE = 1\n")
    (package / "high.py").write_text(f"from {name} import low, base\n")
    (package / "low.py").write_text(textwrap.dedent(low_source).format(name=name))
    config = tmp_path / "pyproject.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [tool.importlinter]
        root_packages = ["{name}"]
        exclude_type_checking_imports = true

        [[tool.importlinter.contracts]]
        id = "layers"
        name = "toy layers"
        type = "layers"
        layers = ["{name}.high", "{name}.low", "{name}.base"]
        """)
    )
    return config


def test_the_check_catches_a_lower_layer_importing_a_higher_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = _toy_package(tmp_path, "layering_toy_broken", "from {name} import base\nfrom {name}.high import low\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = _broken_imports(config)
    assert len(broken) == 1, broken
    assert "layering_toy_broken.low may not import layering_toy_broken.high" in broken[0]
    assert "layering_toy_broken.low -> layering_toy_broken.high (l.2)" in broken[0]


def test_the_check_passes_a_layered_package(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The same toy with the offending import only under TYPE_CHECKING: the contract excludes
    # those (annotations may name a higher layer's types), so nothing is broken.
    config = _toy_package(
        tmp_path,
        "layering_toy_kept",
        """\
        from typing import TYPE_CHECKING
        from {name} import base
        if TYPE_CHECKING:
            from {name}.high import low
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _broken_imports(config) == []


def test_architecture_md_shows_the_contracts_layers_in_order() -> None:
    contract = [_normalised(layer) for layer in _contract_layers()]
    documented = _documented_layers(ARCHITECTURE.read_text(encoding="utf-8"))
    assert documented == contract, "docs/ARCHITECTURE.md's layers block and pyproject.toml's contract differ"


def test_the_docs_parser_reads_a_block_and_rejects_a_missing_one() -> None:
    text = (
        "intro\n<!-- layers: begin, top to bottom -->\n```\na | (b)    the top\n  c          below\n```\n"
        "<!-- layers: end -->\nmore"
    )
    assert _documented_layers(text) == ["a | (b)", "c"]
    with pytest.raises(AssertionError):
        _documented_layers("no block here")
