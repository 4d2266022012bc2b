"""NumPy ``.npy`` arrays: a C-ordered array is spliced, a Fortran-ordered one carried whole.

A ``.npy`` file is a short text header followed by the array's raw bytes, so a
C-ordered numeric array of two or more dimensions is already a splice layout:
its pixels are mapped from the file, never loaded. Pickled (object), structured
and one-dimensional arrays are refused: they are not images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from deepkedi.errors import UnsupportedImageError
from deepkedi.imaging._reading import map_splice, probe, translated_failures
from deepkedi.imaging.image import MedicalImage, SourceLayout
from deepkedi.imaging.registry import SNIFF_BYTES
from deepkedi.imaging.sniff import sniff_npy

__all__ = ["read_npy", "sniff_npy", "write_npy"]


def read_npy(path: Path) -> MedicalImage:
    """Read a ``.npy`` array of at least two dimensions.

    Parameters
    ----------
    path
        The ``.npy`` file.

    Returns
    -------
    MedicalImage
        A read-only memory map over the file with a splice layout when the array
        is C-ordered; an in-memory C-ordered copy with a verbatim layout when it is
        Fortran-ordered.

    Raises
    ------
    UnsupportedImageError
        Not a ``.npy`` file, a pickled, structured, complex or text array, fewer
        than two dimensions, or truncated.
    """
    path = Path(path)
    size, head = probe(path, SNIFF_BYTES)
    if not sniff_npy(head):
        raise UnsupportedImageError(f"{path}: not a NumPy .npy file (the magic string is missing)")
    with translated_failures(path, "not a readable NumPy .npy file"):
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                shape, fortran_order, dtype = npformat.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran_order, dtype = npformat.read_array_header_2_0(fh)
            else:
                # Version 3.0 exists only for non-Latin-1 field names, i.e. structured arrays.
                raise UnsupportedImageError(f"{path}: .npy format version {version} is not supported")
            offset = fh.tell()
        if dtype.hasobject:
            raise UnsupportedImageError(f"{path}: holds pickled Python objects, not pixel values")
        if dtype.fields is not None or dtype.subdtype is not None:
            raise UnsupportedImageError(f"{path}: holds a structured array ({dtype}), not pixel values")
        if dtype.kind not in "uifb":
            raise UnsupportedImageError(f"{path}: pixels of type {dtype} are not supported")
        if len(shape) < 2:
            raise UnsupportedImageError(f"{path}: an image needs at least two dimensions; the array has shape {shape}")
        stored_shape = shape[::-1] if fortran_order else shape
        mapped, layout = map_splice(path, size=size, offset=offset, dtype=dtype, shape=stored_shape)
        if fortran_order:
            # The file holds the transpose of the array in C order; reading it
            # back C-ordered needs a copy, so the original bytes travel whole.
            pixels: np.ndarray = np.ascontiguousarray(mapped.T)
            layout = SourceLayout(path=path, size=size, restore="verbatim")
        else:
            pixels = mapped
    return MedicalImage(pixels=pixels, format="npy", source=layout)


def write_npy(image: MedicalImage, path: Path) -> None:
    """Save the image's pixels as a C-ordered ``.npy`` array (metadata is not kept)."""
    with open(path, "wb") as fh:
        # Through a handle, so that np.save does not append ".npy" to the name.
        np.save(fh, np.ascontiguousarray(image.pixels), allow_pickle=False)
