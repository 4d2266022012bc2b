"""PNG, TIFF and JPEG through Pillow.

All three compress their samples (or may, for TIFF), so their files are carried
verbatim and the decoded pixels travel beside them. Values stay as stored:
16-bit greyscale stays ``uint16``, a palette image gives its indices (with the
palette in the metadata), a bilevel image gives 0 and 1. A multi-page TIFF gives
one plane per page.

PNG has no signed samples, so a signed greyscale plane (``int16``, the usual CT
word, or ``int8``) is written shifted into the unsigned range, ``stored = value
+ 2**(bits - 1)`` (32768 for 16 bits), with a ``tEXt`` chunk
``deepkedi-signed-offset`` naming the offset; reading such a file subtracts it
again, so ``int16`` pixels round-trip exactly. Other readers see the shifted
values and can undo them with the chunk.

Every page's decoded size is checked against the limit of
:mod:`deepkedi.imaging.limits` from the headers before the first page is
decoded. Pillow's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``)
stays in force beside it; its multi-line warning is silenced and its error
becomes :class:`~deepkedi.errors.InputTooLargeError`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, PngImagePlugin

from deepkedi.errors import InputTooLargeError, UnsupportedImageError
from deepkedi.imaging._reading import finite_or_none, probe, translated_failures
from deepkedi.imaging.image import MedicalImage, SourceLayout
from deepkedi.imaging.limits import check_decoded_size
from deepkedi.imaging.registry import SNIFF_BYTES
from deepkedi.imaging.sniff import sniff_jpeg, sniff_png, sniff_tiff

__all__ = [
    "SIGNED_OFFSET_CHUNK",
    "read_jpeg",
    "read_png",
    "read_tiff",
    "sniff_jpeg",
    "sniff_png",
    "sniff_tiff",
    "write_jpeg",
    "write_png",
    "write_tiff",
]

# Classic TIFF (42) and BigTIFF (43), little and big endian.

#: Pillow mode -> (photometric interpretation, samples per pixel) for the modes read.
_MODES = {
    "1": ("MONOCHROME2", 1),
    "L": ("MONOCHROME2", 1),
    "P": ("PALETTE COLOR", 1),
    "I;16": ("MONOCHROME2", 1),
    "I;16L": ("MONOCHROME2", 1),
    "I;16B": ("MONOCHROME2", 1),
    "I;16N": ("MONOCHROME2", 1),
    "I": ("MONOCHROME2", 1),
    "F": ("MONOCHROME2", 1),
    "LA": ("MONOCHROME2", 2),
    "RGB": ("RGB", 3),
    "RGBA": ("RGBA", 4),
    "YCbCr": ("YBR_FULL", 3),
    "CMYK": ("CMYK", 4),
}


#: PNG ``tEXt`` keyword of the offset added to signed samples (see the module docstring).
SIGNED_OFFSET_CHUNK = "deepkedi-signed-offset"
#: Signed type of each unsigned PNG sample type, for files carrying SIGNED_OFFSET_CHUNK.
_SIGNED_OF: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(np.uint8): np.dtype(np.int8),
    np.dtype(np.uint16): np.dtype(np.int16),
}

#: Pillow plugins allowed to open each format.
_PLUGINS = {"png": ("PNG",), "tiff": ("TIFF",), "jpeg": ("JPEG", "MPO")}


#: Bytes of rows copied from Pillow to NumPy at a time.
_BLOCK_BYTES = 16 << 20


def _stored_values(picture: Image.Image, path: Path, fmt: str | None) -> np.ndarray:
    """Pillow's pixels as stored values: (rows, cols) or (rows, cols, samples)."""
    if picture.mode not in _MODES:
        raise UnsupportedImageError(f"{path}: Pillow image mode {picture.mode!r} is not supported")
    pixels = np.asarray(picture)
    if picture.mode == "1":
        return pixels.astype(np.uint8)  # bilevel: 0 and 1, as stored
    if picture.mode.startswith("I;16"):
        # Native byte order; values unchanged.
        return pixels.astype(np.uint16)
    if picture.mode == "I" and fmt == "PNG":
        # Pillow widens 16-bit PNG samples to int32 in mode I; they fit uint16 exactly.
        return pixels.astype(np.uint16)
    return pixels


