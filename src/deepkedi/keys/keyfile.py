"""Key files: a versioned JSON document holding one master secret.

A key file is the secret: it is written with mode 0600 and never replaced
without being asked. Its layout is specified in ``docs/FORMAT.md`` ("Key
files"). Optionally the secret is sealed under a passphrase (scrypt →
AES-256-GCM); the key id, creation time and provenance stay readable so that a
container's key can be identified without the passphrase.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from deepkedi._json import loads_bounded
from deepkedi.cipher.keytypes import KEY_ID_BYTES, SECRET_BYTES, Key
from deepkedi.errors import AuthenticationError, KeyFileError
from deepkedi.fileio import atomic_output
from deepkedi.inputs import check_regular_input

__all__ = [
    "KEY_FILE_VERSION",
    "Key",
    "generate_key",
    "key_file_is_sealed",
    "load_key",
    "mix_master_secret",
    "read_key_document",
    "save_key",
    "scrypt_parameters_allowed",
]

KEY_FILE_VERSION = 1
#: scrypt cost for passphrase-sealed key files (2**17 × 8 × 128 B = 128 MiB, as OWASP advises).
SCRYPT_N = 2**17
#: The smallest n a reader accepts in a key file.
SCRYPT_N_MIN = 2**10
SCRYPT_R = 8
SCRYPT_P = 1
#: The most scrypt work a reader accepts, n·r·p: the writers' own cost class (2**17 · 8 · 1 = 2**20,
#: 128 MiB and about 0.3 s). scrypt's memory is 128·r·n bytes, so without this bound a crafted key
#: file or keystore (n = 2**22, r = 32, p = 16: 16 GiB) would exhaust memory before the passphrase
#: is even checked.
SCRYPT_MAX_COST = SCRYPT_N * SCRYPT_R * SCRYPT_P
_SEAL_AAD = b"deepkedi/v1 key file seal|"
#: Far above any key file written here (about 1 KiB); a larger one is refused unread.
_KEY_FILE_MAX_BYTES = 1 << 20


#: HKDF-SHA256 ``info`` of a master secret mixed from OS randomness and a ZZ-GAN key image.
MIX_INFO = b"deepkedi/v1 master secret|os-csprng|zz-gan"
#: Side of the square ZZ-GAN key image mixed into a new hybrid key.
GAN_KEY_SIZE = 256
_NO_TORCH_NOTE = (
    "ZZ-GAN key material not mixed in: PyTorch is not installed (pip install 'deepkedi[gan]'); "
    "the secret comes from the OS CSPRNG alone"
)


def _gan_material(initial_image: Any) -> tuple[bytes, dict[str, Any]]:
    """A fresh ZZ-GAN key image (random 128-bit seed) as bytes, and its provenance (no secrets)."""
    from deepkedi.keygen.generate import generate_key_image

    if initial_image is None:
        from deepkedi.datasets import phantom

        initial_image = phantom("brain", "MR", seed=0, shape=(GAN_KEY_SIZE, GAN_KEY_SIZE))
        described = "phantom brain MR"
    else:
        described = "caller's image"
    key_image = generate_key_image(initial_image, bits=8)
    words = np.ascontiguousarray(key_image.pixels).tobytes()
    return words, {
        "model_sha256": key_image.model_sha256,
        "key_shape": list(key_image.pixels.shape),
        "bits": key_image.bits,
        "initial_image": described,
    }


def mix_master_secret(os_random: bytes, gan_material: bytes) -> bytes:
    """The master secret: ``HKDF-SHA256(salt = none, IKM = os_random || gan_material, info = MIX_INFO)``, 32 bytes.

    HKDF is an extractor [1]_: with 32 bytes from the OS CSPRNG in the input the
    result is a uniform secret whatever the GAN contributes, so the GAN can add
    key material but never weaken the key.

    References
    ----------
    .. [1] H. Krawczyk, "Cryptographic extraction and key derivation: the HKDF
       scheme", CRYPTO 2010. :doi:`10.1007/978-3-642-14623-7_34`
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if len(os_random) < SECRET_BYTES:
        raise ValueError(f"os_random must hold at least {SECRET_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=SECRET_BYTES, salt=None, info=MIX_INFO).derive(
        bytes(os_random) + bytes(gan_material)
    )


