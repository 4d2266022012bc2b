"""Write the known-answer vectors of docs/FORMAT.md §8, one JSON file per case.

Run with ``make vectors``. Hybrid containers (this folder): success cases go through
the deterministic seam (``_encrypt_from_parts`` / ``_encrypt_file_from_parts``) with
fixed salts and nonce prefixes, so rerunning this script reproduces the files exactly;
failure cases are made from them by one precise change each. The same holds for the
``paper/`` containers (§9), the ``export/`` key exports (§10.5, ephemeral key and
nonce fixed), the ``keystore/`` primitives (§10.2-10.4, nonces fixed) and the sealed
``keyfile/`` documents (§6, salt and nonce fixed).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from deepkedi.cipher.format import ContainerHeader, parse_header
from deepkedi.cipher.hybrid import _encrypt_file_from_parts, _encrypt_from_parts, _encrypt_opaque_file_from_parts
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
    path = HERE / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(case, indent=1, sort_keys=True) + "\n")


def main() -> int:
    for old in [*HERE.glob("*.json"), *HERE.glob("*/*.json")]:
        old.unlink()
    _paper_cases()
    _export_cases()
    _keystore_cases()
    _keyfile_cases()
    key = _key(1)
    rng = np.random.default_rng(20261128)
    arrays = {
        "u8-2d": rng.integers(0, 256, (5, 7), dtype=np.uint8),
        "u16-2d": rng.integers(0, 4096, (6, 4), dtype=np.uint16),
        "i16-3d": rng.integers(-1024, 3000, (2, 3, 5), dtype=np.int16),
        "rgb-2d": rng.integers(0, 256, (4, 3, 3), dtype=np.uint8),
    }
    containers = {}
    for (name, pixels), pattern in zip(arrays.items(), ["vertical", "horizontal", "diagonal", "diagonal"], strict=True):
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

    # An opaque container (§5.3): a file that is not an image, sealed whole, spanning two segments.
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "report.txt"
        src.write_bytes(b"".join(b"line %04d of a report that is not an image\n" % i for i in range(40)))
        dst = Path(tmp) / "report.txt.kedi"
        salt, prefix = _fixed("salt opaque", 32), _fixed("nonce opaque", 7)
        _encrypt_opaque_file_from_parts(src, dst, key, salt=salt, nonce_prefix=prefix, segment_size=1024)
        opaque = dst.read_bytes()
        _write(
            "success-opaque-file",
            {
                "description": "an opaque container: a 1,720-byte text file sealed whole, restored byte for byte, "
                "2 segments",
                "expect": "success",
                "key": _key_doc(key),
                "salt": salt.hex(),
                "nonce_prefix": prefix.hex(),
                "container": opaque.hex(),
                "file": src.read_bytes().hex(),
            },
        )
    at = parse_header(opaque).encoded_length - 1
    _write(
        "header-opaque-shape",
        {
            "description": "an opaque container whose shape says (0, 1): opaque headers have shape (0, 0) only",
            "expect": "header failure",
            "key": _key_doc(key),
            "container": (opaque[:at] + b"\x01" + opaque[at + 1 :]).hex(),
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


def _paper_cases() -> None:
    """Suite 2 (§9): cipher words = zigzag(plane) XOR key image; speckle left out (it is public
    noise applied before the scan, so a vector's plane stands for the speckled plane)."""
    from deepkedi.cipher.paper import encrypt_image_paper
    from deepkedi.keys import KeyImage

    rng = np.random.default_rng(20261129)
    planes = {
        "u8-2d": (rng.integers(0, 256, (5, 7), dtype=np.uint8), "vertical"),
        "u16-2d": (rng.integers(0, 65536, (6, 4), dtype=np.uint16), "horizontal"),
        "i16-3d": (rng.integers(-1024, 3000, (2, 3, 5), dtype=np.int16), "diagonal"),
    }
    containers, keys = {}, {}
    for name, (pixels, pattern) in planes.items():
        key_dtype = np.uint8 if pixels.dtype.itemsize == 1 else np.uint16
        key = KeyImage(rng.integers(0, np.iinfo(key_dtype).max + 1, pixels.shape[-2:], dtype=key_dtype))
        blob = encrypt_image_paper(pixels, key, pattern=pattern, speckle=False)
        containers[name], keys[name] = blob, key
        _write(
            f"paper/success-{name}-{pattern}",
            {
                "description": f"{pixels.dtype} {pixels.shape}, {pattern} scan, XOR with a {key.bits}-bit key image",
                "expect": "success",
                "key_image": {**_pixels_record(key.pixels), "key_id": key.key_id.hex()},
                "container": blob.hex(),
                "pixels": _pixels_record(pixels),
            },
        )
    base, key = containers["u16-2d"], keys["u16-2d"]
    header = parse_header(base)
    n = header.encoded_length

    def variant(name: str, data: bytes, expect: str, description: str, use_key: KeyImage = key, **extra) -> None:
        _write(
            f"paper/{name}",
            {
                "description": description,
                "expect": expect,
                "container": data.hex(),
                "key_image": {**_pixels_record(use_key.pixels), "key_id": use_key.key_id.hex()},
                **extra,
            },
        )

    def flipped(at: int, bit: int = 0) -> bytes:
        data = bytearray(base)
        data[at] ^= 1 << bit
        return bytes(data)

    other = KeyImage(key.pixels ^ np.uint16(1 << 15))
    variant("wrong-key-image", base, "wrong key", "another key image (its id differs from the header's)", other)
    variant("length-appended", base + b"\x00\x00", "wrong key", "one word appended: refused like a wrong key (§9.4)")
    variant("length-truncated", base[:-1], "wrong key", "last byte removed: refused like a wrong key (§9.4)")
    variant("header-salt", flipped(33 + 7), "header failure", "one bit of the salt set: paper salts are zero")
    variant("header-channels-last", flipped(13), "header failure", "channels_last set: paper planes are greyscale")
    # The suite's weakness, as a vector: a changed cipher word decrypts without complaint.
    tampered = bytearray(base)
    tampered[n + 2 * 5] ^= 0x80  # high bit of cipher word 5 (raster order)
    restored = np.frombuffer(bytes(tampered[n:]), "<u2") ^ key.pixels.astype("<u2").ravel()
    from deepkedi.transforms.zigzag import zigzag_unscan

    changed = zigzag_unscan(restored.reshape(1, -1), *key.shape, header.pattern).reshape(header.shape)
    variant(
        "undetected-word",
        bytes(tampered),
        "undetected modification",
        "one cipher word changed: decrypts without error to an image with one pixel changed",
        pixels=_pixels_record(changed.astype(np.uint16)),
    )


def _export_cases() -> None:
    """§10.5: X25519 + HKDF-SHA256 + AES-256-GCM, ephemeral key and nonce fixed."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from deepkedi.keys.keystore.export import _export_from_parts

    recipient = X25519PrivateKey.from_private_bytes(_fixed("export recipient", 32))
    ephemeral = X25519PrivateKey.from_private_bytes(_fixed("export ephemeral", 32))
    nonce = _fixed("export nonce", 12)
    import base64

    entries = []
    for seed, label in ((3, "study 1.2.3"), (4, None)):
        key = _key(seed)
        entries.append(
            {
                "key_id": key.key_id.hex(),
                "secret": base64.b64encode(key.secret).decode(),
                "created": key.created,
                "suite": key.suite,
                "label": label,
                "provenance": dict(key.provenance),
            }
        )
    payload = json.dumps(entries, sort_keys=True).encode("utf-8")
    blob = _export_from_parts(payload, recipient.public_key().public_bytes_raw(), ephemeral, nonce)
    common = {
        "recipient_private": recipient.private_bytes_raw().hex(),
        "recipient_public": recipient.public_key().public_bytes_raw().hex(),
    }
    _write(
        "export/success-two-keys",
        {
            "description": "two data keys sealed to one recipient",
            "expect": "success",
            **common,
            "ephemeral_private": ephemeral.private_bytes_raw().hex(),
            "nonce": nonce.hex(),
            "payload": payload.decode("utf-8"),
            "export": blob.hex(),
        },
    )

    def variant(name: str, data: bytes, expect: str, description: str, private: bytes | None = None) -> None:
        case = {"description": description, "expect": expect, **common, "export": data.hex()}
        if private is not None:
            case["recipient_private"] = private.hex()
            other = X25519PrivateKey.from_private_bytes(private)
            case["recipient_public"] = other.public_key().public_bytes_raw().hex()
        _write(f"export/{name}", case)

    def flipped(at: int) -> bytes:
        data = bytearray(blob)
        data[at] ^= 0x01
        return bytes(data)

    variant("not-an-export", b"\x89KEDI\r\n\x1a" + blob[8:], "format failure", "a container's magic")
    variant("version", blob[:8] + b"\x02" + blob[9:], "format failure", "version 2")
    variant("tag-ephemeral", flipped(9 + 31), "authentication failure", "one bit of the ephemeral key flipped")
    variant("tag-nonce", flipped(41), "authentication failure", "one bit of the nonce flipped")
    variant("tag-ciphertext", flipped(60), "authentication failure", "one bit of the ciphertext flipped")
    variant("tag-tag", flipped(len(blob) - 1), "authentication failure", "one bit of the tag flipped")
    variant("short", blob[: 9 + 32 + 12 + 15], "authentication failure", "cut one byte short of a tag")
    variant(
        "wrong-recipient",
        blob,
        "authentication failure",
        "opened with another recipient key",
        _fixed("export other recipient", 32),
    )
    # A low-order point: X25519 with it gives the all-zero shared secret (RFC 7748 §6.1).
    variant(
        "low-order-ephemeral",
        blob[:9] + bytes(32) + blob[41:],
        "authentication failure",
        "ephemeral public key 0 (low order: all-zero shared secret)",
    )


def _keystore_cases() -> None:
    """§10.2-10.4: KEK derivation, check value, wrapping, audit chain."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from deepkedi.keys.keystore import CHECK_AAD, CHECK_PLAINTEXT, WRAP_AAD, PassphraseKek, RawKek
    from deepkedi.keys.keystore._encoding import _u32
    from deepkedi.keys.keystore.audit import _audit_key, _audit_row_bytes, _head_bytes, _hmac
    from deepkedi.keys.keystore.kek import _derive_kek

    material = _fixed("keystore kek material", 32)
    hkdf_params = {"kdf": "hkdf-sha256", "salt": base64.b64encode(_fixed("keystore hkdf salt", 16)).decode()}
    kek = _derive_kek(RawKek(material), hkdf_params)
    check_nonce = _fixed("keystore check nonce", 12)
    _write(
        "keystore/kek-hkdf",
        {
            "description": "KEK version 1 from 32 bytes of key material, and its check value",
            "material": material.hex(),
            "params": hkdf_params,
            "kek": kek.hex(),
            "version": 1,
            "check_value": (check_nonce + AESGCM(kek).encrypt(check_nonce, CHECK_PLAINTEXT, CHECK_AAD + _u32(1))).hex(),
        },
    )
    passphrase = "correct horse battery staple \u00e9"
    scrypt_params = {
        "kdf": "scrypt",
        "n": 2**15,
        "r": 8,
        "p": 1,
        "salt": base64.b64encode(_fixed("keystore scrypt salt", 16)).decode(),
    }
    _write(
        "keystore/kek-scrypt",
        {
            "description": "KEK from a passphrase (UTF-8, non-ASCII) with the smallest n writers may use",
            "passphrase": passphrase,
            "params": scrypt_params,
            "kek": _derive_kek(PassphraseKek(passphrase), scrypt_params).hex(),
        },
    )
    secret, key_id, version = _fixed("keystore data key", 32), _fixed("keystore key id", 16), 3
    wrap_nonce = _fixed("keystore wrap nonce", 12)
    _write(
        "keystore/wrap",
        {
            "description": "a data key wrapped under KEK version 3 (the KEK of kek-hkdf)",
            "kek": kek.hex(),
            "kek_version": version,
            "key_id": key_id.hex(),
            "secret": secret.hex(),
            "nonce": wrap_nonce.hex(),
            "wrapped": (wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, secret, WRAP_AAD + key_id + _u32(version))).hex(),
        },
    )
    audit_secret = _fixed("keystore audit secret", 32)
    audit_key = _audit_key(audit_secret)
    rows = [
        [1, "2026-01-01T00:00:00.000000Z", "alice", "init", None, None, {"kek_version": 1}],
        [2, "2026-01-01T00:00:01.000000Z", "alice", "new", key_id.hex(), None, {"label": "étude 7"}],
        [3, "2026-01-01T00:00:02.000000Z", "bob", "get", key_id.hex(), "ab" * 32, {}],
    ]
    macs, previous = [], bytes(32)
    for row in rows:
        previous = _hmac(audit_key, previous + _audit_row_bytes(*row))
        macs.append(previous.hex())
    _write(
        "keystore/audit-chain",
        {
            "description": "three audit rows chained from mac_0 = 32 zero bytes, and the head after them",
            "audit_secret": audit_secret.hex(),
            "audit_key": audit_key.hex(),
            "rows": [
                dict(zip(["seq", "time", "actor", "operation", "key_id", "file_sha256", "details"], r, strict=True))
                for r in rows
            ],
            "row_bytes": [_audit_row_bytes(*r).decode("utf-8") for r in rows],
            "macs": macs,
            "head": {
                "count": 3,
                "last_seq": 3,
                "last_mac": macs[-1],
                "mac": _hmac(audit_key, _head_bytes(3, 3, bytes.fromhex(macs[-1]))).hex(),
            },
        },
    )

    # Parameters over the readers' cap (n·r·p ≤ 2**20): scrypt would need 16 GiB; readers
    # MUST refuse them before running it. No KEK is given: none can be computed here.
    _write(
        "keystore/kek-scrypt-over-cap",
        {
            "description": "scrypt parameters n = 2**22, r = 32, p = 16 (16 GiB): refused before scrypt runs",
            "expect": "parameters refused",
            "passphrase": passphrase,
            "params": {**scrypt_params, "n": 2**22, "r": 32, "p": 16},
        },
    )


