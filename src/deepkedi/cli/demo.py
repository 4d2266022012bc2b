"""`kedi demo`: an end-to-end tour on the bundled samples."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from deepkedi.cipher.hybrid import cipher_image, decrypt_file, encrypt_file
from deepkedi.cli import app
from deepkedi.cli._common import EXIT_USAGE, console, fail, guarded
from deepkedi.datasets import phantom, sample_corpus
from deepkedi.errors import AuthenticationError, OutputExistsError
from deepkedi.imaging import read_image, write_image
from deepkedi.imaging.montage import display_plane, montage
from deepkedi.keys import generate_key, save_key
from deepkedi.transforms.zigzag import ZigzagPattern


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _demo_inputs(out: Path) -> list[tuple[str, str, Path]]:
    """(name, label, path) of every sample file, plus a CT phantom written as DICOM."""
    inputs = [(s.name, f"{s.organ}, {s.modality}", s.path) for s in sample_corpus()]
    ct = phantom("lung", "CT", seed=7)
    path = out / "inputs" / "phantom-lung-ct.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(ct, path)
    inputs.append(("phantom-lung-ct.dcm", "lung, CT (synthetic)", path))
    return inputs


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the key, containers, restored files and figure.")] = Path(
        "demo-out"
    ),
    force: Annotated[bool, typer.Option("--force", help="Empty OUT first if it exists.")] = False,
) -> None:
    """Encrypt and restore every bundled sample in all three zigzag patterns, then try to break one."""
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"{out} is not empty; use --force to replace its contents", EXIT_USAGE)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    save_key(key, out / "demo.key")
    console.print(f"[bold]deepkedi demo[/] — key {key.key_id_hex} written to {out / 'demo.key'} (mode 0600)\n")

    with guarded():
        inputs = _demo_inputs(out)
    table = Table(title="hybrid suite: AES-256-GCM, restored files compared by SHA-256")
    for column in ("sample", "organ, modality", "format", "shape", "KiB", "encrypt ms V/H/D", "decrypt ms V/H/D", "exact"):
        table.add_column(column, justify="right" if column in ("KiB",) or "ms" in column else "left")
    failures = 0
    panels = []
    for name, label, path in inputs:
        image = read_image(path)
        original = _sha256(path)
        enc_ms, dec_ms, exact = [], [], 0
        for pattern in ZigzagPattern:
            container = out / "containers" / f"{name}.{pattern.value}.kedi"
            restored = out / "restored" / pattern.value / name
            container.parent.mkdir(parents=True, exist_ok=True)
            restored.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            encrypt_file(path, container, key, pattern=pattern)
            t1 = time.perf_counter()
            decrypt_file(container, restored, key)
            t2 = time.perf_counter()
            exact += _sha256(restored) == original
            enc_ms.append(f"{1e3 * (t1 - t0):.0f}")
            dec_ms.append(f"{1e3 * (t2 - t1):.0f}")
            if pattern is ZigzagPattern.HORIZONTAL and len(panels) < 16:
                panels.append((name, display_plane(image.pixels, channels_last=image.channels_last)))
                panels.append(("cipher image", display_plane(cipher_image(container), channels_last=image.channels_last)))
        failures += len(ZigzagPattern) - exact
        table.add_row(
            name, label, image.format, "×".join(map(str, image.pixels.shape)), f"{path.stat().st_size / 1024:,.0f}",
            "/".join(enc_ms), "/".join(dec_ms),
            f"[green]{exact}/3[/]" if exact == len(ZigzagPattern) else f"[red]{exact}/3[/]",
        )
    console.print(table)

    figure = out / "cipher_images.png"
    montage(panels, tile=192, columns=4).save(figure)
    console.print(f"\nplain images beside their cipher images: {figure}")

    # Tampering and a wrong key must both be refused, with the same message, and leave no output.
    victim = out / "containers" / f"{inputs[0][0]}.horizontal.kedi"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = out / "tampered.kedi"
    tampered.write_bytes(bytes(data))
    checks = [("one flipped bit", tampered, key), ("another key", victim, generate_key())]
    for what, container, attempt_key in checks:
        target = out / "should-not-exist"
        try:
            decrypt_file(container, target, attempt_key)
            console.print(f"[red]{what}: decrypted — this must never happen[/]")
            failures += 1
        except AuthenticationError as exc:
            console.print(f"{what}: refused — {exc}; output written: {target.exists()}", markup=False)
            failures += target.exists()
        except OutputExistsError:
            failures += 1
    if failures:
        fail(f"{failures} demo checks failed", 1)
    console.print("\n[bold green]all restorations byte-identical; tampering and wrong keys refused[/]")
