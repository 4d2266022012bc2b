"""Whole-file CLI time and peak memory on 1 GiB uncompressed volumes.

Builds a 1 GiB NIfTI-1 volume (2048 × 512 × 512 int16) and a 1 GiB multi-frame
DICOM (2048 frames of 512 × 512 uint16) in a scratch folder, then runs
``kedi encrypt`` and ``kedi decrypt`` on each as separate processes, reporting
wall time, peak resident memory (``wait4`` rusage of that process alone) and
whether the restored file is byte-identical. The reference, measured in the same
run, is a process that reads the same file in 1 MiB chunks and seals each with
raw AES-GCM, then syncs the output to disk as kedi does: the I/O-plus-cipher floor.

Run: ``.venv/bin/python bench/bench_large.py [--gib 1.0] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import run_process

KEDI = [sys.executable, "-m", "deepkedi.cli"]
REFERENCE = """
import os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
aead = AESGCM(os.urandom(32)); buf = bytearray(1 << 20); view = memoryview(buf); counter = 0
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    while (n := src.readinto(buf)):
        dst.write(aead.encrypt(counter.to_bytes(12, "big"), view[:n], None)); counter += 1
    dst.flush(); os.fsync(dst.fileno())  # kedi syncs its output before renaming it into place
"""


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    usage = run_process(command)
    return usage.wall, usage.peak_mib


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def make_nifti(path: Path, slices: int) -> None:
    import nibabel as nib
    import numpy as np

    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, slices))
    header.set_data_dtype(np.int16)
    header.set_zooms((0.7, 0.7, 1.0))
    header["vox_offset"] = 352
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        header.write_to(fh)
        fh.write(b"\x00" * (352 - fh.tell()))
        block = rng.integers(-1000, 2000, (64, 512, 512), dtype=np.int16)
        for start in range(0, slices, 64):
            fh.write(block[: min(64, slices - start)].tobytes())


def make_dicom(path: Path, frames: int) -> None:
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "CT", 512, 512, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    block = np.random.default_rng(1).integers(0, 4096, (64, 512, 512), dtype=np.uint16).tobytes()
    ds.PixelData = block * (frames // 64) + block[: (frames % 64) * 512 * 512 * 2]
    ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="volume size in GiB")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--make", nargs=3, metavar=("KIND", "PATH", "SLICES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        kind, path, count = args.make
        (make_nifti if kind == "nifti" else make_dicom)(Path(path), int(count))
        return
    slices = max(1, round(args.gib * 2**30 / (512 * 512 * 2)))
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="kedi-bench-"))
    try:
        key = scratch / "bench.key"
        subprocess.run([*KEDI, "keygen", "-o", str(key)], check=True, stdout=subprocess.DEVNULL)
        inputs = {"NIfTI .nii": scratch / "volume.nii", "multi-frame DICOM": scratch / "volume.dcm"}
        # Built in child processes: a child's peak RSS starts from its parent's
        # (Linux carries it across fork and exec), so this process stays small.
        for kind, path in zip(("nifti", "dicom"), inputs.values(), strict=True):
            subprocess.run([sys.executable, __file__, "--make", kind, str(path), str(slices)], check=True)
        print(f"volumes of {slices} slices of 512×512 16-bit, one run each; peak RSS of each process alone")
        print(f"{'input':<20}{'size MiB':>10}{'step':>22}{'wall s':>9}{'peak MiB':>10}{'× ref':>7}  restored")
        for label, src in inputs.items():
            size = src.stat().st_size / 2**20
            ref_wall, ref_rss = run([sys.executable, "-c", REFERENCE, str(src), str(scratch / "ref.bin")])
            (scratch / "ref.bin").unlink()
            container, restored = scratch / "c.kedi", scratch / ("restored" + "".join(src.suffixes))
            enc_wall, enc_rss = run([*KEDI, "encrypt", str(src), "-o", str(container), "--key", str(key)])
            dec_wall, dec_rss = run([*KEDI, "decrypt", str(container), "-o", str(restored), "--key", str(key)])
            same = sha256(restored) == sha256(src)
            print(f"{label:<20}{size:>10.0f}{'reference AES-GCM':>22}{ref_wall:>9.2f}{ref_rss:>10.0f}{1:>7.2f}")
            print(f"{'':<20}{'':>10}{'kedi encrypt':>22}{enc_wall:>9.2f}{enc_rss:>10.0f}{enc_wall / ref_wall:>7.2f}")
            print(
                f"{'':<20}{'':>10}{'kedi decrypt':>22}{dec_wall:>9.2f}{dec_rss:>10.0f}{dec_wall / ref_wall:>7.2f}"
                f"  {'byte-identical' if same else 'DIFFERENT'}"
            )
            container.unlink()
            restored.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
