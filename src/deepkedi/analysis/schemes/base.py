"""The interface every scheme implements, its research keys, the registry and the timing.

A :class:`Scheme` is bound to one key (its ``seed``), one image size and one bit
depth. Keys are derived deterministically from the seed (:func:`_seed_bytes`):
research keys, not keys (see :mod:`deepkedi.analysis.schemes`).
"""

from __future__ import annotations

import abc
import hashlib
import importlib
import itertools
import statistics
import time
from typing import Any, ClassVar

import numpy as np

__all__ = ["SCHEME_NAMES", "Scheme", "make_scheme", "time_scheme"]

# name -> "module:class"; each scheme's module imports this one, so the registry imports them when asked
_SCHEMES: dict[str, str] = {
    "paper": "deepkedi.analysis.schemes.paper:PaperScheme",
    "hybrid": "deepkedi.analysis.schemes.hybrid:HybridScheme",
    "xor-fixed-key": "deepkedi.analysis.schemes.xor_fixed_key:XorFixedKeyScheme",
    "logistic-map": "deepkedi.analysis.schemes.logistic_map:LogisticMapScheme",
    "arnold-cat-xor": "deepkedi.analysis.schemes.arnold_cat_xor:ArnoldCatXorScheme",
    "aes-ctr-reused-nonce": "deepkedi.analysis.schemes.aes_ctr_reused_nonce:AesCtrReusedNonceScheme",
}

SCHEME_NAMES: tuple[str, ...] = tuple(_SCHEMES)

_DTYPES: dict[int, np.dtype[np.unsignedinteger[Any]]] = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}
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


# --------------------------------------------------------------------------- registry


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
        module, _, cls_name = _SCHEMES[name].partition(":")
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEME_NAMES)}") from None
    cls: type[Scheme] = getattr(importlib.import_module(module), cls_name)
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
