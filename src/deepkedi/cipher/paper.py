"""The ``paper`` suite: Deep-KEDI exactly as published. INSECURE, for research only.

.. warning::

   Do not protect patient data with this suite; use ``hybrid`` (the default).

   - **A reusable pad.** Every image is XORed with the same key image, so for
     two cipher images ``c1 XOR c2 = z1 XOR z2`` (the key cancels; ``z`` is the
     speckled, scanned plain image), and one known plain image ``p`` with its
     cipher image ``c`` gives the key, ``k ≈ c XOR scan(p)``. The speckle does
     not protect it: it is not derived from the key and keeps zeros, so the key
     is exact wherever ``p`` is black, and exact above the noise's range
     elsewhere. Every other image under that key is then read.
   - **No authentication.** Any bit of the cipher words can be flipped and the
     matching bit of the restored image flips with it; nothing notices.
   - **Lossy.** Speckle is added before encryption and only *estimated* away
     after decryption: the restored image is not the original (the paper
     reports PSNR 25.32 dB, SSIM 0.618, its Table 1), so it is no diagnostic copy.

The pipeline (seed paper, Sec. 3 and Fig. 1) for each image plane ``p`` and
key image ``k`` of the same size:

1. Speckle (Sec. 3 "Data pre-processing", Eq. (2), Fig. 2): ``s = p · n``, multiplicative noise
   with ``E[n] = 1``, here MATLAB's ``imnoise(·, 'speckle')`` (uniform ``n`` of
   variance 0.05; the paper gives neither the distribution nor the variance,
   see :mod:`deepkedi.transforms.speckle`), rounded and clipped to the image's
   integer range.
2. Zigzag scan (Sec. 3, ZZ-GAN, Figs. 3-4): ``s`` read in the vertical, horizontal or
   diagonal zigzag order into a sequence of ``H·W`` words, laid back out in
   raster order as an ``H × W`` plane.
3. XOR with the ZZ-GAN key image (Sec. 3, "the encoded image vector and the
   key are then bitwise-XOR"): ``c = scan(s) XOR k``, the cipher image (Fig. 6c).

Decryption reverses 3 and 2 and then removes the speckle blindly in the
ripplet domain (Sec. 3, speckle reduction, Eqs. (10)-(11), Fig. 5; :func:`despeckle_ripplet`).

References
----------
.. [1] K. Selvakumar and S. Lokesh, "Deep-KEDI" (ZZ-GAN key generation for medical
   image encryption), *Technology and Health Care* 32(5), 3231-3251 (2024).
   :doi:`10.3233/THC-231927`
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deepkedi.cipher.format import (
    DEFAULT_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    ContainerHeader,
    Suite,
    parse_header,
)
from deepkedi.cipher.keytypes import KeyImage
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.fileio import atomic_output, atomic_output_path, check_distinct, output_mode
from deepkedi.imaging import MedicalImage, read_image, write_image
from deepkedi.inputs import check_regular_input
from deepkedi.transforms.patterns import DEFAULT_PATTERN
from deepkedi.transforms.ripplet_despeckle import despeckle_ripplet
from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL, add_speckle
from deepkedi.transforms.zigzag import ZigzagPattern, zigzag_scan, zigzag_unscan

__all__ = [
    "DEFAULT_PATTERN",
    "PAPER_WARNING",
    "RESTORE_SUFFIXES",
    "UNVERIFIED_WARNING",
    "decrypt_file_paper",
    "decrypt_image_paper",
    "encrypt_file_paper",
    "encrypt_image_paper",
    "paper_decrypt_pixels",
    "paper_encrypt_pixels",
]

#: The paper shows all three patterns; horizontal is the default here only
#: because it follows memory order (no pattern makes this suite secure).
#: What the command line prints (once) whenever this suite is used.
PAPER_WARNING = (
    "suite 'paper' is Deep-KEDI as published — for research only, not secure "
    "(reused XOR key image, no authentication, lossy)"
)
#: What the command line prints after every decryption with this suite: nothing vouches for the output.
UNVERIFIED_WARNING = (
    "unverified: suite 'paper' authenticates nothing, so a modified container decrypts to a wrong image "
    "without any error (only the key image's fingerprint and the length are checked)"
)
#: Image dtype → (key image dtype, unsigned view the XOR works on).
_KEY_DTYPES: dict[np.dtype[Any], tuple[np.dtype[np.unsignedinteger[Any]], np.dtype[np.unsignedinteger[Any]]]] = {
    np.dtype(np.uint8): (np.dtype(np.uint8), np.dtype(np.uint8)),
    np.dtype(np.uint16): (np.dtype(np.uint16), np.dtype(np.uint16)),
    np.dtype(np.int16): (np.dtype(np.uint16), np.dtype(np.uint16)),
}
_KEYGEN_HINT = "make one with `kedi keygen --suite paper --like IMAGE`"


# --------------------------------------------------------------------------- pixels


def _native(pixels: np.ndarray, *, what: str) -> np.ndarray:
    """``pixels`` in native byte order, checked to be an 8/16-bit greyscale image or stack."""
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, not {type(pixels).__name__}")
    if pixels.ndim < 2 or 0 in pixels.shape:
        raise ValueError(f"{what} needs at least 2 non-empty dimensions (..., rows, cols); got shape {pixels.shape}")
    dtype = pixels.dtype.newbyteorder("=")
    if dtype not in _KEY_DTYPES:
        raise TypeError(
            f"suite 'paper' encrypts uint8, uint16 or int16 greyscale pixels, not {pixels.dtype}; "
            "use the hybrid suite for other images"
        )
    return pixels.astype(dtype, copy=False)


def _check_key(key_image: KeyImage, dtype: np.dtype, plane_shape: tuple[int, int]) -> np.ndarray:
    """The key's pixels as the unsigned words the XOR works on, or a ValueError saying what is needed."""
    if not isinstance(key_image, KeyImage):
        raise TypeError(f"key_image must be a KeyImage, not {type(key_image).__name__}")
    key_dtype, _ = _KEY_DTYPES[np.dtype(dtype)]
    bits = 8 * key_dtype.itemsize
    rows, cols = plane_shape
    if key_image.pixels.dtype != key_dtype or key_image.shape != (rows, cols):
        raise ValueError(
            f"this {rows}×{cols} {np.dtype(dtype).name} image needs a {rows}×{cols} {bits}-bit key image, "
            f"not {key_image.describe()}; {_KEYGEN_HINT}"
        )
    return key_image.pixels


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def _xor(planes: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``planes XOR key`` over the unsigned view of the words (int16 → uint16), broadcast over planes."""
    unsigned = planes.view(key.dtype)
    return np.bitwise_xor(unsigned, key).view(planes.dtype)


def paper_encrypt_pixels(
    pixels: np.ndarray,
    key_image: KeyImage,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    speckle: bool = True,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """The cipher image of Deep-KEDI as published: speckle → zigzag scan → XOR (insecure).

    Parameters
    ----------
    pixels
        A ``(rows, cols)`` image or a ``(..., rows, cols)`` stack of planes,
        ``uint8`` (8-bit key image) or ``uint16``/``int16`` (16-bit key image).
    key_image
        A key image of the planes' size and bit depth, used for every plane.
    pattern
        Zigzag scan order (seed paper, Fig. 4).
    speckle
        Add the paper's speckle first (Eq. (2); uniform, variance 0.05), rounded
        and clipped to the dtype's range. Without it the cipher is exactly
        invertible (:func:`paper_decrypt_pixels` with ``despeckle=False``).
    rng
        Source of the speckle, or a seed; default fresh OS entropy. Speckle is
        public noise, not key material.

    Returns
    -------
    numpy.ndarray
        The cipher image, same shape and dtype (native byte order) as ``pixels``:
        plane by plane ``reshape(zigzag_scan(speckle(p)), (rows, cols)) XOR key``.

    Raises
    ------
    TypeError
        ``pixels`` is not a uint8, uint16 or int16 array.
    ValueError
        The key image's shape or bit depth does not fit the planes.

    Examples
    --------
    >>> import numpy as np
    >>> from deepkedi.keys import KeyImage
    >>> key = KeyImage(np.random.default_rng(0).integers(0, 256, (3, 4), dtype=np.uint8))
    >>> image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    >>> cipher = paper_encrypt_pixels(image, key, speckle=False)
    >>> np.array_equal(paper_decrypt_pixels(cipher, key, pattern="horizontal", despeckle=False), image)
    True
    """
    image = _native(pixels, what="pixels")
    rows, cols = image.shape[-2:]
    key = _check_key(key_image, image.dtype, (rows, cols))
    pattern = ZigzagPattern(pattern)
    planes = image.reshape((-1, rows, cols))
    if speckle:
        # Multiplicative noise is pointwise, so the whole stack is speckled at once.
        noisy = add_speckle(planes, model=PAPER_MODEL, level=PAPER_LEVEL, rng=rng)
        planes = _round_to(noisy, image.dtype)
    scanned = zigzag_scan(planes, pattern).reshape(planes.shape)
    return _xor(scanned, key).reshape(image.shape)


def paper_decrypt_pixels(
    cipher: np.ndarray,
    key_image: KeyImage,
    *,
    pattern: ZigzagPattern | str,
    despeckle: bool = True,
) -> np.ndarray:
    """Invert :func:`paper_encrypt_pixels`: XOR → inverse zigzag → blind ripplet despeckling.

    Parameters
    ----------
    cipher
        The cipher image (``(..., rows, cols)``, uint8, uint16 or int16).
    key_image
        The key image it was encrypted with.
    pattern
        The zigzag pattern it was encrypted with.
    despeckle
        Remove the speckle with :func:`~deepkedi.transforms.ripplet_despeckle.despeckle_ripplet`
        plane by plane (seed paper, Eq. (11)), rounded and clipped to the dtype.
        This only estimates the plain image. Negative pixels (int16 CT) are
        treated as 0 by the despeckler, which assumes a non-negative image.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``cipher``.
    """
    data = _native(cipher, what="cipher")
    rows, cols = data.shape[-2:]
    key = _check_key(key_image, data.dtype, (rows, cols))
    pattern = ZigzagPattern(pattern)
    planes = data.reshape((-1, rows, cols))
    scanned = _xor(planes, key).reshape((-1, rows * cols))
    restored = zigzag_unscan(scanned, rows, cols, pattern)
    if despeckle:
        restored = _round_to(despeckle_ripplet(restored), data.dtype)
    return restored.reshape(data.shape)


# --------------------------------------------------------------------------- containers


def _header(pixels: np.ndarray, key_image: KeyImage, pattern: ZigzagPattern | str, format_name: str) -> ContainerHeader:
    dtype = pixels.dtype.newbyteorder("<") if pixels.dtype.itemsize > 1 else pixels.dtype
    return ContainerHeader(
        suite=Suite.PAPER,
        pattern=ZigzagPattern(pattern),
        channels_last=False,
        dtype=dtype,
        shape=pixels.shape,
        key_id=key_image.key_id,
        salt=bytes(SALT_SIZE),
        nonce_prefix=bytes(NONCE_PREFIX_SIZE),
        segment_size=DEFAULT_SEGMENT_SIZE,
        residual_length=0,
        format=format_name,
    )


def _container(header: ContainerHeader, cipher: np.ndarray) -> bytes:
    return header.encode() + np.ascontiguousarray(cipher, dtype=header.dtype).tobytes()


def _image_pixels(image: MedicalImage, where: str) -> np.ndarray:
    if image.channels_last or image.samples_per_pixel != 1:
        raise UnsupportedImageError(
            f"{where}: suite 'paper' encrypts greyscale images, not {image.samples_per_pixel}-sample "
            f"{image.photometric}; use the hybrid suite"
        )
    dtype = image.pixels.dtype.newbyteorder("=")
    if dtype not in _KEY_DTYPES:
        raise UnsupportedImageError(
            f"{where}: suite 'paper' encrypts uint8, uint16 or int16 pixels, not {image.pixels.dtype}; "
            "use the hybrid suite"
        )
    return image.pixels.astype(dtype, copy=False)


def encrypt_image_paper(
    pixels: np.ndarray | MedicalImage,
    key_image: KeyImage,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    speckle: bool = True,
    rng: np.random.Generator | int | None = None,
) -> bytes:
    """A ``paper`` container of an image held in memory (insecure; see the module docstring).

    The container is the header (suite 2) followed by the cipher image's words,
    little-endian, raster order, with no tag: docs/FORMAT.md, section 9.
    """
    if isinstance(pixels, MedicalImage):
        array, format_name = _image_pixels(pixels, "image"), pixels.format
    else:
        array, format_name = _native(pixels, what="pixels"), "array"
    cipher = paper_encrypt_pixels(array, key_image, pattern=pattern, speckle=speckle, rng=rng)
    return _container(_header(array, key_image, pattern, format_name), cipher)


def _paper_header(data: bytes | memoryview, where: str) -> ContainerHeader:
    header = parse_header(data)
    if header.suite is not Suite.PAPER:
        raise ValueError(
            f"{where} is a '{header.suite.name.lower()}' container; decrypt it with its key file "
            "(deepkedi.cipher.hybrid.decrypt_file, or `kedi decrypt --key KEYFILE`), not a key image"
        )
    return header


def _open_container(header: ContainerHeader, body: bytes | memoryview, key_image: KeyImage, length: int) -> np.ndarray:
    # No tag exists to check: the key id (a fingerprint of the key image) and the length are all there is.
    if header.key_id != key_image.key_id or length != header.container_length:
        raise AuthenticationError()
    cipher = np.frombuffer(body, dtype=header.dtype, count=math.prod(header.shape))
    return cipher.reshape(header.shape)


def decrypt_image_paper(
    data: bytes | bytearray | memoryview, key_image: KeyImage, *, despeckle: bool = True
) -> np.ndarray:
    """Decrypt a ``paper`` container held in memory into its pixels (lossy with ``despeckle``).

    Raises
    ------
    FormatError
        ``data`` is not a deepkedi container.
    ValueError
        It is a container of another suite (``hybrid``).
    AuthenticationError
        The key image is not the one the container names, or the length is
        wrong. Modifications of the cipher words are *not* detected.
    """
    view = memoryview(data).cast("B")
    header = _paper_header(view, "the data")
    cipher = _open_container(header, view[header.encoded_length :], key_image, len(view))
    return paper_decrypt_pixels(cipher, key_image, pattern=header.pattern, despeckle=despeckle)


def _read_paper_container(path: Path) -> tuple[ContainerHeader, bytes]:
    try:
        check_regular_input(path, error=FormatError)  # a FIFO would block the read below
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return _paper_header(data, str(path)), data


def encrypt_file_paper(
    src: str | Path,
    dst: str | Path,
    key_image: KeyImage,
    *,
    pattern: ZigzagPattern | str = DEFAULT_PATTERN,
    seed: int | None = None,
    force: bool = False,
) -> ContainerHeader:
    """Encrypt the image file ``src`` into the ``paper`` container ``dst`` (insecure, lossy).

    Every plane of the image (every slice of a volume) is encrypted under the
    same key image. Only the pixels travel: the original file's header (DICOM
    attributes, NIfTI affine) is not kept, unlike the ``hybrid`` suite.

    Parameters
    ----------
    src
        A greyscale DICOM, NIfTI, PNG, TIFF or ``.npy`` image, uint8, uint16 or int16.
    dst
        The container to write, atomically; an existing file is kept unless ``force``.
    key_image
        A key image of the planes' size and bit depth.
    pattern
        Zigzag scan order.
    seed
        Seed of the speckle (for reproducible experiments); default fresh OS entropy.

    Raises
    ------
    UnsupportedImageError
        ``src`` is unreadable, colour, or of another pixel type.
    ValueError
        The key image does not fit the image.
    OutputExistsError
        ``dst`` exists and ``force`` is false.
    """
    src, dst = Path(src), Path(dst)
    check_distinct(src, dst)
    image = read_image(src)
    pixels = _image_pixels(image, str(src))
    try:
        header = _header(pixels, key_image, pattern, image.format)
    except ValueError as exc:  # the image itself: too many dimensions for a container
        raise UnsupportedImageError(f"{src}: the container cannot hold this image: {exc}") from None
    cipher = paper_encrypt_pixels(pixels, key_image, pattern=pattern, speckle=True, rng=seed)
    # An XOR container reveals the image to anyone with one known plaintext: as private as the image.
    with atomic_output(dst, force=force, mode=output_mode(src)) as fh:
        fh.write(_container(header, cipher))
    return header


#: Output suffixes ``decrypt_file_paper`` writes, for messages.
RESTORE_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm")


def decrypt_file_paper(
    src: str | Path,
    dst: str | Path,
    key_image: KeyImage,
    *,
    despeckle: bool = True,
    force: bool = False,
) -> ContainerHeader:
    """Decrypt the ``paper`` container ``src`` into the image file ``dst`` (an estimate of the original).

    The format follows ``dst``'s suffix: ``.npy``, ``.png`` and ``.tif``/``.tiff``
    (one uint8/uint16 plane; TIFF also stacks), ``.nii``/``.nii.gz``, or
    ``.dcm`` (a new Secondary Capture DICOM without the original's attributes,
    which a ``paper`` container does not carry).

    Raises
    ------
    FormatError
        ``src`` is not a deepkedi container.
    ValueError
        ``src`` is a ``hybrid`` container, or ``dst``'s suffix names no
        writable format, or the format cannot hold these pixels.
    AuthenticationError
        The key image is not the container's (its fingerprint in the header
        differs), or the container's length is wrong. Nothing else is checked:
        the output is unverified (:data:`UNVERIFIED_WARNING`).
    OutputExistsError
        ``dst`` exists and ``force`` is false.
    """
    src, dst = Path(src), Path(dst)
    check_distinct(src, dst)
    name = dst.name.lower()
    if not name.endswith(RESTORE_SUFFIXES):
        raise ValueError(f"{dst}: write the restored image as one of {', '.join(RESTORE_SUFFIXES)}")
    header, data = _read_paper_container(src)
    cipher = _open_container(header, memoryview(data)[header.encoded_length :], key_image, len(data))
    pixels = paper_decrypt_pixels(cipher, key_image, pattern=header.pattern, despeckle=despeckle)
    with atomic_output_path(dst, force=force, mode=output_mode(src)) as tmp:
        write_image(MedicalImage(pixels=pixels, format=header.format), tmp)
    return header
