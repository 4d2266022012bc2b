"""The key-encryption key (KEK): its sources, derivation, check value, and data-key wrapping.

A KEK is derived from a passphrase (scrypt) or from 32 bytes of key material
(HKDF-SHA256) with the parameters stored for its version, and is never stored itself.
A check value per version tells a wrong source from a right one; each data key is
wrapped with AES-256-GCM bound to its key id and KEK version (docs/FORMAT.md §10.2-10.3).
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from deepkedi.errors import AuthenticationError, KeystoreError
from deepkedi.keys.keyfile import SECRET_BYTES, scrypt_parameters_allowed
from deepkedi.keys.keystore._encoding import NONCE_BYTES, _b64, _u32, _unb64

#: scrypt cost of a passphrase KEK; writers use 2**15 ≤ n ≤ 2**17 (default 2**17, 128 MiB, as OWASP advises).
SCRYPT_N = 2**17
SCRYPT_N_MIN = 2**15
SCRYPT_N_MAX_WRITE = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16

WRAP_AAD = b"deepkedi/v1 keystore data key|"
KEK_INFO = b"deepkedi/v1 keystore kek"
CHECK_PLAINTEXT = b"deepkedi/v1 keystore kek check"
CHECK_AAD = b"deepkedi/v1 keystore kek check|"


@dataclass(frozen=True, repr=False)
class PassphraseKek:
    """A KEK derived from a passphrase with scrypt (``n`` applies when a new KEK version is made)."""

    passphrase: str = field(repr=False)
    scrypt_n: int = SCRYPT_N

    def __post_init__(self) -> None:
        if not isinstance(self.passphrase, str) or not self.passphrase:
            raise ValueError("the passphrase is empty")

    def __repr__(self) -> str:
        return "PassphraseKek(passphrase=<hidden>)"


@dataclass(frozen=True, repr=False)
class RawKek:
    """A KEK derived (HKDF-SHA256) from 32 bytes of key material, e.g. a key file's or an HSM's secret."""

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != SECRET_BYTES:
            raise ValueError(f"KEK material must be {SECRET_BYTES} bytes, got {len(self.material)}")

    def __repr__(self) -> str:
        return "RawKek(material=<hidden>)"


#: A KEK source: a :class:`PassphraseKek`, a :class:`RawKek`, a ``str`` (passphrase) or 32 ``bytes`` (material).
KekSource = PassphraseKek | RawKek | str | bytes


def _as_source(source: KekSource) -> PassphraseKek | RawKek:
    if isinstance(source, (PassphraseKek, RawKek)):
        return source
    if isinstance(source, str):
        return PassphraseKek(source)
    if isinstance(source, (bytes, bytearray)):
        return RawKek(bytes(source))
    raise TypeError("kek_source must be a passphrase (str), 32 bytes of key material, PassphraseKek or RawKek")


def _new_derivation(source: PassphraseKek | RawKek) -> dict[str, Any]:
    """Fresh KDF parameters (random salt) for a new KEK version."""
    salt = os.urandom(SALT_BYTES)
    if isinstance(source, PassphraseKek):
        n = source.scrypt_n
        if not (SCRYPT_N_MIN <= n <= SCRYPT_N_MAX_WRITE and n & (n - 1) == 0):
            raise ValueError(f"scrypt n must be a power of two in [2**15, 2**17], got {n}")
        return {"kdf": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
    return {"kdf": "hkdf-sha256", "salt": _b64(salt)}


def _derive_kek(source: PassphraseKek | RawKek, params: Mapping[str, Any]) -> bytes:
    """The KEK of one version from its stored parameters. A source of the other kind cannot match."""
    try:
        salt = _unb64(params.get("salt"))
        kdf = params.get("kdf")
        if kdf == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        elif kdf != "hkdf-sha256":
            raise KeystoreError(f"unsupported KEK derivation {kdf!r}")
    except (AttributeError, KeyError, TypeError, ValueError, binascii.Error):
        raise KeystoreError("the keystore's KEK parameters are malformed") from None
    if kdf == "scrypt":
        if not isinstance(source, PassphraseKek):
            raise AuthenticationError("this keystore's KEK comes from a passphrase; give the passphrase")
        # Refuse costs above the writers' own before running them: a modified store must not
        # make us allocate gigabytes (scrypt needs 128·r·n bytes).
        if not scrypt_parameters_allowed(n, r, p, n_min=SCRYPT_N_MIN):
            raise KeystoreError(
                f"the keystore's scrypt parameters n={n}, r={r}, p={p} are refused: this release reads "
                f"n a power of two ≥ 2**15 and n·r·p ≤ 2**20 (128 MiB)"
            )
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(source.passphrase.encode("utf-8"))
    if not isinstance(source, RawKek):
        raise AuthenticationError("this keystore's KEK comes from key material (a KEK file), not a passphrase")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=KEK_INFO).derive(source.material)


def _wrap(aead: AESGCM, key_id: bytes, kek_version: int, secret: bytes) -> bytes:
    """``nonce ‖ AES-256-GCM(KEK, nonce, secret, WRAP_AAD ‖ key_id ‖ u32(kek_version))``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, secret, WRAP_AAD + key_id + _u32(kek_version))


def _unwrap(aead: AESGCM, key_id: bytes, kek_version: int, wrapped: bytes) -> bytes:
    """Raises ``InvalidTag`` for a wrong KEK or a modified entry (also when moved to another key id)."""
    if len(wrapped) != NONCE_BYTES + SECRET_BYTES + 16:
        raise InvalidTag()
    return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], WRAP_AAD + key_id + _u32(kek_version))


def _check_value(kek: bytes, version: int) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, CHECK_PLAINTEXT, CHECK_AAD + _u32(version))


def _check_matches(kek: bytes, version: int, check: bytes) -> bool:
    """Whether ``kek`` opens the check value of KEK ``version``.

    Raises
    ------
    KeystoreError
        The stored check value is not bytes (the database was edited).
    """
    if not isinstance(check, (bytes, bytearray, memoryview)):
        raise KeystoreError(f"the keystore is damaged: the check value of KEK version {version} is malformed")
    try:
        plain = AESGCM(kek).decrypt(check[:NONCE_BYTES], check[NONCE_BYTES:], CHECK_AAD + _u32(version))
    except (InvalidTag, ValueError):
        return False
    return constant_time.bytes_eq(plain, CHECK_PLAINTEXT)
