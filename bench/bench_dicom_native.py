"""Time DICOM-native encryption and decryption against the plain hybrid container, file by file.

For every DICOM file of the sample corpus (and a 512² lung CT phantom), times
``encrypt_dicom_native`` / ``decrypt_dicom_native`` and, in the same run on the same
file, ``encrypt_file`` / ``decrypt_file`` (the container alone), median of
``--repeat`` runs each, and prints both with their ratio: what the de-identification,
the cipher-image Pixel Data and the DICOM rewrite cost on top of encryption.

Run with ``python bench/bench_dicom_native.py [--repeat R]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from deepkedi.cipher.dicom_native import decrypt_dicom_native, encrypt_dicom_native
from deepkedi.cipher.hybrid import decrypt_file, encrypt_file
from deepkedi.datasets import phantom, sample_corpus
from deepkedi.imaging import read_image, write_image
from deepkedi.keys import generate_key


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    key = generate_key(gan=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [(s.name, s.path) for s in sample_corpus() if read_image(s.path).format == "dicom"]
        lung = folder / "phantom-lung-ct.dcm"
        write_image(phantom("lung", "CT", seed=7), lung)
        files.append(("phantom-lung-ct.dcm (512²)", lung))
        print(f"median of {args.repeat} runs, ms; ratio = DICOM-native / container")
        print(f"{'file':34s} {'KiB':>6s} {'enc native':>11s} {'enc container':>14s} {'ratio':>6s} "
              f"{'dec native':>11s} {'dec container':>14s} {'ratio':>6s}")
        ratios = []
        for name, path in files:
            native, container = folder / "native.dcm", folder / "file.kedi"
            back_native, back_container = folder / "back-native.dcm", folder / "back-container.dcm"
            enc_n = _median_ms(lambda: encrypt_dicom_native(path, native, key, force=True), args.repeat)
            enc_c = _median_ms(lambda: encrypt_file(path, container, key, force=True), args.repeat)
            dec_n = _median_ms(lambda: decrypt_dicom_native(native, back_native, key, force=True), args.repeat)
            dec_c = _median_ms(lambda: decrypt_file(container, back_container, key, force=True), args.repeat)
            assert back_native.read_bytes() == back_container.read_bytes() == Path(path).read_bytes()
            ratios += [enc_n / enc_c, dec_n / dec_c]
            print(f"{name[:34]:34s} {Path(path).stat().st_size / 1024:6.0f} {enc_n:11.1f} {enc_c:14.1f} "
                  f"{enc_n / enc_c:6.2f} {dec_n:11.1f} {dec_c:14.1f} {dec_n / dec_c:6.2f}")
        print(f"median ratio over files and directions: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
