"""Compare the ripplet despeckler with classic filters on the sample corpus and phantoms.

One grey plane per image, normalised to [0, 1]: the middle slice of a volume, the
BT.601 luminance of a colour image, a centre crop of at most 256 x 256; images under
32 x 32, ramp test patterns and palette-colour images (indices without their lookup
table) are skipped. The seven phantom kinds are added at seed 0 (the radiograph at
512 x 512). Each image is speckled at the paper setting assumed in ``speckle.PAPER_MODEL``/``PAPER_LEVEL``
and with Gaussian speckle of variance 0.01, 0.04 and 0.1, seed fixed, then despeckled
by every method of :func:`deepkedi.analysis.despeckle_methods`.

Writes, under ``--out`` (default ``bench/out/despeckle/``, ignored by git; ``make bench-docs``
writes the committed copies under ``docs/``): ``despeckle_comparison.md`` (mean PSNR,
SSIM, MSE and runtime per method and setting, with the paper's quoted figures as a
marked row), ``despeckle_comparison.csv`` (one row per image, method and setting) and
``figures/despeckle_comparison.png`` (clean, noisy and every method on one MR slice).

Run with ``python bench/compare_despeckle.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepkedi.analysis import DespeckleRow, compare_despecklers, despeckle_methods, normalise_unit
from deepkedi.datasets import PHANTOM_KINDS, phantom, sample_corpus
from deepkedi.imaging import MedicalImage, read_image
from deepkedi.imaging.montage import montage

ROOT = Path(__file__).resolve().parents[1]
SEED = 2026
CROP = 256
MIN_SIDE = 32
GAUSSIAN_LEVELS = (0.01, 0.04, 0.1)
FIGURE_IMAGE = "pydicom-examples_overlay.dcm"  # a real MR slice (liver, T1 VIBE)
# Quoted from the paper (Selvakumar and Lokesh 2024, Table 1 and Sec. 4): not measured here.
PAPER_PSNR, PAPER_SSIM, PAPER_MSE = 25.32, 0.618, 2.62


def grey_plane(image: MedicalImage) -> np.ndarray | None:
    """One 2-D float64 plane of ``image``, or None when it has no usable grey plane."""
    pixels = np.asarray(image.pixels)
    if image.photometric == "PALETTE COLOR":
        return None  # stored indices mean nothing without the palette
    if image.channels_last:
        pixels = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    while pixels.ndim > 2:
        pixels = pixels[pixels.shape[0] // 2]
    return pixels.astype(np.float64)


def centre_crop(plane: np.ndarray, side: int = CROP) -> np.ndarray:
    """The central ``side x side`` window (or less along a shorter axis)."""
    rows, cols = plane.shape
    r0, c0 = max(0, (rows - side) // 2), max(0, (cols - side) // 2)
    return plane[r0 : r0 + side, c0 : c0 + side]


def corpus_planes() -> tuple[dict[str, np.ndarray], list[str]]:
    """Grey planes of the sample corpus and a line for each image skipped."""
    planes: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    for sample in sample_corpus():
        if sample.content == "test pattern":
            skipped.append(f"{sample.name}: a ramp test pattern, no image content")
            continue
        plane = grey_plane(read_image(sample.path))
        if plane is None:
            skipped.append(f"{sample.name}: palette colour indices")
            continue
        if min(plane.shape) < MIN_SIDE:
            skipped.append(f"{sample.name}: {plane.shape} is under {MIN_SIDE} x {MIN_SIDE}")
            continue
        planes[sample.name] = normalise_unit(centre_crop(plane))
    return planes, skipped


def phantom_planes(*, quick: bool = False) -> dict[str, np.ndarray]:
    """The seven phantom kinds at seed 0 (CXR at 512 x 512; 96 x 96 two kinds when quick)."""
    planes: dict[str, np.ndarray] = {}
    kinds = PHANTOM_KINDS[:2] if quick else PHANTOM_KINDS
    for organ, modality in kinds:
        shape = (96, 96) if quick else ((512, 512) if modality == "CXR" else None)
        planes[f"phantom-{organ}-{modality}"] = normalise_unit(phantom(organ, modality, seed=0, shape=shape).pixels)
    return planes


def settings(*, quick: bool) -> list[tuple[str, str | None, float | None]]:
    """``(label, model, level)``: the pipeline's paper setting first, then Gaussian variances.

    The paper states no speckle model or variance; ``speckle.PAPER_MODEL`` /
    ``PAPER_LEVEL`` hold the assumption this project makes (MATLAB's ``imnoise``
    default, uniform variance 0.05).
    """
    gaussian = [(f"gaussian variance {v:g}", "gaussian", v) for v in GAUSSIAN_LEVELS]
    if quick:
        return [gaussian[1]]
    from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL

    return [(f"paper setting, assumed ({PAPER_MODEL}, variance {PAPER_LEVEL:g})", PAPER_MODEL, PAPER_LEVEL), *gaussian]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summary_table(label: str, rows: list[DespeckleRow], *, quote_paper: bool) -> list[str]:
    """Markdown lines: mean scores per method for one setting."""
    lines = [
        f"### {label}",
        "",
        "| method | images | mean PSNR (dB) | mean SSIM | mean MSE (×10⁻³) | mean runtime (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    methods = list(dict.fromkeys(row.method for row in rows))
    for method in methods:
        group = [row for row in rows if row.method == method]
        ok = [row for row in group if row.status == "ok"]
        if not ok:
            if all(row.status == "unavailable" for row in group):
                lines.append(f"| {method} | 0 | *unavailable — not run (see note above)* | — | — | — |")
            else:
                notes = "; ".join(sorted({f"{row.status}: {row.note}" for row in group}))
                lines.append(f"| {method} | 0 | *{notes}* | — | — | — |")
            continue
        runtime = "—" if method == "noisy" else f"{1e3 * _mean([r.seconds for r in ok]):.1f}"
        failed = len(group) - len(ok)
        count = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
        lines.append(
            f"| {method} | {count} | {_mean([r.psnr for r in ok]):.2f} | "
            f"{_mean([r.ssim for r in ok]):.3f} | {1e3 * _mean([r.mse for r in ok]):.2f} | {runtime} |"
        )
    if quote_paper:
        lines.append(
            f"| *paper, quoted — not our measurement* | — | *{PAPER_PSNR}* | *{PAPER_SSIM}* | "
            f"*{PAPER_MSE} (scale not stated; inconsistent with its PSNR)* | — |"
        )
    return [*lines, ""]


def write_csv(path: Path, labelled: list[tuple[str, list[DespeckleRow]]]) -> None:
    fields = ["setting", *DespeckleRow.__dataclass_fields__]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for label, rows in labelled:
            for row in rows:
                writer.writerow({"setting": label, **row.to_dict()})


def _tile(plane: np.ndarray) -> np.ndarray:
    return (np.clip(plane, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_figure(path: Path, name: str, clean: np.ndarray, *, model: str, level: float) -> None:
    """Clean, speckled and every available method on one image, PSNR in each caption."""
    from deepkedi.metrics import psnr

    add_speckle = importlib.import_module("deepkedi.transforms.speckle").add_speckle
    noisy = np.clip(add_speckle(clean, model=model, level=level, rng=np.random.default_rng(SEED)), 0.0, 1.0)
    panels = [
        (f"clean {name[:24]}", _tile(clean)),
        (f"{model} {level:g}: {psnr(clean, noisy, data_range=1.0):.2f} dB", _tile(noisy)),
    ]
    methods, _ = despeckle_methods()
    for method, despeckle in methods.items():
        estimate = np.clip(np.asarray(despeckle(noisy), dtype=np.float64), 0.0, 1.0)
        panels.append((f"{method}: {psnr(clean, estimate, data_range=1.0):.2f} dB", _tile(estimate)))
    path.parent.mkdir(parents=True, exist_ok=True)
    montage(panels, tile=256, columns=4).save(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small phantoms, one noise level")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "out" / "despeckle",
        help="output folder (default bench/out/despeckle/)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    try:
        importlib.import_module("deepkedi.transforms.speckle").add_speckle  # noqa: B018 - availability check
    except (ImportError, AttributeError) as error:
        print(
            f"compare_despeckle: needs deepkedi.transforms.speckle.add_speckle ({error}); nothing written",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)

    skipped: list[str] = []
    if args.quick:
        images = phantom_planes(quick=True)
    else:
        images, skipped = corpus_planes()
        images.update(phantom_planes())
    _, unavailable = despeckle_methods()

    labelled: list[tuple[str, list[DespeckleRow]]] = []
    started = time.perf_counter()
    for label, model, level in settings(quick=args.quick):
        labelled.append((label, compare_despecklers(images, model=model, level=level, seed=SEED)))
    elapsed = time.perf_counter() - started

    lines = [
        "# Despeckling comparison",
        "",
        (
            f"Generated by `bench/compare_despeckle.py{' --quick' if args.quick else ''}`; "
            f"{len(images)} images, seed {SEED}, Python {platform.python_version()} on "
            f"{platform.machine()}, {elapsed:.0f} s in all."
        ),
        "",
        (
            "Each image is one grey plane normalised to [0, 1]; speckle comes from "
            "`deepkedi.transforms.speckle.add_speckle` and the noisy image is clipped to [0, 1]; "
            "estimates are clipped to [0, 1] and scored against the clean image with "
            "`deepkedi.metrics.psnr/ssim/mse`, `data_range=1`. Runtime is the wall time of one "
            "call on this machine. Per-image rows are in `despeckle_comparison.csv`."
        ),
        "",
        "Images: " + ", ".join(f"`{name}`" for name in images) + ".",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped) + ".", ""]
    if unavailable:
        lines += [
            "**Not run** (listed in the tables as unavailable): "
            + ", ".join(f"`{name}`" for name in unavailable)
            + f" — {next(iter(unavailable.values()))}.",
            "",
        ]
    for index, (label, rows) in enumerate(labelled):
        lines += summary_table(label, rows, quote_paper=index == 0 and not args.quick)
    if not args.quick:
        lines += [
            (
                "The italic *paper* row repeats the figures the paper reports for its own despeckler "
                "(PSNR 25.32 dB, SSIM 0.618, MSE 2.62; Selvakumar and Lokesh 2024, Table 1) on its own "
                "data and noise; it was not measured here and is not comparable row for row."
            ),
            "",
        ]
    figure = out / "figures" / "despeckle_comparison.png"
    name, clean = (FIGURE_IMAGE, images[FIGURE_IMAGE]) if FIGURE_IMAGE in images else next(iter(images.items()))
    write_figure(figure, name, clean, model="gaussian", level=0.04)
    lines += [(f"![clean, noisy and each method on {name}, Gaussian speckle variance 0.04](figures/{figure.name})"), ""]

    text = "\n".join(lines)
    (out / "despeckle_comparison.md").write_text(text, encoding="utf-8")
    write_csv(out / "despeckle_comparison.csv", labelled)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
