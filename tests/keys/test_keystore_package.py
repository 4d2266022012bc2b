"""deepkedi.keys.keystore as a package: its public names, and the seams between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deepkedi.keys import keystore

PACKAGE = Path(keystore.__file__).parent
#: The modules below the store: none of them may import another (docs/KEYSTORE.md).
PARTS = ["schema", "kek", "audit", "export"]


def test_every_public_name_resolves_to_a_module_of_the_package() -> None:
    assert len(keystore.__all__) == len(set(keystore.__all__))
    for name in keystore.__all__:
        value = getattr(keystore, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__.startswith("deepkedi.keys.keystore."), name


def test_the_names_callers_import_from_the_package() -> None:
    # What src/deepkedi/cli, bench/ and tests/ take from deepkedi.keys.keystore itself.
    for name in (
        "Keystore",
        "KeyInfo",
        "AuditEntry",
        "PassphraseKek",
        "RawKek",
        "KekSource",
        "recipient_keypair",
        "recipient_public_key",
        "recipient_public_key_from_pem",
        "recipient_private_key_from_pem",
        "EXPORT_MAGIC",
        "KEYSTORE_VERSION",
        "CHECK_AAD",
        "CHECK_PLAINTEXT",
        "WRAP_AAD",
    ):
        assert name in keystore.__all__ and hasattr(keystore, name), name


@pytest.mark.parametrize("part", PARTS)
def test_the_parts_do_not_import_one_another(part: str) -> None:
    tree = ast.parse((PACKAGE / f"{part}.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    siblings = {name for name in imported if name.startswith("deepkedi.keys.keystore")}
    assert siblings <= {"deepkedi.keys.keystore._encoding"}, siblings
