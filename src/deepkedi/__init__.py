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

from typing import TYPE_CHECKING

from deepkedi._lazy import attach
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

#: The public names defined outside the front door, with their module (relative to ``deepkedi``);
#: every other name of ``__all__`` comes from :mod:`deepkedi.api`.
_ELSEWHERE: dict[str, str] = {
    "ContainerHeader": "cipher.format",
    "Suite": "cipher.format",
    "Key": "cipher.keytypes",
    "KeyImage": "cipher.keytypes",
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
        "errors",
    ),
    "MedicalImage": "imaging",
    "read_image": "imaging",
    "write_image": "imaging",
    **dict.fromkeys(["generate_key", "load_key", "load_key_image", "save_key", "save_key_image"], "keys"),
    "Keystore": "keys.keystore",
    "ZigzagPattern": "transforms.patterns",
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

#: Every public name and the module that defines it.
_EXPORTS = {name: _ELSEWHERE.get(name, "api") for name in __all__ if name != "__version__"}

__getattr__, __dir__ = attach(__name__, _EXPORTS)
