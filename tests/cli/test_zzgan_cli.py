"""`kedi keygen --suite paper`, hybrid key provenance, and `kedi train`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

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


def test_train_tiny_preset_exports_verified_weights(tmp_path: Path, kedi) -> None:
    out = tmp_path / "zz.safetensors"
    result = kedi("train", "--preset", "tiny", "--steps", "2", "-o", out, "--checkpoint", tmp_path / "ck.pt")
    assert result.exit_code == 0, result.stdout + result.stderr
    config = json.loads(out.with_suffix(".json").read_text())
    assert config["recipe"]["steps"] == 2 and config["recipe"]["preset"] == "tiny"
    assert set(config["metrics"]) >= {"entropy_mean", "uaci_mean"}
    assert config["sha256"] in result.stdout
    assert kedi("train", "--preset", "tiny", "-o", out).exit_code == 2  # exists
    resumed = tmp_path / "resumed.safetensors"
    result = kedi("train", "--resume", tmp_path / "ck.pt", "--steps", "3", "-o", resumed)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(resumed.with_suffix(".json").read_text())["recipe"]["steps"] == 3
    key = tmp_path / "k.png"
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((16, 16), np.uint8))
    assert kedi("keygen", "--suite", "paper", "--like", image, "--weights", out, "-o", key).exit_code == 0
    assert load_key_image(key).model_sha256 == config["sha256"]
    assert kedi("train", "-o", tmp_path / "w.bin").exit_code == 2
