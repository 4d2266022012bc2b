"""`kedi metrics` and `kedi nist`: the paper's measures, with the tests they belong to."""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_INPUT,
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    err_console,
    fail,
    guarded,
    max_decoded_size_option,
    printable,
)
from deepkedi.errors import DeepKediError, UnsupportedImageError

if TYPE_CHECKING:
    import numpy as np

#: Bits `kedi nist` tests unless told otherwise: the sequence length of NIST's own
#: examples and Appendix B (n = 10⁶), read from the start of the file.
NIST_DEFAULT_BITS = 1_000_000
#: The most bits `kedi nist` reads. The DFT test needs about 32 bytes per bit at its peak
#: (the ±1 sequence, its spectrum and the FFT's scratch), the others at most 8, so 10⁷
#: bits stay near 300 MiB beyond the process itself (about 470 MiB resident in all);
#: a longer file is never read past the bytes that hold the bits tested.
NIST_MAX_BITS = 10_000_000
#: Working memory of `kedi metrics` per decoded byte: about 2 beyond the image itself, and
#: with --against the second image (a deflated DICOM is inflated through three copies at
#: once) and SSIM's slabs (some 320 MiB whatever the volume). Measured at 210 MiB decoded:
#: 628 MiB resident, 838 MiB with --against on a .nii.gz, 1006 MiB on a deflated DICOM
#: (1681 MiB at 255 MiB before the statistics stopped shifting signed pixels through int64
#: copies); the default limit of 192 MiB keeps every case under 1 GiB.
METRICS_MEMORY_FACTOR = 4

MetricsDecodedSize = Annotated[int | None, max_decoded_size_option(METRICS_MEMORY_FACTOR)]


def load_planes(path: Path) -> "tuple[np.ndarray, str, int]":
    """:func:`deepkedi.analysis.planes.load_planes`, its failures as one line and an exit code."""
    from deepkedi.analysis.planes import load_planes as _load_planes

    with guarded():
        return _load_planes(path)


def _colour_volume(planes: "np.ndarray", samples: int) -> "tuple[np.ndarray, int | None]":
    """Planes from :func:`load_planes` with the colour samples on an axis of their own.

    SSIM is computed per colour channel (scikit-image's ``channel_axis``), never across
    the colours as if they were slices. Returns the array and its channel axis (None
    for grey images).
    """
    if samples <= 1:
        return planes, None
    volume = planes.reshape((-1, samples, *planes.shape[-2:]))
    if volume.shape[0] == 1:
        return volume[0], 0
    return volume, 1


def _quality(first: "np.ndarray", second: "np.ndarray", samples: int, data_range: int) -> dict[str, Any]:
    """MSE, PSNR and SSIM of two images from :func:`load_planes`.

    SSIM is 2-D for one plane, 3-D for a stack of three or more (scikit-image's window
    needs 3 planes), and the mean of the planes' 2-D scores for a stack of one or two;
    colour samples are channels throughout.
    """
    import numpy as np

    from deepkedi import metrics as m

    a, channel_axis = _colour_volume(first, samples)
    b, _ = _colour_volume(second, samples)
    frames = a.shape[0] if a.ndim - (channel_axis is not None) == 3 else None
    if frames is None or frames >= 3:
        return m.compare(a, b, data_range=data_range, channel_axis=channel_axis).to_dict()
    plane_axis = None if channel_axis is None else channel_axis - 1
    scores = [m.ssim(x, y, data_range=data_range, channel_axis=plane_axis) for x, y in zip(a, b, strict=True)]
    score = float(np.mean(scores))
    # MSE and PSNR over every sample: the planes hold the same values as the volume.
    return m.QualityResult(
        mse=m.mse(first, second),
        psnr=m.psnr(first, second, data_range=data_range),
        ssim=score,
        data_range=float(data_range),
    ).to_dict()


@contextlib.contextmanager
def _about(path: Path) -> Iterator[None]:
    """A ValueError raised while measuring is the measured image's: an input error naming it."""
    try:
        yield
    except ValueError as exc:
        if isinstance(exc, DeepKediError):
            raise
        raise UnsupportedImageError(f"{path}: {exc}") from None


