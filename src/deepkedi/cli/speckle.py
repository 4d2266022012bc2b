"""`kedi speckle` and `kedi despeckle`: the paper's speckle pipeline on image files."""

import enum
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_USAGE, console, fail, guarded, max_decoded_size_option, printable
from deepkedi.errors import InputTooLargeError
from deepkedi.transforms.speckle_models import DEFAULT_LEVELS, PAPER_MODEL

if TYPE_CHECKING:
    import numpy as np

    from deepkedi.imaging import MedicalImage

#: Default working-memory budget of `kedi despeckle`, in MiB: one 512² plane's transform
#: (678 MiB) with the image and its float32 result beside it (about 120 MiB at most), and
#: with the process itself under 1 GiB resident.
DESPECKLE_MEMORY_MIB = 800

#: Working memory of `kedi speckle` and `kedi despeckle` per decoded byte, beyond one plane's
#: computation: the image, a float32 result up to twice its size (int16 into NIfTI), and what
#: a deflated DICOM's reader keeps. Measured at 255 MiB decoded: 872 MiB resident from a
#: .nii.gz, 1127 MiB from a deflated DICOM; at the default limit of 192 MiB both stay under 900.
SPECKLE_MEMORY_FACTOR = 4

SpeckleDecodedSize = Annotated[int | None, max_decoded_size_option(SPECKLE_MEMORY_FACTOR)]

#: Formats that store floating-point pixels as they are.
_FLOAT_SUFFIXES = (".npy", ".nii", ".nii.gz", ".mgh", ".mgz")


class SpeckleModel(str, enum.Enum):
    gaussian = "gaussian"
    uniform = "uniform"
    gamma = "gamma"


#: The paper suite's speckle (transforms/speckle_models.py), `kedi speckle`'s default.
DEFAULT_MODEL = SpeckleModel(PAPER_MODEL)


def _output_dtype(image: "MedicalImage", output: Path) -> "tuple[np.dtype, str]":
    """Float32 into .npy/NIfTI/MGH as computed; otherwise the input's integer type, rounded and clipped."""
    import numpy as np

    if output.name.lower().endswith(_FLOAT_SUFFIXES):
        return np.dtype(np.float32), "float32, as computed"
    if image.pixels.dtype.kind in "iu":
        return image.pixels.dtype, f"rounded and clipped to {image.pixels.dtype}"
    fail(
        f"{output.name}: floating-point pixels need a .npy, NIfTI or MGH output ({image.pixels.dtype} input)",
        EXIT_USAGE,
    )


def _per_plane(image: "MedicalImage", action: "Callable[[np.ndarray], np.ndarray]", dtype: "np.dtype") -> "np.ndarray":
    """Apply ``action`` to every 2-D plane (colour samples are planes of their own), in ``dtype``.

    Each plane is computed in float64 and stored straight away in ``dtype`` (rounded and
    clipped for an integer type), so the working memory is the input, the result and one
    plane's computation, not float64 copies of the whole volume.
    """
    import numpy as np

    pixels = np.asarray(image.pixels)
    if image.channels_last:
        pixels = np.moveaxis(pixels, -1, 0)
    out = np.empty(pixels.shape, dtype=dtype)
    limits = np.iinfo(dtype) if dtype.kind in "iu" else None
    for index in np.ndindex(pixels.shape[:-2]):
        values = action(pixels[index].astype(np.float64))
        out[index] = values if limits is None else np.clip(np.rint(values), limits.min, limits.max)
    return np.moveaxis(out, 0, -1) if image.channels_last else out


def _write(image: "MedicalImage", result: "np.ndarray", output: Path, force: bool) -> None:
    """Write ``result`` (from :func:`_per_plane`) as .npy, or in the format the output's name says."""
    import numpy as np

    from deepkedi.fileio import atomic_output, atomic_output_path
    from deepkedi.imaging import write_image

    if output.name.lower().endswith(".npy"):
        with atomic_output(output, force=force) as fh:
            np.save(fh, result)
    else:
        with atomic_output_path(output, force=force) as tmp:
            write_image(image.with_pixels(result), tmp)


