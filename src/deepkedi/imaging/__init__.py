"""Medical image input and output: one `MedicalImage` type, one reader/writer per format."""

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
