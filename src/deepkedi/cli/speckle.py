"""`kedi speckle` and `kedi despeckle`: the paper's speckle pipeline on image files."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_USAGE, MaxDecodedSize, console, fail, guarded, printable
from deepkedi.errors import InputTooLargeError
from deepkedi.fileio import atomic_output, atomic_output_path, check_distinct
from deepkedi.imaging import MedicalImage, read_image, write_image

#: Default working-memory budget of `kedi despeckle`, in MiB: a 512² plane (678 MiB) fits.
DESPECKLE_MEMORY_MIB = 800

#: Formats that store floating-point pixels as they are.
_FLOAT_SUFFIXES = (".npy", ".nii", ".nii.gz", ".mgh", ".mgz")


class SpeckleModel(str, enum.Enum):
    gaussian = "gaussian"
    uniform = "uniform"
    gamma = "gamma"


def _per_plane(image: MedicalImage, action: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``action`` to every 2-D plane (colour samples are planes of their own)."""
    pixels = np.asarray(image.pixels, dtype=np.float64)
    if image.channels_last:
        pixels = np.moveaxis(pixels, -1, 0)
    planes = pixels.reshape((-1,) + pixels.shape[-2:])
    out = np.stack([action(plane) for plane in planes]).reshape(pixels.shape)
    return np.moveaxis(out, 0, -1) if image.channels_last else out


def _write(image: MedicalImage, values: np.ndarray, output: Path, force: bool) -> str:
    """Float32 into .npy/NIfTI/MGH as computed; otherwise rounded and clipped to the input's integer type."""
    name = output.name.lower()
    if name.endswith(_FLOAT_SUFFIXES):
        result, note = values.astype(np.float32), "float32, as computed"
    elif image.pixels.dtype.kind in "iu":
        info = np.iinfo(image.pixels.dtype)
        result = np.clip(np.rint(values), info.min, info.max).astype(image.pixels.dtype)
        note = f"rounded and clipped to {image.pixels.dtype}"
    else:
        fail(
            f"{output.name}: floating-point pixels need a .npy, NIfTI or MGH output ({image.pixels.dtype} input)",
            EXIT_USAGE,
        )
    if name.endswith(".npy"):
        with atomic_output(output, force=force) as fh:
            np.save(fh, result)
    else:
        with atomic_output_path(output, force=force) as tmp:
            write_image(image.with_pixels(result), tmp)
    return note


@app.command()
def speckle(
    input: Annotated[Path, typer.Argument(help="Image file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Speckled image (.npy, NIfTI or MGH keeps float32).")],
    model: Annotated[SpeckleModel, typer.Option(help="Speckle model.")] = SpeckleModel.gaussian,
    level: Annotated[
        Optional[float], typer.Option(help="Variance (gaussian, uniform) or number of looks (gamma).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise (research noise, not a secret).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Multiply an image by speckle noise g = f·n (the paper's pre-processing step)."""
    from deepkedi.transforms.speckle import add_speckle

    with guarded():
        check_distinct(input, output)
        image = read_image(input)
        rng = np.random.default_rng(seed)
        noisy = _per_plane(image, lambda plane: add_speckle(plane, model=model.value, level=level, rng=rng))
        note = _write(image, noisy, output, force)
    console.print(f"wrote {printable(output)} ({model.value} speckle, seed {seed}; {note})", markup=False)


@app.command()
def despeckle(
    input: Annotated[Path, typer.Argument(help="Speckled image file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Despeckled image.")],
    c: Annotated[float, typer.Option("--c", help="Ripplet support c (1 with d = 2: curvelets).")] = 1.0,
    d: Annotated[float, typer.Option("--d", help="Ripplet degree d.")] = 2.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    max_decoded_size: MaxDecodedSize = None,
    max_memory: Annotated[
        int,
        typer.Option(
            "--max-memory",
            min=1,
            help="Refuse planes whose ripplet transform needs more than this many MiB (it grows faster "
            "than the image: about 680 MiB at 512², 4.2 GiB at 1024²).",
        ),
    ] = DESPECKLE_MEMORY_MIB,
) -> None:
    """Remove speckle blindly: log, discrete ripplet transform, per-band thresholding, inverse, exp."""
    from deepkedi.transforms.speckle import despeckle_ripplet, despeckle_working_bytes

    with guarded():
        check_distinct(input, output)
        image = read_image(input)
        needed = despeckle_working_bytes(image.plane_shape, c=c, d=d)
        if needed > max_memory << 20:
            rows, cols = image.plane_shape
            raise InputTooLargeError(
                f"{input}: despeckling a {rows}×{cols} plane needs about {needed >> 20} MiB, over "
                f"--max-memory {max_memory} MiB (raise it on a machine with the memory to spare)"
            )
        clean = _per_plane(image, lambda plane: despeckle_ripplet(plane, c=c, d=d))
        note = _write(image, clean, output, force)
    console.print(f"wrote {printable(output)} (ripplet c={c:g}, d={d:g}; {note})", markup=False)
