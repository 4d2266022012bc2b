"""Hostile-input harness: seeded crafted inputs against every `kedi` command.

Each case is a small crafted input (a mutation of a valid file, a structurally crafted
header, or a special path such as a FIFO) and one `kedi` command line that reads it. The
contract checked, for every case (DESIGN.md, "Fail clearly"):

* no traceback: nothing but ``SystemExit``/``typer.Exit`` escapes the command, and
  "Traceback" appears in neither stdout nor stderr;
* the exit code is in the table: 0 ok, 2 usage, 3 authentication, 4 bad or
  unsupported input, 5 output or environment failure;
* no hang: every case finishes within its time limit (a FIFO must be refused, not
  opened and waited on);
* peak resident memory stays under 1 GiB (every input here is under 10 MB).

Cases run in-process (Typer's ``CliRunner``) inside a small pool of worker processes:
spawning one ``kedi`` per case costs about a second of CPU, too much for 1,500 cases.
Each case's peak resident size is the worker's ``VmHWM``, reset to the current size
before the case (``/proc/self/clear_refs``); it includes the worker's own baseline
(interpreter, and torch once a case has loaded it), so it errs on the strict side. A
worker that fails the limit is replaced so that the next cases are measured afresh. A
case that does not finish is interrupted by ``SIGALRM`` in the worker and, if it is
stuck outside Python, the worker is killed by the driver.

Case ``i`` of seed ``S`` is generated from ``random.Random(f"{S}:{i}")`` alone, so it can
be replayed on its own::

    python tests/hostile/harness.py --seed S --case i

Seed files (keys, containers, keystores) are made afresh by each run, so a replay uses
new keys and salts; the crafted input of every failing case is also kept under
``OUT/failures/``. The summary (``OUT/summary.txt``, ``OUT/results.jsonl``) groups
failures by command and signature with one reproducer each.

Usage::

    python tests/hostile/harness.py --cases 1500 --seed 0 --workers 2 --out bench/out/hostile
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import gzip
import io
import json
import os
import random
import resource
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALLOWED_EXIT_CODES = frozenset({0, 2, 3, 4, 5})
RSS_LIMIT_MIB = 1024
CASE_TIMEOUT_S = 20.0
FIFO_TIMEOUT_S = 3.0
#: Address-space cap of a worker: a case that tries to allocate more fails (MemoryError,
#: reported) instead of pushing a shared 24 GB machine into swap with two workers. Well
#: above the RSS limit and the virtual memory NumPy and PyTorch reserve (a worker that has
#: run the ZZ-GAN peaks under 1 GB of address space).
ADDRESS_SPACE_CAP = 6 << 30
HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- seed files


@dataclass
class Seeds:
    """Valid files every crafted input starts from, made once per run in ``root``."""

    root: Path
    images: dict[str, Path] = field(default_factory=dict)
    containers: dict[str, Path] = field(default_factory=dict)
    keyfile: Path | None = None
    sealed_keyfile: Path | None = None
    passphrase: Path | None = None
    key_image: Path | None = None
    kek: Path | None = None
    keystore: Path | None = None
    key_ids: list[str] = field(default_factory=list)
    recipient_pub: Path | None = None
    recipient_key: Path | None = None
    export: Path | None = None
    bits: Path | None = None

    def save(self) -> None:
        doc = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        doc["images"] = {k: str(v) for k, v in self.images.items()}
        doc["containers"] = {k: str(v) for k, v in self.containers.items()}
        (self.root / "seeds.json").write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, root: Path) -> Seeds:
        doc = json.loads((root / "seeds.json").read_text())
        seeds = cls(root=Path(doc.pop("root")))
        for name, value in doc.items():
            if name in ("images", "containers"):
                setattr(seeds, name, {k: Path(v) for k, v in value.items()})
            elif isinstance(value, str):
                setattr(seeds, name, Path(value))
            else:
                setattr(seeds, name, value)
        return seeds


def _invoke(args: list[Any]) -> Any:
    from typer.testing import CliRunner

    from deepkedi.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"seed step `kedi {' '.join(map(str, args))}` failed: {result.stderr}")
    return result


def _png_bomb(path: Path, side: int) -> None:
    """A valid greyscale PNG of side² zero pixels: some hundreds of KB that decode to side² bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = bytes(side + 1)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def _zeros_deflated(head: bytes, zeros: int, wbits: int) -> bytes:
    """``head`` then ``zeros`` zero bytes, deflated (wbits 31: gzip, -15: raw) without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [compressor.compress(head)]
    chunk = bytes(1 << 24)
    for start in range(0, zeros, len(chunk)):
        parts.append(compressor.compress(chunk[: min(len(chunk), zeros - start)]))
    parts.append(compressor.flush())
    return b"".join(parts)


def _nifti_bomb(path: Path, anatomical: Path) -> None:
    """A .nii.gz of about 1 MB whose header and data declare 1024³ uint8 voxels (1 GiB) of zeros."""
    header = bytearray(anatomical.read_bytes()[:352])
    struct.pack_into("<8h", header, 40, 3, 1024, 1024, 1024, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 2, 8)  # datatype uint8, bitpix 8
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    path.write_bytes(_zeros_deflated(bytes(header), 1 << 30, 31))


def _dicom_deflate_bomb(path: Path, template: Path) -> None:
    """A Deflated Explicit VR Little Endian DICOM of about 1 MB holding 23170² uint16 zero pixels (1 GiB)."""
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(template)
    del ds.PixelData
    ds.Rows = ds.Columns = 23170
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.SamplesPerPixel = 16, 16, 15, 1
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    pixels = 23170 * 23170 * 2
    element = struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\0\0" + struct.pack("<I", pixels)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    path.write_bytes(bytes(128) + b"DICM" + meta.getvalue() + _zeros_deflated(body.getvalue() + element, pixels, -15))


def build_seeds(root: Path) -> Seeds:
    """Make the valid seed files: images of every format, keys, containers, a keystore."""
    import nibabel
    import numpy as np
    import pydicom.data
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    seeds = Seeds(root=root)
    for name in (
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "JPEG2000.dcm",
        "SC_rgb_small_odd.dcm",
        "MR_small_bigendian.dcm",
        "JPEG-lossy.dcm",
        "SC_rgb_rle_2frame.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "no_meta.dcm",
        "MR_truncated.dcm",
        "rtdose_1frame.dcm",
    ):
        seeds.images[name] = Path(pydicom.data.get_testdata_file(name))
    nib_data = Path(nibabel.__file__).parent / "tests" / "data"
    for name in ("anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "test.mgz"):
        seeds.images[name] = nib_data / name
    yy, xx = np.mgrid[0:96, 0:80]
    ramp = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    rgb = np.stack([ramp, ramp[::-1], ramp.T[:96, :80] if ramp.shape[0] <= ramp.shape[1] else ramp], -1)
    Image.fromarray(ramp).save(root / "grey.png")
    Image.fromarray(rgb).save(root / "rgb.png")
    Image.fromarray(ramp.astype(np.uint16) * 200).save(root / "grey16.tif")
    Image.fromarray(rgb).save(root / "rgb.jpg", quality=90)
    Image.fromarray(ramp).save(root / "grey.tif", compression="tiff_deflate")
    np.save(root / "u8.npy", ramp)
    np.save(root / "i16-3d.npy", (np.arange(4 * 40 * 48, dtype=np.int16) - 3000).reshape(4, 40, 48))
    _png_bomb(root / "bomb.png", 30000)
    _nifti_bomb(root / "bomb.nii.gz", nib_data / "anatomical.nii")
    _dicom_deflate_bomb(root / "bomb.dcm", seeds.images["CT_small.dcm"])
    # Valid but large for their size on disk: work that grows faster than the pixels
    # (the ripplet frame of despeckle) shows here.
    big = np.random.default_rng(2).integers(1, 4096, (1024, 1024), dtype=np.uint16)
    np.save(root / "plane-1024.npy", big)
    np.save(root / "volume-9mb.npy", np.resize(big, (8, 1024, 600)))
    for name in (
        "grey.png",
        "rgb.png",
        "grey16.tif",
        "rgb.jpg",
        "grey.tif",
        "u8.npy",
        "i16-3d.npy",
        "bomb.png",
        "plane-1024.npy",
        "volume-9mb.npy",
        "bomb.nii.gz",
        "bomb.dcm",
    ):
        seeds.images[name] = root / name

    seeds.keyfile = root / "site.key"
    _invoke(["keygen", "-o", seeds.keyfile, "--no-gan"])
    seeds.passphrase = root / "passphrase"
    seeds.passphrase.write_text("correct horse battery staple\n")
    seeds.sealed_keyfile = root / "sealed.key"
    _invoke(["keygen", "-o", seeds.sealed_keyfile, "--no-gan", "--passphrase-file", seeds.passphrase])
    seeds.key_image = root / "key-image.png"
    _invoke(
        ["keygen", "--suite", "paper", "--like", seeds.images["CT_small.dcm"], "-o", seeds.key_image, "--seed", "7"]
    )

    for name, source in (
        ("ct.kedi", seeds.images["CT_small.dcm"]),
        ("u8.kedi", seeds.images["u8.npy"]),
        ("rgb.kedi", seeds.images["rgb.png"]),
        ("nii.kedi", seeds.images["anatomical.nii"]),
    ):
        seeds.containers[name] = root / name
        _invoke(["encrypt", source, "-o", root / name, "--key", seeds.keyfile])
    seeds.containers["sealed.kedi"] = root / "sealed.kedi"
    _invoke(
        [
            "encrypt",
            seeds.images["MR_small.dcm"],
            "-o",
            root / "sealed.kedi",
            "--key",
            seeds.sealed_keyfile,
            "--passphrase-file",
            seeds.passphrase,
        ]
    )
    seeds.containers["paper.kedi"] = root / "paper.kedi"
    _invoke(
        [
            "encrypt",
            seeds.images["CT_small.dcm"],
            "-o",
            root / "paper.kedi",
            "--key",
            seeds.key_image,
            "--suite",
            "paper",
            "--seed",
            "3",
        ]
    )
    seeds.containers["native.dcm"] = root / "native.dcm"
    _invoke(["encrypt", seeds.images["CT_small.dcm"], "-o", root / "native.dcm", "--key", seeds.keyfile, "--as-dicom"])

    seeds.kek = root / "kek"
    seeds.kek.write_bytes(bytes(range(32)))
    seeds.keystore = root / "keystore.db"
    store = ["--keystore", f"sqlite:///{seeds.keystore}", "--kek-file", seeds.kek]
    _invoke(["keys", "init", *store])
    for label in ("study-a", "study-b"):
        seeds.key_ids.append(
            json.loads(_invoke(["keys", "new", "--no-gan", "--label", label, "--json", *store]).stdout)["key_id"]
        )
    _invoke(["keys", "recipient", "-o", root / "site-b"])
    seeds.recipient_pub, seeds.recipient_key = root / "site-b.pub", root / "site-b.key"
    seeds.export = root / "keys.kx"
    _invoke(["keys", "export", *seeds.key_ids, "--to", seeds.recipient_pub, "-o", seeds.export, *store])
    seeds.bits = root / "random.bin"
    seeds.bits.write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    seeds.save()
    return seeds


# --------------------------------------------------------------------------- mutations

_INTERESTING_32 = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0]


def _bitflip(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    if not data:
        return data, "empty"
    out = bytearray(data)
    flips = rng.randint(1, 8)
    head = rng.random() < 0.6
    for _ in range(flips):
        pos = rng.randrange(min(len(out), 1024) if head else len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out), f"{flips} bit flips{' in the first 1 KiB' if head else ''}"


def _truncate(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    cut = rng.choice([0, 1, 4, 16, 128, rng.randrange(max(1, len(data))), max(0, len(data) - rng.randint(1, 64))])
    return data[:cut], f"truncated to {cut} of {len(data)} bytes"


def _overwrite(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    if not data:
        return bytes(rng.getrandbits(8) for _ in range(16)), "16 random bytes"
    out = bytearray(data)
    n = rng.randint(1, 32)
    pos = rng.randrange(min(len(out), 2048) if rng.random() < 0.7 else len(out))
    fill = rng.choice(["random", "zeros", "ones"])
    chunk = {"random": bytes(rng.getrandbits(8) for _ in range(n)), "zeros": bytes(n), "ones": b"\xff" * n}[fill]
    out[pos : pos + n] = chunk
    return bytes(out), f"{n} {fill} bytes written at {pos}"


def _inflate_length(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    """A plausible length/count/dimension field made huge (or zero, or negative)."""
    if len(data) < 8:
        return data + b"\xff" * 8, "8 0xff bytes appended"
    out = bytearray(data)
    width = rng.choice([2, 4, 4, 8])
    limit = min(len(out) - width, 1536)
    pos = rng.randrange(0, max(1, limit)) & ~(min(width, 4) - 1 if rng.random() < 0.8 else 0)
    order = rng.choice("<>")
    value = rng.choice(_INTERESTING_32)
    fmt = {2: "H", 4: "I", 8: "Q"}[width]
    value &= (1 << (8 * width)) - 1
    out[pos : pos + width] = struct.pack(order + fmt, value)
    return bytes(out), f"{width}-byte field at {pos} set to {value:#x} ({'little' if order == '<' else 'big'} endian)"


def _splice(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    a = rng.randrange(len(data) + 1)
    b = rng.randrange(len(other) + 1)
    return data[:a] + other[b:], f"first {a} bytes + another file from byte {b}"


def _insert(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    pos = rng.randrange(len(data) + 1)
    n = rng.choice([1, 3, 16, 1000])
    return data[:pos] + bytes(rng.getrandbits(8) for _ in range(n)) + data[pos:], f"{n} random bytes inserted at {pos}"


MUTATIONS: list[Callable[[random.Random, bytes, bytes], tuple[bytes, str]]] = [
    _bitflip,
    _truncate,
    _overwrite,
    _inflate_length,
    _inflate_length,
    _splice,
    _insert,
]


def mutate(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    rounds = 1 if rng.random() < 0.7 else rng.randint(2, 4)
    notes = []
    for _ in range(rounds):
        data, note = rng.choice(MUTATIONS)(rng, data, other)
        notes.append(note)
    return data, "; ".join(notes)


def _gzip_aware(rng: random.Random, path: Path, data: bytes, other: bytes) -> tuple[bytes, str]:
    """For .gz inputs, mutate the decompressed stream half of the time (reaching the parser)."""
    if (path.name.endswith(".gz") or path.suffix == ".mgz") and rng.random() < 0.5:
        inner, note = mutate(rng, gzip.decompress(data), b"")
        return gzip.compress(inner, 1), f"inside the gzip stream: {note}"
    return mutate(rng, data, other)


# ------------------------------------------------------------------- crafted structures


def crafted_npy(rng: random.Random) -> tuple[bytes, str]:
    """A .npy with a crafted header: many dims, exotic or object dtypes, huge shapes."""
    choice = rng.randrange(12)
    descr, shape, fortran, payload = "|u1", (8, 8), False, bytes(64)
    if choice == 0:
        shape = (1,) * 17
        payload = b"\0"
    elif choice == 1:
        descr, shape, payload = "<f16", (4, 4), bytes(256)
    elif choice == 2:
        descr, shape, payload = "|O", (2, 2), b"\x80\x04N."
    elif choice == 3:
        shape = (2**31, 2**31)
    elif choice == 4:
        shape = (65536, 65536, 16)
    elif choice == 5:
        shape = (-1, 8)
    elif choice == 6:
        descr = rng.choice(["<M8[s]", "<U4", "|V8", "<c16", "[('a', '<u2')]", "|S3", ">u2", "<u8", "|b1", "<f2"])
        shape, payload = (8, 8), bytes(8 * 8 * 16)
    elif choice == 7:
        shape, payload = (), b"\x01"
    elif choice == 8:
        shape, payload = (0, 64), b""
    elif choice == 9:
        fortran, shape, payload = True, (3, 40, 48), bytes(3 * 40 * 48)
    elif choice == 10:
        shape, payload = (100, 100), bytes(64)  # data shorter than the header says
    else:
        header = rng.choice(
            [
                b"{'descr': '<u2'",
                b"{" * 5000,
                b"__import__('os')",
                b"{'descr': '|u1', 'fortran_order': False, 'shape': (8, 8), 'x': " + b"[" * 3000 + b"}",
            ]
        )
        return _npy_bytes(header, (1, 0)) + bytes(64), f"npy header {header[:30]!r}..."
    literal = "[('a', '<u2')]" if descr.startswith("[") else repr(descr)
    header = f"{{'descr': {literal}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}".encode()
    version = rng.choice([(1, 0), (2, 0), (3, 0)])
    return _npy_bytes(header, version) + payload, f"npy v{version[0]} descr={descr} shape={shape} fortran={fortran}"


def _npy_bytes(header: bytes, version: tuple[int, int]) -> bytes:
    length_format = "<H" if version[0] == 1 else "<I"
    prefix = 10 if version[0] == 1 else 12
    pad = (-(prefix + len(header) + 1)) % 64
    body = header + b" " * pad + b"\n"
    return (
        b"\x93NUMPY"
        + bytes(version)
        + struct.pack(length_format, len(body) & (0xFFFF if version[0] == 1 else 0xFFFFFFFF))
        + body
    )


def crafted_dicom(rng: random.Random, seeds: Seeds) -> tuple[bytes, str]:
    """A DICOM seed re-saved with hostile pixel-module attributes."""
    import pydicom
    from pydicom.uid import UID

    name = rng.choice(
        ["CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "MR_small_RLE.dcm", "image_dfl.dcm", "JPEG2000.dcm"]
    )
    ds = pydicom.dcmread(seeds.images[name], force=True)
    notes = []
    for _ in range(rng.randint(1, 3)):
        attr = rng.choice(
            [
                "Rows",
                "Columns",
                "NumberOfFrames",
                "BitsAllocated",
                "BitsStored",
                "HighBit",
                "SamplesPerPixel",
                "PixelRepresentation",
                "PlanarConfiguration",
                "PhotometricInterpretation",
                "TransferSyntaxUID",
                "PixelData",
                "RescaleSlope",
            ]
        )
        if attr in ("Rows", "Columns"):
            value: Any = rng.choice([0, 1, 65535, 30000])
        elif attr == "NumberOfFrames":
            value = rng.choice([0, -1, 2**31 - 1, 100000, 65536])
        elif attr in ("BitsAllocated", "BitsStored", "HighBit"):
            value = rng.choice([0, 1, 7, 13, 32, 64, 65535])
        elif attr == "SamplesPerPixel":
            value = rng.choice([0, 2, 4, 255])
        elif attr == "PixelRepresentation":
            value = rng.choice([2, 65535])
        elif attr == "PlanarConfiguration":
            value = rng.choice([1, 5])
        elif attr == "PhotometricInterpretation":
            value = rng.choice(["RGB", "YBR_FULL_422", "PALETTE COLOR", "MONOCHROME3", ""])
        elif attr == "RescaleSlope":
            value = rng.choice(["1e308", "nan", "0"])
        elif attr == "PixelData":
            value = rng.choice([b"", b"\0" * 7])
        else:
            value = rng.choice(["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99", "1.2.3"])
            ds.file_meta.TransferSyntaxUID = UID(value)
            notes.append(f"TransferSyntaxUID={value}")
            continue
        try:
            setattr(ds, attr, value)
        except Exception:  # noqa: BLE001 - pydicom refuses some values outright: keep the seed's
            continue
        notes.append(f"{attr}={value!r}"[:60])
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=False)
    except Exception as exc:  # noqa: BLE001 - a data set pydicom cannot write: fall back to the seed
        return seeds.images[name].read_bytes(), f"{name} (crafting failed: {type(exc).__name__})"
    return buffer.getvalue(), f"{name} with " + ", ".join(notes)


def crafted_nifti(rng: random.Random, seeds: Seeds) -> tuple[bytes, str]:
    """anatomical.nii with hostile dim/datatype/bitpix/vox_offset fields, gzipped or not."""
    data = bytearray(seeds.images["anatomical.nii"].read_bytes())
    notes = []
    for _ in range(rng.randint(1, 3)):
        field_ = rng.choice(["dim", "datatype", "bitpix", "vox_offset", "sizeof_hdr", "scl_slope"])
        if field_ == "dim":
            i = rng.randrange(8)
            value = rng.choice([0, -1, 7, 32767, -32768])
            struct.pack_into("<h", data, 40 + 2 * i, value)
            notes.append(f"dim[{i}]={value}")
        elif field_ == "datatype":
            value = rng.choice([0, 1, 128, 1536, 2304, 2048, 32767])
            struct.pack_into("<h", data, 70, value)
            notes.append(f"datatype={value}")
        elif field_ == "bitpix":
            value = rng.choice([0, 1, 128, -8])
            struct.pack_into("<h", data, 72, value)
            notes.append(f"bitpix={value}")
        elif field_ == "vox_offset":
            value = rng.choice([-352.0, 1e30, float("nan"), 2.0**31, 353.5])
            struct.pack_into("<f", data, 108, value)
            notes.append(f"vox_offset={value}")
        elif field_ == "scl_slope":
            value = rng.choice([float("inf"), float("nan"), 1e38])
            struct.pack_into("<f", data, 112, value)
            notes.append(f"scl_slope={value}")
        else:
            value = rng.choice([0, 540, 1 << 30])
            struct.pack_into("<i", data, 0, value)
            notes.append(f"sizeof_hdr={value}")
    raw = bytes(data)
    if rng.random() < 0.4:
        return gzip.compress(raw, 1), "anatomical.nii.gz with " + ", ".join(notes)
    return raw, "anatomical.nii with " + ", ".join(notes)


def crafted_png(rng: random.Random) -> tuple[bytes, str]:
    """A PNG whose IHDR (with a correct CRC) declares a hostile size, depth or colour type."""
    width = rng.choice([0, 1, 65535, 100000, 2**31 - 1, 40])
    height = rng.choice([0, 1, 65535, 100000, 2**31 - 1, 40])
    depth, colour = rng.choice([(8, 0), (16, 0), (8, 2), (16, 6), (1, 0), (8, 3), (3, 0), (8, 7)])
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, rng.choice([0, 1]))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idat = zlib.compress(bytes(rng.choice([0, 100, 5000])))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""),
        f"PNG {width}x{height} depth {depth} colour type {colour}",
    )


def _deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


def crafted_key_json(rng: random.Random, seeds: Seeds, sealed: bool) -> tuple[bytes, str]:
    """A hybrid key file's JSON with hostile values: wrong types, huge numbers, deep nesting, scrypt params."""
    source = seeds.sealed_keyfile if sealed else seeds.keyfile
    doc = json.loads(source.read_text())
    kind = rng.randrange(6)
    if kind == 0:
        depth = rng.choice([1000, 100000])
        return _deep(depth, rng.choice(["list", "dict"])).encode(), f"JSON nested {depth} deep"
    if kind == 1:
        field_ = rng.choice(list(doc))
        value = rng.choice([None, 1e308, 10**400, -1, [], {}, "", "\udcff", True, "A" * 100000, [[[]]]])
        text = json.dumps(doc)
        doc[field_] = value if not isinstance(value, str) or value != "\udcff" else "x"
        text = json.dumps(doc, allow_nan=True)
        if value == 10**400:
            text = text.replace(json.dumps(doc[field_]), "1" + "0" * 400)
        return text.encode(), f"key field {field_!r} = {str(value)[:20]!r}"
    if kind == 2 and "sealed_secret" in doc:
        seal = doc["sealed_secret"]
        param = rng.choice(["n", "r", "p", "salt", "nonce", "ciphertext", "kdf", "aead"])
        value = {
            "n": rng.choice([2**40, 2**31, 2**20 * 16, 3, 0, 1, -2, "16384", 2.5, 10**400]),
            "r": rng.choice([2**20, 2**31, 0, -1, 1000]),
            "p": rng.choice([2**20, 2**31 - 1, 0, 16]),
            "salt": rng.choice(["", "!!", "A" * 10000]),
            "nonce": rng.choice(["", "AAAA", base64.b64encode(bytes(64)).decode()]),
            "ciphertext": rng.choice(["", "AAAA", base64.b64encode(bytes(16)).decode()]),
            "kdf": rng.choice(["argon2", None, 1]),
            "aead": rng.choice(["ChaCha", None]),
        }[param]
        seal[param] = value
        text = json.dumps(doc)
        if value == 10**400:
            text = text.replace('"n": ' + str(value), '"n": 1' + "0" * 400)
        return text.encode(), f"sealed key with {param} = {str(value)[:20]}"
    if kind == 3:
        doc["secret" if not sealed else "sealed_secret"] = rng.choice(
            ["", "AAAA", base64.b64encode(bytes(1 << 16)).decode(), "***"]
        )
        return json.dumps(doc).encode(), "key with a hostile secret"
    if kind == 4:
        return rng.choice(
            [
                b"",
                b"null",
                b"[]",
                b'"deepkedi"',
                b"\xff\xfe{}",
                b"{" * 3,
                json.dumps({"deepkedi_key": doc["deepkedi_key"]}).encode(),
            ]
        ), "not a key document"
    data, note = mutate(rng, source.read_bytes(), seeds.keyfile.read_bytes())
    return data, f"key file bytes: {note}"


