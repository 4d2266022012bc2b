"""`kedi inspect`, `kedi keygen` and `kedi demo`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
from PIL import Image


def test_keygen_refuses_overwrite_and_prints_json(tmp_path: Path, kedi) -> None:
    path = tmp_path / "k.key"
    result = kedi("keygen", "-o", path, "--json")
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    doc = json.loads(path.read_text())
    assert record["key_id"] == doc["key_id"]
    assert doc["secret"] not in result.stdout + result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    result = kedi("keygen", "-o", path)
    assert result.exit_code == 2 and path.read_bytes() == before


def test_inspect_container_json_and_cipher_images(tmp_path: Path, kedi, keyfile: Path) -> None:
    src = tmp_path / "ct.npy"
    np.save(src, np.random.default_rng(0).integers(-1000, 2000, (2, 64, 48), dtype=np.int16))
    container = tmp_path / "ct.kedi"
    assert kedi("encrypt", src, "-o", container, "--key", keyfile, "--pattern", "diagonal").exit_code == 0
    result = kedi("inspect", container, "--json", "--cipher-image", tmp_path / "c.npy")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    key_doc = json.loads(keyfile.read_text())
    assert record["key_id"] == key_doc["key_id"] and record["pattern"] == "diagonal"
    assert record["shape"] == [2, 64, 48] and record["dtype"] == "<i2" and record["format"] == "npy"
    assert record["size_matches_header"] is True
    assert key_doc["secret"] not in result.stdout
    cipher = np.load(tmp_path / "c.npy")
    assert cipher.shape == (2, 64, 48)
    result = kedi("inspect", container, "--cipher-image", tmp_path / "c.png")
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "c.png").size == (48, 64)
    assert kedi("inspect", container, "--cipher-image", tmp_path / "c.jpg").exit_code == 2


def test_inspect_image_file(tmp_path: Path, kedi) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.zeros((3, 4), np.uint8))
    result = kedi("inspect", src, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["kind"] == "image"
    (tmp_path / "junk").write_bytes(b"\x00junk" * 30)
    assert kedi("inspect", tmp_path / "junk").exit_code == 4


def test_demo_runs_end_to_end(tmp_path: Path, kedi) -> None:
    out = tmp_path / "demo"
    result = kedi("demo", "--out", out)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all restorations byte-identical" in result.stdout
    # Every sample (the corpus and the CT phantom) is shown beside its cipher image, and the output says so.
    from deepkedi.cli._demo_tour import cipher_montage
    from deepkedi.datasets import sample_corpus

    samples = len(sample_corpus()) + 1
    assert f"all {samples} samples beside their cipher images" in " ".join(result.stdout.split())
    every_pair = cipher_montage([("name\nlabel", np.zeros((4, 4), np.uint8))] * (2 * samples))
    with Image.open(out / "cipher_images.png") as figure:
        assert figure.size == every_pair.size  # rows for all 2 × samples tiles, not 16 of them
    assert (out / "speckle.png").exists()
    from deepkedi.keygen import torch_available

    if torch_available():
        assert (out / "paper_suite.png").exists() and (out / "paper-key.png").exists()
        assert "research only, not secure" in result.stderr
    assert "restored uint16 array identical to the original" in result.stdout
    assert not (out / "should-not-exist").exists()
    assert kedi("demo", "--out", out).exit_code == 2  # not empty, no --force


def test_inspect_damaged_or_truncated_container_exits_3(tmp_path: Path, kedi, keyfile: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.zeros((8, 8), np.uint8))
    container = tmp_path / "a.kedi"
    assert kedi("encrypt", src, "-o", container, "--key", keyfile).exit_code == 0
    data = container.read_bytes()
    bad = tmp_path / "bad.kedi"
    bad.write_bytes(data[:8] + b"\x07" + data[9:])  # unknown version
    result = kedi("inspect", bad)
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    bad.write_bytes(data[:-1])
    result = kedi("inspect", bad, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["size_matches_header"] is False
    result = kedi("inspect", bad, "--cipher-image", tmp_path / "c.npy")
    assert result.exit_code == 3 and not (tmp_path / "c.npy").exists()
