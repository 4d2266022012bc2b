"""The payload every classic baseline writes: a 14-byte self-describing header, then the cipher words."""

from __future__ import annotations

import abc
import struct
from typing import Any

import numpy as np

from deepkedi.analysis.schemes.base import Scheme
from deepkedi.errors import FormatError

_BASELINE_MAGIC = b"DKBL"
_BASELINE_HEADER = struct.Struct(">4sBBII")
_BASELINE_CODES = {"xor-fixed-key": 1, "logistic-map": 2, "arnold-cat-xor": 3, "aes-ctr-reused-nonce": 4}
_DTYPE_CODES: dict[np.dtype[np.unsignedinteger[Any]], int] = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}
_DTYPES_BY_CODE = {code: dtype for dtype, code in _DTYPE_CODES.items()}


class _BaselineScheme(Scheme):
    """A classic unauthenticated image cipher with a 14-byte self-describing payload header.

    Payload: ``magic "DKBL" ‖ u8 scheme code ‖ u8 dtype code (1 uint8, 2 uint16) ‖
    u32 rows ‖ u32 cols`` (big-endian) followed by the cipher words, little-endian,
    raster order. Subclasses map flat plain words to flat cipher words and back.
    """

    lossy = False
    authenticated = False
    deterministic = True

    @abc.abstractmethod
    def _encrypt_words(self, words: np.ndarray) -> np.ndarray:
        """Flat plain words (native ``self.dtype``) → flat cipher words (same)."""

    @abc.abstractmethod
    def _decrypt_words(self, words: np.ndarray) -> np.ndarray:
        """Flat cipher words → flat plain words."""

    def encrypt(self, plain: np.ndarray) -> bytes:
        image = self._check_plain(plain)
        cipher = self._encrypt_words(image.ravel())
        header = _BASELINE_HEADER.pack(
            _BASELINE_MAGIC, _BASELINE_CODES[self.name], _DTYPE_CODES[self.dtype], *self.shape
        )
        return header + cipher.astype(self.dtype.newbyteorder("<"), copy=False).tobytes()

    def _parse(self, payload: bytes) -> np.ndarray:
        """The cipher image stored in ``payload`` (native byte order), or FormatError."""
        view = memoryview(payload).cast("B")
        if len(view) < _BASELINE_HEADER.size:
            raise FormatError(
                f"a {self.name} payload starts with a {_BASELINE_HEADER.size}-byte header; got {len(view)} bytes"
            )
        magic, code, dtype_code, rows, cols = _BASELINE_HEADER.unpack_from(view, 0)
        if magic != _BASELINE_MAGIC:
            raise FormatError("not a baseline-scheme payload (bad magic)")
        if code != _BASELINE_CODES[self.name]:
            names = {c: n for n, c in _BASELINE_CODES.items()}
            raise FormatError(f"this is a {names.get(code, f'unknown (code {code})')} payload, not {self.name}")
        if dtype_code not in _DTYPES_BY_CODE or rows < 1 or cols < 1:
            raise FormatError("malformed baseline payload header (dtype code or shape)")
        dtype = _DTYPES_BY_CODE[dtype_code]
        expected = _BASELINE_HEADER.size + rows * cols * dtype.itemsize
        if len(view) != expected:
            raise FormatError(f"a {rows}×{cols} {dtype.name} payload is {expected} bytes, got {len(view)}")
        words = np.frombuffer(view[_BASELINE_HEADER.size :], dtype=dtype.newbyteorder("<"))
        return words.astype(dtype).reshape(rows, cols)

    def decrypt(self, payload: bytes) -> np.ndarray:
        cipher = self._parse(payload)
        if cipher.shape != self.shape or cipher.dtype != self.dtype:
            raise FormatError(
                f"this {cipher.shape[0]}×{cipher.shape[1]} {cipher.dtype.name} payload does not fit a key for "
                f"{self.shape[0]}×{self.shape[1]} {self.dtype.name} images"
            )
        return self._decrypt_words(cipher.ravel()).reshape(self.shape)

    def cipher_image(self, payload: bytes) -> np.ndarray:
        return self._parse(payload)

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        return _BASELINE_HEADER.size, len(payload)
