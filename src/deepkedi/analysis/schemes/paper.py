"""``paper``: Deep-KEDI as published (speckle, zigzag, XOR with a ZZ-GAN key image) under a research key.

INSECURE: a key image XORed onto many images is a reusable pad.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI" (ZZ-GAN key generation for medical
   image encryption), *Technology and Health Care* 32(5), 3231-3251 (2024).
   :doi:`10.3233/THC-231927`
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np

from deepkedi.analysis.schemes.base import _DTYPES, Scheme
from deepkedi.errors import FormatError

__all__ = ["PaperScheme"]


@functools.lru_cache(maxsize=8)
def _initial_image(shape: tuple[int, int]) -> np.ndarray:
    """The initial (conditioning) image of the paper scheme's key images: a brain MR phantom."""
    from deepkedi.datasets import phantom

    if min(shape) >= 32:
        return phantom("brain", "MR", seed=0, shape=shape).pixels
    return np.zeros(shape, dtype=np.uint16)  # phantoms start at 32 pixels; a blank plane conditions smaller keys


@functools.lru_cache(maxsize=32)
def _paper_key_pixels(seed: int, shape: tuple[int, int], bits: int) -> tuple[np.ndarray, str]:
    """A key image of ``shape`` and ``bits`` for ``seed`` and where it came from (``"zz-gan"`` or ``"numpy"``)."""
    from deepkedi.keygen import torch_available

    if torch_available():
        from deepkedi.keygen.generate import generate_key_image

        pixels = generate_key_image(_initial_image(shape), seed=seed, bits=bits).pixels
        source = "zz-gan"
    else:
        pixels = np.random.default_rng(seed).integers(0, 1 << bits, size=shape, dtype=_DTYPES[bits])
        source = "numpy"
    pixels = np.array(pixels, dtype=_DTYPES[bits])
    pixels.setflags(write=False)
    return pixels, source


class PaperScheme(Scheme):
    """Deep-KEDI as published (``paper``): speckle → zigzag scan → XOR with a ZZ-GAN key image. INSECURE.

    The key image comes from the shipped ZZ-GAN
    (:func:`deepkedi.keygen.generate.generate_key_image`) with the seed as its
    latent seed and a brain MR phantom of the image's shape as the initial image;
    without PyTorch it falls back to a NumPy random key image from the seed
    (``key_source`` says which). Encryption is
    :func:`deepkedi.cipher.paper.encrypt_image_paper`; the speckle noise is drawn
    from a generator seeded with ``(seed, counter)``, the counter counting this
    instance's encryptions, so runs are reproducible.

    Decryption (:func:`deepkedi.cipher.paper.paper_decrypt_pixels`) XORs with this
    instance's key image and unscans; it does not check the container's key-id
    fingerprint (the published scheme has none), so a wrong key gives a wrong
    image rather than an error. With ``despeckle`` (as published) it then removes
    the speckle blindly in the ripplet domain, which is lossy.

    Parameters
    ----------
    seed, shape, bits
        See :class:`Scheme`.
    pattern
        Zigzag pattern (``"horizontal"``, ``"vertical"``, ``"diagonal"``).
    speckle
        Add the paper's speckle before encryption. Off, the scheme is
        deterministic and (with ``despeckle=False``) exactly invertible.
    despeckle
        Despeckle after decryption (as published).
    """

    name = "paper"
    label = "Deep-KEDI (paper suite)"
    authenticated = False

    def __init__(
        self,
        *,
        seed: int = 0,
        shape: tuple[int, int],
        bits: int = 8,
        pattern: str = "horizontal",
        speckle: bool = True,
        despeckle: bool = True,
    ) -> None:
        super().__init__(seed=seed, shape=shape, bits=bits)
        from deepkedi.keys import KeyImage
        from deepkedi.transforms.zigzag import ZigzagPattern

        self.pattern = ZigzagPattern(pattern)
        self.speckle = bool(speckle)
        self.despeckle = bool(despeckle)
        self.lossy = self.speckle or self.despeckle
        self.deterministic = not self.speckle
        pixels, self.key_source = _paper_key_pixels(self.seed, self.shape, self.bits)
        self.key_image = KeyImage(pixels, seed=self.seed)
        self._counter = itertools.count()

    def _settings(self) -> dict[str, Any]:
        return {"pattern": self.pattern.value, "speckle": self.speckle, "despeckle": self.despeckle}

    def encrypt(self, plain: np.ndarray) -> bytes:
        from deepkedi.cipher.paper import encrypt_image_paper

        rng = np.random.default_rng([self.seed, next(self._counter)]) if self.speckle else None
        return encrypt_image_paper(
            self._check_plain(plain), self.key_image, pattern=self.pattern, speckle=self.speckle, rng=rng
        )

    def _stored_cipher(self, payload: bytes) -> tuple[np.ndarray, Any]:
        from deepkedi.cipher.format import Suite, parse_header

        view = memoryview(payload).cast("B")
        header = parse_header(view)
        if header.suite is not Suite.PAPER:
            raise FormatError(f"this is a '{header.suite.name.lower()}' container, not a 'paper' one")
        if len(view) != header.container_length:
            raise FormatError(f"a paper container of {header.container_length} bytes was expected, got {len(view)}")
        cipher = np.frombuffer(view[header.encoded_length :], dtype=header.dtype, count=math.prod(header.shape))
        return cipher.reshape(header.shape), header

    def decrypt(self, payload: bytes) -> np.ndarray:
        from deepkedi.cipher.paper import paper_decrypt_pixels

        cipher, header = self._stored_cipher(payload)
        restored = paper_decrypt_pixels(cipher, self.key_image, pattern=header.pattern, despeckle=self.despeckle)
        return restored.astype(self.dtype, copy=False)

    def cipher_image(self, payload: bytes) -> np.ndarray:
        cipher, _ = self._stored_cipher(payload)
        return cipher.astype(cipher.dtype.newbyteorder("="))

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        from deepkedi.cipher.format import parse_header

        return parse_header(payload).encoded_length, len(payload)

    def public_order(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The zigzag scan order of the pattern: cipher pixel ``k`` encrypts plain pixel ``order[k]``."""
        from deepkedi.transforms.zigzag import scan_order

        rows, cols = shape
        return np.asarray(scan_order(rows, cols, self.pattern))
