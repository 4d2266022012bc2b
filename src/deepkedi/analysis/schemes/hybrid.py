"""``hybrid``: the project's suite (HKDF-SHA256 + AES-256-GCM) under a research key."""

from __future__ import annotations

import numpy as np

from deepkedi.analysis.schemes.base import Scheme, _seed_bytes

__all__ = ["HybridScheme"]


class HybridScheme(Scheme):
    """The project's suite (``hybrid``): HKDF-SHA256 + segmented AES-256-GCM, zigzag order kept.

    The master key is a :class:`deepkedi.keys.Key` whose ``key_id`` and ``secret``
    are SHA-256 of a label and the seed: a research key for reproducible
    experiments. Production keys come from :func:`deepkedi.keys.generate_key`
    (OS CSPRNG, optionally mixed with ZZ-GAN material). Every encryption takes a
    fresh salt and nonce prefix, so the scheme is non-deterministic; it is
    authenticated and lossless. Where :func:`deepkedi.cipher.hybrid.encrypt_image`
    draws them from the OS, the research scheme derives the n-th encryption's from
    the seed and n, so that a whole experiment (verdicts at α included) comes out
    the same on every run.

    The payload is the container (docs/FORMAT.md). Its cipher image already puts
    every ciphertext word back at its plain pixel's place, so there is no public
    order to undo (:meth:`public_order` is ``None``).
    """

    name = "hybrid"
    label = "Hybrid (ZZ-GAN + HKDF + AES-256-GCM)"
    lossy = False
    authenticated = True
    deterministic = False

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        from deepkedi.keys import Key

        self._key = Key(
            key_id=_seed_bytes("hybrid key-id", self.seed, 16),
            secret=_seed_bytes("hybrid secret", self.seed, 32),
            suite="hybrid",
            provenance={"sources": ["research seed (deepkedi.analysis.schemes); not for production"]},
        )
        self._encryptions = 0

    def encrypt(self, plain: np.ndarray) -> bytes:
        from deepkedi.cipher.format import NONCE_PREFIX_SIZE, SALT_SIZE
        from deepkedi.cipher.hybrid import DEFAULT_PATTERN, _encrypt_from_parts

        label = f"hybrid salt and nonce prefix {self._encryptions}"
        fresh = _seed_bytes(label, self.seed, SALT_SIZE + NONCE_PREFIX_SIZE)
        self._encryptions += 1
        return _encrypt_from_parts(
            self._check_plain(plain),
            self._key,
            pattern=DEFAULT_PATTERN,
            salt=fresh[:SALT_SIZE],
            nonce_prefix=fresh[SALT_SIZE:],
        )

    def decrypt(self, payload: bytes) -> np.ndarray:
        from deepkedi.cipher.hybrid import decrypt_pixels

        restored = decrypt_pixels(payload, self._key)
        return np.asarray(restored, dtype=self.dtype)

    def cipher_image(self, payload: bytes) -> np.ndarray:
        from deepkedi.cipher.layout import cipher_image

        return cipher_image(bytes(payload)).astype(self.dtype, copy=False)

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        """From the first ciphertext byte of the pixel words to the start of the last GCM tag.

        The encrypted restoration section (before the pixel words) and the final
        tag are left out; with more than one segment (images over 1 MiB), the
        tags between segments lie inside the span.
        """
        from deepkedi.cipher.format import TAG_SIZE, parse_header

        header = parse_header(payload)
        # The restoration section of an in-memory array is tiny, inside the first segment.
        start = header.encoded_length + header.residual_length
        if header.residual_length >= header.segment_size:
            start = header.encoded_length
        return start, len(payload) - TAG_SIZE
