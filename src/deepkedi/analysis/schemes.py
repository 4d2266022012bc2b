"""Every cipher scheme the reproduction compares, behind one interface. RESEARCH KEYS ONLY.

.. warning::

   The keys of these schemes are derived *deterministically from a small integer
   seed* so that experiments and attacks are reproducible. They are research keys,
   not keys: anyone who knows the seed knows the key. Production keys come from
   :func:`deepkedi.keys.generate_key` (hybrid) or ``kedi keygen``. Only ``hybrid``
   is a secure cipher; the others are here to be measured and attacked.

A :class:`Scheme` is bound to one key (its ``seed``), one image size and one bit
depth, and reuses that key for every image it encrypts, exactly as the paper uses
its key image; that reuse is what :mod:`deepkedi.analysis.attacks` studies.

=========================  ===========================================================  =====  =====  =====
name                       what it is                                                   lossy  auth.  det.
=========================  ===========================================================  =====  =====  =====
``paper``                  Deep-KEDI as published [1]_: speckle → zigzag → XOR with a    yes    no     no*
                           ZZ-GAN key image; decryption despeckles
``hybrid``                 the project's suite: HKDF-SHA256 + AES-256-GCM, fresh salt   no     yes    no
``xor-fixed-key``          XOR with one fixed random key image                          no     no     yes
``logistic-map``           logistic-map permutation + additive diffusion with feedback  no     no     yes
                           (Fridrich 1998 [2]_ style, keystream as Pareek et al. [3]_)
``arnold-cat-xor``         Arnold cat map permutation + XOR with a logistic keystream   no     no     yes
                           (Chen, Mao & Chui 2004 [4]_ style)
``aes-ctr-reused-nonce``   AES-256-CTR with one nonce reused for every image            no     no     yes
=========================  ===========================================================  =====  =====  =====

\\* ``paper`` is deterministic only with its speckle switched off (``speckle=False``).

The baselines (the last four) write a small self-describing payload: a 14-byte
header (magic ``b"DKBL"``, scheme code, dtype code, rows and columns as big-endian
``u32``) followed by the cipher pixels as little-endian words in raster order. They
authenticate nothing: a flipped bit decrypts silently to a changed image.

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI" (ZZ-GAN key generation for medical
   image encryption), *Technology and Health Care* 32(5), 3231-3251 (2024).
   :doi:`10.3233/THC-231927`
.. [2] J. Fridrich, "Symmetric ciphers based on two-dimensional chaotic maps",
   *Int. J. Bifurcation and Chaos* 8(6), 1259-1284 (1998). :doi:`10.1142/S021812749800098X`
.. [3] N. K. Pareek, V. Patidar and K. K. Sud, "Image encryption using chaotic logistic
   map", *Image and Vision Computing* 24(9), 926-934 (2006). :doi:`10.1016/j.imavis.2006.02.021`
.. [4] G. Chen, Y. Mao and C. K. Chui, "A symmetric image encryption scheme based on 3D
   chaotic cat maps", *Chaos, Solitons & Fractals* 21(3), 749-761 (2004).
   :doi:`10.1016/j.chaos.2003.12.022`
.. [5] R. M. May, "Simple mathematical models with very complicated dynamics",
   *Nature* 261, 459-467 (1976). :doi:`10.1038/261459a0`
.. [6] V. I. Arnold and A. Avez, *Ergodic Problems of Classical Mechanics*, Benjamin (1968).
.. [7] E. Solak, C. Çokal, O. T. Yildiz and T. Biyikoğlu, "Cryptanalysis of Fridrich's
   chaotic image encryption", *Int. J. Bifurcation and Chaos* 20(5), 1405-1413 (2010).
   :doi:`10.1142/S0218127410026563`
.. [8] NIST SP 800-38A, "Recommendation for Block Cipher Modes of Operation" (2001),
   Sec. 6.5 and Appendix B (CTR counter blocks must never repeat under one key).
   :doi:`10.6028/NIST.SP.800-38A`

Examples
--------
>>> import numpy as np
>>> scheme = make_scheme("xor-fixed-key", seed=1, shape=(4, 5), bits=8)
>>> plain = np.arange(20, dtype=np.uint8).reshape(4, 5)
>>> np.array_equal(scheme.decrypt(scheme.encrypt(plain)), plain)
True
"""

