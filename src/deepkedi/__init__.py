"""deepkedi: Deep-KEDI medical image encryption.

The front door (safe defaults, few arguments)::

    import deepkedi
    key = deepkedi.generate_key()
    deepkedi.save_key(key, "site.key")
    deepkedi.encrypt_file("ct.dcm", "ct.dcm.kedi", key)      # hybrid suite: AES-256-GCM
    deepkedi.decrypt_file("ct.dcm.kedi", "restored.dcm", key) # byte-identical to ct.dcm

    blob = deepkedi.encrypt_image(pixels, key)               # NumPy array or MedicalImage
    pixels = deepkedi.decrypt_image(blob, key)

The primitives underneath (``deepkedi.cipher``, ``deepkedi.transforms``,
``deepkedi.imaging``) stay importable for research.
"""

from deepkedi._version import __version__
from deepkedi.cipher.hybrid import decrypt_file, decrypt_image, encrypt_file, encrypt_image
from deepkedi.errors import (
    AuthenticationError,
    DeepKediError,
    FormatError,
    KeyFileError,
    UnsupportedImageError,
)
from deepkedi.imaging import MedicalImage, read_image
from deepkedi.keys import Key, generate_key, load_key, save_key

__all__ = [
    "AuthenticationError",
    "DeepKediError",
    "FormatError",
    "Key",
    "KeyFileError",
    "MedicalImage",
    "UnsupportedImageError",
    "__version__",
    "decrypt_file",
    "decrypt_image",
    "encrypt_file",
    "encrypt_image",
    "generate_key",
    "load_key",
    "read_image",
    "save_key",
]
