"""Shared checks for the image readers: every result must rebuild its file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deepkedi.imaging import MedicalImage


def _check_image(image: MedicalImage, path: Path) -> None:
    """The invariants every reader's result keeps, whatever the format."""
    path = Path(path)
    layout = image.source
    assert layout is not None
    assert layout.path == path
    assert layout.size == path.stat().st_size
    assert image.pixels.flags.c_contiguous
    if layout.restore == "splice":
        # Mapped read-only over the file, never loaded, typed exactly as stored.
        assert isinstance(image.pixels, np.memmap)
        assert image.pixels.mode == "r"
        assert not image.pixels.flags.writeable
        assert image.pixels.dtype.str == layout.stored_dtype
        prefix, suffix = layout.read_surrounding(image.pixels.nbytes)
        rebuilt = prefix + image.pixels.astype(layout.stored_dtype).tobytes() + suffix
        assert rebuilt == path.read_bytes()
    else:
        assert layout.restore == "verbatim"
    # Metadata travels inside containers as JSON.
    json.dumps(dict(image.metadata), allow_nan=False)


@pytest.fixture
def check_image() -> Callable[[MedicalImage, Path], None]:
    """Assert a read image's layout rebuilds its file byte for byte."""
    return _check_image
