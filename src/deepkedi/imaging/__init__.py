"""Medical image input and output: one `MedicalImage` type, one reader/writer per format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.imaging.image import MedicalImage, SourceLayout
    from deepkedi.imaging.limits import DEFAULT_MAX_DECODED_SIZE, decoded_size_limit
    from deepkedi.imaging.registry import (
        ImageFormat,
        available_formats,
        detect_format,
        read_image,
        register_format,
        write_image,
    )

__all__ = [
    "DEFAULT_MAX_DECODED_SIZE",
    "ImageFormat",
    "MedicalImage",
    "SourceLayout",
    "available_formats",
    "decoded_size_limit",
    "detect_format",
    "read_image",
    "register_format",
    "write_image",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "MedicalImage": "image",
        "SourceLayout": "image",
        "DEFAULT_MAX_DECODED_SIZE": "limits",
        "decoded_size_limit": "limits",
        "ImageFormat": "registry",
        "available_formats": "registry",
        "detect_format": "registry",
        "read_image": "registry",
        "register_format": "registry",
        "write_image": "registry",
    },
)