from __future__ import annotations

import abc
import functools
import hashlib
import itertools
import math
import statistics
import struct
import time
from typing import Any, ClassVar

import numpy as np

from deepkedi.errors import FormatError

__all__ = ["SCHEME_NAMES", "Scheme", "make_scheme", "time_scheme"]

SCHEME_NAMES: tuple[str, ...] = (
    "paper",
    "hybrid",
    "xor-fixed-key",
    "logistic-map",
    "arnold-cat-xor",
    "aes-ctr-reused-nonce",
)

_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}
_KEY_LABEL = "deepkedi/analysis research key"


# --------------------------------------------------------------------------- key derivation


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return seed


def _seed_bytes(label: str, seed: int, length: int = 32) -> bytes:
    """``length`` bytes determined by ``(label, seed)``: SHA-256 in counter mode (research keys only)."""
    out = b""
    for counter in itertools.count():
        if len(out) >= length:
            return out[:length]
        out += hashlib.sha256(f"{_KEY_LABEL}|{label}|{seed}|{counter}".encode()).digest()
    raise AssertionError("unreachable")  # pragma: no cover


def _seed_unit(label: str, seed: int) -> float:
    """A float in [0, 1) determined by ``(label, seed)``, 53 bits of it."""
    return (int.from_bytes(_seed_bytes(label, seed, 8), "big") >> 11) / 2.0**53


def _logistic_parameters(label: str, seed: int) -> tuple[float, float]:
    """``(x0, r)`` of a logistic map: x0 in [0.05, 0.95), r in [3.99, 4) (the chaotic regime, May [5])."""
    x0 = 0.05 + 0.9 * _seed_unit(f"{label} x0", seed)
    r = 3.99 + 0.00999 * _seed_unit(f"{label} r", seed)
    return x0, r


def _logistic_sequence(x0: float, r: float, length: int, *, transient: int = 1000) -> np.ndarray:
    """``length`` iterates of the logistic map ``x ← r·x·(1 − x)`` after ``transient`` discarded ones.

    The map is a strict recurrence, so this is the one sequential loop of the
    module; it runs once per key (when a scheme is built), never per image.
    """
    x = float(x0)
    for _ in range(transient):
        x = r * x * (1.0 - x)
    out = np.empty(length, dtype=np.float64)
    for i in range(length):
        x = r * x * (1.0 - x)
        out[i] = x
    return out


def _chaotic_words(sequence: np.ndarray, bits: int) -> np.ndarray:
    """Key words from chaotic iterates: ``floor(x · 10^14) mod 2^bits`` (Pareek et al. [3]_ quantisation)."""
    return (np.floor(sequence * 1e14).astype(np.uint64) % np.uint64(1 << bits)).astype(_DTYPES[bits])


# --------------------------------------------------------------------------- interface


