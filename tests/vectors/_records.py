"""How the vectors write arrays: ``{"dtype", "shape", "hex"}``, little-endian words, raster order."""

from __future__ import annotations

import numpy as np


def array_from_record(record: dict) -> np.ndarray:
    """The array a vector's ``pixels`` or ``key_image`` record holds, in native byte order."""
    dtype = np.dtype(record["dtype"])
    little = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    return np.frombuffer(bytes.fromhex(record["hex"]), dtype=little).reshape(record["shape"]).astype(dtype)
