"""ZZ-GAN keys measured as the paper measures them, over 100 keys; key material through SP 800-22; speed.

Writes ``docs/zzgan_keys.md`` (``--out``) and prints it. Parts:

1. 100 raw 8-bit key images at 256², seeds 0..99, initial images cycling through
   the seven phantom kinds: global entropy, histogram χ² (α = 0.05), adjacent
   correlations, NPCR/UACI between the keys of seeds 2i and 2i + 1 (Wu's α = 0.05
   intervals), pixels changed by flipping the seed's lowest bit.
2. SP 800-22, two-level (§4.2), over 100 sequences of 10⁶ bits each of
   (a) hybrid key material: a fresh hybrid master key (ZZ-GAN + OS CSPRNG → HKDF),
       expanded with HKDF-SHA256 (Expand under info ``... | block i``) to 10⁶ bits;
   (b) raw ZZ-GAN keys: the first 10⁶ bits of a 512² 8-bit key (seed 1000 + i).
3. Speed: one 512² key (generator and latent map), the paper suite's decryption of
   a 512² 16-bit image without despeckling, against a NumPy XOR of the same
   arrays measured in the same run.

Run: ``.venv/bin/python bench/bench_zzgan.py [--keys 100] [--sequences 100] [--out docs/zzgan_keys.md]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from deepkedi import metrics
from deepkedi.cipher.paper import paper_decrypt_pixels, paper_encrypt_pixels
from deepkedi.datasets import PHANTOM_KINDS, phantom
from deepkedi.keygen.generate import generate_key_image, latent_noise, load_generator
from deepkedi.keys import KeyImage, generate_key
from deepkedi.metrics import nist
from deepkedi.metrics.nist.two_level import p_values_by_test, two_level_analysis

_BITS = 1_000_000


def _key_table(keys: int, generator) -> tuple[list[str], dict[str, float]]:  # type: ignore[no-untyped-def]
    images = [phantom(organ, modality, seed=0, shape=(256, 256)).pixels for organ, modality in PHANTOM_KINDS]
    words = [generate_key_image(images[i % len(images)], seed=i, bits=8, generator=generator).pixels
             for i in range(keys)]
    flips = [generate_key_image(images[i % len(images)], seed=i ^ 1, bits=8, generator=generator).pixels
             for i in range(keys)]
    entropy = [metrics.shannon_entropy(k, bits=8) for k in words]
    chi = [metrics.histogram_chi_square(k, bits=8) for k in words]
    corr = {d: [abs(metrics.adjacent_correlation(k, direction=d).coefficient) for k in words]
            for d in metrics.DIRECTIONS}
    pairs = [(words[i], words[i + 1]) for i in range(0, keys - 1, 2)]
    npcr = [metrics.npcr(a, b, bits=8) for a, b in pairs]
    uaci = [metrics.uaci(a, b, bits=8) for a, b in pairs]
    changed = [float(np.mean(a != b)) for a, b in zip(words, flips)]
    n = len(words)
    rows = [
        "| measure | result over the keys | bar | paper |",
        "|---|---|---|---|",
        f"| global entropy (bits), mean [min, max] | {np.mean([e.value for e in entropy]):.4f} "
        f"[{min(e.value for e in entropy):.4f}, {max(e.value for e in entropy):.4f}] | ≥ 7.99 "
        f"(random ≈ {entropy[0].expected_random:.4f}) | 7.45 |",
        f"| histogram χ² below its α = 0.05 critical value ({chi[0].critical:.2f}) | "
        f"{sum(c.passed for c in chi)}/{n} (mean χ² {np.mean([c.value for c in chi]):.1f}) | most keys | — |",
    ]
    for direction, values in corr.items():
        rows.append(f"| \\|adjacent correlation\\|, {direction}: mean, max | {np.mean(values):.4f}, "
                    f"{max(values):.4f} | < 0.02 in all | — |")
    rows += [
        f"| NPCR % between keys of different seeds ({len(npcr)} pairs): mean; inside α = 0.05 | "
        f"{np.mean([r.value for r in npcr]):.4f}; {sum(r.passed for r in npcr)}/{len(npcr)} | "
        f"≥ {npcr[0].critical:.4f} | — |",
        f"| UACI % between keys of different seeds: mean; inside α = 0.05 | "
        f"{np.mean([r.value for r in uaci]):.4f}; {sum(r.passed for r in uaci)}/{len(uaci)} | "
        f"[{uaci[0].lower:.4f}, {uaci[0].upper:.4f}] | — |",
        f"| pixels changed by flipping the seed's lowest bit: mean, min | {100 * np.mean(changed):.3f} %, "
        f"{100 * min(changed):.3f} % | ≥ 99.5 % | — |",
    ]
    summary = {
        "entropy_mean": float(np.mean([e.value for e in entropy])),
        "chi_pass": sum(c.passed for c in chi) / n,
        "corr_max": max(max(v) for v in corr.values()),
        "npcr_inside": sum(r.passed for r in npcr) / len(npcr),
        "uaci_inside": sum(r.passed for r in uaci) / len(uaci),
        "changed_min": min(changed),
    }
    return rows, summary


def _hkdf_stream(secret: bytes, n_bytes: int) -> bytes:
    """HKDF-SHA256 of a master secret expanded past HKDF's 8160-byte limit by numbered blocks."""
    prk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"deepkedi/v1 nist prk").derive(secret)
    chunks, i = [], 0
    while sum(map(len, chunks)) < n_bytes:
        info = b"deepkedi/v1 nist stream | block " + i.to_bytes(4, "big")
        chunks.append(HKDFExpand(algorithm=hashes.SHA256(), length=255 * 32, info=info).derive(prk))
        i += 1
    return b"".join(chunks)[:n_bytes]


