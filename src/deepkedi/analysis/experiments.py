"""The paper's experiments re-run, for every scheme, on the bundled data or the user's own.

Each function computes one table or figure of the seed paper (Tables 1-6, Figs. 6-10)
or of the attack suite, from images and :mod:`deepkedi.analysis.schemes`; nothing
measured is hand-entered. Numbers the paper reports are carried as *quoted* rows,
marked so, never mixed with ours. :func:`reproduce` runs them all and returns a
:class:`Reproduction` that :mod:`deepkedi.analysis.report` writes out.

Data. Each image becomes one grey plane (middle plane of a stack, mean of colour
samples) in ``uint8`` (8-bit sources) or ``uint16`` (everything else; signed images
shifted by their minimum, wider or float images scaled to 16 bits), centre-cropped to at
most ``max_side`` pixels a side. Groups are *organ, modality* for the bundled data
and sub-folders for ``--data``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepkedi import metrics
from deepkedi.imaging import MedicalImage

__all__ = [
    "PAPER_QUOTED",
    "ExperimentImage",
    "Figure",
    "Reproduction",
    "Table",
    "bundled_images",
    "folder_images",
    "plan",
    "reproduce",
    "to_plane",
]

#: What the paper reports (Selvakumar and Lokesh 2024: Table 1, Sec. 4 and the conclusion; Intel i7 at
#: 2.1 GHz): quoted, never measured here.
PAPER_QUOTED: dict[str, Any] = {
    "ssim": 0.618,
    "mse": 2.62,
    "psnr_db": 25.32,
    "key_entropy": 7.45,
    "key_npcr_at_least": 99.5,
    "decrypt_ms": 45.0,
    "ednn_encrypt_ms": 7.17,
    "resnet50_decrypt_ms": 92.0,
    "hyperchaotic_encrypt_ms": 7.08,
    "entropy_gain_percent": {"EDNN": 3.75, "ResNet-50": 8.18, "4D hyperchaotic": 4.96},
}
_QUOTED = "*quoted from the paper, not measured here*"


@dataclass(frozen=True)
class ExperimentImage:
    """One grey plane an experiment runs on."""

    name: str
    group: str
    pixels: np.ndarray
    note: str = ""

    @property
    def bits(self) -> int:
        return 8 * self.pixels.dtype.itemsize

    @property
    def peak(self) -> int:
        return 2**self.bits - 1

    @property
    def stored_bits(self) -> int:
        """Bits the image's values need (at least 8): 12 for most CT and MR held in 16-bit words."""
        return max(8, int(self.pixels.max()).bit_length())

    @property
    def stored_peak(self) -> int:
        """``2^stored_bits − 1``: the data range of quality measures (a viewer's white level)."""
        return 2**self.stored_bits - 1


