"""Time the 15 SP 800-22 tests on 10⁶ bits (the issue's budget: under 30 s in all).

Prints the median of a few runs of each test on 10⁶ CSPRNG bits and the total.
Run: ``.venv/bin/python bench/bench_nist.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from deepkedi.metrics.nist import TESTS, bits_from_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bits = bits_from_bytes(os.urandom(125_000))
    print(f"SP 800-22 on {bits.size:,} bits, median of {args.repeats}")
    total = 0.0
    for name, test in TESTS.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            test(bits)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        total += median
        print(f"  {name:<28} {median * 1e3:9.1f} ms")
    print(f"  {'total':<28} {total * 1e3:9.1f} ms  (budget 30 000 ms)")


if __name__ == "__main__":
    main()
