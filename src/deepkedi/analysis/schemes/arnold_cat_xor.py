"""``arnold-cat-xor``: Arnold cat map permutation + XOR with a logistic-map keystream.

References
----------
.. [4] G. Chen, Y. Mao and C. K. Chui, "A symmetric image encryption scheme based on 3D
   chaotic cat maps", *Chaos, Solitons & Fractals* 21(3), 749-761 (2004).
   :doi:`10.1016/j.chaos.2003.12.022`
.. [6] V. I. Arnold and A. Avez, *Ergodic Problems of Classical Mechanics*, Benjamin (1968).
"""

from __future__ import annotations

import math

import numpy as np

from deepkedi.analysis.schemes._baseline import _BaselineScheme
from deepkedi.analysis.schemes._chaos import _chaotic_words, _logistic_parameters, _logistic_sequence
from deepkedi.analysis.schemes.base import _seed_bytes

__all__ = ["ArnoldCatXorScheme"]


def _cat_map_blocks(rows: int, cols: int) -> list[tuple[slice, slice]]:
    """The ``s × s`` squares (``s = min(rows, cols)``) the cat map is applied to, in order.

    Consecutive squares along the longer side, the last one aligned to the end
    (overlapping its neighbour when the side is not a multiple of ``s``), so
    every pixel is moved by at least one square.
    """
    side, length = min(rows, cols), max(rows, cols)
    starts = list(range(0, length - side + 1, side))
    if starts[-1] != length - side:
        starts.append(length - side)
    if rows <= cols:
        return [(slice(0, side), slice(s, s + side)) for s in starts]
    return [(slice(s, s + side), slice(0, side)) for s in starts]


def _cat_map_order(rows: int, cols: int, iterations: int) -> np.ndarray:
    """Flat permutation ``order`` of Arnold's cat map: ``scrambled = plain.ravel()[order]``.

    Each square's pixel ``(x, y)`` (row, column) moves to ``((x + y) mod N, (x + 2y) mod N)``,
    ``iterations`` times (Arnold and Avez [6]_; Chen et al. [4]_); non-square images
    are covered by squares as :func:`_cat_map_blocks` says.
    """
    index = np.arange(rows * cols, dtype=np.intp).reshape(rows, cols)
    side = min(rows, cols)
    x, y = np.indices((side, side))
    new_x, new_y = (x + y) % side, (x + 2 * y) % side
    for block in _cat_map_blocks(rows, cols):
        square = index[block].copy()
        for _ in range(iterations):
            moved = np.empty_like(square)
            moved[new_x, new_y] = square[x, y]
            square = moved
        index[block] = square
    return index.ravel()


class ArnoldCatXorScheme(_BaselineScheme):
    """Arnold cat map permutation followed by XOR with a logistic-map keystream (``arnold-cat-xor``).

    Keyed by the number of cat-map iterations ``n`` in [1, 16] and the logistic
    map's ``x0`` and ``r``, all from SHA-256 of the seed. The pixels are
    scrambled by ``n`` iterations of the cat map ``(x, y) → (x + y, x + 2y) mod N``
    (Arnold and Avez [6]_), then XORed with key words
    ``floor(x·10^14) mod 2^bits`` of ``H·W`` logistic iterates: the
    permutation-then-substitution design of Chen, Mao and Chui [4]_ without its
    diffusion feedback. Non-square images: the cat map is applied in turn to
    consecutive ``min(H, W)``-sided squares along the longer side, the last one
    aligned to the end and overlapping its neighbour (a composition of
    permutations, so still one exact permutation); no padding, so the cipher
    image keeps the plain image's size. The classic map's only permutation key
    is ``n`` (it is periodic), so the permutation adds almost no key space.
    """

    name = "arnold-cat-xor"
    label = "Arnold cat map + logistic XOR keystream"

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        self.iterations = 1 + int.from_bytes(_seed_bytes(f"{self.name} n", self.seed, 8), "big") % 16
        self._order = _cat_map_order(*self.shape, self.iterations)
        x0, r = _logistic_parameters(self.name, self.seed)
        self._key = _chaotic_words(_logistic_sequence(x0, r, math.prod(self.shape)), self.bits)

    def _encrypt_words(self, words: np.ndarray) -> np.ndarray:
        return np.bitwise_xor(words[self._order], self._key)

    def _decrypt_words(self, words: np.ndarray) -> np.ndarray:
        plain = np.empty_like(words)
        plain[self._order] = np.bitwise_xor(words, self._key)
        return plain
