"""`--max-decoded-size` / KEDI_MAX_DECODED: every command that decodes images refuses a bomb with exit 4."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import deepkedi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "imaging"))
import _bombs

MiB = 1 << 20
#: The deepkedi under test, for the subprocesses.
SRC = Path(deepkedi.__file__).resolve().parents[1]


def _one_error_line(result, path: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kedi: error: {path}: would decode to "), lines[0]
    assert "--max-decoded-size" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    """A 4 KiB-voxel .nii.gz whose header claims 128 MiB."""
    return _bombs.nifti_gz(tmp_path / "bomb.nii.gz", (1024, 1024, 64), stored=4096)


@pytest.fixture
def dicom_bomb(tmp_path: Path) -> Path:
    """A deflated DICOM of 1 MiB whose data set inflates to 128 MiB."""
    return _bombs.deflated_dicom(tmp_path / "bomb.dcm", rows=4096, cols=4096, frames=4)


@pytest.mark.parametrize(
    "command",
    [
        ["inspect"],
        ["inspect", "--json"],
        ["metrics"],
        ["nist"],
        ["speckle", "-o", "{out}/speckled.npy"],
        ["despeckle", "-o", "{out}/clean.npy"],
        ["encrypt", "-o", "{out}/bomb.kedi", "--key", "{key}"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_every_decoding_command_refuses_with_exit_4_and_writes_nothing(
    tmp_path: Path, kedi, keyfile: Path, bomb: Path, command: list[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(out=out, key=keyfile) for a in command]
    result = kedi(args[0], bomb, *args[1:], "--max-decoded-size", "64M")
    assert result.exit_code == 4, result.stdout + result.stderr
    _one_error_line(result, bomb)
    assert "the limit is 64 MiB" in result.stderr
    assert list(out.iterdir()) == []


def test_encrypt_as_dicom_refuses_a_deflated_bomb(tmp_path: Path, kedi, keyfile: Path, dicom_bomb: Path) -> None:
    out = tmp_path / "out.dcm"
    result = kedi("encrypt", dicom_bomb, "-o", out, "--key", keyfile, "--as-dicom", "--max-decoded-size", "64M")
    assert result.exit_code == 4, result.stdout + result.stderr
    _one_error_line(result, dicom_bomb)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [keyfile.name, dicom_bomb.name]


def test_encrypt_folder_refuses_the_bomb_and_encrypts_the_rest(tmp_path: Path, kedi, keyfile: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    bomb = _bombs.nifti_gz(data / "bomb.nii.gz", (1024, 1024, 64), stored=4096)
    _bombs.nifti_gz(data / "ok.nii.gz", (64, 64, 8))
    result = kedi("encrypt", data, "-o", out, "--key", keyfile, "--max-decoded-size", "64M")
    assert result.exit_code == 4, result.stdout + result.stderr
    _one_error_line(result, bomb)
    # The refused file left nothing; the run's manifest (docs/SCALE.md) records why.
    assert sorted(p.name for p in out.iterdir()) == [".kedi-manifest.sqlite", "ok.nii.gz.kedi"]


def test_reproduce_skips_the_bomb(tmp_path: Path, kedi, bomb: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bomb.rename(data / bomb.name)
    result = kedi("reproduce", "--data", data, "--out", tmp_path / "report", "--quick", "--max-decoded-size", "64M")
    # The only file is refused, so nothing is left to reproduce on.
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.strip() == f"kedi: error: no readable images under {data}"


def test_keygen_like_refuses_the_bomb(tmp_path: Path, kedi, bomb: Path) -> None:
    pytest.importorskip("torch")  # paper key images come from the ZZ-GAN (an optional extra)
    out = tmp_path / "key.png"
    result = kedi("keygen", "--suite", "paper", "--like", bomb, "-o", out, "--max-decoded-size", "64M")
    assert result.exit_code == 4, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"kedi: error: {bomb}: would decode to ")
    assert not out.exists()


def test_the_environment_sets_the_limit_and_the_option_overrides_it(tmp_path: Path, kedi) -> None:
    image = _bombs.nifti_gz(tmp_path / "ok.nii.gz", (64, 64, 8))  # 64 KiB of voxels
    refused = kedi("inspect", image, env={"KEDI_MAX_DECODED": "16K"})
    assert refused.exit_code == 4
    _one_error_line(refused, image)
    assert "the limit is 16 KiB" in refused.stderr
    allowed = kedi("inspect", image, "--max-decoded-size", "1M", env={"KEDI_MAX_DECODED": "16K"})
    assert allowed.exit_code == 0, allowed.stderr


@pytest.mark.parametrize("size", ["lots", "0", "-4G", "4X"])
def test_a_size_that_is_not_one_is_a_usage_error(tmp_path: Path, kedi, size: str) -> None:
    image = _bombs.nifti_gz(tmp_path / "ok.nii.gz", (64, 64, 8))
    result = kedi("inspect", image, "--max-decoded-size", size)
    assert result.exit_code == 2
    # Click's usage error, whatever box rich draws around it.
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())
    assert "Invalid value for '--max-decoded-size'" in text, result.stderr


def _peak_rss(*args: object) -> tuple[int, int, str]:
    """Exit status, peak RSS in bytes and stderr of `kedi ARGS` in a process of its own."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.pop("KEDI_MAX_DECODED", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "deepkedi.cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = process.stderr.read().decode()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.stderr.close()  # type: ignore[union-attr]
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, stderr