def _bits_for(pixels: "np.ndarray", bits: int | None) -> int:
    return bits if bits is not None else 8 * pixels.dtype.itemsize


def _local_entropy(pixels: "np.ndarray", depth: int, seed: int, alpha: float) -> dict[str, Any] | None:
    """Wu et al.'s k = 30 blocks of 44×44, or as many as the image holds (a 256² slice holds 25)."""
    import numpy as np

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


@app.command(
    examples=(
        "kedi metrics CT_small.dcm",
        "kedi speckle CT_small.dcm -o noisy.dcm",
        "kedi metrics noisy.dcm --against CT_small.dcm",
    )
)
def metrics(
    image: Annotated[Path, typer.Argument(help="Image file or container (its cipher image is measured).")],
    against: Annotated[
        Path | None, typer.Option(help="Second image: adds NPCR, UACI, MSE, PSNR and SSIM between the two.")
    ] = None,
    bits: Annotated[int | None, typer.Option(help="Bit depth (default: the pixel word size).")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the tests.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed for sampled blocks and pixel pairs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    max_decoded_size: MetricsDecodedSize = None,
) -> None:
    """Entropy, local entropy, histogram χ², adjacent-pixel correlations; NPCR/UACI/MSE/PSNR/SSIM with --against."""
    from deepkedi import metrics as m

    if not 0.0 < alpha < 1.0:
        fail(f"--alpha must be between 0 and 1, got {alpha:g}", EXIT_USAGE)
    pixels, what, samples = load_planes(image)
    depth = _bits_for(pixels, bits)
    if not 1 <= depth <= 16:
        fail(f"--bits must be between 1 and 16 for these statistics, got {depth}", EXIT_USAGE)
    # The options are checked: a ValueError left is about the image (too small for a statistic).
    with guarded(), _about(image):
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
    # Titles are rich markup: the file name is escaped for the terminal and for markup.
    shape = "×".join(map(str, pixels.shape))
    table = Table(title=f"{escape(printable(image))} — {what}, {shape}, {depth}-bit, α = {alpha}")
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
        _row(table, "PSNR dB", q["psnr"], f"range {q['data_range']}")
        _row(table, "SSIM", q["ssim"])
    console.print(table)


def _bits_of_file(path: Path, n_bits: int) -> tuple[bytes, str]:
    """The bytes holding the first ``n_bits`` bits to test, and what they are (:func:`leading_bytes`)."""
    from deepkedi.analysis.planes import leading_bytes

    with guarded():
        return leading_bytes(path, -(-n_bits // 8))


@app.command(examples=("kedi nist keystream.bin", "kedi nist keystream.bin --bits 100000 --json"))
def nist(
    bitfile: Annotated[
        Path,
        typer.Argument(
            help="File whose bits are tested (an image's pixels, a container's cipher image, or raw bytes)."
        ),
    ],
    n_bits: Annotated[
        int,
        typer.Option(
            "--bits",
            min=1,
            max=NIST_MAX_BITS,
            help=f"Test the first N bits, or all of a shorter file (default {NIST_DEFAULT_BITS:,}, NIST's sequence "
            f"length; at most {NIST_MAX_BITS:,}: memory grows by about 32 bytes per bit).",
        ),
    ] = NIST_DEFAULT_BITS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """NIST SP 800-22 rev 1a: the 15 tests on a file's bits, most significant bit of each byte first.

    Only the first --bits bits are read (10⁶ by default, 10⁷ at most), so
    memory stays bounded whatever the file's size. The input must be a
    regular file: a FIFO or a device such as /dev/urandom is refused (copy
    a stream into a file first: head -c 125000 /dev/urandom > bits.bin).
    """
    from deepkedi.metrics import nist as sts

    data, what = _bits_of_file(bitfile, n_bits)
    if not data:
        fail(f"{bitfile}: no bits to test (the file is empty)", EXIT_INPUT)
    with guarded():
        bits = sts.bits_from_bytes(data, n_bits=min(n_bits, 8 * len(data)))
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
    table = Table(title=f"SP 800-22 on {escape(printable(bitfile))} — {what}, {bits.size:,} bits, α = 0.01")
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