def generate_key(*, suite: str = "hybrid", gan: bool | None = None, initial_image: Any = None) -> Key:
    """A new master key: OS randomness mixed with a ZZ-GAN key image (DESIGN: the ``hybrid`` suite).

    Parameters
    ----------
    suite
        ``"hybrid"`` (``paper`` keys are key images, see :mod:`deepkedi.keys.keyimage`).
    gan
        ``None`` (default): mix in a ZZ-GAN key image when PyTorch is installed,
        otherwise use the OS CSPRNG alone and say so in the provenance;
        ``True``: require the GAN (:class:`~deepkedi.errors.MissingExtraError`,
        an ``ImportError``, without PyTorch); ``False``:
        OS CSPRNG only.
    initial_image
        Image that conditions the GAN key (array or ``MedicalImage``); default
        a 256 × 256 brain MR phantom.

    Examples
    --------
    >>> key = generate_key(gan=False)
    >>> len(key.key_id), key.suite, key.provenance["sources"]
    (16, 'hybrid', ['os-csprng'])
    """
    if suite != "hybrid":
        raise ValueError(f"only 'hybrid' keys are key files, not {suite!r}; paper keys are key images")
    provenance: dict[str, Any] = {"sources": ["os-csprng"]}
    os_random = os.urandom(SECRET_BYTES)
    secret = os_random
    if gan is not False:
        from deepkedi.keygen import require_gan, torch_available

        if gan:
            require_gan("generate_key(gan=True)")
        if gan or torch_available():
            material, about = _gan_material(initial_image)
            secret = mix_master_secret(os_random, material)
            provenance = {"sources": ["os-csprng", "zz-gan"], "mix": "HKDF-SHA256", "zz_gan": about}
        else:
            provenance["note"] = _NO_TORCH_NOTE
    return Key(
        key_id=os.urandom(KEY_ID_BYTES),
        secret=secret,
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        suite=suite,
        provenance=provenance,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"{path}: {what} is missing or not a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyFileError(f"{path}: {what} is not valid base64") from None


def scrypt_parameters_allowed(n: int, r: int, p: int, *, n_min: int) -> bool:
    """Whether a reader may run scrypt with these stored parameters.

    n a power of two at least ``n_min``, r ≥ 1, p ≥ 1 and n·r·p ≤ :data:`SCRYPT_MAX_COST`.
    Readers check this before running scrypt, so that parameters from a file cost no
    more memory (128·r·n bytes) or time than the writers' own.
    """
    return n >= n_min and n & (n - 1) == 0 and r >= 1 and p >= 1 and n * r * p <= SCRYPT_MAX_COST


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def save_key(
    key: Key,
    path: str | Path,
    *,
    passphrase: str | None = None,
    force: bool = False,
    _scrypt_n: int = SCRYPT_N,
) -> None:
    """Write ``key`` to ``path`` (mode 0600, atomically, never replacing a file unless ``force``).

    With ``passphrase`` the secret is sealed: scrypt (N=2**17, r=8, p=1, random
    16-byte salt) derives a key-encryption key, AES-256-GCM seals the secret with
    the key id as associated data.
    """
    doc: dict[str, Any] = {
        "deepkedi_key": KEY_FILE_VERSION,
        "key_id": key.key_id_hex,
        "created": key.created,
        "suite": key.suite,
        "provenance": dict(key.provenance),
    }
    if passphrase is None:
        doc["secret"] = _b64(key.secret)
    else:
        if not passphrase:
            raise ValueError("the passphrase is empty")
        salt, nonce = os.urandom(16), os.urandom(12)
        kek = _scrypt(passphrase, salt, _scrypt_n, SCRYPT_R, SCRYPT_P)
        sealed = AESGCM(kek).encrypt(nonce, key.secret, _SEAL_AAD + key.key_id)
        doc["sealed_secret"] = {
            "kdf": "scrypt",
            "n": _scrypt_n,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": _b64(salt),
            "aead": "AES-256-GCM",
            "nonce": _b64(nonce),
            "ciphertext": _b64(sealed),
        }
    text = json.dumps(doc, indent=2) + "\n"
    with atomic_output(path, force=force, mode=0o600) as fh:
        fh.write(text.encode("utf-8"))


def read_key_document(path: str | Path) -> dict[str, Any]:
    """The key file's JSON document, checked for version; raises :class:`KeyFileError`."""
    path = Path(path)
    try:
        check_regular_input(path, error=KeyFileError)
        with open(path, "rb") as fh:
            raw = fh.read(_KEY_FILE_MAX_BYTES + 1)  # a key file is small: never read a huge one whole
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror or exc})") from None
    try:
        doc = loads_bounded(raw, max_bytes=_KEY_FILE_MAX_BYTES)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a deepkedi key file (not JSON: {exc})") from None
    if not isinstance(doc, dict) or "deepkedi_key" not in doc:
        raise KeyFileError(f"{path}: not a deepkedi key file")
    if doc["deepkedi_key"] != KEY_FILE_VERSION:
        raise KeyFileError(
            f"{path}: key file version {doc['deepkedi_key']!r} is not supported by this release "
            f"(it reads version {KEY_FILE_VERSION})"
        )
    return doc


