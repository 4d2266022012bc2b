"""`kedi metrics` and `kedi nist`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepkedi.metrics.nist import TEST_NAMES


def _container(tmp_path: Path, kedi, keyfile: Path, name: str) -> Path:
    src = tmp_path / f"{name}.npy"
    if not src.exists():
        yy, xx = np.mgrid[0:256, 0:256]
        np.save(src, ((xx + yy) % 256).astype(np.uint8))
    out = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.kedi"
    assert kedi("encrypt", src, "-o", out, "--key", keyfile).exit_code == 0
    return out


def test_metrics_of_an_image_and_of_a_cipher_image(tmp_path: Path, kedi, keyfile: Path) -> None:
    a = _container(tmp_path, kedi, keyfile, "ramp")
    b = _container(tmp_path, kedi, keyfile, "ramp")
    result = kedi("metrics", a, "--against", b, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["what"] == "cipher image of a container" and record["bits"] == 8
    assert record["entropy"]["value"] > 7.99
    assert abs(record["correlation"]["horizontal"]["coefficient"]) < 0.02
    assert record["against"]["npcr"]["value"] > 99.4  # independent encryptions: fresh salts
    assert 33.0 < record["against"]["uaci"]["value"] < 34.0
    plain = json.loads(kedi("metrics", tmp_path / "ramp.npy", "--json").stdout)
    assert plain["entropy"]["value"] == 8.0  # the ramp's histogram is flat
    assert plain["correlation"]["horizontal"]["coefficient"] > 0.9
    same = json.loads(kedi("metrics", tmp_path / "ramp.npy", "--against", tmp_path / "ramp.npy", "--json").stdout)
    assert same["against"]["npcr"]["value"] == 0 and same["against"]["quality"]["psnr"] == "inf"
    assert same["against"]["quality"]["ssim"] == 1.0
    table = kedi("metrics", a)
    assert table.exit_code == 0 and "local entropy" in table.stdout


def test_metrics_ssim_of_colour_images_is_per_channel(tmp_path: Path, kedi) -> None:
    """RGB PNGs: SSIM as scikit-image's channel_axis gives it, not over a 3-deep volume."""
    from PIL import Image
    from skimage import data
    from skimage.metrics import structural_similarity

    clean = data.astronaut()[:160, :200]
    noisy = np.clip(clean + np.random.default_rng(5).normal(0, 30, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    result = kedi("metrics", tmp_path / "clean.png", "--against", tmp_path / "noisy.png", "--json")
    assert result.exit_code == 0, result.stderr
    expected = structural_similarity(clean, noisy, data_range=255, channel_axis=-1)
    assert json.loads(result.stdout)["against"]["quality"]["ssim"] == pytest.approx(expected, abs=1e-9)
    Image.fromarray(clean[..., 0]).save(tmp_path / "grey.png")
    mixed = kedi("metrics", tmp_path / "clean.png", "--against", tmp_path / "grey.png")
    assert mixed.exit_code == 2 and "Traceback" not in mixed.stderr


def test_metrics_refuses_mismatched_shapes_and_bad_files(tmp_path: Path, kedi) -> None:
    np.save(tmp_path / "a.npy", np.zeros((8, 8), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((8, 9), np.uint8))
    assert kedi("metrics", tmp_path / "a.npy", "--against", tmp_path / "b.npy").exit_code == 2
    (tmp_path / "x.dcm").write_bytes(os.urandom(300))
    result = kedi("metrics", tmp_path / "x.dcm")
    assert result.exit_code == 4 and "Traceback" not in result.stderr


def test_nist_json_keys_and_table(tmp_path: Path, kedi) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(np.random.default_rng(11).integers(0, 256, 125_000, dtype=np.uint8).tobytes())
    result = kedi("nist", path, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["bits"] == 1_000_000
    assert all(name in record for name in TEST_NAMES)
    assert isinstance(record["frequency"], float) and len(record["serial"]) == 2
    assert len(record["non_overlapping_template"]) == 148
    short = kedi("nist", path, "--bits", "1000", "--json")
    assert short.exit_code == 0
    assert json.loads(short.stdout)["universal"] is None  # needs 387 840 bits
    assert "frequency" in kedi("nist", path, "--bits", "20000").stdout


def _peak_rss(args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run `kedi` in a fresh interpreter that reports the peak resident size of its own child."""
    probe = (
        "import resource, subprocess, sys, json;"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300);"
        "print(json.dumps([r.returncode, r.stdout, r.stderr,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "deepkedi.cli", *args],
        capture_output=True,
        check=True,
        text=True,
        timeout=360,
    )
    code, out, err, rss = json.loads(run.stdout)
    return subprocess.CompletedProcess(args, code, out, err), rss


def test_nist_reads_at_most_the_bits_it_tests(tmp_path: Path) -> None:
    # An 8 MB file used to be tested whole: 2.2 GB resident and two minutes. Only the first
    # 10⁶ bits (125 000 bytes) are read now, so the process stays near its size on a tiny file.
    tiny, big = tmp_path / "tiny.bin", tmp_path / "big.bin"
    rng = np.random.default_rng(3)
    tiny.write_bytes(rng.integers(0, 256, 1_000, dtype=np.uint8).tobytes())
    big.write_bytes(rng.integers(0, 256, 8_000_000, dtype=np.uint8).tobytes())
    small, baseline = _peak_rss(["nist", str(tiny), "--json"])
    assert small.returncode == 0 and json.loads(small.stdout)["bits"] == 8_000  # a shorter file: all of it
    result, peak = _peak_rss(["nist", str(big), "--json"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bits"] == 1_000_000
    assert peak - baseline < 96 << 20, f"{(peak - baseline) >> 20} MiB above the baseline of {baseline >> 20} MiB"


def test_nist_bits_option_limits(tmp_path: Path, kedi) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(np.random.default_rng(4).integers(0, 256, 4_000, dtype=np.uint8).tobytes())
    assert json.loads(kedi("nist", path, "--bits", "1001", "--json").stdout)["bits"] == 1001
    assert json.loads(kedi("nist", path, "--bits", "1000000", "--json").stdout)["bits"] == 32_000
    for bad in ("0", "10000001"):
        assert kedi("nist", path, "--bits", bad).exit_code == 2
    assert "10,000,000" in kedi("nist", "--help").stdout  # the maximum is documented


def test_metrics_table_with_a_tiny_alpha_shows_infinite_critical_values(tmp_path: Path, kedi) -> None:
    """α = 1e-320 is in (0, 1) but puts the critical values at ±∞, which records write as strings."""
    yy, xx = np.mgrid[0:96, 0:96]
    np.save(tmp_path / "ramp.npy", ((xx + yy) % 256).astype(np.uint8))
    result = kedi("metrics", tmp_path / "ramp.npy", "--against", tmp_path / "ramp.npy", "--alpha", "1e-320")
    assert result.exit_code == 0, result.stderr
    assert "inf" in result.stdout


def test_metrics_ssim_of_two_plane_stacks_is_the_mean_of_the_planes(tmp_path: Path, kedi) -> None:
    """SSIM's 3-D window needs 3 planes: a 2-plane stack is scored plane by plane, colour per channel."""
    import pydicom.data
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 40, 50), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    result = kedi("metrics", tmp_path / "a.npy", "--against", tmp_path / "b.npy", "--json")
    assert result.exit_code == 0, result.stderr
    expected = np.mean([structural_similarity(x, y, data_range=255) for x, y in zip(a, b, strict=True)])
    quality = json.loads(result.stdout)["against"]["quality"]
    assert quality["ssim"] == pytest.approx(expected, abs=1e-9)
    assert quality["mse"] == pytest.approx(float(np.mean((a.astype(float) - b) ** 2)))
    two_frames = pydicom.data.get_testdata_file("SC_rgb_rle_2frame.dcm")  # 2 frames of 100² RGB
    same = kedi("metrics", two_frames, "--against", two_frames, "--json")
    assert same.exit_code == 0, same.stderr
    assert json.loads(same.stdout)["against"]["quality"]["ssim"] == 1.0
