"""The files the README and docs/ use, written into one folder (``kedi samples DIR``).

Every name a documented command or snippet reads comes from here, so that the
tour can be followed literally in an empty folder:

============================  =========================================================
``CT_small.dcm``              pydicom's CT slice (128², signed 16-bit), byte for byte
``MR_small.dcm``              pydicom's MR slice (64², signed 16-bit), byte for byte
``scan.dcm``                  a CT brain phantom slice (512², signed 16-bit) with a
                              fictional patient name, for ``--as-dicom``
``study/``                    a CT liver phantom study: 6 slices of 256², one study
                              and series UID, fictional patient, ``slice-NN.dcm``
``brain.nii.gz``              nibabel's 4-D NIfTI example, byte for byte
``pixels.npy``                a brain MR phantom slice (256², uint16, 12 bits stored)
``keystream.bin``             125,000 bytes (10⁶ bits) of ChaCha20 keystream under a
                              fixed, public demo key (so every samples folder holds the
                              same bytes), for ``kedi nist``
============================  =========================================================

Nothing is downloaded: the real files ship inside pydicom and nibabel, the rest
is synthesised (:mod:`deepkedi.datasets.phantoms`). Patient names are invented
(``DEMO^PATIENT``) so that de-identification has something to remove.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepkedi.datasets.corpus import sample_path
from deepkedi.errors import OutputExistsError

__all__ = ["SAMPLE_FILES", "SampleFile", "write_samples"]

#: The fictional patient written into the synthetic DICOM files.
DEMO_PATIENT = "DEMO^PATIENT"
#: Slices in ``study/``.
STUDY_SLICES = 6
#: Bytes of ``keystream.bin``: the 10⁶ bits ``kedi nist`` reads by default.
KEYSTREAM_BYTES = 125_000


@dataclass(frozen=True)
class SampleFile:
    """One entry of the samples folder: its name and what it is."""

    name: str
    description: str


def _copy(corpus_name: str) -> Callable[[Path], None]:
    def write(target: Path) -> None:
        shutil.copyfile(sample_path(corpus_name), target)

    return write


def _dicom_slices(target_files: list[Path], organ: str, *, shape: tuple[int, int], seed: int) -> None:
    """Phantom CT slices as one DICOM series (shared study and series UIDs, fictional patient)."""
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    from deepkedi.datasets.phantoms import phantom_volume
    from deepkedi.imaging import MedicalImage
    from deepkedi.imaging.dicom import write_dicom

    volume = phantom_volume(organ, "CT", slices=len(target_files), seed=seed, shape=shape)
    study, series = generate_uid(), generate_uid()
    spacing = volume.spacing or (1.0, 1.0, 1.0)
    for index, target in enumerate(target_files):
        plane = MedicalImage(
            np.ascontiguousarray(volume.pixels[index]),
            format="dicom",
            modality="CT",
            bits_stored=volume.bits_stored,
            spacing=tuple(spacing[-2:]),
            metadata={k: v for k, v in volume.metadata.items() if k in ("window_center", "window_width")},
        )
        write_dicom(plane, target)
        ds = pydicom.dcmread(target)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = DEMO_PATIENT, "DEMO-0001"
        ds.StudyDescription = f"{organ} CT phantom"
        ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
        ds.SliceLocation = round(index * float(spacing[0]), 3)  # mm from the first slice
        ds.save_as(target, enforce_file_format=True)


def _scan(target: Path) -> None:
    _dicom_slices([target], "brain", shape=(512, 512), seed=7)


def _study(target: Path) -> None:
    target.mkdir()
    _dicom_slices(
        [target / f"slice-{n:02d}.dcm" for n in range(1, STUDY_SLICES + 1)], "liver", shape=(256, 256), seed=3
    )


def _pixels(target: Path) -> None:
    import numpy as np

    from deepkedi.datasets.phantoms import phantom

    np.save(target, phantom("brain", "MR", seed=0).pixels)


def _keystream(target: Path) -> None:
    import hashlib

    from deepkedi.keystream import chacha20_keystream

    # A public key: the bytes are a sample to test, not a secret.
    target.write_bytes(chacha20_keystream(hashlib.sha256(b"deepkedi samples keystream").digest(), KEYSTREAM_BYTES))


_WRITERS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "CT_small.dcm": ("pydicom's CT slice, 128x128 signed 16-bit", _copy("pydicom-CT_small.dcm")),
    "MR_small.dcm": ("pydicom's MR slice, 64x64 signed 16-bit", _copy("pydicom-MR_small.dcm")),
    "scan.dcm": (f"CT brain phantom slice, 512x512 signed 16-bit, patient {DEMO_PATIENT}", _scan),
    "study": (f"CT liver phantom study, {STUDY_SLICES} DICOM slices of 256x256", _study),
    "brain.nii.gz": ("nibabel's 4-D NIfTI example", _copy("nibabel-example4d.nii.gz")),
    "pixels.npy": ("brain MR phantom slice, 256x256 uint16 (12 bits stored)", _pixels),
    "keystream.bin": (f"{KEYSTREAM_BYTES * 8:,} bits of ChaCha20 keystream (a public demo key)", _keystream),
}

#: What :func:`write_samples` writes, in order.
SAMPLE_FILES: tuple[SampleFile, ...] = tuple(SampleFile(name, about) for name, (about, _) in _WRITERS.items())


def write_samples(folder: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write the sample files into ``folder`` (created if missing); return their paths.

    Raises
    ------
    OutputExistsError
        One of the names exists already and ``force`` is false; nothing is written.
    """
    root = Path(folder)
    targets = [root / name for name in _WRITERS]
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not force:
        raise OutputExistsError(f"{existing[0]} exists; use --force to replace the samples")
    root.mkdir(parents=True, exist_ok=True)
    for target, (_, write) in zip(targets, _WRITERS.values(), strict=True):
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        write(target)
    return targets
