"""Time the metrics on one 512 x 512 uint8 cipher pair: the whole report under 100 ms.

The one-image statistics (global and local entropy, χ², correlation in three
directions over all pairs) run on the first image; NPCR, UACI, PSNR and SSIM on the
pair. Each figure is the median over ``--repeat`` calls, timed round-robin after a
warm-up (the warm-up also fills the cache of the local-entropy interval, computed once
per block size and bit depth). Run with ``python bench/bench_metrics.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from _timing import round_robin_medians
from deepkedi.metrics import (
    adjacent_correlations,
    histogram_chi_square,
    local_entropy,
    npcr,
    psnr,
    shannon_entropy,
    ssim,
    uaci,
)

BUDGET_MS = 100.0


def median_ms(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time of one call of each, in milliseconds, timed round-robin."""
    return {name: 1e3 * t for name, t in round_robin_medians(calls, repeat, warmup=3).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    first = rng.integers(0, 256, (args.size, args.size), dtype=np.uint8)
    second = rng.integers(0, 256, (args.size, args.size), dtype=np.uint8)
    calls: dict[str, Callable[[], object]] = {
        "shannon_entropy": lambda: shannon_entropy(first),
        # Wu et al.'s k = 30 blocks of 44x44; a smaller image holds fewer (256²: 25).
        "local_entropy": lambda: local_entropy(first, blocks=min(30, (args.size // 44) ** 2)),
        "histogram_chi_square": lambda: histogram_chi_square(first),
        "adjacent_correlations (all pairs)": lambda: adjacent_correlations(first),
        "npcr": lambda: npcr(first, second),
        "uaci": lambda: uaci(first, second),
        "psnr": lambda: psnr(first, second, data_range=255),
        "ssim": lambda: ssim(first, second, data_range=255),
    }
    times = median_ms(calls, args.repeat)
    width = max(map(len, times))
    print(f"{args.size} x {args.size} uint8, median of {args.repeat}")
    for name, ms in times.items():
        print(f"  {name:<{width}}  {ms:8.3f} ms")
    total = sum(times.values())
    verdict = "within" if total < BUDGET_MS else "OVER"
    print(f"  {'total':<{width}}  {total:8.3f} ms  ({verdict} the {BUDGET_MS:.0f} ms budget)")


if __name__ == "__main__":
    main()
