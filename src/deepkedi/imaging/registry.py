"""Readers and writers behind one registry, chosen by name, suffix or content.

Each format lives in its own module and registers an :class:`ImageFormat` on
import, like pydicom's pixel decoders. :func:`read_image` picks the format from
the file name's suffix and then checks the content agrees: a PNG renamed
``.dcm`` is refused with a message saying what it looks like. A file whose
suffix no format claims is identified by its content alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging.image import MedicalImage
from deepkedi.imaging.limits import decoded_size_limit
from deepkedi.inputs import check_regular_input

__all__ = [
    "ImageFormat",
    "available_formats",
    "detect_format",
    "read_image",
    "register_format",
    "write_image",
]

#: Bytes read from the start of a file to identify it.
SNIFF_BYTES = 512


@dataclass(frozen=True)
class ImageFormat:
    """One registered image format.

    Parameters
    ----------
    name
        Short name stored in containers (``"dicom"``, ``"nifti"``...).
    suffixes
        Lower-case file name endings that claim this format (``".nii.gz"``).
    sniff
        Given the first :data:`SNIFF_BYTES` bytes, whether they look like this format.
    read
        Reads a file into a :class:`MedicalImage`; raises :class:`UnsupportedImageError`.
    write
        Writes a :class:`MedicalImage` to a path, or None when the format is read-only.
    description
        Human-readable name for messages.
    """

    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: Callable[[Path], MedicalImage]
    write: Callable[[MedicalImage, Path], None] | None
    description: str


_FORMATS: dict[str, ImageFormat] = {}


def register_format(fmt: ImageFormat) -> None:
    """Add ``fmt`` to the registry, replacing a format of the same name."""
    _FORMATS[fmt.name] = fmt


def available_formats() -> dict[str, ImageFormat]:
    """The registered formats by name."""
    _load_builtin_formats()
    return dict(_FORMATS)


#: The built-in formats, in the order content sniffing tries them: name, suffixes, module
#: (under deepkedi.imaging) with its reader and writer, description. Sniffers are in
#: deepkedi.imaging.sniff (standard library only); a format's module, and the library
#: it needs (pydicom, nibabel, Pillow), is imported when a file of that format is read
#: or written.
_BUILTIN: tuple[tuple[str, tuple[str, ...], str, str, str, str], ...] = (
    ("dicom", (".dcm", ".dicom"), "dicom", "read_dicom", "write_dicom", "DICOM"),
    ("mgh", (".mgh", ".mgz"), "mgh", "read_mgh", "write_mgh", "FreeSurfer MGH"),
    ("nifti", (".nii", ".nii.gz"), "nifti", "read_nifti", "write_nifti", "NIfTI"),
    ("npy", (".npy",), "npy", "read_npy", "write_npy", "NumPy array"),
    ("png", (".png",), "raster", "read_png", "write_png", "PNG image"),
    ("tiff", (".tif", ".tiff"), "raster", "read_tiff", "write_tiff", "TIFF image"),
    ("jpeg", (".jpg", ".jpeg"), "raster", "read_jpeg", "write_jpeg", "JPEG image"),
)


def _deferred(module: str, name: str) -> Callable[..., Any]:
    """``deepkedi.imaging.<module>.<name>``, imported on the first call."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"deepkedi.imaging.{module}"), name)(*args)

    call.__name__ = call.__qualname__ = name
    return call


def _load_builtin_formats() -> None:
    if all(entry[0] in _FORMATS for entry in _BUILTIN):
        return
    from deepkedi.imaging import sniff

    for name, suffixes, module, reader, writer, description in _BUILTIN:
        _FORMATS.setdefault(
            name,
            ImageFormat(
                name=name,
                suffixes=suffixes,
                sniff=getattr(sniff, f"sniff_{name}"),
                read=_deferred(module, reader),
                write=_deferred(module, writer),
                description=description,
            ),
        )


def _by_suffix(path: Path) -> ImageFormat | None:
    name = path.name.lower()
    best: tuple[int, ImageFormat] | None = None
    for fmt in _FORMATS.values():
        for suffix in fmt.suffixes:
            if name.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), fmt)
    return best[1] if best else None


def _by_content(head: bytes) -> ImageFormat | None:
    for fmt in _FORMATS.values():
        if fmt.sniff(head):
            return fmt
    return None


def detect_format(path: str | Path) -> ImageFormat:
    """The format of the file at ``path``, checked against its content.

    Raises
    ------
    UnsupportedImageError
        The file cannot be opened, is empty, its content contradicts its suffix,
        or no registered format recognises it.
    """
    _load_builtin_formats()
    path = Path(path)
    try:
        check_regular_input(path)  # a FIFO would block the open below
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except IsADirectoryError:
        raise UnsupportedImageError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise UnsupportedImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise UnsupportedImageError(f"{path}: the file is empty")
    claimed = _by_suffix(path)
    found = _by_content(head)
    if claimed is not None:
        if claimed.sniff(head):
            return claimed
        looks = f" (it looks like {found.description})" if found is not None else ""
        raise UnsupportedImageError(f"{path}: not a valid {claimed.description} file{looks}")
    if found is None:
        raise UnsupportedImageError(
            f"{path}: not a supported image (supported: "
            + ", ".join(sorted(f.description for f in _FORMATS.values()))
            + ")"
        )
    return found


def read_image(path: str | Path, *, format: str | None = None, max_decoded_size: int | None = None) -> MedicalImage:
    """Read the image at ``path``.

    Parameters
    ----------
    path
        A DICOM, NIfTI (``.nii``, ``.nii.gz``), FreeSurfer MGH (``.mgh``, ``.mgz``),
        PNG, TIFF, JPEG or ``.npy`` file.
    format
        Force a registered format by name instead of detecting it.
    max_decoded_size
        Most bytes the file may decode to, for this call. None keeps the limit in
        force: the one set by :func:`deepkedi.imaging.limits.decoded_size_limit`
        around the call, else the default policy (at most 4 GiB, and at most 32
        times the file's size past 256 MiB). Memory-mapped pixels are not limited.

    Raises
    ------
    InputTooLargeError
        The file would decode to more bytes than allowed (checked from its header
        before decoding, or while inflating a stream whose size no header gives).
    UnsupportedImageError
        The file is unreadable, corrupt, or of no supported format; the message
        names the file and the reason.
    """
    _load_builtin_formats()
    path = Path(path)
    if format is not None:
        if format not in _FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {sorted(_FORMATS)}")
        fmt = _FORMATS[format]
        if path.exists():  # a missing file is the reader's to report
            check_regular_input(path)
    else:
        fmt = detect_format(path)
    if max_decoded_size is None:
        return fmt.read(path)
    with decoded_size_limit(max_decoded_size):
        return fmt.read(path)


def write_image(image: MedicalImage, path: str | Path, *, format: str | None = None) -> None:
    """Write ``image`` to ``path`` in the format named, or the one its suffix claims."""
    _load_builtin_formats()
    path = Path(path)
    fmt = _FORMATS.get(format) if format is not None else _by_suffix(path)
    if fmt is None:
        raise ValueError(
            f"cannot tell which format to write {path.name!r} in; pass format= "
            f"(one of {sorted(_FORMATS)}) or use a known suffix"
        )
    if fmt.write is None:
        raise ValueError(f"{fmt.description} files can be read but not written")
    fmt.write(image, path)