@app.command(
    examples=(
        "kedi speckle CT_small.dcm -o noisy.npy",
        "kedi speckle CT_small.dcm -o noisy-gamma.npy --model gamma --level 4",
    )
)
def speckle(
    input: Annotated[Path, typer.Argument(help="Image file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Speckled image (.npy, NIfTI or MGH keeps float32).")],
    model: Annotated[
        SpeckleModel,
        typer.Option(help="Speckle model (uniform: MATLAB imnoise; gaussian: scikit-image; gamma: L looks)."),
    ] = DEFAULT_MODEL,
    level: Annotated[
        float | None,
        typer.Option(
            help="Variance (gaussian, uniform) or number of looks (gamma). Default: the model's, "
            + ", ".join(f"{name} {value:g}" for name, value in DEFAULT_LEVELS.items())
            + ".",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise (research noise, not a secret).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    max_decoded_size: SpeckleDecodedSize = None,
) -> None:
    """Multiply an image by speckle noise g = f·n (the paper's pre-processing step, Eq. 2).

    The default, uniform speckle of variance 0.05 (MATLAB's imnoise speckle), is the
    setting the paper suite uses: the paper names neither the distribution nor the
    variance, and this is our reading of its MATLAB-style tooling (docs/SPECKLE.md).
    """
    import numpy as np

    from deepkedi.fileio import check_distinct
    from deepkedi.imaging import read_image
    from deepkedi.transforms.speckle import add_speckle

    with guarded():
        check_distinct(input, output)
        image = read_image(input)
        rng = np.random.default_rng(seed)
        dtype, note = _output_dtype(image, output)
        noisy = _per_plane(image, lambda plane: add_speckle(plane, model=model.value, level=level, rng=rng), dtype)
        _write(image, noisy, output, force)
    console.print(
        f"wrote {printable(output)} ({model.value} speckle, seed {seed}; {note})", markup=False, soft_wrap=True
    )


@app.command(
    examples=(
        "kedi speckle CT_small.dcm -o noisy.npy",
        "kedi despeckle noisy.npy -o clean.npy",
    )
)
def despeckle(
    input: Annotated[Path, typer.Argument(help="Speckled image file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Despeckled image.")],
    c: Annotated[float, typer.Option("--c", help="Ripplet support c (1 with d = 2: curvelets).")] = 1.0,
    d: Annotated[float, typer.Option("--d", help="Ripplet degree d.")] = 2.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    max_decoded_size: SpeckleDecodedSize = None,
    max_memory: Annotated[
        int,
        typer.Option(
            "--max-memory",
            min=1,
            help="Refuse an image whose despeckling needs more than this many MiB: one plane's ripplet "
            "transform (it grows faster than the image: about 680 MiB at 512², 4.2 GiB at 1024²) "
            "beside the image and its result.",
        ),
    ] = DESPECKLE_MEMORY_MIB,
) -> None:
    """Remove speckle blindly: log, discrete ripplet transform, per-band thresholding, inverse, exp."""
    from deepkedi.fileio import check_distinct
    from deepkedi.imaging import read_image
    from deepkedi.transforms.ripplet_despeckle import despeckle_ripplet, despeckle_working_bytes

    with guarded():
        check_distinct(input, output)
        image = read_image(input)
        dtype, note = _output_dtype(image, output)
        plane = despeckle_working_bytes(image.plane_shape, c=c, d=d)
        volume = image.pixels.size * (image.pixels.dtype.itemsize + dtype.itemsize)
        if plane + volume > max_memory << 20:
            rows, cols = image.plane_shape
            raise InputTooLargeError(
                f"{input}: despeckling needs about {(plane + volume) >> 20} MiB ({plane >> 20} MiB for a "
                f"{rows}×{cols} plane, {volume >> 20} MiB for the image and its result), over "
                f"--max-memory {max_memory} MiB (raise it on a machine with the memory to spare)"
            )
        clean = _per_plane(image, lambda plane: despeckle_ripplet(plane, c=c, d=d), dtype)
        _write(image, clean, output, force)
    console.print(f"wrote {printable(output)} (ripplet c={c:g}, d={d:g}; {note})", markup=False, soft_wrap=True)
