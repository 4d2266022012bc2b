"""A 2 GB NIfTI through `kedi encrypt` and `kedi decrypt`, beside `openssl enc -aes-256-ctr` on the same file.

Builds an uncompressed NIfTI-1 volume (int16, 512 × 512 slices) in a scratch folder,
then runs, interleaved for ``--rounds`` rounds, each as a separate process:
``openssl enc -aes-256-ctr`` of the volume (the reference: AES in counter mode over
the same bytes, no authentication, no scan), ``kedi encrypt`` and ``kedi decrypt``.
Prints the median wall time, user CPU and peak RSS of each (``wait4`` rusage of
that process alone) and the ratios to openssl measured in the same run. Outputs are
written to the scratch folder, as openssl's is; kedi also syncs its outputs to disk
before renaming them into place, which openssl does not.

Run: ``.venv/bin/python bench/bench_openssl.py [--gb 2] [--rounds 3] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import run_process

KEDI = [sys.executable, "-m", "deepkedi.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="volume size in GB (10^9 bytes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    if not shutil.which("openssl"):
        raise SystemExit("openssl is not installed")
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="kedi-openssl-"))
    try:
        volume, key = scratch / "volume.nii", scratch / "bench.key"
        # Built in a child process: a child's peak RSS starts from its parent's (Linux carries
        # it across fork and exec), so this process stays small and the peaks below are each step's.
        slices = max(1, int(args.gb * 1e9) // (512 * 512 * 2))
        maker = Path(__file__).with_name("bench_large.py")
        subprocess.run([sys.executable, str(maker), "--make", "nifti", str(volume), str(slices)], check=True)
        subprocess.run([*KEDI, "keygen", "-o", str(key), "--no-gan"], check=True, stdout=subprocess.DEVNULL)
        container, restored, reference = scratch / "c.kedi", scratch / "restored.nii", scratch / "ref.bin"
        steps = {
            "openssl enc -aes-256-ctr": [
                "openssl",
                "enc",
                "-aes-256-ctr",
                "-K",
                "11" * 32,
                "-iv",
                "22" * 16,
                "-in",
                str(volume),
                "-out",
                str(reference),
            ],
            "kedi encrypt": [*KEDI, "encrypt", str(volume), "-o", str(container), "--key", str(key), "--force"],
            "kedi decrypt": [*KEDI, "decrypt", str(container), "-o", str(restored), "--key", str(key), "--force"],
        }
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, command in steps.items():
                usage = run_process(command)
                samples[name].append((usage.wall, usage.user, usage.peak_mib))
        same = volume.read_bytes() == restored.read_bytes() if volume.stat().st_size < 1 << 28 else None
        size = volume.stat().st_size
        ref_wall = statistics.median(s[0] for s in samples["openssl enc -aes-256-ctr"])
        ref_user = statistics.median(s[1] for s in samples["openssl enc -aes-256-ctr"])
        print(f"{size / 1e9:.2f} GB NIfTI, median of {args.rounds} interleaved rounds")
        print(f"{'step':<28}{'wall s':>8}{'× openssl':>11}{'user s':>8}{'× openssl':>11}{'peak MiB':>10}")
        for name, values in samples.items():
            wall = statistics.median(v[0] for v in values)
            user = statistics.median(v[1] for v in values)
            peak = max(v[2] for v in values)
            print(f"{name:<28}{wall:>8.2f}{wall / ref_wall:>11.2f}{user:>8.2f}{user / ref_user:>11.2f}{peak:>10.0f}")
        if same is not None:
            print("restored byte-identical:", same)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
