"""Encodings every keystore format shares: ``u32``, base64 text, and the AES-GCM nonce size.

docs/FORMAT.md §10: integers inside byte strings are big-endian, ``u32(x)`` is x as 4
bytes; "base64" is standard base64 with padding.
"""

from __future__ import annotations

import base64
from typing import Any

#: AES-256-GCM nonce length of every sealed value in the keystore (wrapped keys, check values,
#: the audit secret) and of key exports.
NONCE_BYTES = 12


def _u32(value: int) -> bytes:
    return int(value).to_bytes(4, "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)
