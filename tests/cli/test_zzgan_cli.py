"""`kedi keygen --suite paper`, hybrid key provenance, and `kedi train`."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

pytest.importorskip("torch")

from deepkedi.keys import load_key, load_key_image


def test_paper_key_takes_the_size_and_depth_of_the_image(tmp_path: Path, kedi) -> None:
    image = tmp_path / "ct.npy"
    np.save(image, np.arange(40 * 56, dtype=np.uint16).reshape(40, 56))
    key = tmp_path / "paper-key.png"
    result = kedi("keygen", "--suite", "paper", "--like", image, "--seed", "42", "-o", key)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "research only, not secure" in result.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = load_key_image(key)
    assert loaded.pixels.shape == (40, 56) and loaded.pixels.dtype == np.uint16
    assert loaded.seed == 42 and len(loaded.model_sha256 or "") == 64

    again = tmp_path / "again.png"
    assert kedi("keygen", "--suite", "paper", "--like", image, "--seed", "42", "-o", again).exit_code == 0
    assert np.array_equal(load_key_image(again).pixels, loaded.pixels)  # same model, seed, image
    assert kedi("keygen", "--suite", "paper", "--like", image, "--seed", "42", "-o", key).exit_code == 2  # exists

    # The key encrypts and decrypts the image it was made for (exact without despeckling).
    container = tmp_path / "ct.kedi"
    assert kedi("encrypt", image, "-o", container, "--suite", "paper", "--key", key).exit_code == 0
    restored = tmp_path / "restored.npy"
    assert kedi("decrypt", container, "-o", restored, "--key", key, "--no-despeckle").exit_code == 0
    assert np.load(restored).shape == (40, 56)


def test_paper_key_usage_errors(tmp_path: Path, kedi) -> None:
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((8, 8), np.uint8))
    assert kedi("keygen", "--suite", "paper", "-o", tmp_path / "k.png").exit_code == 2  # no --like
    assert kedi("keygen", "--suite", "paper", "--like", image, "-o", tmp_path / "k.json").exit_code == 2
    assert kedi("keygen", "--like", image, "-o", tmp_path / "k.key").exit_code == 2  # --like is for paper
    assert (
        kedi("keygen", "--suite", "paper", "--like", tmp_path / "missing.npy", "-o", tmp_path / "k.png").exit_code == 4
    )


def test_hybrid_keygen_records_zz_gan_provenance(tmp_path: Path, kedi) -> None:
    path = tmp_path / "site.key"
    result = kedi("keygen", "-o", path, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["sources"] == ["os-csprng", "zz-gan"]
    assert load_key(path).provenance["mix"] == "HKDF-SHA256"
    plain = tmp_path / "plain.key"
    assert kedi("keygen", "-o", plain, "--no-gan").exit_code == 0
    assert load_key(plain).provenance["sources"] == ["os-csprng"]


def test_train_tiny_preset_exports_verified_weights(tmp_path: Path, kedi, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # rich would call the captured stream a terminal
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "zz.safetensors"
    result = kedi("train", "--preset", "tiny", "--steps", "2", "-o", out, "--checkpoint", tmp_path / "ck.pt")
    assert result.exit_code == 0, result.stdout + result.stderr
    # Captured stderr is not a terminal: plain progress lines, one per step of so short a run.
    progress = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == ["1/2", "2/2"], result.stderr
    assert all(" adv " in line and " elapsed " in line and " eta " in line for line in progress)
    assert "\x1b" not in result.stderr and "\r" not in result.stderr  # no terminal control codes in a log
    assert len(result.stdout.splitlines()) == 2  # digest line and JSON line, neither cut at 80 columns
    json.loads(result.stdout.splitlines()[1])
    config = json.loads(out.with_suffix(".json").read_text())
    assert config["recipe"]["steps"] == 2 and config["recipe"]["preset"] == "tiny"
    assert set(config["metrics"]) >= {"entropy_mean", "uaci_mean"}
    assert config["sha256"] in result.stdout
    assert kedi("train", "--preset", "tiny", "-o", out).exit_code == 2  # exists
    resumed = tmp_path / "resumed.safetensors"
    result = kedi("train", "--resume", tmp_path / "ck.pt", "--steps", "3", "-o", resumed)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert [line.split()[1] for line in result.stderr.splitlines() if line.startswith("step ")] == ["3/3"]
    assert json.loads(resumed.with_suffix(".json").read_text())["recipe"]["steps"] == 3
    key = tmp_path / "k.png"
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((16, 16), np.uint8))
    assert kedi("keygen", "--suite", "paper", "--like", image, "--weights", out, "-o", key).exit_code == 0
    assert load_key_image(key).model_sha256 == config["sha256"]
    assert kedi("train", "-o", tmp_path / "w.bin").exit_code == 2


def _report(step: int, steps: int):
    from deepkedi.keygen.train import StepReport

    losses = dict.fromkeys(("adversarial", "reconstruction", "uniformity", "decorrelation", "diversity"), 0.5)
    return StepReport(step, steps, losses, 0.25)


def test_plain_progress_prints_at_each_tenth_every_interval_and_at_the_end() -> None:
    from deepkedi.cli.train import PlainProgress

    now = [100.0]
    out = io.StringIO()
    show = PlainProgress(Console(file=out, width=200), total=1000, interval=10.0, clock=lambda: now[0])
    for step in range(1, 1001):
        now[0] += 1 / 64 if step <= 500 else 1.0  # fast for the first half (8 s in all), then one second a step
        show(_report(step, 1000))
    lines = out.getvalue().splitlines()
    steps = [int(line.split()[1].split("/")[0]) for line in lines]
    # First step and every tenth while steps are fast; then every 10 s (10 steps), which includes the tenths.
    assert steps == [1, 100, 200, 300, 400, 500, *range(510, 1001, 10)]
    # The ETA follows the pace so far: 999 steps to go at 1/64 s after the first.
    assert lines[0].startswith("step 1/1000 (0%)  adv 0.500 ") and lines[0].endswith("elapsed 0:00:00  eta 0:00:16")
    assert lines[-1].startswith("step 1000/1000 (100%) ") and lines[-1].endswith("elapsed 0:08:28  eta 0:00:00")


def test_plain_progress_after_resume_times_only_this_run() -> None:
    from deepkedi.cli.train import PlainProgress

    now = [0.0]
    out = io.StringIO()
    show = PlainProgress(Console(file=out, width=200), total=10, start=8, clock=lambda: now[0])
    now[0] = 30.0
    show(_report(9, 10))  # first step of this run: 30 s a step, one to go
    assert out.getvalue().splitlines() == [
        "step 9/10 (90%)  adv 0.500 rec 0.500 uni 0.5000 dec 0.5000 div 0.5000 D 0.250  elapsed 0:00:30  eta 0:00:30"
    ]


def test_live_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepkedi.cli.train import live_progress

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TERM"):
        monkeypatch.delenv(name, raising=False)
    assert not live_progress(Console(file=io.StringIO()))  # a log file, a pipe, CI
    assert live_progress(Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot move the cursor
    assert not live_progress(Console(file=io.StringIO(), force_terminal=True))
