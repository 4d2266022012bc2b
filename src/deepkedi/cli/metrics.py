"""`kedi metrics` and `kedi nist`: the paper's measures, with the tests they belong to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.progress import Progress
from rich.table import Table

from deepkedi.cipher.format import parse_header
from deepkedi.cipher.hybrid import cipher_image
from deepkedi.cli import app
from deepkedi.cli._common import EXIT_AUTH, EXIT_INPUT, EXIT_USAGE, console, err_console, fail, guarded
from deepkedi.errors import AuthenticationError, FormatError, UnsupportedImageError
from deepkedi.imaging import detect_format, read_image


def _container_or_none(path: Path) -> bool:
    with guarded():
        with open(path, "rb") as fh:
            head = fh.read(65536)
    try:
        parse_header(head)
    except FormatError:
        return False
    except AuthenticationError as exc:
        fail(str(exc), EXIT_AUTH)
    return True


def load_planes(path: Path) -> tuple[np.ndarray, str, int]:
    """The image (or a container's cipher image) as a stack of planes, what it is, and its samples.

    Colour samples become planes of their own, sample-major within each pixel plane
    (``(..., samples, rows, cols)`` before the leading axes are flattened), so that
    :func:`_colour_volume` can give SSIM its channel axis back. A container's header
    knows interleaved colour only; planar colour in a container counts as grey planes.
    """
    with guarded():
        if _container_or_none(path):
            header = parse_header(path.read_bytes()[:65536])
            pixels, channels_last, what = cipher_image(path), header.channels_last, "cipher image of a container"
            samples = int(pixels.shape[-1]) if channels_last else 1
        else:
            image = read_image(path)
            pixels, channels_last, what = np.asarray(image.pixels), image.channels_last, f"{image.format} image"
            samples = image.samples_per_pixel if image.channel_axis is not None else 1
    if channels_last:
        pixels = np.moveaxis(pixels, -1, -3)
    if samples > 1 and (pixels.ndim < 3 or pixels.shape[-3] != samples):
        samples = 1  # a samples count the pixels do not bear out: measure grey planes
    if pixels.ndim > 3:
        pixels = pixels.reshape((-1,) + pixels.shape[-2:])
    if pixels.dtype.kind == "b":
        pixels = pixels.astype(np.uint8)
    if pixels.dtype.kind == "f":
        fail(f"{path}: floating-point pixels have no bit depth for these statistics", EXIT_INPUT)
    return pixels, what, samples


def _colour_volume(planes: np.ndarray, samples: int) -> tuple[np.ndarray, int | None]:
    """Planes from :func:`load_planes` with the colour samples on an axis of their own.

    SSIM is computed per colour channel (scikit-image's ``channel_axis``), never across
    the colours as if they were slices. Returns the array and its channel axis (None
    for grey images).
    """
    if samples <= 1:
        return planes, None
    volume = planes.reshape((-1, samples) + planes.shape[-2:])
    if volume.shape[0] == 1:
        return volume[0], 0
    return volume, 1


def _quality(first: np.ndarray, second: np.ndarray, samples: int, data_range: int) -> dict[str, Any]:
    """MSE, PSNR and SSIM of two images from :func:`load_planes`.

    SSIM is 2-D for one plane, 3-D for a stack of three or more (scikit-image's window
    needs 3 planes), and the mean of the planes' 2-D scores for a stack of one or two;
    colour samples are channels throughout.
    """
    from deepkedi import metrics as m

    a, channel_axis = _colour_volume(first, samples)
    b, _ = _colour_volume(second, samples)
    frames = a.shape[0] if a.ndim - (channel_axis is not None) == 3 else None
    if frames is None or frames >= 3:
        return m.compare(a, b, data_range=data_range, channel_axis=channel_axis).to_dict()
    plane_axis = None if channel_axis is None else channel_axis - 1
    score = float(np.mean([m.ssim(x, y, data_range=data_range, channel_axis=plane_axis) for x, y in zip(a, b)]))
    # MSE and PSNR over every sample: the planes hold the same values as the volume.
    return m.QualityResult(
        mse=m.mse(first, second),
        psnr=m.psnr(first, second, data_range=data_range),
        ssim=score,
        data_range=float(data_range),
    ).to_dict()


def _bits_for(pixels: np.ndarray, bits: int | None) -> int:
    return bits if bits is not None else 8 * pixels.dtype.itemsize


def _local_entropy(pixels: np.ndarray, depth: int, seed: int, alpha: float) -> dict[str, Any] | None:
    """Wu et al.'s k = 30 blocks of 44×44, or as many as the image holds (a 256² slice holds 25)."""
    from deepkedi.metrics import local_entropy

    planes = int(np.prod(pixels.shape[:-2])) if pixels.ndim > 2 else 1
    available = planes * (pixels.shape[-2] // 44) * (pixels.shape[-1] // 44)
    if available == 0:
        return None
    return local_entropy(pixels, bits=depth, blocks=min(30, available), seed=seed, alpha=alpha).to_dict()


def _fixed(value: Any, digits: int) -> str:
    """A critical value to ``digits`` decimals; records write non-finite numbers as strings ("inf")."""
    return value if isinstance(value, str) else f"{value:.{digits}f}"


def _row(table: Table, name: str, value: Any, critical: str = "", passed: bool | None = None) -> None:
    verdict = "" if passed is None else ("[green]pass[/]" if passed else "[red]fail[/]")
    table.add_row(name, value if isinstance(value, str) else f"{value:.6g}", critical, verdict)


@app.command()
def metrics(
    image: Annotated[Path, typer.Argument(help="Image file or container (its cipher image is measured).")],
    against: Annotated[
        Optional[Path], typer.Option(help="Second image: adds NPCR, UACI, MSE, PSNR and SSIM between the two.")
    ] = None,
    bits: Annotated[Optional[int], typer.Option(help="Bit depth (default: the pixel word size).")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the tests.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed for sampled blocks and pixel pairs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Entropy, local entropy, histogram χ², adjacent-pixel correlations; NPCR/UACI/MSE/PSNR/SSIM with --against."""
    from deepkedi import metrics as m

    pixels, what, samples = load_planes(image)
    depth = _bits_for(pixels, bits)
    if not 1 <= depth <= 16:
        fail(f"--bits must be between 1 and 16 for these statistics, got {depth}", EXIT_USAGE)
    with guarded():
        record: dict[str, Any] = {
            "image": str(image),
            "what": what,
            "shape": list(pixels.shape),
            "bits": depth,
            "entropy": m.shannon_entropy(pixels, bits=depth).to_dict(),
            "local_entropy": _local_entropy(pixels, depth, seed, alpha),
            "chi_square": m.histogram_chi_square(pixels, bits=depth, alpha=alpha).to_dict(),
            "correlation": {k: v.to_dict() for k, v in m.adjacent_correlations(pixels, seed=seed).items()},
        }
        if against is not None:
            other, other_what, other_samples = load_planes(against)
            if other.shape != pixels.shape:
                fail(f"{against}: shape {other.shape} differs from {image}'s {pixels.shape}", EXIT_USAGE)
            if other_samples != samples:
                fail(f"{against}: {other_samples} samples per pixel, {image} has {samples}", EXIT_USAGE)
            data_range = 2**depth - 1
            record["against"] = {
                "image": str(against),
                "what": other_what,
                "npcr": m.npcr(pixels, other, bits=depth, alpha=alpha).to_dict(),
                "uaci": m.uaci(pixels, other, bits=depth, alpha=alpha).to_dict(),
                "quality": _quality(pixels, other, samples, data_range),
            }
    if as_json:
        typer.echo(json.dumps(record, sort_keys=True))
        return
    table = Table(title=f"{image} — {what}, {'×'.join(map(str, pixels.shape))}, {depth}-bit, α = {alpha}")
    for column in ("measure", "value", "critical value", ""):
        table.add_column(column)
    e = record["entropy"]
    _row(table, "entropy (bits)", e["value"], f"max {e['maximum']:g}, random ≈ {_fixed(e['expected_random'], 4)}")
    if e.get("per_byte") is not None:
        _row(table, "entropy per byte", e["per_byte"], "max 8")
    le = record["local_entropy"]
    if le is None:
        _row(table, "local entropy", "n/a", "image smaller than one 44×44 block")
    else:
        _row(
            table,
            f"local entropy ({le['blocks']} blocks)",
            le["value"],
            f"[{_fixed(le['lower'], 4)}, {_fixed(le['upper'], 4)}]",
            le["passed"],
        )
    chi = record["chi_square"]
    _row(table, "histogram χ²", chi["value"], f"< {_fixed(chi['critical'], 2)}", chi["passed"])
    for direction, corr in record["correlation"].items():
        _row(table, f"correlation, {direction}", corr["coefficient"], "≈ 0 for a cipher image")
    if against is not None:
        a = record["against"]
        _row(table, "NPCR %", a["npcr"]["value"], f"≥ {_fixed(a['npcr']['critical'], 4)}", a["npcr"]["passed"])
        _row(
            table,
            "UACI %",
            a["uaci"]["value"],
            f"[{_fixed(a['uaci']['lower'], 4)}, {_fixed(a['uaci']['upper'], 4)}]",
            a["uaci"]["passed"],
        )
        q = a["quality"]
        _row(table, "MSE", q["mse"])
        _row(table, "PSNR dB", q["psnr"] if isinstance(q["psnr"], str) else q["psnr"], f"range {q['data_range']}")
        _row(table, "SSIM", q["ssim"])
    console.print(table)


def _bits_of_file(path: Path) -> tuple[bytes, str]:
    """Bytes to test: a container's cipher image, an image's pixel words, or the raw file."""
    if _container_or_none(path):
        with guarded():
            return cipher_image(path).tobytes(), "cipher image of a container"
    try:
        detect_format(path)
    except UnsupportedImageError:
        with guarded():
            return path.read_bytes(), "raw bytes"
    with guarded():
        image = read_image(path)
        return np.ascontiguousarray(image.pixels).tobytes(), f"pixel words of a {image.format} image"


@app.command()
def nist(
    bitfile: Annotated[
        Path,
        typer.Argument(
            help="File whose bits are tested (an image's pixels, a container's cipher image, or raw bytes)."
        ),
    ],
    n_bits: Annotated[Optional[int], typer.Option("--bits", help="Test only the first N bits.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """NIST SP 800-22 rev 1a: the 15 tests on a file's bits, most significant bit of each byte first."""
    from deepkedi.metrics import nist as sts

    data, what = _bits_of_file(bitfile)
    with guarded():
        bits = sts.bits_from_bytes(data, n_bits=n_bits)
    results = {}
    with Progress(console=err_console, transient=True, disable=as_json or not err_console.is_terminal) as bar:
        task = bar.add_task("SP 800-22", total=len(sts.TESTS))
        for name, test in sts.TESTS.items():
            bar.update(task, description=name)
            results[name] = test(bits)
            bar.advance(task)
    if as_json:
        payload = {
            name: (list(r.p_values) if len(r.p_values) != 1 else r.p_values[0]) if r.applicable else None
            for name, r in results.items()
        }
        # Keyed by test name (a P-value, a list where the test yields several, null when not applicable).
        typer.echo(json.dumps({"file": str(bitfile), "what": what, "bits": int(bits.size), **payload}))
        return
    table = Table(title=f"SP 800-22 on {bitfile} — {what}, {bits.size:,} bits, α = 0.01")
    for column in ("test", "P-value", "passed", "note"):
        table.add_column(column)
    for name, r in results.items():
        if not r.applicable:
            table.add_row(name, "—", "", r.reason or "not applicable")
            continue
        shown = f"{r.p_values[0]:.6f}" if len(r.p_values) == 1 else f"min {min(r.p_values):.6f} of {len(r.p_values)}"
        passed = sum(p >= r.alpha for p in r.p_values)
        table.add_row(name, shown, f"{passed}/{len(r.p_values)}", "" if r.passed else "[red]below α[/]")
    console.print(table)
