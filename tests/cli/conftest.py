from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepkedi.cli import app


class Kedi:
    """Runs `kedi` in-process and returns Click's result (exit_code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: object, env: dict[str, str] | None = None):
        return self.runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def kedi() -> Kedi:
    return Kedi()


@pytest.fixture
def keyfile(tmp_path: Path, kedi: Kedi) -> Path:
    path = tmp_path / "site.key"
    result = kedi("keygen", "-o", path)
    assert result.exit_code == 0, result.stderr
    return path
