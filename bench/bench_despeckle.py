"""Time blind DRT despeckling of a 512² image (the issue's budget: under 2 s).

Prints the median of a few runs on a speckled 512² CT phantom (uniform speckle,
variance 0.05, the assumed paper setting) and tracemalloc's peak.
Run: ``.venv/bin/python bench/bench_despeckle.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from deepkedi.datasets import phantom
from deepkedi.transforms.ripplet_despeckle import despeckle_ripplet
from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL, add_speckle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    clean = phantom("liver", "CT", seed=0).pixels.astype(np.float64) + 1024.0
    noisy = add_speckle(clean, model=PAPER_MODEL, level=PAPER_LEVEL, rng=0)
    despeckle_ripplet(noisy)  # builds and caches the windows
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        despeckle_ripplet(noisy)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    despeckle_ripplet(noisy)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"despeckle_ripplet, 512x512 float64, c=1 d=2, median of {args.repeats}: "
        f"{statistics.median(times):.3f} s (budget 2 s); tracemalloc peak {peak / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
