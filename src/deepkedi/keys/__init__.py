"""Keys: key files (hybrid), key images (paper), and the keystore (wrapping, rotation, revocation, audit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepkedi._lazy import attach

if TYPE_CHECKING:
    from deepkedi.keys.keyfile import (
        KEY_FILE_VERSION,
        Key,
        generate_key,
        key_file_is_sealed,
        load_key,
        read_key_document,
        save_key,
    )
    from deepkedi.keys.keyimage import KeyImage, key_image_id, load_key_image, save_key_image

__all__ = [
    "KEY_FILE_VERSION",
    "Key",
    "KeyImage",
    "generate_key",
    "key_file_is_sealed",
    "key_image_id",
    "load_key",
    "load_key_image",
    "read_key_document",
    "save_key",
    "save_key_image",
]

__getattr__, __dir__ = attach(
    __name__,
    {
        "KEY_FILE_VERSION": "keyfile",
        "Key": "keyfile",
        "generate_key": "keyfile",
        "key_file_is_sealed": "keyfile",
        "load_key": "keyfile",
        "read_key_document": "keyfile",
        "save_key": "keyfile",
        "KeyImage": "keyimage",
        "key_image_id": "keyimage",
        "load_key_image": "keyimage",
        "save_key_image": "keyimage",
    },
)
