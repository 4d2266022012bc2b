"""Write the known-answer vectors of docs/FORMAT.md §8, one JSON file per case.

Run with ``make vectors``. Success cases go through the deterministic seam
(``_encrypt_from_parts`` / ``_encrypt_file_from_parts``) with fixed salts and nonce
prefixes, so rerunning this script reproduces the files exactly; failure cases
are made from them by one precise change each.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from deepkedi.cipher.format import ContainerHeader, parse_header
from deepkedi.cipher.hybrid import _encrypt_file_from_parts, _encrypt_from_parts
from deepkedi.keys import Key

HERE = Path(__file__).parent


def _key(seed: int) -> Key:
    digest = hashlib.sha256(f"deepkedi test vector key {seed}".encode()).digest()
    return Key(
        key_id=hashlib.sha256(digest).digest()[:16],
        secret=digest,
        created="2026-01-01T00:00:00Z",
        suite="hybrid",
        provenance={"sources": ["test-vector"]},
    )


def _key_doc(key: Key) -> dict:
    import base64

    return {
        "deepkedi_key": 1,
        "key_id": key.key_id.hex(),
        "created": key.created,
        "suite": key.suite,
        "provenance": dict(key.provenance),
        "secret": base64.b64encode(key.secret).decode(),
    }


def _fixed(label: str, n: int) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


def _pixels_record(pixels: np.ndarray) -> dict:
    little = pixels.astype(pixels.dtype.newbyteorder("<") if pixels.dtype.itemsize > 1 else pixels.dtype)
    return {"dtype": pixels.dtype.str, "shape": list(pixels.shape), "hex": little.tobytes().hex()}


def _write(name: str, case: dict) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(case, indent=1, sort_keys=True) + "\n")


def main() -> int:
    for old in HERE.glob("*.json"):
        old.unlink()
    key = _key(1)
    rng = np.random.default_rng(20261128)
    arrays = {
        "u8-2d": rng.integers(0, 256, (5, 7), dtype=np.uint8),
        "u16-2d": rng.integers(0, 4096, (6, 4), dtype=np.uint16),
        "i16-3d": rng.integers(-1024, 3000, (2, 3, 5), dtype=np.int16),
        "rgb-2d": rng.integers(0, 256, (4, 3, 3), dtype=np.uint8),
    }
    containers = {}
    for (name, pixels), pattern in zip(arrays.items(), ["vertical", "horizontal", "diagonal", "diagonal"]):
        salt, prefix = _fixed(f"salt {name}", 32), _fixed(f"nonce {name}", 7)
        if name == "rgb-2d":
            from deepkedi.imaging import MedicalImage

            source = MedicalImage(pixels=pixels, photometric="RGB", samples_per_pixel=3, channels_last=True)
        else:
            source = pixels
        # A small segment size so that several segments are exercised.
        blob = _encrypt_from_parts(source, key, pattern=pattern, salt=salt, nonce_prefix=prefix, segment_size=1024)
        containers[name] = blob
        _write(
            f"success-{name}-{pattern}",
            {
                "description": f"{pixels.dtype} {pixels.shape} encrypted from memory, {pattern} scan",
                "expect": "success",
                "key": _key_doc(key),
                "salt": salt.hex(),
                "nonce_prefix": prefix.hex(),
                "container": blob.hex(),
                "pixels": _pixels_record(pixels),
            },
        )

    # A file case: an .npy volume restored byte for byte (splice), spanning segments.
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "volume.npy"
        volume = rng.integers(0, 65536, (3, 16, 24), dtype=np.uint16)
        np.save(src, volume)
        dst = Path(tmp) / "volume.npy.kedi"
        salt, prefix = _fixed("salt file", 32), _fixed("nonce file", 7)
        _encrypt_file_from_parts(src, dst, key, pattern="diagonal", salt=salt, nonce_prefix=prefix, segment_size=1024)
        _write(
            "success-file-npy-diagonal",
            {
                "description": "a 3×16×24 uint16 .npy file, restored byte for byte (splice), 3 segments",
                "expect": "success",
                "key": _key_doc(key),
                "salt": salt.hex(),
                "nonce_prefix": prefix.hex(),
                "container": dst.read_bytes().hex(),
                "pixels": _pixels_record(volume),
                "file": src.read_bytes().hex(),
            },
        )

    base = containers["u16-2d"]
    header = parse_header(base)
    n = header.encoded_length

    def variant(name: str, data: bytes, expect: str, description: str, use_key: Key = key) -> None:
        _write(name, {"description": description, "expect": expect, "key": _key_doc(use_key), "container": data.hex()})

    def flipped(at: int, bit: int = 0) -> bytes:
        data = bytearray(base)
        data[at] ^= 1 << bit
        return bytes(data)

    variant(
        "not-a-container", b"\x89PNG\r\n\x1a\n" + base[8:], "not a container", "a PNG signature where the magic belongs"
    )
    variant("header-magic-bit", flipped(3), "header failure", "one bit of the magic flipped")
    variant("header-version", flipped(8, 1), "header failure", "version 3")
    variant("header-flags-reserved", flipped(13, 5), "header failure", "a reserved flag bit set")
    variant("header-pattern-unknown", flipped(12, 2), "header failure", "pattern code 6")
    variant("header-truncated", base[: n - 3], "header failure", "cut inside the header")
    variant("length-appended", base + b"\x00", "length failure", "one byte appended")
    variant("length-truncated", base[:-1], "length failure", "last byte removed")
    variant("length-shape", flipped(n - 1), "length failure", "last dimension changed: the header claims another size")
    variant("wrong-key-id", flipped(17), "wrong key", "key id changed")
    variant("tag-salt", flipped(40), "tag failure", "one bit of the salt flipped (header bound as AAD)")
    variant("tag-ciphertext", flipped(n + 5), "tag failure", "one bit of the first segment's ciphertext flipped")
    variant("tag-tag", flipped(len(base) - 1, 7), "tag failure", "one bit of the last tag flipped")
    variant("wrong-key", base, "wrong key", "decrypted with another key", use_key=_key(2))
    # Swapping two segments keeps the length: only the counters in the nonces reveal it.
    multi = containers["u8-2d"]
    h2 = parse_header(multi)
    assert h2.segment_count == 1
    big = containers["rgb-2d"]
    h3 = parse_header(big)
    if h3.segment_count < 2:
        # Build a payload long enough for two segments and swap them.
        pixels = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40)
        big = _encrypt_from_parts(
            pixels,
            key,
            pattern="horizontal",
            salt=_fixed("salt swap", 32),
            nonce_prefix=_fixed("nonce swap", 7),
            segment_size=1024,
        )
        h3 = parse_header(big)
    step = h3.segment_size + 16
    start = h3.encoded_length
    first, second = big[start : start + step], big[start + step : start + 2 * step]
    if len(second) == step:
        swapped = big[:start] + second + first + big[start + 2 * step :]
        variant("tag-reordered", swapped, "tag failure", "first two segments swapped")
    # Dropping the last segment and fixing nothing else: the header's length rule catches it.
    variant("length-dropped-segment", big[: start + step], "length failure", "only the first segment kept")
    assert isinstance(header, ContainerHeader)
    return 0


if __name__ == "__main__":
    sys.exit(main())