def _nist_table(label: str, sequences: list[bytes]) -> tuple[list[str], int, int]:
    results = []
    for data in sequences:
        results.extend(nist.run_all(nist.bits_from_bytes(data, n_bits=_BITS)).values())
    records = two_level_analysis(p_values_by_test(results))
    by_test: dict[str, list] = {}
    for record in records:
        by_test.setdefault(record.name.split("[")[0], []).append(record)
    rows = [f"**{label}** ({len(sequences)} sequences of 10⁶ bits)", "",
            "| test | P-values | proportion passing (min) | range | uniformity P-value_T (min) | verdict |",
            "|---|---:|---:|---|---:|---|"]
    passed_tests = 0
    for name, recs in by_test.items():
        proportion = min(r.proportion.proportion for r in recs)
        lower, upper = recs[0].proportion.lower, recs[0].proportion.upper
        uniform = [r.uniformity.p_value for r in recs if r.uniformity.p_value is not None]
        ok = all(r.passed for r in recs)
        passed_tests += ok
        sequences_seen = recs[0].proportion.n_sequences
        rows.append(f"| {name} | {len(recs)} × {sequences_seen} | {proportion:.4f} | [{lower:.4f}, {upper:.4f}] | "
                    f"{min(uniform):.4g} | {'pass' if ok else '**fail**'} |" if uniform else
                    f"| {name} | {len(recs)} × {sequences_seen} | {proportion:.4f} | [{lower:.4f}, {upper:.4f}] | "
                    f"n/a | {'pass' if ok else '**fail**'} |")
    return rows, passed_tests, len(by_test)


def _median_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _speed(generator, repeats: int) -> list[str]:  # type: ignore[no-untyped-def]
    image = phantom("brain", "MR", seed=0, shape=(512, 512)).pixels
    key_ms = _median_ms(lambda: generate_key_image(image, seed=5, generator=generator), repeats)
    latent_ms = _median_ms(lambda: latent_noise(5, (16, 512, 512)), repeats)
    key = KeyImage(generate_key_image(image, seed=5, bits=16, generator=generator).pixels)
    cipher = paper_encrypt_pixels(image, key, speckle=False)
    decrypt_ms = _median_ms(lambda: paper_decrypt_pixels(cipher, key, pattern="horizontal", despeckle=False), repeats)
    xor_ms = _median_ms(lambda: np.bitwise_xor(cipher, key.pixels), repeats)
    return [
        "| operation (512 × 512) | median | budget | reference in the same run |",
        "|---|---:|---:|---|",
        f"| ZZ-GAN key image, 16-bit (latent map + generator) | {key_ms:.1f} ms | < 100 ms | "
        f"latent map alone {latent_ms:.1f} ms |",
        f"| paper suite decryption without despeckling (XOR + inverse zigzag), uint16 | {decrypt_ms:.2f} ms | "
        f"< 5 ms (paper: 45 ms) | NumPy XOR alone {xor_ms:.2f} ms (ratio {decrypt_ms / xor_ms:.1f}×) |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--sequences", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "zzgan_keys.md")
    args = parser.parse_args()
    started = time.perf_counter()
    generator = load_generator()
    key_rows, _ = _key_table(args.keys, generator)
    speed_rows = _speed(generator, args.repeats)
    hybrid = [_hkdf_stream(generate_key().secret, _BITS // 8) for _ in range(args.sequences)]
    raw = [generate_key_image(np.zeros((512, 512), np.uint8), seed=1000 + i, bits=8, generator=generator)
           .pixels.tobytes()[: _BITS // 8] for i in range(args.sequences)]
    hybrid_rows, hybrid_pass, hybrid_total = _nist_table("hybrid key material (ZZ-GAN + OS CSPRNG → HKDF-SHA256)",
                                                         hybrid)
    raw_rows, raw_pass, raw_total = _nist_table("raw ZZ-GAN key images (512², 8-bit, first 10⁶ bits)", raw)
    elapsed = time.perf_counter() - started
    lines = [
        "# ZZ-GAN keys, measured",
        "",
        f"Generated by `bench/bench_zzgan.py`: shipped generator `{generator.sha256[:16]}…`, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}, {elapsed:.0f} s in all.",
        "",
        f"## {args.keys} raw key images, 256 × 256, 8-bit",
        "",
        "Seeds 0…" + str(args.keys - 1) + "; initial images cycle through the seven phantom kinds. Measures from "
        "`deepkedi.metrics` (the paper's Table 5-7 measures; critical values from Wu, Noonan and Agaian 2011).",
        "",
        *key_rows,
        "",
        "## NIST SP 800-22, two-level analysis (§4.2)",
        "",
        "Proportion of sequences with P ≥ 0.01 must lie in p̂ ± 3√(p̂(1−p̂)/m); the P-values of each test "
        "must be "
        "uniform (P-value_T ≥ 0.0001). Multi-P-value tests (non-overlapping templates, serial, excursions) "
        "pass when every one of their P-values does; the column shows the worst.",
        "",
        *hybrid_rows,
        "",
        f"Hybrid key material: {hybrid_pass} of {hybrid_total} tests pass.",
        "",
        *raw_rows,
        "",
        f"Raw ZZ-GAN keys: {raw_pass} of {raw_total} tests pass.",
        "",
        "## Speed",
        "",
        *speed_rows,
        "",
    ]
    text = "\n".join(lines)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
