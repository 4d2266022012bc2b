"""Time the zigzag scans of one 512 x 512 uint16 slice against raw AES-GCM.

The encryption of a slice should cost within 2x of AES-GCM over the same bytes,
so the zigzag step is measured beside AES-256-GCM in the same run (same machine,
same load). Run with ``python bench/bench_zigzag.py [--rows R --cols C --repeat N]``.

Each figure is the median over ``--repeat`` timings of one call; the calls are
timed round-robin, so each starts with caches another call has just used (AES-GCM
included: it reads slower here than in a tight loop of its own). ``scan`` and
``unscan`` write into a preallocated buffer (``out=``), as the encryption layer
does; ``scan (alloc)`` lets the function allocate its result.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from _timing import round_robin_medians
from deepkedi.transforms import ZigzagPattern, scan_order, zigzag_scan, zigzag_unscan


def median_us(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time of one call of each, in microseconds, timed round-robin."""
    return {name: 1e6 * t for name, t in round_robin_medians(calls, repeat, warmup=5).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    rows, cols, repeat = args.rows, args.cols, args.repeat

    rng = np.random.default_rng(0)
    plane = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
    data = plane.tobytes()
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = os.urandom(12)  # a benchmark only: nothing encrypted here is kept
    sequence = np.empty(rows * cols, dtype=np.uint16)
    restored = np.empty_like(plane)
    gather_order = scan_order(rows, cols, ZigzagPattern.HORIZONTAL)

    calls: dict[str, Callable[[], object]] = {
        "AES-256-GCM encrypt": lambda: aead.encrypt(nonce, data, None),
    }
    for pattern in ZigzagPattern:
        scan_order(rows, cols, pattern)  # fill the permutation cache first
        calls[f"{pattern.value} scan"] = functools.partial(zigzag_scan, plane, pattern, out=sequence)
        calls[f"{pattern.value} scan (alloc)"] = functools.partial(zigzag_scan, plane, pattern)
        calls[f"{pattern.value} unscan"] = functools.partial(zigzag_unscan, sequence, rows, cols, pattern, out=restored)
    calls["(horizontal as a gather)"] = functools.partial(np.take, plane.ravel(), gather_order, out=sequence)

    for pattern in ZigzagPattern:  # check the round trip before timing it
        zigzag_scan(plane, pattern, out=sequence)
        assert np.array_equal(zigzag_unscan(sequence, rows, cols, pattern), plane)

    alone = median_us({"AES-256-GCM encrypt, alone": calls["AES-256-GCM encrypt"]}, repeat)
    timings = median_us(calls, repeat)
    aes_us = timings["AES-256-GCM encrypt"]
    print(f"zigzag on a {rows}x{cols} uint16 slice ({len(data)} bytes), median of {repeat}")
    print("ratios are to AES-256-GCM timed in the same rounds")
    for name, micros in {**alone, **timings}.items():
        print(f"{name:<28}{micros:10.1f} us {micros / aes_us:6.2f} x AES-GCM")


if __name__ == "__main__":
    main()
