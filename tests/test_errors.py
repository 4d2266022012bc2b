"""``require_extra``: the one way an optional dependency is imported, and the error it ends in.

A missing module is simulated with ``sys.modules[name] = None`` (the import system then
raises ``ModuleNotFoundError`` for it), never by uninstalling anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deepkedi.errors import DeepKediError, MissingExtraError, require_extra


def test_an_installed_module_is_returned() -> None:
    import json

    assert require_extra("json", "none", feature="JSON") is json


def test_a_missing_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError) as caught:
        require_extra("matplotlib", "report", feature="the report's figures")
    error = caught.value
    assert str(error) == "the report's figures needs matplotlib: pip install 'deepkedi[report]'"
    assert (error.module, error.extra, error.feature) == ("matplotlib", "report", "the report's figures")
    # Callers that guard optional imports the usual way, and the CLI's guard, both catch it.
    assert isinstance(error, ImportError) and isinstance(error, DeepKediError)
    assert "\n" not in str(error)


def test_pytorch_comes_with_the_cpu_build_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"needs PyTorch: pip install 'deepkedi\[gan\]' \(.*CPU build"):
        require_extra("torch", "gan", feature="the ZZ-GAN")


def test_a_missing_submodule_of_the_extra_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another test may have imported psycopg for real: its cached submodules would answer the import.
    for name in [name for name in sys.modules if name.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"deepkedi\[postgres\]"):
        require_extra("psycopg.pq", "postgres", feature="a PostgreSQL keystore")


def test_a_broken_installed_module_is_not_reported_as_a_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module is there, but one of its own imports fails: installing the extra again would not help,
    # so the real ImportError comes through, naming the module that is really missing.
    package = tmp_path / "half_installed_extra"
    package.mkdir()
    (package / "__init__.py").write_text("import a_dependency_that_is_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        require_extra("half_installed_extra", "report", feature="figures")
    assert not isinstance(caught.value, MissingExtraError)
    assert caught.value.name == "a_dependency_that_is_not_there"
