"""Input files: FIFOs, devices and folders are refused before anything blocks on them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deepkedi import inputs
from deepkedi.errors import FormatError, KeyFileError, UnsupportedImageError
from deepkedi.inputs import check_regular_input, open_input


def test_regular_files_and_links_to_them_pass(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    (tmp_path / "link").symlink_to(path)
    assert check_regular_input(path) == path
    assert check_regular_input(str(tmp_path / "link")) == tmp_path / "link"
    with open_input(tmp_path / "link") as fh:
        assert fh.read() == b"abc"


@pytest.mark.parametrize("error", [UnsupportedImageError, FormatError, KeyFileError])
def test_fifo_is_refused_with_the_callers_error(fifo: Path, error: type) -> None:
    with pytest.raises(error, match=r"pipe: is a FIFO \(named pipe\), not a regular file"):
        check_regular_input(fifo, error=error)
    with pytest.raises(error, match="FIFO"):
        open_input(fifo, error=error)


def test_devices_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedImageError, match="/dev/urandom: is a character device, not a regular file"):
        check_regular_input("/dev/urandom")
    with pytest.raises(UnsupportedImageError, match=r"is a directory, not a regular file$"):
        open_input(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    with pytest.raises(FileNotFoundError):
        check_regular_input(tmp_path / "dangling")
    with pytest.raises(FileNotFoundError):
        open_input(tmp_path / "absent")


def test_open_input_checks_the_open_descriptor_too(fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A FIFO that replaces the file after the path was checked: the non-blocking open
    # returns at once and fstat refuses it (a blocking open would wait for a writer).
    monkeypatch.setattr(inputs, "check_regular_input", lambda path, error: Path(path))
    start = time.monotonic()
    with pytest.raises(FormatError, match="FIFO"):
        open_input(fifo, error=FormatError)
    assert time.monotonic() - start < 5


def test_file_sha256_reads_past_one_chunk(tmp_path: Path) -> None:
    import hashlib

    from deepkedi.inputs import file_sha256

    data = bytes(range(256)) * ((3 << 20) // 256 + 7)  # over three 1 MiB reads, ending mid-chunk
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()