def _plane(frame: Image.Image, path: Path, out: np.ndarray | None = None) -> np.ndarray:
    """One decoded page as stored values, written into ``out`` when given.

    NumPy's view of a Pillow image copies the whole page into ``bytes`` first,
    and the conversions to stored types copy again; taken a block of rows at a
    time, a large page is held once by Pillow and once here, not three times.
    """
    width, height = frame.size
    rows = max(1, _BLOCK_BYTES // max(1, _page_bytes(path, frame) // max(1, height)))
    if rows >= height and out is None:
        return _stored_values(frame, path, frame.format)
    frame.load()
    for top in range(0, height, rows):
        block = _stored_values(frame.crop((0, top, width, min(height, top + rows))), path, frame.format)
        if out is None:
            out = np.empty((height, *block.shape[1:]), dtype=block.dtype)
        out[top : top + len(block)] = block
    assert out is not None
    return out


def _page_bytes(path: Path, frame: Image.Image) -> int:
    """Bytes one page takes once decoded into an array, from its header."""
    if frame.mode not in _MODES:
        raise UnsupportedImageError(f"{path}: Pillow image mode {frame.mode!r} is not supported")
    itemsize = 2 if frame.mode.startswith("I;16") else 4 if frame.mode in ("I", "F") else 1
    width, height = frame.size
    return width * height * _MODES[frame.mode][1] * itemsize


def _decoded_pages(path: Path, image: Image.Image, *, file_size: int, all_pages: bool) -> tuple[np.ndarray, int]:
    """The first page, or every page stacked, and the page count.

    The size every page will decode to is checked from the headers before the
    first is decoded, and the pages are decoded straight into one array.
    """
    count = int(getattr(image, "n_frames", 1)) if all_pages else 1
    first = (image.size, image.mode)
    check_decoded_size(path, _page_bytes(path, image) * count, file_size=file_size)
    if count == 1:
        return _plane(image, path), 1
    stack: np.ndarray | None = None
    index = 0
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= count or (frame.size, frame.mode) != first:
            raise UnsupportedImageError(f"{path}: its pages differ in size or type; only uniform stacks are supported")
        if stack is None:
            plane = _plane(frame, path)
            stack = np.empty((count, *plane.shape), dtype=plane.dtype)
            stack[0] = plane
            del plane
        else:
            # Same size and mode as the first page: the same shape and type of values.
            _plane(frame, path, out=stack[index])
    assert stack is not None  # count > 1 pages were iterated
    if index + 1 < count:
        raise UnsupportedImageError(f"{path}: it declares {count} pages but holds {index + 1}")
    return stack, count


def _read_raster(path: Path, *, name: str, description: str, sniff: Callable[[bytes], bool]) -> MedicalImage:
    path = Path(path)
    size, head = probe(path, SNIFF_BYTES)
    if not sniff(head):
        raise UnsupportedImageError(f"{path}: not a {description} file (wrong signature)")
    # Only this format's Pillow plugins may open the file (a JPEG with a second,
    # multi-picture image opens as MPO).
    plugins = _PLUGINS[name]
    with translated_failures(path, f"not a readable {description} file"), warnings.catch_warnings():
        # Pillow warns about damaged EXIF and the like; the read succeeds or says why not.
        warnings.simplefilter("ignore", UserWarning)
        # Pillow's multi-line decompression-bomb warning: the decoded-size limit decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=plugins) as probe_image:
                # verify() checks chunk CRCs (PNG) and structure without decoding;
                # it leaves the image unusable, hence the second open below.
                probe_image.verify()
            with Image.open(path, formats=plugins) as image:
                mode = image.mode
                palette = image.getpalette() if mode == "P" else None
                # TIFF pages (and APNG frames) stack; JPEG's extra pictures are previews.
                pixels, pages = _decoded_pages(path, image, file_size=size, all_pages=name != "jpeg")
                info = dict(image.info)
        except Image.DecompressionBombError as exc:
            # Pillow's own guard on one page's pixel count, met before ours; the
            # application that imports Pillow sets it (PIL.Image.MAX_IMAGE_PIXELS).
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            count = f"{int(claimed.group(1))} pixels" if claimed else "too many pixels"
            raise InputTooLargeError(
                f"{path}: a page has {count}, more than Pillow decodes "
                "(twice PIL.Image.MAX_IMAGE_PIXELS; a decompression-bomb guard)"
            ) from None
        if pixels.size == 0:
            raise UnsupportedImageError(f"{path}: the image has no pixels")
    photometric, samples = _MODES[mode]
    metadata: dict[str, Any] = {"mode": mode, "pages": pages}
    if name == "png" and SIGNED_OFFSET_CHUNK in info:
        pixels = _signed(pixels, info[SIGNED_OFFSET_CHUNK], path, samples)
        metadata["signed_offset"] = 1 << (8 * pixels.itemsize - 1)
    if palette is not None:
        metadata["palette"] = [int(v) for v in palette]
    dpi = info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        metadata["dpi"] = [finite_or_none(v) for v in dpi]
    return MedicalImage(
        pixels=np.ascontiguousarray(pixels),
        format=name,
        photometric=photometric,
        samples_per_pixel=samples,
        channels_last=samples > 1,
        bits_stored=1 if mode == "1" else None,
        metadata=metadata,
        source=SourceLayout(path=path, size=size, restore="verbatim"),
    )


def _signed(pixels: np.ndarray, offset: object, path: Path, samples: int) -> np.ndarray:
    """The signed values of a PNG written with :data:`SIGNED_OFFSET_CHUNK`: stored words minus the offset."""
    signed = _SIGNED_OF.get(pixels.dtype)
    expected = 1 << (8 * pixels.itemsize - 1)
    if signed is None or samples != 1 or str(offset).strip() != str(expected):
        raise UnsupportedImageError(
            f"{path}: its {SIGNED_OFFSET_CHUNK} chunk says {str(offset)[:20]!r}; deepkedi writes 128 for "
            "8-bit and 32768 for 16-bit greyscale, and reads no other"
        )
    return (pixels.astype(np.int32) - expected).astype(signed)


def read_png(path: Path) -> MedicalImage:
    """Read a PNG image.

    Returns
    -------
    MedicalImage
        ``uint8`` or ``uint16`` greyscale ``(rows, cols)``, ``uint8`` colour
        ``(rows, cols, samples)``, or palette indices with the palette in
        ``metadata["palette"]``; always a verbatim layout. A file with a
        ``deepkedi-signed-offset`` chunk (:func:`write_png` of signed pixels)
        gives ``int8``/``int16``, the offset subtracted.

    Raises
    ------
    InputTooLargeError
        The pixels would decode to more bytes than allowed (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not PNG, truncated, a failed checksum, or an unsupported mode.
    """
    return _read_raster(path, name="png", description="PNG image", sniff=sniff_png)


def read_tiff(path: Path) -> MedicalImage:
    """Read a TIFF image; a multi-page file gives ``(pages, rows, cols[, samples])``.

    Raises
    ------
    InputTooLargeError
        The pixels would decode to more bytes than allowed (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not TIFF, damaged, pages of differing size, or an unsupported mode.
    """
    return _read_raster(path, name="tiff", description="TIFF image", sniff=sniff_tiff)


def read_jpeg(path: Path) -> MedicalImage:
    """Read a JPEG image (8-bit greyscale or colour).

    Raises
    ------
    InputTooLargeError
        The pixels would decode to more bytes than allowed (:mod:`deepkedi.imaging.limits`).
    UnsupportedImageError
        Not JPEG, truncated, or an unsupported mode.
    """
    return _read_raster(path, name="jpeg", description="JPEG image", sniff=sniff_jpeg)


# --------------------------------------------------------------------------- write


def _refusal(path: Path, description: str, dtype: np.dtype, allowed: tuple[type, ...]) -> ValueError:
    """Why ``path`` cannot hold ``dtype`` pixels, and where they would fit (the message names the file)."""
    names = " or ".join(np.dtype(t).name for t in allowed)
    if description == "PNG":
        names += " (int8 or int16 greyscale: stored with an offset)"
    fits = ["a .npy or .nii.gz file keeps them as they are"]
    if description != "PNG" and dtype in _SIGNED_OF.values():
        offset = 1 << (8 * dtype.itemsize - 1)
        fits.insert(0, f"a .png file holds them (stored plus {offset}, see docs/IMAGING.md)")
    elif description != "PNG" and dtype in _SIGNED_OF:
        fits.insert(0, "a .png file holds them")
    return ValueError(
        f"{path.name}: {description} holds {names} pixels, not {dtype}; {'; '.join(fits)}; "
        "or convert the pixels first (MedicalImage.with_pixels)"
    )


def _to_pillow(
    image: MedicalImage,
    plane: np.ndarray,
    *,
    colour: bool,
    allowed: tuple[type, ...],
    path: Path,
    description: str,
) -> Image.Image:
    if plane.dtype == np.bool_:
        plane = plane.astype(np.uint8)
    if plane.dtype.type not in allowed:
        raise _refusal(path, description, plane.dtype, allowed)
    # Native byte order: Pillow picks the mode from the array type (uint16 -> I;16).
    plane = np.ascontiguousarray(plane.astype(plane.dtype.newbyteorder("="), copy=False))
    if colour:
        if plane.dtype != np.uint8 or plane.shape[-1] not in (3, 4):
            raise ValueError(f"{path.name}: colour is written as 3 (RGB) or 4 (RGBA) uint8 samples")
        return Image.fromarray(plane)
    palette = image.metadata.get("palette")
    if image.photometric == "PALETTE COLOR" and plane.dtype == np.uint8 and isinstance(palette, (list, tuple)):
        picture = Image.frombytes("P", (plane.shape[1], plane.shape[0]), plane.tobytes())
        picture.putpalette([int(v) for v in palette])
        return picture
    return Image.fromarray(plane)


def _planes(image: MedicalImage) -> tuple[list[np.ndarray], bool]:
    """The image's planes, each ``(rows, cols)`` or ``(rows, cols, samples)``, and whether colour."""
    pixels = np.asarray(image.pixels)
    colour = image.channels_last
    samples = image.samples_per_pixel
    if not colour and samples > 1 and pixels.ndim >= 3 and pixels.shape[-3] == samples:
        # Planar colour (..., samples, rows, cols): raster formats interleave.
        pixels, colour = np.moveaxis(pixels, -3, -1), True
    plane_ndim = 3 if colour else 2
    return list(pixels.reshape((-1, *pixels.shape[-plane_ndim:]))), colour


def _single_plane(image: MedicalImage, path: Path, description: str, allowed: tuple[type, ...]) -> Image.Image:
    planes, colour = _planes(image)
    if len(planes) != 1:
        raise ValueError(
            f"{path.name}: a {description} file holds one plane; this image has {len(planes)} "
            "(write .tif, .npy or .nii.gz)"
        )
    return _to_pillow(image, planes[0], colour=colour, allowed=allowed, path=path, description=description)


def write_png(image: MedicalImage, path: Path) -> None:
    """Write one greyscale, ``uint8`` RGB(A) or palette plane as PNG (lossless).

    Greyscale is ``uint8`` or ``uint16``; signed ``int8``/``int16`` is stored
    plus 128 or 32768 in 8 or 16 bits, with a ``deepkedi-signed-offset`` text
    chunk that :func:`read_png` undoes (module docstring).
    """
    path = Path(path)
    planes, colour = _planes(image)
    info = None
    if len(planes) == 1 and not colour and planes[0].dtype in _SIGNED_OF.values():
        unsigned = next(u for u, s in _SIGNED_OF.items() if s == planes[0].dtype)
        offset = 1 << (8 * unsigned.itemsize - 1)
        image = image.with_pixels((np.asarray(image.pixels, dtype=np.int32) + offset).astype(unsigned))
        info = PngImagePlugin.PngInfo()
        info.add_text(SIGNED_OFFSET_CHUNK, str(offset))
    _single_plane(image, path, "PNG", (np.uint8, np.uint16)).save(path, format="PNG", pnginfo=info)


def write_tiff(image: MedicalImage, path: Path) -> None:
    """Write ``uint8``/``uint16`` greyscale or ``uint8`` RGB(A) as TIFF, one page per plane (lossless)."""
    path = Path(path)
    planes, colour = _planes(image)
    first, *rest = [
        _to_pillow(image, p, colour=colour, allowed=(np.uint8, np.uint16), path=path, description="TIFF")
        for p in planes
    ]
    first.save(path, format="TIFF", save_all=bool(rest), append_images=rest)


def write_jpeg(image: MedicalImage, path: Path, *, quality: int = 95) -> None:
    """Write one ``uint8`` greyscale or RGB plane as JPEG. Lossy: the pixels will not read back equal."""
    path = Path(path)
    picture = _single_plane(image, path, "JPEG", (np.uint8,))
    if picture.mode not in ("L", "RGB"):
        raise ValueError(f"{path.name}: JPEG stores greyscale or RGB, not {picture.mode}")
    picture.save(path, format="JPEG", quality=quality)