def crafted_keystore(rng: random.Random, seeds: Seeds, path: Path) -> str:
    """Write a hostile keystore to ``path``: random bytes, or the seed database with altered rows."""
    kind = rng.randrange(4)
    if kind == 0:
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 100, 4096]))))
        return "keystore: random bytes"
    if kind == 1:
        data, note = mutate(rng, seeds.keystore.read_bytes(), b"")
        path.write_bytes(data)
        return f"keystore bytes: {note}"
    shutil.copyfile(seeds.keystore, path)
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        table = rng.choice(tables)
        if kind == 2 and rng.random() < 0.2:
            db.execute(f'DROP TABLE "{table}"')
            note = f"table {table} dropped"
        else:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            column = rng.choice(columns)
            value = rng.choice(
                [
                    None,
                    "",
                    -1,
                    2**62,
                    1e308,
                    "x" * 5000,
                    b"\0" * 3,
                    "revoked",
                    "active",
                    '{"a":' * 5000 + "1" + "}" * 5000,
                    "not json",
                    "zz" * 16,
                    "\x00",
                ]
            )
            rows = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            row = rng.randrange(max(rows, 1))
            try:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = '
                    f'(SELECT rowid FROM "{table}" LIMIT 1 OFFSET {row})',
                    (value,),
                )
                note = f"{table}.{column} of row {row} = {str(value)[:20]!r}"
            except sqlite3.DatabaseError as exc:  # a constraint of the schema: try a plain deletion
                db.execute(f'DELETE FROM "{table}" WHERE rowid = (SELECT rowid FROM "{table}" LIMIT 1 OFFSET {row})')
                note = f"row {row} of {table} deleted ({type(exc).__name__} on update)"
        db.commit()
    finally:
        db.close()
    return f"keystore with {note}"