def key_file_is_sealed(path: str | Path) -> bool:
    """Whether the key file at ``path`` needs a passphrase."""
    return "sealed_secret" in read_key_document(path)


def load_key(path: str | Path, *, passphrase: str | None = None) -> Key:
    """Read a key file written by :func:`save_key`.

    Raises
    ------
    KeyFileError
        The file is missing, not a key file, of another version, sealed and no
        passphrase was given, or sealed with scrypt parameters costlier than
        this release writes (checked before scrypt runs, see
        :func:`scrypt_parameters_allowed`).
    AuthenticationError
        The passphrase is wrong or the sealed secret was modified.
    """
    path = Path(path)
    doc = read_key_document(path)
    key_id_hex = doc.get("key_id")
    try:
        key_id = bytes.fromhex(key_id_hex) if isinstance(key_id_hex, str) else b""
    except ValueError:
        key_id = b""
    if len(key_id) != KEY_ID_BYTES:
        raise KeyFileError(f"{path}: key_id must be {2 * KEY_ID_BYTES} hexadecimal digits")
    if "secret" in doc:
        secret = _unb64(doc["secret"], "secret", path)
    elif "sealed_secret" in doc:
        if passphrase is None:
            raise KeyFileError(f"{path}: the key file is sealed with a passphrase; give the passphrase")
        seal = doc["sealed_secret"]
        if not isinstance(seal, dict) or seal.get("kdf") != "scrypt" or seal.get("aead") != "AES-256-GCM":
            raise KeyFileError(f"{path}: unsupported key sealing")
        try:
            n, r, p = int(seal["n"]), int(seal["r"]), int(seal["p"])
        except (KeyError, TypeError, ValueError):
            raise KeyFileError(f"{path}: malformed scrypt parameters") from None
        if not scrypt_parameters_allowed(n, r, p, n_min=SCRYPT_N_MIN):
            raise KeyFileError(
                f"{path}: scrypt parameters n={n}, r={r}, p={p} refused: this release reads n a power of two "
                f"≥ 2**10 and n·r·p ≤ 2**20 (128 MiB)"
            )
        kek = _scrypt(passphrase, _unb64(seal.get("salt"), "salt", path), n, r, p)
        try:
            secret = AESGCM(kek).decrypt(
                _unb64(seal.get("nonce"), "nonce", path),
                _unb64(seal.get("ciphertext"), "ciphertext", path),
                _SEAL_AAD + key_id,
            )
        except (InvalidTag, ValueError):
            raise AuthenticationError("wrong passphrase, or the key file was modified") from None
    else:
        raise KeyFileError(f"{path}: the key file holds no secret")
    if len(secret) != SECRET_BYTES:
        raise KeyFileError(f"{path}: the secret must be {SECRET_BYTES} bytes")
    provenance = doc.get("provenance", {})
    return Key(
        key_id=key_id,
        secret=secret,
        created=str(doc.get("created", "")),
        suite=str(doc.get("suite", "hybrid")),
        provenance=provenance if isinstance(provenance, dict) else {},
    )
