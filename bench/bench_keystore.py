"""Time a keystore KEK rotation: re-wrapping 10,000 data keys must take under 10 s.

Creates a keystore (a temporary SQLite file by default, or ``--url`` such as a
PostgreSQL database that holds no keystore yet), stores ``--keys`` keys (OS CSPRNG
only: the ZZ-GAN adds ~40 ms per key, which is key creation, not rotation), then
times ``--repeat`` rotations, each to a fresh KEK, and prints the median against
the budget. ``--passphrase`` rotates to scrypt passphrases (n = 2**17), so the
time includes deriving the new KEK; the default uses 32-byte KEK material, so the
figure is the re-wrapping and the one transaction alone.

Run with ``python bench/bench_keystore.py [--keys N --repeat R --url URL --passphrase]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from deepkedi.keys.keystore import Keystore, PassphraseKek

BUDGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=None, help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--passphrase", action="store_true", help="rotate to scrypt passphrases (n = 2**17)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        kek = os.urandom(32)
        with Keystore.init(url, kek_source=kek, actor="bench") as store:
            start = time.perf_counter()
            store.new_keys(args.keys, actor="bench", gan=False)
            created = time.perf_counter() - start
            times = []
            for i in range(args.repeat):
                new = PassphraseKek(f"bench passphrase {i}") if args.passphrase else os.urandom(32)
                start = time.perf_counter()
                store.rotate(new, actor="bench")
                times.append(time.perf_counter() - start)
            assert store.stragglers() == {}
    median = statistics.median(times)
    backend = url.split(":", 1)[0]
    kind = "scrypt passphrase" if args.passphrase else "32-byte KEK material"
    print(f"keystore ({backend}): created {args.keys} keys in {created:.2f} s (one transaction)")
    print(
        f"rotate to a new {kind}, re-wrapping {args.keys} keys in one transaction: "
        f"median {median:.3f} s of {args.repeat} ({', '.join(f'{t:.3f}' for t in times)})"
    )
    verdict = "within" if median < BUDGET_S else "OVER"
    print(f"budget {BUDGET_S:.0f} s for 10,000 keys: {verdict} ({median / BUDGET_S:.1%} of it)")
    return 0 if median < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