@pytest.mark.parametrize("kind", ["nifti_gz", "deflated_dicom"])
def test_default_limit_keeps_a_small_bomb_from_taking_memory(tmp_path: Path, kind: str) -> None:
    # About 1.5 MB on disk, 384 MiB decoded: past the default's 256 MiB floor for small files.
    if kind == "nifti_gz":
        bomb = _bombs.nifti_gz(tmp_path / "bomb.nii.gz", (1024, 1024, 192))
        small = _bombs.nifti_gz(tmp_path / "small.nii.gz", (64, 64, 8))
    else:
        bomb = _bombs.deflated_dicom(tmp_path / "bomb.dcm", rows=8192, cols=8192, frames=3)
        small = _bombs.deflated_dicom(tmp_path / "small.dcm", rows=64, cols=64)
    assert bomb.stat().st_size < 2 * MiB
    status, baseline, _ = _peak_rss("inspect", small)
    assert status == 0
    status, peak, stderr = _peak_rss("inspect", bomb)
    assert status == 4, stderr
    assert len(stderr.strip().splitlines()) == 1 and "the default limit is 256 MiB" in stderr
    # The old reader held the 384 MiB volume (twice over for a deflated DICOM).
    assert peak < baseline + 64 * MiB, f"peak {peak / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"


def test_metrics_stays_under_1_gib_on_a_compressed_input_under_10_mb() -> None:
    """`kedi metrics` needs several times the decoded size: its default limit keeps it under 1 GiB.

    A .nii.gz under 10 MB decoding to the default policy's 256 MiB once took 1.7 GiB;
    it is now refused at once, and one just under the command's own limit fits.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        big = _bombs.nifti_gz(Path(folder) / "big.nii.gz", (512, 512, 511))  # 255.5 MiB
        near = _bombs.nifti_gz(Path(folder) / "near.nii.gz", (512, 512, 380))  # 190 MiB
        assert big.stat().st_size < 10_000_000
        status, peak, stderr = _peak_rss("metrics", big, "--json")
        assert status == 4, stderr
        assert len(stderr.strip().splitlines()) == 1 and "the default limit here is 192 MiB" in stderr
        assert "--max-decoded-size" in stderr
        assert peak < 1 << 30, f"peak {peak / MiB:.0f} MiB"
        status, peak, stderr = _peak_rss("metrics", near, "--json")
        assert status == 0, stderr
        assert peak < 1 << 30, f"peak {peak / MiB:.0f} MiB"
