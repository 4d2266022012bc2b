"""Keyed multiplicative speckle that the key holder removes exactly. Research code.

The paper's speckle makes its decryption lossy: the blind despeckler
(:func:`deepkedi.transforms.ripplet_despeckle.despeckle_ripplet`) only estimates
the clean image. :class:`ReversibleSpeckle` draws the multiplier field from a
ChaCha20 keystream under a key, so that the key holder regenerates it and
divides it out: the pre-processing step a pipeline that must give back the
original pixels needs. It is not part of any suite (``kedi demo`` shows it).

Speckle is not encryption: the speckled image still shows the anatomy.

References
----------
.. [1] D. J. Bernstein, "ChaCha, a variant of Salsa20" (2008); Y. Nir and
   A. Langley, RFC 8439 (2018). :doi:`10.17487/RFC8439`
"""

from __future__ import annotations

import hashlib
import hmac
import math
import operator
import os
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from deepkedi.transforms.speckle import SpeckleModel, _check_model, _multiplier_from_uniforms

__all__ = ["ReversibleSpeckle"]

# Smallest keyed multiplier: keeps g / n well conditioned and n > 0 (a Gaussian
# n = 1 + sigma z goes negative at z < -1/sigma).
_REVERSIBLE_FLOOR: Final = 0.05
_HKDF_INFO: Final = b"deepkedi/v1 reversible speckle"
_TWEAK_LABEL: Final = b"deepkedi/v1 reversible speckle tweak"
# ChaCha20's 32-bit block counter covers 2^32 blocks of 64 bytes; 8 bytes a pixel.
_MAX_PIXELS: Final = (1 << 32) * 64 // 8
# Integer dtypes ReversibleSpeckle accepts, by itemsize: the float type that
# carries them exactly (see ReversibleSpeckle's docstring for the bound).
_CARRIER: Final[dict[int, type[np.floating[Any]]]] = {1: np.float32, 2: np.float32, 4: np.float64}


def _keystream_uniforms(key: bytes, tweak: bytes, count: int) -> NDArray[np.float64]:
    """``count`` uniforms in (0, 1) from ChaCha20 under a per-tweak subkey.

    Subkey ``= HMAC-SHA256(key, label || tweak)`` (a PRF, so distinct tweaks
    give independent streams); ChaCha20 with a zero nonce encrypts zeros; each
    little-endian 64-bit word keeps its top 52 bits ``k`` and gives ``u = (2k +
    1) 2^-53``: the midpoints of a ``2^-52`` grid, exact in float64, symmetric
    about 1/2 and never 0 or 1 (so inverse CDFs stay finite). ``(k + 0.5)
    2^-53`` with 53 bits would not do: ``2^53 - 0.5`` rounds to ``2^53``, ``u =
    1``.
    """
    from deepkedi.keystream import chacha20_keystream

    if count > _MAX_PIXELS:
        raise ValueError(f"at most {_MAX_PIXELS} pixels per tweak, got {count}")
    subkey = hmac.new(key, _TWEAK_LABEL + tweak, hashlib.sha256).digest()
    stream = chacha20_keystream(subkey, 8 * count)
    k = np.frombuffer(stream, dtype="<u8") >> np.uint64(12)
    return (2.0 * k.astype(np.float64) + 1.0) * 2.0**-53


