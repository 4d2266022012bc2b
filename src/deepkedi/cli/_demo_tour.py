"""The tour `kedi demo` runs (cli/demo.py): kept apart so that `kedi` starts without its imports."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.markup import escape
from rich.table import Table

from deepkedi import api
from deepkedi.cli._common import EXIT_USAGE, console, fail, guarded, printable
from deepkedi.datasets import phantom, sample_corpus
from deepkedi.errors import AuthenticationError, DeepKediError, OutputExistsError
from deepkedi.fileio import make_output_folder
from deepkedi.imaging import read_image, write_image
from deepkedi.imaging.montage import display_plane, montage
from deepkedi.inputs import file_sha256
from deepkedi.keys import Key, generate_key, save_key
from deepkedi.transforms.zigzag import ZigzagPattern

#: The keystream check: a SP 800-22 test rejects when its Bonferroni-adjusted P-value is
#: below this; the demo fails when more tests than tolerated reject.
NIST_FAMILYWISE_ALPHA = 0.001
NIST_REJECTIONS_TOLERATED = 3


def _shown(path: Path) -> str:
    """A path inside rich markup: control characters and markup escaped (``--out`` is the user's)."""
    return escape(printable(path))


def _demo_inputs(out: Path) -> list[tuple[str, str, Path]]:
    """(name, label, path) of every sample file, plus a CT phantom written as DICOM."""
    inputs = [
        (s.name, f"{s.organ}, {s.modality}" + ("" if s.content == "anatomy" else f" ({s.content})"), s.path)
        for s in sample_corpus()
    ]
    ct = phantom("lung", "CT", seed=7)
    path = out / "inputs" / "phantom-lung-ct.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(ct, path)
    inputs.append(("phantom-lung-ct.dcm", "lung, CT (synthetic)", path))
    return inputs


def _caption(name: str, label: str) -> str:
    """A sample's tile caption: its file name, then the package it comes from and what it shows."""
    source, _, file = name.partition("-")
    if source in ("pydicom", "nibabel", "skimage") and file:  # the prefixes sample_corpus() gives
        return f"{file}\n{source}: {label}"
    return f"{name}\n{label}"


def cipher_montage(panels: list[tuple[str, np.ndarray]]) -> Image.Image:
    """The demo's ``cipher_images.png``: every sample beside its cipher image, three pairs a row."""
    return montage(
        panels,
        tile=192,
        columns=6,
        group=2,
        font_size=13,
        title=f"all {len(panels) // 2} samples, each beside its hybrid cipher image (AES-256-GCM, horizontal zigzag)",
    )


def _metrics_tour(out: Path, key: Key) -> int:
    """The paper's measures on a cipher image and on key material; returns failed checks."""
    from deepkedi import metrics
    from deepkedi.metrics import nist

    plain = phantom("lung", "CT", seed=7).pixels
    cipher = api.cipher_image(api.encrypt_image(plain, key))
    table = Table(title="lung CT phantom (512×512, 16-bit words): plain image and its cipher image, α = 0.05")
    for column in ("measure", "plain", "cipher", "reference"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    shifted = plain.astype(np.int32) - int(plain.min())  # HU to non-negative grey levels
    plain_u16 = shifted.astype(np.uint16)
    ent_p, ent_c = metrics.shannon_entropy(plain_u16, bits=16), metrics.shannon_entropy(cipher, bits=16)
    table.add_row(
        "entropy, 16-bit bins", f"{ent_p.value:.4f}", f"{ent_c.value:.4f}", f"random ≈ {ent_c.expected_random:.4f}"
    )
    table.add_row("entropy per byte", f"{ent_p.per_byte:.4f}", f"{ent_c.per_byte:.4f}", "max 8")
    chi_c = metrics.histogram_chi_square(cipher, bits=16)
    table.add_row(
        "histogram χ² (16-bit)",
        f"{metrics.histogram_chi_square(plain_u16, bits=16).value:.3g}",
        f"{chi_c.value:.1f}",
        f"< {chi_c.critical:.1f}",
    )
    for direction in metrics.DIRECTIONS:
        p = metrics.adjacent_correlation(plain_u16, direction=direction).coefficient
        c = metrics.adjacent_correlation(cipher, direction=direction).coefficient
        table.add_row(f"adjacent correlation, {direction}", f"{p:.4f}", f"{c:.4f}", "≈ 0")
    # Plaintext sensitivity as hybrid is used: every encryption draws a fresh salt.
    changed = plain.copy()
    changed[256, 256] += 1
    other = api.cipher_image(api.encrypt_image(changed, key))
    npcr, uaci = metrics.npcr(cipher, other, bits=16), metrics.uaci(cipher, other, bits=16)
    table.add_row("NPCR %, one plain pixel changed", "", f"{npcr.value:.4f}", f"≥ {npcr.critical:.4f}")
    table.add_row("UACI %, one plain pixel changed", "", f"{uaci.value:.4f}", f"[{uaci.lower:.4f}, {uaci.upper:.4f}]")
    console.print(table)
    # These tests reject a perfect cipher α of the time: reported, never a demo failure.
    verdicts = {"χ²": chi_c.passed, "NPCR": npcr.passed, "UACI": uaci.passed}
    console.print(
        "cipher image at α = 0.05: " + ", ".join(f"{k} {'pass' if v else 'fail'}" for k, v in verdicts.items()),
        markup=False,
    )

    # Key material: the AES-GCM keystream of one container (the cipher image of zeros), 10⁶ bits.
    stream = api.cipher_image(api.encrypt_image(np.zeros((500, 250), np.uint8), key)).tobytes()
    bits = nist.bits_from_bytes(stream)
    results = nist.run_all(bits)
    p_values = [p for r in results.values() for p in r.p_values]
    below = sum(p < 0.01 for p in p_values)
    skipped = [name for name, r in results.items() if not r.applicable]
    ran = [r for r in results.values() if r.applicable]
    rejected = [r.name for r in ran if r.familywise_p_value < NIST_FAMILYWISE_ALPHA]
    console.print(
        f"NIST SP 800-22 on 10⁶ keystream bits: {len(ran)} tests, {len(p_values)} P-values, "
        f"{below} below α = 0.01 (a perfect generator gives about {0.01 * len(p_values):.1f}); "
        f"tests rejecting at family-wise α = {NIST_FAMILYWISE_ALPHA}: {', '.join(rejected) or 'none'}"
        + (f"; not applicable to this sequence: {', '.join(skipped)}" if skipped else ""),
        markup=False,
    )
    (out / "metrics.txt").write_text(
        "\n".join(f"{name}: {list(r.p_values)}" for name, r in results.items()) + "\n", encoding="utf-8"
    )
    # The P-values of one sequence are not independent (148 templates share their blocks,
    # the excursion states share their cycles), so a count of small P-values strays far
    # more than a binomial would. Each test is judged as a whole (Bonferroni over its
    # P-values); a random keystream has each rejected with probability ≤ 0.001. Even
    # with tests that reject together (frequency and cumulative sums, the two excursion
    # tests), four rejections take two such coincidences: about once in 10⁶ demos. A
    # broken keystream (a repeated block, a counter) is rejected by a dozen tests.
    return int(len(rejected) > NIST_REJECTIONS_TOLERATED)


def _to_u8(unit: np.ndarray) -> np.ndarray:
    """A [0, 1] image as 8-bit grey, unstretched so that noise and its removal compare fairly."""
    return np.rint(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def _speckle_tour(out: Path) -> int:
    """Speckle, the paper's blind DRT removal, and keyed speckle removed exactly; returns failed checks."""
    from deepkedi.analysis.despeckle import lee_filter, normalise_unit, wavelet_bayes
    from deepkedi.analysis.reversible_speckle import ReversibleSpeckle
    from deepkedi.metrics import psnr, ssim
    from deepkedi.transforms.ripplet_despeckle import despeckle_ripplet
    from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL, add_speckle

    image = phantom("brain", "MR", seed=7)
    clean = normalise_unit(image.pixels)
    noisy = np.clip(add_speckle(clean, model=PAPER_MODEL, level=PAPER_LEVEL, rng=np.random.default_rng(7)), 0, 1)
    table = Table(
        title=f"speckle on a brain MR phantom ({'×'.join(map(str, clean.shape))}): {PAPER_MODEL}, variance "
        f"{PAPER_LEVEL}, as the paper adds it"
    )
    for column in ("image", "PSNR dB", "SSIM", "ms"):
        table.add_column(column, justify="left" if column == "image" else "right")
    table.add_row(
        "speckled", f"{psnr(clean, noisy, data_range=1.0):.2f}", f"{ssim(clean, noisy, data_range=1.0):.3f}", ""
    )
    estimates = {}
    for name, method in (
        ("Lee filter 7×7", lee_filter),
        ("wavelet BayesShrink (scikit-image)", wavelet_bayes),
        ("ripplet (DRT c=1 d=2), the paper's removal", despeckle_ripplet),
    ):
        t0 = time.perf_counter()
        estimate = np.clip(method(noisy), 0, 1)
        ms = 1e3 * (time.perf_counter() - t0)
        estimates[name] = estimate
        table.add_row(
            name,
            f"{psnr(clean, estimate, data_range=1.0):.2f}",
            f"{ssim(clean, estimate, data_range=1.0):.3f}",
            f"{ms:.0f}",
        )
    table.add_row("paper's reported DRT removal (its own data)", "25.32", "0.618", "")

    # Keyed speckle on the stored integers: the key holder divides the same field out, bit for bit.
    speckle = ReversibleSpeckle(os.urandom(32), model=PAPER_MODEL, level=PAPER_LEVEL)
    tweak = speckle.new_tweak()
    t0 = time.perf_counter()
    keyed = speckle.apply(image.pixels, tweak=tweak)
    restored = speckle.remove(keyed, image.pixels.dtype, tweak=tweak)
    ms = 1e3 * (time.perf_counter() - t0)
    exact = bool(np.array_equal(restored, image.pixels))
    table.add_row(
        "keyed speckle removed with the key",
        "∞" if exact else f"{psnr(image.pixels, restored):.2f}",
        "1.000" if exact else f"{ssim(image.pixels, restored):.3f}",
        f"{ms:.0f}",
    )
    console.print(table)
    console.print(
        f"keyed speckle ({keyed.dtype} carrier): restored {image.pixels.dtype} array "
        + ("identical to the original" if exact else "DIFFERS from the original"),
        markup=False,
    )
    drt = estimates["ripplet (DRT c=1 d=2), the paper's removal"]
    scale = float(image.pixels.max())
    figure = out / "speckle.png"
    montage(
        [
            ("clean\nthe reference", _to_u8(clean)),
            (f"speckled\nPSNR {psnr(clean, noisy, data_range=1.0):.1f} dB", _to_u8(noisy)),
            (f"DRT despeckled (blind)\nPSNR {psnr(clean, drt, data_range=1.0):.1f} dB", _to_u8(drt)),
            ("keyed speckle\ndrawn from a key", _to_u8(keyed / scale)),
            ("removed with the key\n" + ("bit-exact" if exact else "NOT exact"), _to_u8(restored / scale)),
        ],
        tile=256,
        columns=5,
        title=f"brain MR phantom: {PAPER_MODEL} speckle of variance {PAPER_LEVEL} (the paper's setting), "
        "removed blindly and with the key",
    ).save(figure)
    console.print(f"speckle, blind removal and exact removal side by side: {_shown(figure)}\n")
    return int(not exact)


def _paper_tour(out: Path) -> int:
    """A ZZ-GAN key image and the paper suite (with its warning); returns failed checks."""
    from deepkedi import metrics
    from deepkedi.cipher.paper import PAPER_WARNING, paper_decrypt_pixels, paper_encrypt_pixels
    from deepkedi.cli._common import err_console
    from deepkedi.keygen import torch_available
    from deepkedi.keys import KeyImage, save_key_image

    if not torch_available():
        console.print(
            "ZZ-GAN and paper suite skipped: PyTorch is not installed (pip install 'deepkedi[gan]')\n", markup=False
        )
        return 0
    from deepkedi.keygen.generate import generate_key_image

    err_console.print(f"warning: {PAPER_WARNING}", markup=False)
    image = phantom("brain", "MR", seed=7)
    plain = image.pixels
    t0 = time.perf_counter()
    generated = generate_key_image(image)
    key_ms = 1e3 * (time.perf_counter() - t0)
    key = KeyImage(generated.pixels, seed=generated.seed, model_sha256=generated.model_sha256)
    save_key_image(key, out / "paper-key.png")
    entropy = metrics.shannon_entropy(key.pixels, bits=16)
    correlation = max(abs(r.coefficient) for r in metrics.adjacent_correlations(key.pixels).values())
    console.print(
        f"ZZ-GAN key image for a {plain.shape[0]}×{plain.shape[1]} {plain.dtype} brain MR phantom in {key_ms:.0f} ms "
        f"(model {generated.model_sha256[:12]}…): entropy {entropy.value:.4f} of 16 bits (random ≈ "
        f"{entropy.expected_random:.4f}), max |adjacent correlation| {correlation:.4f}; written to "
        f"{printable(out / 'paper-key.png')}",
        markup=False,
    )
    table = Table(title="paper suite: speckle → zigzag → XOR with the key image; decrypt → DRT despeckling")
    for column in ("pattern", "cipher entropy /16", "decrypt ms (no despeckling)", "restored PSNR dB", "SSIM"):
        table.add_column(column, justify="left" if column == "pattern" else "right")
    span = float(plain.max()) - float(plain.min())
    panels = [
        ("plain\nbrain MR phantom", display_plane(plain)),
        ("ZZ-GAN key\n16-bit key image", display_plane(key.pixels)),
    ]
    failures = 0
    restored = plain
    for pattern in ZigzagPattern:
        cipher = paper_encrypt_pixels(plain, key, pattern=pattern, rng=7)
        t0 = time.perf_counter()
        paper_decrypt_pixels(cipher, key, pattern=pattern, despeckle=False)
        ms = 1e3 * (time.perf_counter() - t0)
        restored = paper_decrypt_pixels(cipher, key, pattern=pattern)
        clipped = np.clip(restored.astype(np.float64), float(plain.min()), float(plain.max()))
        psnr, ssim = metrics.psnr(plain, clipped, data_range=span), metrics.ssim(plain, clipped, data_range=span)
        failures += not (psnr > 25.32 and ssim > 0.618)
        table.add_row(
            pattern.value,
            f"{metrics.shannon_entropy(cipher, bits=16).value:.4f}",
            f"{ms:.2f}",
            f"{psnr:.2f}",
            f"{ssim:.3f}",
        )
        panels.append((f"cipher image\n{pattern.value} zigzag", display_plane(cipher)))
    table.add_row("paper's reported figures", "", "45", "25.32", "0.618")
    console.print(table)
    panels.append(
        (f"restored, despeckled\nPSNR {psnr:.1f} dB ({ZigzagPattern.DIAGONAL.value})", display_plane(restored))
    )
    figure = out / "paper_suite.png"
    montage(
        panels, tile=192, columns=6, title="paper suite (research only, not secure): one key image XORed in three scans"
    ).save(figure)
    console.print(
        f"plain image, ZZ-GAN key, the three cipher images and the despeckled restoration: {_shown(figure)}\n"
    )
    return failures


def _dicom_native_tour(out: Path, key: Key) -> int:
    """A DICOM-native round trip on a real CT: valid DICOM out, identity gone, original back; failed checks."""
    from deepkedi.api import deidentification_summary

    source = next(s.path for s in sample_corpus() if s.name == "pydicom-CT_small.dcm")
    encrypted, restored = out / "dicom-native" / "CT_small.enc.dcm", out / "dicom-native" / "CT_small.dcm"
    encrypted.parent.mkdir(parents=True, exist_ok=True)
    api.encrypt_file(source, encrypted, key, as_dicom=True)
    api.decrypt_file(encrypted, restored, key)
    summary = deidentification_summary(source, encrypted)
    in_clear = summary.left_in_clear
    exact = file_sha256(restored) == file_sha256(source)
    console.print(
        f"DICOM-native: {encrypted} is {summary.sop_class} with Patient Identity Removed = "
        f"{summary.identity_removed}, Patient ID → pseudonym {summary.patient_id}, "
        f"{len(in_clear)} identifying values left in clear, pixels = cipher image; restored file byte-identical: "
        f"{exact}\n",
        markup=False,
    )
    return int(bool(in_clear)) + int(not exact)


def _keystore_tour(out: Path) -> int:
    """Keystore: a key, an image under it, a rotation, decryption after it, a revocation; failed checks."""
    import getpass

    from deepkedi.keys.keystore import Keystore, PassphraseKek

    actor = f"{getpass.getuser()} (kedi demo)"
    url = f"sqlite:///{out / 'keystore.db'}"
    first, second = PassphraseKek("demo passphrase one"), PassphraseKek("demo passphrase two")
    source = next(s.path for s in sample_corpus() if s.name == "pydicom-MR_small.dcm")
    container, restored = out / "keystore-MR_small.kedi", out / "keystore-MR_small.dcm"
    with Keystore.init(url, kek_source=first, actor=actor) as store:
        key = store.new_key(label="demo study", actor=actor)
        api.encrypt_file(source, container, key)
        t0 = time.perf_counter()
        store.rotate(second, actor=actor)
        rotate_ms = 1e3 * (time.perf_counter() - t0)
    with Keystore.open(url, kek_source=second) as store:
        api.decrypt_file(container, restored, store.get_key(key.key_id_hex, actor=actor))
        exact = file_sha256(restored) == file_sha256(source)
        store.revoke(key.key_id_hex, actor=actor)
        try:
            store.get_key(key.key_id_hex, actor=actor)
            refused = False
        except DeepKediError:
            refused = True
        chain_ok, _ = store.verify_audit()
    console.print(
        f"keystore {url}: key {key.key_id_hex} wrapped under a passphrase KEK; rotated to a new passphrase in "
        f"{rotate_ms:.0f} ms (images untouched); decrypted after rotation byte-identical: {exact}; revoked, "
        f"then refused: {refused}; audit chain verifies: {chain_ok}\n",
        markup=False,
    )
    return int(not exact) + int(not refused) + int(not chain_ok)


def run(out: Path, force: bool) -> None:
    """The tour behind `kedi demo` (cli/demo.py)."""
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"{out} is not empty; use --force to replace its contents", EXIT_USAGE)
        shutil.rmtree(out)
    make_output_folder(out)
    key = generate_key()
    save_key(key, out / "demo.key")
    sources = " + ".join(key.provenance.get("sources", []))
    console.print(
        f"[bold]deepkedi demo[/] — key {key.key_id_hex} written to {_shown(out / 'demo.key')} (mode 0600); "
        f"secret from {sources}\n"
    )

    with guarded():
        inputs = _demo_inputs(out)
    table = Table(title="hybrid suite: AES-256-GCM, restored files compared by SHA-256")
    for column in (
        "sample",
        "organ, modality",
        "format",
        "shape",
        "KiB",
        "encrypt ms V/H/D",
        "decrypt ms V/H/D",
        "exact",
    ):
        table.add_column(column, justify="right" if column in ("KiB",) or "ms" in column else "left")
    failures = 0
    panels: list[tuple[str, np.ndarray]] = []
    for name, label, path in inputs:
        image = read_image(path)
        original = file_sha256(path)
        enc_ms, dec_ms, exact = [], [], 0
        for pattern in ZigzagPattern:
            container = out / "containers" / f"{name}.{pattern.value}.kedi"
            restored = out / "restored" / pattern.value / name
            container.parent.mkdir(parents=True, exist_ok=True)
            restored.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            api.encrypt_file(path, container, key, pattern=pattern)
            t1 = time.perf_counter()
            api.decrypt_file(container, restored, key)
            t2 = time.perf_counter()
            exact += file_sha256(restored) == original
            enc_ms.append(f"{1e3 * (t1 - t0):.0f}")
            dec_ms.append(f"{1e3 * (t2 - t1):.0f}")
            if pattern is ZigzagPattern.HORIZONTAL:
                panels.append((_caption(name, label), display_plane(image.pixels, channels_last=image.channels_last)))
                panels.append(
                    (
                        "cipher image\nhorizontal zigzag",
                        display_plane(api.cipher_image(container), channels_last=image.channels_last),
                    )
                )
        failures += len(ZigzagPattern) - exact
        table.add_row(
            name,
            label,
            image.format,
            "×".join(map(str, image.pixels.shape)),
            f"{path.stat().st_size / 1024:,.0f}",
            "/".join(enc_ms),
            "/".join(dec_ms),
            f"[green]{exact}/3[/]" if exact == len(ZigzagPattern) else f"[red]{exact}/3[/]",
        )
    console.print(table)

    figure = out / "cipher_images.png"
    cipher_montage(panels).save(figure)
    console.print(
        f"\nall {len(inputs)} samples beside their cipher images (middle plane of volumes, first frame of series): "
        f"{_shown(figure)}"
    )

    failures += _dicom_native_tour(out, key)
    failures += _keystore_tour(out)
    failures += _speckle_tour(out)
    failures += _paper_tour(out)
    failures += _metrics_tour(out, key)

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
            api.decrypt_file(container, target, attempt_key)
            console.print(f"[red]{what}: decrypted — this must never happen[/]")
            failures += 1
        except AuthenticationError as exc:
            console.print(f"{what}: refused — {printable(exc)}; output written: {target.exists()}", markup=False)
            failures += target.exists()
        except OutputExistsError:
            failures += 1
    if failures:
        fail(f"{failures} demo checks failed", 1)
    console.print("\n[bold green]all restorations byte-identical; tampering and wrong keys refused[/]")
    needs = "" if importlib.util.find_spec("matplotlib") else " (it needs matplotlib: pip install 'deepkedi[report]')"
    console.print(
        "next: `kedi reproduce --quick --out report` re-runs the paper's tables and figures for every scheme, with "
        f"the attack matrix (report.html, results.json){needs}",
        markup=False,
    )
