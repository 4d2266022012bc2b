"""In-memory encryption speed against raw AES-GCM on the same bytes, same run.

Prints medians (µs / ms) and the ratio to ``AESGCM.encrypt`` of the pixel bytes:
- a 512×512 16-bit slice (the paper decrypts one in 45 ms),
- a 300-slice 512×512 16-bit volume (150 MiB).

Run: ``.venv/bin/python bench/bench_cipher.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from _timing import round_robin_medians
from deepkedi import decrypt_pixels, encrypt_image, generate_key
from deepkedi.transforms.zigzag import ZigzagPattern


def bench(label: str, pixels: np.ndarray, repeats: int, unit: str) -> None:
    scale = 1e6 if unit == "µs" else 1e3
    key = generate_key()
    data = pixels.tobytes()
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    actions: dict[str, Callable[[], object]] = {"raw AESGCM.encrypt": lambda: aead.encrypt(nonce, data, None)}
    for pattern in ZigzagPattern:
        container = encrypt_image(pixels, key, pattern=pattern)
        actions[f"encrypt_image {pattern.value}"] = lambda p=pattern: encrypt_image(pixels, key, pattern=p)
        actions[f"decrypt_pixels {pattern.value}"] = lambda c=container: decrypt_pixels(c, key)
    medians = round_robin_medians(actions, repeats, warmup=1)
    raw = medians["raw AESGCM.encrypt"]
    print(
        f"\n{label}: {pixels.shape} {pixels.dtype}, {len(data) / 2**20:.2f} MiB, median of {repeats} interleaved rounds"
    )
    for name, seconds in medians.items():
        print(f"  {name:<28} {seconds * scale:9.1f} {unit}  {seconds / raw:5.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bench("slice", rng.integers(0, 4096, (512, 512), dtype=np.uint16), args.repeats, "µs")
    bench("volume", rng.integers(0, 4096, (300, 512, 512), dtype=np.uint16), max(3, args.repeats // 40), "ms")


if __name__ == "__main__":
    main()
