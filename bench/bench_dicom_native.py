"""Time DICOM-native encryption and decryption against the plain hybrid container, file by file.

For every DICOM file of the sample corpus (and a 512² lung CT phantom), times
``encrypt_dicom_native`` / ``decrypt_dicom_native`` and, in the same run on the same
file, ``encrypt_file`` / ``decrypt_file`` (the container alone), median of
``--repeat`` runs each, and prints both with their ratio: what the de-identification,
the cipher-image Pixel Data and the DICOM rewrite cost on top of encryption.

With ``--frames N`` it then builds a multi-frame DICOM of N frames of 512² uint16
(bench_large.py's builder) and runs ``kedi encrypt --as-dicom`` and ``kedi decrypt`` on
it as separate processes, reporting wall time and peak resident memory of each beside
plain ``kedi encrypt`` of the same file: DICOM-native files stream their Pixel Data, so
memory must not grow with the file.

Run with ``python bench/bench_dicom_native.py [--repeat R] [--frames N]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
from pathlib import Path

from _timing import round_robin_medians
from deepkedi.cipher.dicom_native import decrypt_dicom_native, encrypt_dicom_native
from deepkedi.cipher.hybrid import decrypt_file, encrypt_file
from deepkedi.datasets import phantom, sample_corpus
from deepkedi.imaging import read_image, write_image
from deepkedi.keys import generate_key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--frames", type=int, default=0, help="also time a multi-frame file of N 512² frames")
    args = parser.parse_args()
    key = generate_key(gan=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [(s.name, s.path) for s in sample_corpus() if read_image(s.path).format == "dicom"]
        lung = folder / "phantom-lung-ct.dcm"
        write_image(phantom("lung", "CT", seed=7), lung)
        files.append(("phantom-lung-ct.dcm (512²)", lung))
        print(f"median of {args.repeat} runs, ms; ratio = DICOM-native / container")
        print(
            f"{'file':34s} {'KiB':>6s} {'enc native':>11s} {'enc container':>14s} {'ratio':>6s} "
            f"{'dec native':>11s} {'dec container':>14s} {'ratio':>6s}"
        )
        ratios = []
        for name, path in files:
            native, container = folder / "native.dcm", folder / "file.kedi"
            back_native, back_container = folder / "back-native.dcm", folder / "back-container.dcm"
            # Round-robin, in this order: each decryption reads what the encryption before it wrote.
            medians = round_robin_medians(
                {
                    "enc_n": functools.partial(encrypt_dicom_native, path, native, key, force=True),
                    "enc_c": functools.partial(encrypt_file, path, container, key, force=True),
                    "dec_n": functools.partial(decrypt_dicom_native, native, back_native, key, force=True),
                    "dec_c": functools.partial(decrypt_file, container, back_container, key, force=True),
                },
                args.repeat,
                warmup=1,
            )
            enc_n, enc_c, dec_n, dec_c = (1e3 * medians[k] for k in ("enc_n", "enc_c", "dec_n", "dec_c"))
            assert back_native.read_bytes() == back_container.read_bytes() == Path(path).read_bytes()
            ratios += [enc_n / enc_c, dec_n / dec_c]
            print(
                f"{name[:34]:34s} {Path(path).stat().st_size / 1024:6.0f} {enc_n:11.1f} {enc_c:14.1f} "
                f"{enc_n / enc_c:6.2f} {dec_n:11.1f} {dec_c:14.1f} {dec_n / dec_c:6.2f}"
            )
        print(f"median ratio over files and directions: {statistics.median(ratios):.2f}")
        if args.frames:
            _large(folder, args.frames)
    return 0


def _large(folder: Path, frames: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_large import KEDI, run, sha256

    from deepkedi.keys import save_key

    source, keyfile = folder / "multiframe.dcm", folder / "bench.key"
    # Built in a child process: a child forked from this one would count this one's memory as its own.
    run([sys.executable, str(Path(__file__).parent / "bench_large.py"), "--make", "dicom", str(source), str(frames)])
    save_key(generate_key(gan=False), keyfile)
    size = source.stat().st_size / 2**20
    print(f"\nmulti-frame DICOM, {frames} frames of 512² uint16, {size:.0f} MiB: wall s, peak RSS MiB")
    steps = [
        ("encrypt --as-dicom", ["encrypt", source, "-o", folder / "large-native.dcm", "--as-dicom"]),
        ("decrypt (DICOM-native)", ["decrypt", folder / "large-native.dcm", "-o", folder / "large-back.dcm"]),
        ("encrypt (container)", ["encrypt", source, "-o", folder / "large.kedi"]),
    ]
    for label, arguments in steps:
        wall, peak = run(KEDI + [str(a) for a in arguments] + ["--key", str(keyfile)])
        print(f"  {label:24s} {wall:6.2f} s  {peak:7.0f} MiB")
    print(f"  restored byte-identical: {sha256(folder / 'large-back.dcm') == sha256(source)}")


if __name__ == "__main__":
    sys.exit(main())