def _keyfile_cases() -> None:
    """§6: a key file sealed under a passphrase, and the same document with costlier scrypt parameters."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from deepkedi.keys.keyfile import _SEAL_AAD, _scrypt

    key, passphrase = _key(5), "correct horse battery staple \u00e9"
    salt, nonce = _fixed("key file seal salt", 16), _fixed("key file seal nonce", 12)
    n, r, p = 2**14, 8, 1
    kek = _scrypt(passphrase, salt, n, r, p)
    doc = _key_doc(key)
    del doc["secret"]
    doc["sealed_secret"] = {
        "kdf": "scrypt",
        "n": n,
        "r": r,
        "p": p,
        "salt": base64.b64encode(salt).decode(),
        "aead": "AES-256-GCM",
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(AESGCM(kek).encrypt(nonce, key.secret, _SEAL_AAD + key.key_id)).decode(),
    }
    _write(
        "keyfile/sealed",
        {
            "description": "a key file sealed under a non-ASCII passphrase, n = 2**14, r = 8, p = 1",
            "expect": "success",
            "passphrase": passphrase,
            "key": doc,
            "kek": kek.hex(),
            "secret": key.secret.hex(),
        },
    )
    for name, (n, r, p), description in (
        ("sealed-over-cap", (2**22, 32, 16), "n = 2**22, r = 32, p = 16: 16 GiB, the largest the old readers took"),
        ("sealed-over-cap-r", (2**17, 16, 1), "n = 2**17 with r = 16: twice the writers' cost (256 MiB)"),
    ):
        crafted = json.loads(json.dumps(doc))
        crafted["sealed_secret"].update(n=n, r=r, p=p)
        _write(
            f"keyfile/{name}",
            {
                "description": f"the sealed key file with {description}; refused before scrypt runs",
                "expect": "parameters refused",
                "passphrase": passphrase,
                "key": crafted,
            },
        )


if __name__ == "__main__":
    sys.exit(main())
