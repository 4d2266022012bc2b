"""``aes-ctr-reused-nonce``: AES-256-CTR with one nonce reused for every image, the classic mistake.

References
----------
.. [8] NIST SP 800-38A, "Recommendation for Block Cipher Modes of Operation" (2001),
   Sec. 6.5 and Appendix B (CTR counter blocks must never repeat under one key).
   :doi:`10.6028/NIST.SP.800-38A`
"""

from __future__ import annotations

import numpy as np

from deepkedi.analysis.schemes._baseline import _BaselineScheme
from deepkedi.analysis.schemes.base import _seed_bytes

__all__ = ["AesCtrReusedNonceScheme"]


class AesCtrReusedNonceScheme(_BaselineScheme):
    """AES-256-CTR with one fixed nonce reused for every image (``aes-ctr-reused-nonce``): the classic mistake.

    The AES key and the 16-byte initial counter block are SHA-256 of labels and
    the seed (research keys) and never change, so every image is XORed with the
    *same* keystream: ``c1 XOR c2 = p1 XOR p2``, a two-time pad. CTR requires
    unique counter blocks under one key (NIST SP 800-38A [8]_); the strong block
    cipher does not help once they repeat. Encrypts the pixel words'
    little-endian bytes with :mod:`cryptography` (pyca).
    """

    name = "aes-ctr-reused-nonce"
    label = "AES-256-CTR, nonce reused"

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        self._aes_key = _seed_bytes(f"{self.name} key", self.seed, 32)
        self._nonce = _seed_bytes(f"{self.name} nonce", self.seed, 16)

    def _keystream_xor(self, words: np.ndarray) -> np.ndarray:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        little = words.astype(self.dtype.newbyteorder("<"), copy=False)
        context = Cipher(algorithms.AES(self._aes_key), modes.CTR(self._nonce)).encryptor()
        out = context.update(little.tobytes()) + context.finalize()
        return np.frombuffer(out, dtype=little.dtype).astype(self.dtype)

    _encrypt_words = _keystream_xor
    _decrypt_words = _keystream_xor
