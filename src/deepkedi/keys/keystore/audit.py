"""The keystore's audit trail: canonical row bytes, the HMAC chain, and its MAC'd head.

Each row's MAC is ``HMAC-SHA256(audit_key, previous MAC ‖ canonical row)``; the head in
the metadata names the row count, the last sequence number and the last MAC, under its
own MAC, so that a cut tail shows. The audit key comes from a random audit secret
wrapped under the KEK (docs/FORMAT.md §10.4).
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deepkedi._json import loads_bounded
from deepkedi.errors import AuthenticationError
from deepkedi.keys.keystore._encoding import NONCE_BYTES, _b64, _u32, _unb64

MAC_BYTES = 32

AUDIT_SECRET_AAD = b"deepkedi/v1 keystore audit secret|"
AUDIT_KEY_INFO = b"deepkedi/v1 keystore audit key"
AUDIT_HEAD_PREFIX = b"deepkedi/v1 keystore audit head|"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit trail."""

    seq: int
    time: str
    actor: str
    operation: str
    key_id: str | None
    file_sha256: str | None
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "operation": self.operation,
            "key_id": self.key_id,
            "file_sha256": self.file_sha256,
            "details": dict(self.details),
        }


@dataclass
class _Head:
    count: int
    last_seq: int
    last_mac: bytes


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hmac_ok(key: bytes, data: bytes, expected: bytes) -> bool:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    try:
        mac.verify(expected)
    except InvalidSignature:
        return False
    return True


def _audit_key(audit_secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AUDIT_KEY_INFO).derive(audit_secret)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _audit_row_bytes(
    seq: int,
    time: str,
    actor: str,
    operation: str,
    key_id: str | None,
    file_sha256: str | None,
    details: Mapping[str, Any],
) -> bytes:
    return _canonical([seq, time, actor, operation, key_id, file_sha256, dict(details)])


def _head_bytes(count: int, last_seq: int, last_mac: bytes) -> bytes:
    return AUDIT_HEAD_PREFIX + _canonical([count, last_seq, last_mac.hex()])


def _now_precise() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _head_json(audit_key: bytes, head: _Head) -> str:
    mac = _hmac(audit_key, _head_bytes(head.count, head.last_seq, head.last_mac))
    return json.dumps(
        {"count": head.count, "last_seq": head.last_seq, "last_mac": head.last_mac.hex(), "mac": mac.hex()}
    )


def _wrapped_audit_secret(kek: bytes, version: int, audit_secret: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = nonce + AESGCM(kek).encrypt(nonce, audit_secret, AUDIT_SECRET_AAD + _u32(version))
    return json.dumps({"kek_version": version, "wrapped": _b64(sealed)})


def _open_audit_secret(kek: bytes, value: str | None) -> bytes:
    """The audit secret sealed in ``value``; a wrong KEK or a missing or damaged value is an ``AuthenticationError``."""
    if value is None:
        raise AuthenticationError("wrong passphrase or KEK for this keystore")
    try:
        doc = loads_bounded(value)
        sealed = _unb64(doc["wrapped"])
        return AESGCM(kek).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], AUDIT_SECRET_AAD + _u32(int(doc["kek_version"]))
        )
    except (InvalidTag, KeyError, TypeError, ValueError, binascii.Error):
        raise AuthenticationError("wrong passphrase or KEK for this keystore") from None


def _chain_rows(
    audit_key: bytes, head: _Head, actor: str, events: Sequence[tuple[str, str | None, str | None, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """Audit rows for ``events`` (operation, key id, file SHA-256, details), chained from ``head``.

    Chained from the head, not from the last row, so that a cut tail stays visible.
    ``head`` itself is left as it is: the caller moves it past the rows.
    """
    rows = []
    prev, seq = head.last_mac, head.last_seq
    for operation, key_id, file_sha256, details in events:
        seq += 1
        time = _now_precise()
        mac = _hmac(audit_key, prev + _audit_row_bytes(seq, time, actor, operation, key_id, file_sha256, details))
        rows.append(
            {
                "seq": seq,
                "time": time,
                "actor": actor,
                "operation": operation,
                "key_id": key_id,
                "file_sha256": file_sha256,
                "details": json.dumps(dict(details), sort_keys=True),
                "mac": mac,
            }
        )
        prev = mac
    return rows


def _verify_chain(audit_key: bytes, rows: Sequence[Any], head_value: str) -> tuple[bool, int | None]:
    """Check audit ``rows`` (in sequence order) against the chain and the stored head.

    Returns ``(True, None)``, or ``(False, first bad sequence number)``.
    """
    prev, expected = bytes(MAC_BYTES), 1
    for row in rows:
        if row.seq != expected:
            return False, expected
        try:
            details = loads_bounded(row.details)
        except (TypeError, ValueError):
            return False, row.seq
        data = prev + _audit_row_bytes(
            row.seq,
            row.time,
            row.actor,
            row.operation,
            row.key_id,
            row.file_sha256,
            details if isinstance(details, dict) else {},
        )
        if not isinstance(details, dict) or not _hmac_ok(audit_key, data, bytes(row.mac)):
            return False, row.seq
        prev, expected = bytes(row.mac), expected + 1
    try:
        doc = loads_bounded(head_value)
        head = _Head(int(doc["count"]), int(doc["last_seq"]), bytes.fromhex(doc["last_mac"]))
        head_mac = bytes.fromhex(doc["mac"])
    except (KeyError, TypeError, ValueError):
        return False, expected
    if not _hmac_ok(audit_key, _head_bytes(head.count, head.last_seq, head.last_mac), head_mac):
        return False, expected
    if head.last_seq != expected - 1 or head.count != len(rows) or head.last_mac != prev:
        return False, min(head.last_seq, expected - 1) + 1
    return True, None


def _entry(row: Any) -> AuditEntry:
    try:
        details = loads_bounded(row.details)
    except (TypeError, ValueError):
        details = {"unreadable": True}
    return AuditEntry(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        operation=row.operation,
        key_id=row.key_id,
        file_sha256=row.file_sha256,
        details=details if isinstance(details, dict) else {},
    )
