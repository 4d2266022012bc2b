"""A ChaCha20 keystream: the one deterministic random source keyed by a secret.

Reversible speckle, the ZZ-GAN latent maps and the ZZ-GAN's target-domain noise all draw
their numbers from a keyed stream so that the key holder (or a seeded run) regenerates
them exactly and nobody else can; this is the single place that composes it from
pyca/cryptography.
"""

from __future__ import annotations

__all__ = ["chacha20_keystream"]


def chacha20_keystream(key: bytes, length: int) -> bytes:
    """``length`` bytes of ChaCha20 keystream under a 32-byte ``key``, zero nonce and counter (RFC 8439).

    One key must serve one purpose: callers derive it per use (HMAC or SHA-256 over a
    label and their inputs), which is what makes a zero nonce safe here.

    Examples
    --------
    >>> len(chacha20_keystream(bytes(32), 10))
    10
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    stream = encryptor.update(bytes(length))
    encryptor.finalize()  # a stream cipher has nothing left to emit
    return stream
