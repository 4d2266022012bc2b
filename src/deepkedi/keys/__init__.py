"""Keys: key files now; the keystore, wrapping and rotation come later."""

from deepkedi.keys.keyfile import (
    KEY_FILE_VERSION,
    Key,
    generate_key,
    key_file_is_sealed,
    load_key,
    read_key_document,
    save_key,
)

__all__ = [
    "KEY_FILE_VERSION",
    "Key",
    "generate_key",
    "key_file_is_sealed",
    "load_key",
    "read_key_document",
    "save_key",
]
