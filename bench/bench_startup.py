"""CPU seconds of whole `kedi` processes: startup (`kedi --help`) and a small decrypt.

Every command is a fresh process; its CPU time (user + system) comes from the
``wait4`` rusage of that process alone, after one warm-up run of each (bytecode
cached, as for an installed package). References measured in the same run: the
bare interpreter (``python -c pass``), and ``openssl enc -d -aes-256-ctr`` on the
same container bytes (a whole process that decrypts 40 KB). Also lists which heavy
libraries each command path imports.

Run: ``.venv/bin/python bench/bench_startup.py [--repeat 15]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import run_process

HEAVY = ("scipy", "torch", "pydicom", "sqlalchemy", "nibabel", "PIL", "skimage", "matplotlib", "numpy")
KEDI = Path(sys.executable).with_name("kedi")


#: As an installed package runs: bytecode is cached (PYTHONDONTWRITEBYTECODE would make every
#: process compile deepkedi's modules from source again, some 60-100 ms of CPU).
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def cpu(command: list[str]) -> float:
    """User + system CPU seconds of one child process."""
    return run_process(command, env=ENV).cpu


def imported(args: list[str]) -> list[str]:
    """The heavy top-level packages a `kedi` command path imports."""
    code = (
        "import sys\nfrom deepkedi.cli import main\nsys.argv = ['kedi', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    return done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = folder / "slice.npy"
        np.save(plain, np.random.default_rng(0).integers(0, 4096, (140, 140), dtype=np.uint16))
        key, container = folder / "site.key", folder / "slice.kedi"
        subprocess.run([str(KEDI), "keygen", "-o", str(key), "--no-gan"], check=True, capture_output=True)
        subprocess.run(
            [str(KEDI), "encrypt", str(plain), "-o", str(container), "--key", str(key)], check=True, capture_output=True
        )
        restored = folder / "restored.npy"
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "kedi --help": [str(KEDI), "--help"],
            f"kedi decrypt ({container.stat().st_size // 1024} KB container)": [
                str(KEDI),
                "decrypt",
                str(container),
                "-o",
                str(restored),
                "--key",
                str(key),
                "--force",
            ],
        }
        if shutil.which("openssl"):
            commands["openssl enc -d -aes-256-ctr (same bytes)"] = [
                "openssl",
                "enc",
                "-d",
                "-aes-256-ctr",
                "-K",
                "00" * 32,
                "-iv",
                "00" * 16,
                "-in",
                str(container),
                "-out",
                os.devnull,
            ]
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():
            cpu(command)  # warm-up: bytecode written, files in the page cache
        for _ in range(args.repeat):  # interleaved: every command sees the same machine load
            for name, command in commands.items():
                samples[name].append(cpu(command))
        base = statistics.median(samples["python -c pass"])
        print(f"{'command':<48} {'median CPU s':>12} {'× python':>9}")
        for name, values in samples.items():
            median = statistics.median(values)
            print(f"{name:<48} {median:>12.3f} {median / base:>9.1f}")
        print()
        for label, argv in (
            ("kedi --help", ["--help"]),
            ("kedi decrypt", ["decrypt", str(container), "-o", str(restored), "--key", str(key), "--force"]),
            ("kedi inspect", ["inspect", str(container)]),
        ):
            print(f"{label}: imports {', '.join(imported(argv)) or 'none of ' + ', '.join(HEAVY)}")


if __name__ == "__main__":
    main()
