"""Time and size the ripplet type-I frame on one image (default 512 x 512).

Run with ``python bench/bench_ripplet.py [--rows R --cols C --repeat N --c C --d D]``.

For float64 and float32 it prints:

- the cold first call (window construction included) and the median over
  ``--repeat`` calls of forward, inverse and forward + inverse with the windows
  cached (numpy's FFT is single-threaded, so these are one-thread figures; the
  script sets no thread count);
- the reconstruction error and the Parseval defect;
- memory: windows (half spectrum, as cached) and coefficients computed from the
  array sizes, and the tracemalloc peak of a cold forward + inverse (numpy
  reports its buffers to tracemalloc).

The target is forward + inverse under 1 s for a 512 x 512 image.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from deepkedi.transforms import angles_per_scale, default_scales, ripplet_forward, ripplet_inverse
from deepkedi.transforms.ripplet import _windows

MIB = 1024 * 1024


def bench(rows: int, cols: int, dtype: type, repeat: int, c: float, d: float) -> None:
    """Print timings, exactness and memory for one dtype."""
    x = np.random.default_rng(0).random((rows, cols)).astype(dtype)
    scales = default_scales((rows, cols))
    counts = angles_per_scale(scales, c=c, d=d)
    n_bands = sum(counts)
    itemsize = np.dtype(dtype).itemsize

    _windows.cache_clear()
    tracemalloc.start()
    start = time.perf_counter()
    coefs = ripplet_forward(x, c=c, d=d)
    back = ripplet_inverse(coefs)
    cold = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del coefs, back

    fwd, inv, both = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        coefs = ripplet_forward(x, c=c, d=d)
        t1 = time.perf_counter()
        back = ripplet_inverse(coefs)
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        inv.append(t2 - t1)
        both.append(t2 - t0)
        if _ < repeat - 1:
            del coefs, back
    error = np.linalg.norm(x.astype(np.float64) - back) / np.linalg.norm(x.astype(np.float64))
    energy = np.sum(coefs.lowpass.astype(np.float64) ** 2) + sum(
        np.sum(b.astype(np.float64) ** 2) for s in coefs.bands for b in s
    )
    parseval = abs(energy / np.sum(x.astype(np.float64) ** 2) - 1)

    window_bytes = (n_bands + 1) * rows * (cols // 2 + 1) * itemsize
    coef_bytes = (n_bands + 1) * rows * cols * itemsize
    name = np.dtype(dtype).name
    print(f"{name}: {rows}x{cols}, c={c}, d={d}, {scales} scales, angles {counts}, {n_bands} bands")
    print(f"  cold forward+inverse (windows built): {cold * 1e3:8.1f} ms")
    print(f"  median forward:                       {statistics.median(fwd) * 1e3:8.1f} ms")
    print(f"  median inverse:                       {statistics.median(inv) * 1e3:8.1f} ms")
    print(f"  median forward+inverse:               {statistics.median(both) * 1e3:8.1f} ms")
    print(f"  relative reconstruction error:        {error:.2e}")
    print(f"  Parseval defect |E_coef/E_x - 1|:     {parseval:.2e}")
    print(f"  windows (half spectrum, cached):      {window_bytes / MIB:8.1f} MiB")
    print(f"  coefficients ({n_bands + 1} arrays):          {coef_bytes / MIB:8.1f} MiB")
    print(f"  tracemalloc peak, cold fwd+inv:       {peak / MIB:8.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--c", type=float, default=1.0)
    parser.add_argument("--d", type=float, default=2.0)
    args = parser.parse_args()
    for dtype in (np.float64, np.float32):
        bench(args.rows, args.cols, dtype, args.repeat, args.c, args.d)


if __name__ == "__main__":
    main()
