"""In-memory encryption speed against raw AES-GCM on the same bytes, same run.

Prints medians (µs / ms) and the ratio to ``AESGCM.encrypt`` of the pixel bytes:
- a 512×512 16-bit slice (the paper decrypts one in 45 ms),
- a 300-slice 512×512 16-bit volume (150 MiB).

Run: ``.venv/bin/python bench/bench_cipher.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deepkedi import decrypt_image, encrypt_image, generate_key
from deepkedi.transforms.zigzag import ZigzagPattern


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # warm caches and allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(label: str, pixels: np.ndarray, repeats: int, unit: str) -> None:
    scale = 1e6 if unit == "µs" else 1e3
    key = generate_key()
    data = pixels.tobytes()
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    raw = median_seconds(lambda: aead.encrypt(nonce, data, None), repeats)
    print(f"\n{label}: {pixels.shape} {pixels.dtype}, {len(data) / 2**20:.2f} MiB, median of {repeats}")
    print(f"  raw AESGCM.encrypt            {raw * scale:9.1f} {unit}   1.00×")
    for pattern in ZigzagPattern:
        container = encrypt_image(pixels, key, pattern=pattern)
        enc = median_seconds(lambda: encrypt_image(pixels, key, pattern=pattern), repeats)
        dec = median_seconds(lambda: decrypt_image(container, key), repeats)
        print(f"  encrypt_image {pattern.value:<11}    {enc * scale:9.1f} {unit}  {enc / raw:5.2f}×")
        print(f"  decrypt_image {pattern.value:<11}    {dec * scale:9.1f} {unit}  {dec / raw:5.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bench("slice", rng.integers(0, 4096, (512, 512), dtype=np.uint16), args.repeats, "µs")
    bench("volume", rng.integers(0, 4096, (300, 512, 512), dtype=np.uint16), max(3, args.repeats // 40), "ms")


if __name__ == "__main__":
    main()
