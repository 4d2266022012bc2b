"""Every command that needs an extra ends, without it, in one line that names the extra (exit code 2).

The missing package is simulated with ``sys.modules[name] = None`` (the import system then
raises ``ModuleNotFoundError`` for it), never by uninstalling anything; ``make wheel-check``
runs the same commands in a real environment without the extras.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from deepkedi.cli._common import EXIT_USAGE, exit_code_for
from deepkedi.errors import MissingExtraError


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "slice.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (48, 40), dtype=np.uint8))
    return path


def _one_line_naming(result, extra: str) -> str:
    assert result.exit_code == EXIT_USAGE, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kedi: error: ") and f"pip install 'deepkedi[{extra}]'" in lines[0], lines[0]
    return lines[0]


def test_the_error_is_a_usage_exit_code() -> None:
    assert exit_code_for(MissingExtraError("torch", "gan", feature="x")) == EXIT_USAGE


@pytest.mark.parametrize("missing", ["torch", "safetensors"])
def test_paper_key_images_need_the_gan_extra(
    tmp_path: Path, kedi, image: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    _without(monkeypatch, missing)
    out = tmp_path / "key.png"
    line = _one_line_naming(kedi("keygen", "--suite", "paper", "--like", image, "-o", out), "gan")
    assert "--suite paper" in line
    assert not out.exists()


def test_train_needs_the_gan_extra(tmp_path: Path, kedi, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch")
    out = tmp_path / "w.safetensors"
    assert "kedi train needs PyTorch" in _one_line_naming(kedi("train", "--preset", "tiny", "-o", out), "gan")
    assert not out.exists()


def test_reproduce_needs_the_report_extra_before_it_starts(tmp_path: Path, kedi, monkeypatch) -> None:
    _without(monkeypatch, "matplotlib")
    out = tmp_path / "report"
    assert "matplotlib" in _one_line_naming(kedi("reproduce", "--quick", "--out", out), "report")
    assert not out.exists()


def test_a_postgresql_keystore_needs_the_postgres_extra(kedi, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "psycopg")
    result = kedi("keys", "list", "--keystore", "postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
    line = _one_line_naming(result, "postgres")
    assert "secret" not in line


@pytest.mark.parametrize(
    ("url", "says"),
    [("nosuchdb://x", "not a database SQLAlchemy knows"), ("mysql://u:secret@127.0.0.1:9/x", "driver")],
)
def test_other_keystore_urls_fail_in_one_line(kedi, url: str, says: str) -> None:
    result = kedi("keys", "list", "--keystore", url)
    assert result.exit_code == EXIT_USAGE, result.stderr
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr
    assert "secret" not in result.stderr


def test_keygen_without_the_gan_extra_falls_back_with_a_note(tmp_path: Path, kedi, monkeypatch) -> None:
    _without(monkeypatch, "torch")
    result = kedi("keygen", "-o", tmp_path / "site.key", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sources"] == ["os-csprng"]
    assert result.stderr.startswith("note: ZZ-GAN key material not mixed in") and "deepkedi[gan]" in result.stderr
    quiet = kedi("keygen", "--no-gan", "-o", tmp_path / "other.key")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_the_demo_skips_its_zz_gan_part_and_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepkedi.cli._demo_tour import _paper_tour

    _without(monkeypatch, "torch")
    assert _paper_tour(tmp_path) == 0
    # The name of the extra survives rich's markup (it once printed "deepkedi" without "[gan]").
    assert "pip install 'deepkedi[gan]'" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert list(tmp_path.iterdir()) == []
