"""``logistic-map``: a classic chaos cipher, logistic-map permutation + additive diffusion with feedback.

References
----------
.. [2] J. Fridrich, "Symmetric ciphers based on two-dimensional chaotic maps",
   *Int. J. Bifurcation and Chaos* 8(6), 1259-1284 (1998). :doi:`10.1142/S021812749800098X`
.. [3] N. K. Pareek, V. Patidar and K. K. Sud, "Image encryption using chaotic logistic
   map", *Image and Vision Computing* 24(9), 926-934 (2006). :doi:`10.1016/j.imavis.2006.02.021`
.. [5] R. M. May, "Simple mathematical models with very complicated dynamics",
   *Nature* 261, 459-467 (1976). :doi:`10.1038/261459a0`
.. [7] E. Solak, C. Çokal, O. T. Yildiz and T. Biyikoğlu, "Cryptanalysis of Fridrich's
   chaotic image encryption", *Int. J. Bifurcation and Chaos* 20(5), 1405-1413 (2010).
   :doi:`10.1142/S0218127410026563`
"""

from __future__ import annotations

import math

import numpy as np

from deepkedi.analysis.schemes._baseline import _BaselineScheme
from deepkedi.analysis.schemes._chaos import _chaotic_words, _logistic_parameters, _logistic_sequence
from deepkedi.analysis.schemes.base import _seed_bytes

__all__ = ["LogisticMapScheme"]


class LogisticMapScheme(_BaselineScheme):
    """A classic chaos cipher (``logistic-map``): chaotic permutation + additive diffusion with feedback.

    Keyed by ``x0`` and ``r`` of the logistic map ``x_{n+1} = r·x_n·(1 − x_n)``
    (May [5]_; ``x0`` in [0.05, 0.95), ``r`` in [3.99, 4), both from SHA-256 of
    the seed) and an initial value ``c_{-1}``. After 1000 discarded iterates, the
    next ``H·W`` iterates are ranked to give a pixel permutation (``argsort``,
    "confusion"), the following ``H·W`` are quantised to key words
    ``k_i = floor(x·10^14) mod 2^bits`` (Pareek et al. [3]_). Encryption permutes
    the pixels, then diffuses in the permuted order with feedback, in the
    architecture of Fridrich [2]_ (permutation rounds then a diffusion chain):

    .. math:: c_i = (p_i + k_i + c_{i-1}) \\bmod 2^{bits}

    which unrolls to a prefix sum, ``c_i = (c_{-1} + Σ_{j≤i} (p_j + k_j)) mod 2^bits``,
    computed with :func:`numpy.cumsum`. Decryption is
    ``p_i = (c_i − c_{i−1} − k_i) mod 2^bits``, exact. One round, one direction:
    a change in pixel ``j`` spreads only to later pixels in the permuted order,
    and the keystream does not depend on the image, the weaknesses the
    cryptanalyses of this family exploit (Solak et al. [7]_).
    """

    name = "logistic-map"
    label = "Logistic-map permutation + diffusion (Fridrich-style)"

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        size = math.prod(self.shape)
        x0, r = _logistic_parameters(self.name, self.seed)
        sequence = _logistic_sequence(x0, r, 2 * size)
        self._order = np.argsort(sequence[:size], kind="stable")
        self._key = _chaotic_words(sequence[size:], self.bits).astype(np.uint64)
        self._modulus = np.uint64(1 << self.bits)
        self._c0 = np.uint64(int.from_bytes(_seed_bytes(f"{self.name} c0", self.seed, 8), "big") % (1 << self.bits))

    def _encrypt_words(self, words: np.ndarray) -> np.ndarray:
        permuted = words[self._order].astype(np.uint64)
        # Sums stay far below 2**64 (2 · 65535 per pixel), so the prefix sum is exact before the modulus.
        chain = (np.cumsum(permuted + self._key, dtype=np.uint64) + self._c0) % self._modulus
        return chain.astype(self.dtype)

    def _decrypt_words(self, words: np.ndarray) -> np.ndarray:
        chain = words.astype(np.int64)
        previous = np.concatenate(([np.int64(self._c0)], chain[:-1]))
        permuted = np.mod(chain - previous - self._key.astype(np.int64), int(self._modulus))
        plain = np.empty_like(words)
        plain[self._order] = permuted.astype(self.dtype)
        return plain
