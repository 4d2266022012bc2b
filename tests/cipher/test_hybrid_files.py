"""File round trips across every writable format, and bounded memory on large volumes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepkedi.cipher.hybrid import decrypt_file, decrypt_image, encrypt_file
from deepkedi.imaging import MedicalImage, read_image, write_image
from deepkedi.keys import generate_key
from deepkedi.transforms.zigzag import ZigzagPattern

KEY = generate_key()

# (suffix, dtypes the format stores exactly, whether it takes more than one plane)
FORMATS = [
    (".dcm", [np.uint8, np.uint16, np.int16], True),
    (".nii", [np.uint8, np.int16, np.uint16, np.float32], True),
    (".nii.gz", [np.int16, np.float32], True),
    (".png", [np.uint8, np.uint16], False),
    (".tif", [np.uint8, np.uint16], False),
    (".npy", [np.uint8, np.int16, np.float64, np.dtype(">u2")], True),
]


@st.composite
def written_images(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    suffix, dtypes, volumes = draw(st.sampled_from(FORMATS))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (draw(st.integers(2, 4)), rows, cols) if volumes and draw(st.booleans()) else (rows, cols)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        pixels = rng.normal(0, 100, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype)
    return suffix, pixels


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=written_images(), pattern=st.sampled_from(list(ZigzagPattern)))
def test_any_written_file_round_trips_byte_exact(case, pattern, tmp_path_factory) -> None:
    suffix, pixels = case
    folder = tmp_path_factory.mktemp("files")
    src = folder / f"image{suffix}"
    write_image(MedicalImage(pixels=pixels), src)
    original = src.read_bytes()
    encrypt_file(src, folder / "c.kedi", KEY, pattern=pattern)
    decrypt_file(folder / "c.kedi", folder / f"back{suffix}", KEY)
    assert (folder / f"back{suffix}").read_bytes() == original
    assert src.read_bytes() == original
    image = decrypt_image((folder / "c.kedi").read_bytes(), KEY)
    np.testing.assert_array_equal(image.pixels, read_image(src).pixels)


PEAK_RSS = """
import sys
from deepkedi import encrypt_file, decrypt_file, load_key
key = load_key(sys.argv[1])
(encrypt_file if sys.argv[2] == "encrypt" else decrypt_file)(sys.argv[3], sys.argv[4], key)
# VmHWM is the peak of this process's own address space since exec: unlike
# getrusage's ru_maxrss it does not inherit the parent's (pytest's) footprint.
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def _peak_rss_mib(*args: str) -> float:
    run = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], capture_output=True, text=True, check=True)
    return int(run.stdout.strip()) / 1024


@pytest.mark.slow
def test_memory_stays_bounded_on_a_large_volume(tmp_path: Path) -> None:
    """A 256 MiB volume is encrypted and restored in far less memory than its size."""
    from deepkedi.keys import save_key

    src = tmp_path / "big.npy"
    volume = np.lib.format.open_memmap(src, mode="w+", dtype=np.int16, shape=(512, 512, 512))
    volume[::7] = 1234
    volume.flush()
    del volume
    save_key(KEY, tmp_path / "k.key")
    enc = _peak_rss_mib(str(tmp_path / "k.key"), "encrypt", str(src), str(tmp_path / "big.kedi"))
    dec = _peak_rss_mib(str(tmp_path / "k.key"), "decrypt", str(tmp_path / "big.kedi"), str(tmp_path / "back.npy"))
    assert enc < 128 and dec < 128, (enc, dec)  # the volume alone is 256 MiB
    with open(src, "rb") as a, open(tmp_path / "back.npy", "rb") as b:
        while chunk := a.read(1 << 24):
            assert chunk == b.read(1 << 24)


def test_many_batches_hash_on_a_second_thread_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past one batch, SHA-256 runs on a second thread for encryption and decryption: the
    digest must still cover every byte in file order (a wrong order fails the restore)."""
    import concurrent.futures

    from deepkedi.cipher import hybrid

    pixels = np.random.default_rng(7).integers(0, 2**16, (9, 64, 48), dtype=np.uint16)
    src = tmp_path / "volume.npy"
    np.save(src, pixels)
    monkeypatch.setattr(hybrid, "BATCH_BYTES", 64 * 48 * 2)  # one plane a batch: 9 batches
    submitted: list[int] = []
    real_submit = concurrent.futures.ThreadPoolExecutor.submit

    def counting_submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        submitted.append(len(memoryview(args[0]).cast("B")))
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", counting_submit)
    hybrid.encrypt_file(src, tmp_path / "v.kedi", KEY)
    assert submitted == [64 * 48 * 2] * 9
    submitted.clear()
    hybrid.decrypt_file(tmp_path / "v.kedi", tmp_path / "back.npy", KEY)
    assert len(submitted) == 9
    assert (tmp_path / "back.npy").read_bytes() == src.read_bytes()
