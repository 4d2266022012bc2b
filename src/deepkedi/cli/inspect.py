"""`kedi inspect`: what a container (or an image file) is, without the key."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_INPUT,
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    exit_code_for,
    fail,
    guarded,
    message_for,
    printable,
)
from deepkedi.errors import DeepKediError, FormatError

if TYPE_CHECKING:
    import numpy as np

    from deepkedi import api
    from deepkedi.imaging import MedicalImage


def _image_record(path: Path, image: "MedicalImage") -> dict[str, Any]:
    return {
        "path": str(path),
        "kind": "image",
        "format": image.format,
        "shape": list(image.pixels.shape),
        "dtype": image.pixels.dtype.str,
        "photometric": image.photometric,
        "samples_per_pixel": image.samples_per_pixel,
        "modality": image.modality,
        "bits_stored": image.bits_stored,
        "spacing": list(image.spacing) if image.spacing else None,
        "restore": image.source.restore if image.source else None,
    }


def _to_display(pixels: "np.ndarray") -> "np.ndarray":
    """The first plane as 8- or 16-bit grey/RGB for PNG (cipher words are uniform, so no windowing)."""
    import numpy as np

    plane = pixels
    while plane.ndim > 3 or (plane.ndim == 3 and plane.shape[-1] not in (3, 4)):
        plane = plane[0]
    if plane.dtype.kind == "b":
        return plane.astype(np.uint8) * 255
    if plane.dtype.itemsize == 1:
        return plane.view(np.uint8)
    if plane.dtype.kind in "ui" and plane.ndim == 2:
        return (
            plane.view(f"<u{plane.dtype.itemsize}").astype(np.uint16)
            if plane.dtype.itemsize == 2
            else ((plane.view(f"<u{plane.dtype.itemsize}") >> (8 * plane.dtype.itemsize - 16)).astype(np.uint16))
        )
    # Floats and wide colour: show the top byte of each word.
    words = np.ascontiguousarray(plane).view(f"<u{plane.dtype.itemsize}")
    return (words >> (8 * plane.dtype.itemsize - 8)).astype(np.uint8)


def _write_cipher_image(file: Path, info: "api.ContainerInfo", target: Path, force: bool) -> None:
    import numpy as np

    from deepkedi import api
    from deepkedi.fileio import atomic_output_path
    from deepkedi.imaging import MedicalImage, write_image

    header = info.header
    suffix = target.suffix.lower()
    if suffix not in (".npy", ".png"):
        fail("--cipher-image must end in .npy or .png", EXIT_USAGE)
    with guarded():
        if suffix == ".npy":
            # Written through a memory map: a volume of any size is never held whole.
            with atomic_output_path(target, force=force) as tmp:
                mapped = np.lib.format.open_memmap(tmp, mode="w+", dtype=header.dtype, shape=header.shape)
                api.cipher_image(file, out=mapped)
                mapped.flush()
                del mapped
        else:
            pixels = api.cipher_image(file)
            with atomic_output_path(target, force=force) as tmp:
                shown = _to_display(pixels)
                colour = shown.ndim == 3
                write_image(
                    MedicalImage(
                        pixels=shown,
                        channels_last=colour,
                        samples_per_pixel=shown.shape[-1] if colour else 1,
                        photometric="RGB" if colour else "MONOCHROME2",
                    ),
                    tmp,
                )


@app.command(
    examples=(
        "kedi keygen -o site.key",
        "kedi encrypt CT_small.dcm -o ct.kedi --key site.key",
        "kedi inspect ct.kedi",
        "kedi inspect MR_small.dcm --json",
    )
)
def inspect(
    file: Annotated[Path, typer.Argument(help="A container or an image file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    cipher_image_out: Annotated[
        Path | None,
        typer.Option(
            "--cipher-image", help="Write the container's cipher image (.npy: all planes; .png: first plane)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --cipher-image output.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Describe a container's public header (no key needed), or an image file.

    Secrets never appear: the header holds none.
    """
    from deepkedi import api
    from deepkedi.imaging import read_image

    try:
        info = api.read_header(file)
    except FormatError:
        info = None  # not a container: an image file, described as such
    except DeepKediError as exc:  # a damaged header: exit 3, as decrypt does; an unreadable file: 4
        fail(message_for(exc), exit_code_for(exc))
    except OSError as exc:
        fail(message_for(exc), exit_code_for(exc))
    if info is None:
        if cipher_image_out is not None:
            fail(f"{file}: not a deepkedi container, so it has no cipher image", EXIT_INPUT)
        with guarded():
            record = _image_record(file, read_image(file))
    else:
        record = {"path": str(file), **info.describe()}
        if info.kind is api.ContainerKind.CONTAINER:
            record["size_matches_header"] = file.stat().st_size == info.header.container_length
        if cipher_image_out is not None:
            if info.kind is api.ContainerKind.DICOM_NATIVE:
                fail(
                    f"{file}: a DICOM-native file's cipher image is its Pixel Data; read it with any DICOM tool",
                    EXIT_INPUT,
                )
            _write_cipher_image(file, info, cipher_image_out, force)
            record["cipher_image"] = str(cipher_image_out)
    if as_json:
        typer.echo(json.dumps(record, sort_keys=True))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for name, value in record.items():
        # Values come from the file (names, DICOM attributes): shown as plain text, control characters escaped.
        table.add_row(f"[bold]{name}[/]", Text(printable(value)))
    console.print(table)