# ---------------------------------------------------------------------------- families


@dataclass
class Case:
    id: int
    family: str
    command: str
    argv: list[str]
    description: str
    timeout: float = CASE_TIMEOUT_S
    env: dict[str, str] = field(default_factory=dict)


SPECIAL_KINDS = ["fifo", "directory", "missing", "long-name", "symlink-loop", "empty", "dangling-symlink"]


def special_path(rng: random.Random, work: Path, kind: str | None = None) -> tuple[Path, str]:
    kind = kind or rng.choice(SPECIAL_KINDS)
    if kind == "fifo":
        path = work / "input.fifo"
        os.mkfifo(path)
    elif kind == "directory":
        path = work / "a-folder.dcm"
        path.mkdir()
    elif kind == "missing":
        path = work / "missing.dcm"
    elif kind == "long-name":
        path = work / ("n" * 300 + ".dcm")
    elif kind == "symlink-loop":
        path = work / "loop.dcm"
        os.symlink(work / "loop2.dcm", path)
        os.symlink(path, work / "loop2.dcm")
    elif kind == "dangling-symlink":
        path = work / "dangling.dcm"
        os.symlink(work / "nowhere", path)
    else:
        path = work / "empty.dcm"
        path.write_bytes(b"")
    return path, kind


IMAGE_COMMANDS = [
    "encrypt",
    "encrypt-paper",
    "encrypt-dicom",
    "inspect",
    "inspect-json",
    "metrics",
    "metrics-against",
    "speckle",
    "despeckle",
    "nist",
]
CONTAINER_COMMANDS = ["decrypt", "inspect-json", "inspect-cipher-image", "inspect", "metrics", "nist", "decrypt-paper"]


