"""deepkedi: Deep-KEDI medical image encryption.

The front door (safe defaults, few arguments; docs/API.md)::

    import deepkedi
    key = deepkedi.generate_key()
    deepkedi.save_key(key, "site.key")
    deepkedi.encrypt_file("ct.dcm", "ct.dcm.kedi", key)      # hybrid suite: AES-256-GCM
    deepkedi.decrypt_file("ct.dcm.kedi", "restored.dcm", key) # byte-identical to ct.dcm

    blob = deepkedi.encrypt_image(pixels, key)               # NumPy array or MedicalImage
    pixels = deepkedi.decrypt_pixels(blob, key)

The names are loaded on first use (PEP 562): importing ``deepkedi`` or any of its
subpackages costs no more than what is asked for. The primitives underneath
(``deepkedi.cipher``, ``deepkedi.transforms``, ``deepkedi.imaging``) stay importable
for research.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepkedi._version import __version__

if TYPE_CHECKING:
    from deepkedi.api import (
        ContainerInfo,
        ContainerKind,
        FileFailure,
        FileResult,
        TreeResult,
        cipher_image,
        decrypt_bytes,
        decrypt_dataset,
        decrypt_file,
        decrypt_image,
        decrypt_pixels,
        decrypt_stream,
        decrypt_tree,
        deidentification_summary,
        encrypt_bytes,
        encrypt_dataset,
        encrypt_file,
        encrypt_image,
        encrypt_stream,
        encrypt_tree,
        read_header,
    )
    from deepkedi.cipher.format import ContainerHeader, Suite
    from deepkedi.cipher.keytypes import Key, KeyImage
    from deepkedi.errors import (
        AuthenticationError,
        DeepKediError,
        FormatError,
        InputTooLargeError,
        KeyFileError,
        KeyNotFoundError,
        KeyRevokedError,
        KeystoreError,
        OutputError,
        OutputExistsError,
        UnsupportedImageError,
    )
    from deepkedi.imaging import MedicalImage, read_image, write_image
    from deepkedi.keys import generate_key, load_key, load_key_image, save_key, save_key_image
    from deepkedi.keys.keystore import Keystore
    from deepkedi.transforms.zigzag import ZigzagPattern

#: Every public name, and the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "ContainerInfo",
            "ContainerKind",
            "FileFailure",
            "FileResult",
            "TreeResult",
            "cipher_image",
            "decrypt_bytes",
            "decrypt_dataset",
            "decrypt_file",
            "decrypt_image",
            "decrypt_pixels",
            "decrypt_stream",
            "decrypt_tree",
            "deidentification_summary",
            "encrypt_bytes",
            "encrypt_dataset",
            "encrypt_file",
            "encrypt_image",
            "encrypt_stream",
            "encrypt_tree",
            "read_header",
        ],
        "deepkedi.api",
    ),
    "ContainerHeader": "deepkedi.cipher.format",
    "Suite": "deepkedi.cipher.format",
    "Key": "deepkedi.cipher.keytypes",
    "KeyImage": "deepkedi.cipher.keytypes",
    **dict.fromkeys(
        [
            "AuthenticationError",
            "DeepKediError",
            "FormatError",
            "InputTooLargeError",
            "KeyFileError",
            "KeyNotFoundError",
            "KeyRevokedError",
            "KeystoreError",
            "OutputError",
            "OutputExistsError",
            "UnsupportedImageError",
        ],
        "deepkedi.errors",
    ),
    "MedicalImage": "deepkedi.imaging",
    "read_image": "deepkedi.imaging",
    "write_image": "deepkedi.imaging",
    **dict.fromkeys(["generate_key", "load_key", "load_key_image", "save_key", "save_key_image"], "deepkedi.keys"),
    "Keystore": "deepkedi.keys.keystore",
    "ZigzagPattern": "deepkedi.transforms.zigzag",
}

__all__ = [
    "AuthenticationError",
    "ContainerHeader",
    "ContainerInfo",
    "ContainerKind",
    "DeepKediError",
    "FileFailure",
    "FileResult",
    "FormatError",
    "InputTooLargeError",
    "Key",
    "KeyFileError",
    "KeyImage",
    "KeyNotFoundError",
    "KeyRevokedError",
    "Keystore",
    "KeystoreError",
    "MedicalImage",
    "OutputError",
    "OutputExistsError",
    "Suite",
    "TreeResult",
    "UnsupportedImageError",
    "ZigzagPattern",
    "__version__",
    "cipher_image",
    "decrypt_bytes",
    "decrypt_dataset",
    "decrypt_file",
    "decrypt_image",
    "decrypt_pixels",
    "decrypt_stream",
    "decrypt_tree",
    "deidentification_summary",
    "encrypt_bytes",
    "encrypt_dataset",
    "encrypt_file",
    "encrypt_image",
    "encrypt_stream",
    "encrypt_tree",
    "generate_key",
    "load_key",
    "load_key_image",
    "read_header",
    "read_image",
    "save_key",
    "save_key_image",
    "write_image",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepkedi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