@dataclass(frozen=True)
class Table:
    """A results table: ``rows`` of values under ``columns``; ``note`` defines every number."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A figure as PNG bytes with its caption."""

    key: str
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Reproduction:
    """Everything :func:`reproduce` computed."""

    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    attacks: list[Any] = field(default_factory=list)
    images: list[ExperimentImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def _centre_crop(plane: np.ndarray, side: int) -> np.ndarray:
    rows, cols = plane.shape
    r0, c0 = max(0, (rows - side) // 2), max(0, (cols - side) // 2)
    return plane[r0 : r0 + side, c0 : c0 + side]


def to_plane(image: MedicalImage | np.ndarray, *, max_side: int = 512) -> tuple[np.ndarray, str]:
    """One ``uint8``/``uint16`` grey plane of an image and a note of any conversion."""
    if isinstance(image, MedicalImage):
        pixels, channels_last = np.asarray(image.pixels), image.channels_last
    else:
        pixels, channels_last = np.asarray(image), False
    notes = []
    if channels_last:
        pixels = pixels.mean(axis=-1)
        notes.append("mean of colour samples")
    while pixels.ndim > 2:
        pixels = pixels[pixels.shape[0] // 2]
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise ValueError(f"not an image plane: shape {pixels.shape}")
    source = np.asarray(image.pixels if isinstance(image, MedicalImage) else image).dtype
    if source == np.uint8 or source == np.bool_:
        plane = np.rint(pixels).astype(np.uint8) if source != np.bool_ else pixels.astype(np.uint8) * 255
    elif source.kind in "ui" and source.itemsize <= 2:
        low = int(pixels.min())
        if low < 0:
            notes.append(f"shifted by {-low} to unsigned")
            pixels = pixels.astype(np.int64) - low
        plane = pixels.astype(np.uint16)
    else:
        values = pixels.astype(np.float64)
        lo, hi = float(values.min()), float(values.max())
        notes.append(f"{source} scaled to 16 bits")
        plane = np.zeros(values.shape, np.uint16) if hi <= lo else np.rint((values - lo) / (hi - lo) * 65535)
        plane = plane.astype(np.uint16)
    if max(plane.shape) > max_side:
        notes.append(f"centre {min(plane.shape[0], max_side)}×{min(plane.shape[1], max_side)} crop")
        plane = _centre_crop(plane, max_side)
    return np.ascontiguousarray(plane), "; ".join(notes)


def bundled_images(*, quick: bool = False) -> tuple[list[ExperimentImage], list[str]]:
    """The sample corpus and the phantoms, grouped by organ and modality, and the files skipped."""
    from deepkedi.datasets import PHANTOM_KINDS, phantom, sample_corpus
    from deepkedi.imaging import read_image

    side = 128 if quick else 512
    images, skipped = [], []
    for organ, modality in PHANTOM_KINDS:
        shape = (side, side) if quick else None
        plane, note = to_plane(phantom(organ, modality, seed=0, shape=shape), max_side=side)
        images.append(ExperimentImage(f"phantom-{organ}-{modality}", f"{organ}, {modality}", plane, note))
    if quick:
        return images, ["sample corpus: left out by --quick (phantoms only)"]
    for sample in sample_corpus():
        if sample.content != "anatomy":
            skipped.append(f"{sample.name}: {sample.content}, no anatomy")
            continue
        try:
            plane, note = to_plane(read_image(sample.path), max_side=side)
        except ValueError as error:
            skipped.append(f"{sample.name}: {error}")
            continue
        if min(plane.shape) < 32:
            skipped.append(f"{sample.name}: {plane.shape[0]}×{plane.shape[1]} is under 32×32")
            continue
        images.append(ExperimentImage(sample.name, f"{sample.organ}, {sample.modality}", plane, note))
    return images, skipped


def folder_images(root: str | Path, *, quick: bool = False) -> tuple[list[ExperimentImage], list[str]]:
    """Images under ``root``, grouped by their first sub-folder (``.`` for files at the top)."""
    from deepkedi.errors import DeepKediError
    from deepkedi.imaging import read_image

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    side = 128 if quick else 512
    images, skipped = [], []
    per_group: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        relative = path.relative_to(root)
        group = relative.parts[0] if len(relative.parts) > 1 else "."
        if quick and per_group.get(group, 0) >= 2:
            continue
        try:
            plane, note = to_plane(read_image(path), max_side=side)
        except (DeepKediError, ValueError, OSError) as error:
            skipped.append(f"{relative}: {error}")
            continue
        per_group[group] = per_group.get(group, 0) + 1
        images.append(ExperimentImage(str(relative), group, plane, note))
    if not images:
        raise ValueError(f"no readable images under {root}")
    return images, skipped


# --------------------------------------------------------------------------- helpers


def _groups(images: Sequence[ExperimentImage]) -> dict[str, list[ExperimentImage]]:
    out: dict[str, list[ExperimentImage]] = {}
    for image in images:
        out.setdefault(image.group, []).append(image)
    return out


def _mean(values: Iterable[float]) -> float:
    """Mean of the values that are not NaN (∞ when any is ∞: a bit-exact PSNR); NaN when none is left."""
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _scheme(name: str, image: ExperimentImage, seed: int) -> Any:
    from deepkedi.analysis.schemes import make_scheme

    return make_scheme(name, seed=seed, shape=image.pixels.shape, bits=image.bits)


def _gan_keys(image: ExperimentImage, seeds: Sequence[int]) -> list[np.ndarray] | None:
    from deepkedi.keygen import torch_available

    if not torch_available():
        return None
    from deepkedi.keygen.generate import generate_key_image

    return [generate_key_image(image.pixels, seed=s, bits=image.bits).pixels for s in seeds]


# --------------------------------------------------------------------------- tables


def quality_table(
    images: Sequence[ExperimentImage], schemes: Sequence[str], seed: int, step: Callable[[str], None]
) -> Table:
    """Paper Table 1: SSIM, MSE and PSNR of decrypted against original images, per group and scheme."""
    rows = []
    for group, members in _groups(images).items():
        for name in schemes:
            step(f"Table 1: {group}, {name}")
            scores = []
            for image in members:
                scheme = _scheme(name, image, seed)
                # Scored on the stored range (12 bits for most CT/MR); despeckling overshoot is clipped
                # to it, as a viewer's white level would.
                restored = np.clip(scheme.decrypt(scheme.encrypt(image.pixels)), 0, image.stored_peak)
                scores.append(
                    (
                        metrics.ssim(image.pixels, restored, data_range=image.stored_peak),
                        metrics.mse(image.pixels, restored),
                        metrics.psnr(image.pixels, restored, data_range=image.stored_peak),
                    )
                )
            ranges = "/".join(sorted({str(m.stored_peak) for m in members}))
            rows.append(
                [
                    group,
                    len(members),
                    name,
                    ranges,
                    _mean(s[0] for s in scores),
                    _mean(s[1] for s in scores),
                    _mean(s[2] for s in scores),
                ]
            )
    rows.append(
        [
            "all (paper's average)",
            "—",
            _QUOTED,
            "not stated",
            PAPER_QUOTED["ssim"],
            PAPER_QUOTED["mse"],
            PAPER_QUOTED["psnr_db"],
        ]
    )
    return Table(
        "table1_quality",
        "Table 1 — decrypted vs original: SSIM, MSE, PSNR",
        ["group", "images", "scheme", "data range", "SSIM", "MSE (grey levels²)", "PSNR (dB)"],
        rows,
        "Each image is encrypted and decrypted once per scheme; SSIM (7×7 Gaussian window) and PSNR use the "
        "data range 2^b − 1 of the bits b the image's values need (at least 8; 4095 for 12-bit CT and MR), "
        "restored values clipped to it; MSE in grey levels²; means over the group's images (PSNR ∞ = "
        "bit-exact). The paper's MSE 2.62 and PSNR 25.32 dB cannot both hold on one 8-bit scale (MSE 2.62 is "
        "43.9 dB; 25.32 dB is MSE 191).",
    )


def key_difference_table(images: Sequence[ExperimentImage], seed: int, step: Callable[[str], None]) -> Table:
    """Paper Table 2: NPCR and UACI between ZZ-GAN keys of different seeds, per group."""
    rows = []
    for group, members in _groups(images).items():
        step(f"Table 2: {group}")
        image = members[0]
        keys = _gan_keys(image, [seed + 1, seed + 2])
        if keys is None:
            rows.append([group, image.bits, "n/a (PyTorch not installed)", "", "", "", ""])
            continue
        npcr = metrics.npcr(keys[0], keys[1], bits=image.bits)
        uaci = metrics.uaci(keys[0], keys[1], bits=image.bits)
        rows.append(
            [
                group,
                image.bits,
                "×".join(map(str, image.pixels.shape)),
                npcr.value,
                npcr.critical,
                uaci.value,
                f"[{uaci.lower:.4f}, {uaci.upper:.4f}]",
                "pass" if npcr.passed and uaci.passed else "fail",
            ]
        )
    rows.append(["paper", "8", "—", f"≥ {PAPER_QUOTED['key_npcr_at_least']} ({_QUOTED})", "", "", "", ""])
    return Table(
        "table2_key_npcr_uaci",
        "Table 2 — NPCR and UACI between keys A and B (ZZ-GAN, two seeds)",
        ["group", "bits", "key size", "NPCR %", "NPCR critical % (α = 0.05)", "UACI %", "UACI interval %", "verdict"],
        rows,
        "Keys A and B are the shipped generator's keys for the group's first image with seeds s+1 and s+2, "
        "at the image's bit depth. Critical values: Wu, Noonan and Agaian (2011) [2], α = 0.05, for the key's "
        "size and bit depth.",
    )


def entropy_table(
    images: Sequence[ExperimentImage], schemes: Sequence[str], seed: int, step: Callable[[str], None]
) -> tuple[Table, dict[str, dict[str, float]]]:
    """Paper Table 3: information entropy per organ and modality of keys, plain and cipher images."""
    rows: list[list[Any]] = []
    per_scheme: dict[str, dict[str, float]] = {name: {} for name in schemes}
    for group, members in _groups(images).items():
        step(f"Table 3: {group}")
        plain = _mean(metrics.shannon_entropy(m.pixels, bits=m.bits).value for m in members)
        keys = [_gan_keys(m, [seed + 1]) for m in members]
        key = _mean(
            metrics.shannon_entropy(k[0], bits=m.bits).value
            for k, m in zip(keys, members, strict=True)
            if k is not None
        )
        cipher_cells = []
        for name in schemes:
            values = []
            for image in members:
                scheme = _scheme(name, image, seed)
                cipher = scheme.cipher_image(scheme.encrypt(image.pixels))
                values.append(metrics.shannon_entropy(cipher, bits=image.bits).value)
            per_scheme[name][group] = _mean(values)
            cipher_cells.append(per_scheme[name][group])
        bits = sorted({m.bits for m in members})
        ideal = _mean(metrics.shannon_entropy(m.pixels, bits=m.bits).expected_random for m in members)
        rows.append([group, "/".join(map(str, bits)), plain, key, *cipher_cells, ideal])
    rows.append(["paper (keys)", "8", "", f"{PAPER_QUOTED['key_entropy']} ({_QUOTED})", *[""] * len(schemes), ""])
    return Table(
        "table3_entropy",
        "Table 3 — information entropy per organ and modality (bits)",
        ["group", "bits", "plain", "ZZ-GAN key", *[f"cipher: {n}" for n in schemes], "uniform random, expected"],
        rows,
        "Global Shannon entropy over 2^bits grey levels (8 for 8-bit words, 16 for 16-bit), means over the "
        "group; the last column is the expected entropy of as many uniform random words, computed exactly: "
        "below the maximum because a finite sample never fills every grey level (≈ bits − (2^bits − 1)/(2n ln 2) "
        "when n is large, Miller 1955 [3]).",
    ), per_scheme


def _differential_summary(cells: Sequence[tuple[float, bool, float, bool, float]]) -> list[Any]:
    """Mean NPCR, NPCR passes, mean UACI, UACI passes, mean entropy of ``(npcr, ok, uaci, ok, entropy)`` cells."""
    return [
        _mean(c[0] for c in cells),
        f"{sum(c[1] for c in cells)}/{len(cells)}",
        _mean(c[2] for c in cells),
        f"{sum(c[3] for c in cells)}/{len(cells)}",
        _mean(c[4] for c in cells),
    ]


def comparison_tables(
    images: Sequence[ExperimentImage], schemes: Sequence[str], seed: int, step: Callable[[str], None]
) -> tuple[Table, Table]:
    """Paper Tables 4 and 5: NPCR, UACI (one plain pixel changed) and entropy per scheme, and per dataset."""
    per_group_rows: list[list[Any]] = []
    totals: dict[str, list[tuple[float, bool, float, bool, float]]] = {name: [] for name in schemes}
    for group, members in _groups(images).items():
        for name in schemes:
            step(f"Tables 4-5: {group}, {name}")
            cells = []
            for image in members:
                scheme = _scheme(name, image, seed)
                ciphers: list[np.ndarray] = []

                def encrypt(plain: np.ndarray, scheme: Any = scheme, ciphers: list = ciphers) -> np.ndarray:
                    ciphers.append(scheme.cipher_image(scheme.encrypt(plain)))
                    return ciphers[-1]

                centre = (image.pixels.shape[0] // 2, image.pixels.shape[1] // 2)
                changed = metrics.plaintext_sensitivity(encrypt, image.pixels, position=centre, bits=image.bits)
                entropy = metrics.shannon_entropy(np.ascontiguousarray(ciphers[0]).view(np.uint8), bits=8)
                cells.append(
                    (changed.npcr.value, changed.npcr.passed, changed.uaci.value, changed.uaci.passed, entropy.value)
                )
            totals[name].extend(cells)
            per_group_rows.append([group, name, *_differential_summary(cells)])
    method_rows = [[name, *_differential_summary(cells)] for name, cells in totals.items()]
    for method, gain in PAPER_QUOTED["entropy_gain_percent"].items():
        method_rows.append([f"{method} ({_QUOTED})", "", "", "", "", f"ZZ-GAN entropy {gain} % higher (paper)"])
    note = (
        "Differential (chosen-plaintext) test: the image and a copy with its centre pixel one grey level up "
        "(wrapping at the top of the range, `deepkedi.metrics.plaintext_sensitivity`) are "
        "encrypted under the same key; NPCR and UACI of the two cipher images at the image's bit depth, "
        "'inside' counts images within the α = 0.05 critical values of Wu, Noonan and Agaian [2] for their size "
        "(a perfect cipher falls "
        "outside 5 % of the time per test). Entropy is that of the cipher image's bytes (maximum 8), so 8- and "
        "16-bit images compare."
    )
    return (
        Table(
            "table4_methods",
            "Table 4 — comparison of encryption methods (all images)",
            ["scheme", "NPCR %", "NPCR inside", "UACI %", "UACI inside", "cipher byte entropy (bits)"],
            method_rows,
            note,
        ),
        Table(
            "table5_datasets",
            "Table 5 — per dataset",
            ["group", "scheme", "NPCR %", "NPCR inside", "UACI %", "UACI inside", "cipher byte entropy (bits)"],
            per_group_rows,
            note,
        ),
    )


def timing_table(
    schemes: Sequence[str], seed: int, *, sizes: Sequence[int], repeats: int, step: Callable[[str], None]
) -> Table:
    """Paper Table 6 (timing): median encryption and decryption time per image, per scheme, size and depth."""
    from deepkedi.analysis.schemes import time_scheme
    from deepkedi.datasets import phantom

    rows = []
    for side in sizes:
        base = phantom("brain", "MR", seed=0, shape=(side, side)).pixels.astype(np.uint16)
        for bits, plain in ((8, (base >> 4).astype(np.uint8)), (16, base)):
            for name in schemes:
                step(f"Table 6: {name} {side}² {bits}-bit")
                image = ExperimentImage("timing", "timing", plain)
                enc, dec = time_scheme(_scheme(name, image, seed), plain, repeats=repeats)
                rows.append([name, f"{side}×{side}", bits, enc, dec])
    rows.append([f"ZZ-GAN, paper ({_QUOTED})", "—", "—", "", PAPER_QUOTED["decrypt_ms"]])
    rows.append([f"EDNN ({_QUOTED})", "—", "—", PAPER_QUOTED["ednn_encrypt_ms"], ""])
    rows.append([f"ResNet-50 ({_QUOTED})", "—", "—", "", PAPER_QUOTED["resnet50_decrypt_ms"]])
    rows.append([f"4D hyperchaotic ({_QUOTED})", "—", "—", PAPER_QUOTED["hyperchaotic_encrypt_ms"], ""])
    return Table(
        "table6_timing",
        "Table 6 — encryption and decryption time per image (ms)",
        ["scheme", "size", "bits", "encrypt ms", "decrypt ms"],
        rows,
        f"Median of {repeats} runs after one warm-up, one process, this machine's CPU; a brain MR phantom (8-bit: "
        "its top 12 bits shifted to 8). The paper suite's decryption includes DRT despeckling, which dominates "
        "its time; the paper reports 45 ms on an Intel i7 at 2.1 GHz without saying what it includes.",
    )


def attack_table(results: Sequence[Any]) -> Table:
    """The attack matrix as a table: one row per scheme and attack, with the evidence summary."""
    rows = [[r.scheme, r.attack, r.verdict, r.summary] for r in results]
    return Table(
        "table7_attacks",
        "Attack suite — scheme × attack",
        ["scheme", "attack", "verdict", "evidence"],
        rows,
        "See docs/REPRODUCTION.md for each attack's threat model and verdict rule.",
    )


# --------------------------------------------------------------------------- figures


def paper_figures(image: ExperimentImage, seed: int, step: Callable[[str], None]) -> list[Figure]:
    """Figs. 6-10 of the paper for one image, with the paper suite and ZZ-GAN keys A-D."""
    from deepkedi.analysis import figures
    from deepkedi.cipher.paper import paper_decrypt_pixels, paper_encrypt_pixels
    from deepkedi.keys import KeyImage
    from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL, add_speckle

    step("Figures 6-10")
    keys = _gan_keys(image, [seed + 1, seed + 2, seed + 3, seed + 4])
    if keys is None:
        rng = np.random.default_rng(seed)
        keys = [rng.integers(0, image.peak + 1, image.pixels.shape, dtype=image.pixels.dtype) for _ in range(4)]
    key_a = KeyImage(keys[0])
    plain = image.pixels
    speckled = np.clip(np.rint(add_speckle(plain, model=PAPER_MODEL, level=PAPER_LEVEL, rng=seed)), 0, image.peak)
    speckled = speckled.astype(plain.dtype)
    cipher = paper_encrypt_pixels(speckled, key_a, speckle=False)
    decrypted = paper_decrypt_pixels(cipher, key_a, pattern="horizontal", despeckle=False)
    despeckled = paper_decrypt_pixels(cipher, key_a, pattern="horizontal", despeckle=True)
    out = [
        Figure(
            "fig6_pipeline",
            "Fig. 6 — plain → speckled → encrypted → decrypted → despeckled",
            figures.pipeline_strip(
                [
                    ("plain", plain),
                    ("speckled", speckled),
                    ("encrypted (key A)", cipher),
                    ("decrypted", decrypted),
                    ("despeckled (DRT)", despeckled),
                ],
                title=f"paper suite on {image.name}",
                stretch=[True, True, False, True, True],
            ),
            "Speckle (uniform, variance 0.05), horizontal zigzag scan, XOR with ZZ-GAN key A; decryption "
            "XOR → inverse scan, then blind ripplet despeckling.",
        ),
        Figure(
            "fig7_keys",
            "Fig. 7 — four ZZ-GAN keys (A–D) for the same input",
            figures.image_grid(
                [("input", plain), *[(f"key {k}", key) for k, key in zip("ABCD", keys, strict=True)]],
                columns=5,
                title="ZZ-GAN keys from four seeds",
                stretch=[True, False, False, False, False],
            ),
            "Same generator and initial image, seeds s+1 … s+4.",
        ),
        Figure(
            "fig8_key_histograms",
            "Fig. 8 — histograms of the input and the keys",
            figures.images_with_histograms(
                [("input", plain), *[(f"key {k}", key) for k, key in zip("ABCD", keys, strict=True)]],
                bits=image.bits,
                title=f"grey-level histograms: {image.name} and ZZ-GAN keys A–D",
                stretch=[True, False, False, False, False],
            ),
            "Each histogram has 256 bins over the range its image's values use (named under its axis: the "
            "input's stored bits, the keys' full word). The input is shown windowed to its 1st–99th "
            "percentile; the keys over their full range.",
        ),
        Figure(
            "fig9_encrypt_decrypt",
            "Fig. 9 — encrypted and decrypted images with histograms",
            figures.images_with_histograms(
                [("speckled plain", speckled), ("encrypted", cipher), ("decrypted + despeckled", despeckled)],
                bits=image.bits,
                title=f"paper suite on {image.name} ({image.group})",
                stretch=[True, False, True],
            ),
            "Each histogram has 256 bins over the range its image's values use (named under its axis). "
            "Encryption spreads the plain image's grey levels evenly over the whole word; decryption and "
            "despeckling bring its histogram back, smoothed.",
        ),
    ]
    attempts = [("noisy image", speckled), ("encrypted with key A", cipher)]
    for label, key in zip("ABCD", keys, strict=True):
        attempts.append(
            (
                f"decrypted with key {label}",
                paper_decrypt_pixels(cipher, KeyImage(key), pattern="horizontal", despeckle=False),
            )
        )
    out.append(
        Figure(
            "fig10_wrong_keys",
            "Fig. 10 — decryption with keys A–D",
            figures.image_grid(
                attempts, columns=6, title="only key A decrypts", stretch=[True, False, True, False, False, False]
            ),
            "As the paper's attack-model figure: the cipher image under key A decrypted with keys A, B, "
            "C and D (no despeckling). Key A restores the noisy image; B–D give noise.",
        )
    )
    return out


# --------------------------------------------------------------------------- driver


def plan(images: Sequence[ExperimentImage], schemes: Sequence[str], *, timing_sizes: Sequence[int]) -> int:
    """Number of progress steps :func:`reproduce` will report."""
    groups = len(_groups(images))
    return groups * len(schemes) * 2 + groups * 2 + 1 + len(timing_sizes) * 2 * len(schemes) + len(schemes) * 6 + 1


def reproduce(
    images: Sequence[ExperimentImage],
    *,
    quick: bool = False,
    seed: int = 0,
    skipped: Sequence[str] = (),
    step: Callable[[str], None] | None = None,
) -> Reproduction:
    """Run every experiment and the attack suite.

    Parameters
    ----------
    images
        From :func:`bundled_images` or :func:`folder_images`.
    quick
        Timing at 256² only with 3 repeats, attacks on 96² images.
    seed
        Key seed of every scheme (keys B, C, D use ``seed + 1 …``).
    step
        Called with a description before each unit of work (a progress bar's advance).
    """
    from deepkedi._version import __version__
    from deepkedi.analysis import figures
    from deepkedi.analysis.attacks import attack_matrix
    from deepkedi.analysis.schemes import SCHEME_NAMES, make_scheme
    from deepkedi.datasets import phantom

    if not images:
        raise ValueError("no images to run the experiments on")
    step = step or (lambda _description: None)
    schemes = list(SCHEME_NAMES)
    started = time.perf_counter()
    result = Reproduction(images=list(images), skipped=list(skipped))
    result.tables.append(quality_table(images, schemes, seed, step))
    result.tables.append(key_difference_table(images, seed, step))
    table3, entropies = entropy_table(images, schemes, seed, step)
    result.tables.append(table3)
    result.tables.extend(comparison_tables(images, schemes, seed, step))
    sizes = (256,) if quick else (256, 512)
    result.tables.append(timing_table(schemes, seed, sizes=sizes, repeats=3 if quick else 7, step=step))

    side = 96 if quick else 256
    first = phantom("brain", "MR", seed=0, shape=(side, side)).pixels.astype(np.uint16)
    second = phantom("lung", "CT", seed=0, shape=(side, side)).pixels
    second = (second.astype(np.int64) - int(second.min())).astype(np.uint16)
    attack_schemes = [make_scheme(name, seed=seed, shape=(side, side), bits=16) for name in schemes]
    result.attacks = attack_matrix(
        attack_schemes, first, second, seed=seed, on_result=lambda r: step(f"attacks: {r.scheme}, {r.attack}")
    )
    result.tables.append(attack_table(result.attacks))

    reference = next((i for i in images if i.group.startswith("brain")), images[0])
    result.figures.extend(paper_figures(reference, seed, step))
    attack_names = list(dict.fromkeys(r.attack for r in result.attacks))
    result.figures.append(
        Figure(
            "attack_matrix",
            "Attack matrix",
            figures.attack_matrix_figure(
                schemes,
                attack_names,
                {(r.scheme, r.attack): r.verdict for r in result.attacks},
                title="which attacks each scheme survives",
            ),
            "Green: resisted; red: broken (by the runs in this report).",
        )
    )
    leaks = [
        (f"{r.scheme} ({r.verdict})", r.images["c1 xor c2"])
        for r in result.attacks
        if r.attack == "key-reuse" and "c1 xor c2" in r.images
    ]
    if leaks:
        result.figures.append(
            Figure(
                "key_reuse",
                "Key reuse — XOR of two cipher images under one key",
                figures.image_grid(
                    leaks,
                    columns=min(len(leaks), 6),
                    title="c1 ⊕ c2: brain MR and lung CT phantoms encrypted under one key (key-reuse verdict)",
                    stretch=True,
                ),
                "Each panel is the XOR of one scheme's cipher images of two phantoms under one key, with that "
                "scheme's key-reuse verdict. Where the key cancels, the two images show through; `hybrid` draws "
                "a fresh key per file. The structure left by `logistic-map` and `arnold-cat-xor` comes from their "
                "permutations and did not reveal the images to the generic attack.",
            )
        )
    groups = list(entropies[schemes[0]])
    expected = {row[0]: row[-1] for row in table3.rows if row[0] in entropies[schemes[0]]}
    result.figures.append(
        Figure(
            "entropy_by_group",
            "Cipher-image entropy per organ and modality",
            figures.bar_chart(
                groups,
                {n: [entropies[n][g] for g in groups] for n in schemes},
                ylabel="entropy (bits per pixel)",
                title="cipher images, global entropy (Table 3)",
                reference=[expected[g] for g in groups],
                reference_label="expected of uniform random words",
            ),
            "Global entropy of each scheme's cipher images per group, over 2^bits grey levels, beside the "
            "entropy expected of as many uniform random words (dashed). Every scheme reaches it, the broken "
            "ones too: entropy is not evidence of security [4].",
        )
    )

    step("done")
    result.meta = {
        "package_version": __version__,
        "quick": quick,
        "seed": seed,
        "images": len(images),
        "groups": sorted(_groups(images)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result
