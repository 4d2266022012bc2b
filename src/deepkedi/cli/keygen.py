"""`kedi keygen`: a hybrid key file, or a paper-suite key image from the ZZ-GAN."""

import enum
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    err_console,
    fail,
    guarded,
    printable,
    refuse_special_file,
)


class KeySuite(str, enum.Enum):
    hybrid = "hybrid"
    paper = "paper"


def _paper_key(
    output: Path, like: Path | None, seed: int | None, weights: Path | None, force: bool, as_json: bool
) -> None:
    from deepkedi.cipher.paper import PAPER_WARNING
    from deepkedi.imaging import read_image
    from deepkedi.keygen import require_gan
    from deepkedi.keys import KeyImage, save_key_image

    if like is None:
        fail("--suite paper needs --like IMAGE: the key image takes that image's size and bit depth", EXIT_USAGE)
    if output.suffix.lower() != ".png":
        fail(f"{output}: a paper key image is written as .png", EXIT_USAGE)
    with guarded():
        image = read_image(like)  # a bad --like fails here, before PyTorch takes seconds to load
    with guarded():
        require_gan("--suite paper (its key images come from the ZZ-GAN)")
    err_console.print(f"warning: {PAPER_WARNING}", markup=False)
    from deepkedi.keygen.generate import generate_key_image, load_generator

    with guarded():
        generated = generate_key_image(image, seed=seed, generator=load_generator(weights))
        created = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        key_image = KeyImage(
            generated.pixels, seed=generated.seed, model_sha256=generated.model_sha256, created=created
        )
        save_key_image(key_image, output, force=force)
    rows, cols = generated.pixels.shape
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "path": str(output),
                    "suite": "paper",
                    "shape": [rows, cols],
                    "bits": generated.bits,
                    "model_sha256": generated.model_sha256,
                }
            )
        )
    else:
        console.print(
            f"wrote {rows}×{cols} {generated.bits}-bit key image to {printable(output)} "
            f"(ZZ-GAN {generated.model_sha256[:12]}…; "
            "the file and its seed are secret)",
            markup=False,
            soft_wrap=True,
        )


@app.command(
    examples=(
        "kedi keygen -o site.key",
        "kedi keygen --suite paper --like CT_small.dcm -o ct-key.png",
    )
)
def keygen(
    output: Annotated[Path, typer.Option("-o", "--output", help="Key file (hybrid) or key image .png (paper); 0600.")],
    suite: Annotated[KeySuite, typer.Option(help="Cipher suite the key is for.")] = KeySuite.hybrid,
    like: Annotated[
        Path | None, typer.Option(help="paper: image whose size and bit depth the key image takes.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="paper: ZZ-GAN seed in [0, 2**128) (default: 128 random bits).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Generator weights (.safetensors + .json; default: the shipped ones).")
    ] = None,
    no_gan: Annotated[
        bool,
        typer.Option("--no-gan", help="hybrid: OS CSPRNG only, no ZZ-GAN material: no PyTorch to load, and as strong."),
    ] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Seal the key with the passphrase in this file (scrypt + AES-GCM).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file (its old key is lost).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Create a new key.

    hybrid (default): a key file whose secret mixes a ZZ-GAN key image with 32 bytes
    of OS randomness through HKDF-SHA256 (OS randomness alone, noted in the file,
    when PyTorch is not installed). paper: the ZZ-GAN key image itself, a PNG of
    the size and bit depth of --like. Either file is the secret: keep it apart from
    the images it protects.
    """
    from deepkedi.keys import generate_key, save_key

    if suite is KeySuite.paper:
        if passphrase_file is not None or no_gan:
            fail("--passphrase-file and --no-gan apply to hybrid key files only", EXIT_USAGE)
        _paper_key(output, like, seed, weights, force, as_json)
        return
    if like is not None or seed is not None or weights is not None:
        fail("--like, --seed and --weights make paper key images; use them with --suite paper", EXIT_USAGE)
    passphrase = None
    if passphrase_file is not None:
        refuse_special_file(passphrase_file)
        with guarded():
            passphrase = passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
        if not passphrase:
            fail(f"{passphrase_file}: the passphrase is empty", EXIT_USAGE)
    with guarded():
        key = generate_key(suite="hybrid", gan=False if no_gan else None)
        save_key(key, output, passphrase=passphrase, force=force)
    sources = " + ".join(key.provenance.get("sources", []))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "key_id": key.key_id_hex,
                    "path": str(output),
                    "sealed": passphrase is not None,
                    "sources": key.provenance.get("sources", []),
                }
            )
        )
    else:
        sealed = " (sealed with a passphrase)" if passphrase else ""
        console.print(
            f"wrote key {key.key_id_hex} to {printable(output)}{sealed}; secret from {sources}",
            markup=False,
            soft_wrap=True,
        )
    if "note" in key.provenance:
        err_console.print(f"note: {key.provenance['note']}", markup=False)
