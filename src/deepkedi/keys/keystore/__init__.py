"""The keystore: many master keys in one database, wrapped under a key-encryption key (KEK).

A hospital has one key per study, site or period, not one key file. The keystore
holds those *data keys* (the :class:`~deepkedi.keys.Key` master secrets the
``hybrid`` suite derives file keys from), each sealed with AES-256-GCM under a KEK
that is derived from a passphrase (scrypt) or from 32 bytes of key material and is
never stored. Every operation runs in one database transaction and appends to a
MAC-chained audit trail. The layout is specified in ``docs/FORMAT.md``
("Keystore"); operations and the threat model are in ``docs/KEYSTORE.md``.

SQLAlchemy Core carries it: SQLite by default (WAL journal, ``BEGIN IMMEDIATE`` so
concurrent processes queue instead of failing), PostgreSQL by URL
(``postgresql+psycopg://...``; writers serialise on a row lock).

This is a lower layer: it never prints, reads no environment variables and never
exits. The caller says who acts (``actor``, an OS user name) for the audit trail.

Modules, bottom to top:

- :mod:`.schema`: the tables, the engine (SQLite pragmas, ``BEGIN IMMEDIATE``), URL
  display, database errors as :class:`~deepkedi.errors.KeystoreError`
- :mod:`.kek`: KEK sources (:class:`PassphraseKek`, :class:`RawKek`), scrypt/HKDF
  derivation, check values, wrapping and unwrapping of data keys
- :mod:`.audit`: canonical row bytes, the HMAC chain and its head, :class:`AuditEntry`,
  verification
- :mod:`.export`: the X25519 key export format and recipient key pairs
- :mod:`.store`: the :class:`Keystore` and :class:`KeyInfo`
"""

from deepkedi.keys.keystore._encoding import NONCE_BYTES
from deepkedi.keys.keystore.audit import AUDIT_HEAD_PREFIX, AUDIT_KEY_INFO, AUDIT_SECRET_AAD, MAC_BYTES, AuditEntry
from deepkedi.keys.keystore.export import (
    EXPORT_INFO,
    EXPORT_MAGIC,
    EXPORT_VERSION,
    recipient_keypair,
    recipient_private_key_from_pem,
    recipient_public_key,
    recipient_public_key_from_pem,
)
from deepkedi.keys.keystore.kek import (
    CHECK_AAD,
    CHECK_PLAINTEXT,
    KEK_INFO,
    SALT_BYTES,
    SCRYPT_N,
    SCRYPT_N_MAX_WRITE,
    SCRYPT_N_MIN,
    SCRYPT_P,
    SCRYPT_R,
    WRAP_AAD,
    KekSource,
    PassphraseKek,
    RawKek,
)
from deepkedi.keys.keystore.schema import ACTIVE, KEYSTORE_VERSION, REVOKED
from deepkedi.keys.keystore.store import KeyInfo, Keystore

__all__ = [
    "ACTIVE",
    "AUDIT_HEAD_PREFIX",
    "AUDIT_KEY_INFO",
    "AUDIT_SECRET_AAD",
    "CHECK_AAD",
    "CHECK_PLAINTEXT",
    "EXPORT_INFO",
    "EXPORT_MAGIC",
    "EXPORT_VERSION",
    "KEK_INFO",
    "KEYSTORE_VERSION",
    "MAC_BYTES",
    "NONCE_BYTES",
    "REVOKED",
    "SALT_BYTES",
    "SCRYPT_N",
    "SCRYPT_N_MAX_WRITE",
    "SCRYPT_N_MIN",
    "SCRYPT_P",
    "SCRYPT_R",
    "WRAP_AAD",
    "AuditEntry",
    "KekSource",
    "KeyInfo",
    "Keystore",
    "PassphraseKek",
    "RawKek",
    "recipient_keypair",
    "recipient_private_key_from_pem",
    "recipient_public_key",
    "recipient_public_key_from_pem",
]
