"""The key export format: keys sealed to another site's X25519 recipient key (docs/FORMAT.md §10.5).

ECIES: an ephemeral X25519 key agrees a secret with the recipient's public key,
HKDF-SHA256 turns it into an AES-256-GCM key, and the JSON list of keys is sealed with
the header as AAD::

    EXPORT_MAGIC ‖ version (1 byte) ‖ ephemeral public key (32) ‖ nonce (12) ‖ ciphertext ‖ tag (16)

:func:`_export_from_parts` is the deterministic seam (ephemeral key and nonce injected)
that the known-answer vectors use; :func:`_seal_export` draws both at random.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deepkedi._json import loads_bounded
from deepkedi.errors import AuthenticationError, FormatError
from deepkedi.keys.keyfile import Key
from deepkedi.keys.keystore._encoding import NONCE_BYTES, _b64, _unb64

EXPORT_MAGIC = b"\x89KEDIEXP"
EXPORT_VERSION = 1
EXPORT_INFO = b"deepkedi/v1 key export"
_EXPORT_HEADER = len(EXPORT_MAGIC) + 1 + 32
#: An export of a million keys is about 300 MB; larger ones are refused before parsing.
_EXPORT_MAX_BYTES = 512 << 20


# ------------------------------------------------------------------------------------ recipient keys


def recipient_keypair() -> tuple[bytes, bytes]:
    """A new X25519 recipient key pair: ``(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)``.

    The private PEM is a secret (write it 0600); the public PEM is given to the sites that export to you.
    """
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def recipient_public_key_from_pem(pem: bytes) -> X25519PublicKey:
    """Parse a recipient public key (PEM); ``ValueError`` when it is not an X25519 public key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValueError("not a recipient public key (X25519, PEM); make one with 'kedi keys recipient'") from None
    if not isinstance(key, X25519PublicKey):
        raise ValueError("the recipient public key is not an X25519 key")
    return key


def recipient_private_key_from_pem(pem: bytes) -> X25519PrivateKey:
    """Parse a recipient private key (PEM); ``ValueError`` when it is not an X25519 private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError("not a recipient private key (X25519, PEM); make one with 'kedi keys recipient'") from None
    if not isinstance(key, X25519PrivateKey):
        raise ValueError("the recipient private key is not an X25519 key")
    return key


def recipient_public_key(private_pem: bytes) -> bytes:
    """The public PEM belonging to a recipient private PEM."""
    return (
        recipient_private_key_from_pem(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _recipient_raw(recipient: bytes | X25519PublicKey) -> bytes:
    """The 32 raw bytes of a recipient public key given as a key or as PEM (``ValueError`` if neither)."""
    key = recipient if isinstance(recipient, X25519PublicKey) else recipient_public_key_from_pem(recipient)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _recipient_fingerprint(recipient_raw: bytes) -> str:
    """What the audit trail names a recipient by: the first 128 bits of SHA-256 of its raw key, in hex."""
    return hashlib.sha256(recipient_raw).hexdigest()[:32]


def _recipient_private(private: bytes | X25519PrivateKey) -> X25519PrivateKey:
    return private if isinstance(private, X25519PrivateKey) else recipient_private_key_from_pem(private)


# ------------------------------------------------------------------------------------------ payload


def _export_payload(keys: Sequence[tuple[Key, str | None]]) -> bytes:
    """The plaintext of an export: a JSON list with one object per ``(key, label)``."""
    entries = [
        {
            "key_id": key.key_id_hex,
            "secret": _b64(key.secret),
            "created": key.created,
            "suite": key.suite,
            "label": label,
            "provenance": dict(key.provenance),
        }
        for key, label in keys
    ]
    return json.dumps(entries, sort_keys=True).encode("utf-8")


def _parse_export_payload(plaintext: bytes) -> list[tuple[Key, str | None]]:
    try:
        entries = loads_bounded(plaintext, max_bytes=_EXPORT_MAX_BYTES)
        if not isinstance(entries, list):
            raise ValueError
        keys = []
        for e in entries:
            provenance = e.get("provenance") or {}
            label = e.get("label")
            keys.append(
                (
                    Key(
                        key_id=bytes.fromhex(e["key_id"]),
                        secret=_unb64(e["secret"]),
                        created=str(e["created"]),
                        suite=str(e.get("suite", "hybrid")),
                        provenance=provenance if isinstance(provenance, dict) else {},
                    ),
                    label if isinstance(label, str) else None,
                )
            )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError, binascii.Error):
        # Authenticated yet malformed: a writer bug, not an attack; never echo the content (it holds secrets).
        raise FormatError("the key export is malformed") from None
    return keys


# --------------------------------------------------------------------------------------- envelope


def _export_key(shared: bytes, ephemeral_raw: bytes, recipient_raw: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_raw + recipient_raw, info=EXPORT_INFO).derive(
        shared
    )


def _seal_export(plaintext: bytes, recipient_raw: bytes) -> bytes:
    """Seal ``plaintext`` to a recipient under a fresh ephemeral key and nonce."""
    return _export_from_parts(plaintext, recipient_raw, X25519PrivateKey.generate(), os.urandom(NONCE_BYTES))


def _export_from_parts(plaintext: bytes, recipient_raw: bytes, ephemeral: X25519PrivateKey, nonce: bytes) -> bytes:
    """The deterministic seam of :meth:`Keystore.export` (ephemeral key and nonce injected)."""
    recipient = X25519PublicKey.from_public_bytes(recipient_raw)
    ephemeral_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _export_key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    header = EXPORT_MAGIC + bytes([EXPORT_VERSION]) + ephemeral_raw
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header)


def _open_export(blob: bytes, private: X25519PrivateKey) -> bytes:
    if len(blob) < len(EXPORT_MAGIC) + 1 or blob[: len(EXPORT_MAGIC)] != EXPORT_MAGIC:
        raise FormatError("not a deepkedi key export")
    if blob[len(EXPORT_MAGIC)] != EXPORT_VERSION:
        raise FormatError(
            f"key export version {blob[len(EXPORT_MAGIC)]} is not supported by this release "
            f"(it reads version {EXPORT_VERSION})"
        )
    if len(blob) < _EXPORT_HEADER + NONCE_BYTES + 16:
        raise AuthenticationError("cannot open the key export: not sealed to this recipient, or modified")
    header, nonce = blob[:_EXPORT_HEADER], blob[_EXPORT_HEADER : _EXPORT_HEADER + NONCE_BYTES]
    ephemeral_raw = header[len(EXPORT_MAGIC) + 1 :]
    recipient_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _export_key(shared, ephemeral_raw, recipient_raw)
        return AESGCM(key).decrypt(nonce, blob[_EXPORT_HEADER + NONCE_BYTES :], header)
    except (InvalidTag, ValueError):
        # ValueError: a low-order ephemeral point (all-zero shared secret); as opaque as a bad tag.
        raise AuthenticationError("cannot open the key export: not sealed to this recipient, or modified") from None