class Scheme(abc.ABC):
    """An image cipher under one fixed research key, for one image size and bit depth.

    Parameters
    ----------
    seed
        Non-negative integer the key is derived from (deterministically: research
        keys, see the module docstring). The key is fixed for the instance, so
        every :meth:`encrypt` of the same instance reuses it.
    shape
        ``(rows, cols)`` of the images to encrypt.
    bits
        8 (``uint8`` images) or 16 (``uint16`` images).

    Attributes
    ----------
    name, label
        Registry name (one of :data:`SCHEME_NAMES`) and a human-readable label.
    lossy
        ``decrypt(encrypt(p))`` may differ from ``p``.
    authenticated
        Decryption detects a modified payload or a wrong key.
    deterministic
        The same plaintext under the same key gives the same payload.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    lossy: bool = False
    authenticated: bool = False
    deterministic: bool = True

    def __init__(self, *, seed: int = 0, shape: tuple[int, int], bits: int = 8) -> None:
        self.seed = _check_seed(seed)
        if len(tuple(shape)) != 2 or any(int(d) < 1 for d in shape):
            raise ValueError(f"shape must be (rows, cols) with both at least 1, got {shape}")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        if bits not in _DTYPES:
            raise ValueError(f"bits must be 8 (uint8 images) or 16 (uint16 images), got {bits}")
        self.bits = int(bits)
        self.dtype = _DTYPES[self.bits]

    # -- the interface -------------------------------------------------------------------
    @abc.abstractmethod
    def encrypt(self, plain: np.ndarray) -> bytes:
        """The payload of ``plain``, a 2-D ``uint8``/``uint16`` image of the scheme's shape and depth."""

    @abc.abstractmethod
    def decrypt(self, payload: bytes) -> np.ndarray:
        """The image of ``payload``: same shape and dtype as the plain image (native byte order)."""

    @abc.abstractmethod
    def cipher_image(self, payload: bytes) -> np.ndarray:
        """The cipher pixels of ``payload``, same shape and dtype as the plain image (no key needed)."""

    @abc.abstractmethod
    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        """``[start, stop)`` byte range of ``payload`` holding cipher pixel data (for tamper tests)."""

    def public_order(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The flat pixel permutation applied *publicly* before the key, or ``None`` (none, or secret).

        Cipher pixel ``k`` (raster order) then encrypts plain pixel ``order[k]``.
        """
        return None

    def rekeyed(self, seed: int) -> Scheme:
        """The same scheme and settings under the key of another seed (keys B, C, D of the attacks)."""
        return type(self)(seed=seed, shape=self.shape, bits=self.bits, **self._settings())

    # -- helpers -------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Constructor options beyond seed, shape and bits (for :meth:`rekeyed`)."""
        return {}

    def _check_plain(self, plain: np.ndarray) -> np.ndarray:
        """``plain`` in native byte order, checked against the scheme's shape and depth."""
        if not isinstance(plain, np.ndarray):
            raise TypeError(f"plain must be a NumPy array, not {type(plain).__name__}")
        if plain.dtype.newbyteorder("=") != self.dtype:
            raise TypeError(
                f"scheme {self.name!r} was made for {self.bits}-bit images ({self.dtype.name}), not {plain.dtype}; "
                f"make one with make_scheme({self.name!r}, shape=..., bits={8 * plain.dtype.itemsize})"
            )
        if plain.shape != self.shape:
            raise ValueError(
                f"scheme {self.name!r} holds a key for {self.shape[0]}×{self.shape[1]} images, not {plain.shape}; "
                "make a scheme of the image's shape"
            )
        return np.ascontiguousarray(plain, dtype=self.dtype)

    def __repr__(self) -> str:  # the seed is the key: not shown
        return f"{type(self).__name__}(name={self.name!r}, shape={self.shape}, bits={self.bits})"


# --------------------------------------------------------------------------- hybrid


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
        from deepkedi.cipher.hybrid import decrypt_image

        restored = decrypt_image(payload, self._key)
        return np.asarray(restored, dtype=self.dtype)

    def cipher_image(self, payload: bytes) -> np.ndarray:
        from deepkedi.cipher.hybrid import cipher_image

        return cipher_image(bytes(payload)).astype(self.dtype, copy=False)

    def pixel_span(self, payload: bytes) -> tuple[int, int]:
        """From the first ciphertext byte of the pixel words to the start of the last GCM tag.

        The encrypted restoration section (before the pixel words) and the final
        tag are left out; with more than one segment (images over 1 MiB), the
        tags between segments lie inside the span.
        """
        from deepkedi.cipher.format import TAG_SIZE
        from deepkedi.cipher.hybrid import read_header

        header = read_header(payload)
        # The restoration section of an in-memory array is tiny, inside the first segment.
        start = header.encoded_length + header.residual_length
        if header.residual_length >= header.segment_size:
            start = header.encoded_length
        return start, len(payload) - TAG_SIZE


# --------------------------------------------------------------------------- paper


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
        header = parse_header(bytes(view[:65536]))
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

        return parse_header(bytes(memoryview(payload)[:65536])).encoded_length, len(payload)

    def public_order(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The zigzag scan order of the pattern: cipher pixel ``k`` encrypts plain pixel ``order[k]``."""
        from deepkedi.transforms.zigzag import scan_order

        rows, cols = shape
        return np.asarray(scan_order(rows, cols, self.pattern))


# --------------------------------------------------------------------------- baselines

_BASELINE_MAGIC = b"DKBL"
_BASELINE_HEADER = struct.Struct(">4sBBII")
_BASELINE_CODES = {"xor-fixed-key": 1, "logistic-map": 2, "arnold-cat-xor": 3, "aes-ctr-reused-nonce": 4}
_DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}
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


# --------------------------------------------------------------------------- registry

_SCHEMES: dict[str, type[Scheme]] = {
    "paper": PaperScheme,
    "hybrid": HybridScheme,
    "xor-fixed-key": XorFixedKeyScheme,
    "logistic-map": LogisticMapScheme,
    "arnold-cat-xor": ArnoldCatXorScheme,
    "aes-ctr-reused-nonce": AesCtrReusedNonceScheme,
}


def make_scheme(name: str, *, seed: int = 0, shape: tuple[int, int], bits: int = 8, **options: Any) -> Scheme:
    """The scheme called ``name`` under the research key of ``seed``, for ``shape`` images of ``bits`` bits.

    Parameters
    ----------
    name
        One of :data:`SCHEME_NAMES`.
    seed
        Non-negative integer the key is derived from, deterministically (research
        keys: see the module docstring; production keys come from
        :func:`deepkedi.keys.generate_key`).
    shape
        ``(rows, cols)`` of the images.
    bits
        8 for ``uint8`` images, 16 for ``uint16``.
    **options
        Scheme-specific settings (``paper``: ``pattern``, ``speckle``, ``despeckle``).

    Returns
    -------
    Scheme

    Raises
    ------
    ValueError
        ``name`` is not a scheme, or ``shape``/``bits`` are invalid.

    Examples
    --------
    >>> scheme = make_scheme("aes-ctr-reused-nonce", seed=3, shape=(8, 8), bits=16)
    >>> scheme.name, scheme.authenticated, scheme.deterministic
    ('aes-ctr-reused-nonce', False, True)
    """
    try:
        cls = _SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEME_NAMES)}") from None
    return cls(seed=seed, shape=shape, bits=bits, **options)


def time_scheme(scheme: Scheme, plain: np.ndarray, *, repeats: int = 5) -> tuple[float, float]:
    """Median wall-clock milliseconds of ``scheme.encrypt(plain)`` and of ``scheme.decrypt`` of its payload.

    One untimed warm-up encryption and decryption come first (imports, caches,
    scratch buffers). Key derivation is not timed: it happens when the scheme is
    built, once per key.

    Parameters
    ----------
    scheme
        The scheme to time.
    plain
        An image of the scheme's shape and depth.
    repeats
        Timed calls of each (at least 1).

    Returns
    -------
    tuple of float
        ``(encrypt_ms, decrypt_ms)``, medians over ``repeats``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    scheme.decrypt(scheme.encrypt(plain))
    encrypt_ms, decrypt_ms = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        payload = scheme.encrypt(plain)
        middle = time.perf_counter()
        scheme.decrypt(payload)
        end = time.perf_counter()
        encrypt_ms.append(1e3 * (middle - start))
        decrypt_ms.append(1e3 * (end - middle))
    return statistics.median(encrypt_ms), statistics.median(decrypt_ms)