def _image_command(name: str, path: Path, seeds: Seeds, out: Path, rng: random.Random) -> tuple[str, list[str]]:
    p = str(path)
    table: dict[str, tuple[str, list[str]]] = {
        "encrypt": (
            "encrypt",
            [
                "encrypt",
                p,
                "-o",
                str(out / "out.kedi"),
                "--key",
                str(seeds.keyfile),
                "--pattern",
                rng.choice(["vertical", "horizontal", "diagonal"]),
            ],
        ),
        "encrypt-paper": (
            "encrypt --suite paper",
            [
                "encrypt",
                p,
                "-o",
                str(out / "out.kedi"),
                "--key",
                str(seeds.key_image),
                "--suite",
                "paper",
                "--seed",
                "1",
            ],
        ),
        "encrypt-dicom": (
            "encrypt --as-dicom",
            ["encrypt", p, "-o", str(out / "out.dcm"), "--key", str(seeds.keyfile), "--as-dicom"],
        ),
        "inspect": ("inspect", ["inspect", p]),
        "inspect-json": ("inspect --json", ["inspect", p, "--json"]),
        "metrics": ("metrics", ["metrics", p, "--json"]),
        "metrics-against": ("metrics --against", ["metrics", str(seeds.images["CT_small.dcm"]), "--against", p]),
        "speckle": (
            "speckle",
            ["speckle", p, "-o", str(out / "speckled.npy"), "--model", rng.choice(["gaussian", "uniform", "gamma"])],
        ),
        "despeckle": ("despeckle", ["despeckle", p, "-o", str(out / "clean.npy")]),
        # Parsing is what is under test; --bits keeps the SP 800-22 tests themselves short.
        "nist": ("nist", ["nist", p, "--json", "--bits", "200000"]),
        "decrypt": (
            "decrypt",
            ["decrypt", p, "-o", str(out / rng.choice(["restored.dcm", "restored.npy"])), "--key", str(seeds.keyfile)],
        ),
        "decrypt-paper": (
            "decrypt --suite paper",
            ["decrypt", p, "-o", str(out / "restored.npy"), "--key", str(seeds.key_image)],
        ),
        "inspect-cipher-image": (
            "inspect --cipher-image",
            ["inspect", p, "--cipher-image", str(out / rng.choice(["ci.npy", "ci.png"]))],
        ),
    }
    return table[name]


#: Seed images used whole by fam_image_crafted, not mutated (mutating megabytes is slow).
LARGE_SEEDS = ("bomb.png", "bomb.nii.gz", "bomb.dcm", "plane-1024.npy", "volume-9mb.npy")