class ReversibleSpeckle:
    r"""Keyed multiplicative speckle that the key holder removes exactly.

    ``apply`` multiplies an integer image by a field ``n`` regenerated from the
    key and a per-image ``tweak``; ``remove`` divides it out and rounds:
    ``f = rint(g / n)``. The field comes from a ChaCha20 keystream [1]_ under
    ``HMAC-SHA256(key, label || tweak)``: uniforms on a ``2^-52`` grid, mapped by the inverse
    CDF of the model (``scipy.special.ndtri`` for Gaussian,
    ``gammaincinv`` for Gamma), then clipped to ``n >= 0.05`` so the division
    is well conditioned. For the default Gaussian ``v = 0.01`` the clip cannot
    fire (the most extreme uniform gives ``n = 1 - 0.1 * 8.2 = 0.18``); for
    1-look Gamma it moves 4.9 % of the multipliers up to 0.05.

    Speckle is *not* encryption: ``g`` shows the image. Use it as the paper's
    reversible pre-processing step, inside real encryption.

    Exactness
    ---------
    Let ``f`` be an integer, ``n >= 0.05`` the float64 multiplier,
    ``u = 2^-53`` and ``u_c`` the unit roundoff of the carrier (``2^-24`` for
    float32, ``2^-53`` for float64). ``apply`` computes ``g = fl_c(fl64(f n))
    = f n (1 + d1)(1 + d2)`` with ``|d1| <= u``, ``|d2| <= u_c`` (``f`` is
    exact in float64; ``|f n| >= 0.05`` or 0, so no underflow; ``apply``
    refuses a level so large that ``f n`` overflows the carrier). ``remove`` computes ``fl64(g / n) = f (1 + d1)(1 +
    d2)(1 + d3)``, ``|d3| <= u``. Hence

    .. math:: |g/n - f| \le |f| (u_c + 2u + O(u u_c)).

    float32 carrier for 8/16-bit integers, ``|f| <= 2^16``: ``<= 2^16 (2^-24 +
    2^-52 + ...) < 2^-7.99``, far below 1/2. float64 carrier for 32-bit
    integers, ``|f| <= 2^32``: ``<= 2^32 * 3 * 2^-53 < 2^-19``. So ``rint``
    returns ``f`` exactly, and ``f`` fits the original dtype. Zeros stay zero.
    64-bit integers (not exactly representable in float64) and floating-point
    images (not integers, so ``rint`` cannot restore them) are refused.

    Parameters
    ----------
    key : bytes
        32 secret bytes. Derive them with :meth:`from_master` or draw them with
        ``os.urandom(32)``.
    model : {"gaussian", "uniform", "gamma"}, optional
        Distribution of ``n`` before clipping, as in
        :func:`deepkedi.transforms.speckle.add_speckle`.
    level : float, optional
        Variance or looks; default :data:`deepkedi.transforms.speckle.DEFAULT_LEVELS`.

    References
    ----------
    .. [1] Y. Nir and A. Langley, "ChaCha20 and Poly1305 for IETF Protocols",
       RFC 8439 (2018). :doi:`10.17487/RFC8439`
    .. [2] H. Krawczyk and P. Eronen, "HMAC-based Extract-and-Expand Key
       Derivation Function (HKDF)", RFC 5869 (2010). :doi:`10.17487/RFC5869`

    Examples
    --------
    >>> speckle = ReversibleSpeckle(bytes(range(32)))
    >>> f = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    >>> g = speckle.apply(f, tweak=b"image 1")
    >>> g.dtype
    dtype('float32')
    >>> bool(np.array_equal(speckle.remove(g, np.uint16, tweak=b"image 1"), f))
    True
    """

    __slots__ = ("_key", "_level", "_model")

    def __init__(self, key: bytes, *, model: SpeckleModel = "gaussian", level: float | None = None) -> None:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError(f"key must be bytes, got {type(key).__name__}")
        key = bytes(key)
        if len(key) != 32:
            raise ValueError(f"key must be 32 bytes, got {len(key)}; derive one with ReversibleSpeckle.from_master")
        self._key = key
        self._model, self._level = _check_model(model, level)

    def __repr__(self) -> str:
        return f"ReversibleSpeckle(<key>, model={self._model!r}, level={self._level!r})"

    @property
    def model(self) -> str:
        """Distribution of the multiplier."""
        return self._model

    @property
    def level(self) -> float:
        """Variance (or looks, for ``gamma``) of the multiplier."""
        return self._level

    @classmethod
    def from_master(
        cls, secret: bytes, salt: bytes, *, model: SpeckleModel = "gaussian", level: float | None = None
    ) -> ReversibleSpeckle:
        """Derive the key with HKDF-SHA256 [2]_ (``info = b"deepkedi/v1 reversible speckle"``).

        Parameters
        ----------
        secret : bytes
            Master secret (high entropy; this is not a password hash).
        salt : bytes
            HKDF salt.
        model, level
            As in the constructor.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not isinstance(secret, (bytes, bytearray)) or not isinstance(salt, (bytes, bytearray)):
            raise TypeError("secret and salt must be bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(salt), info=_HKDF_INFO).derive(bytes(secret))
        return cls(key, model=model, level=level)

    @staticmethod
    def new_tweak() -> bytes:
        """16 random bytes from ``os.urandom``: a fresh per-image tweak to store beside the image."""
        return os.urandom(16)

    def multiplier(self, shape: tuple[int, ...], *, tweak: bytes) -> NDArray[np.float64]:
        """The field ``n`` (float64, ``>= 0.05``) for an image of ``shape`` and this tweak."""
        tweak = _check_tweak(tweak)
        shape = tuple(operator.index(s) for s in shape)
        count = math.prod(shape)
        u = _keystream_uniforms(self._key, tweak, count)
        n = _multiplier_from_uniforms(u, self._model, self._level)
        return np.maximum(n, _REVERSIBLE_FLOOR).reshape(shape)

    def apply(self, image: ArrayLike, *, tweak: bytes) -> np.ndarray:
        """Speckle an integer image: ``g = f * n``.

        Parameters
        ----------
        image : array_like of int
            8-, 16- or 32-bit signed or unsigned integers, any shape and byte order.
        tweak : bytes
            Per-image value, never reused with the same key for another image
            (:meth:`new_tweak`); ``remove`` needs the same one.

        Returns
        -------
        numpy.ndarray
            ``float32`` for 8/16-bit input, ``float64`` for 32-bit input.

        Raises
        ------
        TypeError
            For float, bool, complex or 64-bit integer images.
        """
        f = np.asarray(image)
        carrier = _carrier(f.dtype, func="apply")
        n = self.multiplier(f.shape, tweak=tweak)
        with np.errstate(over="ignore"):
            g = np.asarray(f.astype(np.float64) * n).astype(carrier)
        if not np.isfinite(g).all():
            # Only a huge variance (or very few looks) can push f * n past float32's range.
            raise ValueError(f"level={self._level} makes f * n overflow {g.dtype}; use a smaller speckle level")
        return g

    def remove(self, noisy: ArrayLike, dtype: np.dtype | type | str, *, tweak: bytes) -> np.ndarray:
        """Undo :meth:`apply`: ``rint(g / n)`` cast back to ``dtype``, exactly the original.

        Parameters
        ----------
        noisy : array_like
            Output of :meth:`apply`.
        dtype : numpy dtype
            The original image's dtype.
        tweak : bytes
            The tweak given to :meth:`apply`.

        Returns
        -------
        numpy.ndarray
            The original image (with the right key and tweak); with a wrong one,
            values clipped to the dtype's range that are not the original.
        """
        target = np.dtype(dtype)
        carrier = _carrier(target, func="remove")
        g = np.asarray(noisy)
        if g.dtype != carrier:
            raise TypeError(f"remove: a {target} image is carried as {np.dtype(carrier)}, got {g.dtype}")
        n = self.multiplier(g.shape, tweak=tweak)
        info = np.iinfo(target)
        with np.errstate(invalid="ignore", over="ignore"):
            values = np.clip(np.rint(g.astype(np.float64) / n), info.min, info.max)
        return np.asarray(values).astype(target)


def _check_tweak(tweak: object) -> bytes:
    if not isinstance(tweak, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"tweak must be bytes (one per image, e.g. ReversibleSpeckle.new_tweak()), got {type(tweak).__name__}"
        )
    return bytes(tweak)


def _carrier(dtype: np.dtype, *, func: str) -> type[np.floating[Any]]:
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize not in _CARRIER:
        raise TypeError(
            f"ReversibleSpeckle.{func}: only 8/16/32-bit integer images are restored exactly, got {dtype}; "
            "floating-point images cannot be rounded back (quantise them first), 64-bit integers do not fit float64"
        )
    return _CARRIER[dtype.itemsize]
