"""``xor-fixed-key``: XOR with one fixed random key image, the paper's cipher without its additions."""

from __future__ import annotations

import math

import numpy as np

from deepkedi.analysis.schemes._baseline import _BaselineScheme

__all__ = ["XorFixedKeyScheme"]


class XorFixedKeyScheme(_BaselineScheme):
    """XOR with one fixed random key image (``xor-fixed-key``): a one-time pad used many times.

    The key image is ``numpy.random.default_rng(seed).integers(0, 2**bits, shape)``
    (a research key), XORed onto every image; no permutation, no diffusion. It is
    the paper's cipher without the GAN, the speckle and the zigzag: the baseline
    against which the paper's additions are measured.
    """

    name = "xor-fixed-key"
    label = "XOR with a fixed random key image"

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        rng = np.random.default_rng(self.seed)
        self._key = rng.integers(0, 1 << self.bits, size=math.prod(self.shape), dtype=self.dtype)

    def _encrypt_words(self, words: np.ndarray) -> np.ndarray:
        return np.bitwise_xor(words, self._key)

    _decrypt_words = _encrypt_words