def fam_image_mutation(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    name = rng.choice(sorted(n for n in seeds.images if n not in LARGE_SEEDS))
    source = seeds.images[name]
    other = seeds.images[rng.choice(sorted(seeds.images))].read_bytes()[:200_000]
    data, note = _gzip_aware(rng, source, source.read_bytes(), other)
    path = work / (
        "input" + "".join(source.suffixes[-2:]) if source.name.endswith(".nii.gz") else "input" + source.suffix
    )
    path.write_bytes(data)
    command, argv = _image_command(rng.choice(IMAGE_COMMANDS), path, seeds, work / "out", rng)
    return command, argv, f"{name}: {note}"


def fam_image_crafted(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    kind = rng.choice(["npy", "npy", "dicom", "dicom", "nifti", "png", "bomb", "bomb", "large"])
    if kind == "npy":
        data, note = crafted_npy(rng)
        path = work / "input.npy"
    elif kind == "dicom":
        data, note = crafted_dicom(rng, seeds)
        path = work / "input.dcm"
    elif kind == "nifti":
        data, note = crafted_nifti(rng, seeds)
        path = work / ("input.nii.gz" if data[:2] == b"\x1f\x8b" else "input.nii")
    elif kind == "png":
        data, note = crafted_png(rng)
        path = work / "input.png"
    elif kind == "bomb":
        name, what = rng.choice(
            [
                ("bomb.png", "PNG 30000² (900 MB decoded)"),
                ("bomb.nii.gz", "NIfTI .nii.gz 1024³ uint8 (1 GiB decoded)"),
                ("bomb.dcm", "deflated DICOM 23170² uint16 (1 GiB decoded)"),
            ]
        )
        data = seeds.images[name].read_bytes()
        note = f"decompression bomb: {what}, {len(data) >> 10} KiB on disk"
        path = work / ("input" + "".join(Path(name).suffixes))
    else:
        name = rng.choice(["plane-1024.npy", "volume-9mb.npy"])
        data, note = (
            seeds.images[name].read_bytes(),
            f"valid {name} (uint16, {seeds.images[name].stat().st_size >> 20} MiB)",
        )
        path = work / "input.npy"
    path.write_bytes(data)
    command, argv = _image_command(rng.choice(IMAGE_COMMANDS), path, seeds, work / "out", rng)
    return command, argv, note


def fam_container(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    name = rng.choice(sorted(seeds.containers))
    source = seeds.containers[name]
    other = seeds.containers[rng.choice(sorted(seeds.containers))].read_bytes()
    data, note = mutate(rng, source.read_bytes(), other)
    path = work / ("input.dcm" if name.endswith(".dcm") else "input.kedi")
    path.write_bytes(data)
    choice = rng.choice(CONTAINER_COMMANDS)
    if name == "paper.kedi" and choice == "decrypt":
        choice = "decrypt-paper"
    command, argv = _image_command(choice, path, seeds, work / "out", rng)
    if name == "sealed.kedi" and argv[0] == "decrypt" and str(seeds.keyfile) in argv:
        argv[argv.index(str(seeds.keyfile))] = str(seeds.sealed_keyfile)
        argv += ["--passphrase-file", str(seeds.passphrase)]
    return command, argv, f"{name}: {note}"


def fam_keyfile(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    sealed = rng.random() < 0.5
    data, note = crafted_key_json(rng, seeds, sealed)
    key = work / "hostile.key"
    key.write_bytes(data)
    out = work / "out"
    pw = ["--passphrase-file", str(seeds.passphrase)]
    choice = rng.randrange(4)
    if choice == 0:
        return (
            "encrypt",
            ["encrypt", str(seeds.images["u8.npy"]), "-o", str(out / "x.kedi"), "--key", str(key), *pw],
            note,
        )
    if choice == 1:
        return (
            "decrypt",
            ["decrypt", str(seeds.containers["u8.kedi"]), "-o", str(out / "x.npy"), "--key", str(key), *pw],
            note,
        )
    if choice == 2:
        return ("keys init", ["keys", "init", "--keystore", f"sqlite:///{out / 'ks.db'}", "--kek-file", str(key)], note)
    return (
        "encrypt --as-dicom",
        ["encrypt", str(seeds.images["CT_small.dcm"]), "-o", str(out / "x.dcm"), "--key", str(key), "--as-dicom", *pw],
        note,
    )


def fam_key_image(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    if rng.random() < 0.3:
        data, note = crafted_png(rng)
    else:
        data, note = mutate(rng, seeds.key_image.read_bytes(), seeds.images["grey.png"].read_bytes())
    key = work / "key.png"
    key.write_bytes(data)
    out = work / "out"
    if rng.random() < 0.5:
        return (
            "encrypt --suite paper",
            [
                "encrypt",
                str(seeds.images["CT_small.dcm"]),
                "-o",
                str(out / "p.kedi"),
                "--key",
                str(key),
                "--suite",
                "paper",
            ],
            f"key image: {note}",
        )
    return (
        "decrypt --suite paper",
        ["decrypt", str(seeds.containers["paper.kedi"]), "-o", str(out / "p.npy"), "--key", str(key)],
        f"key image: {note}",
    )


KEYS_COMMANDS = ["list", "show", "new", "rotate", "rewrap", "revoke", "export", "audit", "audit-verify", "import"]


def fam_keystore(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    db = work / "ks.db"
    note = crafted_keystore(rng, seeds, db)
    url = f"sqlite:///{db}"
    kek = ["--kek-file", str(seeds.kek)]
    sub = rng.choice(KEYS_COMMANDS)
    key_id = rng.choice(seeds.key_ids)
    out = work / "out"
    argv = {
        "list": ["keys", "list", "--keystore", url, "--json"],
        "show": ["keys", "show", key_id, "--keystore", url, "--json"],
        "new": ["keys", "new", "--no-gan", "--keystore", url, *kek],
        "rotate": ["keys", "rotate", "--new-kek-file", str(seeds.keyfile), "--keystore", url, *kek],
        "rewrap": ["keys", "rewrap", "--keystore", url, *kek],
        "revoke": ["keys", "revoke", key_id, "--yes", "--keystore", url, *kek],
        "export": [
            "keys",
            "export",
            key_id,
            "--to",
            str(seeds.recipient_pub),
            "-o",
            str(out / "k.kx"),
            "--keystore",
            url,
            *kek,
        ],
        "audit": ["keys", "audit", "--keystore", url, "--json"],
        "audit-verify": ["keys", "audit", "--verify", "--keystore", url, *kek],
        "import": [
            "keys",
            "import",
            str(seeds.export),
            "--identity",
            str(seeds.recipient_key),
            "--keystore",
            url,
            *kek,
        ],
    }[sub]
    if rng.random() < 0.15:
        argv = ["decrypt", str(seeds.containers["u8.kedi"]), "-o", str(out / "x.npy"), "--keystore", url, *kek]
        return "decrypt --keystore", argv, note
    return f"keys {argv[1]}", argv, note


def fam_exchange(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    """Export files and recipient keys: keys import / keys export with hostile bytes."""
    db = work / "ks.db"
    shutil.copyfile(seeds.keystore, db)
    url = f"sqlite:///{db}"
    kek = ["--kek-file", str(seeds.kek)]
    out = work / "out"
    which = rng.choice(["export-file", "export-file", "identity", "recipient"])
    source = {"export-file": seeds.export, "identity": seeds.recipient_key, "recipient": seeds.recipient_pub}[which]
    data, note = mutate(rng, source.read_bytes(), seeds.recipient_pub.read_bytes())
    hostile = work / source.name
    hostile.write_bytes(data)
    if which == "recipient":
        return (
            "keys export",
            [
                "keys",
                "export",
                seeds.key_ids[0],
                "--to",
                str(hostile),
                "-o",
                str(out / "k.kx"),
                "--keystore",
                url,
                *kek,
            ],
            f"{which}: {note}",
        )
    export = hostile if which == "export-file" else seeds.export
    identity = hostile if which == "identity" else seeds.recipient_key
    return (
        "keys import",
        ["keys", "import", str(export), "--identity", str(identity), "--keystore", url, *kek, "--json"],
        f"{which}: {note}",
    )


def fam_nist(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    path = work / "bits.bin"
    size = rng.choice([0, 1, 2, 13, 100, 1000, 20000])
    data = bytes(rng.getrandbits(8) for _ in range(size)) if size <= 1000 else seeds.bits.read_bytes()[:size]
    kind = rng.choice(["random", "zeros", "ones", "seed"])
    if kind == "zeros":
        data = bytes(len(data))
    elif kind == "ones":
        data = b"\xff" * len(data)
    path.write_bytes(data)
    argv = ["nist", str(path)]
    bits = rng.choice([None, None, 0, -1, 1, 7, 10**30, 8 * len(data) + 1])
    if bits is not None:
        argv += ["--bits", str(bits)]
    if rng.random() < 0.5:
        argv.append("--json")
    return "nist", argv, f"{size} {kind} bytes, --bits {bits}"


def _path_slots(seeds: Seeds, work: Path, hostile: Path, rng: random.Random) -> list[tuple[str, list[str]]]:
    """Every command with one of its path arguments replaced by ``hostile``."""
    out = work / "out"
    h = str(hostile)
    img, key, ct = str(seeds.images["u8.npy"]), str(seeds.keyfile), str(seeds.images["CT_small.dcm"])
    kedi = str(seeds.containers["u8.kedi"])
    url = f"sqlite:///{work / 'ks.db'}"
    kek = ["--kek-file", str(seeds.kek)]
    return [
        ("encrypt", ["encrypt", h, "-o", str(out / "x.kedi"), "--key", key]),
        ("encrypt", ["encrypt", img, "-o", h, "--key", key]),
        ("encrypt", ["encrypt", img, "-o", str(out / "x.kedi"), "--key", h]),
        ("encrypt --suite paper", ["encrypt", ct, "-o", str(out / "x.kedi"), "--key", h, "--suite", "paper"]),
        ("encrypt --as-dicom", ["encrypt", h, "-o", str(out / "x.dcm"), "--key", key, "--as-dicom"]),
        (
            "encrypt",
            [
                "encrypt",
                str(seeds.images["MR_small.dcm"]),
                "-o",
                str(out / "x.kedi"),
                "--key",
                str(seeds.sealed_keyfile),
                "--passphrase-file",
                h,
            ],
        ),
        ("decrypt", ["decrypt", h, "-o", str(out / "x.npy"), "--key", key]),
        ("decrypt", ["decrypt", kedi, "-o", h, "--key", key]),
        ("decrypt", ["decrypt", kedi, "-o", str(out / "x.npy"), "--key", h]),
        ("inspect", ["inspect", h]),
        ("inspect --json", ["inspect", h, "--json"]),
        ("inspect --cipher-image", ["inspect", kedi, "--cipher-image", h]),
        ("metrics", ["metrics", h]),
        ("metrics --against", ["metrics", img, "--against", h]),
        ("nist", ["nist", h]),
        ("speckle", ["speckle", h, "-o", str(out / "s.npy")]),
        ("speckle", ["speckle", img, "-o", h]),
        ("despeckle", ["despeckle", h, "-o", str(out / "d.npy")]),
        ("despeckle", ["despeckle", img, "-o", h]),
        ("keygen", ["keygen", "-o", h, "--no-gan"]),
        ("keygen", ["keygen", "-o", str(out / "k.key"), "--no-gan", "--passphrase-file", h]),
        ("keygen --suite paper", ["keygen", "--suite", "paper", "--like", h, "-o", str(out / "k.png")]),
        ("keygen --weights", ["keygen", "-o", str(out / "k.key"), "--weights", h]),
        ("keys init", ["keys", "init", "--keystore", url, "--kek-file", h]),
        ("keys init", ["keys", "init", "--keystore", url, "--passphrase-file", h]),
        ("keys list", ["keys", "list", "--keystore", f"sqlite:///{h}"]),
        ("keys audit", ["keys", "audit", "--keystore", f"sqlite:///{h}", *kek, "--verify"]),
        ("keys new", ["keys", "new", "--keystore", f"sqlite:///{h}", *kek, "--no-gan"]),
        (
            "keys export",
            [
                "keys",
                "export",
                seeds.key_ids[0],
                "--to",
                h,
                "-o",
                str(out / "k.kx"),
                "--keystore",
                f"sqlite:///{seeds.keystore}",
                *kek,
            ],
        ),
        ("keys import", ["keys", "import", h, "--identity", str(seeds.recipient_key), "--keystore", url, *kek]),
        ("keys rotate", ["keys", "rotate", "--new-kek-file", h, "--keystore", url, *kek]),
        ("keys recipient", ["keys", "recipient", "-o", h]),
    ]


def fam_special_path(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    hostile, kind = special_path(rng, work)
    shutil.copyfile(seeds.keystore, work / "ks.db")
    command, argv = rng.choice(_path_slots(seeds, work, hostile, rng))
    if kind in ("long-name",) and "-o" in argv and argv[argv.index("-o") + 1] == str(hostile):
        kind = "output name > 255 bytes"
    return command, argv, f"special path: {kind}"


def fam_options(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    """Valid files with hostile option values (numbers, enums, ids)."""
    out = work / "out"
    img, key = str(seeds.images["u8.npy"]), str(seeds.keyfile)
    bad_int = rng.choice(["-1", "0", str(2**64), "1e9", "nan", "", "-0"])
    bad_float = rng.choice(["nan", "inf", "-inf", "0", "-1", "1e308", "1e-320"])
    choices = [
        ("metrics", ["metrics", img, "--bits", bad_int]),
        ("metrics", ["metrics", img, "--alpha", bad_float]),
        ("metrics", ["metrics", img, "--seed", bad_int]),
        ("speckle", ["speckle", img, "-o", str(out / "s.npy"), "--level", bad_float]),
        ("speckle", ["speckle", img, "-o", str(out / "s.npy"), "--seed", bad_int]),
        ("despeckle", ["despeckle", img, "-o", str(out / "d.npy"), "--c", bad_float]),
        ("despeckle", ["despeckle", img, "-o", str(out / "d.npy"), "--d", bad_float]),
        (
            "encrypt --suite paper",
            [
                "encrypt",
                str(seeds.images["CT_small.dcm"]),
                "-o",
                str(out / "p.kedi"),
                "--key",
                str(seeds.key_image),
                "--suite",
                "paper",
                "--seed",
                bad_int,
            ],
        ),
        (
            "keygen --suite paper",
            [
                "keygen",
                "--suite",
                "paper",
                "--seed",
                bad_int,
                "-o",
                str(out / "k.png"),
                "--like",
                str(seeds.images["MR_small.dcm"]),
            ],
        ),
        (
            "keys show",
            [
                "keys",
                "show",
                rng.choice(["", "zz", "0" * 32, "../../etc", "x" * 5000]),
                "--keystore",
                f"sqlite:///{seeds.keystore}",
            ],
        ),
        (
            "keys rotate",
            [
                "keys",
                "rotate",
                "--batch-size",
                bad_int,
                "--keystore",
                f"sqlite:///{work / 'ks.db'}",
                "--kek-file",
                str(seeds.kek),
                "--new-kek-file",
                key,
            ],
        ),
        (
            "decrypt",
            [
                "decrypt",
                str(seeds.containers["u8.kedi"]),
                "-o",
                str(out / rng.choice(["x.exe", "x", "x.nii.gz", "x.png"])),
                "--key",
                key,
            ],
        ),
        (
            "encrypt",
            [
                "encrypt",
                img,
                "-o",
                str(out / "x.kedi"),
                "--key",
                key,
                "--keystore",
                rng.choice(["", "mysql://x", "sqlite:///", "::"]),
            ],
        ),
        ("nist", ["nist", str(seeds.bits), "--bits", bad_int]),
    ]
    shutil.copyfile(seeds.keystore, work / "ks.db")
    (work / "data" / "g").mkdir(parents=True)
    (work / "nodata").mkdir()
    command, argv = rng.choice(choices)
    return command, argv, f"hostile option value ({bad_int} / {bad_float})"


def fam_folder(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    """Folder inputs (encrypt or decrypt a folder) holding one hostile file beside a good one."""
    folder = work / "data" / rng.choice(["ct", "mr"])
    folder.mkdir(parents=True)
    name = rng.choice(["CT_small.dcm", "MR_small.dcm", "u8.npy", "grey.png"])
    data, note = mutate(rng, seeds.images[name].read_bytes(), b"")
    (folder / ("hostile" + Path(name).suffix)).write_bytes(data)
    shutil.copyfile(seeds.images["MR_small.dcm"], folder / "good.dcm")
    out = work / "out"
    if rng.random() < 0.6:
        return "encrypt (folder)", ["encrypt", str(folder), "-o", str(out / "enc"), "--key", str(seeds.keyfile)], note
    (folder / "hostile.kedi").write_bytes(mutate(rng, seeds.containers["u8.kedi"].read_bytes(), b"")[0])
    return "decrypt (folder)", ["decrypt", str(folder), "-o", str(out / "dec"), "--key", str(seeds.keyfile)], note


def fam_heavy(rng: random.Random, seeds: Seeds, work: Path) -> tuple[str, list[str], str]:
    """`reproduce --data` and `train --data/--resume`: seconds each, so a fixed few per run (HEAVY_EVERY)."""
    out = work / "out"
    kind = rng.choice(["reproduce-folder", "reproduce-special", "train-folder", "train-special", "train-resume"])
    if kind.endswith("special"):
        hostile, special = special_path(
            rng, work, rng.choice(["fifo", "missing", "symlink-loop", "long-name", "empty"])
        )
        if kind.startswith("reproduce"):
            slot = rng.choice(["--data", "--out"])
            argv = [
                "reproduce",
                "--data",
                str(hostile) if slot == "--data" else str(work / "nodata"),
                "--out",
                str(hostile) if slot == "--out" else str(out / "r"),
                "--quick",
            ]
            (work / "nodata").mkdir()
            return f"reproduce {slot}", argv, f"special path: {special}"
        return (
            "train --data",
            [
                "train",
                "--preset",
                "tiny",
                "--steps",
                "1",
                "--data",
                str(hostile),
                "-o",
                str(out / "w.safetensors"),
                "--device",
                "cpu",
            ],
            f"special path: {special}",
        )
    if kind == "train-resume":
        resume = work / "checkpoint.pt"
        data, note = mutate(rng, seeds.images["u8.npy"].read_bytes() * 2, b"")
        resume.write_bytes(rng.choice([data, b"", b"PK\x03\x04" + data]))
        return (
            "train --resume",
            [
                "train",
                "--preset",
                "tiny",
                "--steps",
                "1",
                "--resume",
                str(resume),
                "-o",
                str(out / "w.safetensors"),
                "--device",
                "cpu",
            ],
            f"checkpoint: {note}",
        )
    folder = work / "data" / "ct"
    folder.mkdir(parents=True)
    name = rng.choice(["CT_small.dcm", "MR_small.dcm", "grey.png"])
    data, note = mutate(rng, seeds.images[name].read_bytes(), b"")
    (folder / ("hostile" + Path(name).suffix)).write_bytes(data)
    shutil.copyfile(seeds.images["MR_small.dcm"], folder / "good.dcm")
    if kind.startswith("reproduce"):
        return "reproduce --data", ["reproduce", "--data", str(work / "data"), "--out", str(out / "r"), "--quick"], note
    return (
        "train --data",
        [
            "train",
            "--preset",
            "tiny",
            "--steps",
            "1",
            "--data",
            str(work / "data"),
            "-o",
            str(out / "w.safetensors"),
            "--device",
            "cpu",
        ],
        note,
    )


#: (family, weight): case i runs family CYCLE[i % len(CYCLE)], so every family is covered
#: at any case count of a few dozen, in fixed proportions.
FAMILIES: list[tuple[Callable[..., tuple[str, list[str], str]], int]] = [
    (fam_image_mutation, 8),
    (fam_image_crafted, 5),
    (fam_container, 7),
    (fam_keyfile, 3),
    (fam_key_image, 2),
    (fam_keystore, 4),
    (fam_exchange, 2),
    (fam_nist, 1),
    (fam_special_path, 5),
    (fam_options, 2),
    (fam_folder, 1),
]
CYCLE = [f for f, weight in FAMILIES for _ in range(weight)]
#: Case ids HEAVY_OFFSET, HEAVY_OFFSET + HEAVY_EVERY, ... run `reproduce`/`train` (fam_heavy):
#: 4 in 1,500 cases, 1 in the test suite's 80.
HEAVY_EVERY, HEAVY_OFFSET = 375, 77


def make_case(seed: int, case_id: int, seeds: Seeds, work: Path) -> Case:
    rng = random.Random(f"{seed}:{case_id}")
    family = fam_heavy if case_id % HEAVY_EVERY == HEAVY_OFFSET else CYCLE[case_id % len(CYCLE)]
    (work / "out").mkdir(parents=True, exist_ok=True)
    command, argv, description = family(rng, seeds, work)
    timeout = FIFO_TIMEOUT_S if "fifo" in description else CASE_TIMEOUT_S
    if command.startswith(("reproduce", "train")):
        timeout = 60.0
    return Case(case_id, family.__name__.removeprefix("fam_"), command, argv, description, timeout)


# ------------------------------------------------------------------------------ worker


class CaseTimeout(BaseException):
    """Raised by SIGALRM in a case that runs past its limit (BaseException: no handler swallows it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def _worker_environment(home: Path) -> None:
    """A worker touches nothing of the user's: its own HOME, data folder and keystore."""
    for name in list(os.environ):
        if name.startswith("KEDI_"):
            del os.environ[name]
    os.environ["HOME"] = str(home)
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    os.environ["KEDI_KEYSTORE"] = f"sqlite:///{home / 'default-keystore.db'}"
    os.environ["COLUMNS"] = "120"


def _reset_peak_rss() -> None:
    """Start this case's high-water mark at the worker's current size (Linux: clear_refs 5).

    Without it a worker's peak is the largest of every case it ran, and an earlier case's
    peak would be charged to each later one.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass  # elsewhere: ru_maxrss, the worker's lifetime peak (stricter, never laxer)


def _peak_rss_mib() -> float:
    """This case's peak resident size: VmHWM since :func:`_reset_peak_rss`, else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: Case) -> dict[str, Any]:
    """Run one case in this process; the record says whether it kept the contract."""
    from typer.testing import CliRunner

    from deepkedi.cli import app

    runner = CliRunner()
    escaped: BaseException | None = None
    trace = ""
    _reset_peak_rss()
    start = time.perf_counter()
    previous_handler = signal.signal(signal.SIGALRM, _on_alarm)
    # Repeating: a library that swallows the first CaseTimeout (a bare `except:` around an
    # import) must not turn a hang into a stuck worker.
    signal.setitimer(signal.ITIMER_REAL, case.timeout, 1.0)
    result = None
    try:
        result = runner.invoke(app, case.argv, catch_exceptions=True, env=case.env or None)
    except CaseTimeout as exc:
        escaped = exc
    except BaseException as exc:  # noqa: BLE001 - anything escaping CliRunner is a finding
        escaped, trace = exc, traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)  # the process (pytest, a worker) gets its own back
    elapsed = time.perf_counter() - start
    stdout = stderr = ""
    exit_code: int | None = None
    if result is not None:
        stdout, exit_code = result.stdout, result.exit_code
        try:
            stderr = result.stderr
        except ValueError:
            stderr = ""
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            escaped = result.exception
            trace = "".join(traceback.format_exception(type(escaped), escaped, escaped.__traceback__))
    failures = []
    if isinstance(escaped, CaseTimeout):
        failures.append("hang")
    elif escaped is not None:
        failures.append("traceback")
    elif "Traceback (most recent call last)" in stdout + stderr:
        failures.append("traceback-in-output")
    if exit_code is not None and exit_code not in ALLOWED_EXIT_CODES and not failures:
        failures.append("exit-code")
    rss_mib = _peak_rss_mib()
    if rss_mib >= RSS_LIMIT_MIB:
        failures.append("rss")
    lines = [line for line in stderr.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith("kedi: error:")]
    first = (error_lines or lines or [""])[0]
    where = ""
    if escaped is not None and not isinstance(escaped, CaseTimeout) and escaped.__traceback__ is not None:
        frames = [f for f in traceback.extract_tb(escaped.__traceback__) if "/deepkedi/" in f.filename]
        if frames:
            f = frames[-1]
            where = f"{f.filename.split('/deepkedi/')[-1]}:{f.lineno} in {f.name}"
    return {
        "id": case.id,
        "family": case.family,
        "command": case.command,
        "argv": case.argv,
        "input": case.description,
        "exit_code": exit_code,
        "exception": None
        if escaped is None
        else f"{type(escaped).__name__}: {str(escaped).splitlines()[0][:200] if str(escaped) else ''}",
        "where": where,
        "stderr_first": first[:300],
        "seconds": round(elapsed, 3),
        "rss_mib": round(rss_mib, 1),
        "failures": failures,
        "trace": trace[-4000:] if trace else "",
    }


def worker_main(args: argparse.Namespace) -> int:
    """Read case ids on stdin, run each, write one JSON record per case to ``--results-fd``."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))
    seeds = Seeds.load(Path(args.seeds))
    home = Path(tempfile.mkdtemp(prefix="worker-", dir=args.homes))
    _worker_environment(home)
    import gc

    from deepkedi.cli import app  # noqa: F401 - import once, before the first case is timed

    gc.collect()
    gc.freeze()  # what the imports made lives as long as the worker: later collections skip it

    results = os.fdopen(args.results_fd, "w", buffering=1)
    results.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        case_id = int(line)
        work = Path(tempfile.mkdtemp(prefix=f"case-{case_id}-", dir=home))
        try:
            case = make_case(args.seed, case_id, seeds, work)
            record = run_case(case)
        except BaseException as exc:  # noqa: BLE001 - a broken generator is reported, not fatal
            record = {
                "id": case_id,
                "family": "?",
                "command": "(harness)",
                "argv": [],
                "input": "",
                "exit_code": None,
                "exception": f"harness error {type(exc).__name__}: {exc}",
                "where": "",
                "stderr_first": "",
                "seconds": 0,
                "rss_mib": 0,
                "failures": ["harness"],
                "trace": traceback.format_exc()[-4000:],
            }
        if record["failures"]:
            keep = Path(args.keep) / f"case-{case_id}"
            shutil.rmtree(keep, ignore_errors=True)
            with contextlib.suppress(OSError):
                shutil.copytree(
                    work, keep, symlinks=True, ignore=lambda d, names: [n for n in names if n.endswith(".fifo")]
                )
        _remove_tree(work)
        _clear_caches()
        # A fresh worker measures the cases after an RSS failure; an interrupted case may have
        # left a half-imported module (torch) behind that would fail the next case needing it.
        # A worker that grew (torch loaded by keygen or train: about 300 MiB more) is replaced too,
        # so that each case is measured on a baseline near a fresh `kedi` process's.
        record["retire"] = (
            "rss" in record["failures"] or "hang" in record["failures"] or _resident_mib() > RETIRE_ABOVE_MIB
        )
        results.write(json.dumps(record) + "\n")
        if record["retire"]:
            return 0
    return 0


#: A worker whose resident size stays above this after a case is replaced by a fresh one.
RETIRE_ABOVE_MIB = 320


def _resident_mib() -> float:
    """The worker's current resident size (not its high-water mark)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0  # cannot tell: keep the worker


def _clear_caches() -> None:
    """Empty deepkedi's memo caches (ripplet windows, noise gains...) between cases.

    ``ru_maxrss`` is a high-water mark: memory one case leaves cached would be counted
    again in every later case's peak, and a worker that has seen many shapes would fail
    the limit on a case that needs little.
    """
    import gc

    for name, module in list(sys.modules.items()):
        if not name.startswith("deepkedi") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()
    # Garbage cycles (a traceback's frames) can keep a case's arrays alive. A full collection
    # over torch's objects costs about 0.14 s, more than most cases: what survives one is
    # frozen, so the next collection looks only at what later cases made.
    gc.collect()
    gc.freeze()


def _remove_tree(path: Path) -> None:
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o700)
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------ driver


class Worker:
    def __init__(self, args: argparse.Namespace, log: Path) -> None:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        src = str(HERE.parent.parent / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else src
        self.log = open(log, "ab")  # noqa: SIM115 - the worker's log for its whole life, closed by stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                "--seeds",
                args.seeds_dir,
                "--seed",
                str(args.seed),
                "--keep",
                str(args.keep),
                "--results-fd",
                str(write_fd),
                "--homes",
                str(args.homes),
            ],
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=self.log,
            pass_fds=(write_fd,),
            env=env,
        )
        os.close(write_fd)
        self.results = os.fdopen(read_fd, "r")
        self.buffer = ""
        self.readline(120.0)  # "ready"

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while "\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.results], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self.results.fileno(), 65536).decode()
                if not chunk:
                    return None  # the worker died
                self.buffer += chunk
            elif self.proc.poll() is not None:
                return None
        line, self.buffer = self.buffer.split("\n", 1)
        return line

    def run(self, case_id: int, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{case_id}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        line = self.readline(timeout)
        return None if line is None else json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.results.close()
        self.log.close()


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    ids = list(range(args.first, args.first + args.cases))
    queue = collections.deque(ids)
    lock = threading.Lock()
    records: list[dict[str, Any]] = []
    progress = {"done": 0}

    def slot(index: int) -> None:
        worker: Worker | None = None
        while True:
            with lock:
                if not queue:
                    break
                case_id = queue.popleft()
            if worker is None or not worker.alive():
                if worker is not None:
                    worker.stop()
                worker = Worker(args, Path(args.out) / f"worker-{index}.log")
            # The worker's own SIGALRM ends a case at its limit (at most 60 s); the driver
            # waits longer, for a case stuck outside Python.
            record = worker.run(case_id, 60.0 + 30.0)
            if record is None:
                code = worker.proc.poll()
                worker.stop()
                worker = None
                record = {
                    "id": case_id,
                    "family": "?",
                    "command": "?",
                    "argv": [],
                    "input": "",
                    "exit_code": None,
                    "exception": "worker killed: no answer in 90 s" if code is None else f"worker died (status {code})",
                    "where": "",
                    "stderr_first": "",
                    "seconds": 90.0,
                    "rss_mib": 0,
                    "failures": ["hang" if code is None else "crash"],
                    "trace": "",
                }
                # Regenerate the case's description for the report.
                try:
                    seeds = Seeds.load(Path(args.seeds_dir))
                    tmp = Path(tempfile.mkdtemp(prefix="describe-", dir=args.homes))
                    case = make_case(args.seed, case_id, seeds, tmp)
                    record.update(family=case.family, command=case.command, argv=case.argv, input=case.description)
                    _remove_tree(tmp)
                except Exception:  # noqa: BLE001
                    pass
            if record.pop("retire", False) and worker is not None:
                worker.stop()  # the driver replaces it; it may not even finish exiting by itself
                worker = None
            with lock:
                records.append(record)
                progress["done"] += 1
                if args.verbose and record["failures"]:
                    print(
                        f"[{progress['done']}/{len(ids)}] case {record['id']} {record['command']}: "
                        f"{','.join(record['failures'])} {record['exception'] or record['exit_code']}",
                        flush=True,
                    )
        if worker is not None:
            assert worker.proc.stdin is not None
            worker.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=30)
            worker.stop()

    threads = [threading.Thread(target=slot, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(records, key=lambda r: r["id"])


def signature(record: dict[str, Any]) -> str:
    """What distinguishes one defect from another: command, failure kind, and where or what."""
    kind = ",".join(record["failures"])
    if record["exception"] and "traceback" in kind:
        detail = f"{record['exception'].split(':')[0]} at {record['where'] or '?'}"
    elif "exit-code" in kind:
        detail = f"exit {record['exit_code']}: {_shape_of(record['stderr_first'])}"
    elif "traceback-in-output" in kind:
        detail = _shape_of(record["stderr_first"])
    else:
        detail = record["exception"] or ""
    if {"hang", "rss", "crash"} & set(record["failures"]) and "traceback" not in kind:
        # Hangs and memory have no frame to tell them apart: the kind of input does.
        detail = f"{detail} on {record.get('input', '').split(':')[0][:40]}".strip()
    return f"{record['command']} | {kind} | {detail}"


def _shape_of(line: str) -> str:
    """A message with its paths and numbers blanked, so that one defect is one signature."""
    import re

    line = re.sub(r"(/[^\s:,'\"]+)+", "PATH", line)
    return re.sub(r"\d+", "N", line)[:120]


def summarise(records: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> tuple[str, bool]:
    by_command: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in records:
        by_command[r["command"]][str(r["exit_code"]) if not r["failures"] else "FAIL"] += 1
    failures = [r for r in records if r["failures"]]
    max_rss = max((r["rss_mib"] for r in records), default=0.0)
    lines = [
        (
            f"hostile-input harness: seed {args.seed}, cases {args.first}..{args.first + args.cases - 1} "
            f"({len(records)} run), {args.workers} workers, {elapsed:.0f} s"
        ),
        f"contract: no traceback, exit code in {sorted(ALLOWED_EXIT_CODES)}, no hang, peak RSS < {RSS_LIMIT_MIB} MiB",
        f"peak worker RSS: {max_rss:.0f} MiB; slowest case: "
        + (lambda r: f"{r['seconds']:.1f} s (case {r['id']}, {r['command']})")(max(records, key=lambda r: r["seconds"]))
        if records
        else "no cases",
        "",
        "cases per command and exit code (FAIL = broke the contract):",
    ]
    codes = sorted({c for counter in by_command.values() for c in counter}, key=lambda c: (c == "FAIL", c))
    lines.append(f"  {'command':28s} " + " ".join(f"{c:>6s}" for c in codes) + "   total")
    for command in sorted(by_command):
        counter = by_command[command]
        lines.append(
            f"  {command:28s} " + " ".join(f"{counter.get(c, 0):6d}" for c in codes) + f"   {sum(counter.values()):5d}"
        )
    lines.append("")
    if not failures:
        lines.append(f"PASS: {len(records)} cases kept the contract")
        return "\n".join(lines) + "\n", True
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in failures:
        groups[signature(r)].append(r)
    lines.append(f"FAIL: {len(failures)} of {len(records)} cases broke the contract, {len(groups)} distinct signatures")
    lines.append("(command | failure | exception and innermost deepkedi frame, or exit code and message)")
    for sig, members in sorted(groups.items(), key=lambda kv: (kv[0].split(" | ")[0], -len(kv[1]))):
        first = members[0]
        lines.append("")
        lines.append(f"* {sig}  [{len(members)} case{'s' if len(members) > 1 else ''}]")
        lines.append(f"    input: {first['input'][:160]}")
        if first["stderr_first"]:
            lines.append(f"    stderr: {first['stderr_first'][:160]}")
        lines.append(
            f"    replay: python tests/hostile/harness.py --seed {args.seed} --case {first['id']}"
            f"   (input kept in {Path(args.keep) / ('case-' + str(first['id']))})"
        )
    return "\n".join(lines) + "\n", False


def replay(args: argparse.Namespace) -> int:
    """Run one case in this process and show everything it printed."""
    home = Path(tempfile.mkdtemp(prefix="replay-", dir=args.homes))
    _worker_environment(home)
    seeds_dir = Path(args.seeds_dir)
    seeds = Seeds.load(seeds_dir) if (seeds_dir / "seeds.json").exists() else build_seeds(seeds_dir)
    case = make_case(args.seed, args.case, seeds, home / "work")
    print(f"case {case.id} ({case.family}): {case.description}\n  kedi {' '.join(case.argv)}")
    record = run_case(case)
    print(json.dumps({k: v for k, v in record.items() if k != "trace"}, indent=1))
    if record["trace"]:
        print(record["trace"])
    return 1 if record["failures"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1500)
    parser.add_argument("--first", type=int, default=0, help="First case id (cases first .. first+cases-1).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE.parent.parent / "bench" / "out" / "hostile"))
    parser.add_argument("--case", type=int, help="Replay this one case in-process and print its output.")
    parser.add_argument("--verbose", action="store_true", help="Print each failing case as it happens.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", help=argparse.SUPPRESS)
    parser.add_argument("--keep", help=argparse.SUPPRESS)
    parser.add_argument("--results-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--homes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.seeds_dir = str(out / "seeds")
    args.keep = out / "failures"
    # Workers' HOME and case folders: under OUT, removed at the end of a run.
    args.homes = out / "homes"
    args.homes.mkdir(exist_ok=True)
    if args.case is not None:
        return replay(args)
    start = time.monotonic()
    shutil.rmtree(args.seeds_dir, ignore_errors=True)
    shutil.rmtree(args.keep, ignore_errors=True)
    args.keep.mkdir()
    for log in out.glob("worker-*.log"):
        log.unlink()
    _seed_environment = dict(os.environ)
    home = Path(tempfile.mkdtemp(prefix="seeds-", dir=args.homes))
    _worker_environment(home)
    build_seeds(Path(args.seeds_dir))
    os.environ.clear()
    os.environ.update(_seed_environment)
    seeded = time.monotonic() - start
    records = run_all(args)
    _remove_tree(args.homes)
    elapsed = time.monotonic() - start
    with open(out / "results.jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    text, passed = summarise(records, args, elapsed)
    text = text.replace("workers, ", f"workers, seed files {seeded:.0f} s, ", 1)
    (out / "summary.txt").write_text(text)
    print(text, end="")
    print(f"(summary: {out / 'summary.txt'}, every case: {out / 'results.jsonl'})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
