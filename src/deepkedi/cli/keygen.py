"""`kedi keygen`: write a new key file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_USAGE, console, fail, guarded
from deepkedi.keys import generate_key, save_key


@app.command()
def keygen(
    output: Annotated[Path, typer.Option("-o", "--output", help="Key file to write (mode 0600).")],
    suite: Annotated[str, typer.Option(help="Cipher suite the key is for.")] = "hybrid",
    passphrase_file: Annotated[
        Optional[Path], typer.Option(help="Seal the key with the passphrase in this file (scrypt + AES-GCM).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file (its old key is lost).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key id as JSON.")] = False,
) -> None:
    """Create a new key file from the operating system's CSPRNG.

    The file is the secret: keep it apart from the images it protects.
    """
    if suite != "hybrid":
        fail(f"--suite {suite}: only 'hybrid' keys can be made by this release", EXIT_USAGE)
    passphrase = None
    if passphrase_file is not None:
        with guarded():
            passphrase = passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        if not passphrase:
            fail(f"{passphrase_file}: the passphrase is empty", EXIT_USAGE)
    key = generate_key(suite=suite)
    with guarded():
        save_key(key, output, passphrase=passphrase, force=force)
    if as_json:
        typer.echo(json.dumps({"key_id": key.key_id_hex, "path": str(output), "sealed": passphrase is not None}))
    else:
        sealed = " (sealed with a passphrase)" if passphrase else ""
        console.print(f"wrote key {key.key_id_hex} to {output}{sealed}", markup=False)
